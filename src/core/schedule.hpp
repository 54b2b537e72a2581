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
