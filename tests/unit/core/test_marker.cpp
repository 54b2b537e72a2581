// Marker and intent JSON: round trip, the keys on disk, strict reading, and reading the
// format 1 files of bartl before state identity.
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "core/marker.hpp"

using namespace bartl;
using nlohmann::json;

namespace {

const std::string kId = "0123456789abcdef0123456789abcdef";

Marker sample_marker() {
    Marker m;
    m.app = "notes";
    m.version = "2.1.0-rc.1+b5";
    m.state_id = kId;
    m.origin = "restore:notes-20261130T030904Z-2.0.0-abc";
    m.components = {{"path", "/var/lib/notes", "xattr", "/var/lib", "8:1", 1234, ""},
                    {"path", "/srv/notes files/ü", "inode", "/srv/notes files", "0:42", 99, "/srv", "/data/notes files",
                     "/srv/notes files", "/data"}};
    m.migrations = {{"2.1.0-rc.1_add-tags", std::string(64, 'a'), "2026-11-30T03:10:00Z", "2.1.0-rc.1+b5"}};
    m.writer = {"fedcba9876543210fedcba9876543210", 3, ""};
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
    i.state_id = kId;
    i.pre_migration_backup = "";
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
    CHECK(back.format == 2);
    CHECK(back.app == m.app);
    CHECK(back.version == m.version);
    CHECK(back.state_id == kId);
    CHECK(back.origin == m.origin);
    REQUIRE(back.components.size() == 2);
    CHECK(back.components[1].name == "/srv/notes files/ü");
    CHECK(back.components[1].binding == "inode");
    CHECK(back.components[1].inode == 99);
    CHECK(back.components[0].mount_point == "/var/lib");
    CHECK(back.components[0].device == "8:1");
    CHECK(back.components[0].bind_source.empty());
    CHECK(back.components[1].bind_source == "/data/notes files");
    CHECK(back.components[1].bind_mount_point == "/srv/notes files");
    CHECK(back.components[1].bind_filesystem == "/data");
    REQUIRE(back.migrations.size() == 1);
    CHECK(back.migrations[0].name == "2.1.0-rc.1_add-tags");
    CHECK(back.migrations[0].engine == "2.1.0-rc.1+b5");
    CHECK(back.writer.store_id == m.writer.store_id);
    CHECK(back.writer.generation == 3);
    CHECK(back.writer.deferred.empty());
    Marker d = m;
    d.writer.deferred = "takeover";
    CHECK(Marker::from_json(d.to_json()).writer.deferred == "takeover");
    REQUIRE(back.history.size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(back.history[i].time == m.history[i].time);
        CHECK(back.history[i].event == m.history[i].event);
        CHECK(back.history[i].from == m.history[i].from);
        CHECK(back.history[i].to == m.history[i].to);
        CHECK(back.history[i].detail == m.history[i].detail);
    }
    CHECK(back.to_json() == text);
    CHECK(back.find("path", "/var/lib/notes") != nullptr);
    CHECK(back.find("path", "/var/lib") == nullptr);
    CHECK(back.find("sqlite", "/var/lib/notes") == nullptr);

    // The keys on disk are part of the contract for scripts.
    const json j = json::parse(text);
    CHECK(j.at("format") == 2);
    CHECK(j.at("state_id") == kId);
    CHECK(j.at("components").at(0).at("kind") == "path");
    CHECK(j.at("migrations").at(0).at("sha256") == std::string(64, 'a'));
    CHECK(j.at("history").at(1).at("from") == "2.0.0");
}

TEST_CASE("marker: a format 1 marker of an older bartl is read, unbound", "[marker]") {
    const std::string v1 = R"({"format": 1, "app": "notes", "version": "1.4.2", "origin": "init",
        "state_paths": ["/var/lib/notes", "/etc/notes"],
        "history": [{"time": "2026-01-01T00:00:00Z", "event": "init", "from": "", "to": "1.4.2", "detail": ""}]})";
    const Marker m = Marker::from_json(v1);
    CHECK(m.state_id.empty());
    REQUIRE(m.components.size() == 2);
    CHECK(m.components[0].kind == "path");
    CHECK(m.components[0].name == "/var/lib/notes");
    CHECK(m.components[0].binding.empty());
    CHECK(m.history.size() == 1);
    CHECK(m.migrations.empty());
    // Written back before its upgrade, it stays format 1; with a state ID, format 2.
    CHECK(json::parse(m.to_json()).at("format") == 1);
    Marker bound = m;
    bound.state_id = kId;
    CHECK(json::parse(bound.to_json()).at("format") == 2);
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

    // A bind mount's directory without its mount point, or the reverse, is not one.
    msg = error_after(m, [](json& j) { j["components"][1].erase("bind_mount_point"); });
    CHECK(contains(msg, "bind_mount_point"));
    CHECK(contains(msg, "bind_source"));
    msg = error_after(m, [](json& j) { j["components"][1]["bind_source"] = ""; });
    CHECK(contains(msg, "bind_source"));

    msg = error_after(m, [](json& j) { j["version"] = 2; });
    CHECK(contains(msg, "\"version\" must be a string"));

    msg = error_after(m, [](json& j) { j.erase("format"); });
    CHECK(contains(msg, "\"format\" is missing"));
    msg = error_after(m, [](json& j) { j["format"] = "1"; });
    CHECK(contains(msg, "\"format\" must be an integer"));
    msg = error_after(m, [](json& j) { j["format"] = 3; });
    CHECK(contains(msg, "unsupported format 3"));
    msg = error_after(m, [](json& j) { j["format"] = 0; });
    CHECK(contains(msg, "unsupported format 0"));

    msg = error_after(m, [](json& j) { j["state_id"] = "ABC"; });
    CHECK(contains(msg, "\"state_id\" must be 32 lower-case hex digits"));
    msg = error_after(m, [](json& j) { j["state_id"] = ""; });
    CHECK(contains(msg, "\"state_id\""));
    msg = error_after(m, [](json& j) { j["components"] = "/var/lib/notes"; });
    CHECK(contains(msg, "\"components\" must be an array"));
    msg = error_after(m, [](json& j) { j["components"][1].erase("name"); });
    CHECK(contains(msg, "\"components[1].name\" is missing"));
    msg = error_after(m, [](json& j) { j["components"][0]["binding"] = "guess"; });
    CHECK(contains(msg, "\"components[0].binding\" has unknown value \"guess\""));
    msg = error_after(m, [](json& j) { j["components"][0]["inode"] = -1; });
    CHECK(contains(msg, "\"components[0].inode\" must be a non-negative integer"));
    msg = error_after(m, [](json& j) { j["migrations"][0]["sha256"] = "xyz"; });
    CHECK(contains(msg, "\"migrations[0].sha256\" must be 64 lower-case hex digits"));
    msg = error_after(m, [](json& j) { j["writer"].erase("deferred"); });
    CHECK(contains(msg, "\"writer.deferred\" is missing"));
    msg = error_after(m, [](json& j) { j["writer"]["deferred"] = "later"; });
    CHECK(contains(msg, "\"writer.deferred\" has unknown value \"later\""));
    msg = error_after(m, [](json& j) { j["writer"]["generation"] = "3"; });
    CHECK(contains(msg, "\"writer.generation\" must be a non-negative integer"));

    msg = error_after(m, [](json& j) { j["history"] = json::object(); });
    CHECK(contains(msg, "\"history\" must be an array"));
    msg = error_after(m, [](json& j) { j["history"][1].erase("time"); });
    CHECK(contains(msg, "\"history[1].time\" is missing"));
    msg = error_after(m, [](json& j) { j["history"][0] = "init"; });
    CHECK(contains(msg, "\"history[0]\" must be an object"));

    // A format 1 marker without its state_paths is as broken as a format 2 one.
    CHECK_THROWS_WITH(Marker::from_json(R"({"format": 1, "app": "a", "version": "1.0.0", "origin": "init",
                                           "history": []})"),
                      Catch::Contains("\"state_paths\" is missing"));
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
    j["components"][0]["extra"] = "x";
    CHECK(Marker::from_json(j.dump()).app == "notes");
}

TEST_CASE("intent: round trip keeps every field", "[marker]") {
    Intent i = sample_intent();
    i.pre_migration_backup = "3f9a0c1d";
    const std::string text = i.to_json();
    CHECK(text.back() == '\n');
    const Intent back = Intent::from_json(text);
    CHECK(back.format == 2);
    CHECK(back.op == i.op);
    CHECK(back.started == i.started);
    CHECK(back.pid == i.pid);
    CHECK(back.staging == i.staging);
    CHECK(back.targets == i.targets);
    CHECK(back.backup_id == i.backup_id);
    CHECK(back.from == i.from);
    CHECK(back.to == i.to);
    CHECK(back.state_id == kId);
    CHECK(back.pre_migration_backup == "3f9a0c1d");
    CHECK(back.to_json() == text);
    for (const char* op : {"init", "migrate"}) {
        Intent other = i;
        other.op = op;
        CHECK(Intent::from_json(other.to_json()).op == op);
    }
}

TEST_CASE("intent: a format 1 intent of an older bartl is read", "[marker]") {
    // An upgrade of bartl can meet the intent of an operation the old one was killed in.
    const Intent in = Intent::from_json(R"({"format": 1, "op": "restore", "started": "2026-01-01T00:00:00Z",
        "pid": 7, "staging": ["/a/.x.bartl-staging"], "targets": ["/a/x"], "backup_id": "b", "from": "", "to": "1.0.0"})");
    CHECK(in.op == "restore");
    CHECK(in.targets == std::vector<std::string>{"/a/x"});
    CHECK(in.state_id.empty());
    CHECK(in.pre_migration_backup.empty());
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
    msg = error_after(i, [](json& j) { j["state_id"] = "nope"; });
    CHECK(contains(msg, "\"state_id\" must be empty or 32 lower-case hex digits"));
    msg = error_after(i, [](json& j) { j.erase("pre_migration_backup"); });
    CHECK(contains(msg, "\"pre_migration_backup\" is missing"));
    msg = error_after(i, [](json& j) { j["format"] = 3; });
    CHECK(contains(msg, "unsupported format 3"));
}

TEST_CASE("state IDs: 32 lower-case hex digits", "[marker]") {
    CHECK(is_state_id(kId));
    CHECK_FALSE(is_state_id(""));
    CHECK_FALSE(is_state_id(kId.substr(1)));
    CHECK_FALSE(is_state_id(kId + "0"));
    CHECK_FALSE(is_state_id("0123456789ABCDEF0123456789abcdef"));
    CHECK(component_id("path", "/var/lib/x") == "path:/var/lib/x");
}

TEST_CASE("marker: a format 1 marker written back before its upgrade stays readable", "[marker]") {
    // Found by tests/fuzz: it was written as format 2 without a state ID, which does not parse.
    const Marker m = Marker::from_json(R"({"format": 1, "app": "notes", "version": "1.4.2", "origin": "init",
        "state_paths": ["/var/lib/notes"], "history": []})");
    const auto text = m.to_json();
    CHECK(json::parse(text).at("format") == 1);
    const Marker back = Marker::from_json(text);
    CHECK(back.state_id.empty());
    REQUIRE(back.components.size() == 1);
    CHECK(back.components[0].name == "/var/lib/notes");
}

TEST_CASE("marker: the way back is the pre-migration backups an engine can run, newest first", "[marker]") {
    const std::vector<HistoryEntry> h = {
        {"2026-11-01T00:00:00Z", "init", "", "1.0.0", ""},
        {"2026-11-02T00:00:00Z", "backup", "1.0.0", "1.0.0", "before migration: aaaa1111"},
        {"2026-11-02T00:00:01Z", "migrate", "1.0.0", "1.5.0", "1.5.0"},
        {"2026-11-03T00:00:00Z", "backup", "1.5.0", "1.5.0", "scheduled: bbbb2222"},
        {"2026-11-04T00:00:00Z", "backup", "1.5.0", "1.5.0", "before migration: cccc3333"},
        {"2026-11-04T00:00:01Z", "migrate", "1.5.0", "2.0.0", "2.0.0"},
        {"2026-11-05T00:00:00Z", "restore", "", "2.0.0", "before migration: not-a-backup-entry"},
        {"2026-11-05T00:00:01Z", "backup", "2.0.0", "2.0.0", "before migration: "},
    };
    auto ids = [](const std::vector<WayBack>& w) {
        std::vector<std::string> out;
        for (const auto& x : w) out.push_back(x.backup_id + "@" + x.state_version);
        return out;
    };
    CHECK(ids(way_back_backups(h, "1.5.0")) == std::vector<std::string>{"cccc3333@1.5.0", "aaaa1111@1.0.0"});
    CHECK(ids(way_back_backups(h, "1.9.9")) == std::vector<std::string>{"cccc3333@1.5.0", "aaaa1111@1.0.0"});
    CHECK(ids(way_back_backups(h, "1.0.0")) == std::vector<std::string>{"aaaa1111@1.0.0"});
    CHECK(ids(way_back_backups(h, "1.5.0-rc.1")) == std::vector<std::string>{"aaaa1111@1.0.0"});
    CHECK(way_back_backups(h, "0.9.0").empty());
    CHECK(way_back_backups({}, "1.0.0").empty());
    // An engine or a state version that is no SemVer: kept for the operator to judge.
    CHECK(ids(way_back_backups(h, "not-semver")) == std::vector<std::string>{"cccc3333@1.5.0", "aaaa1111@1.0.0"});
    const std::vector<HistoryEntry> odd = {{"t", "backup", "x", "x", "before migration: dddd4444"}};
    CHECK(ids(way_back_backups(odd, "1.0.0")) == std::vector<std::string>{"dddd4444@x"});
}
