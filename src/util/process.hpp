// Running hooks and helper commands as child processes (fork+exec, optionally as another user).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace bartl {

/// Result of a finished command.
struct CommandResult {
    int exit_status = -1;   ///< exit code when exited normally, else -1
    int term_signal = 0;    ///< signal number when killed by a signal, else 0
    bool timed_out = false; ///< killed by us after the timeout
    bool stopped = false;   ///< stopped by us because CommandSpec::stop_requested said so
    std::chrono::milliseconds timeout{0};  ///< the timeout that applied (for describe())
    std::string out;        ///< captured stdout (when requested), capped at max_output bytes
    std::string err;        ///< captured stderr, capped at max_output bytes (the tail is kept)

    bool ok() const noexcept { return exit_status == 0 && !timed_out && !stopped; }
    /// "exited with status 3", "killed by signal 9 (SIGKILL)", "timed out after 10s",
    /// "stopped on request".
    std::string describe() const;
};

/// The user a child runs as: bartld switches to it in the child, after fork() and before
/// exec (setgroups(2), setresgid(2), setresuid(2)), as systemd's User=/Group= do.
struct Credentials {
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;  ///< supplementary groups (getgrouplist(3) of the user)
    std::string user;           ///< user name, for messages
};

/// How to run a command.
struct CommandSpec {
    std::vector<std::string> argv;              ///< argv[0] is a path or a name looked up in PATH
    std::map<std::string, std::string> env;     ///< added to (overriding) the inherited environment
    std::optional<std::string> cwd;
    std::optional<Credentials> credentials;     ///< run as this user; unset = as bartld
    std::chrono::milliseconds timeout{0};       ///< 0 = no timeout; on expiry SIGTERM, then SIGKILL after 5 s
    bool capture_stdout = false;                ///< else stdout is forwarded like stderr
    std::size_t max_output = 64 * 1024;         ///< bytes kept of each captured stream
    /// Grace between SIGTERM and SIGKILL after a timeout or a stop request (5 s; tests shorten it).
    std::chrono::milliseconds kill_grace{5000};
    /// Polled at least every 250 ms while the command runs; once it returns true the process
    /// group gets SIGTERM, then SIGKILL after kill_grace, and the result is `stopped`
    /// (SIGTERM to bartld during a long hook or migration step). Empty = never.
    std::function<bool()> stop_requested;
    /// SYSLOG_IDENTIFIER= (and "[NAME] " prefix) of the forwarded lines; "" = command_name(argv):
    /// the base name of argv[0], or of the script when argv[0] is an interpreter.
    std::string log_identifier;
    /// Journal fields added to each forwarded line (e.g. BARTL_HOOK=pre_backup).
    std::vector<std::pair<std::string, std::string>> log_fields;
};

/// Runs a command to completion. stderr is always captured; when `forward_output`, every
/// line of stderr, and of stdout unless it is captured, is also forwarded as it arrives
/// (log::ChildOutput: tagged journal entries, else "[name] line" on our stderr); stdout that
/// is neither captured nor forwarded is discarded. Throws RuntimeError when it cannot be
/// started (naming argv[0] and errno text); a non-zero exit is reported in the result, not
/// thrown. The child gets stdin from /dev/null, its own process group (a timeout signals the
/// whole group, so grandchildren die too), an empty signal mask, default signal
/// dispositions and no file descriptors above 2 (but the instance lock, see
/// set_inherited_lock_fd()). A name without '/' in argv[0] is looked up in our PATH.
CommandResult run_command(const CommandSpec& spec, bool forward_output = true);

/// How to start a child with spawn_process(): the building block of run_command() and
/// AppProcess.
struct SpawnSpec {
    std::vector<std::string> argv;           ///< argv[0] is a path or a name looked up in our PATH
    std::map<std::string, std::string> env;  ///< added to (overriding) the inherited environment
    std::vector<std::string> unset_env;      ///< names removed from the inherited environment
    std::optional<std::string> cwd;          ///< working directory of the child (entered as `credentials`)
    std::optional<Credentials> credentials;  ///< the user the child runs as; unset = ours
    /// Paths the child, once it runs as `credentials`, must be able to write to (access(2)
    /// W_OK), else the start fails naming the path: the app's NOTIFY_SOCKET, which an app that
    /// cannot reach it would only report as "sd_notify: -13" while bartld waits.
    std::vector<std::string> must_write;
    int stdin_fd = -1;   ///< becomes the child's fd 0; -1 = /dev/null
    int stdout_fd = -1;  ///< becomes the child's fd 1; -1 = inherit ours
    int stderr_fd = -1;  ///< becomes the child's fd 2; -1 = inherit ours
};

/// Registers the instance lock's fd (-1 to forget it): every child spawned from then on gets
/// it as fd 3, so the flock(2) lasts as long as any hook or app process bartld started. A
/// bartld killed with SIGKILL therefore cannot be replaced by a second one while its hook
/// still changes the state.
void set_inherited_lock_fd(int fd) noexcept;

/// Starts a child as the leader of a new process group (pgid == pid), with an empty signal
/// mask, every signal at its default disposition and every fd above 2 closed except the
/// instance lock (fd 3, see set_inherited_lock_fd()), running as `spec.credentials` when set.
/// fork()+execve() rather than posix_spawn(3), which cannot switch the user; the child runs
/// only async-signal-safe system calls, as bartld is multi-threaded. Returns its PID; the
/// caller must reap it. Failures in the child are reported back over a close-on-exec pipe,
/// so a missing or non-executable program throws RuntimeError "cannot start ARGV0:
/// <strerror>", a failed user switch "cannot start ARGV0 as user U: setresuid: <strerror>",
/// a working directory the user cannot enter or a `must_write` path it cannot write names
/// that path; none leaves a child behind. A missing cwd throws RuntimeError naming the
/// directory.
pid_t spawn_process(const SpawnSpec& spec);

/// Waits up to `timeout` for child `pid` to exit, without reaping it (waitid(WNOWAIT)), so its
/// PID and process group id stay reserved for a following kill(-pid, ...). Returns true when
/// it has exited. Throws RuntimeError when `pid` is not our child.
bool wait_exited(pid_t pid, std::chrono::milliseconds timeout);

/// Text for how a process ended, used in operator messages: "exited with status 3" when
/// `term_signal` is 0, else "killed by signal 9 (SIGKILL)".
std::string describe_exit(int exit_status, int term_signal);

/// Adds `increment` (0..19) to the calling thread's niceness, at most 19 (setpriority(2) on
/// the thread ID: on Linux niceness is per thread). Threads and processes it creates
/// afterwards inherit the new value; other threads keep theirs. Lowering is always allowed;
/// a failure (a seccomp filter, say) is logged as a warning and the thread goes on as it was.
void lower_thread_priority(int increment);

}  // namespace bartl
