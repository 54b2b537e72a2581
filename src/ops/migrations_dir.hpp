// The migrations directory ([hooks] migrations) as bartl reads it.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/marker.hpp"
#include "core/migrations.hpp"

namespace bartl {

/// The scripts in [hooks] migrations (none when it is not set). Hidden files are skipped;
/// anything else that is not an executable file named as core/migrations.hpp describes is a
/// ConfigError naming it, so a typo never skips a step. Throws ConfigError.
std::vector<MigrationScript> scan_migrations(const Config& config);

/// One warning per applied migration whose script has changed since it ran (Flyway's
/// validate): name, when, and both SHA-256 prefixes. Missing scripts are not reported.
std::vector<std::string> changed_migrations(const Config& config, const Marker& marker);

}  // namespace bartl
