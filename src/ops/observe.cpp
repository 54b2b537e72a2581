#include <fmt/format.h>

#include "core/error.hpp"
#include "ops/catalog.hpp"
#include "ops/instance.hpp"
#include "ops/lifecycle.hpp"

namespace bartl {

namespace {

std::string join_paths(const std::vector<std::filesystem::path>& v) {
    std::string s;
    for (const auto& p : v) s += (s.empty() ? "" : ", ") + p.string();
    return s;
}

void observe_backups(Observation& o, const Config& config, Store* store, const std::set<std::string>& rejected,
                     const std::optional<std::string>& pin) {
    auto& f = o.facts;
    if (!store) {
        f.backup = BackupFact::none;
        o.backup_detail = "no backup store configured";
        return;
    }
    std::vector<BackupManifest> backups;
    std::vector<std::string> damaged;
    try {
        backups = list_backups(*store, config.app_name, &damaged);
    } catch (const StoreUnavailable& e) {
        f.backup = BackupFact::unreachable;
        o.backup_detail = e.what();
        return;
    }
    if (pin) {
        o.pinned = *pin;
        auto b = find_backup(backups, *pin);
        if (!b) {
            f.backup = BackupFact::pin_missing;
            o.backup_detail = fmt::format("store {} holds no backup '{}' (pinned by --restore-from)", store->url(), *pin);
        } else if (rejected.count(b->id)) {
            f.backup = BackupFact::all_rejected;
            o.backup_detail = fmt::format("pinned backup {} was rejected", b->id);
        } else {
            f.backup = BackupFact::available;
            f.backup_id = b->id;
            f.backup_version = Version::try_parse(b->version);
            o.backup_detail = fmt::format("store {}: pinned backup {} ({}, state {}, created {})", store->url(), b->id,
                                          b->blob_name, b->version, b->created);
        }
        return;
    }
    if (backups.empty() && !damaged.empty()) {
        // Sidecars of this app are there but none is usable: the store did not answer "no
        // backup", so this is never a fresh install (invariant 5).
        std::string list;
        for (const auto& d : damaged) list += (list.empty() ? "" : "; ") + d;
        f.backup = BackupFact::all_rejected;
        o.backup_detail = fmt::format("store {} holds {} damaged backup sidecar(s) of {} and no usable backup: {}",
                                      store->url(), damaged.size(), config.app_name, list);
        return;
    }
    if (backups.empty()) {
        f.backup = BackupFact::none;
        o.backup_detail = fmt::format("store {} answered: no backup of {}", store->url(), config.app_name);
        return;
    }
    for (const auto& b : backups) {
        if (rejected.count(b.id)) continue;
        auto v = Version::try_parse(b.version);
        if (!v) continue;  // a sidecar with a version we cannot order is not a candidate
        f.backup = BackupFact::available;
        f.backup_id = b.id;
        f.backup_version = v;
        o.backup_detail = fmt::format("store {} answered: {} backup(s), newest candidate {} ({}, state {}, created {})",
                                      store->url(), backups.size(), b.id, b.blob_name, b.version, b.created);
        return;
    }
    f.backup = BackupFact::all_rejected;
    o.backup_detail = fmt::format("store {}: all {} backup(s) of {} were rejected", store->url(), backups.size(),
                                  config.app_name);
}

}  // namespace

Observation observe(const Config& config, const Version& engine, Store* store, const std::set<std::string>& rejected,
                    const std::optional<std::string>& pin) {
    Instance inst(config);
    Observation o;
    auto& f = o.facts;
    f.engine = engine;
    const auto mr = inst.read_marker();
    const auto intent = inst.read_intent();
    const auto with_data = inst.paths_with_data();

    std::vector<std::filesystem::path> missing;
    for (const auto& p : config.state_paths) {
        std::error_code ec;
        if (!std::filesystem::exists(std::filesystem::symlink_status(p, ec))) missing.push_back(p);
    }
    const bool all_missing = missing.size() == config.state_paths.size();

    // A marker whose data is gone (disk replaced, paths deleted), or an unreadable marker over
    // no data, protects nothing: the state is lost and the marker is retired when acting.
    const bool lost = mr.exists && (all_missing || (!mr.marker && with_data.empty()));
    if (mr.exists && (mr.marker || lost)) {
        if (lost) {
            o.marker_lost = true;
            f.state = StateFact::absent;
            o.state_detail = fmt::format("marker {} exists but the state paths hold no data: state lost",
                                         inst.marker_path().string());
        } else if (!missing.empty()) {
            throw RuntimeError(fmt::format(
                "state is incomplete: marker {} records state {} but {} is missing while other state paths exist; "
                "restore the missing path, or move every state path and the marker aside to restore from a backup",
                inst.marker_path().string(), mr.marker->version, join_paths(missing)));
        } else {
            auto v = Version::try_parse(mr.marker->version);
            if (!v)
                throw RuntimeError(fmt::format("marker {}: state version '{}' is not SemVer",
                                               inst.marker_path().string(), mr.marker->version));
            f.state = StateFact::present;
            f.state_version = v;
            o.marker = mr.marker;
            o.state_detail = fmt::format("state {} (origin {}, marker {})", mr.marker->version, mr.marker->origin,
                                         inst.marker_path().string());
        }
    } else if (mr.exists) {
        f.state = StateFact::foreign;
        o.state_detail = fmt::format("marker {} does not parse ({}) and {} hold data", inst.marker_path().string(),
                                     mr.error, join_paths(with_data));
    } else if (intent && (intent->op == "init" || intent->op == "restore")) {
        f.state = StateFact::partial;
        o.state_detail = fmt::format("interrupted {} (intent {}, started {} by PID {})", intent->op,
                                     inst.intent_path().string(), intent->started, intent->pid);
    } else if (!with_data.empty()) {
        f.state = StateFact::foreign;
        o.state_detail = fmt::format("{} hold data but there is no marker {}", join_paths(with_data),
                                     inst.marker_path().string());
    } else {
        f.state = StateFact::absent;
        o.state_detail = "no state: state paths missing or empty, no marker";
    }

    if (f.state == StateFact::absent) observe_backups(o, config, store, rejected, pin);
    return o;
}

}  // namespace bartl
