// One instance's bookkeeping files in [state] bartl_dir: the state marker (commit point),
// the intent record, the pinned restore, and the declared paths' facts. Thin I/O around
// core/marker.hpp.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/schedule.hpp"
#include "core/marker.hpp"
#include "util/cancel.hpp"

namespace bartl {

/// What the marker file holds.
struct MarkerRead {
    bool exists = false;
    std::optional<Marker> marker;  ///< set when it exists and parses
    std::string error;             ///< why it does not parse
};

/// Files of one instance. All writes are atomic and durable (util/fs).
class Instance {
public:
    explicit Instance(const Config& config);

    const Config& config() const noexcept { return config_; }
    std::filesystem::path marker_path() const { return config_.bartl_dir / "marker.json"; }
    std::filesystem::path intent_path() const { return config_.bartl_dir / "intent.json"; }
    /// Backup id pinned for the next restore (bartld --restore-from / bartlctl restore-from).
    std::filesystem::path pin_path() const { return config_.bartl_dir / "restore-from"; }

    /// Reads the marker. Throws RuntimeError on I/O errors other than "missing".
    MarkerRead read_marker() const;
    /// The other instance on this host whose state carries `state_id`: "instance NAME (marker
    /// PATH)" for the first marker.json in a sibling of bartl_dir (the default
    /// /var/lib/bartl/NAME of each instance) that records it; std::nullopt when none does.
    /// Two instances declaring the same state path see each other's state this way.
    std::optional<std::string> other_owner(const std::string& state_id) const;
    /// Writes the marker atomically (creates bartl_dir). This is the commit point.
    void write_marker(const Marker& m) const;
    /// Moves a marker aside to marker.json.stale-<time> (state lost); returns the new path.
    std::filesystem::path retire_marker(const std::string& reason) const;

    /// Reads the intent record; std::nullopt when none. A record that does not parse throws
    /// RuntimeError naming the file (it is never guessed away).
    std::optional<Intent> read_intent() const;
    void write_intent(const Intent& i) const;
    void clear_intent() const;

    std::optional<std::string> read_pin() const;
    void write_pin(const std::string& backup_id) const;
    void clear_pin() const;

    /// bartl_dir/last-backup: the newest successful backup this installation took
    /// (core/schedule.hpp), so a restart keeps the backup schedule. read: std::nullopt when
    /// missing or unreadable (logged at debug level: it only shapes the schedule).
    std::filesystem::path last_backup_path() const { return config_.bartl_dir / "last-backup"; }
    std::optional<LastBackupRecord> read_last_backup() const;
    /// Throws RuntimeError.
    void write_last_backup(const LastBackupRecord& r) const;

    /// bartl_dir/backup-running (core/schedule.hpp RunningBackupRecord): written when a
    /// backup starts (one atomic write), removed when it ends, whatever its result. Throws
    /// RuntimeError when it cannot be written.
    std::filesystem::path running_backup_path() const { return config_.bartl_dir / "backup-running"; }
    void write_running_backup(const RunningBackupRecord& r) const;
    /// Removes the record; never throws (a leftover only costs a wrong "interrupted" line).
    void clear_running_backup() const noexcept;
    /// At the start, under the instance lock: the record of a backup that never ended, and
    /// removes it; std::nullopt when there is none (a record that does not parse is removed
    /// and logged at debug level).
    std::optional<RunningBackupRecord> take_interrupted_backup() const;

private:
    const Config& config_;
};

/// An intent record for `op` ("init", "restore", "migrate") stamped now with our PID.
Intent new_intent(const std::string& op);

/// Appends a history entry stamped now.
void add_history(Marker& m, const std::string& event, const std::string& from, const std::string& to,
                 const std::string& detail);

/// Environment for hooks: BARTL_INSTANCE, BARTL_APP, BARTL_ENGINE_VERSION, BARTL_STATE_VERSION
/// (when known), BARTL_STATE_PATHS (colon-separated).
std::map<std::string, std::string> hook_env(const Config& config, const std::string& engine_version,
                                            const std::string& state_version);

/// Runs a hook argv with env (on top of HOME/USER/LOGNAME of [app] user) as [app] user and
/// group when set, its output forwarded with BARTL_HOOK=NAME; throws RuntimeError "hook NAME
/// failed: exited with status 3: <stderr tail>", or StopRequested when `cancel` was cancelled
/// while it ran (it then gets SIGTERM, SIGKILL 5 s later). Only when `stoppable`: a hook that
/// runs after its step is committed, like post_backup, always runs to its end.
void run_hook(const Config& config, const std::string& name, const std::vector<std::string>& argv,
              const std::map<std::string, std::string>& env, const CancelToken& cancel = CancelToken::process(),
              bool stoppable = true);

}  // namespace bartl
