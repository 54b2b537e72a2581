// A SQLite database file as a state component. PRAGMA application_id and user_version are
// the app's, so the state ID lives in a side record beside the file: FILE.bartl-state-id,
// one line, written atomically (write temp, fsync, rename, fsync directory). libsqlite3 is
// loaded with dlopen(3) to tell an empty database from one with tables.
#include <sqlite3.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

#include "core/error.hpp"
#include "state/database.hpp"
#include "state/database_impl.hpp"
#include "util/fs.hpp"

namespace bartl {
namespace sq {

#define BARTL_SQ_FUNCTIONS(X) \
    X(sqlite3_open_v2) X(sqlite3_close) X(sqlite3_errmsg) X(sqlite3_prepare_v2) X(sqlite3_step) X(sqlite3_column_int) \
    X(sqlite3_finalize) X(sqlite3_busy_timeout)

BARTL_DB_CLIENT(BARTL_SQ_FUNCTIONS, "libsqlite3.so.0", "libsqlite3-0", "sqlite")

}  // namespace sq

namespace {

std::string errno_text() { return std::strerror(errno); }

/// The number of entries in sqlite_schema of the database at `path` (opened read-only).
int schema_entries(const std::filesystem::path& path, const std::string& label) {
    sq::load();
    sqlite3* db = nullptr;
    int rc = sq::sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    auto fail = [&](const char* what) {
        const std::string why = db ? sq::sqlite3_errmsg(db) : "out of memory";
        sq::sqlite3_close(db);
        return RuntimeError(fmt::format("{}: {} {}: {}", label, what, path.string(), why));
    };
    if (rc != SQLITE_OK) throw fail("cannot open");
    sq::sqlite3_busy_timeout(db, 10000);  // the app may be writing: wait for its lock
    sqlite3_stmt* st = nullptr;
    if (sq::sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1, &st, nullptr) != SQLITE_OK)
        throw fail("cannot read the schema of");  // "file is not a database" lands here
    rc = sq::sqlite3_step(st);
    const int n = rc == SQLITE_ROW ? sq::sqlite3_column_int(st, 0) : -1;
    sq::sqlite3_finalize(st);
    if (n < 0) throw fail("cannot read the schema of");
    sq::sqlite3_close(db);
    return n;
}

class SqliteComponent final : public DatabaseComponent {
public:
    using DatabaseComponent::DatabaseComponent;

    std::filesystem::path side_record() const { return db_.path.string() + ".bartl-state-id"; }

    DatabaseFacts inspect() const override {
        DatabaseFacts f;
        struct stat st {};
        if (::lstat(db_.path.c_str(), &st) != 0) {
            if (errno == ENOENT) return f;
            throw RuntimeError(fmt::format("{}: cannot inspect {}: {}", id(), db_.path.string(), errno_text()));
        }
        if (!S_ISREG(st.st_mode))
            throw ConfigError(fmt::format("{}: {} is not a regular file{}", id(), db_.path.string(),
                                          S_ISLNK(st.st_mode) ? " (a symlink: declare the file it points to)" : ""));
        f.exists = true;
        if (auto s = fs::read_file(side_record())) {
            while (!s->empty() && (s->back() == '\n' || s->back() == ' ')) s->pop_back();
            f.carried_id = *s;
        }
        f.holds_data = st.st_size > 0 && schema_entries(db_.path, id()) > 0;
        return f;
    }

protected:
    void create(const Owner& owner) const override {
        const auto parent = db_.path.parent_path();
        // The app writes its -wal and -journal files beside the database, so a directory
        // bartl creates for it is the app's.
        const bool made_parent = !std::filesystem::exists(parent);
        fs::make_dirs(parent);
        if (made_parent && (owner.uid != static_cast<uid_t>(-1) || owner.gid != static_cast<gid_t>(-1)) &&
            ::chown(parent.c_str(), owner.uid, owner.gid) != 0)
            throw RuntimeError(fmt::format("{}: cannot give {} to uid {} gid {}: {}", id(), parent.string(), owner.uid,
                                           owner.gid, errno_text()));
        // An empty file is an empty SQLite database; the app's first write gives it a header.
        const int fd = ::open(db_.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (fd < 0) {
            if (errno == EEXIST) return;
            throw RuntimeError(fmt::format("{}: cannot create {}: {}", id(), db_.path.string(), errno_text()));
        }
        const bool chown_ok = (owner.uid == static_cast<uid_t>(-1) && owner.gid == static_cast<gid_t>(-1)) ||
                              ::fchown(fd, owner.uid, owner.gid) == 0;
        const int err = errno;
        ::fsync(fd);
        ::close(fd);
        if (!chown_ok)
            throw RuntimeError(fmt::format("{}: cannot give {} to uid {} gid {}: {}", id(), db_.path.string(),
                                           owner.uid, owner.gid, std::strerror(err)));
        fs::fsync_dir(parent);
    }
    void stamp(const std::string& state_id) const override { fs::write_file_atomic(side_record(), state_id + "\n"); }
    void drop() const override {
        for (const char* suffix : {"", "-wal", "-shm", "-journal", ".bartl-state-id"}) {
            const std::filesystem::path p = db_.path.string() + suffix;
            if (::unlink(p.c_str()) != 0 && errno != ENOENT)
                throw RuntimeError(fmt::format("{}: cannot remove {}: {}", id(), p.string(), errno_text()));
        }
        fs::fsync_dir(db_.path.parent_path());
    }
    void sync() const override {
        const int fd = ::open(db_.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
            if (errno == ENOENT) return;
            throw RuntimeError(fmt::format("{}: cannot open {}: {}", id(), db_.path.string(), errno_text()));
        }
        const int rc = ::fsync(fd);
        ::close(fd);
        if (rc != 0) throw RuntimeError(fmt::format("{}: cannot fsync {}: {}", id(), db_.path.string(), errno_text()));
    }
    const char* binding() const override { return "file"; }
};

}  // namespace

std::unique_ptr<DatabaseComponent> make_sqlite_component(const Database& db) {
    return std::make_unique<SqliteComponent>(db);
}

}  // namespace bartl
