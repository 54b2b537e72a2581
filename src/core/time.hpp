// RFC 3339 UTC timestamps and the compact form used in blob names. Pure.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace bartl {

/// "2026-11-30T03:09:04Z" (RFC 3339, UTC, seconds precision). Throws std::out_of_range
/// for years outside 0000-9999, which RFC 3339 cannot write.
std::string format_rfc3339(std::chrono::sys_seconds t);
/// "2026-11-30T03:09:04.123Z": RFC 3339 UTC with milliseconds, so that backups taken within
/// one second still order by time. Throws std::out_of_range as format_rfc3339().
std::string format_rfc3339_ms(std::chrono::sys_time<std::chrono::milliseconds> t);
/// Parses "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (lower-case 't'/'z' accepted, RFC 3339 §5.6);
/// the fraction (1-9 digits) is dropped. No offsets other than Z, no leap second :60.
/// Throws std::invalid_argument naming the bad field.
std::chrono::sys_seconds parse_rfc3339(std::string_view text);
/// As parse_rfc3339(), keeping the fraction to milliseconds.
std::chrono::sys_time<std::chrono::milliseconds> parse_rfc3339_ms(std::string_view text);
/// "20261130T030904Z" (ISO 8601 basic format), as in blob names. Throws std::out_of_range
/// for years outside 0000-9999.
std::string format_compact(std::chrono::sys_seconds t);
/// Parses the compact form "YYYYMMDDTHHMMSSZ" (as in blob names) with the same rules as
/// parse_rfc3339(). Throws std::invalid_argument naming the bad field.
std::chrono::sys_seconds parse_compact(std::string_view text);

}  // namespace bartl
