// RFC 3339 UTC timestamps and the compact form used in blob names. Pure.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace bartl {

/// "2026-11-30T03:09:04Z" (RFC 3339, UTC, seconds precision).
std::string format_rfc3339(std::chrono::sys_seconds t);
/// Parses "YYYY-MM-DDTHH:MM:SSZ"; throws std::invalid_argument.
std::chrono::sys_seconds parse_rfc3339(std::string_view text);
/// "20261130T030904Z" (ISO 8601 basic format), as in blob names.
std::string format_compact(std::chrono::sys_seconds t);

}  // namespace bartl
