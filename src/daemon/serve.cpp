#include "daemon/serve.hpp"

#include <csignal>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <fmt/format.h>

#include "app/user.hpp"
#include "core/command_name.hpp"
#include "core/error.hpp"
#include "core/duration.hpp"
#include "core/schedule.hpp"
#include "core/time.hpp"
#include "ops/backup.hpp"
#include "ops/commands.hpp"
#include "ops/events.hpp"
#include "ops/instance.hpp"
#include "store/identity.hpp"
#include "util/host.hpp"
#include "util/log.hpp"
#include "util/notify.hpp"

namespace bartl {

namespace {

std::filesystem::path runtime_dir() {
    if (const char* d = std::getenv("RUNTIME_DIRECTORY")) return std::string(d).substr(0, std::string(d).find(':'));
    if (const char* d = std::getenv("XDG_RUNTIME_DIR")) return d;
    return "/tmp";
}

/// A failed backup is retried sooner than a full interval, so one bad night does not widen the RPO to two days.
constexpr auto kBackupRetry = std::chrono::minutes(15);

}  // namespace

/// `t` on the steady clock as microseconds since the epoch (D-Bus NextBackup).
static std::uint64_t to_realtime_usec(std::chrono::steady_clock::time_point t) {
    const auto in = std::chrono::duration_cast<std::chrono::microseconds>(t - std::chrono::steady_clock::now());
    return static_cast<std::uint64_t>(std::max<std::int64_t>(0, static_cast<std::int64_t>(realtime_usec()) + in.count()));
}

Server::Server(const Config& config, const Version& engine, Store* store, Marker marker, std::vector<Action> path,
               Status& status)
    : config_(config), engine_(engine), store_(store), marker_(std::move(marker)), path_(std::move(path)),
      status_(status) {
    reporter_.status = [this](const std::string& s) {
        notify::status(s);
        status_.update([&](StatusSnapshot& st) { st.status_text = s; });
    };
    reporter_.progress = [this](std::uint64_t done, std::uint64_t) { status_.backup_progress(done); };
    reporter_.phase = [](Phase p) { log::set_context("BARTL_PHASE", phase_name(p)); };
    backup_event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (backup_event_fd_ < 0) throw RuntimeError(fmt::format("eventfd: {}", std::strerror(errno)));
}

Server::~Server() {
    stop_fence_watch();
    backup_cancel_.cancel("bartld is stopping");
    if (backup_thread_.joinable()) backup_thread_.join();
    if (backup_event_fd_ >= 0) ::close(backup_event_fd_);
}

std::string Server::serving_status() const {
    return fmt::format("Serving {} {} (state {})", config_.instance, engine_.str(), marker_.version);
}

void Server::start_app() {
    if (config_.exec.empty()) return;
    const std::string name = command_name(config_.exec, config_.app_name);
    notify::status(fmt::format("Starting {}: {}", config_.instance, name));
    status_.update([&](StatusSnapshot& s) { s.status_text = fmt::format("Starting {}", name); });
    // HOME, USER and LOGNAME of the app's user, unless [app] environment says otherwise.
    auto env = app_user_env(config_);
    for (const auto& [k, v] : config_.environment) env[k] = v;
    app_ = std::make_unique<AppProcess>(config_.exec, env, config_.working_directory, config_.ready, runtime_dir(),
                                        app_credentials(config_), config_.app_name);
    app_->set_stop_timeout(config_.stop_timeout);
    const auto watchdog = notify::watchdog_interval();
    auto last_extend = std::chrono::steady_clock::now() - std::chrono::hours(1);
    app_->wait_ready(config_.ready_timeout, [&] {
        auto now = std::chrono::steady_clock::now();
        if (now - last_extend >= std::chrono::seconds(10)) {
            notify::send("EXTEND_TIMEOUT_USEC=30000000");
            last_extend = now;
        }
        if (watchdog) notify::send("WATCHDOG=1");
    });
    log::info(fmt::format("app {} ready (PID {})", app_->name(), app_->pid()));
    status_.update([&](StatusSnapshot& s) { s.app_pid = static_cast<std::uint32_t>(app_->pid()); });
}

void Server::start_fence_watch() {
    if (!store_ || config_.fence_check.count() == 0 || marker_.state_id.empty()) return;
    // A takeover (or first claim) the store refused at the start is still to be done: the
    // writer record names the previous state, which is no sign that this one was fenced.
    // The next backup completes it, and is refused there if another state took over since.
    if (!marker_.writer.deferred.empty()) {
        log::debug(fmt::format("store writer record not watched: the {} is deferred to the next backup",
                               marker_.writer.deferred));
        return;
    }
    fence_thread_ = std::thread([this] {
        // A store of its own: the backup thread may be using the serving one.
        std::unique_ptr<Store> store;
        std::string reported;
        bool unreachable = false;  // warned about since the store last answered
        std::unique_lock lock(fence_mutex_);
        while (!fence_stop_) {
            lock.unlock();
            try {
                if (!store) store = open_configured_store(config_);
                Context ctx;
                ctx.cancel = fence_cancel_;
                if (auto why = fenced_by(*store, ctx, config_.app_name, config_.instance, marker_.state_id)) {
                    status_.update([&](StatusSnapshot& s) { s.fenced = *why; });
                    // Once, not at every look: the status and the D-Bus property stay.
                    if (*why != reported) log::error(*why);
                    reported = *why;
                }
            } catch (const StopRequested&) {
                return;
            } catch (const std::exception& e) {
                // A mistyped store URL, an unmounted backup disk or a wrong secret would
                // otherwise stay silent until the first backup, up to an interval later: a
                // warning once per distinct problem (the next backup still fails loudly).
                // Once per outage: the message of a retried call changes at every look.
                if (!unreachable)
                    log::warn(fmt::format("serving, but the store cannot be read: {}; backups will fail until this "
                                          "is fixed",
                                          e.what()));
                unreachable = true;
                status_.set_store_problem(e.what());
                lock.lock();
                fence_wake_.wait_for(lock, config_.fence_check, [this] { return fence_stop_; });
                continue;
            }
            if (unreachable) log::notice(fmt::format("store {} can be read again", config_.store));
            unreachable = false;
            status_.clear_store_problem(/*wrote=*/false);
            lock.lock();
            fence_wake_.wait_for(lock, config_.fence_check, [this] { return fence_stop_; });
        }
    });
}

void Server::stop_fence_watch(bool join) {
    {
        std::lock_guard lock(fence_mutex_);
        fence_stop_ = true;
    }
    fence_cancel_.cancel("bartld is stopping");
    fence_wake_.notify_all();
    if (join && fence_thread_.joinable()) fence_thread_.join();
}

void Server::check_app_alive() {
    if (!app_) return;
    if (auto ex = app_->poll_exit()) {
        backup_cancel_.cancel("the app died");
        throw RuntimeError(fmt::format("app {} (PID {}) {} while serving", app_->name(), app_->pid(),
                                       ex->describe()));
    }
}

void Server::start_backup() {
    if (backup_running_ || !store_) return;
    // An app that died since the last look is a failure of the service, not a stop for the
    // backup (consistency = "stop" would otherwise take its exit for our SIGTERM's).
    check_app_alive();
    if (backup_thread_.joinable()) backup_thread_.join();
    backup_running_ = true;
    backup_cancel_ = CancelToken::process().child();
    bool requested = false;
    const std::string id = status_.begin_backup(new_backup_id(), &requested);
    log::set_context("BARTL_PHASE", phase_name(Phase::backing_up));
    const bool stop_app = config_.consistency == Config::Consistency::stop && app_;
    if (stop_app) {
        // consistency = "stop": the copy is taken with the app down; READY stays (systemd
        // sees a reload-free pause, the app comes back before the next status).
        notify::status(fmt::format("Stopping {} for a consistent backup", config_.instance));
        auto how = app_->stop(config_.stop_timeout);
        log::info(fmt::format("app stopped for backup: {}", how.describe()));
        app_.reset();
        status_.update([](StatusSnapshot& s) { s.app_pid = 0; });
    }
    BackupRequest req;
    req.id = id;
    req.reason = requested ? "manual" : "scheduled";
    req.app_running = !stop_app && app_ != nullptr;
    backup_thread_ = std::thread([this, req] {
        const std::string& id = req.id;
        const auto started = std::chrono::steady_clock::now();
        const auto created = format_rfc3339_ms(
            std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now()));
        auto ms = [&] {
            return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  std::chrono::steady_clock::now() - started).count());
        };
        try {
            Context ctx;
            ctx.cancel = backup_cancel_;
            auto m = take_backup(config_, *store_, ctx, marker_, engine_.str(), req, reporter_);
            status_.backup_progress(m.bytes);
            std::lock_guard<std::mutex> lock(backup_mutex_);
            backup_result_ = m;
            backup_error_.clear();
            backup_outcome_ = BackupOutcome{m.id, m.created, m.blob_size, m.bytes, ms(), "success", "", m.host};
            status_.update([](StatusSnapshot& s) { s.fenced.clear(); });
            status_.clear_store_problem(/*wrote=*/true);
        } catch (const FencedError& e) {
            // Loud, and it stays loud: every scheduled backup says it again.
            status_.update([&](StatusSnapshot& s) { s.fenced = e.what(); });
            std::lock_guard<std::mutex> lock(backup_mutex_);
            backup_result_.reset();
            backup_error_ = e.what();
            backup_outcome_ = BackupOutcome{id, created, 0, 0, ms(), "failed", e.what(), host_name()};
        } catch (const std::exception& e) {
            // The store's own failures (unreachable, not initialized, read-only) are shown as
            // StoreProblem until a look or a backup succeeds; a failing hook or dump is not.
            if (dynamic_cast<const StoreUnavailable*>(&e))
                status_.set_store_problem(e.what(), dynamic_cast<const StoreReadOnly*>(&e) != nullptr ||
                                                         dynamic_cast<const StoreFull*>(&e) != nullptr);
            std::lock_guard<std::mutex> lock(backup_mutex_);
            backup_result_.reset();
            backup_error_ = e.what();
            backup_outcome_ = BackupOutcome{id, created, 0, 0, ms(), "failed", e.what(), host_name()};
        }
        std::uint64_t one = 1;
        (void)!::write(backup_event_fd_, &one, sizeof one);
    });
}

void Server::finish_backup() {
    std::uint64_t v;
    (void)!::read(backup_event_fd_, &v, sizeof v);
    if (backup_thread_.joinable()) backup_thread_.join();
    backup_running_ = false;
    log::set_context("BARTL_PHASE", phase_name(Phase::serving));
    std::lock_guard<std::mutex> lock(backup_mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (backup_result_) {
        next_backup_ = now + config_.interval;
    } else {
        log::write(log::Level::err, fmt::format("backup of {} failed: {}", config_.instance, backup_error_), {},
                   event::backup_failed);
        next_backup_ = now + std::min<std::chrono::steady_clock::duration>(config_.interval, kBackupRetry);
    }
    auto outcome = backup_outcome_;
    if (!backup_result_) outcome.bytes = status_.snapshot().last_backup.bytes;  // keep the estimate
    status_.end_backup(outcome, to_realtime_usec(next_backup_));
    // A takeover or first claim deferred at the start (the store refused writes) is done by
    // the first backup that succeeds: watch the writer record from then on, not only from the
    // next start.
    if (backup_result_ && !fence_thread_.joinable()) start_fence_watch();
    if (config_.consistency == Config::Consistency::stop && !config_.exec.empty() && !app_) start_app();
    notify::status(serving_status());
    status_.update([&](StatusSnapshot& s) { s.status_text = serving_status(); });
}

int Server::run() {
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGCHLD);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) throw RuntimeError(fmt::format("signalfd: {}", std::strerror(errno)));
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{sfd};

    log::set_context("BARTL_PHASE", phase_name(Phase::serving));
    start_app();
    // Due an interval after this state's last backup, not after this start (core/schedule.hpp).
    const auto first_in =
        first_backup_delay(Instance(config_).read_last_backup(), marker_.state_id,
                           std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now()),
                           config_.interval);
    next_backup_ = std::chrono::steady_clock::now() + first_in;
    notify::send("READY=1\nSTATUS=" + serving_status());
    status_.update([&](StatusSnapshot& s) {
        s.status_text = serving_status();
        if (store_) s.next_backup = to_realtime_usec(next_backup_);
    });
    status_.set_phase(Phase::serving);
    start_fence_watch();
    log::write(log::Level::notice,
               fmt::format("{} serving (decision: {}; engine {}, state {}{})", config_.instance, format_path(path_),
                           engine_.str(), marker_.version,
                           !store_ ? ""
                           : first_in.count() == 0
                               ? fmt::format(", next backup now: the last one is older than {}",
                                             format_duration(config_.interval))
                               : fmt::format(", next backup in {}",
                                             format_duration(std::chrono::ceil<std::chrono::seconds>(first_in)))),
               {}, event::serving);
    const auto watchdog = notify::watchdog_interval();

    for (;;) {
        check_app_alive();
        auto now = std::chrono::steady_clock::now();
        if (store_ && !backup_running_ && now >= next_backup_) start_backup();

        std::chrono::milliseconds wait{1000};
        if (store_ && !backup_running_)
            wait = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(next_backup_ - now),
                              std::chrono::milliseconds(0), wait);
        if (watchdog) wait = std::min(wait, std::chrono::duration_cast<std::chrono::milliseconds>(*watchdog / 2));

        const auto output = app_ ? app_->output_fds() : std::array<int, 2>{-1, -1};
        pollfd fds[6] = {{sfd, POLLIN, 0},
                         {backup_event_fd_, POLLIN, 0},
                         {app_ ? app_->notify_fd() : -1, POLLIN, 0},
                         {status_.trigger_fd(), POLLIN, 0},
                         {output[0], POLLIN, 0},
                         {output[1], POLLIN, 0}};
        int n = ::poll(fds, 6, static_cast<int>(wait.count()));
        if (n < 0 && errno != EINTR) throw RuntimeError(fmt::format("poll: {}", std::strerror(errno)));
        if (watchdog) notify::send("WATCHDOG=1");
        if (n <= 0) continue;
        if (app_ && (fds[4].revents || fds[5].revents)) app_->forward_output();
        if (fds[2].revents & POLLIN) {
            if (auto s = app_->drain_notify()) log::debug(fmt::format("app status: {}", *s));
        }
        if (fds[1].revents & POLLIN) finish_backup();
        // A request that arrives while a backup runs was answered with the running id.
        if ((fds[3].revents & POLLIN) && status_.take_request() && store_ && !backup_running_) start_backup();
        if (fds[0].revents & POLLIN) {
            signalfd_siginfo si;
            while (::read(sfd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
                    log::set_context("BARTL_PHASE", phase_name(Phase::stopping));
                    status_.set_phase(Phase::stopping);
                    notify::send(fmt::format("STOPPING=1\nSTATUS=Stopping {}", config_.instance));
                    log::notice(fmt::format("{} received: stopping {}", strsignal(static_cast<int>(si.ssi_signo)),
                                            config_.instance));
                    backup_cancel_.cancel("bartld is stopping");
                    // Joined in the destructor: a store call stuck in the kernel (a hung NFS
                    // mount under file://) must not hold the app's SIGTERM back.
                    stop_fence_watch(/*join=*/false);
                    // The app first: systemd (KillMode=mixed) signalled only us, and a backup's
                    // last steps (hooks, retention) cannot be cancelled mid-way; the app must
                    // get its clean SIGTERM before TimeoutStopSec runs out.
                    if (app_) {
                        auto how = app_->stop(config_.stop_timeout);
                        log::info(fmt::format("app stopped: {}", how.describe()));
                        status_.update([](StatusSnapshot& s) { s.app_pid = 0; });
                    }
                    if (backup_thread_.joinable()) backup_thread_.join();
                    return 0;
                }
            }
        }
    }
}

}  // namespace bartl
