// A MariaDB database as a state component, through libmariadb loaded with dlopen(3). The
// state ID is the database comment "bartl.state_id=ID" (MariaDB 10.5 and later keep a
// database comment in db.opt and show it in information_schema.SCHEMATA.SCHEMA_COMMENT).
#include <mysql.h>

#include <cstdlib>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "core/error.hpp"
#include "state/database.hpp"
#include "state/database_impl.hpp"

namespace bartl {
namespace my {

#define BARTL_MY_FUNCTIONS(X)                                                                                 \
    X(mysql_init) X(mysql_options) X(mysql_real_connect) X(mysql_error) X(mysql_close) X(mysql_real_query)   \
    X(mysql_store_result) X(mysql_fetch_row) X(mysql_free_result) X(mysql_real_escape_string)

BARTL_DB_CLIENT(BARTL_MY_FUNCTIONS, "libmariadb.so.3", "libmariadb3", "mariadb")

}  // namespace my

namespace {

constexpr std::string_view kCommentPrefix = "bartl.state_id=";

/// MariaDB's longest database name.
constexpr std::size_t kMaxIdentifier = 64;

/// An option file for mariadb-dump and the mariadb client ([client]: the entry's socket,
/// user, host, port and password), in memory and handed over as /dev/fd/3: the password is
/// never on argv or in the environment, and no other option file is read (--defaults-file).
int defaults_file(const Database& db) {
    std::string text = "[client]\n";
    for (const char* key : {"socket", "user", "host", "port"})
        if (const auto v = db.connection_value(key); !v.empty()) text += fmt::format("{}={}\n", key, v);
    if (const auto password = database_password(db); !password.empty()) {
        std::string quoted;
        for (char c : password) {
            if (c == '\\' || c == '"') quoted += '\\';
            quoted += c;
        }
        text += "password=\"" + quoted + "\"\n";
    }
    return secret_file("bartl-my.cnf", text);
}

/// A spec running `tool` with defaults_file() `fd` as its option file.
ChildStreamSpec tool_spec(const char* tool, int fd) {
    ChildStreamSpec spec;
    spec.argv = {tool, "--defaults-file=/dev/fd/3"};
    spec.fds.push_back({3, fd});
    return spec;
}

/// One libmariadb connection (no default database), closed on scope exit.
class Connection {
public:
    explicit Connection(const Database& db) : label_(fmt::format("mariadb:{}", db.name)) {
        my::load();
        conn_ = my::mysql_init(nullptr);
        if (!conn_) throw RuntimeError(label_ + ": mysql_init: out of memory");
        unsigned timeout = 10;
        my::mysql_options(conn_, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
        // No option files: the connection is what the configuration says, nothing else.
        const std::string host = db.connection_value("host"), user = db.connection_value("user"),
                          socket = db.connection_value("socket"), port = db.connection_value("port");
        const std::string password = database_password(db);
        if (!my::mysql_real_connect(conn_, host.empty() ? nullptr : host.c_str(), user.empty() ? nullptr : user.c_str(),
                                    password.empty() ? nullptr : password.c_str(), nullptr,
                                    port.empty() ? 0u : unsigned(std::atoi(port.c_str())),
                                    socket.empty() ? nullptr : socket.c_str(), 0)) {
            const std::string why = my::mysql_error(conn_);
            my::mysql_close(conn_);
            throw RuntimeError(fmt::format("{}: cannot connect with \"{}\": {}", label_, db.connection, why));
        }
    }
    ~Connection() { my::mysql_close(conn_); }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    /// Runs `sql`; the rows' first column ("" for NULL). Throws RuntimeError.
    std::vector<std::string> query(const std::string& sql) {
        if (my::mysql_real_query(conn_, sql.data(), sql.size()) != 0)
            throw RuntimeError(fmt::format("{}: {}: {}", label_, sql, my::mysql_error(conn_)));
        std::vector<std::string> rows;
        MYSQL_RES* res = my::mysql_store_result(conn_);
        if (!res) return rows;  // a statement without a result set
        while (MYSQL_ROW row = my::mysql_fetch_row(res)) rows.emplace_back(row[0] ? row[0] : "");
        my::mysql_free_result(res);
        return rows;
    }

    /// `s` as a quoted string literal.
    std::string literal(const std::string& s) {
        std::string out(s.size() * 2 + 1, '\0');
        out.resize(my::mysql_real_escape_string(conn_, out.data(), s.data(), s.size()));
        return "'" + out + "'";
    }

private:
    std::string label_;
    MYSQL* conn_ = nullptr;
};

class MariaDBComponent final : public DatabaseComponent {
public:
    using DatabaseComponent::DatabaseComponent;

    DatabaseFacts inspect() const override {
        DatabaseFacts f;
        Connection c(db_);
        const std::string name = c.literal(db_.name);
        const auto comment =
            c.query("SELECT SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = " + name);
        f.exists = !comment.empty();
        if (!f.exists) return f;
        if (comment.front().rfind(kCommentPrefix, 0) == 0) f.carried_id = comment.front().substr(kCommentPrefix.size());
        f.holds_data = c.query("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = " + name).front() != "0";
        return f;
    }

protected:
    // The name is letters, digits, '_' and '-' (config), so backquotes quote it completely.
    std::string ident() const { return "`" + db_.name + "`"; }

    void create(const Owner&) const override { Connection(db_).query("CREATE DATABASE IF NOT EXISTS " + ident()); }
    void stamp(const std::string& state_id) const override {
        Connection c(db_);
        c.query(fmt::format("ALTER DATABASE {} COMMENT = {}", ident(), c.literal(std::string(kCommentPrefix) + state_id)));
    }
    void drop() const override { Connection(db_).query("DROP DATABASE IF EXISTS " + ident()); }
    const char* binding() const override { return "comment"; }

public:
    std::string section() const override { return db_.name + ".sql"; }

    std::unique_ptr<ByteSource> open_dump() const override {
        const int fd = defaults_file(db_);
        // --single-transaction: one consistent snapshot of InnoDB tables without locking them.
        auto spec = tool_spec("mariadb-dump", fd);
        for (const char* o : {"--single-transaction", "--routines", "--triggers", "--events", "--hex-blob"})
            spec.argv.push_back(o);
        spec.argv.push_back(db_.name);
        spec.input = false;
        spec.what = fmt::format("mariadb-dump of mariadb:{}", db_.name);
        return std::make_unique<ChildDump>(std::move(spec), fd, "mariadb-client");
    }

    std::string restore_staging() const override { return staging_database_name(db_.name, kMaxIdentifier); }
    std::string staging_ident() const { return "`" + restore_staging() + "`"; }

    std::unique_ptr<DumpLoader> open_restore(const Owner&) const override {
        {
            Connection c(db_);
            c.query("DROP DATABASE IF EXISTS " + staging_ident());
            c.query("CREATE DATABASE " + staging_ident());
        }
        const int fd = defaults_file(db_);
        auto spec = tool_spec("mariadb", fd);
        spec.argv.push_back("--binary-mode");
        spec.argv.push_back(restore_staging());
        spec.output = false;
        spec.what = fmt::format("mariadb loading {}", restore_staging());
        return std::make_unique<ChildLoader>(std::move(spec), fd, "mariadb-client");
    }

    void bind_restore(const std::string& state_id) const override {
        Connection c(db_);
        c.query(fmt::format("ALTER DATABASE {} COMMENT = {}", staging_ident(),
                            c.literal(std::string(kCommentPrefix) + state_id)));
    }

    void commit_restore() const override {
        const auto live = inspect();
        if (live.exists && live.holds_data)
            throw RuntimeError(fmt::format("{} holds tables now: not replacing it with the restored {}", id(),
                                           restore_staging()));
        Connection c(db_);
        const std::string staging = c.literal(restore_staging());
        // MariaDB has no RENAME DATABASE. One RENAME TABLE moves every table into the live
        // database atomically; views, triggers, routines and events stay bound to the schema
        // they were created in, so a dump with them is refused before anything moves.
        const auto others = c.query(
            "SELECT CONCAT('view ', TABLE_NAME) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = " + staging +
            " UNION ALL SELECT CONCAT('trigger ', TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE "
            "TRIGGER_SCHEMA = " + staging +
            " UNION ALL SELECT CONCAT(LOWER(ROUTINE_TYPE), ' ', ROUTINE_NAME) FROM information_schema.ROUTINES "
            "WHERE ROUTINE_SCHEMA = " + staging +
            " UNION ALL SELECT CONCAT('event ', EVENT_NAME) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = " +
            staging);
        if (!others.empty()) {
            std::string names;
            for (const auto& o : others) names += (names.empty() ? "" : ", ") + o;
            throw RuntimeError(fmt::format("{}: the backup's dump holds {}, which bartl cannot move from {} into "
                                           "the live database (MariaDB has no RENAME DATABASE); restore it by "
                                           "hand (bartl.toml(5) DATABASES)",
                                           id(), names, restore_staging()));
        }
        const auto comment = c.query("SELECT SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = " +
                                     staging);
        if (comment.empty()) throw RuntimeError(fmt::format("{}: {} is missing", id(), restore_staging()));
        // The live database carries the state ID before the tables arrive.
        c.query("CREATE DATABASE IF NOT EXISTS " + ident());
        c.query(fmt::format("ALTER DATABASE {} COMMENT = {}", ident(), c.literal(comment.front())));
        const auto tables = c.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = " +
                                    staging + " AND TABLE_TYPE = 'BASE TABLE'");
        std::string moves;
        for (const auto& t : tables)
            moves += fmt::format("{}{}.`{}` TO {}.`{}`", moves.empty() ? "" : ", ", staging_ident(), backquoted(t),
                                 ident(), backquoted(t));
        if (!moves.empty()) c.query("RENAME TABLE " + moves);
        c.query("DROP DATABASE " + staging_ident());
    }

    void discard_restore() const override { Connection(db_).query("DROP DATABASE IF EXISTS " + staging_ident()); }

private:
    /// `s` with its backquotes doubled, for inside `...`.
    static std::string backquoted(const std::string& s) {
        std::string out;
        for (char ch : s) {
            if (ch == '`') out += '`';
            out += ch;
        }
        return out;
    }
};

}  // namespace

std::unique_ptr<DatabaseComponent> make_mariadb_component(const Database& db) {
    return std::make_unique<MariaDBComponent>(db);
}

}  // namespace bartl
