// Observing the three facts (bartl(7) "WHAT BARTL OBSERVES"): local state by the marker and
// each component's state ID, the store by its identity object and listing, the versions.
#include <algorithm>

#include <fmt/format.h>

#include "core/error.hpp"
#include "ops/catalog.hpp"
#include "ops/instance.hpp"
#include "ops/lifecycle.hpp"
#include "ops/migrations_dir.hpp"
#include "state/declared.hpp"
#include "store/identity.hpp"
#include "util/log.hpp"

namespace bartl {

namespace {

std::string join(const std::vector<std::string>& v, const char* sep = "; ") {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
    return s;
}

void observe_backups(Observation& o, const Config& config, Store* store, const Context& ctx,
                     const std::set<std::string>& rejected, const std::optional<std::string>& pin) {
    auto& f = o.facts;
    if (!store) {
        f.backup = BackupFact::none;
        o.backup_detail = "no backup store configured";
        return;
    }
    std::optional<StoreWriter> writer;
    BackupListing listing;
    try {
        // Only a location holding bartl's identity object may answer "no backup" (invariant 5).
        writer = read_store_identity(*store, ctx, config.app_name, config.instance, init_store_commands(config)).identity.writer;
        listing = list_backup_refs(*store, ctx, config.app_name);
    } catch (const StoreNotInitialized& e) {
        f.backup = BackupFact::not_a_store;
        o.backup_detail = e.what();
        return;
    } catch (const StoreUnavailable& e) {
        f.backup = BackupFact::unreachable;
        o.backup_detail = e.what();
        return;
    }
    auto take = [&](const BackupManifest& b, const std::string& how) {
        f.backup = BackupFact::available;
        f.backup_id = b.id;
        f.backup_version = Version::try_parse(b.version);
        o.candidate = b;
        o.backup_detail = fmt::format("store {}{}: backup {} ({}, state {}, created {} on {})", store->url(), how, b.id,
                                      b.blob_name, b.version, b.created, b.host);
    };
    if (pin) {
        o.pinned = *pin;
        const auto ref = find_ref(listing.backups, *pin);
        if (!ref) {
            f.backup = BackupFact::pin_missing;
            f.backup_id = *pin;
            o.backup_detail = fmt::format("store {} holds no backup '{}' (pinned by --restore-from)", store->url(), *pin);
            return;
        }
        if (rejected.count(ref->id)) {
            f.backup = BackupFact::all_rejected;
            o.backup_detail = fmt::format("pinned backup {} was rejected", ref->id);
            return;
        }
        try {
            take(read_sidecar(*store, ctx, config.app_name, *ref, trust_policy(config)), " (pinned)");
        } catch (const IntegrityError& e) {
            f.backup = BackupFact::all_rejected;
            o.backup_detail = fmt::format("pinned backup {}: {}", ref->id, e.what());
        }
        return;
    }
    const auto choice = choose_restore_candidate(*store, ctx, config.app_name, trust_policy(config), listing, rejected,
                                                 writer,
                                                 std::chrono::system_clock::now());
    for (const auto& s : choice.skipped) o.warnings.push_back(s);
    if (choice.chosen) {
        take(*choice.chosen, fmt::format(" answered: {} backup(s), newest usable", choice.listed));
        return;
    }
    if (listing.backups.empty() && listing.damaged.empty()) {
        f.backup = BackupFact::none;
        o.backup_detail = fmt::format("store {} answered: no backup of {}", store->url(), config.app_name);
        return;
    }
    // Backups are there but none is usable: not a "no backup" answer (invariant 5).
    f.backup = BackupFact::all_rejected;
    std::vector<std::string> why = listing.damaged;
    for (const auto& s : choice.skipped) why.push_back(s);
    o.backup_detail = fmt::format("store {} holds {} backup(s) of {} and none usable ({} rejected in this run){}{}",
                                  store->url(), listing.backups.size(), config.app_name, rejected.size(),
                                  why.empty() ? "" : ": ", join(why));
}

/// Adds to o.orphan_state_ids the state IDs that the declared components holding data carry
/// with no marker to prove them (none, or one that does not parse), each once.
void note_orphan_ids(Observation& o, const std::vector<std::unique_ptr<Component>>& declared) {
    for (const auto& c : declared) {
        if (!c->holds_data()) continue;
        const auto seen = c->observe(nullptr, "");
        if (!seen.carried_id.empty() &&
            std::find(o.orphan_state_ids.begin(), o.orphan_state_ids.end(), seen.carried_id) ==
                o.orphan_state_ids.end())
            o.orphan_state_ids.push_back(seen.carried_id);
    }
}

}  // namespace

Observation observe(const Config& config, const Version& engine, Store* store, const Context& ctx,
                    const std::set<std::string>& rejected, const std::optional<std::string>& pin) {
    Instance inst(config);
    Observation o;
    auto& f = o.facts;
    f.engine = engine;
    f.store_configured = store != nullptr;
    f.before_migrate = config.before_migrate;
    const auto mr = inst.read_marker();
    const auto intent = inst.read_intent();
    f.migration_in_progress = intent && intent->op == "migrate";
    const auto declared = declared_components(config);

    // Only the branches without a usable marker ask: a database answers over a connection,
    // and the reboot path (a marker) must not pay for it twice.
    auto holding_data = [&] {
        std::vector<std::string> out;
        for (const auto& c : declared)
            if (c->holds_data()) out.push_back(c->name());
        return out;
    };

    if (mr.exists && !mr.marker) {
        // An unreadable marker over no data protects nothing; over data it proves nothing.
        const auto with_data = holding_data();
        if (with_data.empty()) {
            o.marker_lost = true;
            f.state = StateFact::absent;
            o.state_detail = fmt::format("marker {} does not parse ({}) and no component holds data: state lost",
                                         inst.marker_path().string(), mr.error);
        } else {
            f.state = StateFact::foreign;
            o.marker_damaged = true;
            o.state_detail = fmt::format("marker {} does not parse ({}) and {} hold data", inst.marker_path().string(),
                                         mr.error, join(with_data, ", "));
            note_orphan_ids(o, declared);
        }
    } else if (mr.marker) {
        const Marker& m = *mr.marker;
        std::vector<std::string> foreign, not_mounted, lost, ours, fresh, undeclared;
        for (const auto& c : declared) {
            const auto* rec = m.find(c->kind(), c->name());
            const auto seen = c->observe(rec, m.state_id);
            o.components.push_back(
                {c->id(), rec || seen.finding != ComponentFinding::ours ? finding_name(seen.finding) : "new",
                 seen.detail});
            if (!rec) {
                if (seen.finding == ComponentFinding::foreign)
                    foreign.push_back(seen.detail);
                else
                    fresh.push_back(c->id());  // empty, or created by an interrupted add
                continue;
            }
            switch (seen.finding) {
            case ComponentFinding::ours: ours.push_back(c->id()); break;
            case ComponentFinding::foreign: foreign.push_back(seen.detail); break;
            case ComponentFinding::not_mounted: not_mounted.push_back(seen.detail); break;
            case ComponentFinding::lost:
            case ComponentFinding::fresh: lost.push_back(seen.detail); break;
            }
        }
        for (const auto& r : m.components) {
            bool is_declared = false;
            for (const auto& c : declared) is_declared |= c->kind() == r.kind && c->name() == r.name;
            if (!is_declared) {
                undeclared.push_back(component_id(r.kind, r.name));
                o.components.push_back({component_id(r.kind, r.name), "no longer declared",
                                        "recorded in the marker, not in the configuration"});
            }
        }
        const std::string where = fmt::format("marker {}", inst.marker_path().string());
        if (!foreign.empty()) {
            f.state = StateFact::foreign;
            o.state_detail = fmt::format("{} (state {}, state ID {}): {}", where, m.version,
                                         m.state_id.empty() ? "none" : m.state_id, join(foreign));
        } else if (!not_mounted.empty()) {
            f.state = StateFact::not_mounted;
            o.state_detail = fmt::format("{} (state {}): {}", where, m.version, join(not_mounted));
        } else if (ours.empty() && !lost.empty()) {
            o.marker_lost = true;
            f.state = StateFact::absent;
            o.state_detail = fmt::format("{} records state {} but {}", where, m.version, join(lost));
        } else if (!lost.empty()) {
            f.state = StateFact::incomplete;
            o.state_detail = fmt::format("{} (state {}): {} present, but {}", where, m.version, join(ours, ", "),
                                         join(lost));
        } else {
            auto v = Version::try_parse(m.version);
            if (!v) throw RuntimeError(fmt::format("{}: state version '{}' is not SemVer", where, m.version));
            f.state = StateFact::present;
            f.state_version = v;
            f.marker_legacy = m.state_id.empty();
            f.components_new = !fresh.empty();
            f.components_undeclared = !undeclared.empty();
            f.writer_claim_due = store && !f.marker_legacy && m.writer.store_id.empty() && m.writer.deferred.empty();
            o.marker = m;
            o.state_detail = fmt::format("state {} (state ID {}, origin {}, {}){}{}", m.version,
                                         m.state_id.empty() ? "not recorded yet" : m.state_id, m.origin, where,
                                         fresh.empty() ? "" : "; new components: " + join(fresh, ", "),
                                         undeclared.empty() ? "" : "; no longer declared: " + join(undeclared, ", "));
            for (const auto& w : changed_migrations(config, m)) o.warnings.push_back(w);
        }
    } else if (intent && (intent->op == "init" || intent->op == "restore")) {
        f.state = StateFact::partial;
        o.state_detail = fmt::format("interrupted {} (intent {}, started {} by PID {})", intent->op,
                                     inst.intent_path().string(), intent->started, intent->pid);
    } else {
        std::vector<std::string> details;
        for (const auto& c : declared)
            if (c->holds_data()) details.push_back(c->observe(nullptr, "").detail);
        note_orphan_ids(o, declared);
        if (!details.empty()) {
            f.state = StateFact::foreign;
            o.state_detail = fmt::format("{} (no marker {})", join(details), inst.marker_path().string());
        } else {
            f.state = StateFact::absent;
            o.state_detail = "no state: declared components missing or empty, no marker";
        }
    }

    if (f.state == StateFact::absent) observe_backups(o, config, store, ctx, rejected, pin);
    return o;
}

}  // namespace bartl
