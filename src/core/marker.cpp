// Marker and intent (de)serialisation. Reading is strict (core/json_read.hpp): a marker
// that parses is the commit point (invariant 1) and an intent licenses deleting data
// (invariant 2). Format 1 (bartl before state identity) is still read, so an existing
// install upgrades on its first start without an operator step.
#include "core/marker.hpp"

#include <set>

#include <limits>
#include <stdexcept>

#include "core/json_read.hpp"
#include "core/semver.hpp"

namespace bartl {
namespace {

using nlohmann::json;
using json_read::Object;

constexpr int kFormat = 2;

std::string get_hex_or_empty(const Object& o, const std::string& key, std::size_t digits) {
    auto s = o.string(key);
    if (s.empty()) return s;
    if (s.size() != digits || s.find_first_not_of("0123456789abcdef") != std::string::npos)
        o.fail(key, "must be " + std::to_string(digits) + " lower-case hex digits, not \"" + s + "\"");
    return s;
}

}  // namespace

std::string component_id(const std::string& kind, const std::string& name) { return kind + ":" + name; }

std::vector<WayBack> way_back_backups(const std::vector<HistoryEntry>& history, const std::string& engine) {
    static const std::string prefix = "before migration: ";
    const auto e = Version::try_parse(engine);
    std::vector<WayBack> out;
    for (auto it = history.rbegin(); it != history.rend(); ++it) {
        if (it->event != "backup" || it->detail.rfind(prefix, 0) != 0 || it->detail.size() == prefix.size()) continue;
        const auto v = Version::try_parse(it->to);
        if (e && v && *v > *e) continue;
        out.push_back(WayBack{it->detail.substr(prefix.size()), it->to});
    }
    return out;
}

bool is_state_id(const std::string& s) noexcept {
    return s.size() == 32 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

const ComponentRecord* Marker::find(const std::string& kind, const std::string& name) const {
    for (const auto& c : components)
        if (c.kind == kind && c.name == name) return &c;
    return nullptr;
}

std::string Marker::to_json() const {
    json h = json::array();
    for (const auto& e : history)
        h.push_back({{"time", e.time}, {"event", e.event}, {"from", e.from}, {"to", e.to}, {"detail", e.detail}});
    if (state_id.empty()) {
        // Not upgraded yet (found by tests/fuzz): written back as it was read, format 1, so
        // it still parses (format 2 requires a state ID) and the next start upgrades it.
        json paths = json::array();
        for (const auto& c : components) paths.push_back(c.name);
        const json j = {{"format", 1}, {"app", app}, {"version", version}, {"origin", origin},
                        {"state_paths", paths}, {"history", h}};
        return j.dump(2) + "\n";
    }
    json comps = json::array();
    for (const auto& c : components)
        comps.push_back({{"kind", c.kind},
                         {"name", c.name},
                         {"binding", c.binding},
                         {"mount_point", c.mount_point},
                         {"filesystem_mount_point", c.filesystem_mount_point},
                         {"bind_source", c.bind_source},
                         {"bind_mount_point", c.bind_mount_point},
                         {"bind_filesystem", c.bind_filesystem},
                         {"device", c.device},
                         {"inode", c.inode}});
    json migs = json::array();
    for (const auto& m : migrations)
        migs.push_back({{"name", m.name}, {"sha256", m.sha256}, {"time", m.time}, {"engine", m.engine}});
    const json j = {{"format", kFormat},
                    {"app", app},
                    {"version", version},
                    {"state_id", state_id},
                    {"origin", origin},
                    {"components", comps},
                    {"migrations", migs},
                    {"writer",
                     {{"store_id", writer.store_id}, {"generation", writer.generation}, {"deferred", writer.deferred}}},
                    {"history", h}};
    return j.dump(2) + "\n";
}

Marker Marker::from_json(const std::string& text) {
    const auto j = Object::parse("state marker", text);
    Marker m;
    const int format = j.format(1, kFormat);
    m.app = j.string("app");
    m.version = j.string("version");
    m.origin = j.string("origin");
    if (format == 1) {
        // Before state identity: paths only, bound on the first start of this bartl.
        for (const auto& p : j.strings("state_paths")) m.components.push_back(ComponentRecord{"path", p, "", "", "", 0, ""});
    } else {
        m.state_id = j.string("state_id");
        if (!is_state_id(m.state_id)) j.fail("state_id", "must be 32 lower-case hex digits, not \"" + m.state_id + "\"");
        for (const auto& c : j.objects("components")) {
            ComponentRecord r;
            r.kind = c.string("kind");
            r.name = c.string("name");
            r.binding = c.string("binding");
            // Databases (state/database.hpp): "setting" (postgresql), "comment" (mariadb), "file" (sqlite).
            static const std::set<std::string> known{"xattr", "inode", "setting", "comment", "file", ""};
            if (!known.count(r.binding))
                c.fail("binding", "has unknown value \"" + r.binding + "\" (expected xattr, inode, setting, comment "
                                  "or file)");
            r.mount_point = c.string("mount_point");
            r.device = c.string("device");
            r.inode = c.unsigned_integer("inode");
            r.filesystem_mount_point = c.optional_string("filesystem_mount_point").value_or("");
            r.bind_source = c.optional_string("bind_source").value_or("");
            r.bind_mount_point = c.optional_string("bind_mount_point").value_or("");
            r.bind_filesystem = c.optional_string("bind_filesystem").value_or("");
            if (r.bind_source.empty() != r.bind_mount_point.empty())
                c.fail(r.bind_source.empty() ? "bind_source" : "bind_mount_point",
                       "must be given with " + std::string(r.bind_source.empty() ? "bind_mount_point" : "bind_source"));
            m.components.push_back(std::move(r));
        }
        for (const auto& a : j.objects("migrations"))
            m.migrations.push_back(
                AppliedMigration{a.string("name"), get_hex_or_empty(a, "sha256", 64), a.string("time"), a.string("engine")});
        const auto w = j.object("writer");
        m.writer.store_id = w.string("store_id");
        m.writer.generation = w.unsigned_integer("generation");
        m.writer.deferred = w.string("deferred");
        if (m.writer.deferred != "" && m.writer.deferred != "claim" && m.writer.deferred != "takeover")
            w.fail("deferred", "has unknown value \"" + m.writer.deferred + "\" (expected \"\", claim or takeover)");
    }
    for (const auto& e : j.objects("history"))
        m.history.push_back({e.string("time"), e.string("event"), e.string("from"), e.string("to"), e.string("detail")});
    return m;
}

std::string Intent::to_json() const {
    const json j = {{"format", kFormat},
                    {"op", op},
                    {"started", started},
                    {"pid", pid},
                    {"staging", staging},
                    {"targets", targets},
                    {"backup_id", backup_id},
                    {"from", from},
                    {"to", to},
                    {"state_id", state_id},
                    {"pre_migration_backup", pre_migration_backup}};
    return j.dump(2) + "\n";
}

Intent Intent::from_json(const std::string& text) {
    const auto j = Object::parse("intent record", text);
    const int format = j.format(1, kFormat);
    Intent in;
    in.op = j.string("op");
    // Cleaning up depends on the op, so an op this bartl does not know is not guessed at.
    if (in.op != "init" && in.op != "restore" && in.op != "migrate")
        j.fail("op", "has unknown value \"" + in.op + "\" (expected init, restore or migrate)");
    in.started = j.string("started");
    in.pid = static_cast<int>(j.integer("pid", std::numeric_limits<int>::min(), std::numeric_limits<int>::max()));
    in.staging = j.strings("staging");
    in.targets = j.strings("targets");
    in.backup_id = j.string("backup_id");
    in.from = j.string("from");
    in.to = j.string("to");
    if (format >= 2) {
        in.state_id = j.string("state_id");
        if (!in.state_id.empty() && !is_state_id(in.state_id))
            j.fail("state_id", "must be empty or 32 lower-case hex digits, not \"" + in.state_id + "\"");
        in.pre_migration_backup = j.string("pre_migration_backup");
    }
    return in;
}

}  // namespace bartl
