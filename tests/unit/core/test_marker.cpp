// Marker and intent JSON: round trip, the keys on disk, and strict reading.
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "core/marker.hpp"

using namespace bartl;
using nlohmann::json;

namespace {

Marker sample_marker() {
    Marker m;
    m.app = "notes";
    m.version = "2.1.0-rc.1+b5";
    m.origin = "restore:notes-20261130T030904Z-2.0.0-abc";
    m.state_paths = {"/var/lib/notes", "/srv/notes files/ü"};
    m.history = {{"2026-11-30T03:09:04Z", "restore", "", "2.0.0", "notes-20261130T030904Z-2.0.0-abc"},
                 {"2026-11-30T03:10:00Z", "migrate", "2.0.0", "2.1.0-rc.1+b5", "2.1.0-add \"tags\"\n"}};
    return m;
}

Intent sample_intent() {
    Intent i;
    i.op = "restore";
    i.started = "2026-11-30T03:09:04Z";
    i.pid = 4242;
    i.staging = {"/var/lib/.notes.bartl-staging"};
    i.targets = {"/var/lib/notes"};
    i.backup_id = "notes-20261130T030904Z-2.0.0-abc";
    i.from = "";
    i.to = "2.0.0";
    return i;
}

// Applies `edit` to the JSON of a valid document and returns the error message.
template <typename T, typename Edit>
std::string error_after(const T& valid, Edit edit) {
    json j = json::parse(valid.to_json());
    edit(j);
    try {
        T::from_json(j.dump());
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    FAIL("from_json accepted " << j.dump());
    return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("marker: round trip keeps every field", "[marker]") {
    const Marker m = sample_marker();
    const std::string text = m.to_json();
    CHECK(text.back() == '\n');
    const Marker back = Marker::from_json(text);
    CHECK(back.format == 1);
    CHECK(back.app == m.app);
    CHECK(back.version == m.version);
    CHECK(back.origin == m.origin);
    CHECK(back.state_paths == m.state_paths);
    REQUIRE(back.history.size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(back.history[i].time == m.history[i].time);
        CHECK(back.history[i].event == m.history[i].event);
        CHECK(back.history[i].from == m.history[i].from);
        CHECK(back.history[i].to == m.history[i].to);
        CHECK(back.history[i].detail == m.history[i].detail);
    }
    CHECK(back.to_json() == text);

    // The keys on disk are part of the contract for scripts.
    const json j = json::parse(text);
    CHECK(j.at("format") == 1);
    CHECK(j.at("app") == "notes");
    CHECK(j.at("history").at(1).at("from") == "2.0.0");
}

TEST_CASE("marker: empty marker round-trips", "[marker]") {
    const Marker back = Marker::from_json(Marker{}.to_json());
    CHECK(back.app.empty());
    CHECK(back.history.empty());
    CHECK(back.state_paths.empty());
}

TEST_CASE("marker: from_json names what is wrong", "[marker]") {
    const Marker m = sample_marker();
    CHECK_THROWS_WITH(Marker::from_json("{\"format\": 1,"), Catch::Contains("not valid JSON"));
    CHECK_THROWS_WITH(Marker::from_json(""), Catch::Contains("not valid JSON"));
    CHECK_THROWS_WITH(Marker::from_json("[1]"), Catch::Contains("JSON object"));

    std::string msg = error_after(m, [](json& j) { j.erase("app"); });
    CHECK(contains(msg, "\"app\""));
    CHECK(contains(msg, "missing"));
    CHECK(contains(msg, "state marker"));

    msg = error_after(m, [](json& j) { j["version"] = 2; });
    CHECK(contains(msg, "\"version\" must be a string"));

    msg = error_after(m, [](json& j) { j.erase("format"); });
    CHECK(contains(msg, "\"format\" is missing"));
    msg = error_after(m, [](json& j) { j["format"] = "1"; });
    CHECK(contains(msg, "\"format\" must be an integer"));
    msg = error_after(m, [](json& j) { j["format"] = 2; });
    CHECK(contains(msg, "unsupported format 2"));
    msg = error_after(m, [](json& j) { j["format"] = 0; });
    CHECK(contains(msg, "unsupported format 0"));

    msg = error_after(m, [](json& j) { j["state_paths"] = "/var/lib/notes"; });
    CHECK(contains(msg, "\"state_paths\" must be an array"));
    msg = error_after(m, [](json& j) { j["state_paths"][1] = nullptr; });
    CHECK(contains(msg, "\"state_paths[1]\" must be a string"));

    msg = error_after(m, [](json& j) { j["history"] = json::object(); });
    CHECK(contains(msg, "\"history\" must be an array"));
    msg = error_after(m, [](json& j) { j["history"][1].erase("time"); });
    CHECK(contains(msg, "history[1]"));
    CHECK(contains(msg, "\"time\" is missing"));
    msg = error_after(m, [](json& j) { j["history"][0] = "init"; });
    CHECK(contains(msg, "history[0]: must be an object"));
}

TEST_CASE("marker and intent: a number overflowing a double is invalid input, not a crash", "[marker]") {
    // Found by tests/fuzz (tests/fuzz/crashes/fuzz_marker-json-number-overflow.json).
    CHECK_THROWS_AS(bartl::Marker::from_json(R"({"format": 9E999})"), std::invalid_argument);
    CHECK_THROWS_AS(bartl::Intent::from_json(R"({"format": 4e444})"), std::invalid_argument);
}

TEST_CASE("marker: unknown extra keys are ignored", "[marker]") {
    json j = json::parse(sample_marker().to_json());
    j["added_by_a_newer_bartl"] = {1, 2};
    j["history"][0]["extra"] = true;
    CHECK(Marker::from_json(j.dump()).app == "notes");
}

TEST_CASE("intent: round trip keeps every field", "[marker]") {
    const Intent i = sample_intent();
    const std::string text = i.to_json();
    CHECK(text.back() == '\n');
    const Intent back = Intent::from_json(text);
    CHECK(back.format == 1);
    CHECK(back.op == i.op);
    CHECK(back.started == i.started);
    CHECK(back.pid == i.pid);
    CHECK(back.staging == i.staging);
    CHECK(back.targets == i.targets);
    CHECK(back.backup_id == i.backup_id);
    CHECK(back.from == i.from);
    CHECK(back.to == i.to);
    CHECK(back.to_json() == text);
    for (const char* op : {"init", "migrate"}) {
        Intent other = i;
        other.op = op;
        CHECK(Intent::from_json(other.to_json()).op == op);
    }
}

TEST_CASE("intent: from_json names what is wrong", "[marker]") {
    const Intent i = sample_intent();
    std::string msg = error_after(i, [](json& j) { j.erase("op"); });
    CHECK(contains(msg, "intent record"));
    CHECK(contains(msg, "\"op\" is missing"));
    msg = error_after(i, [](json& j) { j["op"] = "backup"; });
    CHECK(contains(msg, "unknown value \"backup\""));
    msg = error_after(i, [](json& j) { j["pid"] = "4242"; });
    CHECK(contains(msg, "\"pid\" must be an integer"));
    msg = error_after(i, [](json& j) { j["pid"] = 1.5; });
    CHECK(contains(msg, "\"pid\" must be an integer"));
    msg = error_after(i, [](json& j) { j["pid"] = 1LL << 40; });
    CHECK(contains(msg, "\"pid\" is out of range"));
    msg = error_after(i, [](json& j) { j["pid"] = 18446744073709551615ULL; });
    CHECK(contains(msg, "\"pid\" is out of range"));
    msg = error_after(i, [](json& j) { j["targets"] = nullptr; });
    CHECK(contains(msg, "\"targets\" must be an array"));
    msg = error_after(i, [](json& j) { j.erase("to"); });
    CHECK(contains(msg, "\"to\" is missing"));
    msg = error_after(i, [](json& j) { j["format"] = 3; });
    CHECK(contains(msg, "unsupported format 3"));
}
