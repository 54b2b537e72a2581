// file:// store. Durability follows the usual rules: data fsync before the rename that
// publishes it, directory fsync after the rename and after unlinks.
#include "store/file_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <random>
#include <utility>

#include <fmt/format.h>

namespace bartl {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

/// Flat, visible names only: no '/', no hidden names (those are our temp files).
bool valid_name(const std::string& name) {
    return !name.empty() && name.size() <= 255 && name.front() != '.' && name.find('/') == std::string::npos &&
           name.find('\0') == std::string::npos;
}

std::string random_suffix() {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    return fmt::format("{:08x}", static_cast<std::uint32_t>(rng()));
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
    FileWriter(std::string url, int dirfd, int fd, std::string tmp, std::string name)
        : url_(std::move(url)), dirfd_(dirfd), fd_(fd), tmp_(std::move(tmp)), name_(std::move(name)) {}

    ~FileWriter() override {
        if (fd_ >= 0) ::close(fd_);
        if (!committed_) ::unlinkat(dirfd_, tmp_.c_str(), 0);  // best effort: list() ignores leftovers
        ::close(dirfd_);
    }
    FileWriter(const FileWriter&) = delete;
    FileWriter& operator=(const FileWriter&) = delete;

    void write(const void* data, std::size_t n) override {
        if (fd_ < 0) throw RuntimeError(fmt::format("store {}: write to {} after commit", url_, name_));
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

    void commit() override {
        if (committed_ || fd_ < 0) throw RuntimeError(fmt::format("store {}: {} committed twice", url_, name_));
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

private:
    [[noreturn]] void fail(const char* action, int err) const {
        throw RuntimeError(fmt::format("store {}: {} {}: {}", url_, action, name_, errno_text(err)));
    }

    std::string url_;
    int dirfd_;
    int fd_;
    std::string tmp_;
    std::string name_;
    bool committed_ = false;
    static constexpr std::uint64_t kWritebackChunk = 8ull << 20;  // bytes
    std::uint64_t written_ = 0;  // bytes written so far
    std::uint64_t queued_ = 0;   // bytes handed to writeback so far
};

}  // namespace

FileStore::FileStore(std::string url, std::filesystem::path dir) : url_(std::move(url)), dir_(std::move(dir)) {}

void FileStore::unavailable(const std::string& action, int err) const {
    if (err == ENOENT)
        throw StoreUnavailable(fmt::format("store {}: directory {} does not exist (backup disk not mounted?)", url_,
                                           dir_.string()));
    if (err == ENOTDIR)
        throw StoreUnavailable(fmt::format("store {}: {} is not a directory", url_, dir_.string()));
    throw StoreUnavailable(fmt::format("store {}: {}: {}", url_, action, errno_text(err)));
}

void FileStore::missing(const std::string& name) const {
    struct stat st {};
    if (::stat(dir_.c_str(), &st) != 0) unavailable("cannot access " + dir_.string(), errno);
    if (!S_ISDIR(st.st_mode)) unavailable("", ENOTDIR);
    throw NotFound(fmt::format("store {}: {} not found", url_, name));
}

std::vector<std::string> FileStore::list(const std::string& prefix) {
    DIR* d = ::opendir(dir_.c_str());
    if (d == nullptr) unavailable("cannot read directory " + dir_.string(), errno);
    std::vector<std::string> names;
    errno = 0;
    while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        errno = 0;
        if (name.empty() || name.front() == '.' || name.compare(0, prefix.size(), prefix) != 0) continue;
        bool regular = e->d_type == DT_REG;
        if (e->d_type == DT_UNKNOWN || e->d_type == DT_LNK) {
            struct stat st {};
            regular = ::fstatat(::dirfd(d), name.c_str(), &st, 0) == 0 && S_ISREG(st.st_mode);
        }
        if (regular) names.push_back(std::move(name));
        errno = 0;
    }
    int err = errno;
    ::closedir(d);
    if (err != 0) unavailable("cannot read directory " + dir_.string(), err);
    std::sort(names.begin(), names.end());
    return names;
}

unsigned FileStore::remove_abandoned_uploads(const std::string& prefix, std::chrono::seconds age) {
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
        if (st.st_mtime >= cutoff) continue;  // may be an upload in progress
        if (::unlinkat(::dirfd(d), name.c_str(), 0) == 0) ++removed;
    }
    ::closedir(d);
    return removed;
}

std::unique_ptr<ByteSource> FileStore::open(const std::string& name) {
    if (!valid_name(name)) throw NotFound(fmt::format("store {}: {} not found (not a valid object name)", url_, name));
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
    return std::make_unique<FileReader>(fd, fmt::format("store {}: {}", url_, name));
}

std::uint64_t FileStore::size(const std::string& name) {
    if (!valid_name(name)) throw NotFound(fmt::format("store {}: {} not found (not a valid object name)", url_, name));
    const auto path = dir_ / name;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) missing(name);
        unavailable("cannot stat " + path.string(), errno);
    }
    if (!S_ISREG(st.st_mode)) throw NotFound(fmt::format("store {}: {} is not a regular file", url_, name));
    return static_cast<std::uint64_t>(st.st_size);
}

std::unique_ptr<ObjectWriter> FileStore::create(const std::string& name) {
    if (!valid_name(name)) throw RuntimeError(fmt::format("store {}: invalid object name \"{}\"", url_, name));
    int dirfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) unavailable("cannot open directory " + dir_.string(), errno);
    for (int attempt = 0; attempt < 100; ++attempt) {
        std::string tmp = fmt::format(".{}.tmp-{}", name, random_suffix());
        // 0600: backups hold the application's data, including whatever secrets it keeps.
        int fd = ::openat(dirfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) return std::make_unique<FileWriter>(url_, dirfd, fd, std::move(tmp), name);
        if (errno == EEXIST) continue;
        int err = errno;
        ::close(dirfd);
        unavailable(fmt::format("cannot create {} in {}", name, dir_.string()), err);
    }
    ::close(dirfd);
    throw StoreUnavailable(fmt::format("store {}: cannot find a free temporary name for {}", url_, name));
}

void FileStore::remove(const std::string& name) {
    if (!valid_name(name)) throw RuntimeError(fmt::format("store {}: invalid object name \"{}\"", url_, name));
    int dirfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) unavailable("cannot open directory " + dir_.string(), errno);
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

std::filesystem::path file_url_path(const std::string& url) {
    constexpr std::string_view scheme = "file://";
    auto bad = [&](const std::string& why) {
        return ConfigError(fmt::format("store URL \"{}\": {} (expected file:///ABSOLUTE/DIR)", url, why));
    };
    if (url.compare(0, scheme.size(), scheme) != 0) throw bad("not a file:// URL");
    std::string rest = url.substr(scheme.size());
    auto slash = rest.find('/');
    std::string host = rest.substr(0, slash);
    if (!host.empty() && host != "localhost") throw bad("host \"" + host + "\" is not supported");
    if (slash == std::string::npos) throw bad("no directory");
    std::string path;
    const std::string raw = rest.substr(slash);
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '%') {
            path += raw[i];
            continue;
        }
        auto hex = [](char c) -> int {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            return -1;
        };
        if (i + 2 >= raw.size()) throw bad("truncated %-escape");
        int hi = hex(raw[i + 1]), lo = hex(raw[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) throw bad("invalid %-escape");
        path += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    std::filesystem::path p = std::filesystem::path(path).lexically_normal();
    if (p == "/") throw bad("the root directory cannot be a store");
    return p;
}

}  // namespace bartl
