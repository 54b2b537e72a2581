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
};

}  // namespace

std::unique_ptr<DatabaseComponent> make_mariadb_component(const Database& db) {
    return std::make_unique<MariaDBComponent>(db);
}

}  // namespace bartl
