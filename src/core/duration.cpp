#include "core/duration.hpp"

#include <array>
#include <cstdint>
#include <stdexcept>

namespace bartl {

namespace {

struct Unit {
    std::string_view name;
    std::int64_t ms;
};

// Longest names first so "ms" is not read as "m" followed by garbage. Months and years are
// left out on purpose: their length varies, and a backup interval must mean one thing.
constexpr std::array<Unit, 6> units{{
    {"ms", 1},
    {"s", 1000},
    {"m", 60 * 1000},
    {"h", 3600 * 1000},
    {"d", 24 * 3600 * 1000},
    {"w", 7LL * 24 * 3600 * 1000},
}};

// The same units, largest first, for formatting. Weeks are left out: "14d" reads more
// plainly in a log line than "2w".
constexpr std::array<Unit, 5> format_units{{
    {"d", 24 * 3600 * 1000},
    {"h", 3600 * 1000},
    {"m", 60 * 1000},
    {"s", 1000},
    {"ms", 1},
}};

[[noreturn]] void fail(std::string_view text, const std::string& why) {
    throw std::invalid_argument("invalid duration \"" + std::string(text) + "\": " + why);
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

}  // namespace

std::chrono::milliseconds parse_duration(std::string_view text) {
    if (text.empty())
        fail(text, "empty (write e.g. \"90s\", \"5m\", \"1h30m\")");
    if (text == "0")
        return std::chrono::milliseconds{0};

    std::int64_t total = 0;
    std::size_t i = 0;
    while (i < text.size()) {
        const std::size_t number_start = i;
        std::int64_t number = 0;
        while (i < text.size() && is_digit(text[i])) {
            if (__builtin_mul_overflow(number, 10, &number) || __builtin_add_overflow(number, text[i] - '0', &number))
                fail(text, "too large");
            ++i;
        }
        if (i == number_start) {
            const char c = text[i];
            if (c == '-')
                fail(text, "negative durations are not allowed");
            if (c == '.' || c == ',')
                fail(text, "fractions are not allowed (write \"1h30m\", not \"1.5h\")");
            fail(text, "expected a number at \"" + std::string(text.substr(i)) + "\"");
        }
        if (i == text.size())
            fail(text,
                 "missing unit after \"" + std::string(text.substr(number_start)) + "\" (units: ms, s, m, h, d, w)");
        if (text[i] == '.' || text[i] == ',')
            fail(text, "fractions are not allowed (write \"1h30m\", not \"1.5h\")");

        const std::size_t unit_start = i;
        while (i < text.size() && is_alpha(text[i]))
            ++i;
        const std::string_view unit_name = text.substr(unit_start, i - unit_start);
        const Unit* unit = nullptr;
        for (const Unit& u : units)
            if (u.name == unit_name)
                unit = &u;
        if (unit == nullptr) {
            if (unit_name.empty())
                fail(text, "unexpected \"" + std::string(text.substr(i, 1)) + "\" after \"" +
                               std::string(text.substr(number_start, i - number_start)) + "\"");
            fail(text, "unknown unit \"" + std::string(unit_name) + "\" (units: ms, s, m, h, d, w)");
        }

        std::int64_t part = 0;
        if (__builtin_mul_overflow(number, unit->ms, &part) || __builtin_add_overflow(total, part, &total))
            fail(text, "too large");
    }
    return std::chrono::milliseconds{total};
}

std::string format_duration(std::chrono::milliseconds d) {
    std::int64_t ms = d.count();
    if (ms == 0)
        return "0";
    std::string out;
    // Work on the magnitude as unsigned so that the most negative value does not overflow.
    std::uint64_t rest = ms < 0 ? std::uint64_t(0) - std::uint64_t(ms) : std::uint64_t(ms);
    if (ms < 0)
        out += '-';
    for (const Unit& u : format_units) {
        const std::uint64_t n = rest / std::uint64_t(u.ms);
        if (n == 0)
            continue;
        out += std::to_string(n);
        out += u.name;
        rest -= n * std::uint64_t(u.ms);
    }
    return out;
}

}  // namespace bartl
