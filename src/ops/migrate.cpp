#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/migrations.hpp"
#include "core/time.hpp"
#include "ops/actions.hpp"
#include "ops/backup.hpp"
#include "ops/events.hpp"
#include "ops/instance.hpp"
#include "util/fs.hpp"
#include "util/log.hpp"

namespace bartl {

namespace {

/// The scripts in [hooks] migrations. Hidden files are skipped; anything else that is not an
/// executable VERSION[-slug] file is a configuration error, so a typo never skips a step.
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
            throw ConfigError(fmt::format("[hooks] migrations: {} is not named MAJOR.MINOR.PATCH[-slug]",
                                          e.path().string()));
        if (!e.is_regular_file() || ::access(e.path().c_str(), X_OK) != 0)
            throw ConfigError(fmt::format("[hooks] migrations: {} is not an executable file", e.path().string()));
        out.push_back(*s);
    }
    return out;
}

}  // namespace

void do_migrate(const Config& config, Store* store, Marker marker, const Version& engine, const Reporter& reporter) {
    Instance inst(config);
    const auto from = Version::parse(marker.version);
    std::vector<MigrationScript> steps;
    try {
        steps = select_migrations(scan_migrations(config), from, engine);
    } catch (const std::invalid_argument& e) {
        throw ConfigError(fmt::format("[hooks] migrations: {}", e.what()));
    }
    log::write(log::Level::notice,
               fmt::format("migration of {} from {} to {} started: {} step(s)", config.instance, from.str(),
                           engine.str(), steps.size()),
               {}, event::migrate_started);

    // A retry after a failed step must not back up again: the state may hold that step's
    // partial changes, and repeated "pre-migration" backups of it would push the clean one
    // out through retention. The clean one is the backup recorded at this version.
    const bool have_clean_backup =
        !marker.history.empty() && marker.history.back().event == "backup" &&
        marker.history.back().to == marker.version &&
        marker.history.back().detail.rfind("before migration: ", 0) == 0;
    if (have_clean_backup)
        log::notice(fmt::format("pre-migration backup of state {} already taken ({}): not taking another",
                                marker.version, marker.history.back().detail.substr(18)));
    if (config.before_migrate && store && !have_clean_backup) {
        reporter.set_phase(Phase::backing_up);
        auto b = take_backup(config, *store, marker.version, engine.str(), reporter);
        log::notice(fmt::format("pre-migration backup {} of state {} taken: the way back to {} is "
                                "`bartld --restore-from {}` with engine {}", b.id, marker.version, marker.version, b.id,
                                marker.version),
                    {{"BARTL_BACKUP_ID", b.id}});
        add_history(marker, "backup", marker.version, marker.version, "before migration: " + b.id);
        inst.write_marker(marker);
    }

    reporter.set_phase(Phase::migrating);
    for (const auto& step : steps) {
        const std::string current = marker.version;
        // SIGTERM during the pre-migration backup or a step that ignored it: stop before the next.
        if (stop_requested())
            throw StopRequested(fmt::format("stop requested: migration of {} stopped before step {}; state stays at {}",
                                            config.instance, step.file_name, current));
        reporter.set_status(fmt::format("Migrating {} from {} to {} ({})", config.instance, current,
                                        step.version.str(), step.file_name));
        Intent intent = new_intent("migrate");
        intent.from = current;
        intent.to = step.version.str();
        inst.write_intent(intent);
        auto env = hook_env(config, engine.str(), current);
        env["BARTL_MIGRATION_VERSION"] = step.version.str();
        const auto script = (*config.migrations_dir / step.file_name).string();
        try {
            run_hook(config, "migration", {script}, env);
            // What the step wrote must be on disk before the marker says it is done: after a
            // power loss the marker would record the new version over the old files, and the
            // step would never run again.
            for (const auto& p : config.state_paths) fs::sync_filesystem(p);
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
        marker.version = step.version.str();
        add_history(marker, "migrate", current, marker.version, step.file_name);
        inst.write_marker(marker);
        log::info(fmt::format("migration step {} done: state {}", step.file_name, marker.version));
    }
    if (marker.version != engine.str()) {
        const std::string current = marker.version;
        marker.version = engine.str();
        add_history(marker, "migrate", current, marker.version, "no migration script");
        inst.write_marker(marker);
    }
    inst.clear_intent();
    log::write(log::Level::notice,
               fmt::format("migration of {} from {} to {} finished", config.instance, from.str(), engine.str()), {},
               event::migrate_finished);
}

}  // namespace bartl
