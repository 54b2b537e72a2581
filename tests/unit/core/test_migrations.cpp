// Migration script names and the pending-script rule (core/migrations.hpp), including the
// pre-release cases of issue "observed facts" item 8.
#include <catch2/catch.hpp>

#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/migrations.hpp"

using namespace bartl;

namespace {

std::vector<MigrationScript> parse_all(const std::vector<std::string>& names) {
    std::vector<MigrationScript> out;
    for (const auto& n : names) {
        auto s = parse_migration_name(n);
        INFO(n);
        REQUIRE(s.has_value());
        out.push_back(*s);
    }
    return out;
}

std::vector<std::string> names(const std::vector<MigrationScript>& scripts) {
    std::vector<std::string> out;
    for (const auto& s : scripts) out.push_back(s.file_name);
    return out;
}

std::vector<std::string> pending(const std::vector<std::string>& files, const char* state, const char* engine,
                                 const std::set<std::string>& applied = {}) {
    return names(pending_migrations(parse_all(files), Version::parse(state), Version::parse(engine), applied));
}

}  // namespace

TEST_CASE("migrations: file names", "[migrations]") {
    struct Case {
        const char* name;
        const char* version;
        const char* slug;
    };
    for (const Case& c : {Case{"2.0.0", "2.0.0", ""},
                          Case{"2.0.0_add-tags", "2.0.0", "add-tags"},
                          Case{"2.0.0-rc.1_add-tags", "2.0.0-rc.1", "add-tags"},
                          Case{"2.1.0-rc.1_fix_index", "2.1.0-rc.1", "fix_index"},
                          Case{"2.0.0-rc.1", "2.0.0-rc.1", ""},
                          Case{"2.0.0-beta", "2.0.0-beta", ""},
                          Case{"2.0.0-alpha.3", "2.0.0-alpha.3", ""},
                          Case{"2.0.0-1", "2.0.0-1", ""},
                          Case{"2.0.0-RC2", "2.0.0-RC2", ""},
                          // The older VERSION-slug naming, kept where it is no pre-release:
                          Case{"2.0.0-add-tags", "2.0.0", "add-tags"},
                          Case{"10.20.30-big.data", "10.20.30", "big.data"},
                          Case{"2.0.0-add tags", "2.0.0", "add tags"}}) {
        INFO(c.name);
        auto s = parse_migration_name(c.name);
        REQUIRE(s);
        CHECK(s->version.str() == c.version);
        CHECK(s->slug == c.slug);
        CHECK(s->file_name == c.name);
    }
    for (const char* bad : {"", "2.0", "v2.0.0", "02.0.0", "2.00.0", "2.0.0.sh", "2.0.0-", "2.0.0_", "2.0.0+build",
                            "2.0.0+b_x", ".2.0.0", ".hidden", "..", ".", "2.0.0~", "2.0.0 ", " 2.0.0", "README",
                            "2..0", "2.0.0.1", "_2.0.0", "2.0_x", "99999999999999999999.0.0"}) {
        INFO("\"" << bad << "\"");
        CHECK_FALSE(parse_migration_name(bad).has_value());
    }
}

TEST_CASE("migrations: due for a version", "[migrations]") {
    auto due = [](const char* script, const char* v) { return migration_due(Version::parse(script), Version::parse(v)); };
    CHECK(due("1.0.0", "1.0.0"));
    CHECK(due("1.0.0", "2.0.0"));
    CHECK_FALSE(due("2.0.0", "1.9.9"));
    // A pre-release engine runs the scripts of its release...
    CHECK(due("2.0.0", "2.0.0-rc.1"));
    CHECK(due("2.0.0", "2.0.0-alpha"));
    // ...but not those of a later pre-release or a later release.
    CHECK_FALSE(due("2.0.0-rc.2", "2.0.0-rc.1"));
    CHECK(due("2.0.0-rc.1", "2.0.0-rc.1"));
    CHECK(due("2.0.0-rc.1", "2.0.0"));
    CHECK(due("2.0.1", "2.0.1-rc.1"));
    CHECK_FALSE(due("2.1.0", "2.0.0-rc.1"));
    CHECK(due("2.0.0+meta", "2.0.0"));
}

TEST_CASE("migrations: pending scripts in SemVer order", "[migrations]") {
    const std::vector<std::string> files = {"2.10.0_big", "1.1.0", "2.9.0", "2.0.0_add-tags", "3.0.0", "1.0.0"};
    CHECK(pending(files, "1.0.0", "3.0.0") ==
          std::vector<std::string>{"1.1.0", "2.0.0_add-tags", "2.9.0", "2.10.0_big", "3.0.0"});
    CHECK(pending(files, "1.1.0", "2.9.0") == std::vector<std::string>{"2.0.0_add-tags", "2.9.0"});
    CHECK(pending(files, "2.9.0", "2.9.0").empty());
    CHECK(pending(files, "3.0.0", "4.0.0").empty());
    CHECK(pending(files, "0.1.0", "1.0.0") == std::vector<std::string>{"1.0.0"});
    // Between two scripts.
    CHECK(pending(files, "1.5.0", "2.5.0") == std::vector<std::string>{"2.0.0_add-tags"});
    CHECK(pending({}, "1.0.0", "2.0.0").empty());
    // An applied script never runs again, even where the range would include it.
    CHECK(pending(files, "1.0.0", "3.0.0", {"2.0.0_add-tags", "2.9.0"}) ==
          std::vector<std::string>{"1.1.0", "2.10.0_big", "3.0.0"});
}

TEST_CASE("migrations: pre-release engines and states", "[migrations]") {
    const std::vector<std::string> files = {"1.0.0", "2.0.0-add-tags", "2.1.0"};
    // Issue item 8: engine 2.0.0-rc.1 runs the 2.0.0 script (it ships the 2.0.0 schema).
    CHECK(pending(files, "1.5.0", "2.0.0-rc.1") == std::vector<std::string>{"2.0.0-add-tags"});
    // ...and going on to 2.0.0 runs nothing twice.
    CHECK(pending(files, "2.0.0-rc.1", "2.0.0").empty());
    // 2.1.0-beta runs the 2.1.0 script; the 2.0.0 one came with state 2.0.0-rc.1.
    CHECK(pending(files, "2.0.0-rc.1", "2.1.0-beta") == std::vector<std::string>{"2.1.0"});
    CHECK(pending(files, "2.0.0-rc.1", "2.1.0") == std::vector<std::string>{"2.1.0"});
    // A script named for a pre-release runs for that pre-release and later.
    const std::vector<std::string> pre = {"2.0.0-rc.1_fix", "2.0.0-rc.2_more", "2.0.0"};
    CHECK(pending(pre, "1.0.0", "2.0.0-rc.1") == std::vector<std::string>{"2.0.0-rc.1_fix", "2.0.0"});
    CHECK(pending(pre, "2.0.0-rc.1", "2.0.0-rc.2") == std::vector<std::string>{"2.0.0-rc.2_more"});
    CHECK(pending(pre, "2.0.0-rc.2", "2.0.0").empty());
    CHECK(pending(pre, "1.0.0", "2.0.0") == std::vector<std::string>{"2.0.0-rc.1_fix", "2.0.0-rc.2_more", "2.0.0"});
    // Build metadata does not count: state 2.0.0+x is 2.0.0.
    CHECK(pending(files, "2.0.0+x", "2.1.0") == std::vector<std::string>{"2.1.0"});
}

TEST_CASE("migrations: the state version after a step never passes the engine", "[migrations]") {
    const auto s = parse_all({"2.0.0_add-tags"}).front();
    CHECK(version_after(s, Version::parse("2.0.0-rc.1")).str() == "2.0.0-rc.1");
    CHECK(version_after(s, Version::parse("2.0.0")).str() == "2.0.0");
    CHECK(version_after(s, Version::parse("3.0.0")).str() == "2.0.0");
}

TEST_CASE("migrations: duplicate versions name both files", "[migrations]") {
    const auto scripts = parse_all({"1.0.0", "2.0.0_a", "3.0.0", "2.0.0-b"});
    try {
        pending_migrations(scripts, Version::parse("0.1.0"), Version::parse("3.0.0"), {});
        FAIL("duplicate accepted");
    } catch (const std::invalid_argument& e) {
        const std::string msg = e.what();
        CHECK(msg.find("2.0.0") != std::string::npos);
        CHECK(msg.find("\"2.0.0_a\"") != std::string::npos);
        CHECK(msg.find("\"2.0.0-b\"") != std::string::npos);
    }
    // Even when the duplicate lies outside the pending range.
    CHECK_THROWS_AS(pending_migrations(scripts, Version::parse("2.5.0"), Version::parse("3.0.0"), {}),
                    std::invalid_argument);
}
