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
    X(sqlite3_finalize) X(sqlite3_busy_timeout) X(sqlite3_backup_init) X(sqlite3_backup_step) X(sqlite3_backup_finish) \
    X(sqlite3_errcode) X(sqlite3_sleep)

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

/// A database file opened for a backup, closed on scope exit.
struct Handle {
    sqlite3* db = nullptr;
    Handle(const std::filesystem::path& path, int flags, const std::string& label) {
        if (sq::sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
            const std::string why = db ? sq::sqlite3_errmsg(db) : "out of memory";
            sq::sqlite3_close(db);
            throw RuntimeError(fmt::format("{}: cannot open {}: {}", label, path.string(), why));
        }
        sq::sqlite3_busy_timeout(db, 10000);
    }
    ~Handle() { sq::sqlite3_close(db); }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
};

/// The copy the online backup API made, streamed from a descriptor whose file is already
/// unlinked: nothing is left behind however the backup ends.
class FileDump final : public ByteSource {
public:
    FileDump(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
    ~FileDump() override { ::close(fd_); }
    std::size_t read(void* data, std::size_t n) override {
        for (;;) {
            const ssize_t r = ::read(fd_, data, n);
            if (r >= 0) return std::size_t(r);
            if (errno != EINTR) throw RuntimeError(fmt::format("cannot read {}: {}", path_, errno_text()));
        }
    }

private:
    int fd_;
    std::string path_;
};

/// Writes a restored database file (the staging file beside the live one).
class FileLoader final : public DumpLoader {
public:
    FileLoader(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
    ~FileLoader() override {
        if (fd_ >= 0) ::close(fd_);
    }
    void write(const void* data, std::size_t n) override {
        const char* p = static_cast<const char*>(data);
        while (n > 0) {
            const ssize_t w = ::write(fd_, p, n);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) throw RuntimeError(fmt::format("cannot write {}: {}", path_, errno_text()));
            p += w;
            n -= std::size_t(w);
        }
    }
    void finish() override {
        const int rc = ::fsync(fd_);
        const int err = errno;
        ::close(fd_);
        fd_ = -1;
        if (rc != 0) throw RuntimeError(fmt::format("cannot fsync {}: {}", path_, std::strerror(err)));
    }

private:
    int fd_;
    std::string path_;
};

/// Removes `p`; a no-op when it is missing. Throws RuntimeError.
void remove_file(const std::filesystem::path& p, const std::string& label) {
    if (::unlink(p.c_str()) != 0 && errno != ENOENT)
        throw RuntimeError(fmt::format("{}: cannot remove {}: {}", label, p.string(), errno_text()));
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

public:
    std::string section() const override { return db_.name + ".sqlite"; }

    /// The copy a backup makes beside the database (the documented exception of invariant 7:
    /// as large as the database, removed as soon as it is open for streaming).
    std::filesystem::path backup_copy() const { return db_.path.string() + ".bartl-backup"; }

    std::unique_ptr<ByteSource> open_dump() const override {
        sq::load();
        const auto copy = backup_copy();
        const std::filesystem::path journal = copy.string() + "-journal";
        auto cleanup = [&] {
            ::unlink(copy.c_str());
            ::unlink(journal.c_str());
        };
        cleanup();  // a leftover of a backup killed while it copied
        try {
            {
                // The online backup API copies the pages under a read transaction: a
                // consistent database even while the app writes (never a copy of the file).
                Handle src(db_.path, SQLITE_OPEN_READONLY, id());
                Handle dst(copy, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW, id());
                sqlite3_backup* b = sq::sqlite3_backup_init(dst.db, "main", src.db, "main");
                if (!b) throw RuntimeError(fmt::format("{}: cannot back up {}: {}", id(), db_.path.string(), sq::sqlite3_errmsg(dst.db)));
                int rc;
                // -1: every page in one step, so no write of the app restarts the copy.
                while ((rc = sq::sqlite3_backup_step(b, -1)) == SQLITE_BUSY || rc == SQLITE_LOCKED) sq::sqlite3_sleep(50);
                sq::sqlite3_backup_finish(b);
                if (rc != SQLITE_DONE)
                    throw RuntimeError(fmt::format("{}: backup of {} into {} failed: {}", id(), db_.path.string(),
                                                   copy.string(), sq::sqlite3_errmsg(dst.db)));
            }
            const int fd = ::open(copy.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
            if (fd < 0) throw RuntimeError(fmt::format("{}: cannot open {}: {}", id(), copy.string(), errno_text()));
            cleanup();
            return std::make_unique<FileDump>(fd, copy.string());
        } catch (...) {
            cleanup();
            throw;
        }
    }

    std::string restore_staging() const override { return db_.path.string() + ".bartl-restore"; }
    std::filesystem::path staging_record() const { return restore_staging() + ".bartl-state-id"; }

    std::unique_ptr<DumpLoader> open_restore(const Owner& owner) const override {
        discard_restore();
        // The parent may be gone with the rest of the state: created as create() does.
        fs::make_dirs(db_.path.parent_path());
        const std::string staging = restore_staging();
        const int fd = ::open(staging.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (fd < 0) throw RuntimeError(fmt::format("{}: cannot create {}: {}", id(), staging, errno_text()));
        if ((owner.uid != static_cast<uid_t>(-1) || owner.gid != static_cast<gid_t>(-1)) &&
            ::fchown(fd, owner.uid, owner.gid) != 0) {
            const int err = errno;
            ::close(fd);
            throw RuntimeError(fmt::format("{}: cannot give {} to uid {} gid {}: {}", id(), staging, owner.uid,
                                           owner.gid, std::strerror(err)));
        }
        return std::make_unique<FileLoader>(fd, staging);
    }

    void bind_restore(const std::string& state_id) const override {
        fs::write_file_atomic(staging_record(), state_id + "\n");
    }

    void commit_restore() const override {
        const auto live = inspect();
        if (live.exists && live.holds_data)
            throw RuntimeError(fmt::format("{} holds tables now: not replacing it with the restored {}", id(),
                                           restore_staging()));
        auto state_id = fs::read_file(staging_record());
        if (!state_id) throw RuntimeError(fmt::format("{}: {} is missing", id(), staging_record().string()));
        // An empty live database's journals would be applied to the restored file.
        for (const char* suffix : {"-wal", "-shm", "-journal"}) remove_file(db_.path.string() + suffix, id());
        // The record first: the restored file never appears without the state ID.
        fs::write_file_atomic(side_record(), *state_id);
        fs::rename_durable(restore_staging(), db_.path);
        remove_file(staging_record(), id());
    }

    void discard_restore() const override {
        remove_file(restore_staging(), id());
        remove_file(staging_record(), id());
    }
};

}  // namespace

std::unique_ptr<DatabaseComponent> make_sqlite_component(const Database& db) {
    return std::make_unique<SqliteComponent>(db);
}

}  // namespace bartl
