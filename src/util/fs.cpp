// Durable filesystem primitives. Every change that must survive a crash is followed by an
// fsync of the file and of the directory holding its name: without the directory fsync a
// rename can be lost on power failure even though the data blocks were written.
#include "util/fs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <cstdint>
#include <random>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/error.hpp"

namespace bartl::fs {
namespace {

namespace stdfs = std::filesystem;

std::string errno_text(int err) { return std::strerror(err); }

/// Closes a descriptor when it leaves scope (error paths throw).
class Fd {
public:
    explicit Fd(int fd = -1) noexcept : fd_(fd) {}
    ~Fd() { reset(); }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const noexcept { return fd_; }
    int release() noexcept { return std::exchange(fd_, -1); }
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_;
};

/// The directory holding `p`'s name ("." for a bare name).
stdfs::path parent_of(const stdfs::path& p) {
    auto parent = p.parent_path();
    return parent.empty() ? stdfs::path(".") : parent;
}

/// Random suffix for temp names: unique enough across processes without a shared counter.
std::string random_suffix() {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    return fmt::format("{:08x}", static_cast<std::uint32_t>(rng()));
}

void write_all(int fd, const char* data, std::size_t n, const stdfs::path& path) {
    while (n > 0) {
        ssize_t w = ::write(fd, data, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            throw RuntimeError(fmt::format("cannot write {}: {}", path.string(), errno_text(errno)));
        }
        data += w;
        n -= static_cast<std::size_t>(w);
    }
}

/// Removes everything inside the open directory `dirfd` (but not the directory itself).
/// `dev` is the device of the tree's root: a subdirectory on another device is a mount
/// point, and whatever is mounted there is not ours to delete.
void clear_dir(int dirfd, dev_t dev, const stdfs::path& where) {
    // Names are collected first and the DIR closed before recursing, so only one descriptor
    // per level stays open and unlinking does not disturb readdir.
    std::vector<std::string> names;
    {
        int dup_fd = ::dup(dirfd);
        if (dup_fd < 0) throw RuntimeError(fmt::format("cannot read directory {}: {}", where.string(), errno_text(errno)));
        DIR* d = ::fdopendir(dup_fd);
        if (d == nullptr) {
            int err = errno;
            ::close(dup_fd);
            throw RuntimeError(fmt::format("cannot read directory {}: {}", where.string(), errno_text(err)));
        }
        errno = 0;
        while (dirent* e = ::readdir(d)) {
            std::string_view n = e->d_name;
            if (n != "." && n != "..") names.emplace_back(n);
            errno = 0;
        }
        int err = errno;
        ::closedir(d);
        if (err != 0) throw RuntimeError(fmt::format("cannot read directory {}: {}", where.string(), errno_text(err)));
    }
    for (const auto& name : names) {
        auto child = where / name;
        struct stat st {};
        if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT) continue;
            throw RuntimeError(fmt::format("cannot stat {}: {}", child.string(), errno_text(errno)));
        }
        if (S_ISDIR(st.st_mode)) {
            if (st.st_dev != dev)
                throw RuntimeError(fmt::format("cannot remove {}: it is a mount point (refusing to delete another "
                                               "filesystem's data)",
                                               child.string()));
            Fd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
            if (sub.get() < 0)
                throw RuntimeError(fmt::format("cannot open directory {}: {}", child.string(), errno_text(errno)));
            clear_dir(sub.get(), dev, child);
            sub.reset();
            if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
                throw RuntimeError(fmt::format("cannot remove {}: {}", child.string(), errno_text(errno)));
        } else if (::unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT) {
            throw RuntimeError(fmt::format("cannot remove {}: {}", child.string(), errno_text(errno)));
        }
    }
}

}  // namespace

void write_file_atomic(const std::filesystem::path& path, const std::string& content, unsigned mode) {
    const auto dir = parent_of(path);
    const auto base = path.filename().string();
    stdfs::path tmp;
    Fd fd;
    for (int attempt = 0; attempt < 100 && fd.get() < 0; ++attempt) {
        tmp = dir / fmt::format(".{}.tmp-{}", base, random_suffix());
        fd.reset(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
        if (fd.get() < 0 && errno != EEXIST)
            throw RuntimeError(fmt::format("cannot create {}: {}", tmp.string(), errno_text(errno)));
    }
    if (fd.get() < 0) throw RuntimeError(fmt::format("cannot create a temporary file beside {}", path.string()));
    try {
        // fchmod, not open's mode: the umask must not weaken or change the requested mode.
        if (::fchmod(fd.get(), mode) != 0)
            throw RuntimeError(fmt::format("cannot chmod {}: {}", tmp.string(), errno_text(errno)));
        write_all(fd.get(), content.data(), content.size(), tmp);
        if (::fsync(fd.get()) != 0)
            throw RuntimeError(fmt::format("cannot fsync {}: {}", tmp.string(), errno_text(errno)));
        if (::close(fd.release()) != 0)
            throw RuntimeError(fmt::format("cannot close {}: {}", tmp.string(), errno_text(errno)));
        if (::rename(tmp.c_str(), path.c_str()) != 0)
            throw RuntimeError(
                fmt::format("cannot rename {} to {}: {}", tmp.string(), path.string(), errno_text(errno)));
    } catch (...) {
        ::unlink(tmp.c_str());
        throw;
    }
    fsync_dir(dir);
}

std::optional<std::string> read_file(const std::filesystem::path& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
        if (errno == ENOENT) return std::nullopt;
        throw RuntimeError(fmt::format("cannot open {}: {}", path.string(), errno_text(errno)));
    }
    std::string out;
    char buf[16384];
    for (;;) {
        ssize_t r = ::read(fd.get(), buf, sizeof buf);
        if (r < 0) {
            if (errno == EINTR) continue;
            throw RuntimeError(fmt::format("cannot read {}: {}", path.string(), errno_text(errno)));
        }
        if (r == 0) break;
        out.append(buf, static_cast<std::size_t>(r));
    }
    return out;
}

void fsync_dir(const std::filesystem::path& dir) {
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) throw RuntimeError(fmt::format("cannot open directory {}: {}", dir.string(), errno_text(errno)));
    // EINVAL: the filesystem does not support syncing directories (some FUSE/network
    // filesystems); there is nothing more we can do there, so it is not a failure.
    if (::fsync(fd.get()) != 0 && errno != EINVAL)
        throw RuntimeError(fmt::format("cannot fsync directory {}: {}", dir.string(), errno_text(errno)));
}

void sync_filesystem(const std::filesystem::path& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) throw RuntimeError(fmt::format("cannot open {}: {}", path.string(), errno_text(errno)));
    if (::syncfs(fd.get()) != 0)
        throw RuntimeError(fmt::format("cannot sync the filesystem of {}: {}", path.string(), errno_text(errno)));
}

bool sync_tree(const std::filesystem::path& root, std::size_t max_entries) {
    // First count, without opening anything: past max_entries, one syncfs is the cheaper way.
    std::vector<std::filesystem::path> paths{root};
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
        const auto type = it->symlink_status(ec).type();
        if (ec) break;
        if (type != std::filesystem::file_type::regular && type != std::filesystem::file_type::directory) continue;
        paths.push_back(it->path());
        if (paths.size() > max_entries) {
            sync_filesystem(root);
            return true;
        }
    }
    // A tree bartld cannot walk or open all of (not running as root, a mode-000 file) is made
    // durable the other way; syncfs reports the errors that matter (EIO).
    if (ec || paths.size() > max_entries) {
        sync_filesystem(root);
        return true;
    }
    // Files before their directories' fsync would not matter to a journaling filesystem, but
    // children first is the order that is right everywhere.
    for (auto p = paths.rbegin(); p != paths.rend(); ++p) {
        // O_NONBLOCK: an entry swapped for a FIFO since the walk must not block the open.
        Fd fd(::open(p->c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
        // Gone since the walk (a hook's background process cleaning up), or swapped for a
        // symlink: its directory's fsync, which comes later, makes that durable.
        if (fd.get() < 0 && (errno == ENOENT || errno == ELOOP)) continue;
        if (fd.get() < 0 && (errno == EACCES || errno == EPERM)) {
            sync_filesystem(root);
            return true;
        }
        if (fd.get() < 0) throw RuntimeError(fmt::format("cannot open {}: {}", p->string(), errno_text(errno)));
        if (::fsync(fd.get()) != 0 && errno != EINVAL)
            throw RuntimeError(fmt::format("cannot fsync {}: {}", p->string(), errno_text(errno)));
    }
    return false;
}

void rename_durable(const std::filesystem::path& from, const std::filesystem::path& to) {
    if (::rename(from.c_str(), to.c_str()) != 0)
        throw RuntimeError(fmt::format("cannot rename {} to {}: {}", from.string(), to.string(), errno_text(errno)));
    const auto to_dir = parent_of(to);
    const auto from_dir = parent_of(from);
    fsync_dir(to_dir);
    if (from_dir.lexically_normal() != to_dir.lexically_normal()) fsync_dir(from_dir);
}

void remove_durable(const std::filesystem::path& path) {
    if (::unlink(path.c_str()) != 0) {
        if (errno == ENOENT) return;
        throw RuntimeError(fmt::format("cannot remove {}: {}", path.string(), errno_text(errno)));
    }
    fsync_dir(parent_of(path));
}

void remove_tree(const std::filesystem::path& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return;
        throw RuntimeError(fmt::format("cannot stat {}: {}", path.string(), errno_text(errno)));
    }
    if (S_ISDIR(st.st_mode)) {
        // O_NOFOLLOW + the descriptor-relative walk: a symlink swapped in while we work
        // cannot redirect the removal outside the tree.
        Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (fd.get() < 0)
            throw RuntimeError(fmt::format("cannot open directory {}: {}", path.string(), errno_text(errno)));
        clear_dir(fd.get(), st.st_dev, path);
        fd.reset();
        if (::rmdir(path.c_str()) != 0 && errno != ENOENT)
            throw RuntimeError(fmt::format("cannot remove {}: {}", path.string(), errno_text(errno)));
    } else if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        throw RuntimeError(fmt::format("cannot remove {}: {}", path.string(), errno_text(errno)));
    }
    fsync_dir(parent_of(path));
}

namespace {
/// An existing directory with no entries at all (lost+found itself must be truly empty).
bool is_missing_or_empty_dir_only(const std::filesystem::path& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return false;
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) return false;  // unreadable: counts as data
    bool empty = true;
    while (dirent* e = ::readdir(d)) {
        std::string_view n = e->d_name;
        if (n != "." && n != "..") {
            empty = false;
            break;
        }
    }
    ::closedir(d);
    return empty;
}
}  // namespace

bool is_missing_or_empty(const std::filesystem::path& path) {
    // stat, not lstat: a declared state path may be a symlink to the real data directory.
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return true;
        throw RuntimeError(fmt::format("cannot stat {}: {}", path.string(), errno_text(errno)));
    }
    if (!S_ISDIR(st.st_mode)) return false;
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) throw RuntimeError(fmt::format("cannot read directory {}: {}", path.string(), errno_text(errno)));
    bool empty = true;
    errno = 0;
    while (dirent* e = ::readdir(d)) {
        std::string_view n = e->d_name;
        if (n == "." || n == "..") {
            errno = 0;
            continue;
        }
        // mkfs puts an empty lost+found on every ext filesystem: a fresh disk holds no data.
        if (n == "lost+found" && is_missing_or_empty_dir_only(path / "lost+found")) {
            errno = 0;
            continue;
        }
        empty = false;
        break;
    }
    int err = errno;
    ::closedir(d);
    if (empty && err != 0)
        throw RuntimeError(fmt::format("cannot read directory {}: {}", path.string(), errno_text(err)));
    return empty;
}

void make_dirs(const std::filesystem::path& path, unsigned mode) {
    stdfs::path current;
    for (const auto& part : path.lexically_normal()) {
        if (part.empty()) continue;  // trailing separator
        current /= part;
        struct stat st {};
        if (::stat(current.c_str(), &st) == 0) {
            if (!S_ISDIR(st.st_mode))
                throw RuntimeError(fmt::format("cannot create directory {}: {} is not a directory", path.string(),
                                               current.string()));
            continue;
        }
        if (errno != ENOENT)
            throw RuntimeError(fmt::format("cannot stat {}: {}", current.string(), errno_text(errno)));
        if (::mkdir(current.c_str(), mode) != 0) {
            // Lost a race with another creator: fine as long as the result is a directory.
            if (errno == EEXIST && ::stat(current.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) continue;
            throw RuntimeError(fmt::format("cannot create directory {}: {}", current.string(), errno_text(errno)));
        }
        fsync_dir(parent_of(current));
    }
}

std::filesystem::path staging_path_for(const std::filesystem::path& target) {
    auto t = target.lexically_normal();
    if (!t.has_filename()) t = t.parent_path();  // "/var/lib/notes/" names "notes"
    return t.parent_path() / ("." + t.filename().string() + ".bartl-staging");
}

}  // namespace bartl::fs
