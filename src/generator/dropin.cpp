#include "generator/dropin.hpp"

#include <algorithm>
#include <optional>
#include <stdexcept>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/store_url.hpp"

namespace bartl {

namespace {

namespace fs = std::filesystem;

bool is_within(const fs::path& inner, const fs::path& outer) {
    return std::mismatch(outer.begin(), outer.end(), inner.begin(), inner.end()).first == outer.end();
}

void sort_unique(std::vector<fs::path>& v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
}

/// Drops every entry inside another one: ReadWritePaths= of the outer one covers it.
void drop_nested(std::vector<fs::path>& v) {
    sort_unique(v);
    std::vector<fs::path> out;
    for (const auto& p : v)
        if (out.empty() || !is_within(p, out.back())) out.push_back(p);
    v = std::move(out);
}

bool safe_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("/._+:,@=~-").find(c) != std::string_view::npos;
}

bool is_control(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
}

/// `text` with control characters as \xNN, for messages and comments.
std::string shown(std::string_view text) {
    std::string out;
    for (const char c : text)
        out += is_control(c) ? fmt::format("\\x{:02x}", static_cast<unsigned char>(c)) : std::string(1, c);
    return out;
}

/// Why the unit's sandbox (bartld@.service) hides or empties `path`, std::nullopt when it
/// does not: ProtectHome=yes makes /home, /root and /run/user inaccessible, PrivateTmp=yes
/// gives the unit an empty /tmp and /var/tmp of its own at every start, so state kept there
/// would be taken for lost and restored at each start.
std::optional<std::string> hidden_by_sandbox(const fs::path& path) {
    for (const char* dir : {"/home", "/root", "/run/user"})
        if (is_within(path, dir))
            return fmt::format("{}, which the unit cannot see (ProtectHome=yes)", dir);
    for (const char* dir : {"/tmp", "/var/tmp"})
        if (is_within(path, dir))
            return fmt::format("{}, which the unit gets empty at every start (PrivateTmp=yes)", dir);
    return std::nullopt;
}

}  // namespace

UnitNeeds unit_needs(const Config& config, const UnitTarget& target) {
    UnitNeeds n;
    // As written, not as the user database resolves them: bartl-generator cannot look them up
    // (bartl-prepare-dirs does at start), and bartld, which does, must compute the same
    // fingerprint from the same file.
    if (config.run_as) {
        n.user = config.run_as->user_written;
        n.group = config.run_as->group_written;
    }
    // Anything inside the unit's StateDirectory= is created and opened by systemd itself.
    auto own = [&](const fs::path& p) { return is_within(p, target.state_directory); };

    for (std::size_t i = 0; i < config.state_paths.size(); ++i) {
        const fs::path& sp = config.state_paths[i];
        n.mounts.push_back(sp);
        const fs::path parent = sp.parent_path();
        if (parent == sp.root_path()) {
            const std::string label = fmt::format("[state] paths[{}]", i);
            n.warnings.push_back(fmt::format(
                "{}: {} \"{}\" lies directly in /, which the unit cannot open for writing; move it one "
                "level down, e.g. to /srv{}",
                config.where(label), label, sp.string(), sp.string()));
            continue;
        }
        if (const auto hidden = hidden_by_sandbox(sp)) {
            const std::string label = fmt::format("[state] paths[{}]", i);
            n.warnings.push_back(fmt::format("{}: {} \"{}\" lies under {}; move it, e.g. to /srv/{}",
                                             config.where(label), label, sp.string(), *hidden,
                                             sp.filename().string()));
            continue;
        }
        if (own(parent)) continue;
        n.read_write.push_back(parent);
        n.state_parents.push_back(parent);
    }
    if (!own(config.bartl_dir)) {
        n.read_write.push_back(config.bartl_dir);
        n.mounts.push_back(config.bartl_dir);
        n.private_dirs.push_back(config.bartl_dir);
    }
    if (config.store.starts_with("file://")) {
        // Never created: a missing store directory is how an unmounted backup disk looks,
        // and bartld must see that rather than write backups onto the root filesystem.
        const fs::path dir = file_url_path(config.store);
        n.read_write.push_back(dir);
        n.mounts.push_back(dir);
    } else if (config.store.starts_with("s3://") || config.store.starts_with("sftp://")) {
        n.network = true;
    }
    for (std::size_t i = 0; i < config.databases.size(); ++i) {
        const Database& db = config.databases[i];
        if (db.type == Database::Type::sqlite) {
            // The file, its -wal, -shm and the side record are created beside it.
            const std::string label = fmt::format("[state] databases[{}]", i);
            if (const auto hidden = hidden_by_sandbox(db.path)) {
                n.warnings.push_back(fmt::format("{}: [[state.databases]] path \"{}\" lies under {}; move it, e.g. "
                                                 "to /srv/{}",
                                                 config.where(label), db.path.string(), *hidden,
                                                 db.path.filename().string()));
                continue;
            }
            n.mounts.push_back(db.path.parent_path());
            if (!own(db.path.parent_path())) n.read_write.push_back(db.path.parent_path());
        } else if (!db.local()) {
            n.network = true;
        } else {
            n.services.push_back(db.type == Database::Type::postgresql ? "postgresql.service" : "mariadb.service");
        }
    }
    std::sort(n.services.begin(), n.services.end());
    n.services.erase(std::unique(n.services.begin(), n.services.end()), n.services.end());
    drop_nested(n.read_write);
    sort_unique(n.mounts);
    sort_unique(n.state_parents);
    sort_unique(n.private_dirs);
    return n;
}

std::string unit_word(std::string_view text, bool exec) {
    bool plain = !text.empty();
    for (const char c : text) {
        if (is_control(c))
            throw std::invalid_argument(fmt::format("\"{}\" holds a control character, which no unit file line "
                                                    "can carry", shown(text)));
        plain = plain && safe_char(c);
    }
    std::string out;
    if (!plain) out += '"';
    for (const char c : text) {
        if (c == '%')
            out += "%%";
        else if (exec && c == '$')
            out += "$$";
        else if (c == '"' || c == '\\')
            out += {'\\', c};
        else
            out += c;
    }
    if (!plain) out += '"';
    return out;
}

std::string render_dropin(const UnitNeeds& needs, const fs::path& config_file, const fs::path& prepare_dirs) {
    const std::string comment_name = shown(config_file.string());
    std::string out = fmt::format(
        "# Written by bartl-generator(8) from {} at boot and at each \"systemctl daemon-reload\";\n"
        "# edits here are lost. Settings of your own belong in a drop-in of their own.\n",
        comment_name);

    out += "\n[Unit]\n";
    if (needs.network) out += "Wants=network-online.target\nAfter=network-online.target\n";
    for (const auto& s : needs.services) out += fmt::format("Wants={0}\nAfter={0}\n", unit_word(s));
    for (const auto& m : needs.mounts) out += fmt::format("RequiresMountsFor={}\n", unit_word(m.string()));

    out += "\n[Service]\n";
    auto prepare = [&](const std::vector<fs::path>& dirs, const std::string& options) {
        if (dirs.empty()) return;
        out += "ExecStartPre=+" + unit_word(prepare_dirs.string(), true) + options;
        for (const auto& d : dirs) out += " " + unit_word(d.string(), true);
        out += "\n";
    };
    const std::string owner = !needs.group.empty() ? " --mode=0750 --group=" + unit_word(needs.group, true)
                              : !needs.user.empty() ? " --mode=0750 --group-of=" + unit_word(needs.user, true)
                                                    : std::string(" --mode=0755");
    prepare(needs.state_parents, owner);
    prepare(needs.private_dirs, " --mode=0750");
    for (const auto& p : needs.read_write) out += fmt::format("ReadWritePaths={}\n", unit_word("-" + p.string()));
    out += fmt::format("Environment={}={}\n", kSandboxEnv, sandbox_fingerprint(needs));
    return out;
}

std::string sandbox_fingerprint(const UnitNeeds& needs) {
    // Each item framed by its length, so that no two different needs give the same text.
    std::string text;
    auto add = [&](std::string_view tag, std::string_view value) {
        text += fmt::format("{}:{}:{};", tag, value.size(), value);
    };
    for (const auto& p : needs.read_write) add("rw", p.string());
    for (const auto& p : needs.mounts) add("mount", p.string());
    for (const auto& p : needs.state_parents) add("parent", p.string());
    for (const auto& p : needs.private_dirs) add("private", p.string());
    for (const auto& s : needs.services) add("service", s);
    add("user", needs.user);
    add("group", needs.group);
    add("network", needs.network ? "1" : "0");
    std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a 64 offset basis and prime
    for (const char c : text) {
        h ^= static_cast<unsigned char>(c);
        h *= 0x100000001b3ULL;
    }
    return fmt::format("{:016x}", h);
}

void check_sandbox_fits(const Config& config, const std::string& fingerprint, const fs::path& state_directory,
                        const std::string& unit) {
    if (fingerprint.empty()) return;
    const UnitNeeds needs = unit_needs(config, {unit, state_directory});
    if (sandbox_fingerprint(needs) == fingerprint) return;
    throw ConfigError(fmt::format(
        "{}: {} was set up by bartl-generator(8) for another version of this file ([state] paths, "
        "bartl_dir, [[state.databases]], [backup] store or [app] user changed since boot or the last "
        "daemon-reload), so its sandbox does not open what the file declares now; run \"systemctl daemon-reload\", then start "
        "{} again",
        config.file.string(), unit, unit));
}

}  // namespace bartl
