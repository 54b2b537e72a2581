// A PostgreSQL database as a state component, through libpq loaded with dlopen(3).
#include <libpq-fe.h>

#include <array>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "core/error.hpp"
#include "state/database.hpp"
#include "state/database_impl.hpp"
#include "util/log.hpp"
#include "util/dlopen.hpp"

namespace bartl {
namespace pq {

#define BARTL_PQ_FUNCTIONS(X)                                                                                 \
    X(PQconnectdbParams) X(PQstatus) X(PQerrorMessage) X(PQfinish) X(PQexec) X(PQexecParams) X(PQresultStatus) \
    X(PQresultErrorMessage) X(PQntuples) X(PQgetvalue) X(PQclear) X(PQescapeIdentifier) X(PQescapeLiteral)   \
    X(PQfreemem) X(PQresultErrorField) X(PQsetNoticeProcessor)

BARTL_DB_CLIENT(BARTL_PQ_FUNCTIONS, "libpq.so.5", "libpq5", "postgresql")

}  // namespace pq

namespace {

std::string trimmed(const char* s) {
    std::string out = s ? s : "";
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
}

/// One libpq connection, closed on scope exit.
class Connection {
public:
    /// Connects to database `dbname` with `db`'s conninfo (its dbname, if any, overridden).
    Connection(const Database& db, const std::string& dbname) : label_(fmt::format("postgresql:{}", db.name)) {
        pq::load();
        const std::string password = database_password(db);
        std::vector<const char*> keys{"dbname", "dbname", "connect_timeout", "application_name"};
        std::vector<const char*> values{db.connection.c_str(), dbname.c_str(), "10", "bartld"};
        if (!password.empty()) {
            keys.push_back("password");
            values.push_back(password.c_str());
        }
        keys.push_back(nullptr);
        values.push_back(nullptr);
        // expand_dbname: the first dbname is the conninfo string; the later one wins.
        conn_ = pq::PQconnectdbParams(keys.data(), values.data(), 1);
        if (!conn_ || pq::PQstatus(conn_) != CONNECTION_OK) {
            const std::string why = conn_ ? trimmed(pq::PQerrorMessage(conn_)) : "out of memory";
            if (conn_) pq::PQfinish(conn_);
            throw RuntimeError(fmt::format("{}: cannot connect to database {} with \"{}\": {}", label_, dbname,
                                           db.connection, why));
        }
        // The server's NOTICEs (DROP DATABASE IF EXISTS of a database that is not there) go to
        // the debug log, not raw to bartld's stderr, where libpq's default processor prints them.
        pq::PQsetNoticeProcessor(
            conn_,
            [](void* label, const char* message) {
                log::debug(fmt::format("{}: server notice: {}", *static_cast<const std::string*>(label),
                                       trimmed(message)));
            },
            &label_);
    }
    ~Connection() { pq::PQfinish(conn_); }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    /// Runs `sql` with text parameters; the rows' first column ("" for NULL). Throws RuntimeError;
    /// `hint`, when given, is called with the SQLSTATE of a failure and may return a sentence
    /// to add to the message.
    std::vector<std::string> query(const std::string& sql, const std::vector<std::string>& params = {},
                                   std::string (*hint)(const std::string& sqlstate) = nullptr) {
        std::vector<const char*> p;
        for (const auto& s : params) p.push_back(s.c_str());
        PGresult* r = pq::PQexecParams(conn_, sql.c_str(), int(p.size()), nullptr, p.data(), nullptr, nullptr, 0);
        const auto status = r ? pq::PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
            const std::string why = trimmed(r ? pq::PQresultErrorMessage(r) : pq::PQerrorMessage(conn_));
            const char* state = r ? pq::PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
            const std::string more = hint && state ? hint(state) : "";
            pq::PQclear(r);
            throw RuntimeError(fmt::format("{}: {}: {}{}", label_, sql, why, more.empty() ? "" : "; " + more));
        }
        std::vector<std::string> rows;
        for (int i = 0; i < pq::PQntuples(r); ++i) rows.emplace_back(pq::PQgetvalue(r, i, 0));
        pq::PQclear(r);
        return rows;
    }

    /// `s` quoted as an identifier ("notes") or a literal ('...').
    std::string quoted(const std::string& s, bool identifier) {
        char* q = identifier ? pq::PQescapeIdentifier(conn_, s.data(), s.size())
                             : pq::PQescapeLiteral(conn_, s.data(), s.size());
        if (!q) throw RuntimeError(fmt::format("{}: cannot quote \"{}\": {}", label_, s, trimmed(pq::PQerrorMessage(conn_))));
        std::string out(q);
        pq::PQfreemem(q);
        return out;
    }

private:
    std::string label_;
    PGconn* conn_ = nullptr;
};

/// The maintenance database every role may connect to, for what is asked about a database
/// from outside it (exists? its settings?) and for CREATE and DROP.
constexpr const char* kMaintenanceDb = "postgres";

/// PostgreSQL's longest identifier (NAMEDATALEN - 1).
constexpr std::size_t kMaxIdentifier = 63;

/// How pg_dump and pg_restore reach database `dbname`: the conninfo with it, and, when the
/// entry has a password credential, a password file (PGPASSFILE=/dev/fd/3, an in-memory file
/// readable by its owner only: never on argv or in the environment).
struct ToolConnection {
    std::string conninfo;
    int passfile = -1;

    ToolConnection(const Database& db, const std::string& dbname)
        : conninfo((db.connection.empty() ? "" : db.connection + " ") + "dbname=" + dbname +
                   " application_name=bartld connect_timeout=10") {
        const std::string password = database_password(db);
        if (password.empty()) return;
        std::string escaped;
        for (char c : password) {
            if (c == ':' || c == '\\') escaped += '\\';
            escaped += c;
        }
        passfile = secret_file("bartl-pgpass", "*:*:*:*:" + escaped + "\n");
    }

    /// `spec` given the password file, if any.
    ChildStreamSpec& apply(ChildStreamSpec& spec) const {
        if (passfile < 0) return spec;
        spec.fds.push_back({3, passfile});
        spec.env["PGPASSFILE"] = "/dev/fd/3";
        return spec;
    }
};

class PostgresComponent final : public DatabaseComponent {
public:
    using DatabaseComponent::DatabaseComponent;

    DatabaseFacts inspect() const override {
        DatabaseFacts f;
        {
            Connection m(db_, kMaintenanceDb);
            f.exists = !m.query("SELECT 1 FROM pg_database WHERE datname = $1", {db_.name}).empty();
            if (!f.exists) return f;
            const auto ids = m.query(
                "SELECT substr(c, length('bartl.state_id=') + 1) FROM pg_db_role_setting s JOIN pg_database d "
                "ON d.oid = s.setdatabase, unnest(s.setconfig) c WHERE s.setrole = 0 AND d.datname = $1 AND "
                "c LIKE 'bartl.state_id=%'",
                {db_.name});
            if (!ids.empty()) f.carried_id = ids.front();
        }
        Connection c(db_, db_.name);
        f.holds_data = c.query("SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = "
                               "c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND "
                               "n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND "
                               "c.relkind IN ('r', 'v', 'm', 'S', 'f', 'p'))")
                           .front() == "t";
        return f;
    }

protected:
    void create(const Owner&) const override {
        Connection m(db_, kMaintenanceDb);
        if (!m.query("SELECT 1 FROM pg_database WHERE datname = $1", {db_.name}).empty()) return;
        m.query("CREATE DATABASE " + m.quoted(db_.name, true));
    }
    void stamp(const std::string& state_id) const override {
        Connection m(db_, kMaintenanceDb);
        // PostgreSQL 15 lets only a superuser set a placeholder parameter, unless granted.
        m.query(fmt::format("ALTER DATABASE {} SET bartl.state_id = {}", m.quoted(db_.name, true),
                            m.quoted(state_id, false)),
                {}, [](const std::string& sqlstate) -> std::string {
                    return sqlstate == "42501" ? "let the connection's role set it once, as a superuser: GRANT SET ON "
                                                 "PARAMETER bartl.state_id TO ROLE"
                                               : "";
                });
    }
    void drop() const override {
        Connection m(db_, kMaintenanceDb);
        // FORCE: a hook's leftover session must not keep the half-built database alive.
        m.query(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", m.quoted(db_.name, true)));
    }
    const char* binding() const override { return "setting"; }

public:
    std::string section() const override { return db_.name + ".dump"; }

    std::unique_ptr<ByteSource> open_dump() const override {
        ToolConnection tc(db_, db_.name);
        // Custom format: pg_restore's own, one stream; uncompressed, as zstd compresses the
        // blob once. pg_dump runs in one repeatable-read snapshot: consistent in itself.
        ChildStreamSpec spec;
        spec.argv = {"pg_dump", "--format=custom", "--compress=0", "--no-password", "--dbname=" + tc.conninfo};
        spec.input = false;
        spec.what = fmt::format("pg_dump of postgresql:{}", db_.name);
        return std::make_unique<ChildDump>(std::move(tc.apply(spec)), tc.passfile, "postgresql-client");
    }

    std::string restore_staging() const override { return staging_database_name(db_.name, kMaxIdentifier); }

    std::unique_ptr<DumpLoader> open_restore(const Owner&) const override {
        const std::string staging = restore_staging();
        {
            Connection m(db_, kMaintenanceDb);
            m.query(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", m.quoted(staging, true)));
            // template0: template1 may hold objects the dump creates again.
            m.query(fmt::format("CREATE DATABASE {} TEMPLATE template0", m.quoted(staging, true)));
        }
        ToolConnection tc(db_, staging);
        // --no-owner: everything belongs to the connection's role, the configured owner;
        // --exit-on-error: a dump that does not load is a failed restore, not a partial one.
        ChildStreamSpec spec;
        spec.argv = {"pg_restore", "--no-owner", "--exit-on-error", "--no-password", "--dbname=" + tc.conninfo};
        spec.output = false;
        spec.what = fmt::format("pg_restore into {}", staging);
        return std::make_unique<ChildLoader>(std::move(tc.apply(spec)), tc.passfile, "postgresql-client");
    }

    void bind_restore(const std::string& state_id) const override {
        Connection m(db_, kMaintenanceDb);
        m.query(fmt::format("ALTER DATABASE {} SET bartl.state_id = {}", m.quoted(restore_staging(), true),
                            m.quoted(state_id, false)));
    }

    void commit_restore() const override {
        const std::string staging = restore_staging();
        const auto live = inspect();
        if (live.exists && live.holds_data)
            throw RuntimeError(fmt::format("{} holds tables now: not replacing it with the restored {}", id(), staging));
        Connection m(db_, kMaintenanceDb);
        // A database cannot be renamed (or dropped) while sessions use it: bartl's own
        // pg_restore has exited, and the app is not running during a restore; whatever
        // session is left is ended (FORCE, pg_terminate_backend).
        if (live.exists) m.query(fmt::format("DROP DATABASE {} WITH (FORCE)", m.quoted(db_.name, true)));
        m.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", {staging});
        m.query(fmt::format("ALTER DATABASE {} RENAME TO {}", m.quoted(staging, true), m.quoted(db_.name, true)));
    }

    void discard_restore() const override {
        Connection m(db_, kMaintenanceDb);
        m.query(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", m.quoted(restore_staging(), true)));
    }
};

}  // namespace

std::unique_ptr<DatabaseComponent> make_postgresql_component(const Database& db) {
    return std::make_unique<PostgresComponent>(db);
}

}  // namespace bartl
