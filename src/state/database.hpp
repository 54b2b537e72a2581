// Databases as state components ([[state.databases]], bartl.toml(5) "DATABASES"): one
// implementation per type (postgresql.cpp, mariadb.cpp, sqlite.cpp) behind one base that maps
// the Component interface onto five primitives. Each client library (libpq, libmariadb,
// libsqlite3) is loaded with dlopen(3) on first use, so bartld needs none of them until a
// database of that type is declared; a missing library is a RuntimeError naming the package.
//
// Where the state ID lives (bartl(7) "STATE IDENTITY"; never in the app's own tables):
//   postgresql  the database-level setting bartl.state_id (ALTER DATABASE ... SET), read
//               from pg_db_role_setting
//   mariadb     the database comment (ALTER DATABASE ... COMMENT 'bartl.state_id=ID'), read
//               from information_schema.SCHEMATA
//   sqlite      the side record FILE.bartl-state-id beside the database file
//
// An init builds a database in place: it creates it empty (or keeps an existing one without
// tables) and stamps it before the init hook runs; the intent record proves it is bartl's
// until the marker commits, and an interrupted init drops it (remove_target()).
//
// A backup streams each database's dump into the blob (open_dump(), archived as db/SECTION.*);
// a restore loads it into a staging database beside the live one (open_restore(): postgresql
// and mariadb NAME__bartl_restore, sqlite FILE.bartl-restore), stamps it (bind_restore()) once
// the whole blob verified, and swaps it into place (commit_restore()); discard_staging()
// drops a staging database left by an interrupted restore (bartl.toml(5) "DATABASES").
#pragma once

#include <map>
#include <memory>

#include "config/config.hpp"
#include "state/component.hpp"
#include "state/db_judge.hpp"
#include "util/byte_stream.hpp"

namespace bartl {

/// Where a restore writes one database's dump: the staging database's loader (pg_restore,
/// the mariadb client, a file). Bytes arrive in order through write(); finish() once after
/// the last one waits for the load to complete. Destroying it unfinished stops the load.
class DumpLoader : public ByteSink {
public:
    /// Ends the input and waits for the loader. Throws RuntimeError (ChildFailed with the
    /// tool's message).
    virtual void finish() = 0;
};

/// What every database component shares; the type-specific part is the five primitives.
class DatabaseComponent : public Component {
public:
    explicit DatabaseComponent(Database db) : db_(std::move(db)), kind_(db_.type_name()) {}

    std::string kind() const override { return kind_; }
    const std::string& name() const override { return db_.type == Database::Type::sqlite ? path_name_ : db_.name; }
    const Database& declaration() const noexcept { return db_; }

    ComponentObservation observe(const ComponentRecord* recorded, const std::string& state_id) const override;
    bool holds_data() const override;
    void check_target() const override {}
    /// Empty: a database is built in place (see the file comment).
    std::filesystem::path staging_path() const override { return {}; }
    /// Creates the database empty when it is missing (owned by the connection's role, or, for
    /// sqlite, by `owner`); throws RuntimeError when it holds tables.
    void prepare_staging(const Owner& owner) const override;
    void bind_staging(const std::string& state_id) const override { stamp(state_id); }
    void sync_staging() const override { sync(); }
    /// A no-op: an init builds in place; a restore commits with commit_restore().
    void commit_staging() const override {}
    /// Drops the staging database of a restore (restore_staging()), if any.
    void discard_staging() const override { discard_restore(); }
    /// Drops the database (sqlite: removes the file, its -wal, -shm, -journal and the side record).
    void remove_target() const override { drop(); }
    ComponentRecord bind_live(const std::string& state_id, const Owner& owner) const override;
    ComponentRecord record() const override;
    void sync_live() const override { sync(); }
    std::optional<std::filesystem::path> tree() const override { return std::nullopt; }

    /// Asks the server (or the file) what is there. Throws RuntimeError when it cannot be
    /// reached or read: never "absent" for a server that did not answer.
    virtual DatabaseFacts inspect() const = 0;

    /// The section its dump is archived as (db/SECTION.000000, ...): NAME.dump (postgresql,
    /// pg_dump's custom format), NAME.sql (mariadb, mariadb-dump's SQL), NAME.sqlite (sqlite,
    /// a database file), NAME being the declared name.
    virtual std::string section() const = 0;
    /// Starts a consistent dump of the live database and returns it as a stream (its read()
    /// throws RuntimeError naming the tool when the dump fails). Throws RuntimeError.
    virtual std::unique_ptr<ByteSource> open_dump() const = 0;
    /// What a restore loads into before the swap: the staging database's name (postgresql,
    /// mariadb) or file (sqlite), for messages.
    virtual std::string restore_staging() const = 0;
    /// Removes a leftover staging database, creates it empty (sqlite: owned by `owner`) and
    /// returns the loader that fills it from a dump of section(). Throws RuntimeError.
    virtual std::unique_ptr<DumpLoader> open_restore(const Owner& owner) const = 0;
    /// Binds the loaded staging database to `state_id` (before the swap, so the live one
    /// never appears without it). Throws RuntimeError.
    virtual void bind_restore(const std::string& state_id) const = 0;
    /// Swaps the staging database into place. The live one must be missing or hold no
    /// tables (it is dropped); else RuntimeError and nothing is replaced. Throws RuntimeError.
    virtual void commit_restore() const = 0;
    /// Drops the staging database of a restore; a no-op when there is none. Throws RuntimeError.
    virtual void discard_restore() const = 0;

protected:
    /// Creates the database empty; a no-op when it exists. Throws RuntimeError.
    virtual void create(const Owner& owner) const = 0;
    /// Records `state_id` in the database's bartl record. Throws RuntimeError.
    virtual void stamp(const std::string& state_id) const = 0;
    /// Removes the database; a no-op when it is missing. Throws RuntimeError.
    virtual void drop() const = 0;
    /// Makes its content durable (a server does that by itself). Throws RuntimeError.
    virtual void sync() const {}
    /// How the marker records the binding: "setting", "comment" or "file".
    virtual const char* binding() const = 0;

    Database db_;
    std::string kind_;
    std::string path_name_ = db_.path.string();
};

/// The component of one [[state.databases]] entry.
std::unique_ptr<DatabaseComponent> make_database_component(const Database& db);

/// Loads the client library of every database type `config` declares, so a missing one is
/// found before anything is observed. Throws ConfigError "FILE:LINE:COLUMN: [[state.databases]]
/// declares a TYPE database, which needs SONAME: ... (Debian: apt-get install PACKAGE)".
void load_database_clients(const Config& config);

/// The password of `db` from its systemd credential ($CREDENTIALS_DIRECTORY/NAME, trailing
/// newline removed); "" when it names none. Throws RuntimeError when the credential is missing.
std::string database_password(const Database& db);

/// The BARTL_DB_<NAME>_* variables of hooks and migrations for `dbs` (bartl.toml(5)
/// "DATABASES"): _TYPE, _NAME, and per type _CONNECTION (postgresql: the conninfo with
/// dbname), _SOCKET, _USER, _HOST, _PORT (mariadb, those set), _PATH (sqlite).
std::map<std::string, std::string> database_env(const std::vector<Database>& dbs);

}  // namespace bartl
