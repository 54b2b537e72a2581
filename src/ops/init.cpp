#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "app/user.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "ops/actions.hpp"
#include "ops/events.hpp"
#include "ops/instance.hpp"
#include "ops/staging.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"

namespace bartl {

std::vector<std::filesystem::path> staging_dirs(const Config& config) {
    std::vector<std::filesystem::path> out;
    for (const auto& p : config.state_paths) out.push_back(fs::staging_path_for(p));
    return out;
}

std::vector<std::string> path_strings(const std::vector<std::filesystem::path>& v) {
    std::vector<std::string> out;
    for (const auto& p : v) out.push_back(p.string());
    return out;
}

void check_targets(const Config& config) {
    for (const auto& t : config.state_paths) {
        struct stat st {};
        if (::lstat(t.c_str(), &st) != 0) {
            if (errno == ENOENT) continue;
            throw RuntimeError(fmt::format("cannot inspect state path {}: {}", t.string(), std::strerror(errno)));
        }
        if (S_ISLNK(st.st_mode))
            throw ConfigError(fmt::format(
                "state path {} is a symlink: bartl renames staged state into place, which would replace the link; "
                "declare the directory it points to in [state] paths",
                t.string()));
        if (!S_ISDIR(st.st_mode))
            throw ConfigError(fmt::format("state path {} exists and is not a directory", t.string()));
        struct stat parent {};
        if (::stat(t.parent_path().c_str(), &parent) == 0 && parent.st_dev != st.st_dev)
            throw ConfigError(fmt::format(
                "state path {} is a mount point: bartl stages state beside it and renames it into place, which "
                "cannot replace a mount point; declare a directory inside it (e.g. {}/data) in [state] paths",
                t.string(), t.string()));
    }
}

void prepare_staging(const std::vector<std::filesystem::path>& staging) {
    for (const auto& s : staging) {
        fs::remove_tree(s);  // left over by a crash; the intent names it, so it is ours
        fs::make_dirs(s.parent_path());
        fs::make_dirs(s, 0755);
    }
}

void sync_staging(const std::vector<std::filesystem::path>& staging) {
    // The renames below are only worth something if the staged files are on disk first.
    for (const auto& s : staging) fs::sync_filesystem(s);
}

void commit_staging(const std::vector<std::filesystem::path>& staging, const std::vector<std::filesystem::path>& targets) {
    for (std::size_t i = 0; i < staging.size(); ++i) {
        // rename(2) atomically replaces an empty directory (e.g. one systemd's StateDirectory= made).
        if (!fs::is_missing_or_empty(targets[i]))
            throw RuntimeError(fmt::format("{} is not empty: refusing to replace it", targets[i].string()));
        fs::rename_durable(staging[i], targets[i]);
    }
}

void do_init(const Config& config, const Version& engine, const Reporter& reporter) {
    Instance inst(config);
    reporter.set_phase(Phase::initializing);
    reporter.set_status(fmt::format("Initializing {} {}", config.instance, engine.str()));
    log::write(log::Level::notice, fmt::format("init of {} at {} started", config.instance, engine.str()), {},
               event::init_started);
    check_targets(config);
    auto staging = staging_dirs(config);
    Intent intent = new_intent("init");
    intent.staging = path_strings(staging);
    intent.targets = path_strings(config.state_paths);
    intent.to = engine.str();
    inst.write_intent(intent);

    const auto new_parents = missing_parents(config);
    prepare_staging(staging);
    // The init hook runs as the app's user, and what it leaves becomes the app's state.
    give_to_app_user(config, staging, new_parents);
    auto env = hook_env(config, engine.str(), "");
    env["BARTL_STAGING"] = staging.front().string();
    std::string all;
    for (const auto& s : staging) all += (all.empty() ? "" : ":") + s.string();
    env["BARTL_STAGING_PATHS"] = all;
    Marker m;
    m.app = config.app_name;
    m.version = engine.str();
    m.origin = "init";
    m.state_paths = path_strings(config.state_paths);
    add_history(m, "init", "", engine.str(), config.hook_init.empty() ? "empty state" : config.hook_init.front());
    try {
        run_hook(config, "init", config.hook_init, env);
        sync_staging(staging);
        commit_staging(staging, config.state_paths);
        inst.write_marker(m);
    } catch (...) {
        rollback_uncommitted(config, staging);
        throw;
    }
    inst.clear_intent();
    log::write(log::Level::notice, fmt::format("init of {} at {} finished", config.instance, engine.str()), {},
               event::init_finished);
}

void rollback_uncommitted(const Config& config, const std::vector<std::filesystem::path>& staging) {
    // Best effort: whatever is left is still proven ours by the intent, and the next start
    // cleans it (clean_partial), so a failure here is only logged.
    try {
        for (const auto& s : staging) fs::remove_tree(s);
        for (const auto& t : config.state_paths) fs::remove_tree(t);
        Instance(config).clear_intent();
    } catch (const std::exception& e) {
        log::warn(fmt::format("rollback incomplete ({}); the next start will clean up", e.what()));
    }
}

void do_clean_partial(const Config& config, const Intent& intent) {
    Instance inst(config);
    log::warn(fmt::format("cleaning up an interrupted {} started {} by PID {} (intent {})", intent.op, intent.started,
                          intent.pid, inst.intent_path().string()));
    for (const auto& s : intent.staging) fs::remove_tree(s);
    // The targets were missing or empty when the operation started (the foreign-state check
    // ran first), so whatever is in them now was put there by bartl.
    for (const auto& t : intent.targets) fs::remove_tree(t);
    inst.clear_intent();
}

}  // namespace bartl
