// The service manager notification protocol (sd_notify(3)) from the daemon's side, and a
// listener for the app's side (bartld gives the app its own NOTIFY_SOCKET).
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <sys/types.h>
#include <utility>

namespace bartl::notify {

/// Sends a notification to $NOTIFY_SOCKET via sd_notify(3); a no-op when unset.
/// Examples: "READY=1\nSTATUS=Serving", "EXTEND_TIMEOUT_USEC=30000000".
void send(const std::string& state);

/// Sends STATUS=<text> (and logs it at info level).
void status(const std::string& text);

/// The watchdog interval systemd asked for (sd_watchdog_enabled(3)), or std::nullopt.
std::optional<std::chrono::microseconds> watchdog_interval();

/// A datagram socket (AF_UNIX, SOCK_DGRAM) the app child sends its sd_notify messages to.
/// Created in a fresh private directory (mode 0700); removed in the destructor.
class Listener {
public:
    /// Binds a new socket under `runtime_dir`. With `owner` (the app's uid and gid) the
    /// directory and the socket belong to that user, mode 0700 and 0600: the app can reach
    /// its socket, no other unprivileged user can (the runtime directory itself must be
    /// searchable by the owner, e.g. mode 0711). Throws RuntimeError.
    explicit Listener(const std::filesystem::path& runtime_dir,
                      std::optional<std::pair<uid_t, gid_t>> owner = std::nullopt);
    ~Listener();
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;

    /// Path to give the child as NOTIFY_SOCKET.
    const std::filesystem::path& path() const noexcept { return path_; }
    /// File descriptor to poll for readability.
    int fd() const noexcept { return fd_; }
    /// Reads one pending datagram without blocking; std::nullopt when none is pending.
    std::optional<std::string> receive();

private:
    std::filesystem::path dir_;
    std::filesystem::path path_;
    int fd_ = -1;
};

}  // namespace bartl::notify
