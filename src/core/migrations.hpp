// Migration step selection, pure: no I/O. Scripts live in [hooks] migrations,
// named VERSION or VERSION-slug where VERSION is MAJOR.MINOR.PATCH (a release
// version; pre-release engines run the scripts of releases below them).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/semver.hpp"

namespace bartl {

/// One migration script found in the migrations directory.
struct MigrationScript {
    Version version;
    std::string file_name;  ///< name inside the directory, e.g. "2.0.0-add-tags"
};

/// Parses a script file name "MAJOR.MINOR.PATCH[-slug]". Returns std::nullopt for names
/// that do not match (the caller reports them).
std::optional<MigrationScript> parse_migration_name(const std::string& file_name);

/// Scripts with version in (from, to], in SemVer order. Throws std::invalid_argument when two
/// scripts have the same version (naming both files).
std::vector<MigrationScript> select_migrations(std::vector<MigrationScript> scripts,
                                               const Version& from, const Version& to);

}  // namespace bartl
