// The state marker and the intent record (bartl(7) invariants 1-3, "State identity") as
// data with JSON (de)serialisation. Pure: reading and writing the files is done by src/ops
// with util/fs atomic writes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bartl {

/// One transition in the marker's history.
struct HistoryEntry {
    std::string time;    ///< RFC 3339 UTC, e.g. "2026-11-30T03:09:04Z"
    std::string event;   ///< "init", "restore", "migrate", "adopt", "backup", "add", "forget", "upgrade", ...
    std::string from;    ///< state version before ("" when none)
    std::string to;      ///< state version after
    std::string detail;  ///< free text: backup id, script name, component, ...
};

/// How a component proves it belongs to the state (bartl(7) "What bartl observes").
struct ComponentRecord {
    std::string kind;         ///< "path" (databases: "postgresql", "mariadb", "sqlite")
    std::string name;         ///< within its kind: "/var/lib/notes/data"
    /// How the state ID is carried: "xattr" (the directory's user.bartl.state_id), "inode"
    /// (no user xattrs on that filesystem: the directory's device and inode are the proof),
    /// "" (not bound yet: a marker of format 1 before its first start with this bartl);
    /// databases: "setting" (postgresql), "comment" (mariadb), "file" (sqlite side record).
    std::string binding;
    std::string mount_point;  ///< mount point of the filesystem that held it at commit ("/var/lib")
    std::string device;       ///< "MAJOR:MINOR" of that filesystem at commit
    std::uint64_t inode = 0;  ///< the directory's inode at commit (binding "inode")
    /// Where that filesystem itself was mounted, when `mount_point` is a bind mount of a
    /// directory of it (under the unit: "/mnt/disk" for "/mnt/disk/mt"); "" = `mount_point`
    /// or unknown (older markers). Only named in messages, never judged.
    std::string filesystem_mount_point;
    /// When the mount that held it was a bind mount of another directory (fstab "bind":
    /// "/srv/appdata" at "/var/lib/app"), that directory and where it was bound; "" otherwise
    /// (a filesystem's root, a unit's ReadWritePaths= binding a directory onto itself, older
    /// markers). Once recorded, the bind must be there again before a restore: without it the
    /// state path is a bare directory of the filesystem underneath.
    std::string bind_source{};
    std::string bind_mount_point{};
    /// Where the filesystem of `bind_source` was mounted (util/mounts.hpp
    /// BindMount::filesystem: "/mnt/disk"); "" with no bind, or from a marker written before
    /// it was recorded. A device number would not do: btrfs gives files another st_dev than
    /// the mount table shows, and NVMe, device-mapper or NFS numbers change across reboots.
    std::string bind_filesystem{};
};

/// The extended attribute that carries the state ID on a state directory. bartl's own
/// bookkeeping: it is never archived into a backup.
inline constexpr const char* kStateIdXattr = "user.bartl.state_id";

/// "KIND:NAME", the component's stable name in messages and in `bartlctl forget`:
/// "path:/var/lib/notes/data", "postgresql:notes".
std::string component_id(const std::string& kind, const std::string& name);

/// One applied migration script (Flyway-style schema history).
struct AppliedMigration {
    std::string name;    ///< file name in [hooks] migrations, e.g. "2.0.0_add-tags"
    std::string sha256;  ///< of the script file when it ran (64 lower-case hex)
    std::string time;    ///< RFC 3339 UTC, when it finished
    std::string engine;  ///< engine version that ran it
};

/// The store writer claim this state holds (invariant 9): recorded once the state has taken
/// the store over. Empty store_id = not claimed yet.
struct WriterClaim {
    std::string store_id;         ///< the store identity's store_id
    std::uint64_t generation = 0; ///< the writer generation this state got
    /// The claim waits for the first backup instead of being made before serving:
    /// "claim" for a state upgraded from a marker of format 1 (its store may predate store
    /// identities, and a reboot must not wait for the store): it claims only an unclaimed
    /// store; "takeover" for a restore whose store refused writes (a read-only medium): it
    /// takes the store over. "" = no deferral.
    std::string deferred;
};

/// The state marker: its presence (parsing) is the commit point of a state.
struct Marker {
    int format = 2;
    std::string app;
    std::string version;   ///< state version (SemVer text)
    std::string state_id;  ///< 32 lower-case hex; "" only in a marker of format 1 (not upgraded yet)
    std::string origin;    ///< "init", "restore:ID" or "adopt"
    std::vector<ComponentRecord> components;
    std::vector<AppliedMigration> migrations;  ///< oldest first
    WriterClaim writer;
    std::vector<HistoryEntry> history;         ///< oldest first

    /// The component with this kind and name, or nullptr.
    const ComponentRecord* find(const std::string& kind, const std::string& name) const;
    /// Serialises to pretty JSON text (ends with a newline): format 2, or format 1 while the
    /// state has no state ID yet (a marker of an older bartl, not upgraded: it stays readable).
    std::string to_json() const;
    /// Parses marker JSON of format 1 (state_paths, no state ID: components come back with an
    /// empty binding) or 2. Every key bartl writes is required (unknown extra keys are
    /// ignored). Throws std::invalid_argument naming the missing/bad key; other formats are
    /// rejected.
    static Marker from_json(const std::string& text);
};

/// A pre-migration backup the marker's history records (a "backup" entry whose detail is
/// "before migration: ID"): the way back to the engine before that migration (bartl(7)
/// "Pre-upgrade backup and the way back").
struct WayBack {
    std::string backup_id;      ///< the backup's ID
    std::string state_version;  ///< the state version it holds
};

/// The pre-migration backups in `history`, newest first, that hold a state an engine of
/// `engine` (a SemVer string) can run: state version <= engine. A version that does not parse
/// is kept (the operator judges it). Pure.
std::vector<WayBack> way_back_backups(const std::vector<HistoryEntry>& history, const std::string& engine);

/// An operation in progress, written before init/restore/migrate starts and removed when it
/// commits. Its presence without a marker proves half-done data is bartl's (invariant 2).
struct Intent {
    int format = 2;
    std::string op;                        ///< "init", "restore" or "migrate"
    std::string started;                   ///< RFC 3339 UTC
    int pid = 0;                           ///< process that wrote it
    std::vector<std::string> staging;      ///< staging directories it may have created
    std::vector<std::string> targets;      ///< declared paths it may have renamed into place
    std::string backup_id;                 ///< restore: the backup being restored
    std::string from;                      ///< migrate: version before
    std::string to;                        ///< migrate/init: version after
    std::string state_id;                  ///< init/restore: the ID the new state gets
    /// migrate: the backup taken before the first step ("" when none was configured). Its
    /// presence means no second pre-migration backup is taken when the migration resumes.
    std::string pre_migration_backup;

    /// Serialises to pretty JSON text (ends with a newline), always format 2.
    std::string to_json() const;
    /// Parses intent JSON of format 1 or 2. Every key is required (format 2 adds state_id and
    /// pre_migration_backup); `op` must be init, restore or migrate. Throws
    /// std::invalid_argument naming the missing/bad key; other formats are rejected.
    static Intent from_json(const std::string& text);
};

/// True for a state ID as bartl draws them: 32 lower-case hex digits.
bool is_state_id(const std::string& s) noexcept;

}  // namespace bartl
