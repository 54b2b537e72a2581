// Creating the directories a bartld unit's sandbox opens, before the sandbox exists
// (bartl-prepare-dirs, run as ExecStartPre=+ by the drop-ins of bartl-generator(8)).
#pragma once

#include <filesystem>
#include <vector>

#include <sys/types.h>

namespace bartl {

/// Creates directory `dir` (absolute, no ".." component) when it is missing: each missing
/// ancestor owned by root:root with mode 0755, `dir` itself owned by root:`gid` with `mode`.
/// A directory that exists, and the symlinks leading to it, are left exactly as they are.
/// Created directories are opened without following symlinks before their owner and mode are
/// set, so a directory swapped for a link meanwhile is refused, never chowned through.
/// Returns the directories it created, outermost first. Throws RuntimeError naming the path
/// (a component that is not a directory, a failing mkdir, chown or chmod).
std::vector<std::filesystem::path> create_missing_dir(const std::filesystem::path& dir, mode_t mode, gid_t gid);

}  // namespace bartl
