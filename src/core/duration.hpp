// Human durations as used in bartl.toml ("90s", "5m", "24h", "1h30m", "500ms").
// Pure: no I/O.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace bartl {

/// Parses a duration: one or more <integer><unit> groups, units ms, s, m, h, d, w.
/// A bare "0" is zero. Throws std::invalid_argument naming the bad part.
std::chrono::milliseconds parse_duration(std::string_view text);

/// Formats a duration compactly ("1h30m", "90s", "250ms") for messages.
std::string format_duration(std::chrono::milliseconds d);

}  // namespace bartl
