#include "daemon/bus.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <list>
#include <poll.h>
#include <sys/eventfd.h>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>
#include <sdbus-c++/sdbus-c++.h>

#include "instance1_adaptor.h"  // generated from dbus/app.bartl.Instance1.xml

#include "core/error.hpp"
#include "daemon/bus_loop.hpp"
#include "daemon/bus_name.hpp"
#include "ops/backup.hpp"
#include "ops/catalog.hpp"
#include "ops/commands.hpp"
#include "ops/config_check.hpp"
#include "ops/migrations_dir.hpp"
#include "core/time.hpp"
#include "util/cancel.hpp"
#include "ops/engine.hpp"
#include "ops/instance.hpp"
#include "ops/lifecycle.hpp"
#include "ops/signing.hpp"
#include "store/identity.hpp"
#include "store/store.hpp"
#include "util/log.hpp"

namespace bartl {

namespace {

/// Concurrent ListBackups/Verify/Plan workers; more callers get Busy rather than more threads.
constexpr std::size_t kMaxWorkers = 8;

std::string system_bus_address() {
    const char* a = std::getenv("DBUS_SYSTEM_BUS_ADDRESS");
    return a && *a ? a : "unix:path=/run/dbus/system_bus_socket";
}

/// The D-Bus error answering a call that failed with the current exception (core/error.hpp
/// maps each bartl error to one name). D-Bus strings must be valid UTF-8, and messages may
/// quote corrupt files or raw file names: they go through log::printable().
sdbus::Error to_dbus_error(const std::exception_ptr& p) {
    try {
        std::rethrow_exception(p);
    } catch (const sdbus::Error& e) {
        return e;
    } catch (const Error& e) {
        return sdbus::Error(e.dbus_name(), log::printable(e.what()));
    } catch (const std::exception& e) {
        return sdbus::Error("app.bartl.Error.Failed", log::printable(e.what()));
    }
}

/// PID of the process owning `name`, or std::nullopt when nobody owns it (or the bus does not say).
std::optional<std::uint32_t> owner_pid(sdbus::IConnection& conn, const std::string& name) {
    try {
        auto dbus = sdbus::createProxy(conn, "org.freedesktop.DBus", "/org/freedesktop/DBus");
        std::uint32_t pid = 0;
        dbus->callMethod("GetConnectionUnixProcessID").onInterface("org.freedesktop.DBus").withArguments(name)
            .storeResultsTo(pid);
        return pid;
    } catch (const sdbus::Error&) {
        return std::nullopt;
    }
}

std::unique_ptr<::bartl::Store> configured_store(const Config& config) {
    auto store = open_configured_store(config);
    if (!store) throw StoreUnavailable(fmt::format("instance {} has no [backup] store configured", config.instance));
    return store;
}

}  // namespace

/// Holds the connection so that it outlives the exported object (base classes are destroyed
/// in reverse order of declaration).
struct ConnectionHolder {
    std::unique_ptr<sdbus::IConnection> connection;
};

using BackupRow = sdbus::Struct<std::string, std::string, std::string, std::string, std::string, std::string,
                                std::uint64_t, std::uint64_t, std::uint64_t, std::string, std::string, std::string>;
using HistoryRow = sdbus::Struct<std::string, std::string, std::string, std::string, std::string>;

/// The exported object and the D-Bus thread. Every sd-bus call happens on that thread: other
/// threads only queue closures (post()) and wake it, since sd-bus connections are not
/// thread-safe.
class BusService final : private ConnectionHolder,
                         public sdbus::AdaptorInterfaces<app::bartl::Instance1_adaptor>,
                         public StatusListener {
public:
    BusService(std::unique_ptr<sdbus::IConnection> conn, std::string name, const Config& config, Status& status)
        : ConnectionHolder{std::move(conn)},
          AdaptorInterfaces(*connection, bus::object_path),
          name_(std::move(name)),
          config_(config),
          status_(status),
          loop_(*connection, [this] { publish(); }, config.instance) {
        registerAdaptor();
    }

    ~BusService() override {
        status_.set_listener(nullptr);
        cancel_.cancel("bartld is stopping");
        loop_.stop();
        workers_.join_all();
        unregisterAdaptor();
    }

    void start() {
        published_ = status_.snapshot();
        status_.set_listener(this);
        loop_.start();
    }

    const std::string& name() const noexcept { return name_; }

    // StatusListener: called from any thread; only queue and wake.
    void status_changed() override { wake(); }
    void backup_progress(const std::string& id, std::uint64_t done, std::uint64_t estimated) override {
        post([this, id, done, estimated] { emitBackupProgress(id, done, estimated); });
    }
    void backup_finished(const std::string& id, const std::string& result, const std::string& error) override {
        post([this, id, result, error = log::printable(error)] { emitBackupFinished(id, result, error); });
    }

private:
    // Methods (dbus/app.bartl.Instance1.xml documents each).
    std::string Backup() override {
        try {
            return status_.request_backup();
        } catch (const Error&) {
            throw to_dbus_error(std::current_exception());
        }
    }

    void ListBackups(sdbus::Result<std::vector<BackupRow>>&& result) override {
        reply_async(std::move(result), [this] {
            auto store = configured_store(config_);
            const auto ctx = worker_context();
            std::vector<BackupRow> rows;
            const auto backups = list_backups(*store, ctx, config_.app_name, reporting_policy(config_));
            // No backups at a location without bartl's identity: a mistyped bucket, prefix or
            // path (or an unmounted disk), not an empty store; StoreNotInitialized says so.
            if (backups.empty()) read_store_identity(*store, ctx, config_.app_name, config_.instance, init_store_commands(config_));
            for (const auto& b : backups)
                rows.emplace_back(b.id, b.created, b.version, b.host, b.blob_name, b.encryption.value_or(""),
                                  b.blob_size, b.bytes, b.files, b.reason, b.writer_state_id, b.signer);
            return std::make_tuple(std::move(rows));
        });
    }

    void Verify(sdbus::Result<std::string, std::string, std::uint64_t, std::uint64_t, std::string>&& result,
                std::string id) override {
        if (verifying_.exchange(true)) {
            result.returnError(to_dbus_error(std::make_exception_ptr(
                BusyError(fmt::format("a verification of instance {} is already running", config_.instance)))));
            return;
        }
        reply_async(std::move(result), [this, id] {
            struct Done {
                std::atomic<bool>& flag;
                ~Done() { flag = false; }
            } done{verifying_};
            auto store = configured_store(config_);
            auto b = verify_backup(config_, *store, worker_context(), id, Reporter{});
            log::info(fmt::format("backup {} verified on request: {} entries, {}", b.id, b.files,
                                  format_bytes(b.bytes)),
                      {{"BARTL_BACKUP_ID", b.id}});
            return std::make_tuple(b.id, b.blob_name, b.files, b.bytes, b.signer);
        });
    }

    void Plan(sdbus::Result<std::string>&& result) override {
        reply_async(std::move(result), [this] {
            // What a restart would do now: the configuration as it is on disk, not as loaded.
            const Config now = load_config(config_.file, config_.instance);
            check_config_files(now);
            const Version engine = resolve_engine_version(now);
            auto store = open_configured_store(now);
            auto pin = ::bartl::Instance(now).read_pin();
            return std::make_tuple(plan_text(now, engine, store.get(), worker_context(), pin));
        });
    }

    std::vector<HistoryRow> History() override {
        MarkerRead r;
        try {
            r = ::bartl::Instance(config_).read_marker();
        } catch (const Error&) {
            throw to_dbus_error(std::current_exception());
        }
        if (r.exists && !r.marker)
            throw sdbus::Error("app.bartl.Error.Failed", fmt::format("marker {} does not parse: {}",
                                                                    ::bartl::Instance(config_).marker_path().string(),
                                                                    r.error));
        std::vector<HistoryRow> rows;
        if (r.marker) {
            for (const auto& h : r.marker->history) rows.emplace_back(h.time, h.event, h.from, h.to, h.detail);
            // Like Flyway's validate: an applied script that changed since is reported here too.
            const auto now = format_rfc3339(
                std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now()));
            for (const auto& w : changed_migrations(config_, *r.marker))
                rows.emplace_back(now, "warning", r.marker->version, r.marker->version, log::printable(w));
        }
        return rows;
    }

    // Properties: read the newest snapshot; a getter never waits for anything but the status lock.
    std::string Instance() override { return status_.snapshot().instance; }
    std::string Phase() override { return status_.snapshot().phase; }
    std::uint64_t PhaseSince() override { return status_.snapshot().phase_since; }
    std::string StatusText() override { return log::printable(status_.snapshot().status_text); }
    std::string App() override { return status_.snapshot().app; }
    std::string EngineVersion() override { return status_.snapshot().engine_version; }
    std::string StateVersion() override { return status_.snapshot().state_version; }
    std::string StateOrigin() override { return status_.snapshot().state_origin; }
    std::uint32_t AppPID() override { return status_.snapshot().app_pid; }
    std::string LastDecision() override { return status_.snapshot().last_decision; }
    std::uint64_t ServingSince() override { return status_.snapshot().serving_since; }
    sdbus::Struct<std::string, std::string, std::uint64_t, std::uint64_t, std::string, std::string> LastBackup()
        override {
        const auto b = status_.snapshot().last_backup;
        return {b.id, b.created, b.blob_size, b.duration_ms, b.result, log::printable(b.error)};
    }
    sdbus::Struct<std::string, std::string, std::string, std::uint64_t, std::uint64_t> LastSuccessfulBackup()
        override {
        const auto b = status_.snapshot().last_success;
        return {b.id, b.created, b.host, b.blob_size, b.duration_ms};
    }
    sdbus::Struct<std::string, std::string, std::string> LastFailedBackup() override {
        const auto b = status_.snapshot().last_failure;
        return {b.id, b.created, log::printable(b.error)};
    }
    std::uint64_t NextBackup() override { return status_.snapshot().next_backup; }
    std::string BackupJob() override { return status_.snapshot().backup_job; }
    std::string Store() override { return status_.snapshot().store; }
    std::string StateId() override { return status_.snapshot().state_id; }
    std::string Fenced() override { return log::printable(status_.snapshot().fenced); }
    sdbus::Struct<std::uint64_t, std::string> StoreProblem() override {
        const auto s = status_.snapshot();
        return {s.store_problem_since, log::printable(s.store_problem)};
    }
    std::uint32_t KeepPreMigration() override { return config_.retention.keep_pre_migration; }

    /// What a worker's store calls run under: cancelled when the bus shuts down (or bartld
    /// stops), each call with the default deadline.
    Context worker_context() const {
        Context c;
        c.cancel = cancel_;
        return c;
    }

    /// Runs `compute` (returning std::tuple<T...>) on a worker thread and replies from the
    /// D-Bus thread with its values or its error.
    template <typename... T, typename F>
    void reply_async(sdbus::Result<T...>&& result, F compute) {
        auto r = std::make_shared<sdbus::Result<T...>>(std::move(result));
        try {
            // The Result (a reference to the call message) is moved into the reply closure,
            // so its last reference is dropped on the D-Bus thread, never on the worker.
            run_worker([this, r, compute = std::move(compute)]() mutable {
                try {
                    auto values = compute();
                    post([r = std::move(r), values = std::move(values)] {
                        std::apply([&](const auto&... v) { r->returnResults(v...); }, values);
                    });
                } catch (...) {
                    auto e = to_dbus_error(std::current_exception());
                    post([r = std::move(r), e] { r->returnError(e); });
                }
            });
        } catch (...) {
            r->returnError(to_dbus_error(std::current_exception()));
        }
    }

    /// Starts `work` on a worker thread. Throws BusyError when kMaxWorkers are running.
    void run_worker(std::function<void()> work) { workers_.run(std::move(work), config_.instance); }

public:
    /// LastBackup and LastSuccessfulBackup after a restart: the newest backup this state wrote
    /// (duration unknown), unless a backup of this process has already finished. Another
    /// state's backups (the one a restore came from) are not this state's last backup.
    void fill_last_backup() {
        if (config_.store.empty()) return;
        const std::string state_id = status_.snapshot().state_id;
        try {
            run_worker([this, state_id] {
                try {
                    auto store = configured_store(config_);
                    for (const auto& b :
                         list_backups(*store, worker_context(), config_.app_name, trust_policy(config_))) {
                        if (state_id.empty() || b.writer_state_id != state_id) continue;
                        status_.update([&](StatusSnapshot& s) {
                            if (!s.last_backup.id.empty()) return;
                            s.last_backup = BackupOutcome{b.id, b.created, b.blob_size, b.bytes, 0, "success", "",
                                                          b.host};
                            s.last_success = s.last_backup;
                        });
                        return;
                    }
                } catch (const Error& e) {
                    log::debug(fmt::format("D-Bus: last backup not known: {}", e.what()));
                }
            });
        } catch (const Error&) {
        }
    }

private:

    void post(std::function<void()> f) { loop_.post(std::move(f)); }
    void wake() { loop_.wake(); }

    /// PropertiesChanged for every property whose value differs from the last one published.
    void publish() {
        const auto s = status_.snapshot();
        std::vector<std::string> names;
        auto changed = [&](bool differs, const char* n) {
            if (differs) names.emplace_back(n);
        };
        const auto& p = published_;
        changed(s.instance != p.instance, "Instance");
        changed(s.phase != p.phase, "Phase");
        changed(s.phase_since != p.phase_since, "PhaseSince");
        changed(s.status_text != p.status_text, "StatusText");
        changed(s.app != p.app, "App");
        changed(s.engine_version != p.engine_version, "EngineVersion");
        changed(s.state_version != p.state_version, "StateVersion");
        changed(s.state_origin != p.state_origin, "StateOrigin");
        changed(s.app_pid != p.app_pid, "AppPID");
        changed(s.last_decision != p.last_decision, "LastDecision");
        changed(s.serving_since != p.serving_since, "ServingSince");
        changed(!(s.last_backup == p.last_backup), "LastBackup");
        changed(!(s.last_success == p.last_success), "LastSuccessfulBackup");
        changed(!(s.last_failure == p.last_failure), "LastFailedBackup");
        changed(s.next_backup != p.next_backup, "NextBackup");
        changed(s.backup_job != p.backup_job, "BackupJob");
        changed(s.store != p.store, "Store");
        changed(s.fenced != p.fenced, "Fenced");
        changed(s.store_problem != p.store_problem || s.store_problem_since != p.store_problem_since,
                "StoreProblem");
        changed(s.state_id != p.state_id, "StateId");
        published_ = s;
        if (!names.empty()) getObject().emitPropertiesChangedSignal(INTERFACE_NAME, names);
    }

    std::string name_;
    const Config& config_;
    Status& status_;
    StatusSnapshot published_;
    CancelToken cancel_ = CancelToken::process().child();  ///< cancels the workers' long calls
    std::atomic<bool> verifying_{false};
    WorkerPool workers_{kMaxWorkers};
    BusLoop loop_;
};

std::unique_ptr<Bus> Bus::open(const Config& config, Status& status) {
    const std::string name = bus::bus_name(config.instance);
    const std::string address = system_bus_address();
    std::unique_ptr<sdbus::IConnection> conn;
    try {
        conn = sdbus::createSystemBusConnection();
    } catch (const sdbus::Error& e) {
        log::warn(fmt::format("no D-Bus system bus at {} ({}): going on without the D-Bus interface; bartlctl "
                              "cannot reach instance {}", address, e.getMessage(), config.instance));
        return nullptr;
    }
    try {
        conn->requestName(name);
    } catch (const sdbus::Error& e) {
        if (auto pid = owner_pid(*conn, name))
            throw LockedError(fmt::format("D-Bus name {} on {} is owned by PID {}: another bartld serves instance "
                                          "{} (use `bartlctl -i {} status`)", name, address, *pid, config.instance,
                                          config.instance));
        log::warn(fmt::format("cannot own D-Bus name {} on {} ({}: {}): going on without the D-Bus interface; is the "
                              "bus policy app.bartl.Instance1.conf installed and bartld running as root?",
                              name, address, e.getName(), e.getMessage()));
        return nullptr;
    }
    auto service = std::make_unique<BusService>(std::move(conn), name, config, status);
    service->start();
    log::info(fmt::format("D-Bus: {} on {}", name, address));
    return std::unique_ptr<Bus>(new Bus(std::move(service)));
}

Bus::Bus(std::unique_ptr<BusService> service) : service_(std::move(service)) {}

void Bus::state_ready() { service_->fill_last_backup(); }
Bus::~Bus() = default;

const std::string& Bus::name() const noexcept { return service_->name(); }

}  // namespace bartl
