"""Real child processes: starting them, their exit, their memory, their sessions.

bartld runs as a child of the test, its output in files, and every figure comes from the
kernel: the exit status and rusage from wait4(2), the peak RSS from /proc/PID/status.
"""
import os
import signal
import subprocess
import time

# Exit codes of bartl(7).
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_DOWNGRADE, EXIT_FOREIGN, EXIT_CONFIG = 0, 1, 64, 65, 66, 78


# What systemd gives the process of one service; a child of a test has it only when the test
# passes it on purpose.
SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID")


def bartld_env(log_level="debug", no_bus=None, extra=None):
    """The environment for a bartld: this process's without SYSTEMD_VARIABLES,
    BARTL_LOG_LEVEL=`log_level`, and with `no_bus` (a path where nothing listens)
    DBUS_SYSTEM_BUS_ADDRESS pointing there, so that it never reaches the host's system bus;
    `extra` last."""
    env = {k: v for k, v in os.environ.items() if k not in SYSTEMD_VARIABLES}
    env["BARTL_LOG_LEVEL"] = log_level
    if no_bus:
        env["DBUS_SYSTEM_BUS_ADDRESS"] = "unix:path=" + no_bus
    env.update(extra or {})
    return env


class Result(subprocess.CompletedProcess):
    """A finished process: subprocess.CompletedProcess (args, returncode, stdout and stderr as
    text) with elapsed (wall seconds from start to exit), maxrss_kib (peak RSS in KiB), killed
    (the test killed it) and cpu_s (user + system CPU seconds of it and the descendants it
    waited for, from wait4(2); None where not measured)."""

    def __init__(self, args, returncode, stdout, stderr, elapsed, maxrss_kib, killed=False, cpu_s=None):
        super().__init__(args, returncode, stdout, stderr)
        self.elapsed, self.maxrss_kib, self.killed, self.cpu_s = elapsed, maxrss_kib, killed, cpu_s

    def __repr__(self):
        return (f"Result(rc={self.returncode}, elapsed={self.elapsed:.2f}s, killed={self.killed})\n"
                f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr[-4000:]}")


def spawn(argv, env, stdin=None, stdout=None, stderr=None, session=False):
    """Starts ARGV (argv[0] a path) with posix_spawn(3) and returns its PID. glibc's
    posix_spawn returns only once the child has exec'd (CLONE_VFORK), so the moment it returns
    is when the program runs. stdin, stdout, stderr: file descriptors for 0, 1 and 2 (None:
    this process's). session: the child leads a session of its own (setsid), so that
    kill_session() reaches it and all it starts, as systemd's control group would. SIGPIPE
    and SIGXFSZ are default in the child, which Python ignores (as subprocess does)."""
    actions = [(os.POSIX_SPAWN_DUP2, fd, n) for n, fd in enumerate((stdin, stdout, stderr)) if fd is not None]
    return os.posix_spawn(argv[0], argv, env, file_actions=actions, setsid=session,
                          setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))


def exited(pid):
    """Whether child `pid` has exited (it stays a zombie for wait4 to collect)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


class Process:
    """A child started with spawn() in a session of its own, its stdout and stderr in fresh
    files in `log_dir` (kept there for a post-mortem); the clock starts before it does."""

    def __init__(self, argv, env, log_dir):
        tag = f"{time.monotonic_ns()}"
        self.argv = argv
        # errors="replace": messages may quote bytes of a corrupt backup or a non-UTF-8 name.
        self.out = open(os.path.join(log_dir, f"{tag}.out"), "w+", errors="replace")
        self.err = open(os.path.join(log_dir, f"{tag}.err"), "w+", errors="replace")
        self.t0 = time.monotonic()
        self.pid = spawn(argv, env, stdout=self.out.fileno(), stderr=self.err.fileno(), session=True)

    def exited(self):
        return exited(self.pid)

    def wait(self, killed=False):
        """Waits for the exit; Result with ru_maxrss of wait4 as maxrss_kib. (That counts the
        address space it was spawned from too: exec keeps the old one's high-water mark.)"""
        _, status, ru = os.wait4(self.pid, 0)
        elapsed = time.monotonic() - self.t0
        self.out.seek(0)
        self.err.seek(0)
        r = Result(self.argv, os.waitstatus_to_exitcode(status), self.out.read(), self.err.read(), elapsed,
                   ru.ru_maxrss, killed, ru.ru_utime + ru.ru_stime)
        self.out.close()
        self.err.close()
        return r


def cpu_seconds(pid):
    """User + system CPU seconds process `pid` has used so far (utime + stime of /proc/PID/stat,
    proc(5)), its threads included; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # fields after "comm)": state is fields[0], so utime (field 14) and stime (15) are [11], [12].
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid, keys=("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "VmSize", "Threads")):
    """The `keys` fields of /proc/PID/status as numbers (KiB; Threads a count); {} when the
    process is gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in keys:
                    out[key] = int(value.split()[0])
    except (OSError, ValueError):
        pass
    return out


def run(argv, env, log_dir, timeout=600):
    """Runs ARGV to completion in a session of its own (Process); Result whose maxrss_kib is
    the peak VmHWM of the program's own address space, sampled every 5 ms (ru_maxrss would
    count the address space of this process too). Past `timeout` seconds (None: no limit)
    its process group is SIGKILLed (returncode -9)."""
    p = Process(argv, env, log_dir)
    deadline = p.t0 + timeout if timeout is not None else float("inf")
    hwm = 0
    while True:
        hwm = max(hwm, proc_status(p.pid, ("VmHWM",)).get("VmHWM", 0))
        if p.exited():
            break
        if time.monotonic() > deadline:
            os.killpg(p.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    r = p.wait()
    r.maxrss_kib = hwm
    return r


def run_killed(argv, env, log_dir, delay):
    """Starts ARGV (Process) and kills its whole session after `delay` seconds. Result.killed
    is False when it had already exited by then (the kill then missed)."""
    p = Process(argv, env, log_dir)
    while time.monotonic() - p.t0 < delay:
        if p.exited():
            return p.wait(killed=False)
        time.sleep(min(0.002, max(0.0, delay - (time.monotonic() - p.t0))))
    killed = not p.exited()
    kill_session(p.pid)
    return p.wait(killed=killed)


def run_session(argv, env, log_dir):
    """Runs ARGV to completion (Process), then waits until nothing of its session is left,
    SIGKILLing stragglers: a process that kills the session from inside (a simulated power
    loss) may still be dying, holding what it held, when the leader is gone."""
    p = Process(argv, env, log_dir)
    r = p.wait()
    kill_session(p.pid)
    return r


def session_members(sid):
    """[(PID, process group)] of the live processes of session `sid`."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields after "comm)": state ppid pgrp session ...
        if fields[0] != "Z" and int(fields[3]) == sid:
            out.append((int(d), int(fields[2])))
    return out


def kill_session(sid):
    """SIGKILL every process of session `sid` (bartld runs as a session leader, as under
    systemd): bartld, and the hooks it started in their own process groups. This is what
    systemd's KillMode=control-group does to a service whose main process is killed."""
    for _ in range(1000):
        try:
            os.killpg(sid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        members = [m for m in session_members(sid) if m[0] != sid]
        if not members:
            return
        for _, pgid in members:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)
    raise RuntimeError(f"session {sid} does not die")
