// The backups of one app in a store, as listed by their sidecar manifests (bartl(7): a
// backup without its sidecar does not exist).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "blob/manifest.hpp"
#include "store/store.hpp"

namespace bartl {

/// Complete backups of `app`, newest first (by `created`, then name). Sidecars that do not
/// parse, belong to another app, or whose blob is missing are skipped with a warning in the
/// log. When `damaged` is given, it receives one line per skipped sidecar of `app` that is
/// damaged (does not parse, names another blob, bad `created`, blob missing): such a store
/// holds backups, just none usable, which is not a "no backup" answer (invariant 5).
/// Throws StoreUnavailable when the store does not answer.
std::vector<BackupManifest> list_backups(Store& store, const std::string& app,
                                         std::vector<std::string>* damaged = nullptr);

/// Finds a backup by id (or full blob name). Throws StoreUnavailable; returns nullptr-like
/// std::nullopt when absent.
std::optional<BackupManifest> find_backup(const std::vector<BackupManifest>& backups, const std::string& id);

}  // namespace bartl
