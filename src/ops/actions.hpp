// The state-changing steps the loop takes (one per non-terminal core/decision.hpp Action).
// Each records an intent before it touches anything and commits by writing the marker
// (bartl(7) invariants 1-4, 9).
#pragma once

#include <optional>
#include <string>

#include "blob/manifest.hpp"
#include "config/config.hpp"
#include "core/marker.hpp"
#include "core/semver.hpp"
#include "ops/report.hpp"
#include "state/component.hpp"
#include "store/store.hpp"
#include "util/cancel.hpp"

namespace bartl {

/// What every step of a start runs with.
struct RunContext {
    const Config& config;
    const Version& engine;
    Store* store;              ///< null when no [backup] store is configured
    Context ctx;               ///< cancellation (SIGTERM) and deadlines
    const Reporter& reporter;
};

/// Ownership of state bartl creates for the app ([app] user/group; -1 = bartld's own).
Owner app_owner(const Config& config);

/// Fresh install: stages every declared component (running the init hook with
/// $BARTL_STAGING), binds it to a new state ID, commits it, then the marker at the engine
/// version with origin "init" (the store writer claim follows as its own step). Throws
/// RuntimeError (hook failed, I/O), StopRequested; on failure the intent stays and the next
/// start cleans the partial state.
void do_init(const RunContext& rc);

/// Removes what a half-done init/restore (recorded in the intent) created, then the intent.
void do_clean_partial(const Config& config, const Intent& intent);

/// Restores `backup` (its sidecar read and checked) into staging, mapping the blob's state
/// paths to the declared components by name, verifying size and SHA-256 while streaming;
/// binds a new state ID, commits, runs post_restore, commits a marker with origin
/// "restore:ID" and the backup's migration history. Throws IntegrityError when the backup
/// does not verify (staging and intent are removed first, nothing committed), ConfigError
/// when the backup holds a component the configuration does not declare, RuntimeError for
/// I/O and hook failures, StopRequested.
void do_restore(const RunContext& rc, const BackupManifest& backup);

/// Claims the store for the marker's state (generation + 1; another writer is fenced from
/// now on) and records the claim in the marker. Throws StoreNotInitialized, StoreUnavailable.
void do_take_over(const RunContext& rc, Marker marker);

/// Takes the one pre-migration backup of the state (the way back) and records it in a
/// migrate intent, so a resumed migration never takes a second one. Throws as take_backup().
void do_backup_before_migrate(const RunContext& rc, Marker marker);

/// Runs the pending migration scripts (core/migrations.hpp) in SemVer order, recording each
/// in the marker (name, SHA-256, time, engine), ending at the engine version. Throws
/// RuntimeError (a script failed: the state stays at the last completed step), ConfigError
/// (unusable migrations directory), StopRequested.
void do_migrate(const RunContext& rc, Marker marker);

/// Binds the components of a format-1 marker to a new state ID and rewrites the marker in
/// format 2 (its store claim deferred to the first backup). Throws RuntimeError.
void do_upgrade_marker(const RunContext& rc, Marker marker);

/// Creates the declared components the marker does not record (empty, or by [hooks]
/// init_component), binds them to the state ID and records them. Throws RuntimeError.
void do_add_components(const RunContext& rc, Marker marker);

}  // namespace bartl
