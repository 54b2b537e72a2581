// Child processes: posix_spawn(3) rather than fork()+exec, because bartld is multi-threaded
// (sd-bus) and glibc's posix_spawn both avoids running our code between fork and exec and
// reports exec errors from the child (it is the CLOEXEC-pipe trick, done by the library).
#include <atomic>
#include "util/process.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "core/duration.hpp"
#include "core/error.hpp"

extern char** environ;

namespace bartl {

namespace {
std::atomic<int> g_lock_fd{-1};
}  // namespace

void set_inherited_lock_fd(int fd) noexcept { g_lock_fd = fd; }
namespace {

using Clock = std::chrono::steady_clock;

/// Closes a file descriptor when it goes out of scope.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) noexcept : fd_(fd) {}
    ~Fd() { reset(); }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const noexcept { return fd_; }
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

/// pidfd_open(2). glibc 2.36's <sys/pidfd.h> lacks extern "C" (fixed in 2.37), so C++ cannot
/// link against it; -1 on kernels before 5.3, and callers then fall back to polling.
int open_pidfd(pid_t pid) { return int(::syscall(SYS_pidfd_open, pid, 0)); }

std::string errno_text(int err) { return std::strerror(err); }

/// Builds the child's environment: ours, minus `unset`, with `overrides` applied.
std::vector<std::string> build_env(const std::map<std::string, std::string>& overrides,
                                   const std::vector<std::string>& unset) {
    std::vector<std::string> out;
    for (char** e = environ; e && *e; ++e) {
        std::string_view entry(*e);
        const auto eq = entry.find('=');
        const std::string name(entry.substr(0, eq));
        if (overrides.count(name))
            continue;
        bool drop = false;
        for (const auto& u : unset)
            drop = drop || u == name;
        if (!drop)
            out.emplace_back(entry);
    }
    for (const auto& [k, v] : overrides)
        out.push_back(k + "=" + v);
    return out;
}

/// Remaining time until `deadline` as a poll(2) timeout in ms, rounded up so that we never
/// wake just before it; -1 for "no deadline".
int poll_timeout(std::optional<Clock::time_point> deadline) {
    if (!deadline)
        return -1;
    const auto left = *deadline - Clock::now();
    if (left <= Clock::duration::zero())
        return 0;
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    return ms > 60'000 ? 60'000 : int(ms);
}

/// Has child `pid` exited? Does not reap it.
bool has_exited(pid_t pid) {
    siginfo_t info{};
    for (;;) {
        if (::waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0)
            return info.si_pid == pid;
        if (errno != EINTR)
            throw RuntimeError(fmt::format("cannot wait for process {}: {}", pid, errno_text(errno)));
    }
}

/// Reaps child `pid` (blocking) and returns its raw wait status.
int reap(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            throw RuntimeError(fmt::format("cannot reap process {}: {}", pid, errno_text(errno)));
    }
    return status;
}

/// A captured output stream: keeps the last `cap` bytes, and splits lines for echoing.
struct Capture {
    Fd fd;
    std::string data;
    std::size_t cap = 0;
    bool echo = false;
    std::string prefix;   ///< "[name] "
    std::string partial;  ///< echo: the current unfinished line

    void take(const char* p, std::size_t n) {
        data.append(p, n);
        // Trim in chunks so a chatty child costs amortised O(n), not O(n * cap).
        if (data.size() > 2 * cap + 4096)
            data.erase(0, data.size() - cap);
        if (echo)
            echo_lines(p, n);
    }

    void echo_lines(const char* p, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) {
            partial.push_back(p[i]);
            // A line without end (progress bars, binary junk) is echoed in pieces instead of
            // growing without bound.
            if (p[i] == '\n' || partial.size() >= 4096)
                flush_line();
        }
    }

    void flush_line() {
        if (partial.empty())
            return;
        if (partial.back() != '\n')
            partial.push_back('\n');
        // One write per line keeps lines whole when other threads also write to stderr.
        const std::string line = prefix + partial;
        [[maybe_unused]] auto r = ::write(STDERR_FILENO, line.data(), line.size());
        partial.clear();
    }

    /// Reads what is available; returns false at EOF (and closes the fd).
    bool read_some() {
        char buf[16384];
        for (;;) {
            const ssize_t n = ::read(fd.get(), buf, sizeof buf);
            if (n > 0) {
                take(buf, std::size_t(n));
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return true;
            fd.reset();  // EOF, or an error we can do nothing about
            return false;
        }
    }

    std::string finish() {
        if (echo)
            flush_line();
        if (data.size() > cap)
            data.erase(0, data.size() - cap);
        return std::move(data);
    }
};

/// A pipe whose read end is ours (non-blocking) and whose write end goes to the child.
std::pair<int, int> make_pipe(const char* what) {
    int fds[2];
    // CLOEXEC on both ends: the child gets the write end by dup2 (which clears the flag),
    // and children spawned by other threads do not inherit either end.
    if (::pipe2(fds, O_CLOEXEC) < 0)
        throw RuntimeError(fmt::format("cannot create a pipe for {}: {}", what, errno_text(errno)));
    ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    return {fds[0], fds[1]};
}

std::string basename_of(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::string describe_exit(int exit_status, int term_signal) {
    if (term_signal == 0)
        return fmt::format("exited with status {}", exit_status);
    const char* abbrev = ::sigabbrev_np(term_signal);
    return abbrev ? fmt::format("killed by signal {} (SIG{})", term_signal, abbrev)
                  : fmt::format("killed by signal {}", term_signal);
}

std::string CommandResult::describe() const {
    if (stopped) return "stopped on request";
    if (timed_out)
        return fmt::format("timed out after {}", format_duration(timeout));
    return describe_exit(exit_status, term_signal);
}

pid_t spawn_process(const SpawnSpec& spec) {
    if (spec.argv.empty() || spec.argv[0].empty())
        throw RuntimeError("cannot start a command: its argv is empty");
    const std::string& prog = spec.argv[0];
    if (spec.cwd) {
        // posix_spawn reports a bad cwd as the same ENOENT as a missing program; check it
        // first so the message names the right thing.
        struct stat st {};
        if (::stat(spec.cwd->c_str(), &st) < 0)
            throw RuntimeError(fmt::format("cannot start {}: working directory {}: {}", prog, *spec.cwd,
                                           errno_text(errno)));
        if (!S_ISDIR(st.st_mode))
            throw RuntimeError(
                fmt::format("cannot start {}: working directory {} is not a directory", prog, *spec.cwd));
    }

    std::vector<std::string> env = build_env(spec.env, spec.unset_env);
    std::vector<char*> envp;
    for (auto& e : env)
        envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<char*> argv;
    for (const auto& a : spec.argv)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    if (spec.stdin_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, spec.stdin_fd, STDIN_FILENO);
    else
        posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    if (spec.stdout_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, spec.stdout_fd, STDOUT_FILENO);
    if (spec.stderr_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, spec.stderr_fd, STDERR_FILENO);
    // The instance lock goes to fd 3 (dup2 clears FD_CLOEXEC; going through fd 4 when it is
    // already 3, since dup2(3, 3) would keep the flag). Everything else inherited (sd-bus,
    // sockets without CLOEXEC) would keep resources alive and let the child act on them.
    int first_closed = STDERR_FILENO + 1;
    if (const int lock = g_lock_fd.load(); lock >= 0) {
        if (lock == 3) {
            posix_spawn_file_actions_adddup2(&fa, lock, 4);
            posix_spawn_file_actions_adddup2(&fa, 4, 3);
        } else {
            posix_spawn_file_actions_adddup2(&fa, lock, 3);
        }
        first_closed = 4;
    }
    posix_spawn_file_actions_addclosefrom_np(&fa, first_closed);
    if (spec.cwd)
        posix_spawn_file_actions_addchdir_np(&fa, spec.cwd->c_str());

    sigset_t empty, all;
    sigemptyset(&empty);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &empty);
    // SIGPIPE ignored by us (or SIGTERM blocked for a signal loop) must not leak into the app.
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

    pid_t pid = -1;
    const int rc = ::posix_spawnp(&pid, prog.c_str(), &fa, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0)
        throw RuntimeError(fmt::format("cannot start {}: {}", prog, errno_text(rc)));
    return pid;
}

bool wait_exited(pid_t pid, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    Fd pidfd(open_pidfd(pid));
    for (;;) {
        if (has_exited(pid))
            return true;
        const int left = poll_timeout(deadline);
        if (left == 0)
            return false;
        if (pidfd.get() >= 0) {
            pollfd p{pidfd.get(), POLLIN, 0};
            ::poll(&p, 1, left);
        } else {
            // Kernels without pidfd: short sleeps are fine for the few stops per run.
            ::poll(nullptr, 0, left < 20 ? left : 20);
        }
    }
}

CommandResult run_command(const CommandSpec& spec, bool echo_stderr) {
    CommandResult result;
    result.timeout = spec.timeout;
    const std::string name = spec.argv.empty() ? std::string() : basename_of(spec.argv[0]);

    Capture err, out;
    err.cap = out.cap = spec.max_output;
    err.echo = echo_stderr;
    err.prefix = "[" + name + "] ";
    Fd err_w, out_w;
    {
        auto [r, w] = make_pipe("stderr");
        err.fd.reset(r);
        err_w.reset(w);
    }
    if (spec.capture_stdout) {
        auto [r, w] = make_pipe("stdout");
        out.fd.reset(r);
        out_w.reset(w);
    }

    SpawnSpec s;
    s.argv = spec.argv;
    s.env = spec.env;
    s.cwd = spec.cwd;
    s.stdout_fd = out_w.get();
    s.stderr_fd = err_w.get();
    const pid_t pid = spawn_process(s);
    // Our copies of the write ends must go, or we would never see EOF.
    err_w.reset();
    out_w.reset();

    Fd pidfd(open_pidfd(pid));
    std::optional<Clock::time_point> deadline;
    if (spec.timeout.count() > 0)
        deadline = Clock::now() + spec.timeout;
    bool killed = false;

    for (;;) {
        pollfd fds[3];
        nfds_t n = 0;
        if (err.fd.get() >= 0)
            fds[n++] = {err.fd.get(), POLLIN, 0};
        if (out.fd.get() >= 0)
            fds[n++] = {out.fd.get(), POLLIN, 0};
        if (pidfd.get() >= 0)
            fds[n++] = {pidfd.get(), POLLIN, 0};
        int wait_ms = poll_timeout(deadline);
        // Without a pidfd, an exit is only noticed by looking; a grandchild holding the pipes
        // open must not hide it.
        if (pidfd.get() < 0 && (wait_ms < 0 || wait_ms > 100))
            wait_ms = 100;
        if (spec.stop_requested && (wait_ms < 0 || wait_ms > 250))
            wait_ms = 250;
        if (::poll(fds, n, wait_ms) < 0 && errno != EINTR)
            throw RuntimeError(fmt::format("cannot poll the output of {}: {}", name, errno_text(errno)));
        if (err.fd.get() >= 0)
            err.read_some();
        if (out.fd.get() >= 0)
            out.read_some();

        // Stop at the child's exit, not at EOF: a daemonised grandchild may keep the pipes
        // open for ever. Whatever the child wrote is already in the pipes and read below.
        if (has_exited(pid))
            break;
        if (!result.timed_out && !result.stopped && spec.stop_requested && spec.stop_requested()) {
            result.stopped = true;
            ::kill(-pid, SIGTERM);
            deadline = Clock::now() + spec.kill_grace;
        } else if (deadline && Clock::now() >= *deadline) {
            if (!result.timed_out && !result.stopped) {
                result.timed_out = true;
                ::kill(-pid, SIGTERM);
                deadline = Clock::now() + spec.kill_grace;
            } else if (!killed) {
                killed = true;
                ::kill(-pid, SIGKILL);
                deadline.reset();
            }
        }
    }

    // The leader is a zombie, so its pgid cannot have been reused yet: make sure nothing of
    // the group survives it. A hook's leftovers would go on changing the state after bartld
    // moved on, and hold the instance lock they inherited (set_inherited_lock_fd()).
    ::kill(-pid, SIGKILL);
    if (err.fd.get() >= 0)
        err.read_some();
    if (out.fd.get() >= 0)
        out.read_some();

    const int status = reap(pid);
    if (WIFEXITED(status))
        result.exit_status = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        result.term_signal = WTERMSIG(status);
    result.err = err.finish();
    result.out = out.finish();
    return result;
}

}  // namespace bartl
