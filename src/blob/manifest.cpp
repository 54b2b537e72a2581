// Manifest (de)serialisation with exactly the sidecar keys of bartl(7) "The backup blob".
// Reading is strict about keys bartl always writes (a sidecar decides which backup is
// restored, so a guessed default could pick the wrong data); `blob`, `files` and `bytes` are
// optional because the in-archive copy cannot know them. Unknown keys are ignored so a newer
// bartl may add fields within format 1.
#include "blob/manifest.hpp"

#include <stdexcept>

#include "core/json_read.hpp"

namespace bartl {
namespace {

using nlohmann::json;
using json_read::Object;

constexpr int kFormat = 1;

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
    j["reason"] = m.reason;
    j["writer"] = {{"state_id", m.writer_state_id}, {"generation", m.writer_generation}};
    json migs = json::array();
    for (const auto& a : m.migrations)
        migs.push_back({{"name", a.name}, {"sha256", a.sha256}, {"time", a.time}, {"engine", a.engine}});
    j["migrations"] = migs;
    j["exclude"] = m.exclude;
}

}  // namespace

std::string BackupManifest::to_json() const {
    json j = base_json(*this);
    j["blob"] = {{"name", blob_name}, {"size", blob_size}, {"sha256", blob_sha256}};
    add_tail(j, *this);
    j["files"] = files;
    j["bytes"] = bytes;
    j["signature"] = signature_key ? json{{"type", "sshsig"}, {"namespace", "bartl-backup"}, {"key", *signature_key}}
                                   : json(nullptr);
    return j.dump(2) + "\n";
}

std::string BackupManifest::to_archive_json() const {
    json j = base_json(*this);
    add_tail(j, *this);
    return j.dump(2) + "\n";
}

BackupManifest BackupManifest::from_json(const std::string& text) {
    const auto j = Object::parse("backup manifest", text);
    BackupManifest m;
    m.format = j.format(kFormat, kFormat);
    m.app = j.string("app");
    m.version = j.string("version");
    m.created = j.string("created");
    m.host = j.string("host");
    m.id = j.string("id");
    m.compression = j.string("compression");

    const auto& enc = j.member("encryption");
    if (enc.is_null()) {
        m.encryption.reset();
    } else if (enc.is_object()) {
        m.encryption = j.object("encryption").string("type");
    } else {
        j.fail("encryption", "must be null or an object like {\"type\": \"age\"}, not " + enc.dump());
    }
    for (const auto& c : j.objects("components")) m.components.push_back({c.string("kind"), c.string("name")});
    m.paths = j.strings("paths");

    if (j.has("blob")) {
        const auto b = j.object("blob");
        m.blob_name = b.string("name");
        m.blob_size = b.unsigned_integer("size");
        m.blob_sha256 = b.string("sha256");
        if (m.blob_sha256.size() != 64 || !is_lower_hex(m.blob_sha256))
            b.fail("sha256", "must be 64 lower-case hex digits, not \"" + m.blob_sha256 + "\"");
    }
    if (j.has("files")) m.files = j.unsigned_integer("files");
    if (j.has("bytes")) m.bytes = j.unsigned_integer("bytes");
    if (j.has("reason")) m.reason = j.string("reason");
    if (j.has("writer")) {
        const auto w = j.object("writer");
        m.writer_state_id = w.string("state_id");
        if (!m.writer_state_id.empty() && !is_state_id(m.writer_state_id))
            w.fail("state_id", "must be empty or 32 lower-case hex digits, not \"" + m.writer_state_id + "\"");
        m.writer_generation = w.unsigned_integer("generation");
    }
    if (j.has("exclude")) m.exclude = j.strings("exclude");
    if (j.has("signature") && !j.member("signature").is_null()) {
        const auto s = j.object("signature");
        if (s.string("type") != "sshsig") s.fail("type", "must be \"sshsig\", not \"" + s.string("type") + "\"");
        m.signature_key = s.string("key");
    }
    if (j.has("migrations"))
        for (const auto& a : j.objects("migrations"))
            m.migrations.push_back({a.string("name"), a.string("sha256"), a.string("time"), a.string("engine")});
    return m;
}

std::string blob_name(const std::string& app, const std::string& compact_time, const std::string& version,
                      const std::string& id, bool encrypted) {
    std::string name = app + "-" + compact_time + "-" + version + "-" + id + ".tar.zst";
    if (encrypted) name += ".age";
    return name;
}

std::string sidecar_name(const std::string& blob) { return blob + ".json"; }
std::string signature_name(const std::string& blob) { return sidecar_name(blob) + ".sig"; }

}  // namespace bartl
