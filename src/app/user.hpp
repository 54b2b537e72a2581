// The app's own user ([app] user and group): who the app, its readiness probe, the version
// command, hooks and migration scripts run as, while bartld keeps root for the state and
// the store (bartl.toml(5), [app] user).
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "util/process.hpp"

namespace bartl {

/// The Credentials children of this instance get: [app] user/group with the user's
/// supplementary groups; std::nullopt when [app] user is unset, or names the user bartld
/// already is and bartld could not change its groups anyway (an unprivileged bartld).
std::optional<Credentials> app_credentials(const Config& config);

/// HOME, USER and LOGNAME of [app] user (as systemd's User= sets them), to add to the
/// environment of every child; empty when [app] user is unset.
std::map<std::string, std::string> app_user_env(const Config& config);

/// Checks that bartld can start processes as [app] user: it holds CAP_SETUID and
/// CAP_SETGID, or needs no switch. Throws ConfigError (exit 78: restarting cannot help)
/// "FILE:LINE:COLUMN: [app] user \"notes\": bartld runs as uid 1000 without CAP_SETUID ...".
void check_user_switch(const Config& config);

/// The directories above the declared state paths that do not exist yet (the ones staging
/// will create), outermost first. Call before creating them, for give_to_app_user().
std::vector<std::filesystem::path> missing_parents(const Config& config);

/// Gives what bartld has just created for the state to [app] user and group: each staging
/// directory (init's: the init hook and then the app write there) is chowned to them, and
/// each of `new_parents` (from missing_parents()) gets mode 0755, so that the app's user can
/// reach its state under bartld's UMask=0027. A no-op when [app] user is unset. Throws
/// RuntimeError naming the path.
void give_to_app_user(const Config& config, const std::vector<std::filesystem::path>& staging,
                      const std::vector<std::filesystem::path>& new_parents);

}  // namespace bartl
