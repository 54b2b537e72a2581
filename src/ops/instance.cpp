#include "ops/instance.hpp"

#include <chrono>
#include <unistd.h>

#include <fmt/format.h>

#include "app/user.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "state/database.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"
#include "util/process.hpp"

namespace bartl {

namespace {

std::string now_rfc3339() {
    return format_rfc3339(std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now()));
}

}  // namespace

Instance::Instance(const Config& config) : config_(config) {}

MarkerRead Instance::read_marker() const {
    MarkerRead r;
    auto text = fs::read_file(marker_path());
    if (!text) return r;
    r.exists = true;
    try {
        r.marker = Marker::from_json(*text);
    } catch (const std::exception& e) {
        r.error = e.what();
    }
    return r;
}

std::optional<std::string> Instance::other_owner(const std::string& state_id) const {
    if (state_id.empty()) return std::nullopt;
    std::error_code ec;
    const auto own = std::filesystem::weakly_canonical(config_.bartl_dir, ec);
    for (const auto& e : std::filesystem::directory_iterator(config_.bartl_dir.parent_path(), ec)) {
        std::error_code ec2;
        if (!e.is_directory(ec2) || std::filesystem::weakly_canonical(e.path(), ec2) == own) continue;
        const auto marker = e.path() / "marker.json";
        try {
            const auto text = fs::read_file(marker);
            if (text && Marker::from_json(*text).state_id == state_id)
                return fmt::format("instance {} (marker {})", e.path().filename().string(), marker.string());
        } catch (const std::exception&) {
            continue;  // unreadable or damaged: not proof of anything
        }
    }
    return std::nullopt;
}

void Instance::write_marker(const Marker& m) const {
    fs::make_dirs(config_.bartl_dir);
    fs::write_file_atomic(marker_path(), m.to_json());
}

std::filesystem::path Instance::retire_marker(const std::string& reason) const {
    auto stamp = format_compact(std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now()));
    auto to = config_.bartl_dir / ("marker.json.stale-" + stamp);
    fs::rename_durable(marker_path(), to);
    log::warn(fmt::format("state marker moved aside to {}: {}", to.string(), reason));
    return to;
}

std::optional<Intent> Instance::read_intent() const {
    auto text = fs::read_file(intent_path());
    if (!text) return std::nullopt;
    try {
        return Intent::from_json(*text);
    } catch (const std::exception& e) {
        throw RuntimeError(fmt::format("intent record {} does not parse: {}; it records an operation bartl "
                                       "had started: inspect it and the state paths before removing it",
                                       intent_path().string(), e.what()));
    }
}

void Instance::write_intent(const Intent& i) const {
    fs::make_dirs(config_.bartl_dir);
    fs::write_file_atomic(intent_path(), i.to_json());
}

void Instance::clear_intent() const { fs::remove_durable(intent_path()); }

std::optional<std::string> Instance::read_pin() const {
    auto text = fs::read_file(pin_path());
    if (!text) return std::nullopt;
    auto s = *text;
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    if (s.empty()) return std::nullopt;
    return s;
}

void Instance::write_pin(const std::string& backup_id) const {
    fs::make_dirs(config_.bartl_dir);
    fs::write_file_atomic(pin_path(), backup_id + "\n");
}

void Instance::clear_pin() const { fs::remove_durable(pin_path()); }

std::optional<LastBackupRecord> Instance::read_last_backup() const {
    try {
        const auto text = fs::read_file(last_backup_path());
        if (!text) return std::nullopt;
        auto r = parse_last_backup(*text);
        if (!r) log::debug(fmt::format("{} does not parse: ignored", last_backup_path().string()));
        return r;
    } catch (const std::exception& e) {
        log::debug(fmt::format("cannot read {}: {}", last_backup_path().string(), e.what()));
        return std::nullopt;
    }
}

void Instance::write_last_backup(const LastBackupRecord& r) const {
    fs::make_dirs(config_.bartl_dir);
    fs::write_file_atomic(last_backup_path(), format_last_backup(r));
}

void Instance::write_running_backup(const RunningBackupRecord& r) const {
    fs::make_dirs(config_.bartl_dir);
    fs::write_file_atomic(running_backup_path(), format_running_backup(r));
}

void Instance::clear_running_backup() const noexcept {
    // Not durable on purpose: a backup's end costs no fsync; a crash right after it at worst
    // names a finished backup as interrupted at the next start.
    std::error_code ec;
    std::filesystem::remove(running_backup_path(), ec);
}

std::optional<RunningBackupRecord> Instance::take_interrupted_backup() const {
    std::optional<std::string> text;
    try {
        text = fs::read_file(running_backup_path());
    } catch (const std::exception& e) {
        log::debug(fmt::format("cannot read {}: {}", running_backup_path().string(), e.what()));
        return std::nullopt;
    }
    if (!text) return std::nullopt;
    clear_running_backup();
    auto r = parse_running_backup(*text);
    if (!r) log::debug(fmt::format("{} does not parse: removed", running_backup_path().string()));
    return r;
}

Intent new_intent(const std::string& op) {
    Intent i;
    i.op = op;
    i.started = now_rfc3339();
    i.pid = static_cast<int>(getpid());
    return i;
}

void add_history(Marker& m, const std::string& event, const std::string& from, const std::string& to,
                 const std::string& detail) {
    m.history.push_back(HistoryEntry{now_rfc3339(), event, from, to, detail});
}

std::map<std::string, std::string> hook_env(const Config& config, const std::string& engine_version,
                                            const std::string& state_version) {
    std::string paths;
    for (const auto& p : config.state_paths) {
        if (!paths.empty()) paths += ':';
        paths += p.string();
    }
    std::map<std::string, std::string> env{
        {"BARTL_INSTANCE", config.instance},
        {"BARTL_APP", config.app_name},
        {"BARTL_ENGINE_VERSION", engine_version},
        {"BARTL_STATE_PATHS", paths},
    };
    if (!state_version.empty()) env["BARTL_STATE_VERSION"] = state_version;
    env.merge(database_env(config.databases));
    return env;
}

void run_hook(const Config& config, const std::string& name, const std::vector<std::string>& argv,
              const std::map<std::string, std::string>& env, const CancelToken& cancel, bool stoppable) {
    if (argv.empty()) return;
    CommandSpec spec;
    spec.argv = argv;
    spec.env = app_user_env(config);
    for (const auto& [k, v] : env) spec.env[k] = v;
    spec.credentials = app_credentials(config);
    spec.log_fields = {{"BARTL_HOOK", name}};
    spec.timeout = config.hook_timeout;
    if (stoppable) spec.stop_requested = [cancel] { return cancel.cancelled(); };
    auto r = run_command(spec);
    if (r.stopped)
        throw StopRequested(fmt::format("stop requested: {} hook {} was stopped ({})", name, argv.front(),
                                        describe_exit(r.exit_status, r.term_signal)));
    if (!r.ok()) {
        std::string tail = r.err;
        while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
        if (tail.size() > 2000) tail = "..." + tail.substr(tail.size() - 2000);
        throw RuntimeError(fmt::format("{} hook {} failed: {}{}{}", name, argv.front(), r.describe(),
                                       tail.empty() ? "" : ": ", tail));
    }
}

}  // namespace bartl
