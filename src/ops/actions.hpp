// The state-changing steps the loop takes. Each one records an intent before it touches
// anything and commits by writing the marker (bartl(7) invariants 1-4).
#pragma once

#include <optional>
#include <string>

#include "blob/manifest.hpp"
#include "config/config.hpp"
#include "core/marker.hpp"
#include "core/semver.hpp"
#include "ops/report.hpp"
#include "store/store.hpp"

namespace bartl {

/// Fresh install: stages every declared path (running the init hook with $BARTL_STAGING),
/// renames them into place, commits a marker at `engine` with origin "init".
/// Throws RuntimeError (hook failed, I/O); on failure the intent stays and the next start
/// cleans the partial state.
void do_init(const Config& config, const Version& engine, const Reporter& reporter);

/// Removes what a half-done init/restore (recorded in the intent) created, then the intent.
void do_clean_partial(const Config& config, const Intent& intent);

/// Restores `backup` into staging, verifying size and SHA-256 while streaming, renames into
/// place, runs post_restore, commits a marker with origin "restore:ID". Throws IntegrityError
/// when the backup does not verify (staging and intent are removed first, nothing committed),
/// RuntimeError for I/O and hook failures.
void do_restore(const Config& config, Store& store, const BackupManifest& backup, const Version& engine,
                const Reporter& reporter);

/// Runs migrations (marker version, engine] in SemVer order, updating the marker after each
/// step, ending at `engine`. With before_migrate and a store, takes a backup first.
/// Throws RuntimeError (script failed: state at the last completed step), ConfigError
/// (unusable migrations directory).
void do_migrate(const Config& config, Store* store, Marker marker, const Version& engine, const Reporter& reporter);

}  // namespace bartl
