#include <algorithm>

#include <fmt/format.h>

#include "app/user.hpp"
#include "blob/blob.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "ops/actions.hpp"
#include "ops/backup.hpp"
#include "ops/events.hpp"
#include "ops/instance.hpp"
#include "ops/staging.hpp"
#include "state/database.hpp"
#include "state/declared.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/mounts.hpp"
#include "util/random.hpp"
#include "util/writeback.hpp"

namespace bartl {
namespace {

/// Blob bytes between two background syncs of the staging filesystem during a restore.
constexpr std::uint64_t kWritebackEvery = 32ull << 20;

/// The declared component each state/N of the blob restores into, by name (never by
/// position: reordered [state] paths must not swap contents).
std::vector<const Component*> map_by_name(const std::vector<std::unique_ptr<Component>>& declared,
                                          const BackupManifest& backup, const Config& config) {
    std::vector<const Component*> out;
    for (const auto& name : backup.paths) {
        const auto moved = config.moved.find(name);
        const std::string want = moved != config.moved.end() ? moved->second.string() : name;
        const Component* found = nullptr;
        for (const auto& c : declared)
            if (c->tree() && c->name() == want) found = c.get();
        if (!found)
            throw ConfigError(fmt::format(
                "{}: backup {} holds state path {}, which [state] paths does not declare: declare it (its data "
                "would otherwise be dropped by the restore and by every later backup), or, if it lives elsewhere "
                "now, say where with [state] moved = {{ \"{}\" = \"NEW PATH\" }}",
                config.where("[state] paths[0]"), backup.id, name, name));  // positions are per entry
        if (std::find(out.begin(), out.end(), found) != out.end())
            throw IntegrityError(fmt::format("backup {} names state path {} twice", backup.id, want));
        out.push_back(found);
    }
    return out;
}

/// Runs `extract`; a DiskFull it throws is thrown again naming what the restore needs and
/// what each state file system (`room`, measured before the restore wrote anything) held.
template <typename F>
auto extract_or_say_space(const BackupManifest& backup,
                          const std::vector<std::pair<std::filesystem::path, FileSystemSpace>>& room, F&& extract) {
    try {
        return extract();
    } catch (const DiskFull& e) {
        std::string where;
        for (const auto& [path, space] : room)
            where += fmt::format("{}for state path {}, {}", where.empty() ? "" : "; ", path.string(),
                                 space_text(space, path));
        throw DiskFull(fmt::format("{}. Backup {} holds {} of files, and before this restore {}: free that much "
                                   "there or grow it, then start again (nothing was restored; the backup in the "
                                   "store is untouched)",
                                   e.what(), backup.id, format_bytes(backup.bytes), where));
    }
}

}  // namespace

void do_restore(const RunContext& rc, const BackupManifest& backup) {
    const auto& config = rc.config;
    Instance inst(config);
    rc.reporter.set_phase(Phase::restoring);
    const std::string what = fmt::format("Restoring {} from {}", config.instance, backup.blob_name);
    rc.reporter.set_status(what);
    log::write(log::Level::notice,
               fmt::format("restore of {} from backup {} ({}, state {}, {}) started", config.instance, backup.id,
                           backup.blob_name, backup.version, format_bytes(backup.blob_size)),
               {{"BARTL_BACKUP_ID", backup.id}}, event::restore_started);
    // An encrypted backup without an identity fails here, before anything is staged.
    auto read_opts = extract_options(config, backup);
    const auto declared = declared_components(config);
    const auto trees = map_by_name(declared, backup, config);
    const auto dbs = map_databases(declared, backup, config);
    // Every component the restore builds: the trees, then the databases.
    auto comps = trees;
    comps.insert(comps.end(), dbs.begin(), dbs.end());
    check_targets(comps);
    Intent intent = new_intent("restore");
    // A database's staging is named by its target (do_clean_partial() drops it through it).
    intent.staging = staging_strings(comps);
    intent.targets = target_strings(comps);
    intent.backup_id = backup.id;
    intent.to = backup.version;
    intent.state_id = new_state_id();
    inst.write_intent(intent);

    auto discard = [&] {
        for (const auto* c : comps) c->discard_staging();
        inst.clear_intent();
    };
    try {
        // Parents bartld creates let the app's user reach its state; owners inside come from
        // the archive, the staging root's too.
        const auto new_parents = missing_parents(config);
        std::vector<std::filesystem::path> staging;
        for (const auto* c : trees) {
            c->prepare_staging(Owner{});
            staging.push_back(c->staging_path());
        }
        give_to_app_user(config, {}, new_parents);
        // Measured before anything is written, for the message of a restore that does not fit.
        std::vector<std::pair<std::filesystem::path, FileSystemSpace>> room;
        for (std::size_t i = 0; i < trees.size(); ++i)
            if (const auto sp = filesystem_space(staging[i]))
                if (std::none_of(room.begin(), room.end(), [&](const auto& r) {
                        return !sp->mount_point.empty() && r.second.mount_point == sp->mount_point;
                    }))
                    room.emplace_back(trees[i]->name(), *sp);
        // Each dump is loaded into a staging database while the blob streams in; the swap
        // waits until extract_blob() has verified the whole blob.
        std::vector<std::unique_ptr<DumpLoader>> loaders;
        for (const auto* d : dbs) {
            log::info(fmt::format("restore of backup {}: loading {} into {}", backup.id, d->id(), d->restore_staging()),
                      {{"BARTL_BACKUP_ID", backup.id}});
            loaders.push_back(d->open_restore(app_owner(config)));
            DumpLoader* l = loaders.back().get();
            read_opts.sections[d->section()] = SectionConsumer{l, [l] { l->finish(); }};
        }
        auto src = rc.store->open(rc.ctx, backup.blob_name);
        auto last = std::chrono::steady_clock::now();
        // The disk writes back while we extract, so the sync before the commit finds little left.
        std::optional<fs::BackgroundSync> writeback;
        if (!staging.empty()) writeback.emplace(staging.front(), kWritebackEvery);
        // Counted in files written to staging: a database section's bytes go to its server,
        // whose own writes a syncfs would only flush early while it loads.
        read_opts.on_file = [&](std::uint64_t bytes) {
            if (writeback) writeback->written(bytes);
        };
        auto r = extract_or_say_space(backup, room, [&] { return extract_blob(*src, backup.blob_size, backup.blob_sha256, staging,
                              [&](std::uint64_t done, std::uint64_t total) {
                                  // Staging is discarded below.
                                  rc.ctx.check(fmt::format("restore of backup {} abandoned after {} of {}", backup.id,
                                                           format_bytes(done), format_bytes(total)));
                                  auto now = std::chrono::steady_clock::now();
                                  if (now - last < std::chrono::seconds(1)) return;
                                  last = now;
                                  rc.reporter.alive();
                                  rc.reporter.set_status(fmt::format("{}: {} of {}", what, format_bytes(done),
                                                                     format_bytes(total ? total : backup.bytes)));
                              },
                              read_opts); });
        const auto& am = r.archive_manifest;
        if (am.app != backup.app || am.id != backup.id || am.version != backup.version || am.paths != backup.paths)
            throw IntegrityError(fmt::format("backup {}: archive manifest (app {}, version {}, id {}) does not match "
                                             "its sidecar (app {}, version {}, id {}) or names other paths",
                                             backup.id, am.app, am.version, am.id, backup.app, backup.version,
                                             backup.id));
        check_extracted(r, backup);
        for (const auto& w : r.warnings)
            log::warn(fmt::format("restore of backup {}: {}", backup.id, w), {{"BARTL_BACKUP_ID", backup.id}});
        if (writeback) writeback->finish();  // an error it met is not reported again by the sync below
        for (const auto* c : trees) c->bind_staging(intent.state_id);
        for (const auto* c : trees) c->sync_staging();
        for (const auto* d : dbs) d->bind_restore(intent.state_id);
    } catch (...) {
        try {
            discard();
        } catch (const std::exception& e) {
            log::error(fmt::format("cannot remove restore staging: {}", e.what()));
        }
        throw;
    }
    Marker m;
    m.app = config.app_name;
    m.version = backup.version;
    m.state_id = intent.state_id;
    m.origin = "restore:" + backup.id;
    m.migrations = backup.migrations;
    add_history(m, "restore", "", backup.version,
                fmt::format("{} created {} on {}", backup.blob_name, backup.created, backup.host));
    try {
        for (const auto* c : trees) c->commit_staging();
        for (const auto* d : dbs) d->commit_restore();
        for (const auto* c : comps) m.components.push_back(c->record());
        auto env = hook_env(config, rc.engine.str(), backup.version);
        env["BARTL_BACKUP_ID"] = backup.id;
        env["BARTL_BACKUP_NAME"] = backup.blob_name;
        // Before the marker: a failing post_restore leaves the restore uncommitted, so it is
        // rolled back and done again rather than a half-prepared state served.
        run_hook(config, "post_restore", config.hook_post_restore, env, rc.ctx.cancel);
        // The staged files were synced before the commit; what the hook changed since must be
        // on disk before the marker commits it too.
        if (!config.hook_post_restore.empty())
            for (const auto* c : comps) c->sync_live();
        inst.write_marker(m);
    } catch (...) {
        rollback_uncommitted(config, comps);
        throw;
    }
    inst.clear_intent();
    inst.clear_pin();
    log::write(log::Level::notice,
               fmt::format("restore of {} from backup {} finished: state {}, state ID {}", config.instance, backup.id,
                           backup.version, m.state_id),
               {{"BARTL_BACKUP_ID", backup.id}}, event::restore_finished);
}

}  // namespace bartl
