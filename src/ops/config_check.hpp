// Checks of what a configuration names on disk (bartl(7) "WHAT BARTL OBSERVES"): made by
// --check-config and at every start, so a hook that cannot run fails up front with exit 78
// (a configuration error systemd does not retry) instead of at run time with exit 1.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "config/config.hpp"

namespace bartl {

/// Why `path` cannot be executed as a program, or std::nullopt when it can: missing, not a
/// regular file, no execute permission, a "#!" line ending in CR (a script saved with CRLF
/// line ends), an interpreter that does not exist or is not executable (for "#!/usr/bin/env
/// NAME", NAME not found in $PATH), neither "#!" nor an ELF header. Reads at most the first
/// 4 KiB of the file.
std::optional<std::string> program_problem(const std::filesystem::path& path);

/// Checks every hook's program ([hooks] init, init_component, pre_backup, post_backup,
/// post_restore), [app] exec, [app] version_command, and every script of [hooks] migrations
/// (its names as core/migrations.hpp reads them, and each as a program), and that the client
/// library of each declared database type loads. Throws ConfigError "FILE:LINE:COLUMN:
/// [hooks] init /path: what is wrong".
void check_config_files(const Config& config);

}  // namespace bartl
