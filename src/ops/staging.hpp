// Staging helpers shared by init and restore (bartl(7) invariant 3).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace bartl {

/// The staging directory of each declared path (sibling, same filesystem), in order.
std::vector<std::filesystem::path> staging_dirs(const Config& config);
/// Paths as strings (for intent records).
std::vector<std::string> path_strings(const std::vector<std::filesystem::path>& v);
/// Refuses (ConfigError, exit 78) state paths that staging cannot replace by rename: a
/// symlink (the rename would replace the link, moving the data to the wrong disk), a
/// non-directory, or a mount point (EBUSY, and a rollback would empty the volume).
/// Called before the intent is written, so nothing is touched.
void check_targets(const Config& config);
/// Removes leftovers and creates each staging directory empty. Throws RuntimeError.
void prepare_staging(const std::vector<std::filesystem::path>& staging);
/// syncfs(2) the filesystems holding the staging directories. Throws RuntimeError.
void sync_staging(const std::vector<std::filesystem::path>& staging);
/// Renames staging[i] onto targets[i] (each missing or an empty directory), durably.
/// Throws RuntimeError when a target holds data.
void commit_staging(const std::vector<std::filesystem::path>& staging,
                    const std::vector<std::filesystem::path>& targets);

/// Undoes an init/restore that failed before its marker was written: removes the staging
/// directories and the targets (missing or empty before the operation began, so whatever is
/// there is bartl's), then the intent. Best effort: errors are logged, never thrown.
void rollback_uncommitted(const Config& config, const std::vector<std::filesystem::path>& staging);

}  // namespace bartl
