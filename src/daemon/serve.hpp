// Serving: run the app, schedule backups, answer signals (DESIGN.md serving()).
#pragma once

#include <atomic>
#include <chrono>
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
#include "ops/report.hpp"
#include "store/store.hpp"

namespace bartl {

/// The serving phase of one bartld process.
class Server {
public:
    /// `store` may be null (no backups). `path` is the decision path of this start.
    Server(const Config& config, const Version& engine, Store* store, Marker marker, std::vector<Action> path);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// Starts the app, waits for readiness, sends READY=1, then runs until SIGTERM/SIGINT
    /// (returns 0 after stopping the app) or the app dies (throws RuntimeError naming how).
    /// Signals SIGTERM, SIGINT and SIGCHLD must be blocked in every thread before the call.
    int run();

private:
    void start_app();
    void start_backup();
    void finish_backup();
    std::string serving_status() const;

    const Config& config_;
    Version engine_;
    Store* store_;
    Marker marker_;
    std::vector<Action> path_;
    std::unique_ptr<AppProcess> app_;
    Reporter reporter_;

    // Backup job (one at a time) on its own thread so signals, the watchdog and the app are
    // never blocked by it.
    std::thread backup_thread_;
    std::atomic<bool> backup_running_{false};
    std::atomic<bool> backup_cancel_{false};
    int backup_event_fd_ = -1;
    std::mutex backup_mutex_;
    std::optional<BackupManifest> backup_result_;
    std::string backup_error_;
    std::chrono::steady_clock::time_point next_backup_;
};

}  // namespace bartl
