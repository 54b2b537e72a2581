// The served application: a child process with its own NOTIFY_SOCKET, readiness detection,
// its output forwarded to the journal, and a graceful stop (SIGTERM, then SIGKILL after
// stop_timeout).
#pragma once

#include <array>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>
#include <functional>

#include "config/config.hpp"
#include "util/log.hpp"
#include "util/notify.hpp"
#include "util/process.hpp"

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
    /// Starts argv with `env` added to our environment, in `cwd` when set, as `credentials`
    /// when set (the readiness probe of ready = "command" runs the same way). For
    /// Readiness::Kind::notify the child gets NOTIFY_SOCKET pointing at a private listener
    /// created under `runtime_dir`, owned by the app's user; otherwise NOTIFY_SOCKET is
    /// removed from its environment. Its stdout and stderr are pipes whose lines bartld
    /// forwards (forward_output()) with SYSLOG_IDENTIFIER = command_name(argv, app_name): the
    /// program, or the script an interpreter runs, or `app_name` for inline code (core/
    /// command_name.hpp). Throws RuntimeError when it cannot be started, or when the app's user
    /// could not write to its notify socket.
    AppProcess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
               const std::optional<std::filesystem::path>& cwd, const Readiness& ready,
               const std::filesystem::path& runtime_dir, const std::optional<Credentials>& credentials = std::nullopt,
               std::string_view app_name = {});
    /// Stops the child if still running (stop() with the stop timeout, 5 s unless set).
    ~AppProcess();
    AppProcess(const AppProcess&) = delete;
    AppProcess& operator=(const AppProcess&) = delete;

    pid_t pid() const noexcept { return pid_; }
    /// What the app goes by in its forwarded lines and in messages (command_name()).
    const std::string& name() const noexcept { return name_; }

    /// The grace wait_ready() and the destructor give the child when they have to stop it
    /// (default 5 s; bartld sets [app] stop_timeout).
    void set_stop_timeout(std::chrono::milliseconds timeout) noexcept { stop_timeout_ = timeout; }

    /// Waits until the app is ready per its Readiness, polling every 50 ms:
    ///  - notify: READY=1 from the child;
    ///  - started: at once;
    ///  - tcp: a socket of the app's process tree listens on the address and port
    ///    (/proc/self/net/tcp{,6}, see listeners.hpp) and a connect succeeds;
    ///  - http: the same, and a GET answers 2xx;
    ///  - command: ready_command exits 0 (started every ready_interval, one at a time; a try
    ///    still running after 5 s is killed and counts as not ready).
    /// `tick` is called at least every second (for EXTEND_TIMEOUT_USEC/watchdog). Throws
    /// RuntimeError when `timeout` passes ("not ready after 90s", with the last attempt's
    /// error), when the child exits first (with its exit description), or at once when the
    /// tcp/http port is held by a process outside the app's tree (naming its PID and
    /// command); the child is then stopped.
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

    /// The read ends of the app's stdout and stderr pipes, -1 once closed: poll them for
    /// POLLIN and call forward_output().
    std::array<int, 2> output_fds() const noexcept { return {out_.fd, err_.fd}; }
    /// Forwards whatever the app has written, without blocking (log::ChildOutput). Called by
    /// wait_ready() and stop() too, so the app never blocks on a full pipe while bartld waits.
    void forward_output();

private:
    /// One output stream of the app.
    struct Output {
        int fd = -1;
        log::ChildOutput lines;
        Output(std::string identifier, log::Stream stream) : lines(std::move(identifier), stream) {}
    };
    struct Probe;

    void finish_output();
    bool probe_ready(std::string& error);
    void kill_probe() noexcept;
    bool wait_exited_forwarding(std::chrono::milliseconds timeout);
    bool owns_listener(std::string& error);

    pid_t pid_ = -1;
    Readiness ready_;
    SpawnSpec probe_spec_;                ///< how ready_command runs (as the app)
    std::optional<Credentials> credentials_;
    std::unique_ptr<Probe> probe_;
    std::chrono::steady_clock::time_point next_probe_{};
    std::string name_;
    Output out_, err_;
    std::unique_ptr<notify::Listener> listener_;
    std::optional<ChildExit> exit_;
    std::chrono::milliseconds stop_timeout_{5000};
    std::optional<std::string> pending_status_;  ///< STATUS= seen by wait_ready, not yet drained
};

/// How long one try of ready = "command" may run before it is killed.
inline constexpr std::chrono::milliseconds ready_command_try_timeout{5000};

/// Text for a Readiness in messages: "notify", "started", "tcp://HOST:PORT" or the http URL.
std::string describe_readiness(const Readiness& ready);

}  // namespace bartl
