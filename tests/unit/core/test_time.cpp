// RFC 3339 UTC and compact timestamps.
#include <catch2/catch.hpp>

#include <random>
#include <stdexcept>
#include <string>

#include "core/time.hpp"

using namespace bartl;
using namespace std::chrono;

namespace {

sys_seconds at(int y, unsigned m, unsigned d, int hh, int mm, int ss) {
    return sys_days{year{y} / month{m} / day{d}} + hours{hh} + minutes{mm} + seconds{ss};
}

}  // namespace

TEST_CASE("time: known instants", "[time]") {
    CHECK(format_rfc3339(sys_seconds{}) == "1970-01-01T00:00:00Z");
    CHECK(format_compact(sys_seconds{}) == "19700101T000000Z");
    // 1_700_000_000 is 2023-11-14T22:13:20Z (date -u -d @1700000000).
    CHECK(format_rfc3339(sys_seconds{seconds{1700000000}}) == "2023-11-14T22:13:20Z");
    CHECK(format_rfc3339(at(2026, 11, 30, 3, 9, 4)) == "2026-11-30T03:09:04Z");
    CHECK(format_compact(at(2026, 11, 30, 3, 9, 4)) == "20261130T030904Z");
    CHECK(format_rfc3339(sys_seconds{seconds{-1}}) == "1969-12-31T23:59:59Z");
    CHECK(format_rfc3339(at(2024, 2, 29, 23, 59, 59)) == "2024-02-29T23:59:59Z");
    CHECK(format_rfc3339(at(0, 1, 1, 0, 0, 0)) == "0000-01-01T00:00:00Z");
    CHECK(format_rfc3339(at(9999, 12, 31, 23, 59, 59)) == "9999-12-31T23:59:59Z");

    CHECK(parse_rfc3339("2023-11-14T22:13:20Z") == sys_seconds{seconds{1700000000}});
    CHECK(parse_rfc3339("2023-11-14t22:13:20z") == sys_seconds{seconds{1700000000}});
    CHECK(parse_compact("20231114T221320Z") == sys_seconds{seconds{1700000000}});
    CHECK(parse_rfc3339("1969-12-31T23:59:59Z") == sys_seconds{seconds{-1}});
    CHECK(parse_rfc3339("2000-02-29T00:00:00Z") == at(2000, 2, 29, 0, 0, 0));
}

TEST_CASE("time: years RFC 3339 cannot write", "[time]") {
    CHECK_THROWS_AS(format_rfc3339(at(10000, 1, 1, 0, 0, 0)), std::out_of_range);
    CHECK_THROWS_AS(format_compact(at(-1, 12, 31, 23, 59, 59)), std::out_of_range);
}

TEST_CASE("time: round trip", "[time]") {
    std::mt19937_64 rng(42);
    // 0000-01-01 .. 9999-12-31
    std::uniform_int_distribution<long long> dist(-62167219200LL, 253402300799LL);
    for (int i = 0; i < 20000; ++i) {
        const sys_seconds t{seconds{dist(rng)}};
        const std::string s = format_rfc3339(t);
        INFO(s);
        REQUIRE(parse_rfc3339(s) == t);
        REQUIRE(parse_compact(format_compact(t)) == t);
    }
}

TEST_CASE("time: malformed input is rejected with the reason", "[time]") {
    auto msg = [](const char* text) -> std::string {
        try {
            parse_rfc3339(text);
        } catch (const std::invalid_argument& e) {
            return e.what();
        }
        FAIL("accepted \"" << text << "\"");
        return "";
    };
    CHECK_THAT(msg(""), Catch::Contains("wrong length"));
    CHECK_THAT(msg("2026-11-30T03:09:04"), Catch::Contains("wrong length"));
    CHECK_THAT(msg("2026-11-30T03:09:04+00:00"), Catch::Contains("wrong length"));
    CHECK_THAT(msg("2026-11-30 03:09:04Z"), Catch::Contains("expected 'T' at offset 10"));
    CHECK_THAT(msg("2026-11-30T03:09:04X"), Catch::Contains("expected 'Z'"));
    CHECK_THAT(msg("2026/11/30T03:09:04Z"), Catch::Contains("expected '-'"));
    CHECK_THAT(msg("20261130T030904Z"), Catch::Contains("wrong length"));
    CHECK_THAT(msg("2O26-11-30T03:09:04Z"), Catch::Contains("year is not a number"));
    CHECK_THAT(msg("+026-11-30T03:09:04Z"), Catch::Contains("year is not a number"));
    CHECK_THAT(msg("2026-1a-30T03:09:04Z"), Catch::Contains("month is not a number"));
    CHECK_THAT(msg("2026-13-01T00:00:00Z"), Catch::Contains("no such date"));
    CHECK_THAT(msg("2026-00-01T00:00:00Z"), Catch::Contains("no such date"));
    CHECK_THAT(msg("2026-04-31T00:00:00Z"), Catch::Contains("no such date"));
    CHECK_THAT(msg("2023-02-29T00:00:00Z"), Catch::Contains("no such date"));
    CHECK_THAT(msg("1900-02-29T00:00:00Z"), Catch::Contains("no such date"));
    CHECK_THAT(msg("2026-11-00T00:00:00Z"), Catch::Contains("no such date"));
    CHECK_THAT(msg("2026-11-30T24:00:00Z"), Catch::Contains("hour out of range"));
    CHECK_THAT(msg("2026-11-30T23:60:00Z"), Catch::Contains("minute out of range"));
    CHECK_THAT(msg("2016-12-31T23:59:60Z"), Catch::Contains("leap seconds"));
    CHECK_THAT(msg("2026-11-30T-3:09:04Z"), Catch::Contains("hour is not a number"));
    CHECK_THAT(msg("2026-11-30T03:09:04Z "), Catch::Contains("\"2026-11-30T03:09:04Z \""));  // names the input

    CHECK_THROWS_WITH(parse_compact("2026-11-30T03:09:04Z"), Catch::Contains("YYYYMMDDTHHMMSSZ"));
    CHECK_THROWS_WITH(parse_compact("20261130 030904Z"), Catch::Contains("expected 'T'"));
    CHECK_THROWS_WITH(parse_compact("20260230T030904Z"), Catch::Contains("no such date"));
}

TEST_CASE("RFC 3339 with milliseconds orders backups taken within one second", "[time]") {
    using namespace std::chrono;
    const auto t = sys_days{year{2026} / 11 / 30} + hours{3} + minutes{9} + seconds{4} + milliseconds{7};
    CHECK(bartl::format_rfc3339_ms(t) == "2026-11-30T03:09:04.007Z");
    CHECK(bartl::parse_rfc3339_ms("2026-11-30T03:09:04.007Z") == t);
    CHECK(bartl::parse_rfc3339_ms("2026-11-30T03:09:04.0071234Z") == t);
    CHECK(bartl::parse_rfc3339_ms("2026-11-30T03:09:04.5Z") - floor<seconds>(t) == milliseconds{500});
    CHECK(bartl::parse_rfc3339("2026-11-30T03:09:04.999Z") == floor<seconds>(t));
    CHECK(bartl::parse_rfc3339_ms("2026-11-30T03:09:04Z") == floor<seconds>(t));
    CHECK_THROWS_AS(bartl::parse_rfc3339_ms("2026-11-30T03:09:04.Z"), std::invalid_argument);
    CHECK_THROWS_AS(bartl::parse_rfc3339_ms("2026-11-30T03:09:04.12aZ"), std::invalid_argument);
    CHECK_THROWS_AS(bartl::parse_rfc3339_ms("2026-11-30T03:09:04.1234567890Z"), std::invalid_argument);
}
