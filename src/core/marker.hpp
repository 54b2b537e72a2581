// The state marker and the intent record (bartl(7) invariants 1-3) as data
// with JSON (de)serialisation. Pure: reading and writing the files is done by
// src/ops with util/fs atomic writes.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace bartl {

/// One transition in the marker's history.
struct HistoryEntry {
    std::string time;    ///< RFC 3339 UTC, e.g. "2026-11-30T03:09:04Z"
    std::string event;   ///< "init", "restore", "migrate", "adopt", "downgrade-refused", ...
    std::string from;    ///< state version before ("" when none)
    std::string to;      ///< state version after
    std::string detail;  ///< free text: backup id, script name, ...
};

/// The state marker: its presence (parsing) is the commit point of a state.
struct Marker {
    int format = 1;
    std::string app;
    std::string version;                  ///< state version (SemVer text)
    std::string origin;                   ///< "init", "restore:ID" or "adopt"
    std::vector<std::string> state_paths; ///< declared paths at commit time
    std::vector<HistoryEntry> history;    ///< oldest first

    /// Serialises to pretty JSON text (ends with a newline).
    std::string to_json() const;
    /// Parses marker JSON. Every key is required (unknown extra keys are ignored). Throws
    /// std::invalid_argument naming the missing/bad key; unknown format versions are rejected.
    static Marker from_json(const std::string& text);
};

/// An operation in progress, written before init/restore/migrate starts and removed when it
/// commits. Its presence without a marker proves half-done data is bartl's (invariant 2).
struct Intent {
    int format = 1;
    std::string op;                        ///< "init", "restore" or "migrate"
    std::string started;                   ///< RFC 3339 UTC
    int pid = 0;                           ///< process that wrote it
    std::vector<std::string> staging;      ///< staging directories it may have created
    std::vector<std::string> targets;      ///< declared paths it may have renamed into place
    std::string backup_id;                 ///< restore: the backup being restored
    std::string from;                      ///< migrate: version before
    std::string to;                        ///< migrate/init: version after

    /// Serialises to pretty JSON text (ends with a newline).
    std::string to_json() const;
    /// Parses intent JSON. Every key is required; `op` must be init, restore or migrate.
    /// Throws std::invalid_argument naming the missing/bad key; unknown format versions
    /// are rejected.
    static Intent from_json(const std::string& text);
};

}  // namespace bartl
