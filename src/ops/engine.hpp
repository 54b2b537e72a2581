// The engine version: from [app] version, version_file or version_command.
#pragma once

#include "config/config.hpp"
#include "core/semver.hpp"

namespace bartl {

/// Resolves the engine version from its configured source: the literal, the file's content
/// or the command's stdout (run as [app] user; it must exit 0 within
/// version_command_timeout), either trimmed of surrounding whitespace or, with [app]
/// version_pattern, the text its capture group matches (POSIX ERE, first match).
/// Throws ConfigError (exit 78) naming the source and why ("version_file
/// /usr/share/notes/VERSION: '2.1' is not SemVer 2.0.0: ...", "[app] version_pattern \"...\"
/// matches nothing in \"...\"").
Version resolve_engine_version(const Config& config);

}  // namespace bartl
