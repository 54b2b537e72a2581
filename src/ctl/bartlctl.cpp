// bartlctl: see and steer running bartld instances over D-Bus (dbus/app.bartl.Instance1.xml),
// and prepare an instance while no bartld runs (adopt, restore-from).
//
// Exit status: 0 success; 1 failure (a backup or verification failed, the store did not
// answer, a refusal); 3 the daemon is not running (no such name on the bus, no bus at all, or
// it went away mid-call; LSB "program is not running"); 4 access denied by the bus policy
// (LSB "insufficient privilege"); 64 usage error; 78 configuration error.
//
// --json output (stable keys; times are RFC 3339 UTC strings, null when none; sizes bytes):
//   status, and each element of instances:
//     {"instance", "bus_name", "phase", "phase_since", "status", "app", "engine_version",
//      "state_version", "state_origin", "app_pid", "last_decision", "serving_since",
//      "last_backup": null | {"id", "created", "size", "duration_ms", "result", "error"},
//      "last_success": null | {"id", "created", "host", "size", "duration_ms"},
//      "last_failure": null | {"id", "time", "error"},
//      "next_backup", "backup_job" (null when none), "store" (null when none),
//      "fenced" (null, or why this state is no longer the store's writer),
//      "store_problem": null | {"since", "error"} (the store cannot be read or written)}
//   status of an instance whose bartld does not answer (exit 3):
//     {"instance", "running": false, "why", "state": null | {"version", "state_id", "origin",
//      "marker", "last_event"}, "systemd": null | {"unit", "active_state", "sub_state", "since",
//      "result", "exit_status", "restarts"}, "journal": {"decision", "decision_time", "error",
//      "error_time"}}
//   backups: [{"id", "created", "version", "host", "blob", "encryption", "size", "bytes", "files",
//              "reason", "writer", "ours", "way_back", "signer"}]
//   history: [{"time", "event", "from", "to", "detail"}]
//   plan: {"instance", "plan"}
//   verify: {"id", "blob", "files", "bytes", "signer", "result": "ok"}
//   backup: {"id"} (with --wait also "result" ("success"/"failed") and "error")
//   adopt: {"instance", "version", "marker", "paths": [{"path", "files", "bytes"}]}
//   restore-from: {"instance", "pin": ID or null, "file"}
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <poll.h>
#include <string>
#include <unistd.h>
#include <vector>

#include <CLI/CLI.hpp>

#include "util/cli.hpp"
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sdbus-c++/sdbus-c++.h>
#include <systemd/sd-journal.h>

#include "instance1_proxy.h"  // generated from dbus/app.bartl.Instance1.xml

#include "bartl_build_config.h"
#include "config/config.hpp"
#include "core/words.hpp"
#include "core/decision.hpp"
#include "core/error.hpp"
#include "core/last_run.hpp"
#include "core/unit_problem.hpp"
#include "core/marker.hpp"
#include "core/retention.hpp"
#include "core/semver.hpp"
#include "core/time.hpp"
#include "daemon/bus_name.hpp"
#include "ops/catalog.hpp"
#include "ops/commands.hpp"
#include "ops/events.hpp"
#include "ops/instance.hpp"
#include "ops/report.hpp"
#include "store/store.hpp"
#include "util/lock.hpp"

using namespace bartl;
using json = nlohmann::ordered_json;

namespace {

std::string bus_address() {
    const char* a = std::getenv("DBUS_SYSTEM_BUS_ADDRESS");
    return a && *a ? a : "unix:path=/run/dbus/system_bus_socket";
}

/// The system bus itself cannot be reached: whether bartld runs is unknown (exit 3).
class BusUnreachable : public NotRunningError {
public:
    using NotRunningError::NotRunningError;
};

/// Proxy of one bartld: the generated interface plus org.freedesktop.DBus.Properties.
class InstanceProxy final : public sdbus::ProxyInterfaces<app::bartl::Instance1_proxy, sdbus::Properties_proxy> {
public:
    InstanceProxy(sdbus::IConnection& conn, std::string destination)
        : ProxyInterfaces(conn, std::move(destination), bus::object_path) {
        registerProxy();
    }
    ~InstanceProxy() { unregisterProxy(); }

    std::function<void(const std::string&, std::uint64_t, std::uint64_t)> on_progress;
    std::function<void(const std::string&, const std::string&, const std::string&)> on_finished;

private:
    void onBackupProgress(const std::string& id, const std::uint64_t& done, const std::uint64_t& estimated) override {
        if (on_progress) on_progress(id, done, estimated);
    }
    void onBackupFinished(const std::string& id, const std::string& result, const std::string& error) override {
        if (on_finished) on_finished(id, result, error);
    }
    void onPropertiesChanged(const std::string&, const std::map<std::string, sdbus::Variant>&,
                             const std::vector<std::string>&) override {}
};

/// The properties of one instance (one GetAll round trip).
struct Info {
    std::string bus_name;
    std::string instance, phase, status_text, app, engine, state, origin, decision, job, store, fenced;
    std::uint64_t phase_since = 0, serving_since = 0, next_backup = 0;
    std::uint32_t app_pid = 0;
    std::string last_id, last_created, last_result, last_error;
    std::uint64_t last_size = 0, last_duration_ms = 0;
    std::string ok_id, ok_created, ok_host;  ///< LastSuccessfulBackup
    std::uint64_t ok_size = 0, ok_duration_ms = 0;
    std::string fail_id, fail_time, fail_error;  ///< LastFailedBackup
    std::uint64_t store_problem_since = 0;       ///< StoreProblem (0 = the store answers)
    std::string store_problem;
};

template <typename T>
T prop(const std::map<std::string, sdbus::Variant>& m, const char* name) {
    auto it = m.find(name);
    if (it == m.end() || !it->second.containsValueOfType<T>()) return T{};
    return it->second.get<T>();
}

Info read_info(InstanceProxy& p, const std::string& bus_name) {
    const auto m = p.GetAll(bus::interface_name);
    Info i;
    i.bus_name = bus_name;
    i.instance = prop<std::string>(m, "Instance");
    i.phase = prop<std::string>(m, "Phase");
    i.phase_since = prop<std::uint64_t>(m, "PhaseSince");
    i.status_text = prop<std::string>(m, "StatusText");
    i.app = prop<std::string>(m, "App");
    i.engine = prop<std::string>(m, "EngineVersion");
    i.state = prop<std::string>(m, "StateVersion");
    i.origin = prop<std::string>(m, "StateOrigin");
    i.app_pid = prop<std::uint32_t>(m, "AppPID");
    i.decision = prop<std::string>(m, "LastDecision");
    i.serving_since = prop<std::uint64_t>(m, "ServingSince");
    i.next_backup = prop<std::uint64_t>(m, "NextBackup");
    i.job = prop<std::string>(m, "BackupJob");
    i.store = prop<std::string>(m, "Store");
    i.fenced = prop<std::string>(m, "Fenced");
    using Last = sdbus::Struct<std::string, std::string, std::uint64_t, std::uint64_t, std::string, std::string>;
    const auto last = prop<Last>(m, "LastBackup");
    std::tie(i.last_id, i.last_created, i.last_size, i.last_duration_ms, i.last_result, i.last_error) = last;
    using Ok = sdbus::Struct<std::string, std::string, std::string, std::uint64_t, std::uint64_t>;
    std::tie(i.ok_id, i.ok_created, i.ok_host, i.ok_size, i.ok_duration_ms) = prop<Ok>(m, "LastSuccessfulBackup");
    using Failed = sdbus::Struct<std::string, std::string, std::string>;
    std::tie(i.fail_id, i.fail_time, i.fail_error) = prop<Failed>(m, "LastFailedBackup");
    using Problem = sdbus::Struct<std::uint64_t, std::string>;
    std::tie(i.store_problem_since, i.store_problem) = prop<Problem>(m, "StoreProblem");
    return i;
}

std::int64_t now_usec() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

json time_json(std::uint64_t usec) {
    if (usec == 0) return nullptr;
    return format_rfc3339(std::chrono::sys_seconds(std::chrono::seconds(usec / 1000000)));
}

std::string time_text(std::uint64_t usec) {
    return format_rfc3339(std::chrono::sys_seconds(std::chrono::seconds(usec / 1000000)));
}

/// "45s", "12min", "3h 5min", "2d 4h".
std::string span_text(std::int64_t seconds) {
    if (seconds < 0) seconds = -seconds;
    if (seconds < 60) return fmt::format("{}s", seconds);
    if (seconds < 3600) return fmt::format("{}min", seconds / 60);
    if (seconds < 86400) return fmt::format("{}h {}min", seconds / 3600, seconds % 3600 / 60);
    return fmt::format("{}d {}h", seconds / 86400, seconds % 86400 / 3600);
}

std::string ago(std::uint64_t usec) {
    return span_text((now_usec() - static_cast<std::int64_t>(usec)) / 1000000) + " ago";
}

/// Age of an RFC 3339 time as "5min ago", or the text itself when it does not parse.
std::string ago(const std::string& rfc3339) {
    try {
        auto t = parse_rfc3339(rfc3339);
        return ago(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                   t.time_since_epoch()).count()));
    } catch (const std::exception&) {
        return rfc3339;
    }
}

json info_json(const Info& i) {
    json last = nullptr;
    if (!i.last_id.empty())
        last = json{{"id", i.last_id},          {"created", i.last_created},
                    {"size", i.last_size},      {"duration_ms", i.last_duration_ms},
                    {"result", i.last_result},  {"error", i.last_error}};
    return json{{"instance", i.instance},
                {"bus_name", i.bus_name},
                {"phase", i.phase},
                {"phase_since", time_json(i.phase_since)},
                {"status", i.status_text},
                {"app", i.app},
                {"engine_version", i.engine},
                {"state_version", i.state},
                {"state_origin", i.origin},
                {"app_pid", i.app_pid},
                {"last_decision", i.decision},
                {"serving_since", time_json(i.serving_since)},
                {"last_backup", last},
                {"last_success", i.ok_id.empty() ? json(nullptr)
                                                 : json{{"id", i.ok_id},
                                                        {"created", i.ok_created},
                                                        {"host", i.ok_host},
                                                        {"size", i.ok_size},
                                                        {"duration_ms", i.ok_duration_ms}}},
                {"last_failure", i.fail_id.empty() ? json(nullptr)
                                                   : json{{"id", i.fail_id}, {"time", i.fail_time}, {"error", i.fail_error}}},
                {"next_backup", time_json(i.next_backup)},
                {"backup_job", i.job.empty() ? json(nullptr) : json(i.job)},
                {"store", i.store.empty() ? json(nullptr) : json(i.store)},
                {"fenced", i.fenced.empty() ? json(nullptr) : json(i.fenced)},
                {"store_problem", i.store_problem.empty() ? json(nullptr)
                                                          : json{{"since", time_json(i.store_problem_since)},
                                                                 {"error", i.store_problem}}}};
}

/// systemctl-status-like text.
std::string info_text(const Info& i) {
    std::string out;
    const char* bullet = i.phase == "failed" || !i.fenced.empty() || !i.store_problem.empty() ? "×" : "●";
    std::string head = fmt::format("{} {} - {}", bullet, i.instance, i.phase);
    if (i.phase == "serving" || i.phase == "backing-up")
        head += fmt::format(" since {}; {}", time_text(i.serving_since), ago(i.serving_since));
    else if (i.phase_since)
        head += fmt::format(" since {}; {}", time_text(i.phase_since), ago(i.phase_since));
    out += head + "\n";
    auto line = [&](const char* label, const std::string& value) { out += fmt::format("{:>12} {}\n", label, value); };
    if (!i.status_text.empty()) line("Status:", i.status_text);
    line("App:", i.app_pid ? fmt::format("{} (PID {})", i.app, i.app_pid) : i.app);
    line("Versions:", fmt::format("engine {}, state {}", i.engine, i.state.empty() ? "-" : i.state));
    if (!i.origin.empty()) line("Origin:", i.origin);
    if (!i.decision.empty()) line("Decision:", path_words_from_names(i.decision));
    if (!i.job.empty()) line("Backup job:", fmt::format("{} running", i.job));
    if (i.ok_id.empty()) {
        std::string v = "none of this state yet";
        if (i.origin.rfind("restore:", 0) == 0)
            v += fmt::format(" (it was restored from backup {}, which another state wrote)", i.origin.substr(8));
        line("Last backup:", v);
    } else {
        std::string v = fmt::format("{} at {} ({}) on {}: {}", i.ok_id, i.ok_created, ago(i.ok_created),
                                    i.ok_host.empty() ? "this host" : i.ok_host, format_bytes(i.ok_size));
        if (i.ok_duration_ms) v += fmt::format(" in {:.1f}s", static_cast<double>(i.ok_duration_ms) / 1000);
        line("Last backup:", v);
    }
    if (!i.fail_id.empty())
        line("Last failure:", fmt::format("{} at {} ({}): {}", i.fail_id, i.fail_time, ago(i.fail_time), i.fail_error));
    if (i.next_backup)
        line("Next backup:",
             fmt::format("{} (in {})", time_text(i.next_backup),
                         span_text((static_cast<std::int64_t>(i.next_backup) - now_usec()) / 1000000)));
    line("Store:", i.store.empty() ? "none configured" : i.store);
    if (!i.store_problem.empty())
        line("", fmt::format("unreachable since {} ({}): {}", time_text(i.store_problem_since),
                             ago(i.store_problem_since), i.store_problem));
    if (!i.fenced.empty()) line("FENCED:", i.fenced);
    return out;
}

/// Maps a D-Bus error of a call to a bartl error with the exit code it stands for.
[[noreturn]] void rethrow_dbus(const sdbus::Error& e, const std::string& what) {
    const auto& n = e.getName();
    if (n == "org.freedesktop.DBus.Error.ServiceUnknown" || n == "org.freedesktop.DBus.Error.NameHasNoOwner" ||
        n == "org.freedesktop.DBus.Error.NoReply" || n == "org.freedesktop.DBus.Error.Disconnected" ||
        n == "org.freedesktop.DBus.Error.UnknownObject")
        throw NotRunningError(fmt::format("{}: bartld is not running ({})", what, e.getMessage()));
    // sd-bus gives up on a reply after its method call timeout (25 s): bartld runs but is busy,
    // most often retrying a store that does not answer. "Connection timed out" alone says neither.
    if (n == "org.freedesktop.DBus.Error.Timeout" || n == "org.freedesktop.DBus.Error.TimedOut")
        throw RuntimeError(fmt::format("{}: bartld did not answer in time ({}): it runs but is busy, most often "
                                       "waiting for a store that does not answer (retried for [store] retry_for); "
                                       "see `bartlctl status` and the instance's journal",
                                       what, e.getMessage().empty() ? n : e.getMessage()));
    if (n == "org.freedesktop.DBus.Error.AccessDenied")
        throw DeniedError(fmt::format("{}: access denied by the bus policy (Backup and Verify need root or group "
                                 "bartl): {}", what, e.getMessage()));
    // The daemon's error, with the exit status the error table gives it (core/error.hpp).
    const std::string msg = e.getMessage().empty() ? n : e.getMessage();
    if (const auto kind = error_kind_for_dbus_name(n)) throw_error(*kind, msg);
    throw RuntimeError(msg);
}

/// The bus connection and the instance chosen by -i (or the only one running).
class Client {
public:
    explicit Client(const std::string& instance) {
        try {
            conn_ = sdbus::createSystemBusConnection();
        } catch (const sdbus::Error& e) {
            throw BusUnreachable(fmt::format("cannot connect to the D-Bus system bus at {} ({}): bartlctl reaches "
                                             "bartld only over that bus (a bartld started without it runs "
                                             "unreachable; see its log or `systemctl status bartld@NAME`)",
                                             bus_address(), e.getMessage()));
        }
        if (instance.empty()) {
            auto all = instances();
            if (all.empty()) throw NotRunningError(fmt::format("no bartld is running on the system bus {}", bus_address()));
            if (all.size() > 1) {
                std::string names;
                for (const auto& [inst, name] : all) names += (names.empty() ? "" : ", ") + inst;
                throw UsageError(fmt::format("{} bartld instances are running ({}): choose one with -i NAME",
                                             all.size(), names));
            }
            instance_ = all.front().first;
            name_ = all.front().second;
        } else {
            instance_ = instance;
            name_ = bus::bus_name(instance);
            if (!has_owner(name_))
                throw NotRunningError(fmt::format("bartld instance {} is not running (no {} on the system bus {})",
                                             instance, name_, bus_address()));
        }
        proxy_ = std::make_unique<InstanceProxy>(*conn_, name_);
    }

    /// Creates a connection for listing only (instances).
    Client() {
        try {
            conn_ = sdbus::createSystemBusConnection();
        } catch (const sdbus::Error& e) {
            throw NotRunningError(fmt::format("cannot connect to the D-Bus system bus at {} ({}): no bartld is running "
                                         "there", bus_address(), e.getMessage()));
        }
    }

    /// (instance, bus name) of every bartld on the bus, sorted by instance.
    std::vector<std::pair<std::string, std::string>> instances() {
        std::vector<std::string> names;
        call("list bus names", [&] {
            auto dbus = sdbus::createProxy(*conn_, "org.freedesktop.DBus", "/org/freedesktop/DBus");
            dbus->callMethod("ListNames").onInterface("org.freedesktop.DBus").storeResultsTo(names);
        });
        std::vector<std::pair<std::string, std::string>> out;
        for (const auto& n : names)
            if (auto inst = bus::instance_of(n)) out.emplace_back(*inst, n);
        std::sort(out.begin(), out.end());
        return out;
    }

    bool has_owner(const std::string& name) {
        bool has = false;
        call("look up " + name, [&] {
            auto dbus = sdbus::createProxy(*conn_, "org.freedesktop.DBus", "/org/freedesktop/DBus");
            dbus->callMethod("NameHasOwner").onInterface("org.freedesktop.DBus").withArguments(name).storeResultsTo(has);
        });
        return has;
    }

    /// Runs a bus call, turning D-Bus errors into bartl errors (rethrow_dbus).
    template <typename F>
    void call(const std::string& what, F f) {
        try {
            f();
        } catch (const sdbus::Error& e) {
            rethrow_dbus(e, what);
        }
    }

    sdbus::IConnection& conn() { return *conn_; }
    InstanceProxy& proxy() { return *proxy_; }
    const std::string& instance() const { return instance_; }
    const std::string& name() const { return name_; }

private:
    std::unique_ptr<sdbus::IConnection> conn_;
    std::string instance_, name_;
    std::unique_ptr<InstanceProxy> proxy_;
};

/// sdbus::Struct as the std::tuple it is, for structured bindings.
template <typename... T>
const std::tuple<T...>& as_tuple(const sdbus::Struct<T...>& s) {
    return s;
}

void print_json(const json& j) { std::cout << j.dump(2) << "\n"; }

struct Options {
    std::string instance;
    bool json = false;
    bool wait = false;
    std::string id;
    std::string version;
    std::string config_file;
    std::string component;
    bool clear = false;
};

Config load_instance_config(const Options& o) {
    if (o.config_file.empty() && o.instance.empty())
        throw UsageError("this verb works without a running bartld and needs the instance: -i NAME (reads "
                         BARTL_SYSCONFDIR "/bartl/NAME.toml) or -c FILE");
    const auto file = o.config_file.empty() ? instance_config_path(o.instance) : std::filesystem::path(o.config_file);
    return load_config(file, o.instance);
}

/// What systemd says of bartld@NAME.service (from org.freedesktop.systemd1 on the system
/// bus); std::nullopt when there is no systemd to ask or it has no unit file for it.
/// LoadUnit, not GetUnit: systemd unloads a unit that is stopped cleanly or never started,
/// and GetUnit fails for it although `systemctl status` shows it loaded and inactive.
std::optional<json> unit_facts(const std::string& instance) {
    try {
        auto conn = sdbus::createSystemBusConnection();
        auto manager = sdbus::createProxy(*conn, "org.freedesktop.systemd1", "/org/freedesktop/systemd1");
        sdbus::ObjectPath path;
        manager->callMethod("LoadUnit")
            .onInterface("org.freedesktop.systemd1.Manager")
            .withArguments("bartld@" + instance + ".service")
            .storeResultsTo(path);
        auto unit = sdbus::createProxy(*conn, "org.freedesktop.systemd1", path);
        auto get = [&](const char* iface, const char* name) {
            return unit->getProperty(name).onInterface(iface);
        };
        // LoadUnit answers for any name; "not-found" is a unit without a unit file.
        if (get("org.freedesktop.systemd1.Unit", "LoadState").get<std::string>() == "not-found") return std::nullopt;
        json j;
        j["unit"] = "bartld@" + instance + ".service";
        j["active_state"] = get("org.freedesktop.systemd1.Unit", "ActiveState").get<std::string>();
        j["sub_state"] = get("org.freedesktop.systemd1.Unit", "SubState").get<std::string>();
        j["since"] = time_json(get("org.freedesktop.systemd1.Unit", "StateChangeTimestamp").get<std::uint64_t>());
        j["result"] = get("org.freedesktop.systemd1.Service", "Result").get<std::string>();
        j["exit_status"] = get("org.freedesktop.systemd1.Service", "ExecMainStatus").get<std::int32_t>();
        j["restarts"] = get("org.freedesktop.systemd1.Service", "NRestarts").get<std::uint32_t>();
        return j;
    } catch (const sdbus::Error&) {
        return std::nullopt;
    }
}

/// The decision and error bartld logged in the instance's last run (BARTL_INSTANCE=NAME in the
/// local journal, bartld's newest entry's run: core/last_run.hpp) and that run's ID ("run":
/// the unit's invocation ID, or "PID N"); nulls when there is no journal or nothing was logged.
/// Three matched lookups, each one seek from the tail: an app that logs a lot cannot push the
/// run's decision out of reach.
json journal_facts(const std::string& instance) {
    json out = {{"decision", nullptr}, {"decision_time", nullptr}, {"error", nullptr}, {"error_time", nullptr},
                {"run", nullptr}};
    sd_journal* j = nullptr;
    if (sd_journal_open(&j, SD_JOURNAL_LOCAL_ONLY | SD_JOURNAL_SYSTEM) < 0) return out;
    struct Close {
        sd_journal* j;
        ~Close() { sd_journal_close(j); }
    } close{j};
    auto field = [&](const char* name) -> std::optional<std::string> {
        const void* data = nullptr;
        size_t len = 0;
        if (sd_journal_get_data(j, name, &data, &len) < 0) return std::nullopt;
        std::string s(static_cast<const char*>(data), len);
        return s.substr(s.find('=') + 1);
    };
    // The newest entry of the instance's bartld that also matches `extra` (matches of one
    // field are ORed, of different fields ANDed: sd_journal_add_match(3)).
    auto newest = [&](const std::vector<std::string>& extra) -> std::optional<RunEntry> {
        sd_journal_flush_matches(j);
        std::vector<std::string> matches = {"BARTL_INSTANCE=" + instance, "SYSLOG_IDENTIFIER=bartld"};
        matches.insert(matches.end(), extra.begin(), extra.end());
        for (const auto& m : matches)
            if (sd_journal_add_match(j, m.data(), m.size()) < 0) return std::nullopt;
        if (sd_journal_seek_tail(j) < 0 || sd_journal_previous(j) <= 0) return std::nullopt;
        RunEntry e;
        if (auto inv = field("_SYSTEMD_INVOCATION_ID"))
            e.run = *inv;
        else if (auto pid = field("_PID"))
            e.run = "PID " + *pid;
        std::uint64_t usec = 0;
        e.time = sd_journal_get_realtime_usec(j, &usec) < 0 ? std::string() : time_text(usec);
        const auto priority = field("PRIORITY").value_or("6");
        e.priority = priority.size() == 1 && priority[0] >= '0' && priority[0] <= '7' ? priority[0] - '0' : 6;
        e.identifier = field("SYSLOG_IDENTIFIER").value_or("");
        e.decision = field("BARTL_DECISION");
        e.message = field("MESSAGE").value_or("");
        return e;
    };
    RunLookups found;
    found.newest = newest({});
    if (found.newest) {
        found.decision = newest({std::string("MESSAGE_ID=") + event::decision});
        found.error = newest({"PRIORITY=0", "PRIORITY=1", "PRIORITY=2", "PRIORITY=3"});
    }
    const auto r = last_run(found);
    auto opt = [](const std::optional<std::string>& v) { return v && !v->empty() ? json(*v) : json(nullptr); };
    out["decision"] = opt(r.decision);
    out["decision_time"] = opt(r.decision_time);
    out["error"] = opt(r.error);
    out["error_time"] = opt(r.error_time);
    out["run"] = r.run.empty() ? json(nullptr) : json(r.run);
    return out;
}

/// `bartlctl status` of an instance whose bartld does not answer: what systemd, the state
/// marker and the journal say. Exit 3 (not running), as systemctl status.
int offline_status(const Options& o, const std::string& why, bool bus_reachable) {
    std::cerr << "bartlctl: " << why << "\n";
    json j = {{"instance", o.instance}, {"running", bus_reachable ? json(false) : json(nullptr)}, {"why", why}};
    std::optional<Config> config;
    try {
        config = load_instance_config(o);
    } catch (const Error& e) {
        j["config_error"] = e.what();
    }
    json state = nullptr;
    if (config) {
        const Instance inst(*config);
        const auto mr = inst.read_marker();
        if (mr.marker)
            state = json{{"version", mr.marker->version}, {"state_id", mr.marker->state_id},
                         {"origin", mr.marker->origin}, {"marker", inst.marker_path().string()},
                         {"last_event", mr.marker->history.empty() ? json(nullptr)
                                                                   : json{{"time", mr.marker->history.back().time},
                                                                          {"event", mr.marker->history.back().event},
                                                                          {"detail", mr.marker->history.back().detail}}}};
        else if (mr.exists)
            state = json{{"marker", inst.marker_path().string()}, {"error", mr.error}};
    }
    j["state"] = state;
    j["systemd"] = unit_facts(o.instance).value_or(json(nullptr));
    j["journal"] = journal_facts(o.instance);
    if (o.json) {
        print_json(j);
        return static_cast<int>(ExitCode::not_running);
    }
    std::string out = bus_reachable ? fmt::format("× {} - not running\n", o.instance)
                                    : fmt::format("? {} - unknown: no system bus to ask bartld\n", o.instance);
    auto line = [&](const char* label, const std::string& value) { out += fmt::format("{:>12} {}\n", label, value); };
    if (const auto& u = j["systemd"]; !u.is_null())
        line("Unit:", fmt::format("{}: {} ({}), result {}, exit status {}, {} restart(s){}", u["unit"].get<std::string>(),
                                  u["active_state"].get<std::string>(), u["sub_state"].get<std::string>(),
                                  u["result"].get<std::string>(), u["exit_status"].get<int>(), u["restarts"].get<unsigned>(),
                                  u["since"].is_null() ? "" : " since " + u["since"].get<std::string>()));
    else
        line("Unit:", "systemd does not know bartld@" + o.instance + ".service (or there is no systemd to ask)");
    if (j.contains("config_error")) line("Config:", j["config_error"].get<std::string>());
    if (state.is_null())
        line("State:", config ? "none: no state marker" : "unknown");
    else if (state.contains("error"))
        line("State:", fmt::format("marker {} does not parse: {}", state["marker"].get<std::string>(),
                                   state["error"].get<std::string>()));
    else
        line("State:", fmt::format("{} (state ID {}, origin {}; marker {})", state["version"].get<std::string>(),
                                   state["state_id"].get<std::string>(), state["origin"].get<std::string>(),
                                   state["marker"].get<std::string>()));
    if (!state.is_null() && state.contains("last_event") && !state["last_event"].is_null())
        line("History:", fmt::format("{} {} ({})", state["last_event"]["time"].get<std::string>(),
                                     state["last_event"]["event"].get<std::string>(),
                                     state["last_event"]["detail"].get<std::string>()));
    const auto& jf = j["journal"];
    if (!jf["decision"].is_null())
        line("Decision:", fmt::format("{} (journal, {})", path_words_from_names(jf["decision"].get<std::string>()),
                                      jf["decision_time"].get<std::string>()));
    if (!jf["error"].is_null())
        line("Error:", fmt::format("{} ({})", jf["error"].get<std::string>(), jf["error_time"].get<std::string>()));
    std::cout << out;
    return static_cast<int>(ExitCode::not_running);
}

int cmd_status(const Options& o) {
    std::optional<Client> client;
    try {
        client.emplace(o.instance);
    } catch (const BusUnreachable& e) {
        if (o.instance.empty()) throw;  // which instance? only -i NAME says
        return offline_status(o, e.what(), false);
    } catch (const NotRunningError& e) {
        if (o.instance.empty()) throw;
        return offline_status(o, e.what(), true);
    }
    Client& c = *client;
    Info i;
    c.call("status of " + c.instance(), [&] { i = read_info(c.proxy(), c.name()); });
    if (o.json)
        print_json(info_json(i));
    else
        std::cout << info_text(i);
    return 0;
}

/// The instances that should be on the bus: each /etc/bartl/NAME.toml and each bartld@NAME
/// unit systemd has loaded (a failed or restarting one too), sorted. Either source may be
/// missing (no systemd, no configuration directory).
std::vector<std::string> known_instances() {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(BARTL_SYSCONFDIR) / "bartl", ec)) {
        const auto& p = e.path();
        // bartl.toml belongs to the single-instance bartld.service, not to bartld@.
        if (p.extension() != ".toml" || p.stem() == "bartl" || p.stem().string().empty()) continue;
        try {
            (void)instance_config_path(p.stem().string());  // throws for a name bartld refuses
            out.push_back(p.stem().string());
        } catch (const Error&) {
        }
    }
    try {
        auto conn = sdbus::createSystemBusConnection();
        auto manager = sdbus::createProxy(*conn, "org.freedesktop.systemd1", "/org/freedesktop/systemd1");
        std::vector<sdbus::Struct<std::string, std::string, std::string, std::string, std::string, std::string,
                                  sdbus::ObjectPath, std::uint32_t, std::string, sdbus::ObjectPath>>
            units;
        manager->callMethod("ListUnitsByPatterns")
            .onInterface("org.freedesktop.systemd1.Manager")
            .withArguments(std::vector<std::string>{}, std::vector<std::string>{"bartld@*.service"})
            .storeResultsTo(units);
        for (const auto& u : units) {
            const std::string& unit = std::get<0>(u);
            const std::string prefix = "bartld@", suffix = ".service";
            if (unit.size() > prefix.size() + suffix.size())
                out.push_back(unit.substr(prefix.size(), unit.size() - prefix.size() - suffix.size()));
        }
    } catch (const sdbus::Error&) {
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

/// One instance of the fleet view whose bartld is not on the bus: what systemd, its
/// configuration and its state marker say (core/unit_problem.hpp).
struct OfflineInstance {
    std::string instance;
    std::string state;  ///< the marker's state version, "" when none can be read
    OfflineRow row;
    json unit;  ///< unit_facts(), null without systemd
    std::optional<std::string> config_error;
};

OfflineInstance offline_instance(const std::string& name) {
    OfflineInstance out;
    out.instance = name;
    Options o;
    o.instance = name;
    try {
        const Config config = load_instance_config(o);  // Instance keeps a reference to it
        const Instance inst(config);
        if (const auto mr = inst.read_marker(); mr.marker) out.state = mr.marker->version;
    } catch (const Error& e) {
        out.config_error = e.what();
    }
    out.unit = unit_facts(name).value_or(json(nullptr));
    std::optional<UnitFacts> facts;
    if (!out.unit.is_null())
        facts = UnitFacts{out.unit["unit"].get<std::string>(), out.unit["active_state"].get<std::string>(),
                          out.unit["sub_state"].get<std::string>(), out.unit["result"].get<std::string>(),
                          out.unit["exit_status"].get<int>(), out.unit["restarts"].get<std::uint32_t>()};
    out.row = offline_row(facts, out.config_error);
    return out;
}

int cmd_instances(const Options& o) {
    Client c;
    json all = json::array();
    std::vector<Info> infos;
    for (const auto& [inst, name] : c.instances()) {
        try {
            InstanceProxy p(c.conn(), name);
            infos.push_back(read_info(p, name));
        } catch (const sdbus::Error&) {
            continue;  // it stopped between listing and asking (then it is listed as offline)
        }
    }
    // A failed instance (a config typo, a start limit hit, a crash loop) is not on the bus,
    // and is the one to look at: listed from its configuration and its unit.
    std::vector<OfflineInstance> offline;
    for (const auto& name : known_instances())
        if (std::none_of(infos.begin(), infos.end(), [&](const Info& i) { return i.instance == name; }))
            offline.push_back(offline_instance(name));
    if (o.json) {
        for (const auto& i : infos) {
            auto j = info_json(i);
            j["running"] = true;
            all.push_back(std::move(j));
        }
        for (const auto& f : offline)
            all.push_back(json{{"instance", f.instance}, {"running", false}, {"phase", f.row.phase},
                               {"state_version", f.state.empty() ? json(nullptr) : json(f.state)},
                               {"problem", f.row.problem == "-" ? json(nullptr) : json(f.row.problem)},
                               {"config_error", f.config_error ? json(*f.config_error) : json(nullptr)},
                               {"systemd", f.unit}});
        std::sort(all.begin(), all.end(),
                  [](const json& a, const json& b) { return a["instance"].get<std::string>() < b["instance"].get<std::string>(); });
        print_json(all);
        return 0;
    }
    std::cout << fmt::format("{:<20} {:<11} {:<10} {:<10} {:<22} {}\n", "INSTANCE", "PHASE", "ENGINE", "STATE",
                             "LAST BACKUP", "PROBLEM");
    std::vector<std::pair<std::string, std::string>> rows;  // (instance, line), sorted below
    for (const auto& i : infos) {
        std::string last = i.last_id.empty() ? "-" : fmt::format("{} ({})", ago(i.last_created), i.last_result);
        // At a glance: what `bartlctl status -i NAME` shows in full.
        std::string problem = "-";
        if (!i.fenced.empty())
            problem = "fenced";
        else if (!i.store_problem.empty())
            problem = fmt::format("store unreachable for {}",
                                  span_text((now_usec() - static_cast<std::int64_t>(i.store_problem_since)) / 1000000));
        rows.emplace_back(i.instance, fmt::format("{:<20} {:<11} {:<10} {:<10} {:<22} {}\n", i.instance, i.phase,
                                                  i.engine, i.state.empty() ? "-" : i.state, last, problem));
    }
    for (const auto& f : offline)
        rows.emplace_back(f.instance, fmt::format("{:<20} {:<11} {:<10} {:<10} {:<22} {}\n", f.instance, f.row.phase, "-",
                                                  f.state.empty() ? "-" : f.state, "-", f.row.problem));
    std::sort(rows.begin(), rows.end());
    for (const auto& r : rows) std::cout << r.second;
    const std::size_t down = std::count_if(offline.begin(), offline.end(), [](const OfflineInstance& f) {
        return f.row.phase != "stopped" || f.row.problem != "-";
    });
    std::cout << fmt::format("\n{} instance{} listed", rows.size(), rows.size() == 1 ? "" : "s");
    std::cout << (down ? fmt::format(", {} with a problem (bartlctl -i NAME status says more).\n", down)
                       : std::string(".\n"));
    return 0;
}

int cmd_backups(const Options& o) {
    Client c(o.instance);
    std::vector<sdbus::Struct<std::string, std::string, std::string, std::string, std::string, std::string,
                              std::uint64_t, std::uint64_t, std::uint64_t, std::string, std::string, std::string>>
        rows;
    std::string state_id;
    unsigned keep_pre_migration = 0;
    c.call("list backups of " + c.instance(), [&] {
        rows = c.proxy().ListBackups();
        state_id = c.proxy().StateId();
        keep_pre_migration = c.proxy().KeepPreMigration();
    });
    // The way back: the pre-migration backups of this state that retention keeps by
    // keep_pre_migration, chosen by the rule retention applies (core/retention.hpp).
    std::vector<RetentionItem> items;
    for (const auto& r : rows) {
        const auto& [id, created, version, host, blob, enc, size, bytes, files, reason, writer, signer] = as_tuple(r);
        RetentionItem it;
        it.id = id;
        try {
            it.created = parse_rfc3339_ms(created);
        } catch (const std::exception&) {
            continue;  // not dated: retention does not count it either
        }
        it.pre_migration = reason == "pre-migration";
        it.ours = writer.empty() || writer == state_id;  // as retention counts them (ops/backup.cpp)
        items.push_back(it);
    }
    const auto way_back_ids = select_way_back(
        items, keep_pre_migration, std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now()));
    const auto way_back = [&](const std::string& id) {
        return std::find(way_back_ids.begin(), way_back_ids.end(), id) != way_back_ids.end();
    };
    if (o.json) {
        json all = json::array();
        for (const auto& r : rows) {
            const auto& [id, created, version, host, blob, enc, size, bytes, files, reason, writer, signer] = as_tuple(r);
            all.push_back(json{{"id", id}, {"created", created}, {"version", version}, {"host", host},
                               {"blob", blob}, {"encryption", enc.empty() ? json(nullptr) : json(enc)},
                               {"size", size}, {"bytes", bytes}, {"files", files},
                               {"reason", reason.empty() ? json(nullptr) : json(reason)},
                               {"writer", writer.empty() ? json(nullptr) : json(writer)},
                               {"ours", !state_id.empty() && writer == state_id},
                               {"way_back", way_back(id)},
                               {"signer", signer.empty() ? json(nullptr) : json(signer)}});
        }
        print_json(all);
        return 0;
    }
    // NOTES: "way back" for a kept pre-migration backup, "other state" for one a state
    // before a restore (or another host) wrote: retention never deletes those.
    std::cout << fmt::format("{:<9} {:<25} {:<12} {:>9} {:>9}  {:<9} {:<14} {:<8} {}\n", "ID", "CREATED", "VERSION",
                             "SIZE", "DATA", "ENCRYPT", "REASON", "SIGNER", "HOST, NOTES");
    for (const auto& r : rows) {
        const auto& [id, created, version, host, blob, enc, size, bytes, files, reason, writer, signer] = as_tuple(r);
        std::string notes;
        if (way_back(id)) notes += ", way back";
        if (!state_id.empty() && !writer.empty() && writer != state_id) notes += ", other state";
        std::cout << fmt::format("{:<9} {:<25} {:<12} {:>9} {:>9}  {:<9} {:<14} {:<8} {}{}\n", id, created, version,
                                 format_bytes(size), format_bytes(bytes), enc.empty() ? "no" : enc,
                                 reason.empty() ? "-" : reason, signer.empty() ? "-" : signer, host, notes);
    }
    std::cout << fmt::format("\n{} backup{}.\n", rows.size(), rows.size() == 1 ? "" : "s");
    return 0;
}

int cmd_history(const Options& o) {
    Client c(o.instance);
    std::vector<sdbus::Struct<std::string, std::string, std::string, std::string, std::string>> rows;
    c.call("history of " + c.instance(), [&] { rows = c.proxy().History(); });
    if (o.json) {
        json all = json::array();
        for (const auto& r : rows) {
            const auto& [time, event, from, to, detail] = as_tuple(r);
            all.push_back(json{{"time", time}, {"event", event}, {"from", from}, {"to", to}, {"detail", detail}});
        }
        print_json(all);
        return 0;
    }
    for (const auto& r : rows) {
        const auto& [time, event, from, to, detail] = as_tuple(r);
        std::string versions = from.empty() ? to : fmt::format("{} -> {}", from, to);
        std::cout << fmt::format("{}  {:<10} {:<18} {}\n", time, event, versions, detail);
    }
    return 0;
}

int cmd_plan(const Options& o) {
    Client c(o.instance);
    std::string text;
    c.call("plan of " + c.instance(), [&] { text = c.proxy().Plan(); });
    if (o.json)
        print_json(json{{"instance", c.instance()}, {"plan", text}});
    else
        std::cout << text;
    return 0;
}

int cmd_verify(const Options& o) {
    Client c(o.instance);
    // A verification reads the whole backup: let it take as long as it needs.
    c.conn().setMethodCallTimeout(std::uint64_t{24} * 3600 * 1000000);
    std::tuple<std::string, std::string, std::uint64_t, std::uint64_t, std::string> r;
    c.call(fmt::format("verify {} of {}", o.id.empty() ? "the newest backup" : o.id, c.instance()),
           [&] { r = c.proxy().Verify(o.id); });
    const auto& [id, blob, files, bytes, signer] = r;
    if (o.json)
        print_json(json{{"id", id},
                        {"blob", blob},
                        {"files", files},
                        {"bytes", bytes},
                        {"signer", signer.empty() ? json(nullptr) : json(signer)},
                        {"result", "ok"}});
    else
        std::cout << fmt::format("backup {} OK: {} ({} entries, {} of data), {}\n", id, blob, files,
                                 format_bytes(bytes),
                                 signer.empty()                  ? "not signed"
                                 : signer.rfind("INVALID", 0) == 0 ? "signature " + signer
                                                                   : "signed by " + signer);
    return 0;
}

/// Progress as a bar on a terminal, as plain lines otherwise.
void show_progress(const std::string& id, std::uint64_t done, std::uint64_t estimated, bool tty) {
    const std::string amount =
        estimated ? fmt::format("{} of ~{}", format_bytes(done), format_bytes(estimated)) : format_bytes(done);
    if (!tty) {
        std::cout << fmt::format("backup {}: {}\n", id, amount) << std::flush;
        return;
    }
    constexpr int width = 30;
    const double f = estimated ? std::min(1.0, static_cast<double>(done) / static_cast<double>(estimated)) : 0.0;
    const int filled = static_cast<int>(f * width);
    std::cout << fmt::format("\r[{}{}] {:3.0f}% {}\033[K", std::string(filled, '#'), std::string(width - filled, '.'),
                             f * 100, amount)
              << std::flush;
}

int cmd_backup(const Options& o) {
    Client c(o.instance);
    const bool tty = isatty(STDOUT_FILENO) && !o.json;
    std::string id;
    std::optional<std::pair<std::string, std::string>> finished;  // result, error
    auto& p = c.proxy();
    if (o.wait) {
        // Subscribed before the call, so no signal of this job can be missed.
        p.on_progress = [&](const std::string& job, std::uint64_t done, std::uint64_t est) {
            if (job == id && !o.json) show_progress(job, done, est, tty);
        };
        p.on_finished = [&](const std::string& job, const std::string& result, const std::string& error) {
            if (job == id) finished = {result, error};
        };
    }
    c.call("start a backup of " + c.instance(), [&] { id = p.Backup(); });
    if (!o.wait) {
        if (o.json)
            print_json(json{{"id", id}});
        else
            std::cout << fmt::format("backup {} of {} started\n", id, c.instance());
        return 0;
    }
    if (!o.json) std::cout << fmt::format("backup {} of {} running\n", id, c.instance()) << std::flush;
    auto last_check = std::chrono::steady_clock::now();
    while (!finished) {
        try {
            while (!finished && c.conn().processPendingRequest()) {
            }
        } catch (const sdbus::Error& e) {
            rethrow_dbus(e, "wait for backup " + id);
        }
        if (finished) break;
        const auto pd = c.conn().getEventLoopPollData();
        pollfd fd{pd.fd, pd.events, 0};
        int timeout = pd.getPollTimeout();
        if (timeout < 0 || timeout > 1000) timeout = 1000;
        ::poll(&fd, 1, timeout);
        if (std::chrono::steady_clock::now() - last_check >= std::chrono::seconds(1)) {
            // Signals are the normal path; this catches a daemon that stopped mid-backup.
            last_check = std::chrono::steady_clock::now();
            if (!c.has_owner(c.name()))
                throw NotRunningError(fmt::format("bartld {} went away while backup {} ran", c.instance(), id));
            Info i;
            c.call("status of " + c.instance(), [&] { i = read_info(p, c.name()); });
            if (i.job != id && i.last_id == id) finished = {i.last_result, i.last_error};
        }
    }
    if (tty) std::cout << "\n";
    const bool ok = finished->first == "success";
    if (o.json)
        print_json(json{{"id", id}, {"result", finished->first}, {"error", finished->second}});
    else if (ok)
        std::cout << fmt::format("backup {} of {} finished: success\n", id, c.instance());
    else
        std::cerr << fmt::format("bartlctl: backup {} of {} failed: {}\n", id, c.instance(), finished->second);
    return ok ? 0 : 1;
}


int cmd_adopt(const Options& o) {
    const Config config = load_instance_config(o);
    const Version version = Version::parse(o.version);
    const auto r = adopt(config, version);
    const Instance inst(config);
    if (o.json) {
        json found = json::array();
        for (const auto& c : r.components)
            found.push_back(json{{"component", c.id}, {"files", c.files}, {"bytes", c.bytes}});
        print_json(json{{"instance", config.instance}, {"version", r.marker.version}, {"state_id", r.marker.state_id},
                        {"marker", inst.marker_path().string()}, {"components", found}});
        return 0;
    }
    std::cout << fmt::format("Instance {} (app {}): adopted data bartl did not create:\n", config.instance,
                             config.app_name);
    for (const auto& c : r.components)
        std::cout << fmt::format("  {}: {}, {}\n", c.id, count_noun(c.files, "file", "files"), format_bytes(c.bytes));
    std::cout << fmt::format("Adopted as state {} (state ID {}, marker {}); bartld now serves it (migrating when its "
                             "engine is newer).\n",
                             r.marker.version, r.marker.state_id, inst.marker_path().string());
    return 0;
}

int cmd_restore_from(const Options& o) {
    const Config config = load_instance_config(o);
    Instance inst(config);
    if (o.clear) {
        inst.clear_pin();
        if (o.json)
            print_json(json{{"instance", config.instance}, {"pin", nullptr}, {"file", inst.pin_path().string()}});
        else
            std::cout << fmt::format("instance {}: no backup pinned; the next restore takes the newest\n",
                                     config.instance);
        return 0;
    }
    if (o.id.empty()) throw UsageError("restore-from needs a backup ID (see `bartlctl backups`) or --clear");
    auto store = require_store(config, "nothing to restore from");
    const auto b = pin_restore(config, *store, Context{}, o.id);
    if (o.json) {
        print_json(json{{"instance", config.instance}, {"pin", b.id}, {"file", inst.pin_path().string()}});
        return 0;
    }
    std::cout << fmt::format("instance {}: backup {} (state {}, created {}) pinned in {}\n", config.instance, b.id,
                             b.version, b.created, inst.pin_path().string());
    auto mr = inst.read_marker();
    if (mr.marker)
        std::cout << fmt::format("note: state {} exists; the pin is used only when no state exists (move the state "
                                 "away, then restart bartld)\n", mr.marker->version);
    else
        std::cout << "the next start of bartld restores it\n";
    return 0;
}

int cmd_init_store(const Options& o) {
    const Config config = load_instance_config(o);
    const auto r = init_configured_store(config, Context{});
    if (o.json) {
        print_json(json{{"instance", config.instance}, {"store", config.store}, {"created", r.created},
                        {"store_id", r.identity.store_id}, {"app", r.identity.app}});
        return 0;
    }
    std::cout << fmt::format("store {} {} for app {} (store ID {}, created {} on {})\n", config.store,
                             r.created ? "initialised" : "was already initialised", r.identity.app,
                             r.identity.store_id, r.identity.created, r.identity.created_by);
    return 0;
}

int cmd_forget(const Options& o) {
    const Config config = load_instance_config(o);
    const auto m = forget_component(config, o.component);
    if (o.json) {
        json left = json::array();
        for (const auto& c : m.components) left.push_back(component_id(c.kind, c.name));
        print_json(json{{"instance", config.instance}, {"forgotten", o.component}, {"components", left}});
        return 0;
    }
    std::cout << fmt::format("instance {}: {} is no longer part of the state (recorded in the history; its data was "
                             "left in place)\n",
                             config.instance, o.component);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App cli{"bartlctl: see and steer running bartld instances", "bartlctl"};
    Options o;
    cli.add_option("-i,--instance", o.instance, "instance NAME (default: the only one running)")->type_name("NAME");
    cli.add_flag("--json", o.json, "machine-readable output (stable keys, see bartlctl(1))");
    cli.set_version_flag("--version", "bartlctl " BARTL_VERSION);
    cli.require_subcommand(1);
    cli.fallthrough();

    auto* status = cli.add_subcommand("status", "phase, versions, decision, last/next backup of one instance");
    status->add_option("-c,--config", o.config_file,
                       "configuration file, for what the marker says when bartld is not running (default: by -i NAME)")
        ->type_name("FILE");
    auto* backup = cli.add_subcommand("backup", "start a backup now");
    backup->add_flag("--wait", o.wait, "wait for the result, showing progress; exit 1 when it fails");
    auto* backups = cli.add_subcommand("backups", "list the instance's backups in its store");
    auto* verify = cli.add_subcommand("verify", "verify a backup (default: the newest)");
    verify->add_option("ID", o.id, "backup id");
    auto* plan = cli.add_subcommand("plan", "what a restart would do now (re-reads the engine version)");
    auto* history = cli.add_subcommand("history", "the state's history: init, restores, migrations, adoption");
    auto* instances = cli.add_subcommand("instances", "every bartld on the bus: phase, versions, last backup");
    auto* adopt = cli.add_subcommand("adopt", "put existing data under bartl as state VERSION (bartld stopped)");
    adopt->add_option("VERSION", o.version, "state version of the data (SemVer)")->required();
    adopt->add_option("-c,--config", o.config_file, "configuration file (default: by -i NAME)")->type_name("FILE");
    auto* restore_from = cli.add_subcommand("restore-from", "restore backup ID at the next start without state");
    restore_from->add_option("ID", o.id, "backup id");
    restore_from->add_flag("--clear", o.clear, "remove the pin: restore the newest backup");
    restore_from->add_option("-c,--config", o.config_file, "configuration file (default: by -i NAME)")->type_name("FILE");
    auto* init_store = cli.add_subcommand("init-store", "create the store's identity object (once per new store)");
    init_store->add_option("-c,--config", o.config_file, "configuration file (default: by -i NAME)")->type_name("FILE");
    auto* forget = cli.add_subcommand("forget", "record that a component is no longer part of the state (bartld stopped)");
    forget->add_option("COMPONENT", o.component, "component, e.g. path:/var/lib/notes/old")->required();
    forget->add_option("-c,--config", o.config_file, "configuration file (default: by -i NAME)")->type_name("FILE");
    if (auto code = parse_command_line(cli, argc, argv)) return *code;
    try {
        // A name bartld refuses is a usage error (64) for every verb, before any bus or
        // offline lookup could report it as an instance that is not running (3).
        if (!o.instance.empty()) (void)instance_config_path(o.instance);
        if (status->parsed()) return cmd_status(o);
        if (backup->parsed()) return cmd_backup(o);
        if (backups->parsed()) return cmd_backups(o);
        if (verify->parsed()) return cmd_verify(o);
        if (plan->parsed()) return cmd_plan(o);
        if (history->parsed()) return cmd_history(o);
        if (instances->parsed()) return cmd_instances(o);
        if (adopt->parsed()) return cmd_adopt(o);
        if (restore_from->parsed()) return cmd_restore_from(o);
        if (init_store->parsed()) return cmd_init_store(o);
        if (forget->parsed()) return cmd_forget(o);
        return static_cast<int>(ExitCode::usage);
    } catch (const Error& e) {
        std::cerr << "bartlctl: " << e.what() << "\n";
        return static_cast<int>(e.exit_code());
    } catch (const sdbus::Error& e) {
        std::cerr << "bartlctl: D-Bus: " << e.getName() << ": " << e.getMessage() << "\n";
        return static_cast<int>(ExitCode::runtime);
    } catch (const std::exception& e) {
        std::cerr << "bartlctl: " << e.what() << "\n";
        return static_cast<int>(ExitCode::runtime);
    }
}
