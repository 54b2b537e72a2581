// RFC 3339 UTC timestamps with the C++20 calendar types. GCC 12 has neither
// <format> nor std::chrono::parse, and strftime/strptime depend on the C
// locale and the TZ environment, so the fixed-width fields are handled here.
#include "core/time.hpp"

#include <stdexcept>

namespace bartl {
namespace {

using namespace std::chrono;

void put_digits(std::string& out, long long value, int width) {
    std::string s(static_cast<std::size_t>(width), '0');
    for (int i = width - 1; i >= 0 && value > 0; --i, value /= 10) s[static_cast<std::size_t>(i)] = char('0' + value % 10);
    out += s;
}

struct Fields {
    year_month_day ymd;
    hh_mm_ss<seconds> hms;
};

Fields split(sys_seconds t, const char* what) {
    const sys_days day = floor<days>(t);
    const year_month_day ymd{day};
    // Both formats have a four-digit year.
    if (int(ymd.year()) < 0 || int(ymd.year()) > 9999)
        throw std::out_of_range(std::string(what) + ": year " + std::to_string(int(ymd.year())) +
                                " is outside 0000-9999");
    return {ymd, hh_mm_ss<seconds>{t - day}};
}

std::string format(sys_seconds t, bool compact) {
    const Fields f = split(t, compact ? "format_compact" : "format_rfc3339");
    const char* date_sep = compact ? "" : "-";
    const char* time_sep = compact ? "" : ":";
    std::string s;
    put_digits(s, int(f.ymd.year()), 4);
    s += date_sep;
    put_digits(s, unsigned(f.ymd.month()), 2);
    s += date_sep;
    put_digits(s, unsigned(f.ymd.day()), 2);
    s += 'T';
    put_digits(s, f.hms.hours().count(), 2);
    s += time_sep;
    put_digits(s, f.hms.minutes().count(), 2);
    s += time_sep;
    put_digits(s, f.hms.seconds().count(), 2);
    s += 'Z';
    return s;
}

[[noreturn]] void fail(std::string_view text, const std::string& expected, const std::string& what) {
    throw std::invalid_argument("invalid timestamp \"" + std::string(text) + "\" (expected " + expected + "): " + what);
}

// Reads `width` ASCII digits at `pos`.
int digits(std::string_view text, std::size_t pos, std::size_t width, const std::string& expected, const char* name) {
    int v = 0;
    for (std::size_t i = pos; i < pos + width; ++i) {
        if (text[i] < '0' || text[i] > '9') fail(text, expected, std::string(name) + " is not a number");
        v = v * 10 + (text[i] - '0');
    }
    return v;
}

sys_seconds parse(std::string_view text, bool compact) {
    const std::string expected = compact ? "YYYYMMDDTHHMMSSZ" : "YYYY-MM-DDTHH:MM:SSZ";
    if (text.size() != expected.size()) fail(text, expected, "wrong length");
    // Separator positions come from the pattern itself; RFC 3339 §5.6 allows lower-case t and z.
    for (std::size_t i = 0; i < expected.size(); ++i) {
        const char e = expected[i];
        if (e == '-' || e == ':' || e == 'T' || e == 'Z') {
            const bool ok = text[i] == e || ((e == 'T' || e == 'Z') && text[i] == e + ('a' - 'A'));
            if (!ok) fail(text, expected, std::string("expected '") + e + "' at offset " + std::to_string(i));
        }
    }
    const std::size_t dp = compact ? 0 : 1, tp = compact ? 0 : 1;  // separator widths
    const int y = digits(text, 0, 4, expected, "year");
    const int mo = digits(text, 4 + dp, 2, expected, "month");
    const int d = digits(text, 6 + 2 * dp, 2, expected, "day");
    const std::size_t t0 = 9 + 2 * dp;  // after 'T'
    const int h = digits(text, t0, 2, expected, "hour");
    const int mi = digits(text, t0 + 2 + tp, 2, expected, "minute");
    const int s = digits(text, t0 + 4 + 2 * tp, 2, expected, "second");

    const year_month_day ymd{year{y}, month{unsigned(mo)}, day{unsigned(d)}};
    if (!ymd.ok()) fail(text, expected, "no such date");
    if (h > 23) fail(text, expected, "hour out of range");
    if (mi > 59) fail(text, expected, "minute out of range");
    // sys_seconds counts no leap seconds, so 23:59:60 has no value to map to.
    if (s > 59) fail(text, expected, "second out of range (leap seconds are not supported)");
    return sys_days{ymd} + hours{h} + minutes{mi} + seconds{s};
}

}  // namespace

std::string format_rfc3339(sys_seconds t) { return format(t, false); }

std::string format_rfc3339_ms(sys_time<milliseconds> t) {
    const auto secs = floor<seconds>(t);
    std::string s = format(secs, false);
    s.pop_back();  // 'Z'
    s += '.';
    put_digits(s, (t - secs).count(), 3);
    s += 'Z';
    return s;
}

sys_time<milliseconds> parse_rfc3339_ms(std::string_view text) {
    // "YYYY-MM-DDTHH:MM:SS" is 19 characters; a fraction may follow before the Z.
    if (text.size() > 21 && text[19] == '.') {
        const std::size_t z = text.size() - 1;
        const std::string_view frac = text.substr(20, z - 20);
        if (frac.size() > 9) fail(text, "YYYY-MM-DDTHH:MM:SS[.fraction]Z", "fraction longer than 9 digits");
        long long ms = 0;
        for (std::size_t i = 0; i < frac.size(); ++i) {
            if (frac[i] < '0' || frac[i] > '9') fail(text, "YYYY-MM-DDTHH:MM:SS[.fraction]Z", "fraction is not a number");
            if (i < 3) ms = ms * 10 + (frac[i] - '0');
        }
        for (std::size_t i = frac.size(); i < 3; ++i) ms *= 10;
        std::string whole(text.substr(0, 19));
        whole += text[z];
        return parse(whole, false) + milliseconds{ms};
    }
    return parse(text, false);
}

sys_seconds parse_rfc3339(std::string_view text) { return floor<seconds>(parse_rfc3339_ms(text)); }

std::string format_compact(sys_seconds t) { return format(t, true); }

sys_seconds parse_compact(std::string_view text) { return parse(text, true); }

}  // namespace bartl
