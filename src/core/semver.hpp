// Semantic Versioning 2.0.0 (https://semver.org/spec/v2.0.0.html): parsing
// (§2, §9, §10) and precedence (§11). Pure: no I/O.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bartl {

/// A SemVer 2.0.0 version. Build metadata is kept for display but ignored by precedence (§10).
struct Version {
    std::uint64_t major = 0;
    std::uint64_t minor = 0;
    std::uint64_t patch = 0;
    std::vector<std::string> prerelease;  ///< dot-separated identifiers after '-' (§9)
    std::vector<std::string> build;       ///< dot-separated identifiers after '+' (§10)

    /// Parses a full SemVer string ("1.2.3-rc.1+build.5"); no leading 'v', no
    /// surrounding whitespace. Throws std::invalid_argument whose message says
    /// what is wrong ("leading zero in minor version", ...). MAJOR, MINOR and PATCH above
    /// 2^64-1 are rejected although §2 sets no limit; numeric pre-release identifiers have
    /// no such limit.
    static Version parse(std::string_view text);
    /// As parse(), but returns std::nullopt instead of throwing.
    static std::optional<Version> try_parse(std::string_view text) noexcept;

    /// Canonical text form, including build metadata.
    std::string str() const;
};

/// SemVer precedence (§11): <0, 0, >0. Build metadata is ignored, so
/// "1.0.0+a" and "1.0.0+b" compare equal.
int compare(const Version& a, const Version& b) noexcept;

inline bool operator==(const Version& a, const Version& b) noexcept { return compare(a, b) == 0; }
inline std::strong_ordering operator<=>(const Version& a, const Version& b) noexcept {
    return compare(a, b) <=> 0;
}

}  // namespace bartl
