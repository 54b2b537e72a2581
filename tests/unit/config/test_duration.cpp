// parse_duration / format_duration (src/core/duration.hpp).
#include <catch2/catch.hpp>

#include <chrono>
#include <stdexcept>
#include <string>

#include "core/duration.hpp"

using bartl::format_duration;
using bartl::parse_duration;
using namespace std::chrono_literals;

namespace {

// The message of the invalid_argument parse_duration throws, or "" when it does not throw.
std::string duration_error(const std::string& text) {
    try {
        parse_duration(text);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("parse_duration accepts every unit and combinations", "[duration]") {
    CHECK(parse_duration("500ms") == 500ms);
    CHECK(parse_duration("90s") == 90s);
    CHECK(parse_duration("5m") == 5min);
    CHECK(parse_duration("24h") == 24h);
    CHECK(parse_duration("1h30m") == 90min);
    CHECK(parse_duration("7d") == 7 * 24h);
    CHECK(parse_duration("2w") == 14 * 24h);
    CHECK(parse_duration("1m30s250ms") == 90250ms);
    CHECK(parse_duration("0") == 0ms);
    CHECK(parse_duration("0s") == 0ms);
    CHECK(parse_duration("007s") == 7s);
}

TEST_CASE("parse_duration rejects malformed text and names the bad part", "[duration]") {
    CHECK(duration_error("") == "invalid duration \"\": empty (write e.g. \"90s\", \"5m\", \"1h30m\")");
    CHECK(duration_error("5") == "invalid duration \"5\": missing unit after \"5\" (units: ms, s, m, h, d, w)");
    CHECK(duration_error("5x") == "invalid duration \"5x\": unknown unit \"x\" (units: ms, s, m, h, d, w)");
    CHECK(duration_error("5min") == "invalid duration \"5min\": unknown unit \"min\" (units: ms, s, m, h, d, w)");
    CHECK(duration_error("-5s") == "invalid duration \"-5s\": negative durations are not allowed");
    CHECK(duration_error("1.5h") ==
          "invalid duration \"1.5h\": fractions are not allowed (write \"1h30m\", not \"1.5h\")");
    CHECK(duration_error("h") == "invalid duration \"h\": expected a number at \"h\"");
    CHECK(duration_error("1h 30m") == "invalid duration \"1h 30m\": expected a number at \" 30m\"");
    CHECK(duration_error("5!") == "invalid duration \"5!\": unexpected \"!\" after \"5\"");
    CHECK(duration_error("1h30") == "invalid duration \"1h30\": missing unit after \"30\" (units: ms, s, m, h, d, w)");
}

TEST_CASE("parse_duration rejects values that overflow milliseconds", "[duration]") {
    // Milliseconds are int64 (about 292 million years); each of these is beyond that.
    CHECK(duration_error("99999999999999999999ms") == "invalid duration \"99999999999999999999ms\": too large");
    CHECK(duration_error("9223372036854775807w") == "invalid duration \"9223372036854775807w\": too large");
    CHECK(duration_error("9223372036854775807ms1ms") == "invalid duration \"9223372036854775807ms1ms\": too large");
    CHECK(parse_duration("9223372036854775807ms") == std::chrono::milliseconds::max());
}

TEST_CASE("format_duration is compact and round-trips through parse_duration", "[duration]") {
    CHECK(format_duration(0ms) == "0");
    CHECK(format_duration(250ms) == "250ms");
    CHECK(format_duration(90s) == "1m30s");
    CHECK(format_duration(90min) == "1h30m");
    CHECK(format_duration(24h) == "1d");
    CHECK(format_duration(14 * 24h + 1ms) == "14d1ms");
    CHECK(format_duration(-90s) == "-1m30s");
    for (std::chrono::milliseconds d : {1ms, 999ms, 1000ms, 61000ms, 3601000ms, 86399999ms, 1234567890123ms})
        CHECK(parse_duration(format_duration(d)) == d);
    CHECK(format_duration(std::chrono::milliseconds::min()).front() == '-');
}
