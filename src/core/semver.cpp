// SemVer 2.0.0 parsing and precedence. The grammar is small enough that a
// hand-written scanner gives better error messages than the regex from
// semver.org, and it avoids std::regex's cost and stack depth.
#include "core/semver.hpp"

#include <algorithm>
#include <charconv>
#include <stdexcept>

namespace bartl {
namespace {

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// §9/§10: identifiers comprise only ASCII alphanumerics and hyphens.
bool is_ident_char(char c) noexcept {
    return is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-';
}

bool all_digits(std::string_view s) noexcept {
    return !s.empty() && std::all_of(s.begin(), s.end(), is_digit);
}

[[noreturn]] void fail(std::string_view text, const std::string& what) {
    throw std::invalid_argument("invalid version \"" + std::string(text) + "\": " + what);
}

// §2: non-negative integer, no leading zeros; bartl stores it in 64 bits.
std::uint64_t parse_core_number(std::string_view text, std::string_view part, const char* name) {
    if (part.empty()) fail(text, std::string("empty ") + name + " version");
    if (!all_digits(part))
        fail(text, std::string(name) + " version \"" + std::string(part) + "\" is not a number");
    if (part.size() > 1 && part.front() == '0')
        fail(text, std::string("leading zero in ") + name + " version \"" + std::string(part) + "\"");
    std::uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
    if (ec == std::errc::result_out_of_range)
        fail(text, std::string(name) + " version \"" + std::string(part) + "\" exceeds 64 bits");
    return value;
}

// Splits a pre-release (§9) or build (§10) section into identifiers and checks them.
std::vector<std::string> parse_identifiers(std::string_view text, std::string_view section,
                                           const char* name, char separator, bool numeric_no_leading_zero) {
    std::vector<std::string> out;
    if (section.empty()) fail(text, std::string("empty ") + name + " after '" + separator + "'");
    std::size_t start = 0;
    for (;;) {
        std::size_t dot = section.find('.', start);
        std::string_view id = section.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (id.empty()) fail(text, std::string("empty identifier in ") + name + " \"" + std::string(section) + "\"");
        for (char c : id)
            if (!is_ident_char(c))
                fail(text, std::string("invalid character '") + c + "' in " + name + " identifier \"" +
                               std::string(id) + "\" (allowed: 0-9 A-Z a-z -)");
        if (numeric_no_leading_zero && id.size() > 1 && id.front() == '0' && all_digits(id))
            fail(text, std::string("leading zero in numeric ") + name + " identifier \"" + std::string(id) + "\"");
        out.emplace_back(id);
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }
    return out;
}

// §11.4.1-3 for one identifier pair. Numeric identifiers have no leading zeros,
// so comparing length then digits compares them numerically without overflow.
int compare_identifier(const std::string& a, const std::string& b) noexcept {
    const bool an = all_digits(a), bn = all_digits(b);
    if (an && bn) {
        if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
        return a.compare(b) < 0 ? -1 : (a.compare(b) > 0 ? 1 : 0);
    }
    if (an != bn) return an ? -1 : 1;
    const int c = a.compare(b);  // ASCII order: std::string compares as unsigned char
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

}  // namespace

Version Version::parse(std::string_view text) {
    if (text.empty()) fail(text, "empty string");
    Version v;

    std::string_view rest = text;
    const std::size_t plus = rest.find('+');
    if (plus != std::string_view::npos) {
        v.build = parse_identifiers(text, rest.substr(plus + 1), "build metadata", '+', false);
        rest = rest.substr(0, plus);
    }
    // The first '-' ends the core: later ones belong to pre-release identifiers.
    const std::size_t dash = rest.find('-');
    if (dash != std::string_view::npos) {
        v.prerelease = parse_identifiers(text, rest.substr(dash + 1), "pre-release", '-', true);
        rest = rest.substr(0, dash);
    }

    const std::size_t d1 = rest.find('.');
    const std::size_t d2 = d1 == std::string_view::npos ? d1 : rest.find('.', d1 + 1);
    if (d1 == std::string_view::npos || d2 == std::string_view::npos)
        fail(text, "expected MAJOR.MINOR.PATCH, got \"" + std::string(rest) + "\"");
    if (rest.find('.', d2 + 1) != std::string_view::npos)
        fail(text, "more than three numbers in \"" + std::string(rest) + "\" (expected MAJOR.MINOR.PATCH)");
    v.major = parse_core_number(text, rest.substr(0, d1), "major");
    v.minor = parse_core_number(text, rest.substr(d1 + 1, d2 - d1 - 1), "minor");
    v.patch = parse_core_number(text, rest.substr(d2 + 1), "patch");
    return v;
}

std::optional<Version> Version::try_parse(std::string_view text) noexcept {
    try {
        return parse(text);
    } catch (...) {  // invalid_argument, or bad_alloc: either way "not a version"
        return std::nullopt;
    }
}

std::string Version::str() const {
    std::string s = std::to_string(major) + '.' + std::to_string(minor) + '.' + std::to_string(patch);
    for (std::size_t i = 0; i < prerelease.size(); ++i) s += (i == 0 ? '-' : '.') + prerelease[i];
    for (std::size_t i = 0; i < build.size(); ++i) s += (i == 0 ? '+' : '.') + build[i];
    return s;
}

int compare(const Version& a, const Version& b) noexcept {
    if (a.major != b.major) return a.major < b.major ? -1 : 1;
    if (a.minor != b.minor) return a.minor < b.minor ? -1 : 1;
    if (a.patch != b.patch) return a.patch < b.patch ? -1 : 1;
    // §11.3: a pre-release has lower precedence than the release.
    if (a.prerelease.empty() != b.prerelease.empty()) return a.prerelease.empty() ? 1 : -1;
    const std::size_t n = std::min(a.prerelease.size(), b.prerelease.size());
    for (std::size_t i = 0; i < n; ++i)
        if (const int c = compare_identifier(a.prerelease[i], b.prerelease[i]); c != 0) return c;
    // §11.4.4: the larger set of fields wins when all preceding ones are equal.
    if (a.prerelease.size() != b.prerelease.size()) return a.prerelease.size() < b.prerelease.size() ? -1 : 1;
    return 0;
}

}  // namespace bartl
