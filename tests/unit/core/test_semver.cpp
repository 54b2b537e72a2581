// SemVer 2.0.0 parsing (§2, §9, §10) and precedence (§11).
#include <catch2/catch.hpp>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/semver.hpp"

using bartl::Version;

namespace {

// The message must say why, so tests match a fragment of it.
void require_invalid(const std::string& text, const std::string& fragment) {
    INFO("input: \"" << text << "\"");
    try {
        Version::parse(text);
        FAIL("parsed although invalid");
    } catch (const std::invalid_argument& e) {
        const std::string msg = e.what();
        INFO("message: " << msg);
        CHECK(msg.find(fragment) != std::string::npos);
        CHECK(msg.find("\"" + text + "\"") != std::string::npos);  // names the input
    }
    CHECK_FALSE(Version::try_parse(text).has_value());
}

}  // namespace

TEST_CASE("semver: parse splits core, pre-release and build", "[semver]") {
    const Version v = Version::parse("1.22.333-rc.1.x-y+build.007");
    CHECK(v.major == 1);
    CHECK(v.minor == 22);
    CHECK(v.patch == 333);
    CHECK(v.prerelease == std::vector<std::string>{"rc", "1", "x-y"});
    CHECK(v.build == std::vector<std::string>{"build", "007"});
    CHECK(v.str() == "1.22.333-rc.1.x-y+build.007");

    const Version max = Version::parse("18446744073709551615.0.18446744073709551615");
    CHECK(max.major == UINT64_MAX);
    CHECK(max.patch == UINT64_MAX);

    // A hyphen after '+' belongs to build metadata, not the pre-release.
    const Version b = Version::parse("1.0.0+meta-valid");
    CHECK(b.prerelease.empty());
    CHECK(b.build == std::vector<std::string>{"meta-valid"});
}

TEST_CASE("semver: invalid inputs name the problem", "[semver]") {
    require_invalid("", "empty");
    require_invalid("1.2", "MAJOR.MINOR.PATCH");
    require_invalid("1", "MAJOR.MINOR.PATCH");
    require_invalid("1.2.3.4", "more than three");
    require_invalid("01.2.3", "leading zero in major");
    require_invalid("1.02.3", "leading zero in minor");
    require_invalid("1.2.03", "leading zero in patch");
    require_invalid("1.2.3-01", "leading zero in numeric pre-release identifier \"01\"");
    require_invalid("1.2.3-", "empty pre-release");
    require_invalid("1.2.3+", "empty build metadata");
    require_invalid("1.2.3-a..b", "empty identifier in pre-release");
    require_invalid("1.2.3+a..b", "empty identifier in build metadata");
    require_invalid("1.2.3-alpha_beta", "invalid character '_'");
    require_invalid("1.2.3+meta+meta", "invalid character '+'");
    require_invalid("v1.2.3", "major version \"v1\" is not a number");
    require_invalid(" 1.2.3", "is not a number");
    require_invalid("1.2.3 ", "is not a number");
    require_invalid("1..3", "empty minor");
    require_invalid("18446744073709551616.0.0", "exceeds 64 bits");
    require_invalid("0.0.99999999999999999999999", "exceeds 64 bits");
}

TEST_CASE("semver: build metadata may have leading zeros, pre-release alphanumerics may start with 0", "[semver]") {
    CHECK(Version::try_parse("1.0.0+001"));
    CHECK(Version::try_parse("1.0.0-0A.is.legal"));
    CHECK(Version::try_parse("1.0.0-alpha.0valid"));
    CHECK(Version::try_parse("1.0.0-0"));
    CHECK(Version::try_parse("0.0.0"));
}

TEST_CASE("semver: the semver.org valid examples parse and print back unchanged", "[semver]") {
    // https://regex101.com/r/Ly7O1x/3 as linked from semver.org FAQ.
    const std::vector<std::string> valid = {
        "0.0.4", "1.2.3", "10.20.30", "1.1.2-prerelease+meta", "1.1.2+meta", "1.1.2+meta-valid",
        "1.0.0-alpha", "1.0.0-beta", "1.0.0-alpha.beta", "1.0.0-alpha.beta.1", "1.0.0-alpha.1",
        "1.0.0-alpha0.valid", "1.0.0-alpha.0valid", "1.0.0-alpha-a.b-c-somethinglong+build.1-aef.1-its-okay",
        "1.0.0-rc.1+build.1", "2.0.0-rc.1+build.123", "1.2.3-beta", "10.2.3-DEV-SNAPSHOT", "1.2.3-SNAPSHOT-123",
        "1.0.0", "2.0.0", "1.1.7", "2.0.0+build.1848", "2.0.1-alpha.1227", "1.0.0-alpha+beta",
        "1.2.3----RC-SNAPSHOT.12.9.1--.12+788", "1.2.3----R-S.12.9.1--.12+meta", "1.2.3----RC-SNAPSHOT.12.9.1--.12",
        "1.0.0+0.build.1-rc.10000aaa-kk-0.1", "1.0.0-0A.is.legal"};
    for (const auto& s : valid) {
        INFO(s);
        const auto v = Version::try_parse(s);
        REQUIRE(v.has_value());
        CHECK(v->str() == s);
    }
    // Valid per the spec but beyond 64 bits: bartl rejects it deliberately.
    CHECK_FALSE(Version::try_parse("99999999999999999999999.999999999999999999.99999999999999999"));
}

TEST_CASE("semver: the semver.org invalid examples are rejected", "[semver]") {
    const std::vector<std::string> invalid = {
        "1", "1.2", "1.2.3-0123", "1.2.3-0123.0123", "1.1.2+.123", "+invalid", "-invalid", "-invalid+invalid",
        "-invalid.01", "alpha", "alpha.beta", "alpha.beta.1", "alpha.1", "alpha+beta", "alpha_beta", "alpha.",
        "alpha..", "beta", "1.0.0-alpha_beta", "-alpha.", "1.0.0-alpha..", "1.0.0-alpha..1", "1.0.0-alpha...1",
        "1.0.0-alpha....1", "1.0.0-alpha.....1", "1.0.0-alpha......1", "1.0.0-alpha.......1", "01.1.1", "1.01.1",
        "1.1.01", "1.2.3.DEV", "1.2-SNAPSHOT", "1.2.31.2.3----RC-SNAPSHOT.12.09.1--..12+788", "1.2-RC-SNAPSHOT",
        "-1.0.3-gamma+b7718", "+justmeta", "9.8.7+meta+meta", "9.8.7-whatever+meta+meta",
        "99999999999999999999999.999999999999999999.99999999999999999----RC-SNAPSHOT.12.09.1--------------------------------..12"};
    for (const auto& s : invalid) {
        INFO(s);
        CHECK_THROWS_AS(Version::parse(s), std::invalid_argument);
        CHECK_FALSE(Version::try_parse(s));
    }
}

TEST_CASE("semver: §11 precedence chain, every pair", "[semver]") {
    const std::vector<std::string> chain = {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
                                            "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0",
                                            "1.0.1-0", "1.0.1", "1.1.0", "1.9.0", "1.10.0", "1.11.0", "2.0.0",
                                            "2.1.0", "2.1.1", "10.0.0"};
    for (std::size_t i = 0; i < chain.size(); ++i)
        for (std::size_t j = 0; j < chain.size(); ++j) {
            INFO(chain[i] << " vs " << chain[j]);
            const Version a = Version::parse(chain[i]), b = Version::parse(chain[j]);
            const int expected = i < j ? -1 : (i > j ? 1 : 0);
            CHECK(bartl::compare(a, b) == expected);
            CHECK((a < b) == (i < j));
            CHECK((a == b) == (i == j));
        }
}

TEST_CASE("semver: precedence details", "[semver]") {
    auto cmp = [](const char* a, const char* b) { return bartl::compare(Version::parse(a), Version::parse(b)); };
    CHECK(cmp("1.0.0+a", "1.0.0+b") == 0);           // build ignored
    CHECK(cmp("1.0.0-rc.1+a", "1.0.0-rc.1") == 0);
    CHECK(cmp("1.0.0-2", "1.0.0-10") < 0);           // numeric, not lexical
    CHECK(cmp("1.0.0-999", "1.0.0-a") < 0);          // numeric below alphanumeric
    CHECK(cmp("1.0.0-a", "1.0.0-1") > 0);
    CHECK(cmp("1.0.0-Z", "1.0.0-a") < 0);            // ASCII order
    CHECK(cmp("1.0.0-a-b", "1.0.0-a") > 0);
    CHECK(cmp("1.0.0-1a", "1.0.0-2") > 0);           // "1a" is alphanumeric
    // Numeric identifiers longer than 64 bits still compare numerically.
    CHECK(cmp("1.0.0-99999999999999999999999", "1.0.0-100000000000000000000000") < 0);
    CHECK(cmp("0.0.18446744073709551615", "0.0.18446744073709551614") > 0);
    CHECK(cmp("2.0.0-rc.1", "2.0.0") < 0);
    CHECK(cmp("2.0.0-rc.1", "1.99.99") > 0);

    // sort agrees with the operators.
    std::vector<Version> vs;
    for (const char* s : {"1.0.0", "1.0.0-rc.1", "1.0.0-alpha", "0.9.9", "1.0.0-beta.11", "1.0.0-beta.2"})
        vs.push_back(Version::parse(s));
    std::sort(vs.begin(), vs.end());
    std::vector<std::string> got;
    for (const auto& v : vs) got.push_back(v.str());
    CHECK(got == std::vector<std::string>{"0.9.9", "1.0.0-alpha", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1",
                                          "1.0.0"});
}
