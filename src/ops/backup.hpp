// Taking a backup, retention, verification (bartl(7) "The backup blob", invariants 3, 6, 7).
#pragma once

#include <atomic>
#include <chrono>
#include <string>

#include "blob/blob.hpp"
#include "blob/manifest.hpp"
#include "config/config.hpp"
#include "ops/report.hpp"
#include "store/store.hpp"

namespace bartl {

/// Read options for a backup's blob: its label in messages and a limit on unpacked bytes
/// derived from the sidecar's counts (so a zstd bomb cannot fill the disk).
BlobReadOptions read_options(const BackupManifest& b);

/// Takes one backup of the present state (version `state_version`) into `store`: pre_backup
/// hook, blob under a temporary name, commit, sidecar last, post_backup hook, then retention.
/// `cancel` (may be null) aborts it between chunks (RuntimeError "backup cancelled"); nothing
/// partial becomes visible. `id` is the backup id to use ("" = a new one), so a job can
/// announce its id before it starts (D-Bus Backup()). Returns the sidecar manifest. Throws
/// StoreUnavailable, RuntimeError (hook failed, read error, ENOSPC).
BackupManifest take_backup(const Config& config, Store& store, const std::string& state_version,
                           const std::string& engine_version, const Reporter& reporter,
                           const std::atomic<bool>* cancel = nullptr, const std::string& id = "");

/// A fresh backup id: 8 lower-case hex chars from std::random_device.
std::string new_backup_id();

/// Applies [backup] keep_* to the app's backups (core/retention); verifies the newest backup
/// (size, SHA-256) before deleting anything. Returns the number of backups deleted.
/// Throws StoreUnavailable.
unsigned apply_retention(const Config& config, Store& store);

/// Removes what killed backups of this app left in the store, once older than `age`: blobs
/// whose sidecar was never written (never listed, never restored) and abandoned uploads.
/// Returns how many objects were removed. Throws StoreUnavailable.
unsigned remove_incomplete_backups(const Config& config, Store& store, std::chrono::seconds age);

/// Verifies a backup: streams it checking size and SHA-256, test-extracts it into a temporary
/// directory under bartl_dir and compares file count and bytes with the sidecar. Throws
/// IntegrityError (naming what differs), NotFound, StoreUnavailable.
BackupManifest verify_backup(const Config& config, Store& store, const std::string& id, const Reporter& reporter);

}  // namespace bartl
