// The backups of one app in a store (bartl(7) "The backup blob": a backup without its
// sidecar does not exist). Startup cost does not grow with the number of backups: the
// listing's names carry time, version and id, so a restore candidate is chosen from the
// listing and only the chosen candidate's sidecar is read.
#pragma once

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "blob/manifest.hpp"
#include "core/store_identity.hpp"
#include "ops/signing.hpp"
#include "store/store.hpp"

namespace bartl {

/// A backup as the store's listing shows it: blob and sidecar both present. No sidecar read.
struct BackupRef {
    std::string blob_name;
    std::string id;
    std::string version;                ///< state version, from the name
    std::chrono::sys_seconds created;   ///< creation time from the name (UTC, whole seconds)
    std::uint64_t blob_size = 0;        ///< bytes, from the listing
    /// When the store committed the blob (orders backups taken within the same second).
    std::chrono::system_clock::time_point modified;
    bool encrypted = false;             ///< ".age" suffix
};

/// Parses "APP-YYYYMMDDTHHMMSSZ-VERSION-ID.tar.zst[.age]" (bartl(7); ID letters and digits).
/// std::nullopt for other names. Pure.
std::optional<BackupRef> parse_blob_name(const std::string& app, const std::string& name);

/// What a listing holds for one app.
struct BackupListing {
    std::vector<BackupRef> backups;    ///< complete backups, newest first (name time, commit time, name)
    std::vector<std::string> damaged;  ///< one line per sidecar without its blob, or pair not named as bartl names them
};

/// Lists the backups of `app` (one listing; no sidecar is read). Throws StoreUnavailable.
BackupListing list_backup_refs(Store& store, const Context& ctx, const std::string& app);

/// Reads and checks the sidecar of `ref`: it must parse, be of `app`, name that blob, and agree
/// with the name (id, version, creation second); then its signature NAME.json.sig against
/// `trust` (the result's `signer`). Throws IntegrityError naming what is wrong (a signature
/// `trust` enforces and the sidecar lacks included), NotFound when it vanished,
/// StoreUnavailable.
BackupManifest read_sidecar(Store& store, const Context& ctx, const std::string& app, const BackupRef& ref,
                            const TrustPolicy& trust);

/// Every backup of `app` with its sidecar, newest first (bartlctl backups, retention). A
/// damaged sidecar is skipped with a warning, and named in `damaged` when given. Throws
/// StoreUnavailable.
std::vector<BackupManifest> list_backups(Store& store, const Context& ctx, const std::string& app,
                                         const TrustPolicy& trust, std::vector<std::string>* damaged = nullptr);

/// Finds a backup by id (or full blob name).
std::optional<BackupManifest> find_backup(const std::vector<BackupManifest>& backups, const std::string& id);
/// Finds a listed backup by id (or full blob name).
std::optional<BackupRef> find_ref(const std::vector<BackupRef>& refs, const std::string& id);

/// How far in the future of this host's clock a backup may be created before it is not
/// taken as the newest (restore) nor counted by retention (bartl(7) "Clock sanity").
inline constexpr std::chrono::minutes kClockSkewAllowed{5};

/// The order in which a restore tries `backups` (newest first): those created after `now` +
/// kClockSkewAllowed go last, the least far in the future first. Pure.
std::vector<BackupRef> restore_order(const std::vector<BackupRef>& backups, std::chrono::system_clock::time_point now);

/// What choosing a restore candidate found.
struct CandidateChoice {
    std::optional<BackupManifest> chosen;  ///< the newest usable backup, its sidecar read and checked
    std::vector<std::string> skipped;      ///< one line per backup passed over (damaged, rejected, stray, future)
    std::size_t damaged = 0;               ///< how many of them were damaged (sidecar problems)
    std::size_t listed = 0;                ///< complete backups in the listing
};

/// Chooses the backup a restore takes (bartl(7) invariants 4, 5, 9): newest first, skipping ids
/// in `rejected`, damaged sidecars, sidecars without the signature `trust` enforces, backups a
/// fenced writer wrote after `writer` took the store over, and backups created more than
/// kClockSkewAllowed after `now` (those are tried last, oldest first, so a host with a wrong
/// clock cannot hide the real newest backup nor block a recovery; one passed over is named
/// in `skipped` all the same). Reads one sidecar (and with `trust` enforced its signature) per
/// backup it looks at, normally one. Logs nothing: the caller reports `skipped` (observe()
/// makes each line a warning). Throws StoreUnavailable.
CandidateChoice choose_restore_candidate(Store& store, const Context& ctx, const std::string& app,
                                         const TrustPolicy& trust, const BackupListing& listing,
                                         const std::set<std::string>& rejected,
                                         const std::optional<StoreWriter>& writer,
                                         std::chrono::system_clock::time_point now);

}  // namespace bartl
