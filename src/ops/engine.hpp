// The engine version: from [app] version, version_file or version_command.
#pragma once

#include "config/config.hpp"
#include "core/semver.hpp"

namespace bartl {

/// Resolves the engine version from its configured source: the literal, the file's content
/// (surrounding whitespace trimmed) or the command's stdout (trimmed; the command must exit 0
/// within version_command_timeout). Throws ConfigError (exit 78) naming the source and why
/// ("version_file /usr/share/notes/VERSION: '2.1' is not SemVer 2.0.0: ...").
Version resolve_engine_version(const Config& config);

}  // namespace bartl
