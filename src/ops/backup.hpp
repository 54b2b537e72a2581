// Taking a backup, retention, verification (bartl(7) "The backup blob", invariants 3, 6, 7, 9).
#pragma once

#include <chrono>
#include <string>

#include "blob/blob.hpp"
#include "blob/manifest.hpp"
#include "config/config.hpp"
#include "core/marker.hpp"
#include "ops/report.hpp"
#include "state/database.hpp"
#include "store/store.hpp"
#include "util/cancel.hpp"

namespace bartl {

/// Read options for a backup's blob: its label in messages and a limit on unpacked bytes
/// derived from the sidecar's counts (so a zstd bomb cannot fill the disk).
BlobReadOptions read_options(const BackupManifest& b);

/// Checks what extracting `b` gave against its sidecar: the entry count, and the content bytes
/// (files plus the sections of the dumps). Throws IntegrityError.
void check_extracted(const BlobExtractResult& r, const BackupManifest& b);

/// The declared database each non-path component of backup `b` restores into, by kind and
/// name, in the backup's capture order (a declared database the backup lacks is not among
/// them: the next start adds it as a new component). Throws ConfigError naming a database of
/// the backup that `config` does not declare, IntegrityError for one named twice.
std::vector<const DatabaseComponent*> map_databases(const std::vector<std::unique_ptr<Component>>& declared,
                                                    const BackupManifest& b, const Config& config);

/// The systemd credential holding the age identity for restores: $CREDENTIALS_DIRECTORY/NAME.
inline constexpr const char* kAgeIdentityCredential = "age-identity";

/// read_options() plus what extracting `b` needs: for an age-encrypted backup (sidecar
/// `encryption` {"type": "age"}), the identity files: the credential age-identity when
/// $CREDENTIALS_DIRECTORY holds it, then [backup] identity_file. Throws RuntimeError (exit 1,
/// never a reason to init or to try an older backup) naming both when neither exists,
/// IntegrityError for an encryption type other than "age".
BlobReadOptions extract_options(const Config& config, const BackupManifest& b);

/// Why a backup is taken and in what situation (hooks see both: BARTL_BACKUP_REASON,
/// BARTL_APP_RUNNING).
struct BackupRequest {
    /// "scheduled", "manual" (D-Bus Backup(), bartld --backup), "pre-migration", "stop"
    /// (consistency = "stop": the app was stopped for it). Recorded in the sidecar.
    std::string reason = "scheduled";
    bool app_running = false;  ///< the app is running while the backup is taken
    std::string id;            ///< backup id to use ("" = a new one), so a job can announce it first
};

/// Takes one backup of the present state `marker` into `store`: checks that this state is
/// the store's writer (claiming an unclaimed store, and recording the claim in `marker` and
/// its file), pre_backup hook, blob under a temporary name, commit, sidecar last, post_backup
/// hook, then retention. `ctx` cancels it between chunks (StopRequested); nothing partial
/// becomes visible. Returns the sidecar manifest. Throws FencedError (another state took the
/// store over: nothing is written), StoreUnavailable, RuntimeError (hook failed, read error,
/// ENOSPC), StopRequested.
BackupManifest take_backup(const Config& config, Store& store, const Context& ctx, Marker& marker,
                           const std::string& engine_version, const BackupRequest& request, const Reporter& reporter);

/// A fresh backup id: 8 lower-case hex digits from getrandom(2).
std::string new_backup_id();

/// Applies [backup] keep_* to the backups state `state_id` wrote (never another writer's, nor
/// one dated in the future, nor the keep_pre_migration newest pre-migration ones:
/// core/retention.hpp); verifies the newest of them (size, SHA-256) before deleting
/// anything. Returns the number of backups deleted. Throws StoreUnavailable.
unsigned apply_retention(const Config& config, Store& store, const Context& ctx, const std::string& state_id);

/// Removes what killed backups of this app left in the store: abandoned uploads (at once when
/// their writer is provably dead) and blobs whose sidecar was never written, once older than
/// `age`. Returns how many objects were removed. Throws StoreUnavailable.
unsigned remove_incomplete_backups(const Config& config, Store& store, const Context& ctx, std::chrono::seconds age);

/// Verifies a backup: streams it checking size and SHA-256, test-extracts it into a temporary
/// directory under bartl_dir and compares file count and bytes with the sidecar. "" = the
/// newest. Throws IntegrityError (naming what differs), NotFound, StoreUnavailable, and
/// StoreNotInitialized when the store lists no backup and holds no identity (a mistyped
/// bucket, prefix or path).
BackupManifest verify_backup(const Config& config, Store& store, const Context& ctx, const std::string& id,
                             const Reporter& reporter);

}  // namespace bartl
