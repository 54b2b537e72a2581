#include "core/sftp_listing.hpp"

#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <vector>

namespace bartl {
namespace {

constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

bool all_digits(std::string_view s) {
    return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

/// Whitespace-separated tokens with where each ends in the line.
struct Token {
    std::string_view text;
    std::size_t end;
};

std::vector<Token> tokens(std::string_view line) {
    std::vector<Token> out;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && line[i] == ' ') ++i;
        const std::size_t start = i;
        while (i < line.size() && line[i] != ' ') ++i;
        if (i > start) out.push_back({line.substr(start, i - start), i});
    }
    return out;
}

/// Seconds since the epoch of a UTC civil time; std::nullopt for a day the month lacks.
std::optional<std::int64_t> civil_seconds(int year, unsigned month, unsigned day, unsigned hour, unsigned minute) {
    using namespace std::chrono;
    const year_month_day ymd{std::chrono::year{year} / std::chrono::month{month} / std::chrono::day{day}};
    if (!ymd.ok()) return std::nullopt;
    return static_cast<std::int64_t>(sys_days(ymd).time_since_epoch() / seconds(1)) + hour * 3600 + minute * 60;
}

int year_of(std::int64_t t) {
    using namespace std::chrono;
    const year_month_day ymd{floor<days>(sys_seconds(seconds(t)))};
    return static_cast<int>(ymd.year());
}

}  // namespace

std::optional<SftpListEntry> parse_sftp_long_entry(std::string_view line, std::int64_t now) {
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
    const auto t = tokens(line);
    if (t.size() < 6 || t[0].text.size() < 10) return std::nullopt;
    SftpListEntry e;
    e.type = t[0].text[0];
    // The leftmost "SIZE MON DAY HH:MM|YEAR" after the mode and link count: the owner and group
    // before it are free text, and the name after it comes last.
    for (std::size_t i = 2; i + 4 <= t.size(); ++i) {
        std::uint64_t size = 0;
        const auto sz = t[i].text;
        if (!all_digits(sz) || std::from_chars(sz.data(), sz.data() + sz.size(), size).ec != std::errc()) continue;
        std::size_t month = 0;
        while (month < kMonths.size() && kMonths[month] != t[i + 1].text) ++month;
        if (month == kMonths.size()) continue;
        const auto day_text = t[i + 2].text;
        if (!all_digits(day_text) || day_text.size() > 2) continue;
        const unsigned day = static_cast<unsigned>(std::stoul(std::string(day_text)));
        if (day < 1 || day > 31) continue;
        const auto when = t[i + 3].text;
        const std::size_t name_at = t[i + 3].end + 1;  // exactly one space before the name
        unsigned hour = 0, minute = 0;
        int year = 0;
        if (when.size() == 5 && when[2] == ':' && all_digits(when.substr(0, 2)) && all_digits(when.substr(3))) {
            hour = static_cast<unsigned>(std::stoul(std::string(when.substr(0, 2))));
            minute = static_cast<unsigned>(std::stoul(std::string(when.substr(3))));
            if (hour > 23 || minute > 59) continue;
            e.clock_shown = true;
        } else if (when.size() == 4 && all_digits(when)) {
            year = std::stoi(std::string(when));
        } else {
            continue;
        }
        if (name_at >= line.size()) return std::nullopt;  // no name
        std::string_view name = line.substr(name_at);
        if (e.type == 'l') {
            if (const auto arrow = name.find(" -> "); arrow != std::string_view::npos) name = name.substr(0, arrow);
        }
        if (name.empty()) return std::nullopt;
        e.name = std::string(name);
        e.size = size;
        const auto mon = static_cast<unsigned>(month + 1);
        std::optional<std::int64_t> at = std::nullopt;
        if (e.clock_shown) {
            // Shown with the time of day: within the last six months of the server's clock. Feb
            // 29 exists once in four years.
            for (year = year_of(now) + 1; year >= year_of(now) - 8 && !at; --year) {
                const auto t = civil_seconds(year, mon, day, hour, minute);
                if (t && *t <= now + 2 * 86400) at = t;
            }
        } else {
            at = civil_seconds(year, mon, day, 0, 0);
        }
        if (!at) continue;
        e.listed_time = at.value_or(0);
        return e;
    }
    return std::nullopt;
}

std::int64_t sftp_utc_offset(std::int64_t listed_time, std::int64_t exact) {
    // The listing cuts the seconds off: the true local time is in [listed, listed + 60).
    const double diff = static_cast<double>(listed_time + 30 - exact);
    return static_cast<std::int64_t>(std::llround(diff / 900.0)) * 900;
}

}  // namespace bartl
