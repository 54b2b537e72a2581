#include "ops/lifecycle.hpp"

#include <algorithm>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.hpp"
#include "ops/actions.hpp"
#include "ops/events.hpp"
#include "ops/instance.hpp"
#include "util/log.hpp"

namespace bartl {
namespace {

/// The declared state paths, comma-separated, for messages that say what to move aside.
std::string state_paths_text(const Config& config) {
    std::string out;
    for (const auto& p : config.state_paths) out += (out.empty() ? "" : ", ") + p.string();
    return out;
}

}  // namespace

LoopResult run_lifecycle(const Config& config, const Version& engine, Store* store, const Context& ctx,
                         const Reporter& reporter, const LoopOptions& options) {
    Instance inst(config);
    std::optional<std::string> pin = options.restore_from;
    if (!pin) pin = inst.read_pin();
    std::set<std::string> rejected;
    std::map<std::string, std::string> why_rejected;
    LoopResult result;
    const RunContext rc{config, engine, store, ctx, reporter};

    for (unsigned iteration = 0; iteration < options.max_iterations; ++iteration) {
        ctx.cancel.check(fmt::format("{} stopped during the start after {}; the next start goes on "
                                     "from there",
                                     config.instance,
                                     result.path.empty() ? std::string("no step") : format_path_words(result.path)));
        reporter.set_phase(Phase::deciding);
        auto o = observe(config, engine, store, ctx, rejected, pin);
        auto d = decide(o.facts);
        for (const auto& w : o.warnings) log::warn(w);
        log::write(log::Level::info,
                   fmt::format("observed {}; {}; decision: {} ({})", o.state_detail,
                               o.backup_detail.empty() ? "store not consulted" : o.backup_detail,
                               action_label(d.action), d.reason),
                   {{"BARTL_DECISION", action_name(d.action)}}, event::decision);
        switch (d.action) {
        case Action::serve: {
            if (auto intent = inst.read_intent(); intent && intent->op != "migrate") {
                // The marker committed but the process died before removing the intent.
                inst.clear_intent();
            }
            const bool restored = std::find(result.path.begin(), result.path.end(), Action::restore) != result.path.end();
            if (pin && !restored)
                log::warn(fmt::format("restore pin {} ignored and cleared: state {} exists (a pin only applies "
                                      "when no state exists)", *pin, o.marker->version));
            // A pin left behind (state existed, or a crash right after the restore committed)
            // must not pick the backup of some later disaster recovery.
            if (inst.read_pin()) inst.clear_pin();
            result.path.push_back(Action::serve);
            result.marker = *o.marker;
            return result;
        }
        case Action::init:
            if (o.marker_lost) inst.retire_marker("its state is lost");
            do_init(rc);
            break;
        case Action::restore:
            if (o.marker_lost) inst.retire_marker("its state is lost");
            try {
                do_restore(rc, *o.candidate);
            } catch (const IntegrityError& e) {
                log::write(log::Level::err,
                           fmt::format("backup {} rejected: {}; trying the next older backup", o.candidate->id,
                                       e.what()),
                           {{"BARTL_BACKUP_ID", o.candidate->id}}, event::restore_rejected);
                rejected.insert(o.candidate->id);
                why_rejected[o.candidate->id] = e.what();
                continue;
            } catch (const NotFound& e) {
                // Deleted between listing and now: observe again.
                rejected.insert(o.candidate->id);
                why_rejected[o.candidate->id] = e.what();
                continue;
            }
            break;
        case Action::take_over: do_take_over(rc, *o.marker); break;
        case Action::backup_before_migrate: do_backup_before_migrate(rc, *o.marker); break;
        case Action::migrate: do_migrate(rc, *o.marker); break;
        case Action::upgrade_marker: do_upgrade_marker(rc, *o.marker); break;
        case Action::add_components: do_add_components(rc, *o.marker); break;
        case Action::clean_partial: do_clean_partial(config, *inst.read_intent()); break;
        case Action::refuse_downgrade: {
            const auto sv = o.facts.state_version->str();
            const std::string paths = state_paths_text(config);
            std::string dbs;
            for (const auto& d : config.databases)
                dbs += (dbs.empty() ? "" : ", ") + component_id(d.type_name(), d.type == Database::Type::sqlite
                                                                                    ? d.path.string()
                                                                                    : d.name);
            // A database holds the upgraded state too: left in place, the restore would find it
            // ours and serve it (bartl(7) "Pre-upgrade backup and the way back").
            if (!dbs.empty())
                dbs = fmt::format(", the databases ({}; move each aside: PostgreSQL ALTER DATABASE NAME RENAME "
                                  "TO NAME_aside; MariaDB, which cannot rename a database, mariadb-dump --routines "
                                  "--triggers --events NAME > NAME_aside.sql, then DROP DATABASE NAME; SQLite: move "
                                  "the file and its .bartl-state-id)",
                                  dbs);
            // The unit is failed now, so bartlctl cannot list the backups: name them here.
            const auto back = o.marker ? way_back_backups(o.marker->history, engine.str()) : std::vector<WayBack>{};
            std::string ids;
            for (const auto& w : back)
                ids += fmt::format("{}{} (state {})", ids.empty() ? "" : ", ", w.backup_id, w.state_version);
            const std::string id = back.empty() ? "ID" : back.front().backup_id;
            const std::string which =
                back.empty() ? fmt::format("with a backup of state {} or older (`bartlctl -i {} backups` lists them "
                                           "while a bartld serves, `{} --plan` names the newest; bartl takes one "
                                           "before every migration)",
                                           engine.str(), config.instance, bartld_command(config))
                             : fmt::format("with the backup taken before the migration: {}", ids);
            throw DowngradeError(fmt::format(
                "state {} of {} is newer than engine {}: downgrade refused, nothing was changed. Install engine {} "
                "or newer, or go back to the state before the upgrade: stop bartld, move the state paths ({}){} and "
                "{} aside, then run `{}` (or `{} --restore-from {} --prepare`) {}",
                sv, config.instance, engine.str(), sv, paths, dbs, inst.marker_path().string(),
                bartlctl_command(config, "restore-from", id), bartld_command(config), id, which));
        }
        case Action::refuse_foreign:
            for (const auto& id : o.orphan_state_ids)
                if (const auto owner = inst.other_owner(id))
                    throw ConfigError(fmt::format(
                        "{}: state path {} holds the state of {} (state ID {}): two instances cannot share a state "
                        "path. Declare this instance's own paths in [state] paths (adopting or moving this data "
                        "would take it from the other instance)",
                        config.where("[state] paths[0]"), state_paths_text(config), *owner, id));
            if (!o.orphan_state_ids.empty() || o.marker_damaged) {
                const auto marker = inst.marker_path().string();
                const auto looks = o.orphan_state_ids.empty()
                                       ? fmt::format("The marker {} is damaged and the data carries no state ID", marker)
                                       : fmt::format("This looks like bartl's own state whose marker is {}: it carries "
                                                     "state ID {}, but {} {}",
                                                     o.marker_damaged ? "damaged" : "lost",
                                                     fmt::join(o.orphan_state_ids, ", "), marker,
                                                     o.marker_damaged ? "does not parse" : "does not exist");
                throw ForeignStateError(fmt::format(
                    "foreign state refused: {}. {}, so nothing proves which state and version it is; bartl will not "
                    "touch it. If the data is good, run `{}` with the version of the data; if not, stop bartld, move "
                    "the state paths ({}) aside and start it again: with no state it restores the newest backup "
                    "from the store",
                    o.state_detail, looks, bartlctl_command(config, "adopt", "VERSION"), state_paths_text(config)));
            }
            throw ForeignStateError(fmt::format(
                "foreign state refused: {}. bartl did not create this data and will not touch it. To bring an "
                "existing installation under bartl, run `{}` with the version of the data; to start fresh, move "
                "the data away",
                o.state_detail, bartlctl_command(config, "adopt", "VERSION")));
        case Action::refuse_undeclared: {
            std::string list;
            for (const auto& c : o.components)
                if (c.finding == "no longer declared") list += (list.empty() ? "" : ", ") + c.id;
            throw ConfigError(fmt::format(
                "{}: the state marker records component(s) {} that the configuration no longer declares; bartl will "
                "not drop state silently: declare them again, or record their removal with `{}` (their data stays "
                "where it is)",
                config.file.string(), list, bartlctl_command(config, "forget", "COMPONENT")));
        }
        case Action::fail_unreachable:
            throw StoreUnavailable(fmt::format(
                "{}; no state exists and backups may be there, so bartl will not start a fresh install (will retry)",
                o.backup_detail));
        case Action::fail_not_a_store:
            throw StoreNotInitialized(fmt::format(
                "{}; no state exists, so bartl will not start a fresh install over a store it cannot prove empty",
                o.backup_detail));
        case Action::fail_all_rejected: {
            std::string list;
            for (const auto& [id, why] : why_rejected) list += fmt::format("\n  {}: {}", id, why);
            throw IntegrityError(fmt::format(
                "every backup of {} was rejected; refusing to start a fresh install over them:{}", config.app_name,
                list.empty() ? " " + o.backup_detail : list));
        }
        case Action::fail_pin_missing:
            throw RuntimeError(fmt::format("{}; list the backups with `{} --plan` or `bartlctl -i {} backups`; remove "
                                           "{} to restore the newest backup instead",
                                           o.backup_detail, bartld_command(config), config.instance,
                                           inst.pin_path().string()));
        case Action::fail_not_mounted:
            throw RuntimeError(fmt::format("{}; bartl will not restore onto the filesystem underneath: mount it "
                                           "(systemd retries this start), or, to replace a broken disk, mount the "
                                           "new one there and bartld restores onto it (bartl(7), \"WHAT BARTL "
                                           "OBSERVES\")",
                                           o.state_detail));
        case Action::fail_incomplete:
            throw RuntimeError(fmt::format("state is incomplete: {}; bartl will not mix restored and live components: "
                                           "restore the lost one by hand, or move every component and {} aside to "
                                           "restore all of them from a backup",
                                           o.state_detail, inst.marker_path().string()));
        }
        result.path.push_back(d.action);
    }
    throw RuntimeError(fmt::format("the lifecycle loop did not converge after {} steps (path so far: {}); this is a "
                                   "bug, please report it with the journal of this start",
                                   options.max_iterations, format_path(result.path)));
}

std::string plan_text(const Config& config, const Version& engine, Store* store, const Context& ctx,
                      const std::optional<std::string>& pin, bool pin_given) {
    Instance inst(config);
    auto p = pin ? pin : inst.read_pin();
    Observation o;
    try {
        o = observe(config, engine, store, ctx, {}, p);
    } catch (const Error& e) {
        return fmt::format("instance: {}\nengine: {}\nstate: {}\nplan: fail: {}\n", config.instance, engine.str(),
                           e.what(), e.what());
    }
    std::string text = fmt::format("instance: {}\nengine: {}\nstate: {}\n", config.instance, engine.str(),
                                   o.state_detail);
    for (const auto& c : o.components) text += fmt::format("component: {}: {} ({})\n", c.id, c.finding, c.detail);
    if (!o.backup_detail.empty()) text += fmt::format("backups: {}\n", o.backup_detail);
    if (p && o.facts.state != StateFact::absent)
        text += fmt::format("pin: backup {}{} is ignored: state exists (a pin only applies when no state exists)\n",
                            *p, pin_given ? " (--restore-from)" : "");
    for (const auto& w : o.warnings) text += fmt::format("warning: {}\n", w);
    const auto path = predict_path(o.facts);
    // The version a migration in this plan starts from: the state's, or the restored backup's.
    const std::string from = o.facts.state == StateFact::present && o.facts.state_version
                                 ? o.facts.state_version->str()
                                 : (o.candidate ? o.candidate->version : std::string());
    std::string s;
    for (auto a : path) {
        if (!s.empty()) s += " -> ";
        s += action_label(a);
        if (a == Action::restore) s += " " + o.facts.backup_id;
        if (a == Action::migrate && !from.empty()) s += fmt::format(" {} -> {}", from, engine.str());
    }
    text += fmt::format("plan: {}\n", s);
    if (p && o.facts.state == StateFact::present)
        text += fmt::format("note: restore-from {} is ignored: state exists, and a chosen backup is restored only "
                            "when there is none\n", *p);
    return text;
}

}  // namespace bartl
