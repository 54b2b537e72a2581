// file:// store. Durability follows the usual rules: data fsync before the rename that
// publishes it, directory fsync after the rename and after unlinks.
#include "store/file_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cctype>
#include <cstring>
#include <random>
#include <utility>

#include <fmt/format.h>

#include "core/words.hpp"
#include "util/mounts.hpp"

namespace bartl {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

std::string random_suffix() {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    return fmt::format("{:08x}", static_cast<std::uint32_t>(rng()));
}

/// This host's name as it goes into temporary names: [A-Za-z0-9.-], at most 64 characters.
std::string temp_host() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
    std::string h;
    for (const char* p = buf; *p && h.size() < 64; ++p)
        h += (std::isalnum(static_cast<unsigned char>(*p)) || *p == '.' || *p == '-') ? *p : '_';
    return h.empty() ? "unknown" : h;
}

/// The etag of a file: a replace (temp + rename) always makes a new inode.
std::string etag_of(const struct stat& st) {
    return fmt::format("{:x}-{:x}-{:x}.{:x}", static_cast<unsigned long long>(st.st_ino),
                       static_cast<unsigned long long>(st.st_size), static_cast<long long>(st.st_mtim.tv_sec),
                       static_cast<long>(st.st_mtim.tv_nsec));
}

class FileReader : public ByteSource {
public:
    FileReader(int fd, std::string what) : fd_(fd), what_(std::move(what)) {}
    ~FileReader() override { ::close(fd_); }
    FileReader(const FileReader&) = delete;
    FileReader& operator=(const FileReader&) = delete;

    std::size_t read(void* data, std::size_t n) override {
        for (;;) {
            ssize_t r = ::read(fd_, data, n);
            if (r >= 0) return static_cast<std::size_t>(r);
            if (errno != EINTR) throw RuntimeError(fmt::format("{}: read failed: {}", what_, errno_text(errno)));
        }
    }

private:
    int fd_;
    std::string what_;
};

class FileWriter : public ObjectWriter {
public:
    FileWriter(std::string url, std::filesystem::path dir, int dirfd, int fd, std::string tmp, std::string name)
        : url_(std::move(url)), dir_(std::move(dir)), dirfd_(dirfd), fd_(fd), tmp_(std::move(tmp)),
          name_(std::move(name)) {}

    ~FileWriter() override {
        // Local and cheap, so done here as well as in abort(): the temporary file is never
        // listed, and remove_abandoned_uploads() catches what a killed process leaves.
        if (fd_ >= 0) ::close(fd_);
        if (!committed_ && !aborted_) ::unlinkat(dirfd_, tmp_.c_str(), 0);
        ::close(dirfd_);
    }
    FileWriter(const FileWriter&) = delete;
    FileWriter& operator=(const FileWriter&) = delete;

    void write(const void* data, std::size_t n) override {
        if (fd_ < 0) throw RuntimeError(fmt::format("store {}: write to {} after commit or abort", url_, name_));
        const char* p = static_cast<const char*>(data);
        while (n > 0) {
            ssize_t w = ::write(fd_, p, n);
            if (w < 0) {
                if (errno == EINTR) continue;
                fail("cannot write", errno);
            }
            p += w;
            n -= static_cast<std::size_t>(w);
            written_ += static_cast<std::uint64_t>(w);
        }
        // Start writeback of each full 8 MiB at once (SYNC_FILE_RANGE_WRITE does not wait), so
        // the fsync in commit() finds little left to write. Errors surface at that fsync.
        if (written_ - queued_ >= kWritebackChunk) {
            (void)::sync_file_range(fd_, static_cast<off64_t>(queued_), static_cast<off64_t>(written_ - queued_),
                                    SYNC_FILE_RANGE_WRITE);
            queued_ = written_;
        }
    }

    void commit(const Context& ctx) override {
        if (committed_ || aborted_ || fd_ < 0)
            throw RuntimeError(fmt::format("store {}: {} committed twice or after abort", url_, name_));
        ctx.check(fmt::format("store {}: commit of {}", url_, name_));
        // Delayed allocation can report ENOSPC only here, so these are checked like write().
        if (::fsync(fd_) != 0) fail("cannot fsync", errno);
        int fd = std::exchange(fd_, -1);
        if (::close(fd) != 0) fail("cannot close", errno);
        if (::renameat(dirfd_, tmp_.c_str(), dirfd_, name_.c_str()) != 0) fail("cannot rename temporary file to", errno);
        committed_ = true;
        if (::fsync(dirfd_) != 0 && errno != EINVAL)
            throw RuntimeError(fmt::format("store {}: cannot fsync directory after writing {}: {}", url_, name_,
                                           errno_text(errno)));
    }

    void abort(const Context&) override {
        if (committed_ || aborted_) return;
        aborted_ = true;
        if (fd_ >= 0) ::close(std::exchange(fd_, -1));
        if (::unlinkat(dirfd_, tmp_.c_str(), 0) != 0 && errno != ENOENT)
            throw StoreUnavailable(fmt::format("store {}: cannot remove the temporary file of {}: {}", url_, name_,
                                               errno_text(errno)));
    }

private:
    [[noreturn]] void fail(const char* action, int err) const {
        // A full store is the store's problem, shown as such until a backup fits again.
        if (err == ENOSPC || err == EDQUOT) {
            const auto space = filesystem_space(dir_);
            throw StoreFull(fmt::format("store {}: {} {} after {}: {}{}", url_, action, name_, format_bytes(written_),
                                        errno_text(err),
                                        space ? fmt::format(" ({})", space_text(*space, dir_))
                                              : std::string()));
        }
        throw RuntimeError(fmt::format("store {}: {} {}: {}", url_, action, name_, errno_text(err)));
    }

    std::string url_;
    std::filesystem::path dir_;  // for the message of a full store
    int dirfd_;
    int fd_;
    std::string tmp_;
    std::string name_;
    bool committed_ = false;
    bool aborted_ = false;
    static constexpr std::uint64_t kWritebackChunk = 8ull << 20;  // bytes
    std::uint64_t written_ = 0;  // bytes written so far
    std::uint64_t queued_ = 0;   // bytes handed to writeback so far
};

}  // namespace

bool valid_object_name(const std::string& name) {
    return !name.empty() && name.size() <= 255 && name.front() != '.' && name.find('/') == std::string::npos &&
           name.find('\0') == std::string::npos;
}

std::string upload_temp_name(const std::string& name) {
    return fmt::format(".{}.tmp-{}-{}-{}", name, temp_host(), ::getpid(), random_suffix());
}

bool upload_writer_gone(const std::string& temp_name) {
    const auto owner = parse_upload_owner(temp_name);
    return owner && owner->host == temp_host() && owner->pid != ::getpid() &&
           ::kill(static_cast<pid_t>(owner->pid), 0) != 0 && errno == ESRCH;
}

FileStore::FileStore(std::string url, std::filesystem::path dir) : url_(std::move(url)), dir_(std::move(dir)) {}

void FileStore::unavailable(const std::string& action, int err) const {
    if (err == ENOENT)
        throw StoreUnavailable(fmt::format("store {}: directory {} does not exist (backup disk not mounted?)", url_,
                                           dir_.string()));
    if (err == ENOTDIR)
        throw StoreUnavailable(fmt::format("store {}: {} is not a directory", url_, dir_.string()));
    if (err == EROFS || err == EACCES || err == EPERM)
        throw StoreReadOnly(fmt::format("store {}: {}: {}", url_, action, errno_text(err)));
    throw StoreUnavailable(fmt::format("store {}: {}: {}", url_, action, errno_text(err)));
}

void FileStore::missing(const std::string& name) const {
    struct stat st {};
    if (::stat(dir_.c_str(), &st) != 0) unavailable("cannot access " + dir_.string(), errno);
    if (!S_ISDIR(st.st_mode)) unavailable("", ENOTDIR);
    throw NotFound(fmt::format("store {}: {} not found", url_, name));
}

int FileStore::open_dir() const {
    int dirfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) unavailable("cannot open directory " + dir_.string(), errno);
    return dirfd;
}

std::vector<ObjectInfo> FileStore::list(const Context& ctx, const std::string& prefix) {
    ctx.check(fmt::format("store {}: listing", url_));
    DIR* d = ::opendir(dir_.c_str());
    if (d == nullptr) unavailable("cannot read directory " + dir_.string(), errno);
    std::vector<ObjectInfo> out;
    errno = 0;
    while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        errno = 0;
        if (name.empty() || name.front() == '.' || name.compare(0, prefix.size(), prefix) != 0) continue;
        struct stat st {};
        // stat, not lstat: a symlinked object (an operator's hand-made link) is read through.
        if (::fstatat(::dirfd(d), name.c_str(), &st, 0) == 0 && S_ISREG(st.st_mode))
            out.push_back(ObjectInfo{std::move(name), static_cast<std::uint64_t>(st.st_size),
                                     std::chrono::system_clock::time_point(
                                         std::chrono::seconds(st.st_mtim.tv_sec) +
                                         std::chrono::nanoseconds(st.st_mtim.tv_nsec))});
        errno = 0;
    }
    int err = errno;
    ::closedir(d);
    if (err != 0) unavailable("cannot read directory " + dir_.string(), err);
    std::sort(out.begin(), out.end(), [](const ObjectInfo& a, const ObjectInfo& b) { return a.name < b.name; });
    return out;
}

std::optional<UploadOwner> parse_upload_owner(const std::string& temp_name) {
    const auto tmp = temp_name.rfind(".tmp-");
    if (tmp == std::string::npos) return std::nullopt;
    const std::string rest = temp_name.substr(tmp + 5);  // HOST-PID-XXXXXXXX
    const auto last = rest.rfind('-');
    if (last == std::string::npos || last == 0) return std::nullopt;
    const auto mid = rest.rfind('-', last - 1);
    if (mid == std::string::npos || mid == 0) return std::nullopt;
    const std::string pid = rest.substr(mid + 1, last - mid - 1);
    if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return UploadOwner{rest.substr(0, mid), std::stol(pid)};
}

unsigned FileStore::remove_abandoned_uploads(const Context& ctx, const std::string& prefix, std::chrono::seconds age) {
    ctx.check(fmt::format("store {}: removing abandoned uploads", url_));
    DIR* d = ::opendir(dir_.c_str());
    if (d == nullptr) unavailable("cannot read directory " + dir_.string(), errno);
    const auto cutoff = ::time(nullptr) - static_cast<time_t>(age.count());
    const std::string hidden = "." + prefix;
    unsigned removed = 0;
    while (dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name.compare(0, hidden.size(), hidden) != 0 || name.find(".tmp-") == std::string::npos) continue;
        struct stat st {};
        if (::fstatat(::dirfd(d), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
        if (!upload_writer_gone(name) && st.st_mtime >= cutoff) continue;  // may be an upload in progress
        if (::unlinkat(::dirfd(d), name.c_str(), 0) == 0) ++removed;
    }
    ::closedir(d);
    return removed;
}

std::unique_ptr<ByteSource> FileStore::open(const Context& ctx, const std::string& name, std::uint64_t offset) {
    ctx.check(fmt::format("store {}: opening {}", url_, name));
    if (!valid_object_name(name))
        throw NotFound(fmt::format("store {}: {} not found (not a valid object name)", url_, name));
    const auto path = dir_ / name;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) missing(name);
        unavailable("cannot open " + path.string(), errno);
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw NotFound(fmt::format("store {}: {} is not a regular file", url_, name));
    }
    if (offset > 0 && ::lseek(fd, static_cast<off_t>(offset), SEEK_SET) < 0) {
        int err = errno;
        ::close(fd);
        throw RuntimeError(fmt::format("store {}: cannot seek {} to byte {}: {}", url_, name, offset, errno_text(err)));
    }
    return std::make_unique<FileReader>(fd, fmt::format("store {}: {}", url_, name));
}

std::optional<SmallObject> FileStore::get(const Context& ctx, const std::string& name, std::size_t max_bytes) {
    ctx.check(fmt::format("store {}: reading {}", url_, name));
    if (!valid_object_name(name)) throw RuntimeError(fmt::format("store {}: invalid object name \"{}\"", url_, name));
    const auto path = dir_ / name;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) unavailable("cannot open " + path.string(), errno);
        struct stat dst {};
        if (::stat(dir_.c_str(), &dst) != 0) unavailable("cannot access " + dir_.string(), errno);
        if (!S_ISDIR(dst.st_mode)) unavailable("", ENOTDIR);
        return std::nullopt;
    }
    FileReader reader(fd, fmt::format("store {}: {}", url_, name));
    struct stat st {};
    if (::fstat(fd, &st) != 0) unavailable("cannot stat " + path.string(), errno);
    if (!S_ISREG(st.st_mode)) throw RuntimeError(fmt::format("store {}: {} is not a regular file", url_, name));
    if (static_cast<std::uint64_t>(st.st_size) > max_bytes)
        throw RuntimeError(fmt::format("store {}: {} is {} bytes, more than the {} expected", url_, name, st.st_size,
                                       max_bytes));
    SmallObject obj;
    obj.etag = etag_of(st);
    char buf[8192];
    while (std::size_t n = reader.read(buf, sizeof buf)) {
        obj.data.append(buf, n);
        if (obj.data.size() > max_bytes)
            throw RuntimeError(fmt::format("store {}: {} is larger than {} bytes", url_, name, max_bytes));
    }
    return obj;
}

std::string FileStore::put(const Context& ctx, const std::string& name, const std::string& data,
                           const WriteCondition& cond) {
    if (!valid_object_name(name)) throw RuntimeError(fmt::format("store {}: invalid object name \"{}\"", url_, name));
    // Conditional writes are a compare-and-swap under an exclusive flock on a lock file in
    // the store directory: every bartl writing this store takes the same lock (NFSv4 and
    // local filesystems honour it; see conditional_write_guarantee()).
    int lockfd = -1;
    if (cond.kind != WriteCondition::Kind::none) {
        const auto lock_path = dir_ / ".bartl-store.lock";
        lockfd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (lockfd < 0) {
            if (errno == ENOENT) unavailable("", ENOENT);
            unavailable("cannot open " + lock_path.string(), errno);
        }
        while (::flock(lockfd, LOCK_EX) != 0) {
            if (errno != EINTR) {
                int err = errno;
                ::close(lockfd);
                unavailable("cannot lock " + lock_path.string(), err);
            }
        }
    }
    struct Unlock {
        int fd;
        ~Unlock() {
            if (fd >= 0) ::close(fd);  // releases the flock
        }
    } unlock{lockfd};
    if (cond.kind != WriteCondition::Kind::none) {
        struct stat st {};
        const bool exists = ::stat((dir_ / name).c_str(), &st) == 0;
        if (!exists && errno != ENOENT) unavailable("cannot stat " + (dir_ / name).string(), errno);
        if (cond.kind == WriteCondition::Kind::if_absent && exists)
            throw PreconditionFailed(fmt::format("store {}: {} already exists", url_, name));
        if (cond.kind == WriteCondition::Kind::if_match && (!exists || etag_of(st) != cond.etag))
            throw PreconditionFailed(fmt::format("store {}: {} was {} since it was read", url_, name,
                                                 exists ? "replaced" : "removed"));
    }
    auto w = create(ctx, name);
    w->write(data.data(), data.size());
    w->commit(ctx);
    struct stat st {};
    if (::stat((dir_ / name).c_str(), &st) != 0) unavailable("cannot stat " + (dir_ / name).string(), errno);
    return etag_of(st);
}

std::unique_ptr<ObjectWriter> FileStore::create(const Context& ctx, const std::string& name) {
    ctx.check(fmt::format("store {}: writing {}", url_, name));
    if (!valid_object_name(name)) throw RuntimeError(fmt::format("store {}: invalid object name \"{}\"", url_, name));
    int dirfd = open_dir();
    for (int attempt = 0; attempt < 100; ++attempt) {
        std::string tmp = upload_temp_name(name);
        // 0600: backups hold the application's data, including whatever secrets it keeps.
        int fd = ::openat(dirfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) return std::make_unique<FileWriter>(url_, dir_, dirfd, fd, std::move(tmp), name);
        if (errno == EEXIST) continue;
        int err = errno;
        ::close(dirfd);
        unavailable(fmt::format("cannot create {} in {}", name, dir_.string()), err);
    }
    ::close(dirfd);
    throw StoreUnavailable(fmt::format("store {}: cannot find a free temporary name for {}", url_, name));
}

void FileStore::remove(const Context& ctx, const std::string& name) {
    ctx.check(fmt::format("store {}: removing {}", url_, name));
    if (!valid_object_name(name)) throw RuntimeError(fmt::format("store {}: invalid object name \"{}\"", url_, name));
    int dirfd = open_dir();
    int rc = ::unlinkat(dirfd, name.c_str(), 0);
    int err = errno;
    if (rc != 0 && err != ENOENT) {
        ::close(dirfd);
        unavailable(fmt::format("cannot remove {} from {}", name, dir_.string()), err);
    }
    rc = rc == 0 ? ::fsync(dirfd) : 0;
    err = errno;
    ::close(dirfd);
    if (rc != 0 && err != EINVAL)
        throw RuntimeError(fmt::format("store {}: cannot fsync {} after removing {}: {}", url_, dir_.string(), name,
                                       errno_text(err)));
}

std::string FileStore::conditional_write_guarantee() const {
    return "atomic: compare-and-swap under flock(2) on .bartl-store.lock in the store directory (local "
           "filesystems and NFSv4; not on NFSv3 without lockd)";
}

}  // namespace bartl
