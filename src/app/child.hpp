// The served application: a child process with its own NOTIFY_SOCKET, readiness detection
// and a graceful stop (SIGTERM, then SIGKILL after stop_timeout).
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>
#include <functional>

#include "config/config.hpp"
#include "util/notify.hpp"

namespace bartl {

/// How a child ended.
struct ChildExit {
    int exit_status = -1;  ///< exit code, or -1 when signalled
    int term_signal = 0;   ///< signal, or 0
    /// "exited with status 3" / "killed by signal 9 (SIGKILL)".
    std::string describe() const;
};

/// One run of app.exec.
class AppProcess {
public:
    /// Starts argv with `env` added to our environment, in `cwd` when set. For
    /// Readiness::Kind::notify the child gets NOTIFY_SOCKET pointing at a private listener
    /// created under `runtime_dir`; otherwise NOTIFY_SOCKET is removed from its environment.
    /// Throws RuntimeError when it cannot be started.
    AppProcess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
               const std::optional<std::filesystem::path>& cwd, const Readiness& ready,
               const std::filesystem::path& runtime_dir);
    /// Stops the child if still running (stop() with the stop timeout, 5 s unless set).
    ~AppProcess();
    AppProcess(const AppProcess&) = delete;
    AppProcess& operator=(const AppProcess&) = delete;

    pid_t pid() const noexcept { return pid_; }

    /// The grace wait_ready() and the destructor give the child when they have to stop it
    /// (default 5 s; bartld sets [app] stop_timeout).
    void set_stop_timeout(std::chrono::milliseconds timeout) noexcept { stop_timeout_ = timeout; }

    /// Waits until the app is ready per its Readiness (notify: READY=1 from the child;
    /// started: at once; tcp: a connect succeeds; http: a GET answers 2xx), polling every
    /// 50 ms. `tick` is called at least every second (for EXTEND_TIMEOUT_USEC/watchdog).
    /// Throws RuntimeError when `timeout` passes ("not ready after 90s") or the child exits
    /// first (with its exit description); the child is then stopped.
    void wait_ready(std::chrono::milliseconds timeout, const std::function<void()>& tick = {});

    /// Non-blocking: returns how the child ended if it has exited (reaps it), else nullopt.
    std::optional<ChildExit> poll_exit();

    /// Sends SIGTERM, waits up to `timeout`, then SIGKILL; reaps. Returns how it ended.
    /// Idempotent: a second call returns the first result.
    ChildExit stop(std::chrono::milliseconds timeout);

    /// The child's notify listener fd (notify readiness), or -1; poll it to drain STATUS=
    /// messages via drain_notify().
    int notify_fd() const noexcept;
    /// Reads pending messages from the child (after READY); returns the last STATUS= text seen.
    std::optional<std::string> drain_notify();

private:
    pid_t pid_ = -1;
    Readiness ready_;
    std::unique_ptr<notify::Listener> listener_;
    std::optional<ChildExit> exit_;
    std::chrono::milliseconds stop_timeout_{5000};
    std::optional<std::string> pending_status_;  ///< STATUS= seen by wait_ready, not yet drained
};

/// Text for a Readiness in messages: "notify", "started", "tcp://HOST:PORT" or the http URL.
std::string describe_readiness(const Readiness& ready);

}  // namespace bartl
