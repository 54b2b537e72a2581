#include <unistd.h>

#include <fmt/format.h>

#include "blob/blob.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "ops/actions.hpp"
#include "ops/backup.hpp"
#include "ops/events.hpp"
#include "ops/instance.hpp"
#include "ops/staging.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/writeback.hpp"

namespace bartl {
namespace {

/// Blob bytes between two background syncs of the staging filesystem during a restore.
constexpr std::uint64_t kWritebackEvery = 32ull << 20;

}  // namespace

void do_restore(const Config& config, Store& store, const BackupManifest& backup, const Version& engine,
                const Reporter& reporter) {
    Instance inst(config);
    reporter.set_phase(Phase::restoring);
    const std::string what = fmt::format("Restoring {} from {}", config.instance, backup.blob_name);
    reporter.set_status(what);
    log::write(log::Level::notice,
               fmt::format("restore of {} from backup {} ({}, state {}, {}) started", config.instance, backup.id,
                           backup.blob_name, backup.version, format_bytes(backup.blob_size)),
               {{"BARTL_BACKUP_ID", backup.id}}, event::restore_started);
    if (backup.paths.size() != config.state_paths.size())
        throw IntegrityError(fmt::format("backup {} holds {} state path(s), the configuration declares {}", backup.id,
                                         backup.paths.size(), config.state_paths.size()));

    check_targets(config);
    auto staging = staging_dirs(config);
    Intent intent = new_intent("restore");
    intent.staging = path_strings(staging);
    intent.targets = path_strings(config.state_paths);
    intent.backup_id = backup.id;
    intent.to = backup.version;
    inst.write_intent(intent);

    auto discard = [&] {
        for (const auto& s : staging) fs::remove_tree(s);
        inst.clear_intent();
    };
    try {
        prepare_staging(staging);
        auto src = store.open(backup.blob_name);
        auto last = std::chrono::steady_clock::now();
        // The disk writes back while we extract, so sync_staging() below finds little left.
        fs::BackgroundSync writeback(staging.front(), kWritebackEvery);
        auto r = extract_blob(*src, backup.blob_size, backup.blob_sha256, staging,
                              [&](std::uint64_t done, std::uint64_t total) {
                                  if (stop_requested())  // staging is discarded below
                                      throw StopRequested(fmt::format(
                                          "stop requested: restore of backup {} abandoned after {} of {}", backup.id,
                                          format_bytes(done), format_bytes(total)));
                                  writeback.written(done);
                                  auto now = std::chrono::steady_clock::now();
                                  if (now - last < std::chrono::seconds(1)) return;
                                  last = now;
                                  reporter.alive();
                                  reporter.set_status(fmt::format("{}: {} of {}", what, format_bytes(done),
                                                                  format_bytes(total ? total : backup.bytes)));
                              },
                              read_options(backup));
        const auto& am = r.archive_manifest;
        if (am.app != backup.app || am.id != backup.id || am.version != backup.version)
            throw IntegrityError(fmt::format("backup {}: archive manifest (app {}, version {}, id {}) does not match "
                                             "its sidecar (app {}, version {}, id {})",
                                             backup.id, am.app, am.version, am.id, backup.app, backup.version, backup.id));
        if (r.files != backup.files || r.bytes != backup.bytes)
            throw IntegrityError(fmt::format("backup {}: archive holds {} entries and {} bytes, sidecar says {} and {}",
                                             backup.id, r.files, r.bytes, backup.files, backup.bytes));
        for (const auto& w : r.warnings)
            log::warn(fmt::format("restore of backup {}: {}", backup.id, w), {{"BARTL_BACKUP_ID", backup.id}});
        writeback.finish();  // an error it met is not reported again to sync_staging's syncfs
        sync_staging(staging);
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
    m.origin = "restore:" + backup.id;
    m.state_paths = path_strings(config.state_paths);
    add_history(m, "restore", "", backup.version, fmt::format("{} created {} on {}", backup.blob_name, backup.created, backup.host));
    try {
        commit_staging(staging, config.state_paths);
        auto env = hook_env(config, engine.str(), backup.version);
        env["BARTL_BACKUP_ID"] = backup.id;
        env["BARTL_BACKUP_NAME"] = backup.blob_name;
        // Before the marker: a failing post_restore leaves the restore uncommitted, so it is
        // rolled back and done again rather than a half-prepared state served.
        run_hook(config, "post_restore", config.hook_post_restore, env);
        // The staged files were synced before the commit; what the hook changed since must be
        // on disk before the marker commits it too.
        if (!config.hook_post_restore.empty())
            for (const auto& p : config.state_paths) fs::sync_filesystem(p);
        inst.write_marker(m);
    } catch (...) {
        rollback_uncommitted(config, staging);
        throw;
    }
    inst.clear_intent();
    inst.clear_pin();
    log::write(log::Level::notice,
               fmt::format("restore of {} from backup {} finished: state {}", config.instance, backup.id, backup.version),
               {{"BARTL_BACKUP_ID", backup.id}}, event::restore_finished);
}

}  // namespace bartl
