// Serving: run the app, schedule backups, answer signals (bartl(7) serving()).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "app/child.hpp"
#include "blob/manifest.hpp"
#include "config/config.hpp"
#include "core/decision.hpp"
#include "core/marker.hpp"
#include "core/semver.hpp"
#include "daemon/status.hpp"
#include "ops/report.hpp"
#include "store/store.hpp"
#include "util/cancel.hpp"

namespace bartl {

/// The serving phase of one bartld process.
class Server {
public:
    /// `store` may be null (no backups). `path` is the decision path of this start. `status`
    /// (shown on D-Bus) is kept up to date, and its trigger_fd() starts requested backups.
    Server(const Config& config, const Version& engine, Store* store, Marker marker, std::vector<Action> path,
           Status& status);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// Starts the app, waits for readiness, sends READY=1, then runs until SIGTERM/SIGINT
    /// (returns 0 after stopping the app) or the app dies (throws RuntimeError naming how).
    /// Signals SIGTERM, SIGINT and SIGCHLD must be blocked in every thread before the call.
    int run();

private:
    void start_app();
    /// Throws RuntimeError ("app X (PID N) exited with status 3 while serving") if the app
    /// has exited; reaps it.
    void check_app_alive();
    void start_backup();  // a requested job's id if one waits, else a new one
    void finish_backup();
    std::string serving_status() const;
    /// Starts the thread that reads the store's writer record now and every [backup]
    /// fence_check (one small GET; it may wait for [store] retry_for, so never on the serving
    /// loop), so a takeover elsewhere shows as Fenced before the next backup would find it.
    void start_fence_watch();
    /// Asks the watch to stop (cancelling its store call); `join` also waits for it.
    void stop_fence_watch(bool join = true);

    const Config& config_;
    Version engine_;
    Store* store_;
    Marker marker_;
    std::vector<Action> path_;
    std::unique_ptr<AppProcess> app_;
    Reporter reporter_;
    Status& status_;

    // Backup job (one at a time) on its own thread so signals, the watchdog and the app are
    // never blocked by it.
    std::thread backup_thread_;
    std::atomic<bool> backup_running_{false};
    /// Cancels the running backup job (a child of the process token: SIGTERM cancels it too).
    CancelToken backup_cancel_ = CancelToken::process().child();
    int backup_event_fd_ = -1;
    std::mutex backup_mutex_;
    std::optional<BackupManifest> backup_result_;
    std::string backup_error_;
    BackupOutcome backup_outcome_;
    std::chrono::steady_clock::time_point next_backup_;

    std::thread fence_thread_;
    std::mutex fence_mutex_;
    std::condition_variable fence_wake_;
    bool fence_stop_ = false;
    CancelToken fence_cancel_ = CancelToken::process().child();
};

}  // namespace bartl
