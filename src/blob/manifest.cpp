// Manifest (de)serialisation with exactly the sidecar keys of bartl(7) "The backup blob".
// Reading is strict about keys bartl always writes (a sidecar decides which backup is
// restored, so a guessed default could pick the wrong data); `blob`, `files` and `bytes` are
// optional because the in-archive copy cannot know them. Unknown keys are ignored so a newer
// bartl may add fields within format 1.
#include "blob/manifest.hpp"

#include <stdexcept>

#include <nlohmann/json.hpp>

namespace bartl {
namespace {

using nlohmann::json;

constexpr int kFormat = 1;

[[noreturn]] void bad(const std::string& key, const std::string& problem) {
    throw std::invalid_argument("backup manifest: key \"" + key + "\" " + problem);
}

const json& member(const json& obj, const std::string& key, const std::string& path) {
    auto it = obj.find(key);
    if (it == obj.end()) bad(path, "is missing");
    return *it;
}

std::string get_string(const json& obj, const std::string& key, const std::string& prefix = "") {
    const auto path = prefix + key;
    const auto& v = member(obj, key, path);
    if (!v.is_string()) bad(path, "must be a string, not " + std::string(v.type_name()));
    return v.get<std::string>();
}

std::uint64_t get_u64(const json& obj, const std::string& key, const std::string& prefix = "") {
    const auto path = prefix + key;
    const auto& v = member(obj, key, path);
    if (!v.is_number_unsigned()) {
        // A JSON 0 parses as unsigned; a negative or fractional number is a real error.
        if (!v.is_number_integer() || v.get<std::int64_t>() < 0)
            bad(path, "must be a non-negative integer, not " + v.dump());
    }
    return v.get<std::uint64_t>();
}

bool is_lower_hex(const std::string& s) {
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

json base_json(const BackupManifest& m) {
    json j;
    j["format"] = m.format;
    j["app"] = m.app;
    j["version"] = m.version;
    j["created"] = m.created;
    j["host"] = m.host;
    j["id"] = m.id;
    return j;
}

void add_tail(json& j, const BackupManifest& m) {
    j["compression"] = m.compression;
    j["encryption"] = m.encryption ? json{{"type", *m.encryption}} : json(nullptr);
    json comps = json::array();
    for (const auto& c : m.components) comps.push_back({{"kind", c.kind}, {"name", c.name}});
    j["components"] = comps;
    j["paths"] = m.paths;
}

}  // namespace

std::string BackupManifest::to_json() const {
    json j = base_json(*this);
    j["blob"] = {{"name", blob_name}, {"size", blob_size}, {"sha256", blob_sha256}};
    add_tail(j, *this);
    j["files"] = files;
    j["bytes"] = bytes;
    return j.dump(2) + "\n";
}

std::string BackupManifest::to_archive_json() const {
    json j = base_json(*this);
    add_tail(j, *this);
    return j.dump(2) + "\n";
}

BackupManifest BackupManifest::from_json(const std::string& text) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {  // parse_error, and out_of_range for 1e999
        throw std::invalid_argument(std::string("backup manifest: not valid JSON: ") + e.what());
    }
    if (!j.is_object()) throw std::invalid_argument("backup manifest: not a JSON object");

    BackupManifest m;
    const auto& format = member(j, "format", "format");
    if (!format.is_number_integer()) bad("format", "must be an integer, not " + format.dump());
    if (format.get<std::int64_t>() != kFormat)
        bad("format", "is " + format.dump() + ", this bartl reads format " + std::to_string(kFormat));
    m.format = kFormat;
    m.app = get_string(j, "app");
    m.version = get_string(j, "version");
    m.created = get_string(j, "created");
    m.host = get_string(j, "host");
    m.id = get_string(j, "id");
    m.compression = get_string(j, "compression");

    const auto& enc = member(j, "encryption", "encryption");
    if (enc.is_null()) {
        m.encryption.reset();
    } else if (enc.is_object()) {
        m.encryption = get_string(enc, "type", "encryption.");
    } else {
        bad("encryption", "must be null or an object like {\"type\": \"age\"}, not " + enc.dump());
    }

    const auto& comps = member(j, "components", "components");
    if (!comps.is_array()) bad("components", "must be an array");
    for (std::size_t i = 0; i < comps.size(); ++i) {
        const auto prefix = "components[" + std::to_string(i) + "].";
        if (!comps[i].is_object()) bad(prefix.substr(0, prefix.size() - 1), "must be an object");
        m.components.push_back({get_string(comps[i], "kind", prefix), get_string(comps[i], "name", prefix)});
    }

    const auto& paths = member(j, "paths", "paths");
    if (!paths.is_array()) bad("paths", "must be an array of strings");
    for (std::size_t i = 0; i < paths.size(); ++i) {
        if (!paths[i].is_string()) bad("paths[" + std::to_string(i) + "]", "must be a string");
        m.paths.push_back(paths[i].get<std::string>());
    }

    if (auto it = j.find("blob"); it != j.end()) {
        if (!it->is_object()) bad("blob", "must be an object with name, size and sha256");
        m.blob_name = get_string(*it, "name", "blob.");
        m.blob_size = get_u64(*it, "size", "blob.");
        m.blob_sha256 = get_string(*it, "sha256", "blob.");
        if (m.blob_sha256.size() != 64 || !is_lower_hex(m.blob_sha256))
            bad("blob.sha256", "must be 64 lower-case hex digits, not \"" + m.blob_sha256 + "\"");
    }
    if (j.contains("files")) m.files = get_u64(j, "files");
    if (j.contains("bytes")) m.bytes = get_u64(j, "bytes");
    return m;
}

std::string blob_name(const std::string& app, const std::string& compact_time, const std::string& version,
                      const std::string& id, bool encrypted) {
    std::string name = app + "-" + compact_time + "-" + version + "-" + id + ".tar.zst";
    if (encrypted) name += ".age";
    return name;
}

std::string sidecar_name(const std::string& blob) { return blob + ".json"; }

}  // namespace bartl
