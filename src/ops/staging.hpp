// Staging of components shared by init and restore (bartl(7) invariant 3).
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"
#include "state/component.hpp"

namespace bartl {

/// Refuses (ConfigError, exit 78) components staging cannot replace (a symlink, a mount
/// point, a non-directory). Called before the intent is written, so nothing is touched.
void check_targets(const std::vector<const Component*>& components);
/// Staging paths and target names of `components`, for the intent record: a directory's
/// staging path and path, a database's id ("postgresql:notes"; it has no staging path).
std::vector<std::string> staging_strings(const std::vector<const Component*>& components);
std::vector<std::string> target_strings(const std::vector<const Component*>& components);
/// Binds every staging to `state_id`, makes it durable and switches it into place. Throws
/// RuntimeError when a target holds data (nothing is replaced).
void bind_sync_commit(const std::vector<const Component*>& components, const std::string& state_id);
/// Undoes an init/restore that failed before its marker was written: removes the staging and
/// the targets (missing or empty before the operation began, so whatever is there is
/// bartl's), then the intent. Best effort: errors are logged, never thrown.
void rollback_uncommitted(const Config& config, const std::vector<const Component*>& components);

}  // namespace bartl
