// Migration scripts: naming and which ones are pending, pure (no I/O). Scripts live in
// [hooks] migrations, each named for the release that needs it (bartl(7) "MIGRATIONS"):
//
//   VERSION              2.0.0, 2.1.0-rc.1
//   VERSION_SLUG         2.0.0_add-tags, 2.1.0-rc.1_fix-index   ('_' ends the version)
//   VERSION-SLUG         2.0.0-add-tags: the older naming, still read where it is not a
//                        SemVer pre-release (see parse_migration_name)
//
// An engine runs, in SemVer order, every script not yet applied that it is due for and the
// state is not: a script is due for a version V when its version is <= V, or when it names
// a release and V is a pre-release of that release (engine 2.0.0-rc.1 runs the 2.0.0
// scripts: the pre-release ships the release's schema). So going from 2.0.0-rc.1 to 2.0.0
// runs nothing twice, and a bare 2.0.0 name always works.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/semver.hpp"

namespace bartl {

/// One migration script found in the migrations directory.
struct MigrationScript {
    Version version;
    std::string file_name;  ///< name inside the directory, e.g. "2.0.0_add-tags"
    std::string slug;       ///< free text after the version ("" when none)
};

/// Parses a script file name. With '_', the part before the first '_' is the version (a full
/// SemVer version without build metadata) and the rest a non-empty slug. Without '_', the
/// whole name is the version when it is SemVer and its pre-release starts with a numeric
/// identifier or alpha/beta/rc/pre/preview/dev ("2.0.0-rc.1"); otherwise MAJOR.MINOR.PATCH
/// followed by '-' and a slug ("2.0.0-add-tags", the older naming). Returns std::nullopt for
/// names that are none of these (the caller reports them).
std::optional<MigrationScript> parse_migration_name(const std::string& file_name);

/// True when a script of version `script` is due for version `v` (see the header comment).
bool migration_due(const Version& script, const Version& v) noexcept;

/// The scripts to run, in SemVer order: due for `engine`, not due for `state` (the state
/// already has them), and not in `applied` (file names the marker records). Throws
/// std::invalid_argument when two scripts have the same version (naming both files).
std::vector<MigrationScript> pending_migrations(std::vector<MigrationScript> scripts, const Version& state,
                                                const Version& engine, const std::set<std::string>& applied);

/// The state version after running `script` with `engine`: the script's version, but never
/// beyond the engine (a 2.0.0 script run by engine 2.0.0-rc.1 leaves state 2.0.0-rc.1).
Version version_after(const MigrationScript& script, const Version& engine);

}  // namespace bartl
