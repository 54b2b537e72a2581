// Child processes: fork()+execve() with the user switch in between (posix_spawn(3) has no
// way to change the user). bartld is multi-threaded (sd-bus, the backup worker), so the
// child does nothing but async-signal-safe system calls on data prepared before fork(), and
// reports a failure back through a close-on-exec pipe, which closes at a successful exec.
#include "util/process.hpp"

#include <atomic>
#include <linux/close_range.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "core/command_name.hpp"
#include "core/duration.hpp"
#include "core/error.hpp"
#include "util/log.hpp"

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

/// A captured output stream: keeps the last `cap` bytes, and forwards lines when asked.
struct Capture {
    Fd fd;
    std::string data;
    std::size_t cap = 0;
    bool keep = true;                        ///< keep the bytes (for the result)
    std::optional<log::ChildOutput> forward; ///< set: forward each line

    void take(const char* p, std::size_t n) {
        if (keep) {
            data.append(p, n);
            // Trim in chunks so a chatty child costs amortised O(n), not O(n * cap).
            if (data.size() > 2 * cap + 4096)
                data.erase(0, data.size() - cap);
        }
        if (forward)
            forward->feed(std::string_view(p, n));
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
        if (forward)
            forward->finish();
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

namespace {

/// What the child reports when it cannot get to exec.
struct ChildFailure {
    enum Step : int { setgroups, setresgid, setresuid, chdir, must_write, exec, io } step;
    int error;  ///< errno
    int index;  ///< must_write: which path
};

/// Where execvp(3) would look for `prog`: itself when it holds a '/', else each PATH entry
/// (glibc's default "/bin:/usr/bin" when PATH is unset; an empty entry is the cwd).
std::vector<std::string> exec_candidates(const std::string& prog) {
    if (prog.find('/') != std::string::npos)
        return {prog};
    const char* env = std::getenv("PATH");
    const std::string_view path = env ? env : "/bin:/usr/bin";
    std::vector<std::string> out;
    std::size_t pos = 0;
    for (;;) {
        const auto colon = path.find(':', pos);
        const std::string_view dir = path.substr(pos, colon == std::string_view::npos ? colon : colon - pos);
        out.push_back(dir.empty() ? prog : std::string(dir) + "/" + prog);
        if (colon == std::string_view::npos)
            break;
        pos = colon + 1;
    }
    return out;
}

/// Makes `from` the child's descriptor `to`, without FD_CLOEXEC. Child side only.
bool move_fd(int from, int to) {
    if (from == to)
        return ::fcntl(to, F_SETFD, 0) == 0;
    return ::dup2(from, to) == to;
}

[[noreturn]] void child_fail(int report_fd, ChildFailure::Step step, int err, int index = 0) {
    const ChildFailure f{step, err, index};
    [[maybe_unused]] auto r = ::write(report_fd, &f, sizeof f);
    ::_exit(127);
}

}  // namespace

pid_t spawn_process(const SpawnSpec& spec) {
    if (spec.argv.empty() || spec.argv[0].empty())
        throw RuntimeError("cannot start a command: its argv is empty");
    const std::string& prog = spec.argv[0];
    const std::string as_user = spec.credentials ? fmt::format(" as user {}", spec.credentials->user) : "";
    if (spec.cwd) {
        // exec would report a bad cwd as the same ENOENT as a missing program; check it
        // first so the message names the right thing.
        struct stat st {};
        if (::stat(spec.cwd->c_str(), &st) < 0)
            throw RuntimeError(fmt::format("cannot start {}: working directory {}: {}", prog, *spec.cwd,
                                           errno_text(errno)));
        if (!S_ISDIR(st.st_mode))
            throw RuntimeError(
                fmt::format("cannot start {}: working directory {} is not a directory", prog, *spec.cwd));
    }

    // Everything the child needs is built here: after fork() it may not allocate.
    std::vector<std::string> env = build_env(spec.env, spec.unset_env);
    std::vector<char*> envp;
    for (auto& e : env)
        envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<char*> argv;
    for (const auto& a : spec.argv)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const std::vector<std::string> candidates = exec_candidates(prog);
    const int lock = g_lock_fd.load();
    // Descriptors from here up are closed at exec; the lock goes to 3 (dup2 clears
    // FD_CLOEXEC). Everything else inherited (sd-bus, sockets without CLOEXEC) would keep
    // resources alive and let the child act on them.
    const unsigned first_closed = lock >= 0 ? 4 : 3;
    const long open_max = ::sysconf(_SC_OPEN_MAX);
    const int fd_limit = open_max > 0 && open_max < 65536 ? int(open_max) : 65536;
    sigset_t empty;
    sigemptyset(&empty);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;

    int report[2];
    if (::pipe2(report, O_CLOEXEC) < 0)
        throw RuntimeError(fmt::format("cannot start {}: pipe: {}", prog, errno_text(errno)));
    Fd report_r(report[0]);
    // The write end must survive the child's dup2()s onto 0..3.
    Fd report_w(report[1] > 3 ? report[1] : ::fcntl(report[1], F_DUPFD_CLOEXEC, 4));
    if (report[1] <= 3)
        ::close(report[1]);
    if (report_w.get() < 0)
        throw RuntimeError(fmt::format("cannot start {}: fcntl: {}", prog, errno_text(errno)));

    const pid_t pid = ::fork();
    if (pid < 0)
        throw RuntimeError(fmt::format("cannot start {}: fork: {}", prog, errno_text(errno)));
    if (pid == 0) {
        const int rep = report_w.get();
        // Dispositions first, then the mask: a SIGTERM ignored or blocked by us (signalfd)
        // must not leak into the app.
        for (int sig = 1; sig < NSIG; ++sig)
            if (sig != SIGKILL && sig != SIGSTOP)
                ::sigaction(sig, &dfl, nullptr);  // EINVAL for glibc's internal signals
        ::sigprocmask(SIG_SETMASK, &empty, nullptr);
        ::setpgid(0, 0);
        if (spec.stdin_fd >= 0) {
            if (!move_fd(spec.stdin_fd, STDIN_FILENO))
                child_fail(rep, ChildFailure::io, errno);
        } else {
            const int null = ::open("/dev/null", O_RDONLY);
            if (null < 0 || !move_fd(null, STDIN_FILENO))
                child_fail(rep, ChildFailure::io, errno);
            if (null != STDIN_FILENO)
                ::close(null);
        }
        if (spec.stdout_fd >= 0 && !move_fd(spec.stdout_fd, STDOUT_FILENO))
            child_fail(rep, ChildFailure::io, errno);
        if (spec.stderr_fd >= 0 && !move_fd(spec.stderr_fd, STDERR_FILENO))
            child_fail(rep, ChildFailure::io, errno);
        if (lock >= 0 && !move_fd(lock, 3))
            child_fail(rep, ChildFailure::io, errno);
        if (::syscall(SYS_close_range, first_closed, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
            for (int fd = int(first_closed); fd < fd_limit; ++fd)
                ::fcntl(fd, F_SETFD, FD_CLOEXEC);  // kernels before 5.11
        if (const auto& c = spec.credentials) {
            // Raw system calls: glibc's wrappers would try to reach threads the child does not have.
            if (::syscall(SYS_setgroups, c->groups.size(), c->groups.data()) != 0)
                child_fail(rep, ChildFailure::setgroups, errno);
            if (::syscall(SYS_setresgid, c->gid, c->gid, c->gid) != 0)
                child_fail(rep, ChildFailure::setresgid, errno);
            if (::syscall(SYS_setresuid, c->uid, c->uid, c->uid) != 0)
                child_fail(rep, ChildFailure::setresuid, errno);
        }
        // As the app's user: a directory only root may enter is an error the operator sees now.
        if (spec.cwd && ::chdir(spec.cwd->c_str()) != 0)
            child_fail(rep, ChildFailure::chdir, errno);
        for (std::size_t i = 0; i < spec.must_write.size(); ++i)
            if (::access(spec.must_write[i].c_str(), W_OK) != 0)
                child_fail(rep, ChildFailure::must_write, errno, int(i));
        // As execvp(3): try each PATH candidate, report EACCES over a later ENOENT.
        int err = ENOENT;
        bool denied = false;
        for (const auto& c : candidates) {
            ::execve(c.c_str(), argv.data(), envp.data());
            err = errno;
            if (err == EACCES)
                denied = true;
            else if (err != ENOENT && err != ENOTDIR && err != ESTALE && err != ENODEV && err != ETIMEDOUT)
                break;
        }
        child_fail(rep, ChildFailure::exec, denied && (err == ENOENT || err == ENOTDIR) ? EACCES : err);
    }

    report_w.reset();
    ChildFailure f{};
    ssize_t n;
    do
        n = ::read(report_r.get(), &f, sizeof f);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return pid;  // EOF: the pipe closed at exec
    reap(pid);
    if (n != ssize_t(sizeof f))
        throw RuntimeError(fmt::format("cannot start {}: its start-up report was cut short", prog));
    const std::string why = errno_text(f.error);
    switch (f.step) {
    case ChildFailure::setgroups:
    case ChildFailure::setresgid:
    case ChildFailure::setresuid: {
        const char* call = f.step == ChildFailure::setgroups   ? "setgroups"
                           : f.step == ChildFailure::setresgid ? "setresgid"
                                                               : "setresuid";
        throw RuntimeError(fmt::format("cannot start {}{}: {}: {}{}", prog, as_user, call, why,
                                       f.error == EPERM ? " (bartld needs CAP_SETUID and CAP_SETGID to switch users)"
                                                        : ""));
    }
    case ChildFailure::chdir:
        throw RuntimeError(fmt::format("cannot start {}{}: working directory {}: {}", prog, as_user, *spec.cwd, why));
    case ChildFailure::must_write:
        throw RuntimeError(fmt::format("cannot start {}{}: it cannot write to {}: {}", prog, as_user,
                                       spec.must_write.at(std::size_t(f.index)), why));
    case ChildFailure::io:
        throw RuntimeError(fmt::format("cannot start {}: setting up its descriptors: {}", prog, why));
    case ChildFailure::exec:
        break;
    }
    throw RuntimeError(fmt::format("cannot start {}{}: {}", prog, as_user, why));
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

CommandResult run_command(const CommandSpec& spec, bool forward_output) {
    CommandResult result;
    result.timeout = spec.timeout;
    // A hook run by an interpreter goes by its script ("init"), not by "python3".
    const std::string identifier = spec.log_identifier.empty() ? command_name(spec.argv) : spec.log_identifier;

    Capture err, out;
    err.cap = out.cap = spec.max_output;
    out.keep = spec.capture_stdout;
    if (forward_output) {
        err.forward.emplace(identifier, log::Stream::err, spec.log_fields);
        if (!spec.capture_stdout)
            out.forward.emplace(identifier, log::Stream::out, spec.log_fields);
    }
    Fd err_w, out_w;
    {
        auto [r, w] = make_pipe("stderr");
        err.fd.reset(r);
        err_w.reset(w);
    }
    {
        auto [r, w] = make_pipe("stdout");
        out.fd.reset(r);
        out_w.reset(w);
    }

    SpawnSpec s;
    s.argv = spec.argv;
    s.env = spec.env;
    s.cwd = spec.cwd;
    s.credentials = spec.credentials;
    s.stdout_fd = out_w.get();
    s.stderr_fd = err_w.get();
    const pid_t pid = spawn_process(s);
    // Our copies of the write ends must go, or we would never see EOF.
    err_w.reset();
    out_w.reset();
    for (Capture* c : {&err, &out})
        if (c->forward)
            c->forward->set_pid(pid);

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
            throw RuntimeError(fmt::format("cannot poll the output of {}: {}", identifier, errno_text(errno)));
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

void lower_thread_priority(int increment) {
    if (increment <= 0) return;
    const auto tid = static_cast<id_t>(::gettid());
    errno = 0;
    const int now = ::getpriority(PRIO_PROCESS, tid);
    if (now == -1 && errno != 0) {
        log::warn(fmt::format("cannot read this thread's niceness: {}", errno_text(errno)));
        return;
    }
    const int want = std::min(19, now + increment);
    if (::setpriority(PRIO_PROCESS, tid, want) != 0)
        log::warn(fmt::format("cannot lower this thread's priority to niceness {}: {}", want, errno_text(errno)));
}

}  // namespace bartl
