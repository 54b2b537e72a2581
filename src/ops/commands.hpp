// One entry point per operation an operator asks for, used alike by bartld, its D-Bus
// adaptor and bartlctl (which runs some of them without a daemon): verify, pin a restore,
// adopt, forget a component, initialise a store.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "blob/manifest.hpp"
#include "config/config.hpp"
#include "core/marker.hpp"
#include "core/semver.hpp"
#include "ops/report.hpp"
#include "store/identity.hpp"
#include "store/store.hpp"
#include "util/cancel.hpp"

namespace bartl {

/// The store of [backup] store with its options (systemd credentials from
/// $CREDENTIALS_DIRECTORY); nullptr when none is configured. Throws ConfigError.
std::unique_ptr<Store> open_configured_store(const Config& config);
/// As open_configured_store(), but a missing store is a UsageError naming the file and `what`.
std::unique_ptr<Store> require_store(const Config& config, const std::string& what);

/// Checks that `id` names a complete backup of this app in `store` now, before it is pinned
/// (a mistyped pin would fail every later start). Returns its sidecar. Throws UsageError
/// naming the newest backups when it does not, StoreUnavailable.
BackupManifest check_pin(const Config& config, Store& store, const Context& ctx, const std::string& id);

/// bartlctl restore-from ID: checks and pins `id` for the next start without state. Returns
/// the backup. Throws as check_pin().
BackupManifest pin_restore(const Config& config, Store& store, const Context& ctx, const std::string& id);

/// One adopted component: what `bartlctl adopt` took over.
struct AdoptedComponent {
    std::string id;
    std::uint64_t files = 0;  ///< regular files in it
    std::uint64_t bytes = 0;  ///< their bytes
};

/// What adopt() did.
struct AdoptResult {
    Marker marker;
    std::vector<AdoptedComponent> components;
};

/// bartlctl adopt VERSION: puts data bartl did not create under bartl as state `version`:
/// binds every declared component to a new state ID and writes the marker (origin "adopt";
/// the store is claimed at the next start). Takes the instance lock (bartld must not run).
/// Throws LockedError, RuntimeError when there is a marker, an unfinished operation, or no
/// data at all.
AdoptResult adopt(const Config& config, const Version& version);

/// bartlctl forget COMPONENT: records in the marker's history that a component is no longer
/// part of the state and drops its record (its data is left where it is). `component` is
/// "KIND:NAME" or a path. Takes the instance lock. Returns the new marker. Throws
/// LockedError, NotFound (no such recorded component), UsageError (it is still declared:
/// remove it from the configuration first), RuntimeError (no marker).
Marker forget_component(const Config& config, const std::string& component);

/// bartld --init-store, bartlctl init-store: creates the store identity (once per store).
/// Throws UsageError (no store configured), RuntimeError, StoreUnavailable.
InitStoreResult init_configured_store(const Config& config, const Context& ctx);

}  // namespace bartl
