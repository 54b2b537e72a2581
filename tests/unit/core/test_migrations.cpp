// Migration script names and (from, to] selection in SemVer order.
#include <catch2/catch.hpp>

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

std::vector<std::string> select(const std::vector<std::string>& files, const char* from, const char* to) {
    return names(select_migrations(parse_all(files), Version::parse(from), Version::parse(to)));
}

}  // namespace

TEST_CASE("migrations: file names", "[migrations]") {
    auto s = parse_migration_name("2.0.0");
    REQUIRE(s);
    CHECK(s->version.str() == "2.0.0");
    CHECK(s->file_name == "2.0.0");

    s = parse_migration_name("2.0.0-add-tags");
    REQUIRE(s);
    CHECK(s->version.str() == "2.0.0");  // the slug is not a pre-release
    CHECK(s->version.prerelease.empty());
    CHECK(s->file_name == "2.0.0-add-tags");

    s = parse_migration_name("10.20.30-rc.1.sh");
    REQUIRE(s);
    CHECK(s->version.str() == "10.20.30");

    for (const char* bad : {"", "2.0", "v2.0.0", "02.0.0", "2.00.0", "2.0.0.sh", "2.0.0-", "2.0.0+build", ".2.0.0",
                            ".hidden", "..", ".", "2.0.0~", "2.0.0 ", " 2.0.0", "README", "2..0", "2.0.0.1",
                            "99999999999999999999.0.0"}) {
        INFO("\"" << bad << "\"");
        CHECK_FALSE(parse_migration_name(bad).has_value());
    }
}

TEST_CASE("migrations: (from, to] in SemVer order", "[migrations]") {
    const std::vector<std::string> files = {"2.10.0-big", "1.1.0", "2.9.0", "2.0.0-add-tags", "3.0.0", "1.0.0"};
    CHECK(select(files, "1.0.0", "3.0.0") == std::vector<std::string>{"1.1.0", "2.0.0-add-tags", "2.9.0",
                                                                      "2.10.0-big", "3.0.0"});
    CHECK(select(files, "1.1.0", "2.9.0") == std::vector<std::string>{"2.0.0-add-tags", "2.9.0"});
    CHECK(select(files, "2.9.0", "2.9.0").empty());
    CHECK(select(files, "3.0.0", "4.0.0").empty());
    CHECK(select(files, "0.1.0", "1.0.0") == std::vector<std::string>{"1.0.0"});
    // Between two scripts.
    CHECK(select(files, "1.5.0", "2.5.0") == std::vector<std::string>{"2.0.0-add-tags"});
    CHECK(select({}, "1.0.0", "2.0.0").empty());
}

TEST_CASE("migrations: pre-release versions at either end", "[migrations]") {
    const std::vector<std::string> files = {"1.0.0", "2.0.0-add-tags", "2.1.0"};
    // Engine 2.0.0-rc.1 is below 2.0.0, so the 2.0.0 script is not yet run.
    CHECK(select(files, "0.9.0", "2.0.0-rc.1") == std::vector<std::string>{"1.0.0"});
    // From a pre-release state, the release's script runs.
    CHECK(select(files, "2.0.0-rc.1", "2.0.0") == std::vector<std::string>{"2.0.0-add-tags"});
    CHECK(select(files, "2.0.0-rc.1", "2.1.0-beta") == std::vector<std::string>{"2.0.0-add-tags"});
    // Build metadata does not count: state 2.0.0+x is 2.0.0.
    CHECK(select(files, "2.0.0+x", "2.1.0") == std::vector<std::string>{"2.1.0"});
}

TEST_CASE("migrations: duplicate versions name both files", "[migrations]") {
    const auto scripts = parse_all({"1.0.0", "2.0.0-a", "3.0.0", "2.0.0-b"});
    try {
        select_migrations(scripts, Version::parse("0.1.0"), Version::parse("3.0.0"));
        FAIL("duplicate accepted");
    } catch (const std::invalid_argument& e) {
        const std::string msg = e.what();
        CHECK(msg.find("2.0.0") != std::string::npos);
        CHECK(msg.find("\"2.0.0-a\"") != std::string::npos);
        CHECK(msg.find("\"2.0.0-b\"") != std::string::npos);
    }
    // Even when the duplicate lies outside the selected range.
    CHECK_THROWS_AS(select_migrations(scripts, Version::parse("2.5.0"), Version::parse("3.0.0")),
                    std::invalid_argument);
}
