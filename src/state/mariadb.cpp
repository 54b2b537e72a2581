// A MariaDB database as a state component, through libmariadb loaded with dlopen(3). The
// state ID is the database comment "bartl.state_id=ID" (MariaDB 10.5 and later keep a
// database comment in db.opt and show it in information_schema.SCHEMATA.SCHEMA_COMMENT).
#include <mysql.h>

#include <cstdlib>
#include <mutex>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "core/error.hpp"
#include "core/mariadb_dump.hpp"
#include "util/log.hpp"
#include "state/database.hpp"
#include "state/database_impl.hpp"

namespace bartl {
namespace my {

#define BARTL_MY_FUNCTIONS(X)                                                                                 \
    X(mysql_init) X(mysql_options) X(mysql_real_connect) X(mysql_error) X(mysql_close) X(mysql_real_query)   \
    X(mysql_store_result) X(mysql_fetch_row) X(mysql_free_result) X(mysql_real_escape_string)                \
    X(mysql_errno) X(mysql_num_fields) X(mysql_fetch_lengths)

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

    /// One row of a result: each column's bytes, nullopt for NULL.
    using Row = std::vector<std::optional<std::string>>;

    /// Runs `sql`; every row with all its columns, byte for byte (a column may hold any byte
    /// under character_set_results = binary). Throws RuntimeError.
    std::vector<Row> rows(const std::string& sql) {
        std::string why;
        if (try_run(sql, why) != 0) throw RuntimeError(fmt::format("{}: {}: {}", label_, sql, why));
        std::vector<Row> out;
        MYSQL_RES* res = my::mysql_store_result(conn_);
        if (!res) return out;  // a statement without a result set
        const unsigned n = my::mysql_num_fields(res);
        while (MYSQL_ROW row = my::mysql_fetch_row(res)) {
            const unsigned long* lengths = my::mysql_fetch_lengths(res);
            Row& r = out.emplace_back();
            for (unsigned i = 0; i < n; ++i)
                r.push_back(row[i] ? std::optional<std::string>(std::string(row[i], lengths[i])) : std::nullopt);
        }
        my::mysql_free_result(res);
        return out;
    }

    /// Runs `sql`; the rows' first column ("" for NULL). Throws RuntimeError.
    std::vector<std::string> query(const std::string& sql) {
        std::vector<std::string> out;
        for (auto& r : rows(sql)) out.push_back(r.empty() || !r[0] ? "" : std::move(*r[0]));
        return out;
    }

    /// Sends `sql`; 0 when the server accepted it (its result, if any, is left to rows()),
    /// else the server's error number, its message in `why`.
    unsigned try_run(const std::string& sql, std::string& why) {
        if (my::mysql_real_query(conn_, sql.data(), sql.size()) == 0) return 0;
        why = my::mysql_error(conn_);
        return my::mysql_errno(conn_);
    }

    const std::string& label() const noexcept { return label_; }

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

/// The mariadb client loading a dump into the staging database, through
/// CollationSwitchFilter: mariadb-dump's collation switches name the database the dump came
/// from, which is the live one, not the staging one it is loaded into.
class StagingLoader final : public DumpLoader {
public:
    StagingLoader(std::unique_ptr<DumpLoader> client, std::string name)
        : client_(std::move(client)), filter_(std::move(name)) {}
    void write(const void* data, std::size_t n) override {
        out_.clear();
        filter_.feed(std::string_view(static_cast<const char*>(data), n), out_);
        if (!out_.empty()) client_->write(out_.data(), out_.size());
    }
    void finish() override {
        out_.clear();
        filter_.finish(out_);
        if (!out_.empty()) client_->write(out_.data(), out_.size());
        client_->finish();
    }

private:
    std::unique_ptr<DumpLoader> client_;
    CollationSwitchFilter filter_;
    std::string out_;
};

/// `s` with its backquotes doubled, inside backquotes: an identifier quoted completely.
std::string quoted_ident(const std::string& s) {
    std::string out = "`";
    for (char ch : s) {
        if (ch == '`') out += '`';
        out += ch;
    }
    return out + "`";
}

/// An object bound to its schema, which RENAME TABLE cannot move to another one (bartl.toml(5)
/// "DATABASES"): its CREATE statement as SHOW CREATE gives it on a connection whose default
/// database is the one holding it, so that the references to that database come out
/// unqualified (the server prints a name qualified only when it is not in the default
/// database), with the DEFINER it has and in the bytes of its character_set_client
/// (character_set_results = binary, as mariadb-dump reads them), and the session settings it
/// was created under.
struct SchemaObject {
    std::string type;  ///< FUNCTION, PROCEDURE, PACKAGE, PACKAGE BODY, VIEW, TRIGGER or EVENT
    std::string name;
    std::string create;
    std::optional<std::string> sql_mode;  ///< none recorded for a view
    std::string client_charset, connection_collation;
    std::string database_collation;  ///< "" for a view
    std::string time_zone;           ///< an event's, else ""
};

/// The columns of SHOW CREATE TYPE: where the statement, sql_mode, character_set_client and
/// Database Collation are (-1: not there); collation_connection follows character_set_client.
struct ShowCreateColumns {
    int create, sql_mode, client_charset, database_collation, time_zone;
};

ShowCreateColumns show_create_columns(const std::string& type) {
    if (type == "VIEW") return {1, -1, 2, -1, -1};
    if (type == "TRIGGER") return {2, 1, 3, 5, -1};
    if (type == "EVENT") return {3, 1, 4, 6, 2};
    return {2, 1, 3, 5, -1};  // FUNCTION, PROCEDURE, PACKAGE, PACKAGE BODY
}

/// SHOW CREATE `type` `name` on `c` (default database: the object's, character_set_results =
/// binary). Throws RuntimeError, also when the account may not read the definition (the
/// server then answers NULL: it needs to be the definer, or SELECT on mysql.proc).
SchemaObject show_create(Connection& c, const std::string& type, const std::string& name, const std::string& where) {
    const auto cols = show_create_columns(type);
    const auto rows = c.rows(fmt::format("SHOW CREATE {} {}", type, quoted_ident(name)));
    const auto at = [&](int i) -> std::optional<std::string> {
        if (i < 0 || rows.empty() || std::size_t(i) >= rows.front().size()) return std::nullopt;
        return rows.front()[std::size_t(i)];
    };
    SchemaObject o;
    o.type = type;
    o.name = name;
    const auto create = at(cols.create);
    if (!create || create->empty())
        throw RuntimeError(fmt::format("{}: cannot read the definition of {} {} in {} (SHOW CREATE answers none: "
                                       "the account must be its definer or may SELECT on mysql.proc); nothing "
                                       "was moved",
                                       c.label(), type, name, where));
    o.create = *create;
    o.sql_mode = at(cols.sql_mode);
    o.client_charset = at(cols.client_charset).value_or("");
    o.connection_collation = at(cols.client_charset + 1).value_or("");
    o.database_collation = at(cols.database_collation).value_or("");
    o.time_zone = at(cols.time_zone).value_or("");
    return o;
}

/// Creates `o` on `c`, whose default database is the target `live` (default collation
/// `live_collation`), under the session settings `o` was created with; `default_sql_mode`
/// for a view. A routine, trigger or event takes its Database Collation from the database
/// when it is created, so the database's default is switched to it for the statement (as
/// mariadb-dump does). 0 or the server's error number, its message in `why`. Throws
/// RuntimeError when a setting is refused.
unsigned create_object(Connection& c, const SchemaObject& o, const std::string& live, const std::string& live_collation,
                       const std::string& default_sql_mode, std::string& why) {
    const bool switch_collation = !o.database_collation.empty() && o.database_collation != live_collation;
    if (switch_collation) c.query(fmt::format("ALTER DATABASE {} COLLATE {}", live, c.literal(o.database_collation)));
    std::string set = fmt::format("SET SESSION sql_mode = {}", c.literal(o.sql_mode.value_or(default_sql_mode)));
    if (!o.client_charset.empty())
        set += fmt::format(", character_set_client = {0}, character_set_results = {0}", c.literal(o.client_charset));
    if (!o.connection_collation.empty()) set += ", collation_connection = " + c.literal(o.connection_collation);
    if (!o.time_zone.empty()) set += ", time_zone = " + c.literal(o.time_zone);
    c.query(set);
    const unsigned err = c.try_run(o.create, why);
    c.query("SET NAMES utf8mb4");
    c.query(fmt::format("SET SESSION sql_mode = {}, time_zone = @@GLOBAL.time_zone", c.literal(default_sql_mode)));
    if (switch_collation) c.query(fmt::format("ALTER DATABASE {} COLLATE {}", live, c.literal(live_collation)));
    return err;
}

/// Server errors of a CREATE VIEW whose view or table it selects from is not there yet: a
/// view over a view created later in the same pass.
bool missing_dependency(unsigned err) {
    return err == 1146 /* ER_NO_SUCH_TABLE */ || err == 1356 /* ER_VIEW_INVALID */;
}

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
        // Routines and events are data someone wrote too: a database holding only those is not
        // empty, so it is never dropped to make room for a restore nor taken as absent.
        f.holds_data = c.query("SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = " + name +
                               ") + (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = " + name +
                               ") + (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = " + name + ")")
                           .front() != "0";
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
        return std::make_unique<StagingLoader>(std::make_unique<ChildLoader>(std::move(spec), fd, "mariadb-client"),
                                               db_.name);
    }

    void bind_restore(const std::string& state_id) const override {
        Connection c(db_);
        c.query(fmt::format("ALTER DATABASE {} COMMENT = {}", staging_ident(),
                            c.literal(std::string(kCommentPrefix) + state_id)));
    }

    // MariaDB has no RENAME DATABASE. One RENAME TABLE moves every table (and sequence) into
    // the live database atomically; views, triggers, routines and events stay bound to the
    // schema they were created in, and a table with triggers cannot move to another schema
    // at all. So their definitions are read from the staging database first, its triggers
    // dropped, the tables moved, and the objects created again in the live one: routines,
    // views (each once what it selects from exists), triggers, events. Nothing of this is
    // journaled: the intent record proves the live database is bartl's until the marker
    // commits, so a process killed anywhere in here leaves an interrupted restore that the
    // next start drops (live and staging) and redoes from the backup (bartl.toml(5) "DATABASES").
    void commit_restore() const override {
        const auto live = inspect();
        if (live.exists && live.holds_data)
            throw RuntimeError(fmt::format("{} holds tables now: not replacing it with the restored {}", id(),
                                           restore_staging()));
        Connection c(db_);
        c.query("SET NAMES utf8mb4");
        const std::string staging = c.literal(restore_staging());
        const auto schema = c.rows("SELECT SCHEMA_COMMENT, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM "
                                   "information_schema.SCHEMATA WHERE SCHEMA_NAME = " + staging);
        if (schema.empty()) throw RuntimeError(fmt::format("{}: {} is missing", id(), restore_staging()));
        const std::string comment = schema[0][0].value_or(""), charset = schema[0][1].value_or(""),
                          collation = schema[0][2].value_or("");
        const auto tables = c.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = " +
                                    staging + " AND TABLE_TYPE <> 'VIEW' ORDER BY TABLE_NAME");
        const auto triggers = c.query("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = " +
                                      staging + " ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, "
                                      "ACTION_ORDER");
        const auto names = [&](const std::string& sql) {
            std::vector<std::pair<std::string, std::string>> out;
            for (const auto& r : c.rows(sql)) out.emplace_back(r[0].value_or(""), r[1].value_or(""));
            return out;
        };
        // Packages before their bodies; a function or procedure needs nothing to exist.
        const auto routines = names(
            "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = " + staging +
            " ORDER BY FIELD(ROUTINE_TYPE, 'FUNCTION', 'PROCEDURE', 'PACKAGE', 'PACKAGE BODY'), ROUTINE_NAME");
        const auto views = names("SELECT 'VIEW', TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = " +
                                 staging + " ORDER BY TABLE_NAME");
        const auto events = names("SELECT 'EVENT', EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = " +
                                  staging + " ORDER BY EVENT_NAME");
        const std::string default_sql_mode = c.query("SELECT @@SESSION.sql_mode").front();

        c.query("USE " + staging_ident());
        c.query("SET SESSION character_set_results = binary");
        std::vector<SchemaObject> objects;
        for (const auto* list : {&routines, &views})
            for (const auto& [type, name] : *list) objects.push_back(show_create(c, type, name, restore_staging()));
        for (const auto& t : triggers) objects.push_back(show_create(c, "TRIGGER", t, restore_staging()));
        for (const auto& [type, name] : events) objects.push_back(show_create(c, type, name, restore_staging()));
        c.query("SET NAMES utf8mb4");
        log::info(fmt::format("{}: moving {} tables from {}, creating {} routines, {} views, {} triggers and {} "
                              "events again in {}",
                              id(), tables.size(), restore_staging(), routines.size(), views.size(), triggers.size(),
                              events.size(), db_.name));

        // The live database carries the state ID before anything arrives. A live database
        // with no tables (a package's postinst may create it) is replaced, as it would be by
        // PostgreSQL's swap: its leftover routines or events must not collide.
        if (live.exists) c.query("DROP DATABASE " + ident());
        c.query(fmt::format("CREATE DATABASE {} CHARACTER SET {} COLLATE {} COMMENT = {}", ident(), c.literal(charset),
                            c.literal(collation), c.literal(comment)));
        for (const auto& t : triggers) c.query(fmt::format("DROP TRIGGER {}.{}", staging_ident(), quoted_ident(t)));
        std::string moves;
        for (const auto& t : tables)
            moves += fmt::format("{}{}.{} TO {}.{}", moves.empty() ? "" : ", ", staging_ident(), quoted_ident(t),
                                 ident(), quoted_ident(t));
        if (!moves.empty()) c.query("RENAME TABLE " + moves);

        c.query("USE " + ident());
        std::vector<const SchemaObject*> pending_views;
        const auto create = [&](const SchemaObject& o) {
            std::string why;
            if (create_object(c, o, ident(), collation, default_sql_mode, why) != 0)
                throw RuntimeError(fmt::format("{}: cannot create {} {} again in {}: {}", id(), o.type, o.name,
                                               db_.name, why));
        };
        for (const auto& o : objects)
            if (o.type == "VIEW") pending_views.push_back(&o);
            else if (o.type != "TRIGGER" && o.type != "EVENT") create(o);
        // A view selecting from another view needs that one first; the server knows the
        // order (a missing dependency is an error), so each pass creates what it can.
        while (!pending_views.empty()) {
            std::vector<const SchemaObject*> later;
            std::string first_why;
            for (const auto* o : pending_views) {
                std::string why;
                const unsigned err = create_object(c, *o, ident(), collation, default_sql_mode, why);
                if (err == 0) continue;
                if (!missing_dependency(err))
                    throw RuntimeError(fmt::format("{}: cannot create VIEW {} again in {}: {}", id(), o->name,
                                                   db_.name, why));
                if (first_why.empty()) first_why = fmt::format("VIEW {}: {}", o->name, why);
                later.push_back(o);
            }
            if (later.size() == pending_views.size())
                throw RuntimeError(fmt::format("{}: cannot create the views again in {}: {}", id(), db_.name,
                                               first_why));
            pending_views = std::move(later);
        }
        for (const char* type : {"TRIGGER", "EVENT"})
            for (const auto& o : objects)
                if (o.type == type) create(o);

        // The marker may commit only a database holding everything the dump held.
        const std::string target = c.literal(db_.name);
        const auto count = [&](const char* table, const char* column, const char* extra = "") {
            return std::stoul(c.query(fmt::format("SELECT COUNT(*) FROM information_schema.{} WHERE {} = {}{}", table,
                                                  column, target, extra))
                                  .front());
        };
        const std::size_t have_tables = count("TABLES", "TABLE_SCHEMA", " AND TABLE_TYPE <> 'VIEW'"),
                          have_views = count("VIEWS", "TABLE_SCHEMA"), have_triggers = count("TRIGGERS", "TRIGGER_SCHEMA"),
                          have_routines = count("ROUTINES", "ROUTINE_SCHEMA"), have_events = count("EVENTS", "EVENT_SCHEMA");
        if (have_tables != tables.size() || have_views != views.size() || have_triggers != triggers.size() ||
            have_routines != routines.size() || have_events != events.size())
            throw RuntimeError(fmt::format(
                "{}: after the move {} holds {} tables, {} views, {} triggers, {} routines and {} events, the "
                "restored dump {}, {}, {}, {} and {}",
                id(), db_.name, have_tables, have_views, have_triggers, have_routines, have_events, tables.size(),
                views.size(), triggers.size(), routines.size(), events.size()));
        c.query("DROP DATABASE " + staging_ident());
    }

    void discard_restore() const override { Connection(db_).query("DROP DATABASE IF EXISTS " + staging_ident()); }

};

}  // namespace

std::unique_ptr<DatabaseComponent> make_mariadb_component(const Database& db) {
    return std::make_unique<MariaDBComponent>(db);
}

}  // namespace bartl
