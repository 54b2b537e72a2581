#include "generator/prepare.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "core/error.hpp"

namespace bartl {

namespace {

namespace fs = std::filesystem;

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    Fd& operator=(Fd&& o) noexcept {
        std::swap(fd_, o.fd_);
        return *this;
    }
    int get() const { return fd_; }

private:
    int fd_;
};

[[noreturn]] void fail(const std::string& what, const fs::path& path, int err) {
    throw RuntimeError(fmt::format("cannot {} {}: {}", what, path.string(), std::strerror(err)));
}

}  // namespace

std::vector<fs::path> create_missing_dir(const fs::path& dir, mode_t mode, gid_t gid) {
    if (!dir.is_absolute())
        throw RuntimeError(fmt::format("{}: not an absolute path", dir.string()));
    std::vector<fs::path> parts;
    for (const auto& part : dir.relative_path())
        if (!part.empty() && part != ".") parts.push_back(part);
    for (const auto& part : parts)
        if (part == "..") throw RuntimeError(fmt::format("{}: must not contain '..'", dir.string()));

    std::vector<fs::path> created;
    Fd at(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (at.get() < 0) fail("open", "/", errno);
    fs::path current = "/";
    for (std::size_t i = 0; i < parts.size(); ++i) {
        const bool last = i + 1 == parts.size();
        const char* name = parts[i].c_str();
        current /= parts[i];
        // An existing component is used as it is, symlinks included (/var/lib -> /data/lib).
        Fd next(::openat(at.get(), name, O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (next.get() >= 0) {
            at = std::move(next);
            continue;
        }
        if (errno == ENOTDIR) throw RuntimeError(fmt::format("{}: {} is not a directory", dir.string(), current.string()));
        if (errno != ENOENT) fail("open", current, errno);
        // Closed first (0700), then owner and mode: never more open than intended.
        const bool made = ::mkdirat(at.get(), name, 0700) == 0;
        if (!made && errno != EEXIST) fail("create directory", current, errno);
        Fd fresh(::openat(at.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (fresh.get() < 0) {
            if (errno == ENOTDIR || errno == ELOOP)
                throw RuntimeError(fmt::format("{}: {} is not a directory", dir.string(), current.string()));
            fail("open", current, errno);
        }
        if (made) {  // else another process created it meanwhile: theirs to own
            if (::fchown(fresh.get(), 0, last ? gid : 0) != 0) fail("chown", current, errno);
            if (::fchmod(fresh.get(), last ? mode : 0755) != 0) fail("chmod", current, errno);
            created.push_back(current);
        }
        at = std::move(fresh);
    }
    return created;
}

}  // namespace bartl
