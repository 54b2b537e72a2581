// bartl.toml loading and validation. Every error names FILE:LINE:COLUMN of the node at
// fault (toml++ keeps source positions for keys and values), the key as "[table] key", and
// what would be accepted, because the operator reads it in the journal with exit code 78
// and no other context.
#include "config/config.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstring>
#include <cstdint>
#include <grp.h>
#include <memory>
#include <pwd.h>
#include <regex.h>
#include <span>
#include <stdexcept>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "bartl_build_config.h"
#include "core/duration.hpp"
#include "core/error.hpp"
#include "core/semver.hpp"
#include "core/store_url.hpp"
#include "config/userdb.hpp"

namespace bartl {

namespace {

using namespace std::string_view_literals;
namespace fs = std::filesystem;

constexpr std::array app_keys{"name"sv,          "version"sv,         "version_file"sv,  "version_command"sv,
                              "version_timeout"sv, "version_pattern"sv, "exec"sv,          "user"sv,
                              "group"sv,           "environment"sv,     "working_directory"sv, "ready"sv,
                              "ready_command"sv,   "ready_interval"sv,  "ready_timeout"sv, "stop_timeout"sv};
constexpr std::array state_keys{"paths"sv, "bartl_dir"sv, "moved"sv, "databases"sv};
constexpr std::array state_databases_keys{"type"sv, "name"sv, "connection"sv, "path"sv, "password_credential"sv};
constexpr std::array mariadb_connection_words{"socket"sv, "user"sv, "host"sv, "port"sv};
constexpr std::array hooks_keys{"init"sv,        "init_component"sv, "migrations"sv, "pre_backup"sv,
                                "post_backup"sv, "post_restore"sv,   "timeout"sv};
constexpr std::array backup_keys{"store"sv,     "interval"sv,   "before_migrate"sv, "consistency"sv, "compression"sv,
                                 "keep_last"sv, "keep_daily"sv, "keep_weekly"sv,    "keep_monthly"sv,
                                 "keep_pre_migration"sv, "exclude"sv,      "nice"sv,      "encrypt_to"sv,     "encrypt_to_file"sv,
                                 "identity_file"sv, "signing_key_file"sv, "trusted_keys"sv, "trusted_keys_file"sv,
                                 "fence_check"sv};

constexpr std::array store_keys{"call_timeout"sv, "retry_for"sv, "s3"sv, "sftp"sv};
constexpr std::array store_s3_keys{"endpoint"sv,      "region"sv,    "path_style"sv,      "storage_class"sv,
                                   "ca_file"sv,       "part_size"sv, "parts_in_flight"sv, "profile"sv};
constexpr std::array store_sftp_keys{"key_file"sv, "known_hosts"sv};

struct Schema {
    std::string_view table;
    std::span<const std::string_view> keys;
};
const std::array<Schema, 7> schema{{
    {"app", app_keys},
    {"state", state_keys},
    {"hooks", hooks_keys},
    {"backup", backup_keys},
    {"store", store_keys},
    {"store.s3", store_s3_keys},
    {"store.sftp", store_sftp_keys},
}};

// zstd refuses more workers than this (ZSTDMT_NBWORKERS_MAX on 64-bit hosts).
constexpr int max_compression_threads = 256;
constexpr std::size_t max_name_length = 64;

/// Optimal-string-alignment distance, case-insensitive: a transposed pair ("nmae") costs one
/// edit, as it is the most common typo.
std::size_t edit_distance(std::string_view a, std::string_view b) {
    auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; };
    const std::size_t n = a.size(), m = b.size();
    std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
    for (std::size_t i = 0; i <= n; ++i)
        d[i][0] = i;
    for (std::size_t j = 0; j <= m; ++j)
        d[0][j] = j;
    for (std::size_t i = 1; i <= n; ++i)
        for (std::size_t j = 1; j <= m; ++j) {
            const std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) && lower(a[i - 2]) == lower(b[j - 1]))
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    return d[n][m];
}

/// The candidate closest to `word`, when close enough to be a plausible typo of it.
std::optional<std::string_view> nearest(std::string_view word, std::span<const std::string_view> candidates) {
    std::optional<std::string_view> best;
    std::size_t best_distance = SIZE_MAX;
    for (std::string_view c : candidates) {
        const std::size_t dist = edit_distance(word, c);
        if (dist < best_distance) {
            best = c;
            best_distance = dist;
        }
    }
    // Up to two edits, but never more than a third of the word: "foo" must not become "ready".
    if (best && best_distance <= std::min<std::size_t>(2, std::max<std::size_t>(1, best->size() / 3)))
        return best;
    return std::nullopt;
}

std::string type_name(const toml::node& node) {
    switch (node.type()) {
        case toml::node_type::table: return "table";
        case toml::node_type::array: return "array";
        case toml::node_type::string: return "string";
        case toml::node_type::integer: return "integer";
        case toml::node_type::floating_point: return "float";
        case toml::node_type::boolean: return "boolean";
        case toml::node_type::date: return "date";
        case toml::node_type::time: return "time";
        case toml::node_type::date_time: return "date-time";
        case toml::node_type::none: break;
    }
    return "nothing";
}

bool valid_name(std::string_view name) {
    if (name.empty() || name.size() > max_name_length)
        return false;
    auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    if (!lower_or_digit(name.front()))
        return false;
    return std::all_of(name.begin(), name.end(), [&](char c) { return lower_or_digit(c) || c == '_' || c == '-'; });
}

constexpr std::string_view name_rule =
    "use lowercase letters, digits, '_' and '-', starting with a letter or digit, at most 64 characters";

/// True when `inner` equals `outer` or lies below it, compared component by component
/// ("/var/lib/notes2" is not inside "/var/lib/notes").
bool is_within(const fs::path& inner, const fs::path& outer) {
    return std::mismatch(outer.begin(), outer.end(), inner.begin(), inner.end()).first == outer.end();
}

/// Parses a decimal integer that must fill `text` completely.
std::optional<long long> parse_int(std::string_view text) {
    long long value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size())
        return std::nullopt;
    return value;
}

/// One [table] of the file, or an absent one (table == nullptr).
struct Section {
    std::string_view name;
    const toml::table* table = nullptr;

    const toml::node* get(std::string_view key) const { return table ? table->get(key) : nullptr; }
    std::string label(std::string_view key) const { return fmt::format("[{}] {}", name, key); }
    toml::source_region where() const { return table ? table->source() : toml::source_region{}; }
};

class Parser {
public:
    explicit Parser(std::string source, LoadOptions options = {}) : source_(std::move(source)), options_(options) {}

    /// What loading may consult besides the file.
    const LoadOptions& options() const noexcept { return options_; }

    /// "SOURCE:LINE:COLUMN" of a node (1:1 when unknown).
    std::string position(const toml::source_region& where) const {
        const auto line = where.begin.line ? where.begin.line : 1;
        const auto column = where.begin.line ? where.begin.column : 1;
        return fmt::format("{}:{}:{}", source_, line, column);
    }

    /// The file name used in messages.
    const std::string& source() const noexcept { return source_; }

    /// Throws ConfigError "SOURCE:LINE:COLUMN: message"; an unknown position reads 1:1.
    [[noreturn]] void fail(const toml::source_region& where, std::string_view message) const {
        const auto line = where.begin.line ? where.begin.line : 1;
        const auto column = where.begin.line ? where.begin.column : 1;
        throw ConfigError(fmt::format("{}:{}:{}: {}", source_, line, column, message));
    }

    /// Rejects top-level keys and tables that bartl does not know.
    void check_top_level(const toml::table& doc) const {
        std::array<std::string_view, schema.size()> tables;
        std::transform(schema.begin(), schema.end(), tables.begin(), [](const Schema& s) { return s.table; });
        // Only top-level tables stand at the top ("store.s3" lives inside [store]).
        for (auto&& [key, node] : doc) {
            // "store" is a table ([store]) and a key of [backup]: only a table is the table.
            if (std::find(tables.begin(), tables.end(), key.str()) != tables.end() &&
                (node.is_table() || !home_of(key.str())))
                continue;
            if (node.is_table()) {
                if (auto near = nearest(key.str(), tables))
                    fail(key.source(), fmt::format("unknown table [{}]; did you mean [{}]?", key.str(), *near));
                fail(key.source(), fmt::format("unknown table [{}]; bartl.toml has [app], [state], [hooks], [backup] "
                                               "and [store]",
                                               key.str()));
            }
            if (auto home = home_of(key.str()))
                fail(key.source(), fmt::format("key '{}' is outside any table; it belongs in [{}]", key.str(), *home));
            fail(key.source(), fmt::format("unknown key '{}' outside any table; bartl.toml has [app], [state], "
                                           "[hooks] and [backup]",
                                           key.str()));
        }
    }

    /// The table `name` of `doc` ("store.s3": the table s3 in the table store) after checking
    /// it holds only known keys.
    Section section(const toml::table& doc, std::string_view name) const {
        const Schema& s = *std::find_if(schema.begin(), schema.end(), [&](const Schema& x) { return x.table == name; });
        const toml::node* node = nullptr;
        if (const auto dot = name.find('.'); dot != std::string_view::npos) {
            const toml::node* parent = doc.get(name.substr(0, dot));
            if (parent && parent->is_table()) node = parent->as_table()->get(name.substr(dot + 1));
        } else {
            node = doc.get(name);
        }
        if (node == nullptr)
            return Section{name, nullptr};
        if (!node->is_table())
            fail(node->source(), fmt::format("[{}] must be a table, got {}", name, type_name(*node)));
        const toml::table& table = *node->as_table();
        for (auto&& [key, value] : table) {
            if (std::find(s.keys.begin(), s.keys.end(), key.str()) != s.keys.end())
                continue;
            // A known key in the wrong table is a likelier mistake than a typo, so say so first.
            if (auto home = home_of(key.str()))
                fail(key.source(), fmt::format("unknown key '{}' in [{}]; it belongs in [{}]", key.str(), name, *home));
            if (auto near = nearest(key.str(), s.keys))
                fail(key.source(), fmt::format("unknown key '{}' in [{}]; did you mean '{}'?", key.str(), name, *near));
            fail(key.source(),
                 fmt::format("unknown key '{}' in [{}]; known keys: {}", key.str(), name, fmt::join(s.keys, ", ")));
        }
        return Section{name, &table};
    }

    std::optional<std::string> string(const Section& sec, std::string_view key) const {
        const toml::node* node = sec.get(key);
        if (node == nullptr)
            return std::nullopt;
        if (!node->is_string())
            fail(node->source(), fmt::format("{} must be a string, got {}", sec.label(key), type_name(*node)));
        const std::string& s = node->as_string()->get();
        if (s.find('\0') != std::string::npos)
            fail(node->source(), fmt::format("{} must not contain a NUL character", sec.label(key)));
        return s;
    }

    std::optional<bool> boolean(const Section& sec, std::string_view key) const {
        const toml::node* node = sec.get(key);
        if (node == nullptr)
            return std::nullopt;
        if (!node->is_boolean())
            fail(node->source(),
                 fmt::format("{} must be a boolean (true or false), got {}", sec.label(key), type_name(*node)));
        return node->as_boolean()->get();
    }

    /// A keep_* count: an integer from 0 up to UINT_MAX.
    std::optional<unsigned> count(const Section& sec, std::string_view key) const {
        const toml::node* node = sec.get(key);
        if (node == nullptr)
            return std::nullopt;
        if (!node->is_integer())
            fail(node->source(),
                 fmt::format("{} must be a non-negative integer, got {}", sec.label(key), type_name(*node)));
        const std::int64_t v = node->as_integer()->get();
        if (v < 0 || v > std::int64_t(UINT_MAX))
            fail(node->source(), fmt::format("{} must be a non-negative integer, got {}", sec.label(key), v));
        return unsigned(v);
    }

    /// A duration string (core/duration.hpp). `zero_ok` for timeouts where 0 means no limit.
    std::optional<std::chrono::milliseconds> duration(const Section& sec, std::string_view key, bool zero_ok) const {
        const toml::node* node = sec.get(key);
        if (node == nullptr)
            return std::nullopt;
        if (!node->is_string())
            fail(node->source(),
                 fmt::format("{} must be a duration string such as \"90s\", \"5m\" or \"1h30m\", got {}",
                             sec.label(key), type_name(*node)));
        std::chrono::milliseconds d;
        try {
            d = parse_duration(node->as_string()->get());
        } catch (const std::invalid_argument& e) {
            fail(node->source(), fmt::format("{}: {}", sec.label(key), e.what()));
        }
        if (d.count() == 0 && !zero_ok)
            fail(node->source(), fmt::format("{} must be longer than 0", sec.label(key)));
        return d;
    }

    /// An absolute path. Only the syntax is checked: the file need not exist yet.
    std::optional<fs::path> absolute_path(const Section& sec, std::string_view key) const {
        auto s = string(sec, key);
        if (!s)
            return std::nullopt;
        if (s->empty() || s->front() != '/')
            fail(sec.get(key)->source(), fmt::format("{} must be an absolute path, got \"{}\"", sec.label(key), *s));
        return fs::path(*s);
    }

    /// An argv array. Empty is returned as empty (the caller decides what that means);
    /// argv[0] must be an absolute path because bartld's PATH under systemd is not the
    /// operator's shell PATH.
    std::vector<std::string> argv(const Section& sec, std::string_view key) const {
        const toml::node* node = sec.get(key);
        if (node == nullptr)
            return {};
        if (!node->is_array())
            fail(node->source(),
                 fmt::format("{} must be an array of strings, got {}", sec.label(key), type_name(*node)));
        std::vector<std::string> out;
        const toml::array& arr = *node->as_array();
        for (std::size_t i = 0; i < arr.size(); ++i) {
            const toml::node& el = arr[i];
            if (!el.is_string())
                fail(el.source(), fmt::format("{} must be an array of strings, got {} at index {}", sec.label(key),
                                              type_name(el), i));
            const std::string& s = el.as_string()->get();
            if (s.find('\0') != std::string::npos)
                fail(el.source(), fmt::format("{}[{}] must not contain a NUL character", sec.label(key), i));
            if (i == 0 && (s.empty() || s.front() != '/'))
                fail(el.source(),
                     fmt::format("{}: the program must be an absolute path, got \"{}\"", sec.label(key), s));
            out.push_back(s);
        }
        return out;
    }


private:
    /// The table a key belongs to, when it is one of bartl's keys.
    static std::optional<std::string_view> home_of(std::string_view key) {
        for (const Schema& s : schema)
            if (std::find(s.keys.begin(), s.keys.end(), key) != s.keys.end())
                return s.table;
        return std::nullopt;
    }

    std::string source_;
    LoadOptions options_;
};

/// Remembers where `key` of `sec` was set, for checks after loading (Config::where()).
void record_position(const Parser& p, const Section& sec, std::string_view key, Config& c) {
    if (const toml::node* n = sec.get(key)) c.positions[sec.label(key)] = p.position(n->source());
}

// ---- [app] ----------------------------------------------------------------------------

/// Parses HOST[:PORT] (HOST may be a bracketed IPv6 address) into r.host and r.port.
/// `label` and `value` name the key and its text in messages.
void parse_host_port(const Parser& p, const toml::node& node, std::string_view label, std::string_view value,
                     std::string_view authority, std::optional<int> default_port, Readiness& r) {
    std::string_view host = authority, port_text;
    bool has_port = false;
    if (authority.starts_with('[')) {
        const auto close = authority.find(']');
        if (close == std::string_view::npos)
            p.fail(node.source(), fmt::format("{} \"{}\": unclosed '[' in the host", label, value));
        host = authority.substr(1, close - 1);
        const std::string_view rest = authority.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':')
                p.fail(node.source(), fmt::format("{} \"{}\": expected ':PORT' after the host", label, value));
            port_text = rest.substr(1);
            has_port = true;
        }
    } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port_text = authority.substr(colon + 1);
        has_port = true;
    }
    if (host.empty())
        p.fail(node.source(), fmt::format("{} \"{}\": the host is missing", label, value));
    if (host.find('@') != std::string_view::npos)
        p.fail(node.source(), fmt::format("{} \"{}\": user names are not supported here", label, value));
    if (!has_port) {
        if (!default_port)
            p.fail(node.source(), fmt::format("{} \"{}\": the port is missing (write tcp://HOST:PORT)", label, value));
        r.port = *default_port;
    } else {
        const auto port = parse_int(port_text);
        if (!port || *port < 1 || *port > 65535)
            p.fail(node.source(),
                   fmt::format("{} \"{}\": port \"{}\" is not a number from 1 to 65535", label, value, port_text));
        r.port = int(*port);
    }
    r.host = std::string(host);
}

Readiness parse_ready(const Parser& p, const Section& app) {
    Readiness r;
    const auto text = p.string(app, "ready");
    if (!text)
        return r;
    const toml::node& node = *app.get("ready");
    const std::string label = app.label("ready");
    const std::string_view v = *text;
    if (v == "notify") {
        r.kind = Readiness::Kind::notify;
    } else if (v == "started") {
        r.kind = Readiness::Kind::started;
    } else if (v == "command") {
        r.kind = Readiness::Kind::command;
    } else if (v.starts_with("tcp://")) {
        r.kind = Readiness::Kind::tcp;
        const std::string_view authority = v.substr(6);
        if (authority.find('/') != std::string_view::npos)
            p.fail(node.source(),
                   fmt::format("{} \"{}\": a tcp check takes no path (write tcp://HOST:PORT)", label, v));
        parse_host_port(p, node, label, v, authority, std::nullopt, r);
    } else if (v.starts_with("http://")) {
        r.kind = Readiness::Kind::http;
        const std::string_view rest = v.substr(7);
        const auto slash = rest.find_first_of("/?");
        const std::string_view authority = rest.substr(0, slash);
        parse_host_port(p, node, label, v, authority, 80, r);
        const std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
        // "http://h:1?x" asks for "/?x": an HTTP request line needs a path before the query.
        r.path = path.starts_with('/') ? std::string(path) : "/" + std::string(path);
        r.url = std::string(v);
    } else {
        p.fail(node.source(), fmt::format("{} must be \"notify\", \"started\", \"tcp://HOST:PORT\", "
                                          "\"http://HOST:PORT/PATH\" or \"command\", got \"{}\"",
                                          label, v));
    }
    return r;
}

/// [app] ready_command and ready_interval, which belong to ready = "command" only.
void parse_ready_command(const Parser& p, const Section& app, Readiness& r) {
    const toml::node* cmd = app.get("ready_command");
    const toml::node* interval = app.get("ready_interval");
    if (r.kind != Readiness::Kind::command) {
        if (cmd || interval)
            p.fail((cmd ? cmd : interval)->source(),
                   fmt::format("{} is set but [app] ready is not \"command\"", app.label(cmd ? "ready_command" : "ready_interval")));
        return;
    }
    if (!cmd)
        p.fail(app.get("ready")->source(),
               "[app] ready = \"command\" needs [app] ready_command, the probe whose exit status 0 means ready");
    r.command = p.argv(app, "ready_command");
    if (r.command.empty())
        p.fail(cmd->source(), "[app] ready_command must not be empty");
    if (auto d = p.duration(app, "ready_interval", false))
        r.interval = *d;
}

/// All digits: systemd's User= takes a numeric UID too.
bool is_number(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// [app] user and group, resolved now so that a typo is a config error, not a failed start.
void parse_run_as(const Parser& p, const Section& app, Config& c) {
    const auto user = p.string(app, "user");
    const auto group_text = p.string(app, "group");
    if (!user) {
        if (group_text)
            p.fail(app.get("group")->source(), "[app] group is set but [app] user is not; name the user too");
        return;
    }
    const toml::node& user_node = *app.get("user");
    RunAs r;
    r.user = *user;
    r.user_written = *user;
    r.group_written = group_text.value_or("");
    const auto& pos = user_node.source().begin;
    r.where = fmt::format("{}:{}:{}", p.source(), pos.line, pos.column);
    if (!p.options().resolve_users) {
        r.group = group_text.value_or("");
        c.run_as = std::move(r);
        return;
    }
    passwd pw{};
    std::vector<char> pw_buf;
    bool found = lookup_entry([&](passwd* e, char* b, std::size_t n, passwd** out) {
        return ::getpwnam_r(user->c_str(), e, b, n, out);
    }, pw, pw_buf);
    if (!found && is_number(*user)) {
        const auto uid = parse_int(*user);
        found = uid && *uid >= 0 && *uid < 4294967295LL && lookup_entry([&](passwd* e, char* b, std::size_t n, passwd** out) {
            return ::getpwuid_r(uid_t(*uid), e, b, n, out);
        }, pw, pw_buf);
    }
    if (user->empty() || !found)
        p.fail(user_node.source(), fmt::format("[app] user \"{}\" does not exist in the user database (create it, "
                                               "e.g. with a sysusers.d(5) entry, or fix the name)",
                                               *user));
    r.uid = pw.pw_uid;
    r.gid = pw.pw_gid;
    r.home = pw.pw_dir ? pw.pw_dir : "/";
    const std::string user_name = pw.pw_name;

    struct group gr{};
    std::vector<char> gr_buf;
    if (group_text) {
        found = lookup_entry([&](struct group* e, char* b, std::size_t n, struct group** out) {
            return ::getgrnam_r(group_text->c_str(), e, b, n, out);
        }, gr, gr_buf);
        if (!found && is_number(*group_text)) {
            const auto gid = parse_int(*group_text);
            found = gid && *gid >= 0 && *gid < 4294967295LL && lookup_entry([&](struct group* e, char* b, std::size_t n, struct group** out) {
                return ::getgrgid_r(gid_t(*gid), e, b, n, out);
            }, gr, gr_buf);
        }
        if (group_text->empty() || !found)
            p.fail(app.get("group")->source(),
                   fmt::format("[app] group \"{}\" does not exist in the group database", *group_text));
        r.gid = gr.gr_gid;
        r.group = gr.gr_name;
    } else if (lookup_entry([&](struct group* e, char* b, std::size_t n, struct group** out) {
                   return ::getgrgid_r(r.gid, e, b, n, out);
               }, gr, gr_buf)) {
        r.group = gr.gr_name;
    } else {
        r.group = std::to_string(r.gid);  // a primary group without a name still works
    }

    // As initgroups(3), which systemd's User= uses: the user's groups, plus the chosen group.
    for (int size = 32; size <= 65536;) {
        r.groups.resize(std::size_t(size));
        int got = size;
        if (::getgrouplist(user_name.c_str(), r.gid, r.groups.data(), &got) >= 0) {
            r.groups.resize(std::size_t(got));
            break;
        }
        size = got > size ? got : size * 2;  // `got` says how many there are
    }
    if (r.groups.empty() || r.groups.size() > 65536)
        r.groups = {r.gid};
    r.user = user_name;
    c.run_as = std::move(r);
}

/// [app] version_pattern: compiled now, so that a bad one is reported at its position.
void parse_version_pattern(const Parser& p, const Section& app, Config& c) {
    const auto pattern = p.string(app, "version_pattern");
    if (!pattern)
        return;
    const toml::node& node = *app.get("version_pattern");
    if (c.version)
        p.fail(node.source(), "[app] version_pattern applies to version_command or version_file, not to a literal "
                              "[app] version");
    std::size_t groups = 0;
    try {
        groups = VersionPattern(*pattern).groups();
    } catch (const std::invalid_argument& e) {
        p.fail(node.source(), fmt::format("[app] version_pattern \"{}\" is not a POSIX extended regular expression: "
                                          "{}",
                                          *pattern, e.what()));
    }
    if (groups != 1)
        p.fail(node.source(), fmt::format("[app] version_pattern \"{}\" has {} capture groups; it needs exactly one, "
                                          "around the version (e.g. \"v=([0-9][^ ]*)\")",
                                          *pattern, groups));
    c.version_pattern = *pattern;
}

std::map<std::string, std::string> parse_environment(const Parser& p, const Section& app) {
    std::map<std::string, std::string> env;
    const toml::node* node = app.get("environment");
    if (node == nullptr)
        return env;
    if (!node->is_table())
        p.fail(node->source(), fmt::format("[app] environment must be a table of strings, got {}", type_name(*node)));
    for (auto&& [key, value] : *node->as_table()) {
        const std::string_view name = key.str();
        // execve() splits each entry at the first '=', so such a name could never arrive intact.
        if (name.empty() || name.find('=') != std::string_view::npos || name.find('\0') != std::string_view::npos)
            p.fail(key.source(), fmt::format("[app] environment: \"{}\" is not a valid variable name", name));
        if (!value.is_string())
            p.fail(value.source(),
                   fmt::format("[app] environment.{} must be a string, got {}", name, type_name(value)));
        const std::string& s = value.as_string()->get();
        if (s.find('\0') != std::string::npos)
            p.fail(value.source(), fmt::format("[app] environment.{} must not contain a NUL character", name));
        env.emplace(std::string(name), s);
    }
    return env;
}

void parse_app(const Parser& p, const Section& app, Config& c) {
    if (app.table == nullptr)
        p.fail({}, "[app] table is missing; it needs at least name and version");

    const auto name = p.string(app, "name");
    if (!name)
        p.fail(app.where(), "[app] name is required");
    if (!valid_name(*name))
        p.fail(app.get("name")->source(), fmt::format("[app] name \"{}\" is not a valid name: {}", *name, name_rule));
    c.app_name = *name;

    // Exactly one version source; report at the one that comes later in the file, since
    // that is usually the line just added.
    std::vector<std::pair<std::string_view, const toml::node*>> sources;
    for (std::string_view key : {"version"sv, "version_file"sv, "version_command"sv})
        if (const toml::node* n = app.get(key))
            sources.emplace_back(key, n);
    if (sources.empty())
        p.fail(app.where(), "[app] version is required: set one of version, version_file or version_command");
    if (sources.size() > 1) {
        std::sort(sources.begin(), sources.end(), [](const auto& a, const auto& b) {
            const auto& x = a.second->source().begin;
            const auto& y = b.second->source().begin;
            return std::pair(x.line, x.column) < std::pair(y.line, y.column);
        });
        std::vector<std::string> names;
        for (const auto& s : sources)
            names.push_back(app.label(s.first));
        const std::string list = sources.size() == 2 ? fmt::format("{} and {}", names[0], names[1])
                                                     : fmt::format("{}, {} and {}", names[0], names[1], names[2]);
        p.fail(sources[1].second->source(),
               fmt::format("{} version sources: {}; keep exactly one", sources.size() == 2 ? "two" : "three", list));
    }

    if (auto v = p.string(app, "version")) {
        try {
            Version::parse(*v);
        } catch (const std::invalid_argument& e) {
            // Version::parse names the text and what is wrong with it; only the key is added.
            p.fail(app.get("version")->source(), fmt::format("[app] version: {}", e.what()));
        }
        c.version = *v;
    }
    c.version_file = p.absolute_path(app, "version_file");
    if (app.get("version_command")) {
        c.version_command = p.argv(app, "version_command");
        if (c.version_command.empty())
            p.fail(app.get("version_command")->source(), "[app] version_command must not be empty");
    }
    if (auto d = p.duration(app, "version_timeout", true))
        c.version_command_timeout = *d;

    c.exec = p.argv(app, "exec");
    record_position(p, app, "exec", c);
    record_position(p, app, "version_command", c);
    c.environment = parse_environment(p, app);
    c.working_directory = p.absolute_path(app, "working_directory");
    parse_version_pattern(p, app, c);
    c.ready = parse_ready(p, app);
    parse_ready_command(p, app, c.ready);
    parse_run_as(p, app, c);
    if (app.get("ready") && c.exec.empty())
        p.fail(app.get("ready")->source(),
               "[app] ready is set but [app] exec is not: a state-only instance has no app to wait for");
    if (auto d = p.duration(app, "ready_timeout", false))
        c.ready_timeout = *d;
    if (auto d = p.duration(app, "stop_timeout", false))
        c.stop_timeout = *d;
}

// ---- [state] --------------------------------------------------------------------------

void parse_state(const Parser& p, const Section& state, Config& c) {
    const toml::node* node = state.get("paths");
    if (node == nullptr)
        p.fail(state.where(), "[state] paths is required: the absolute directories that hold the app's state");
    if (!node->is_array())
        p.fail(node->source(), fmt::format("[state] paths must be an array of strings, got {}", type_name(*node)));
    const toml::array& arr = *node->as_array();
    if (arr.empty())
        p.fail(node->source(), "[state] paths must name at least one directory");

    for (std::size_t i = 0; i < arr.size(); ++i) {
        const toml::node& el = arr[i];
        const std::string label = fmt::format("[state] paths[{}]", i);
        if (!el.is_string())
            p.fail(el.source(),
                   fmt::format("[state] paths must be an array of strings, got {} at index {}", type_name(el), i));
        const std::string& s = el.as_string()->get();
        if (s.empty() || s.front() != '/')
            p.fail(el.source(), fmt::format("{} must be an absolute path, got \"{}\"", label, s));
        if (s.find('\0') != std::string::npos)
            p.fail(el.source(), fmt::format("{} must not contain a NUL character", label));
        // Restore replaces each declared directory as a whole, so "/" would mean the system.
        if (s.find_first_not_of('/') == std::string::npos)
            p.fail(el.source(), fmt::format("{} must not be the root directory", label));
        const fs::path path(s);
        if (std::find(path.begin(), path.end(), "..") != path.end())
            p.fail(el.source(), fmt::format("{} \"{}\" must not contain '..'", label, s));
        std::string normal = path.lexically_normal().string();
        while (normal.size() > 1 && normal.back() == '/')
            normal.pop_back();
        if (s.back() == '/')
            p.fail(el.source(), fmt::format("{} \"{}\" must not end in '/' (write \"{}\")", label, s, normal));
        if (normal != s)
            p.fail(el.source(), fmt::format("{} \"{}\" is not normalised (write \"{}\")", label, s, normal));

        for (std::size_t j = 0; j < c.state_paths.size(); ++j) {
            const fs::path& other = c.state_paths[j];
            if (other == path)
                p.fail(el.source(), fmt::format("{} \"{}\" is listed twice (also paths[{}])", label, s, j));
            if (is_within(path, other))
                p.fail(el.source(), fmt::format("{} \"{}\" is inside paths[{}] \"{}\"; list only the outer directory",
                                                label, s, j, other.string()));
            if (is_within(other, path))
                p.fail(el.source(), fmt::format("{} \"{}\" contains paths[{}] \"{}\"; list only the outer directory",
                                                label, s, j, other.string()));
        }
        c.state_paths.push_back(path);
        c.positions[label] = p.position(el.source());
    }

    // [state] moved = { "/old/path" = "/declared/path" }: a restore maps the backup's old name
    // to the declared component (never by position).
    if (const toml::node* m = state.get("moved")) {
        if (!m->is_table())
            p.fail(m->source(), fmt::format("[state] moved must be a table of \"OLD PATH\" = \"DECLARED PATH\", got {}",
                                            type_name(*m)));
        for (auto&& [key, value] : *m->as_table()) {
            const std::string old(key.str());
            if (old.empty() || old.front() != '/')
                p.fail(key.source(), fmt::format("[state] moved: \"{}\" must be an absolute path", old));
            if (!value.is_string())
                p.fail(value.source(), fmt::format("[state] moved \"{}\" must be a string (a declared path), got {}", old,
                                                   type_name(value)));
            const fs::path to(value.as_string()->get());
            if (std::find(c.state_paths.begin(), c.state_paths.end(), to) == c.state_paths.end())
                p.fail(value.source(), fmt::format("[state] moved \"{}\" = \"{}\": \"{}\" is not one of [state] paths",
                                                   old, to.string(), to.string()));
            if (std::find(c.state_paths.begin(), c.state_paths.end(), fs::path(old)) != c.state_paths.end())
                p.fail(key.source(), fmt::format("[state] moved: \"{}\" is itself declared in [state] paths", old));
            for (const auto& [o, t] : c.moved)
                if (t == to)
                    p.fail(value.source(), fmt::format("[state] moved: \"{}\" and \"{}\" both move to \"{}\"",
                                                       o.string(), old, to.string()));
            c.moved[fs::path(old)] = to;
        }
    }

    // The marker, intent record and lock must survive a restore that replaces the state
    // directories wholesale, and must not travel inside a backup, so they live outside them.
    const toml::node* dir_node = state.get("bartl_dir");
    if (auto dir = p.absolute_path(state, "bartl_dir")) {
        // Without the trailing '/', which would otherwise hide an overlap from is_within().
        c.bartl_dir = dir->lexically_normal();
        if (!c.bartl_dir.has_filename() && c.bartl_dir.has_relative_path())
            c.bartl_dir = c.bartl_dir.parent_path();
    } else {
        c.bartl_dir = fs::path("/var/lib/bartl") / c.instance;  // systemd's StateDirectory= root
    }
    for (std::size_t i = 0; i < c.state_paths.size(); ++i) {
        const fs::path& sp = c.state_paths[i];
        if (!is_within(c.bartl_dir, sp) && !is_within(sp, c.bartl_dir))
            continue;
        if (dir_node)
            p.fail(dir_node->source(),
                   fmt::format("[state] bartl_dir \"{}\" overlaps [state] paths[{}] \"{}\"; bartl's own directory "
                               "must lie outside the declared state",
                               c.bartl_dir.string(), i, sp.string()));
        p.fail(arr[i].source(),
               fmt::format("[state] paths[{}] \"{}\" overlaps bartl's own directory {}; set [state] bartl_dir "
                           "to a directory outside the declared state",
                           i, sp.string(), c.bartl_dir.string()));
    }
}

// ---- [[state.databases]] --------------------------------------------------------------

/// Splits a connection string into its whitespace-separated words.
std::vector<std::string> words_of(const std::string& text) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
        std::size_t j = i;
        while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
        if (j > i) out.push_back(text.substr(i, j - i));
        i = j;
    }
    return out;
}

bool valid_database_name(std::string_view name) {
    if (name.empty() || name.size() > 63) return false;
    auto ok = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    };
    return std::all_of(name.begin(), name.end(), ok);
}

bool valid_credential_name(std::string_view name) {
    return !name.empty() && name.size() <= 255 && name != "." && name != ".." &&
           name.find('/') == std::string_view::npos;
}

void check_mariadb_connection(const Parser& p, const toml::node& node, const std::string& label,
                              const std::string& text) {
    bool socket = false, host = false;
    for (const auto& w : words_of(text)) {
        const auto eq = w.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == w.size())
            p.fail(node.source(), fmt::format("{} \"{}\": \"{}\" is not KEY=VALUE (keys: socket, user, host, port)",
                                              label, text, w));
        const std::string key = w.substr(0, eq);
        if (std::find(mariadb_connection_words.begin(), mariadb_connection_words.end(), key) ==
            mariadb_connection_words.end())
            p.fail(node.source(), fmt::format("{} \"{}\": unknown key '{}' (keys: socket, user, host, port; the "
                                              "password comes from password_credential)",
                                              label, text, key));
        const std::string value = w.substr(eq + 1);
        if (key == "socket" && value.front() != '/')
            p.fail(node.source(), fmt::format("{} \"{}\": socket must be an absolute path, got \"{}\"", label, text,
                                              value));
        if (key == "port") {
            const auto n = parse_int(value);
            if (!n || *n < 1 || *n > 65535)
                p.fail(node.source(), fmt::format("{} \"{}\": port must be 1..65535, got \"{}\"", label, text, value));
        }
        socket |= key == "socket";
        host |= key == "host";
    }
    if (socket && host)
        p.fail(node.source(), fmt::format("{} \"{}\": set socket or host, not both", label, text));
}

void check_postgresql_connection(const Parser& p, const toml::node& node, const std::string& label,
                                 const std::string& text) {
    // libpq parses the rest when it connects; the database is the entry's name, never the
    // connection's, so the two cannot disagree.
    for (const auto& w : words_of(text)) {
        if (w.rfind("dbname=", 0) == 0 || w == "dbname")
            p.fail(node.source(), fmt::format("{} \"{}\": leave dbname out; the database is the entry's name", label,
                                              text));
        if (w.rfind("password=", 0) == 0)
            p.fail(node.source(), fmt::format("{} \"{}\": a password does not belong in the configuration; name a "
                                              "systemd credential in password_credential",
                                              label, text));
    }
    if (text.rfind("postgres://", 0) == 0 || text.rfind("postgresql://", 0) == 0)
        p.fail(node.source(), fmt::format("{} \"{}\": write a conninfo string of KEY=VALUE words "
                                          "(\"host=/run/postgresql user=notes\"), not a URI",
                                          label, text));
}

void parse_databases(const Parser& p, const Section& state, Config& c) {
    const toml::node* node = state.get("databases");
    if (node == nullptr) return;
    if (!node->is_array_of_tables())
        p.fail(node->source(), fmt::format("[state] databases must be an array of tables ([[state.databases]]), "
                                           "got {}",
                                           type_name(*node)));
    const toml::array& arr = *node->as_array();
    std::vector<const toml::node*> names;
    for (std::size_t i = 0; i < arr.size(); ++i) {
        const toml::table& t = *arr[i].as_table();
        const Section sec{"state.databases", &t};
        for (auto&& [key, value] : t) {
            if (std::find(state_databases_keys.begin(), state_databases_keys.end(), key.str()) != state_databases_keys.end()) continue;
            if (auto near = nearest(key.str(), state_databases_keys))
                p.fail(key.source(), fmt::format("unknown key '{}' in [[state.databases]]; did you mean '{}'?",
                                                 key.str(), *near));
            p.fail(key.source(), fmt::format("unknown key '{}' in [[state.databases]]; known keys: {}", key.str(),
                                             fmt::join(state_databases_keys, ", ")));
        }
        Database d;
        d.where = p.position(t.source());
        const auto type = p.string(sec, "type");
        if (!type) p.fail(t.source(), "[[state.databases]] type is required: \"postgresql\", \"mariadb\" or \"sqlite\"");
        if (*type == "postgresql") d.type = Database::Type::postgresql;
        else if (*type == "mariadb") d.type = Database::Type::mariadb;
        else if (*type == "sqlite") d.type = Database::Type::sqlite;
        else
            p.fail(t.get("type")->source(), fmt::format("[[state.databases]] type \"{}\" is not one of \"postgresql\", "
                                                        "\"mariadb\", \"sqlite\"",
                                                        *type));
        const auto name = p.string(sec, "name");
        if (!name) p.fail(t.source(), "[[state.databases]] name is required: the database's name (sqlite: a label)");
        if (!valid_database_name(*name))
            p.fail(t.get("name")->source(),
                   fmt::format("[[state.databases]] name \"{}\" is not a valid name: use letters, digits, '_' and '-', "
                               "at most 63 characters",
                               *name));
        d.name = *name;
        for (std::size_t j = 0; j < c.databases.size(); ++j)
            if (c.databases[j].env_name() == d.env_name())
                p.fail(t.get("name")->source(),
                       c.databases[j].name == d.name
                           ? fmt::format("[[state.databases]] name \"{}\" is declared twice (also at {})", d.name,
                                         c.databases[j].where)
                           : fmt::format("[[state.databases]] name \"{}\" and \"{}\" (at {}) both give BARTL_DB_{}_*; "
                                         "rename one",
                                         d.name, c.databases[j].name, c.databases[j].where, d.env_name()));
        const toml::node* conn = t.get("connection");
        const toml::node* path = t.get("path");
        const toml::node* cred = t.get("password_credential");
        if (d.type == Database::Type::sqlite) {
            if (conn)
                p.fail(conn->source(), "[[state.databases]] connection does not apply to type \"sqlite\"; set path");
            if (cred)
                p.fail(cred->source(), "[[state.databases]] password_credential does not apply to type \"sqlite\"");
            if (!path)
                p.fail(t.source(), fmt::format("[[state.databases]] \"{}\" of type \"sqlite\" needs path: the "
                                               "database file",
                                               d.name));
            const auto s = p.string(sec, "path");
            if (s->empty() || s->front() != '/')
                p.fail(path->source(), fmt::format("[[state.databases]] path must be an absolute path, got \"{}\"", *s));
            const fs::path fp(*s);
            if (s->back() == '/' || fp.lexically_normal().string() != *s ||
                std::find(fp.begin(), fp.end(), "..") != fp.end())
                p.fail(path->source(), fmt::format("[[state.databases]] path \"{}\" must be a normalised file name "
                                                   "(no '..', no trailing '/')",
                                                   *s));
            for (std::size_t j = 0; j < c.state_paths.size(); ++j)
                if (is_within(fp, c.state_paths[j]))
                    p.fail(path->source(),
                           fmt::format("[[state.databases]] path \"{}\" is inside [state] paths[{}] \"{}\": a live "
                                       "SQLite file must not be archived as a plain file; move it out of the state "
                                       "directory or drop this entry",
                                       *s, j, c.state_paths[j].string()));
            if (is_within(fp, c.bartl_dir))
                p.fail(path->source(), fmt::format("[[state.databases]] path \"{}\" is inside bartl's own directory {}",
                                                   *s, c.bartl_dir.string()));
            for (const auto& o : c.databases)
                if (o.type == Database::Type::sqlite && o.path == fp)
                    p.fail(path->source(), fmt::format("[[state.databases]] path \"{}\" is declared twice (also \"{}\" "
                                                       "at {})",
                                                       *s, o.name, o.where));
            d.path = fp;
        } else {
            if (path)
                p.fail(path->source(), fmt::format("[[state.databases]] path applies to type \"sqlite\" only; a {} "
                                                   "database is reached by connection",
                                                   *type));
            if (!conn)
                p.fail(t.source(),
                       fmt::format("[[state.databases]] \"{}\" of type \"{}\" needs connection ({})", d.name, *type,
                                   d.type == Database::Type::postgresql ? "a libpq conninfo such as "
                                                                          "\"host=/run/postgresql user=notes\""
                                                                        : "such as \"socket=/run/mysqld/mysqld.sock "
                                                                          "user=notes\""));
            d.connection = *p.string(sec, "connection");
            if (d.type == Database::Type::mariadb)
                check_mariadb_connection(p, *conn, "[[state.databases]] connection", d.connection);
            else
                check_postgresql_connection(p, *conn, "[[state.databases]] connection", d.connection);
            if (cred) {
                d.password_credential = *p.string(sec, "password_credential");
                if (!valid_credential_name(d.password_credential))
                    p.fail(cred->source(), fmt::format("[[state.databases]] password_credential \"{}\" is not a "
                                                       "credential name (no '/')",
                                                       d.password_credential));
            }
        }
        c.positions[fmt::format("[state] databases[{}]", i)] = d.where;
        c.databases.push_back(std::move(d));
    }
}

/// A file:// store equal to, inside or around a state path nests backups in the state (each
/// backup holding the last) or makes the state a part of the store; both fail later.
void check_overlaps(const Parser& p, const Config& c) {
    if (c.store.rfind("file://", 0) != 0) return;
    fs::path dir;
    try {
        dir = file_url_path(c.store);
    } catch (const ConfigError&) {
        return;  // check_store() reported it
    }
    const auto pos = c.positions.count("[backup] store") ? c.positions.at("[backup] store") : "";
    for (std::size_t i = 0; i < c.state_paths.size(); ++i) {
        const auto& sp = c.state_paths[i];
        const char* how = dir == sp ? "is" : is_within(dir, sp) ? "is inside" : is_within(sp, dir) ? "contains" : nullptr;
        if (!how) continue;
        throw ConfigError(fmt::format("{}: [backup] store {} {} [state] paths[{}] \"{}\": backups would be backed up "
                                      "into each other, and a restore would replace the store; keep the store on "
                                      "another directory (ideally another disk)",
                                      pos.empty() ? p.position({}) : pos, c.store, how, i, sp.string()));
    }
    if (is_within(dir, c.bartl_dir) || is_within(c.bartl_dir, dir))
        throw ConfigError(fmt::format("{}: [backup] store {} overlaps bartl's own directory {}",
                                      pos.empty() ? p.position({}) : pos, c.store, c.bartl_dir.string()));
}

// ---- [hooks] --------------------------------------------------------------------------

void parse_hooks(const Parser& p, const Section& hooks, Config& c) {
    for (const auto key : hooks_keys) record_position(p, hooks, key, c);
    c.hook_init = p.argv(hooks, "init");
    c.hook_init_component = p.argv(hooks, "init_component");
    c.migrations_dir = p.absolute_path(hooks, "migrations");
    c.hook_pre_backup = p.argv(hooks, "pre_backup");
    c.hook_post_backup = p.argv(hooks, "post_backup");
    c.hook_post_restore = p.argv(hooks, "post_restore");
    if (auto d = p.duration(hooks, "timeout", true))
        c.hook_timeout = *d;
}

// ---- [backup] -------------------------------------------------------------------------

void check_store(const Parser& p, const toml::node& node, const std::string& url) {
    const std::string label = "[backup] store";
    const auto scheme_end = url.find("://");
    const std::string_view scheme =
        scheme_end == std::string::npos ? std::string_view{} : std::string_view(url).substr(0, scheme_end);
    if (scheme != "file" && scheme != "s3" && scheme != "sftp")
        p.fail(node.source(), fmt::format("{} \"{}\" must start with file://, s3:// or sftp://", label, url));
    const std::string_view rest = std::string_view(url).substr(scheme_end + 3);
    if (scheme == "file") {
        if (rest.empty() || rest.front() != '/')
            p.fail(
                node.source(),
                fmt::format("{} \"{}\": a file:// store needs an absolute path (file:///var/backups/...)", label, url));
        return;
    }
    const std::string_view authority = rest.substr(0, rest.find('/'));
    // Secrets come from systemd credentials (bartl(7)), never from this world-readable file.
    if (const auto at = authority.find('@');
        at != std::string_view::npos && authority.substr(0, at).find(':') != std::string_view::npos)
        p.fail(node.source(), fmt::format("{} holds a password; store secrets in systemd credentials "
                                          "(LoadCredential=), not in the config file",
                                          label));
    const auto at = authority.find('@');
    const std::string_view host = at == std::string_view::npos ? authority : authority.substr(at + 1);
    if (host.empty())
        p.fail(node.source(),
               fmt::format("{} \"{}\": the {} is missing", label, url, scheme == "s3" ? "bucket" : "host"));
    if (scheme == "sftp") {
        try {
            (void)parse_sftp_url(url);
        } catch (const ConfigError& e) {
            p.fail(node.source(), std::string("[backup] ") + e.what());
        }
    }
}

void parse_compression(const Parser& p, const Section& backup, Config& c) {
    const auto text = p.string(backup, "compression");
    if (!text)
        return;
    const toml::node& node = *backup.get("compression");
    auto bad = [&](std::string_view why) {
        p.fail(node.source(), fmt::format("[backup] compression \"{}\": {} (write \"zstd\", \"zstd:LEVEL\" or "
                                          "\"zstd:LEVEL:THREADS\")",
                                          *text, why));
    };
    std::vector<std::string_view> parts;
    std::string_view rest = *text;
    for (;;) {
        const auto colon = rest.find(':');
        parts.push_back(rest.substr(0, colon));
        if (colon == std::string_view::npos)
            break;
        rest = rest.substr(colon + 1);
    }
    if (parts[0] != "zstd")
        bad(fmt::format("unsupported algorithm \"{}\"", parts[0]));
    if (parts.size() > 3)
        bad("too many parts");
    if (parts.size() >= 2) {
        const auto level = parse_int(parts[1]);
        if (!level || *level < 1 || *level > 19 || parts[1].front() == '0')
            bad(fmt::format("level \"{}\" is not a number from 1 to 19", parts[1]));
        c.compression_level = int(*level);
    }
    if (parts.size() == 3) {
        const auto threads = parse_int(parts[2]);
        if (!threads || *threads < 0 || *threads > max_compression_threads ||
            (parts[2].size() > 1 && parts[2].front() == '0'))
            bad(fmt::format("threads \"{}\" is not a number from 0 (one per core) to {}", parts[2],
                            max_compression_threads));
        c.compression_threads = int(*threads);
    }
}

/// Whether `r` looks like a recipient age takes with -r: an X25519 key ("age1" + bech32), an
/// SSH public key line, or a plugin recipient ("age1NAME1..."); age itself checks the rest.
bool looks_like_recipient(const std::string& r) {
    const bool age_key = r.rfind("age1", 0) == 0 && r.size() > 8 && r.find_first_of(" \t") == std::string::npos;
    const bool ssh_key = r.rfind("ssh-ed25519 ", 0) == 0 || r.rfind("ssh-rsa ", 0) == 0;
    return age_key || ssh_key;
}

/// The elements of the array `key` of `sec` (empty when it is not set). Fails when it is not an
/// array (`items` says of what), is empty (`when_empty` says what to do instead), or holds
/// anything but strings.
std::vector<const toml::node*> string_array(const Parser& p, const Section& sec, std::string_view key,
                                            std::string_view items, std::string_view when_empty) {
    std::vector<const toml::node*> out;
    const toml::node* node = sec.get(key);
    if (!node) return out;
    if (!node->is_array())
        p.fail(node->source(), fmt::format("{} must be an array of {}, got {}", sec.label(key), items, type_name(*node)));
    const toml::array& arr = *node->as_array();
    if (arr.empty()) p.fail(node->source(), fmt::format("{} is empty: {}", sec.label(key), when_empty));
    for (std::size_t i = 0; i < arr.size(); ++i) {
        if (!arr[i].is_string())
            p.fail(arr[i].source(),
                   fmt::format("{}[{}] must be a string, got {}", sec.label(key), i, type_name(arr[i])));
        out.push_back(&arr[i]);
    }
    return out;
}

void parse_encryption(const Parser& p, const Section& backup, Config& c) {
    const auto to = string_array(p, backup, "encrypt_to", "age recipients",
                                 "list at least one recipient, or remove the key to store backups unencrypted");
    for (std::size_t i = 0; i < to.size(); ++i) {
        const std::string& r = to[i]->as_string()->get();
        if (!looks_like_recipient(r))
            p.fail(to[i]->source(), fmt::format("[backup] encrypt_to[{}] \"{}\" is not an age recipient (write "
                                                "\"age1...\" as age-keygen prints it, or an \"ssh-ed25519 AAAA...\" "
                                                "public key line)",
                                                i, r));
        c.encrypt_to.push_back(r);
        c.positions[fmt::format("[backup] encrypt_to[{}]", i)] = p.position(to[i]->source());
    }
    c.encrypt_to_file = p.absolute_path(backup, "encrypt_to_file");
    record_position(p, backup, "encrypt_to_file", c);
    c.identity_file = p.absolute_path(backup, "identity_file");
    record_position(p, backup, "identity_file", c);
}

/// [backup] signing_key_file, trusted_keys, trusted_keys_file: only their shape here; the keys
/// themselves are read by check_config_files() (ops/config_check.hpp).
void parse_signing(const Parser& p, const Section& backup, Config& c) {
    c.signing_key_file = p.absolute_path(backup, "signing_key_file");
    record_position(p, backup, "signing_key_file", c);
    c.trusted_keys_file = p.absolute_path(backup, "trusted_keys_file");
    record_position(p, backup, "trusted_keys_file", c);
    const auto keys = string_array(p, backup, "trusted_keys", "\"ssh-ed25519 AAAA... COMMENT\" public key lines",
                                   "list at least one public key, or remove the key to restore unsigned backups");
    for (std::size_t i = 0; i < keys.size(); ++i) {
        c.trusted_keys.push_back(keys[i]->as_string()->get());
        c.positions[fmt::format("[backup] trusted_keys[{}]", i)] = p.position(keys[i]->source());
    }
}

void parse_backup(const Parser& p, const Section& backup, Config& c) {
    record_position(p, backup, "store", c);
    if (auto store = p.string(backup, "store")) {
        if (!store->empty())
            check_store(p, *backup.get("store"), *store);
        c.store = *store;
    }
    if (auto d = p.duration(backup, "interval", false))
        c.interval = *d;
    if (auto d = p.duration(backup, "fence_check", true))
        c.fence_check = *d;
    if (auto b = p.boolean(backup, "before_migrate"))
        c.before_migrate = *b;
    if (auto s = p.string(backup, "consistency")) {
        if (*s == "live")
            c.consistency = Config::Consistency::live;
        else if (*s == "stop")
            c.consistency = Config::Consistency::stop;
        else
            p.fail(backup.get("consistency")->source(),
                   fmt::format("[backup] consistency must be \"live\" or \"stop\", got \"{}\"", *s));
    }
    parse_compression(p, backup, c);
    if (auto n = p.count(backup, "nice")) {
        if (*n > 19)
            p.fail(backup.get("nice")->source(),
                   fmt::format("[backup] nice must be 0 to 19 (added to bartld's niceness for backups), got {}", *n));
        c.backup_nice = int(*n);
    }
    if (auto n = p.count(backup, "keep_last"))
        c.retention.keep_last = *n;
    if (auto n = p.count(backup, "keep_daily"))
        c.retention.keep_daily = *n;
    if (auto n = p.count(backup, "keep_weekly"))
        c.retention.keep_weekly = *n;
    if (auto n = p.count(backup, "keep_monthly"))
        c.retention.keep_monthly = *n;
    if (auto n = p.count(backup, "keep_pre_migration"))
        c.retention.keep_pre_migration = *n;
    if (const toml::node* ex = backup.get("exclude")) {
        if (!ex->is_array())
            p.fail(ex->source(), fmt::format("[backup] exclude must be an array of glob strings, got {}", type_name(*ex)));
        const toml::array& arr = *ex->as_array();
        for (std::size_t i = 0; i < arr.size(); ++i) {
            const toml::node& el = arr[i];
            if (!el.is_string())
                p.fail(el.source(), fmt::format("[backup] exclude[{}] must be a glob string, got {}", i, type_name(el)));
            const std::string& g = el.as_string()->get();
            if (g.empty() || g.front() == '/')
                p.fail(el.source(), fmt::format("[backup] exclude[{}] \"{}\" must be a non-empty glob relative to each "
                                                "state path (\"temp-*.rdb\", \"cache/*\")",
                                                i, g));
            if (g == "*" || g == "**")
                p.fail(el.source(), fmt::format("[backup] exclude[{}] \"{}\" would leave everything out of the backup",
                                                i, g));
            c.backup_exclude.push_back(g);
        }
    }
    parse_encryption(p, backup, c);
    parse_signing(p, backup, c);
}

void check_instance_name(const std::string& instance) {
    if (!valid_name(instance))
        throw UsageError(fmt::format("invalid instance name \"{}\": {}", instance, name_rule));
}

}  // namespace

// ---- [store] --------------------------------------------------------------------------

/// A size: an integer of bytes, or a string "16MiB" / "16M" / "512KiB" (binary units).
std::optional<std::uint64_t> parse_size_value(const Parser& p, const Section& sec, std::string_view key) {
    const toml::node* node = sec.get(key);
    if (node == nullptr) return std::nullopt;
    if (node->is_integer()) {
        const auto v = node->as_integer()->get();
        if (v <= 0) p.fail(node->source(), fmt::format("{} must be positive, got {}", sec.label(key), v));
        return std::uint64_t(v);
    }
    if (!node->is_string())
        p.fail(node->source(), fmt::format("{} must be a size such as \"16MiB\" or a number of bytes, got {}",
                                           sec.label(key), type_name(*node)));
    const std::string& text = node->as_string()->get();
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
    const auto n = parse_int(std::string_view(text).substr(0, digits));
    const std::string unit = text.substr(digits);
    std::uint64_t mult = 0;
    if (unit.empty() || unit == "B") mult = 1;
    else if (unit == "K" || unit == "KiB") mult = 1ull << 10;
    else if (unit == "M" || unit == "MiB") mult = 1ull << 20;
    else if (unit == "G" || unit == "GiB") mult = 1ull << 30;
    if (!n || *n <= 0 || mult == 0 || (digits > 1 && text[0] == '0'))
        p.fail(node->source(), fmt::format("{} \"{}\" is not a size such as \"16MiB\" (units B, KiB, MiB, GiB)",
                                           sec.label(key), text));
    return std::uint64_t(*n) * mult;
}

void parse_store(const Parser& p, const Section& store, const Section& s3, const Section& sftp, Config& c) {
    auto& st = c.store_settings;
    for (const char* sub : {"s3", "sftp"})
        if (const toml::node* n = store.get(sub); n && !n->is_table())
            p.fail(n->source(), fmt::format("[store] {} must be a table ([store.{}]), got {}", sub, sub, type_name(*n)));
    if (auto d = p.duration(store, "call_timeout", false)) st.call_timeout = *d;
    if (auto d = p.duration(store, "retry_for", true)) st.retry_for = *d;
    if (auto v = p.string(s3, "endpoint")) {
        if (!v->empty() && v->rfind("http://", 0) != 0 && v->rfind("https://", 0) != 0)
            p.fail(s3.get("endpoint")->source(),
                   fmt::format("[store.s3] endpoint \"{}\" must be an http:// or https:// URL", *v));
        st.s3.endpoint = *v;
    }
    if (auto v = p.string(s3, "region")) {
        if (v->empty() || v->find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos)
            p.fail(s3.get("region")->source(),
                   fmt::format("[store.s3] region \"{}\" must be a region name such as \"eu-central-1\"", *v));
        st.s3.region = *v;
    }
    if (auto b = p.boolean(s3, "path_style")) st.s3.path_style = *b;
    if (auto v = p.string(s3, "storage_class")) st.s3.storage_class = *v;
    st.s3.ca_file = p.absolute_path(s3, "ca_file");
    if (auto n = parse_size_value(p, s3, "part_size")) {
        // S3's limits on a multipart upload part (the last part may be smaller).
        if (*n < (5ull << 20) || *n > (5ull << 30))
            p.fail(s3.get("part_size")->source(), "[store.s3] part_size must be from 5MiB to 5GiB (S3's part limits)");
        st.s3.part_size = *n;
    }
    if (auto n = p.count(s3, "parts_in_flight")) {
        if (*n < 1 || *n > 64)
            p.fail(s3.get("parts_in_flight")->source(), "[store.s3] parts_in_flight must be from 1 to 64");
        st.s3.parts_in_flight = *n;
    }
    if (auto v = p.string(s3, "profile")) {
        if (v->empty())
            p.fail(s3.get("profile")->source(), "[store.s3] profile must not be empty (leave it out to take "
                                                "AWS_PROFILE from the environment, else \"default\")");
        st.s3.profile = *v;
    }
    st.sftp.key_file = p.absolute_path(sftp, "key_file");
    record_position(p, sftp, "key_file", c);
    if (auto v = p.absolute_path(sftp, "known_hosts")) st.sftp.known_hosts = *v;
}

Config parse_config(const std::string& toml_text, const std::string& source_name, const std::string& instance,
                    const LoadOptions& options) {
    if (!instance.empty())
        check_instance_name(instance);
    const Parser p(source_name, options);
    toml::table doc;
    try {
        doc = toml::parse(toml_text, source_name);
    } catch (const toml::parse_error& e) {
        p.fail(e.source(), e.description());
    }
    p.check_top_level(doc);
    const Section app = p.section(doc, "app");
    const Section state = p.section(doc, "state");
    const Section hooks = p.section(doc, "hooks");
    const Section backup = p.section(doc, "backup");
    // [store] and its subtables are read by parse_store(), which checks their keys.

    Config c;
    parse_app(p, app, c);
    c.instance = instance.empty() ? c.app_name : instance;
    parse_state(p, state, c);
    parse_databases(p, state, c);
    parse_hooks(p, hooks, c);
    parse_backup(p, backup, c);
    parse_store(p, p.section(doc, "store"), p.section(doc, "store.s3"), p.section(doc, "store.sftp"), c);
    check_overlaps(p, c);
    return c;
}

const char* Database::type_name() const noexcept {
    switch (type) {
    case Type::postgresql: return "postgresql";
    case Type::mariadb: return "mariadb";
    case Type::sqlite: return "sqlite";
    }
    return "sqlite";
}

std::string Database::connection_value(const std::string& key) const {
    std::string value;
    for (const auto& w : words_of(connection))
        if (w.rfind(key + "=", 0) == 0) value = w.substr(key.size() + 1);  // the last one wins, as in libpq
    return value;
}

bool Database::local() const {
    if (type == Type::sqlite) return true;
    auto is_local = [](const std::string& h) {
        return h.empty() || h.front() == '/' || h.front() == '@' || h == "localhost" || h == "127.0.0.1" || h == "::1";
    };
    if (type == Type::postgresql) {
        // host may list several hosts, comma-separated: local only when all of them are.
        for (const char* key : {"host", "hostaddr"}) {
            std::string h = connection_value(key);
            std::size_t start = 0;
            while (true) {
                const auto comma = h.find(',', start);
                if (!is_local(h.substr(start, comma == std::string::npos ? std::string::npos : comma - start)))
                    return false;
                if (comma == std::string::npos) break;
                start = comma + 1;
            }
        }
        return true;
    }
    return is_local(connection_value("host"));
}

std::string Database::env_name() const {
    std::string out;
    for (char ch : name) out += ch == '-' ? '_' : (ch >= 'a' && ch <= 'z') ? char(ch - 'a' + 'A') : ch;
    return out;
}

std::string Config::where(const std::string& label) const {
    const auto it = positions.find(label);
    return it != positions.end() ? it->second : file.string();
}

struct VersionPattern::Compiled {
    regex_t re;
};

VersionPattern::VersionPattern(const std::string& pattern) : re_(std::make_unique<Compiled>()) {
    if (const int rc = ::regcomp(&re_->re, pattern.c_str(), REG_EXTENDED); rc != 0) {
        char why[256];
        ::regerror(rc, &re_->re, why, sizeof why);
        re_.reset();  // regcomp leaves nothing to free on failure
        throw std::invalid_argument(why);
    }
}

VersionPattern::~VersionPattern() {
    if (re_)
        ::regfree(&re_->re);
}

std::size_t VersionPattern::groups() const noexcept { return re_->re.re_nsub; }

std::optional<std::string> VersionPattern::first_group(const std::string& subject) const {
    regmatch_t m[2];
    if (::regexec(&re_->re, subject.c_str(), 2, m, 0) != 0 || m[1].rm_so < 0)
        return std::nullopt;
    return subject.substr(std::size_t(m[1].rm_so), std::size_t(m[1].rm_eo - m[1].rm_so));
}

Config load_config(const std::filesystem::path& file, const std::string& instance, const LoadOptions& options) {
    // stdio rather than iostreams: errno is reliable after fopen/fread, and the message must
    // say why the file could not be read.
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(file.c_str(), "rb"), &std::fclose);
    if (!f) {
        const int err = errno;
        // `ls /etc/bartl` shows a dangling link as a file: say that the link's target is missing.
        std::error_code ec;
        if (err == ENOENT && std::filesystem::is_symlink(file, ec)) {
            const auto target = std::filesystem::read_symlink(file, ec);
            throw ConfigError(fmt::format("{}: cannot read: it is a symbolic link to {}, which does not exist",
                                          file.string(), ec ? std::string("a missing file") : target.string()));
        }
        throw ConfigError(fmt::format("{}: cannot read: {}", file.string(), std::strerror(err)));
    }
    std::string text;
    char buf[8192];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0)
        text.append(buf, n);
    if (std::ferror(f.get()))
        throw ConfigError(fmt::format("{}: cannot read: {}", file.string(), std::strerror(errno)));
    Config c = parse_config(text, file.string(), instance, options);
    c.file = file;
    c.named_by_file = instance.empty();
    return c;
}

std::string bartld_command(const Config& config) {
    return config.named_by_file ? fmt::format("bartld --config {}", config.file.string())
                                : fmt::format("bartld --instance {}", config.instance);
}

std::string bartlctl_command(const Config& config, const std::string& verb, const std::string& args) {
    const std::string tail = args.empty() ? "" : " " + args;
    return config.named_by_file ? fmt::format("bartlctl {} -c {}{}", verb, config.file.string(), tail)
                                : fmt::format("bartlctl -i {} {}{}", config.instance, verb, tail);
}

std::string init_store_commands(const Config& config) {
    return fmt::format("`{} --init-store` (or `{}`)", bartld_command(config), bartlctl_command(config, "init-store"));
}

std::filesystem::path instance_config_path(const std::string& instance) {
    check_instance_name(instance);
    return std::filesystem::path(BARTL_SYSCONFDIR) / "bartl" / (instance + ".toml");
}

}  // namespace bartl
