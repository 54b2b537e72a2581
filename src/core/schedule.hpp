// When a serving bartld takes its first scheduled backup: the schedule survives restarts.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace bartl {

/// The newest successful backup of a state, as bartld records it locally
/// (bartl_dir/last-backup: one line "STATE_ID BACKUP_ID CREATED", CREATED RFC 3339 UTC).
struct LastBackupRecord {
    std::string state_id;
    std::string backup_id;
    std::chrono::sys_time<std::chrono::milliseconds> created{};
};

/// The record's file content (with a trailing newline).
std::string format_last_backup(const LastBackupRecord& r);

/// Parses format_last_backup()'s text; std::nullopt for anything else (an old or damaged
/// record only costs the schedule its memory, never a backup).
std::optional<LastBackupRecord> parse_last_backup(std::string_view text);

/// bartl_dir/backup-running: the backup under way, written when it starts and removed when
/// it ends, so that the next start can say one was killed (bartl(7) STORES).
struct RunningBackupRecord {
    /// Where the backup was: in its pre_backup hook (nothing uploaded yet, and post_backup
    /// never ran), capturing and uploading, or in its post_backup hook (the backup is stored).
    enum class Phase { pre_backup, upload, post_backup };
    std::string backup_id;
    std::string reason;   ///< "scheduled", "manual", "pre-migration"
    std::chrono::sys_time<std::chrono::milliseconds> started{};
    Phase phase = Phase::upload;
};

/// The record's file content: "ID REASON STARTED PHASE\n" (STARTED RFC 3339 UTC, PHASE
/// "pre_backup", "upload" or "post_backup").
std::string format_running_backup(const RunningBackupRecord& r);

/// Parses format_running_backup()'s text, and a record of three fields, written before the
/// phase was (phase upload); std::nullopt for anything else.
std::optional<RunningBackupRecord> parse_running_backup(std::string_view text);

/// The journal line for a record found at the start (its backup never ended): which backup,
/// when and why it started, and, killed in its pre_backup hook, that post_backup never ran
/// and nothing was uploaded; killed uploading, what becomes of its partial upload in the
/// store at `store_url` (file:// and sftp:// temporaries of a dead writer go at the next
/// backup; an S3 multipart upload is aborted by the first backup a day after it began);
/// killed in its post_backup hook, that the backup itself is stored.
std::string interrupted_backup_message(const RunningBackupRecord& r, const std::string& store_url);

/// How long after serving starts the first scheduled backup is due: `interval` after the
/// last successful backup of `state_id` (so a restart does not push it back by a whole
/// interval: a daily backup of an instance restarted more often than daily would never run),
/// at once when that moment has passed, and `interval` from now when there is no record of
/// this state (a fresh init or restore) or the record is dated in the future (the clock
/// went back). Pure: `now` is the wall clock at the start of serving.
std::chrono::milliseconds first_backup_delay(const std::optional<LastBackupRecord>& last, const std::string& state_id,
                                             std::chrono::sys_time<std::chrono::milliseconds> now,
                                             std::chrono::milliseconds interval);

}  // namespace bartl
