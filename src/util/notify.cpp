// sd_notify(3) towards systemd, and the listener the app child notifies (see notify.hpp).
#include "util/notify.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include <fmt/format.h>

#include "core/error.hpp"
#include "util/log.hpp"

namespace bartl::notify {

void send(const std::string& state) {
    const int rc = sd_notify(0, state.c_str());
    // A failed notification must not stop the service; systemd's own timeouts will tell.
    if (rc < 0)
        log::warn(fmt::format("cannot notify the service manager ({}): {}", state, std::strerror(-rc)));
}

void status(const std::string& text) {
    send("STATUS=" + text);
    log::info(text);
}

std::optional<std::chrono::microseconds> watchdog_interval() {
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
        return std::chrono::microseconds(usec);
    return std::nullopt;
}

Listener::Listener(const std::filesystem::path& runtime_dir, std::optional<std::pair<uid_t, gid_t>> owner) {
    std::string templ = (runtime_dir / "bartl-notify-XXXXXX").string();
    // mkdtemp creates the directory 0700: only its owner can reach the socket in it.
    if (!::mkdtemp(templ.data()))
        throw RuntimeError(fmt::format("cannot create a notify socket directory in {}: {}",
                                       runtime_dir.string(), std::strerror(errno)));
    dir_ = templ;
    path_ = dir_ / "notify";

    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string p = path_.string();
    if (p.size() >= sizeof addr.sun_path) {
        ::rmdir(dir_.c_str());
        throw RuntimeError(fmt::format("notify socket path {} is longer than {} bytes; use a shorter runtime "
                                       "directory", p, sizeof addr.sun_path - 1));
    }
    std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);

    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd_ < 0 || ::setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0 ||
        ::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0) {
        const int err = errno;
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = -1;
        ::unlink(path_.c_str());
        ::rmdir(dir_.c_str());
        throw RuntimeError(fmt::format("cannot create notify socket {}: {}", p, std::strerror(err)));
    }
    if (owner && (::chown(dir_.c_str(), owner->first, owner->second) != 0 ||
                  ::chown(path_.c_str(), owner->first, owner->second) != 0 || ::chmod(path_.c_str(), 0600) != 0)) {
        const int err = errno;
        ::close(fd_);
        fd_ = -1;
        ::unlink(path_.c_str());
        ::rmdir(dir_.c_str());
        throw RuntimeError(fmt::format("cannot give notify socket {} to uid {} gid {}: {}", p, owner->first,
                                       owner->second, std::strerror(err)));
    }
}

Listener::~Listener() {
    if (fd_ >= 0)
        ::close(fd_);
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
}

std::optional<std::string> Listener::receive() {
    char buf[4096];
    for (;;) {
        // Ancillary data (SO_PASSCRED credentials, stray SCM_RIGHTS fds) is not asked for:
        // the kernel then drops it, so a child cannot make us hold descriptors.
        const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
        if (n >= 0)
            return std::string(buf, std::size_t(n));
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return std::nullopt;
        throw RuntimeError(fmt::format("cannot read from notify socket {}: {}", path_.string(), std::strerror(errno)));
    }
}

}  // namespace bartl::notify
