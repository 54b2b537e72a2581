// What a running bartld shows on D-Bus (dbus/app.bartl.Instance1.xml properties), as one
// mutex-protected snapshot written by the lifecycle Reporter and the Server and read by the
// D-Bus thread, plus the hand-off of backup requests from the D-Bus thread to the Server's
// main loop. Nothing here blocks on a backup, the app or the lifecycle: every call takes
// one short lock.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "core/error.hpp"
#include "ops/report.hpp"

namespace bartl {

/// The latest backup known to this bartld (LastBackup property).
struct BackupOutcome {
    std::string id;
    std::string created;            ///< RFC 3339 UTC
    std::uint64_t blob_size = 0;    ///< bytes
    std::uint64_t bytes = 0;        ///< file content bytes (the next backup's progress estimate)
    std::uint64_t duration_ms = 0;  ///< 0 = unknown (found in the store at start)
    std::string result;             ///< "success", "failed", "" = none known
    std::string error;              ///< failure message
    std::string host;               ///< where it was taken ("" = unknown)

    bool operator==(const BackupOutcome&) const = default;
};

/// One consistent view of the properties. Times are microseconds since the Unix epoch, 0 = none.
struct StatusSnapshot {
    std::string instance;
    std::string app;
    std::string phase = "deciding";
    std::uint64_t phase_since = 0;
    std::string status_text;
    std::string engine_version;
    std::string state_version;
    std::string state_origin;
    std::uint32_t app_pid = 0;
    std::string last_decision;
    std::uint64_t serving_since = 0;
    BackupOutcome last_backup;      ///< the latest attempt, whatever its result
    BackupOutcome last_success;     ///< the latest successful backup of this state (id "" = none yet)
    BackupOutcome last_failure;     ///< the latest failed attempt (id "" = none since this start)
    std::string state_id;           ///< the committed state's ID ("" until the state is ready)
    std::uint64_t next_backup = 0;
    std::string backup_job;
    std::string store;  ///< "" = no store configured
    /// "" while this state is the store's writer (or not known yet); else why it is fenced
    /// (another state took the store over: backups and retention stopped).
    std::string fenced;
    /// "" while the store answers (or was not asked yet); else why it cannot be read or
    /// written, as the fence watch or the last backup found it (StoreProblem property).
    std::string store_problem;
    std::uint64_t store_problem_since = 0;  ///< when the current store problem was first seen; 0 = none

    bool operator==(const StatusSnapshot&) const = default;
};

/// Receives changes (the D-Bus thread implements it). Called on the thread that made the
/// change, outside the status lock; implementations only queue and wake, never block.
class StatusListener {
public:
    virtual ~StatusListener() = default;
    /// Some property may have changed.
    virtual void status_changed() = 0;
    /// BackupProgress: file content bytes done and estimated (0 = unknown).
    virtual void backup_progress(const std::string& id, std::uint64_t done, std::uint64_t estimated) = 0;
    /// BackupFinished: result "success" or "failed", error "" on success.
    virtual void backup_finished(const std::string& id, const std::string& result, const std::string& error) = 0;
};

/// Microseconds since the Unix epoch now (CLOCK_REALTIME).
std::uint64_t realtime_usec();

/// The shared status of one bartld. Thread-safe.
class Status {
public:
    /// Creates the backup trigger eventfd. Throws RuntimeError when eventfd(2) fails.
    Status();
    ~Status();
    Status(const Status&) = delete;
    Status& operator=(const Status&) = delete;

    /// A copy of the current values.
    StatusSnapshot snapshot() const;
    /// Applies `change` under the lock, then tells the listener. `change` must not block.
    void update(const std::function<void(StatusSnapshot&)>& change);
    /// Sets Phase and PhaseSince (now), and ServingSince on the first entry into serving.
    void set_phase(Phase p);
    /// Attaches the listener (nullptr detaches; returns only when no call to the old one runs).
    void set_listener(StatusListener* listener);
    /// Records that the store cannot be used: `error` (the failure message) replaces the
    /// last one, while the time the outage began (StoreProblem's since) stays until cleared.
    /// `writes` = it refused a write (read-only): only a write that succeeds clears it.
    void set_store_problem(const std::string& error, bool writes = false);
    /// The store answered: `wrote` = a backup succeeded (clears any problem), else a read
    /// (a fence-watch look) succeeded, which clears all but a refused write.
    void clear_store_problem(bool wrote);

    /// D-Bus Backup(): the id of the running or already requested backup job, else a new id
    /// (ops new_backup_id()) handed to the Server through trigger_fd(). Throws
    /// NotServingError unless the phase is serving or backing-up, StoreUnavailable when no
    /// store is configured.
    std::string request_backup();
    /// Becomes readable when request_backup() queued a job; the Server polls it.
    int trigger_fd() const noexcept { return trigger_fd_; }
    /// Server: drains trigger_fd(); true when a requested job waits to be started.
    bool take_request();
    /// Server, starting a backup: claims the requested job's id if one waits, else uses
    /// `scheduled_id`; sets BackupJob, Phase backing-up, NextBackup 0. Returns the id;
    /// `requested` (when given) says whether it was a requested (manual) job.
    std::string begin_backup(const std::string& scheduled_id, bool* requested = nullptr);
    /// Backup worker thread: file content bytes done so far (emits BackupProgress).
    void backup_progress(std::uint64_t done);
    /// Server, after a backup ended: LastBackup, BackupJob "", Phase serving, NextBackup
    /// (usec since the epoch); emits BackupFinished.
    void end_backup(const BackupOutcome& outcome, std::uint64_t next_backup);

private:
    void notify();

    mutable std::mutex mutex_;
    StatusSnapshot s_;
    std::string requested_;       ///< id handed out by request_backup(), not yet started
    std::uint64_t estimate_ = 0;  ///< bytes estimate of the running job
    bool store_problem_writes_ = false;  ///< the store problem is a refused write
    int trigger_fd_ = -1;

    std::mutex listener_mutex_;  ///< held while calling the listener, so detaching is safe
    StatusListener* listener_ = nullptr;
};

}  // namespace bartl
