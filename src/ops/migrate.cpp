#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <set>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/migrations.hpp"
#include "core/time.hpp"
#include "ops/actions.hpp"
#include "ops/events.hpp"
#include "ops/instance.hpp"
#include "ops/migrations_dir.hpp"
#include "state/declared.hpp"
#include "util/log.hpp"
#include "util/sha256.hpp"

namespace bartl {

namespace {

std::string now_rfc3339() {
    return format_rfc3339(std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now()));
}

}  // namespace

std::vector<MigrationScript> scan_migrations(const Config& config) {
    std::vector<MigrationScript> out;
    if (!config.migrations_dir) return out;
    const auto& dir = *config.migrations_dir;
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec))
        throw ConfigError(fmt::format("[hooks] migrations {}: not a directory", dir.string()));
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        const auto name = e.path().filename().string();
        if (name.empty() || name[0] == '.') continue;
        auto s = parse_migration_name(name);
        if (!s)
            throw ConfigError(fmt::format("[hooks] migrations: {} is not named VERSION, VERSION_SLUG or "
                                          "MAJOR.MINOR.PATCH-SLUG (bartl.toml(5), MIGRATIONS)",
                                          e.path().string()));
        if (!e.is_regular_file() || ::access(e.path().c_str(), X_OK) != 0)
            throw ConfigError(fmt::format("[hooks] migrations: {} is not an executable file", e.path().string()));
        out.push_back(*s);
    }
    return out;
}

std::vector<std::string> changed_migrations(const Config& config, const Marker& marker) {
    std::vector<std::string> out;
    if (!config.migrations_dir) return out;
    for (const auto& a : marker.migrations) {
        const auto path = *config.migrations_dir / a.name;
        std::error_code ec;
        if (a.sha256.empty() || !std::filesystem::is_regular_file(path, ec)) continue;
        std::string now;
        try {
            now = sha256_file(path);
        } catch (const Error&) {
            continue;
        }
        if (now != a.sha256)
            out.push_back(fmt::format("migration {} changed since it was applied on {} by engine {} (SHA-256 was "
                                      "{}, is {}): an applied script is never run again, so the change has no "
                                      "effect on this state",
                                      a.name, a.time, a.engine, a.sha256.substr(0, 12), now.substr(0, 12)));
    }
    return out;
}

void do_migrate(const RunContext& rc, Marker marker) {
    const auto& config = rc.config;
    Instance inst(config);
    const auto from = Version::parse(marker.version);
    std::set<std::string> applied;
    for (const auto& a : marker.migrations) applied.insert(a.name);
    std::vector<MigrationScript> steps;
    try {
        steps = pending_migrations(scan_migrations(config), from, rc.engine, applied);
    } catch (const std::invalid_argument& e) {
        throw ConfigError(fmt::format("[hooks] migrations: {}", e.what()));
    }
    for (const auto& w : changed_migrations(config, marker)) log::warn(w);

    // The intent exists already when a pre-migration backup was taken (it names it) or a
    // migration was interrupted: it stays until the last step, so a resumed migration never
    // takes a second "pre-migration" backup of half-migrated state.
    auto intent = inst.read_intent();
    if (!intent || intent->op != "migrate") {
        Intent in = new_intent("migrate");
        in.from = marker.version;
        in.to = rc.engine.str();
        inst.write_intent(in);
        intent = in;
    } else {
        // An earlier run's record: that migration never finished (a kill leaves no other
        // trace). Named once, with the step that now runs again.
        if (intent->pid != static_cast<int>(::getpid()))
            log::warn(fmt::format("the migration of {} from {} to {} started at {} by PID {} did not finish (a step "
                                  "failed, bartld was stopped or killed, or the host went down); the state is at {} "
                                  "(every step recorded in the marker completed), so it resumes with {}{}",
                                  config.instance, intent->from, intent->to, intent->started, intent->pid, from.str(),
                                  steps.empty() ? std::string("no step left") : "step " + steps.front().file_name,
                                  steps.empty() ? "" : ", which runs again from its start (migration scripts must be "
                                                       "safe to rerun)"));
        if (intent->to != rc.engine.str()) {
            intent->to = rc.engine.str();
            inst.write_intent(*intent);
        }
    }
    log::write(log::Level::notice,
               fmt::format("migration of {} from {} to {} started: {} step(s){}", config.instance, from.str(),
                           rc.engine.str(), steps.size(),
                           intent->pre_migration_backup.empty()
                               ? std::string()
                               : fmt::format("; the way back is backup {}", intent->pre_migration_backup)),
               {}, event::migrate_started);

    rc.reporter.set_phase(Phase::migrating);
    const auto declared = declared_components(config);
    for (const auto& step : steps) {
        const std::string current = marker.version;
        // SIGTERM during a step that ignored it: stop before the next.
        rc.ctx.cancel.check(fmt::format("migration of {} stopped before step {}; state stays at {}", config.instance,
                                        step.file_name, current));
        rc.reporter.set_status(fmt::format("Migrating {} from {} to {} ({})", config.instance, current,
                                           version_after(step, rc.engine).str(), step.file_name));
        auto env = hook_env(config, rc.engine.str(), current);
        env["BARTL_MIGRATION_VERSION"] = step.version.str();
        env["BARTL_MIGRATION_NAME"] = step.file_name;
        const auto script = *config.migrations_dir / step.file_name;
        const std::string sha = sha256_file(script);
        try {
            run_hook(config, "migration", {script.string()}, env, rc.ctx.cancel);
            // What the step wrote must be on disk before the marker says it is done: after a
            // power loss the marker would record the new version over the old files, and the
            // step would never run again.
            for (const auto& c : declared) c->sync_live();
        } catch (const StopRequested& e) {
            // Scripts are idempotent: the next start runs this step again.
            log::notice(fmt::format("migration step {} stopped; state stays at {}", step.file_name, current));
            throw;
        } catch (const Error& e) {
            log::write(log::Level::err,
                       fmt::format("migration step {} failed; state stays at {}: {}", step.file_name, current, e.what()),
                       {}, event::migrate_failed);
            throw RuntimeError(fmt::format("migration {} failed (state stays at {}): {}", step.file_name, current,
                                           e.what()));
        }
        marker.version = version_after(step, rc.engine).str();
        marker.migrations.push_back(AppliedMigration{step.file_name, sha, now_rfc3339(), rc.engine.str()});
        add_history(marker, "migrate", current, marker.version, step.file_name);
        inst.write_marker(marker);
        log::info(fmt::format("migration step {} done: state {}", step.file_name, marker.version));
    }
    if (marker.version != rc.engine.str()) {
        const std::string current = marker.version;
        marker.version = rc.engine.str();
        add_history(marker, "migrate", current, marker.version, steps.empty() ? "no migration script" : "no further script");
        inst.write_marker(marker);
    }
    inst.clear_intent();
    log::write(log::Level::notice,
               fmt::format("migration of {} from {} to {} finished", config.instance, from.str(), rc.engine.str()), {},
               event::migrate_finished);
}

}  // namespace bartl
