// Manifest JSON: exactly the sidecar keys of bartl(7), strict parsing naming the bad key.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <set>

#include "blob/manifest.hpp"

using namespace bartl;
using nlohmann::json;

namespace {

BackupManifest sample() {
    BackupManifest m;
    m.app = "notes";
    m.version = "2.1.0";
    m.created = "2026-11-30T03:09:04Z";
    m.host = "srv1";
    m.id = "3f9a0c1d";
    m.blob_name = "notes-20261130T030904Z-2.1.0-3f9a0c1d.tar.zst";
    m.blob_size = 12345;
    m.blob_sha256 = std::string(63, 'a') + "f";
    m.compression = "zstd:3";
    m.components = {{"path", "/var/lib/notes"}, {"path", "/etc/notes"}};
    m.paths = {"/var/lib/notes", "/etc/notes"};
    m.files = 42;
    m.bytes = 1u << 20;
    return m;
}

std::string with(const std::string& key, const json& value) {
    auto j = json::parse(sample().to_json());
    if (value.is_discarded())
        j.erase(key);
    else
        j[key] = value;
    return j.dump();
}

}  // namespace

TEST_CASE("the sidecar has exactly the documented keys", "[manifest]") {
    auto j = json::parse(sample().to_json());
    std::set<std::string> keys;
    for (auto& [k, v] : j.items()) keys.insert(k);
    CHECK(keys == std::set<std::string>{"format", "app", "version", "created", "host", "id", "blob", "compression",
                                        "encryption", "components", "paths", "files", "bytes", "reason", "writer",
                                        "migrations", "exclude", "signature"});
    CHECK(j["format"] == 1);
    CHECK(j["blob"] == json{{"name", "notes-20261130T030904Z-2.1.0-3f9a0c1d.tar.zst"},
                            {"size", 12345},
                            {"sha256", std::string(63, 'a') + "f"}});
    CHECK(j["encryption"].is_null());
    CHECK(j["components"][1] == json{{"kind", "path"}, {"name", "/etc/notes"}});
    CHECK(sample().to_json().back() == '\n');

    auto enc = sample();
    enc.encryption = "age";
    CHECK(json::parse(enc.to_json())["encryption"] == json{{"type", "age"}});
    CHECK(j["signature"].is_null());
}

TEST_CASE("the sidecar names the key that signed it", "[manifest]") {
    auto m = sample();
    m.signature_key = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";
    const auto j = json::parse(m.to_json());
    CHECK(j["signature"] == json{{"type", "sshsig"}, {"namespace", "bartl-backup"}, {"key", *m.signature_key}});
    CHECK_FALSE(json::parse(m.to_archive_json()).contains("signature"));
    const auto back = BackupManifest::from_json(m.to_json());
    CHECK(back.signature_key == m.signature_key);
    CHECK(back.to_json() == m.to_json());
    CHECK_FALSE(BackupManifest::from_json(sample().to_json()).signature_key);
    CHECK_THROWS_WITH(BackupManifest::from_json(with("signature", json{{"type", "gpg"}, {"key", "x"}})),
                      Catch::Contains("must be \"sshsig\", not \"gpg\""));
}

TEST_CASE("the in-archive manifest lacks blob and counts", "[manifest]") {
    auto j = json::parse(sample().to_archive_json());
    CHECK_FALSE(j.contains("blob"));
    CHECK_FALSE(j.contains("files"));
    CHECK_FALSE(j.contains("bytes"));
    auto back = BackupManifest::from_json(sample().to_archive_json());
    CHECK(back.app == "notes");
    CHECK(back.paths == sample().paths);
    CHECK(back.blob_name.empty());
    CHECK(back.files == 0);
}

TEST_CASE("the sidecar round-trips", "[manifest]") {
    auto m = sample();
    m.encryption = "age";
    auto back = BackupManifest::from_json(m.to_json());
    CHECK(back.to_json() == m.to_json());
    CHECK(back.encryption == std::optional<std::string>("age"));
    CHECK(back.blob_size == 12345);
    CHECK(back.components.size() == 2);
    CHECK(back.components[0].name == "/var/lib/notes");
}

TEST_CASE("parsing names the missing or bad key", "[manifest]") {
    const json erase = json(json::value_t::discarded);
    CHECK_THROWS_WITH(BackupManifest::from_json("{"), Catch::Contains("not valid JSON"));
    CHECK_THROWS_WITH(BackupManifest::from_json("[]"), Catch::Contains("expected a JSON object"));
    // Found by tests/fuzz: a number too large for a double is nlohmann's out_of_range, which
    // escaped as an unexpected error and stopped the fallback to an older backup.
    CHECK_THROWS_AS(BackupManifest::from_json(R"({"format": 1e999})"), std::invalid_argument);
    CHECK_THROWS_WITH(BackupManifest::from_json(with("app", erase)), Catch::Contains("\"app\" is missing"));
    CHECK_THROWS_WITH(BackupManifest::from_json(with("version", 2)), Catch::Contains("\"version\" must be a string"));
    CHECK_THROWS_WITH(BackupManifest::from_json(with("format", 2)), Catch::Contains("unsupported format 2"));
    CHECK_THROWS_WITH(BackupManifest::from_json(with("encryption", "age")), Catch::Contains("\"encryption\""));
    CHECK_THROWS_WITH(BackupManifest::from_json(with("encryption", json::object())),
                      Catch::Contains("\"encryption.type\" is missing"));
    CHECK_THROWS_WITH(BackupManifest::from_json(with("components", json::array({{{"kind", "path"}}}))),
                      Catch::Contains("\"components[0].name\" is missing"));
    CHECK_THROWS_WITH(BackupManifest::from_json(with("paths", json::array({1}))), Catch::Contains("\"paths[0]\""));
    CHECK_THROWS_WITH(BackupManifest::from_json(with("files", -1)), Catch::Contains("\"files\" must be a non-negative"));
    CHECK_THROWS_WITH(BackupManifest::from_json(with("bytes", 1.5)), Catch::Contains("\"bytes\""));
    CHECK_THROWS_WITH(BackupManifest::from_json(with("blob", json{{"name", "x"}, {"size", "1"}, {"sha256", ""}})),
                      Catch::Contains("\"blob.size\""));
    CHECK_THROWS_WITH(BackupManifest::from_json(with("blob", json{{"name", "x"}, {"size", 1}, {"sha256", "ABC"}})),
                      Catch::Contains("\"blob.sha256\" must be 64 lower-case hex"));
    // Unknown keys are tolerated: a newer bartl may add fields within format 1.
    CHECK_NOTHROW(BackupManifest::from_json(with("future", "x")));
}

TEST_CASE("blob and sidecar names", "[manifest]") {
    CHECK(blob_name("notes", "20261130T030904Z", "2.1.0", "3f9a0c1d", false) ==
          "notes-20261130T030904Z-2.1.0-3f9a0c1d.tar.zst");
    CHECK(blob_name("notes", "20261130T030904Z", "2.1.0", "3f9a0c1d", true) ==
          "notes-20261130T030904Z-2.1.0-3f9a0c1d.tar.zst.age");
    CHECK(sidecar_name("notes-20261130T030904Z-2.1.0-3f9a0c1d.tar.zst") ==
          "notes-20261130T030904Z-2.1.0-3f9a0c1d.tar.zst.json");
}

TEST_CASE("reason, writer and migrations round-trip, and older sidecars without them still parse", "[manifest]") {
    auto m = sample();
    m.reason = "pre-migration";
    m.writer_state_id = std::string(32, 'c');
    m.writer_generation = 2;
    m.migrations = {{"2.0.0_add-tags", std::string(64, 'e'), "2026-11-30T03:09:04Z", "2.0.0"}};
    const auto back = BackupManifest::from_json(m.to_json());
    CHECK(back.reason == "pre-migration");
    CHECK(back.writer_state_id == std::string(32, 'c'));
    CHECK(back.writer_generation == 2);
    REQUIRE(back.migrations.size() == 1);
    CHECK(back.migrations[0].name == "2.0.0_add-tags");
    const auto in_archive = BackupManifest::from_json(m.to_archive_json());
    CHECK(in_archive.migrations.size() == 1);
    CHECK(json::parse(m.to_json())["writer"] == json{{"state_id", std::string(32, 'c')}, {"generation", 2}});

    auto j = json::parse(sample().to_json());
    j.erase("reason");
    j.erase("writer");
    j.erase("migrations");
    const auto old = BackupManifest::from_json(j.dump());
    CHECK(old.reason.empty());
    CHECK(old.writer_state_id.empty());
    CHECK(old.migrations.empty());
    CHECK_THROWS_WITH(BackupManifest::from_json(with("writer", json{{"state_id", "x"}, {"generation", 1}})),
                      Catch::Contains("\"writer.state_id\" must be empty or 32 lower-case hex digits"));
}
