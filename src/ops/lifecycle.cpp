#include "ops/lifecycle.hpp"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "core/error.hpp"
#include "ops/actions.hpp"
#include "ops/catalog.hpp"
#include "ops/events.hpp"
#include "ops/instance.hpp"
#include "util/log.hpp"

namespace bartl {

namespace {

std::string join(const std::vector<std::filesystem::path>& v) {
    std::string s;
    for (const auto& p : v) s += (s.empty() ? "" : ", ") + p.string();
    return s;
}

}  // namespace

LoopResult run_lifecycle(const Config& config, const Version& engine, Store* store, const Reporter& reporter,
                         const LoopOptions& options) {
    Instance inst(config);
    std::optional<std::string> pin = options.restore_from;
    if (!pin) pin = inst.read_pin();
    std::set<std::string> rejected;
    std::map<std::string, std::string> why_rejected;
    LoopResult result;

    for (unsigned iteration = 0; iteration < options.max_iterations; ++iteration) {
        if (options.stop_requested && options.stop_requested())
            throw StopRequested(fmt::format("stop requested during the start: {} stopped after {}; the next start "
                                            "goes on from there",
                                            config.instance,
                                            result.path.empty() ? std::string("no step") : format_path(result.path)));
        reporter.set_phase(Phase::deciding);
        auto o = observe(config, engine, store, rejected, pin);
        auto d = decide(o.facts);
        log::write(log::Level::info,
                   fmt::format("observed {}; {}; decision: {} ({})", o.state_detail,
                               o.backup_detail.empty() ? "store not consulted" : o.backup_detail,
                               action_name(d.action), d.reason),
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
            if (o.marker_lost) inst.retire_marker("state paths hold no data");
            do_init(config, engine, reporter);
            result.path.push_back(Action::init);
            break;
        case Action::restore: {
            if (o.marker_lost) inst.retire_marker("state paths hold no data");
            auto backups = list_backups(*store, config.app_name);
            auto b = find_backup(backups, o.facts.backup_id);
            if (!b) {
                // Deleted between listing and now: observe again.
                rejected.insert(o.facts.backup_id);
                why_rejected[o.facts.backup_id] = "disappeared from the store";
                break;
            }
            try {
                do_restore(config, *store, *b, engine, reporter);
                result.path.push_back(Action::restore);
            } catch (const IntegrityError& e) {
                log::write(log::Level::err,
                           fmt::format("backup {} rejected: {}; trying the next older backup", b->id, e.what()),
                           {{"BARTL_BACKUP_ID", b->id}}, event::restore_rejected);
                rejected.insert(b->id);
                why_rejected[b->id] = e.what();
            } catch (const NotFound& e) {
                rejected.insert(b->id);
                why_rejected[b->id] = e.what();
            }
            break;
        }
        case Action::migrate:
            do_migrate(config, store, *o.marker, engine, reporter);
            result.path.push_back(Action::migrate);
            break;
        case Action::clean_partial:
            do_clean_partial(config, *inst.read_intent());
            result.path.push_back(Action::clean_partial);
            break;
        case Action::refuse_downgrade: {
            const auto sv = o.facts.state_version->str();
            auto msg = fmt::format(
                "state {} of {} is newer than engine {}: downgrade refused, nothing was changed. Install engine {} "
                "or newer, or go back to the state before the upgrade: stop bartld, move the state paths ({}) and "
                "{} aside, then run `bartld --restore-from ID` with a backup taken at {} (`bartlctl backups` lists "
                "them; bartl takes one before every migration)",
                sv, config.instance, engine.str(), sv, join(config.state_paths), inst.marker_path().string(),
                engine.str());
            throw DowngradeError(msg);  // logged by main() with its MESSAGE_ID
        }
        case Action::refuse_foreign: {
            auto msg = fmt::format(
                "foreign state refused: {}. bartl did not create this data and will not touch it. To bring an "
                "existing installation under bartl, run `bartlctl -i {} adopt VERSION` with the version of the data; "
                "to start fresh, move the data away",
                o.state_detail, config.instance);
            throw ForeignStateError(msg);  // logged by main() with its MESSAGE_ID
        }
        case Action::fail_unreachable:
            throw StoreUnavailable(fmt::format(
                "{}; no state exists and backups may be there, so bartl will not start a fresh install (will retry)",
                o.backup_detail));
        case Action::fail_all_rejected: {
            std::string list;
            for (const auto& [id, why] : why_rejected) list += fmt::format("\n  {}: {}", id, why);
            throw IntegrityError(fmt::format(
                "every backup of {} was rejected; refusing to start a fresh install over them:{}", config.app_name,
                list.empty() ? " " + o.backup_detail : list));
        }
        case Action::fail_pin_missing:
            throw RuntimeError(fmt::format("{}; list the backups with `bartld --plan` or `bartlctl backups`; remove {} to restore the newest backup instead", o.backup_detail, inst.pin_path().string()));
        }
    }
    throw RuntimeError(fmt::format("the lifecycle loop did not converge after {} steps (path so far: {}); this is a "
                                   "bug, please report it with the journal of this start",
                                   options.max_iterations, format_path(result.path)));
}

std::string plan_text(const Config& config, const Version& engine, Store* store, const std::optional<std::string>& pin) {
    Instance inst(config);
    auto p = pin ? pin : inst.read_pin();
    Observation o;
    std::string text;
    try {
        o = observe(config, engine, store, {}, p);
    } catch (const Error& e) {
        return fmt::format("instance {}: engine {}\nstate: {}\nplan: fail\n", config.instance, engine.str(), e.what());
    }
    text += fmt::format("instance: {}\nengine: {}\nstate: {}\n", config.instance, engine.str(), o.state_detail);
    if (!o.backup_detail.empty()) text += fmt::format("backups: {}\n", o.backup_detail);
    auto path = predict_path(o.facts);
    std::string s;
    for (auto a : path) {
        if (!s.empty()) s += " -> ";
        s += action_name(a);
        if (a == Action::restore) s += " " + o.facts.backup_id;
    }
    text += fmt::format("plan: {}\n", s);
    if (p && o.facts.state == StateFact::present)
        text += fmt::format("note: restore-from {} is ignored: state exists, and a chosen backup is restored only "
                            "when there is none\n", *p);
    return text;
}

}  // namespace bartl
