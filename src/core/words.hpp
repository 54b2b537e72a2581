// Counted nouns in messages. Pure.
#pragma once

#include <string>
#include <string_view>

namespace bartl {

/// "1 file", "0 files", "3 entries": `n` and the noun in its English number (`singular` for
/// exactly 1, else `plural`).
std::string count_noun(unsigned long long n, std::string_view singular, std::string_view plural);

/// "312 MiB", "1.2 GiB", "512 B": `bytes` in IEC units, one decimal below 10.
std::string format_bytes(unsigned long long bytes);

}  // namespace bartl
