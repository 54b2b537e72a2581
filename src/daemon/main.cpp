// bartld: parse arguments, build the objects, run (bartl(7) "Binaries and exit codes").
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <pthread.h>
#include <cstdlib>

#include <systemd/sd-login.h>

#include <CLI/CLI.hpp>

#include "util/cli.hpp"
#include <fmt/format.h>

#include "bartl_build_config.h"
#include "config/config.hpp"
#include "app/user.hpp"
#include "core/words.hpp"
#include "core/error.hpp"
#include "daemon/bus.hpp"
#include "daemon/heartbeat.hpp"
#include "daemon/serve.hpp"
#include "daemon/status.hpp"
#include "generator/dropin.hpp"
#include "ops/backup.hpp"
#include "ops/catalog.hpp"
#include "ops/commands.hpp"
#include "ops/config_check.hpp"
#include "ops/engine.hpp"
#include "ops/events.hpp"
#include "ops/instance.hpp"
#include "ops/lifecycle.hpp"
#include "util/lock.hpp"
#include "util/log.hpp"
#include "util/notify.hpp"

using namespace bartl;

namespace {

struct Args {
    std::string config_file;
    std::string instance;
    bool plan = false;
    bool prepare = false;
    bool backup = false;
    bool check_config = false;
    bool verify = false;
    bool init_store = false;
    std::string verify_id;
    std::string restore_from;
};

/// Reports to systemd and the journal, and to `status` (D-Bus) when given.
/// True when SIGTERM or SIGINT is pending. They stay blocked until the serving loop reads
/// them from a signalfd, so the lifecycle asks between its steps instead.
bool stop_pending() {
    sigset_t pending;
    if (sigpending(&pending) != 0) return false;
    return sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1;
}

Reporter daemon_reporter(Status* status = nullptr) {
    Reporter r;
    r.status = [status](const std::string& s) {
        notify::status(s);
        if (status) status->update([&](StatusSnapshot& st) { st.status_text = s; });
    };
    r.phase = [status](Phase p) {
        log::set_context("BARTL_PHASE", phase_name(p));
        if (status) status->set_phase(p);
    };
    return r;
}

/// Under a unit with bartl-generator's drop-in: that drop-in was written for this
/// configuration (check_sandbox_fits). $STATE_DIRECTORY is the unit's StateDirectory=
/// (systemd.exec(5); the first one when several).
void check_unit_sandbox(const Config& config, const std::string& instance) {
    const char* fingerprint = std::getenv(kSandboxEnv);
    if (!fingerprint || !*fingerprint) return;
    // The unit's name from our cgroup (sd_pid_get_unit(3)), else what it would be.
    std::string unit = instance.empty() ? "bartld.service" : fmt::format("bartld@{}.service", instance);
    if (char* u = nullptr; sd_pid_get_unit(0, &u) >= 0 && u) {
        unit = u;
        std::free(u);
    }
    std::filesystem::path state_directory = instance.empty() ? std::filesystem::path("/var/lib/bartl")
                                                             : std::filesystem::path("/var/lib/bartl") / instance;
    if (const char* sd = std::getenv("STATE_DIRECTORY"); sd && *sd) {
        const std::string_view dirs = sd;
        state_directory = std::string(dirs.substr(0, dirs.find(':')));
    }
    check_sandbox_fits(config, fingerprint, state_directory, unit);
}

int run(const Args& a) {
    if (a.config_file.empty() == a.instance.empty())
        throw UsageError("exactly one of --config FILE or --instance NAME is required");
    const auto file = a.config_file.empty() ? instance_config_path(a.instance) : std::filesystem::path(a.config_file);
    // Before the config is read: its errors (exit 78) are the instance's, for `bartlctl status`.
    if (!a.instance.empty()) log::set_context("BARTL_INSTANCE", a.instance);
    const Config config = load_config(file, a.instance);
    log::set_context("BARTL_INSTANCE", config.instance);
    check_config_files(config);  // a hook that cannot run is exit 78 now, not exit 1 later
    check_user_switch(config);
    check_unit_sandbox(config, a.instance);
    const Version engine = resolve_engine_version(config);
    log::set_context("BARTL_ENGINE_VERSION", engine.str());

    if (a.check_config) {
        std::cout << fmt::format("{}: OK (instance {}, app {}, engine {})\n", file.string(), config.instance,
                                 config.app_name, engine.str());
        return 0;
    }
    // SIGTERM and SIGINT stay blocked until the serving loop reads them from a signalfd; until
    // then every step polls the process token, which looks at the pending signals.
    CancelToken::process().set_poll(stop_pending, "SIGTERM received");
    const Context ctx;
    auto store = open_configured_store(config);
    std::optional<std::string> pin;
    if (!a.restore_from.empty()) pin = a.restore_from;

    if (a.plan) {
        std::cout << plan_text(config, engine, store.get(), ctx, pin, pin.has_value());
        return 0;
    }
    if (a.init_store) {
        const auto r = init_configured_store(config, ctx);
        std::cout << fmt::format("store {} {} for app {} (store ID {}, created {} on {})\n", config.store,
                                 r.created ? "initialised" : "was already initialised", r.identity.app,
                                 r.identity.store_id, r.identity.created, r.identity.created_by);
        return 0;
    }
    const Reporter reporter = daemon_reporter();
    if (a.verify) {
        if (!store) throw UsageError(fmt::format("{}: no [backup] store configured: nothing to verify", file.string()));
        auto b = verify_backup(config, *store, ctx, a.verify_id, reporter);
        std::cout << fmt::format("backup {} OK: {} ({}, {} of data, blob {} bytes, sha256 {}), {}\n", b.id,
                                 b.blob_name, count_noun(b.files, "entry", "entries"), format_bytes(b.bytes), b.blob_size, b.blob_sha256,
                                 b.signer.empty()                  ? "not signed"
                                 : b.signer.rfind("INVALID", 0) == 0 ? "signature " + b.signer
                                                                     : "signed by " + b.signer);
        return 0;
    }

    // A mistyped --restore-from would be kept as the pin and fail every later start: the id
    // must name a complete backup of this app now (an unreachable store fails here too).
    if (pin && !a.backup) {
        if (!store) throw UsageError(fmt::format("--restore-from {}: {} configures no [backup] store", *pin, file.string()));
        check_pin(config, *store, ctx, *pin);
    }

    InstanceLock lock(config.bartl_dir, config.instance);
    // Under the lock: a record left now is of a backup whose bartld is gone.
    if (const auto killed = Instance(config).take_interrupted_backup())
        log::write(log::Level::warning, interrupted_backup_message(*killed, config.store),
                   {{"BARTL_BACKUP_ID", killed->backup_id}});

    if (a.backup) {
        if (!store) throw UsageError(fmt::format("{}: no [backup] store configured", file.string()));
        auto o = observe(config, engine, store.get(), ctx, {}, std::nullopt);
        if (o.facts.state == StateFact::present && o.facts.components_undeclared)
            throw ConfigError(fmt::format(
                "{}: the state marker records component(s) the configuration no longer declares: {}; declare them "
                "again, or record their removal with `{}` (their data stays where it is)",
                config.file.string(), o.state_detail, bartlctl_command(config, "forget", "COMPONENT")));
        if (o.facts.state != StateFact::present || o.facts.marker_legacy || o.facts.components_new)
            throw RuntimeError(fmt::format("no state to back up as it is: {} (start bartld once, or run --prepare)",
                                           o.state_detail));
        Heartbeat heartbeat;
        BackupRequest req;
        req.reason = "manual";
        auto b = take_backup(config, *store, ctx, *o.marker, engine.str(), req, reporter);
        std::cout << fmt::format("backup {} taken: {} ({} bytes)\n", b.id, b.blob_name, b.blob_size);
        return 0;
    }

    // The bus name is taken before the loop so that `bartlctl status` shows restoring or
    // migrating while they run; without a system bus bartld works on without it.
    Status status;
    status.update([&](StatusSnapshot& s) {
        s.instance = config.instance;
        s.app = config.app_name;
        s.engine_version = engine.str();
        s.store = config.store;
    });
    const auto bus = Bus::open(config, status);
    const Reporter loop_reporter = daemon_reporter(&status);

    LoopOptions options;
    options.restore_from = pin;
    if (pin) Instance(config).write_pin(*pin);  // survives a crash mid-restore
    LoopResult result;
    {
        Heartbeat heartbeat;
        result = run_lifecycle(config, engine, store.get(), ctx, loop_reporter, options);
    }
    if (pin) Instance(config).clear_pin();
    log::set_context("BARTL_STATE_VERSION", result.marker.version);
    status.update([&](StatusSnapshot& s) {
        s.state_version = result.marker.version;
        s.state_origin = result.marker.origin;
        s.state_id = result.marker.state_id;
        s.last_decision = format_path(result.path);
    });
    if (bus) bus->state_ready();
    if (a.prepare) {
        std::cout << fmt::format("{}: ready: {} (state {})\n", config.instance, format_path_words(result.path),
                                 result.marker.version);
        return 0;
    }
    if (ctx.cancel.cancelled()) {
        log::notice(fmt::format("stop requested during the start: {} is ready (state {}) but not started",
                                config.instance, result.marker.version));
        return 0;
    }
    Server server(config, engine, store.get(), result.marker, result.path, status);
    return server.run();
}

}  // namespace

int main(int argc, char** argv) {
    // Block the signals the server waits for on a signalfd, before any thread exists, so every
    // thread inherits the mask; children reset it before exec.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &mask, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    CLI::App cli{"bartld: one startup decision for an application's whole lifecycle", "bartld"};
    Args a;
    cli.add_option("-c,--config", a.config_file, "configuration file")->type_name("FILE");
    cli.add_option("-i,--instance", a.instance, "instance NAME: reads " BARTL_SYSCONFDIR "/bartl/NAME.toml")
        ->type_name("NAME");
    auto* modes = cli.add_option_group("modes");
    modes->add_flag("--plan", a.plan, "print what the loop would do now; change nothing");
    modes->add_flag("--prepare", a.prepare, "run the loop until the state is ready, then exit without serving");
    modes->add_flag("--backup", a.backup, "take one backup of the present state and exit");
    modes->add_flag("--check-config", a.check_config, "validate the configuration and exit");
    modes->add_flag("--init-store", a.init_store, "create the store identity object (once per store) and exit");
    modes->add_option("--verify", a.verify_id, "verify backup ID (default: the newest) and exit")
        ->type_name("[ID]")
        ->expected(0, 1)
        ->each([&](const std::string&) { a.verify = true; });
    modes->require_option(0, 1);
    cli.add_option("--restore-from", a.restore_from, "when no state exists, restore backup ID instead of the newest")
        ->type_name("ID");
    cli.set_version_flag("--version", "bartld " BARTL_VERSION);
    if (auto code = parse_command_line(cli, argc, argv)) return *code;
    if (cli.count("--verify")) a.verify = true;
    try {
        return run(a);
    } catch (const StopRequested& e) {
        log::notice(e.what());
        return 0;
    } catch (const Error& e) {
        const char* id = e.exit_code() == ExitCode::downgrade ? event::downgrade_refused
                         : e.exit_code() == ExitCode::foreign ? event::foreign_refused
                                                              : event::lifecycle_failed;
        log::write(log::Level::err, e.what(), {}, id);
        notify::send(fmt::format("STATUS=Failed: {}", std::string(e.what()).substr(0, 400)));
        return static_cast<int>(e.exit_code());
    } catch (const std::exception& e) {
        log::write(log::Level::err, fmt::format("unexpected error: {}", e.what()), {}, event::lifecycle_failed);
        notify::send(fmt::format("STATUS=Failed: {}", e.what()));
        return static_cast<int>(ExitCode::runtime);
    }
}
