"""Integration-test helpers: real processes, real sockets, no mocks.

Every integration test builds on these: a temporary stack of the example notes app rendered
for a private root directory, a real sd_notify datagram listener standing in for systemd, and
bartld started as a child process. Paths come from the environment meson sets:
BARTLD (the built daemon), BARTL_SOURCE_ROOT (the checkout).

Memory checkers (README.md, Tests): BARTL_TEST_WRAPPER (e.g. "valgrind --leak-check=full ...")
runs every bartld and bartlctl the tests start under that command, with deadlines stretched by
BARTL_TEST_TIMEOUT_FACTOR (default 10 with a wrapper, else 1). Valgrind logs and ASan/LSan/UBSan
reports go to a private directory, and a test during which any process reported an error
fails with the report (CheckedTest); one reported outside a test fails the program at exit.
"""
import atexit
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

SOURCE_ROOT = os.environ.get("BARTL_SOURCE_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BARTLD = os.environ.get("BARTLD", os.path.join(SOURCE_ROOT, "build", "src", "daemon", "bartld"))
EXAMPLES = os.path.join(SOURCE_ROOT, "examples", "notes")

# Exit codes of bartl(7).
EXIT_RUNTIME, EXIT_USAGE, EXIT_DOWNGRADE, EXIT_FOREIGN, EXIT_CONFIG = 1, 64, 65, 66, 78


# --- Memory checkers: sanitizers and BARTL_TEST_WRAPPER (valgrind) -------------------------

WRAPPER = shlex.split(os.environ.get("BARTL_TEST_WRAPPER", ""))
TIME_FACTOR = float(os.environ.get("BARTL_TEST_TIMEOUT_FACTOR") or (10 if WRAPPER else 1))

# Reports land here, never in the stderr a test reads. World-writable (sticky) because some
# tests run bartlctl as nobody.
REPORT_DIR = tempfile.mkdtemp(prefix="bartl-reports-")
os.chmod(REPORT_DIR, 0o1777)
for _var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
    # The last log_path wins; the sanitizer appends ".PID". No effect on binaries built
    # without sanitizers.
    _opts = os.environ.get(_var, "")
    os.environ[_var] = (_opts + ":" if _opts else "") + "log_path=" + os.path.join(REPORT_DIR, _var.split("_")[0].lower())
if WRAPPER and os.path.basename(WRAPPER[0]) == "valgrind" and not any(a.startswith("--log-") for a in WRAPPER):
    WRAPPER.insert(1, "--log-file=" + os.path.join(REPORT_DIR, "valgrind.%p"))

# Lines of a memcheck error, for logs of processes that died without their ERROR SUMMARY.
_VALGRIND_ERROR = re.compile(r"^==\d+== (Invalid |Conditional jump|Use of uninitialised|Syscall param|Mismatched free|"
                             r"Source and destination overlap|Argument .* of function|Process terminating)", re.M)


def command(program, *args):
    """The argv that runs PROGRAM ARGS under BARTL_TEST_WRAPPER, if one is set. For bartld and
    bartlctl only: tools the tests merely use are not ours to check."""
    return [*WRAPPER, program, *args]


def scaled(seconds):
    """A deadline of `seconds` stretched by TIME_FACTOR for slow memory checkers. Only for
    upper bounds (timeouts, deadlines): a lower bound a test asserts stays as it is."""
    return seconds * TIME_FACTOR


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def memory_reports():
    """Sanitizer and valgrind error reports written since the last call, as one text ("" for
    none). Every finished report is consumed; clean valgrind logs are dropped, and logs of
    processes still running are left for the next call."""
    out = []
    for name in sorted(os.listdir(REPORT_DIR)):
        path = os.path.join(REPORT_DIR, name)
        with open(path, errors="replace") as f:
            text = f.read()
        if name.startswith("valgrind."):
            summary = re.search(r"ERROR SUMMARY: (\d+) errors", text)
            if summary is None and _alive(int(name.split(".")[-1])):
                continue
            failed = int(summary.group(1)) > 0 if summary else _VALGRIND_ERROR.search(text) is not None
        else:
            failed = True  # a sanitizer writes a log only to report an error
        os.remove(path)
        if failed:
            out.append(f"--- {path} ---\n{text}")
    return "\n".join(out)


_outside_tests = []  # reports found when a test began: from module code, setUpClass, ...


@atexit.register
def _reports_at_exit():
    reports = "\n".join(r for r in _outside_tests + [memory_reports()] if r)
    if reports:
        sys.stderr.write(f"memory errors reported outside any test (setUpClass, helpers):\n{reports}\n")
        sys.stderr.flush()
        sys.stdout.flush()
        shutil.rmtree(REPORT_DIR, ignore_errors=True)
        os._exit(1)
    shutil.rmtree(REPORT_DIR, ignore_errors=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NotifyListener:
    """A real NOTIFY_SOCKET: an AF_UNIX datagram socket recording every message with its arrival time."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages = []  # (monotonic time, text)
        self.lock = threading.Lock()
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append((time.monotonic(), data.decode(errors="replace")))

    def texts(self):
        with self.lock:
            return [m for _, m in self.messages]

    def first_time(self, line):
        """Arrival time of the first message holding `line` (e.g. "READY=1"), or None."""
        with self.lock:
            for t, m in self.messages:
                if line in m.split("\n"):
                    return t
        return None

    def statuses(self):
        out = []
        for m in self.texts():
            for line in m.split("\n"):
                if line.startswith("STATUS="):
                    out.append(line[len("STATUS="):])
        return out

    def wait_for(self, line, timeout=30):
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            if self.first_time(line) is not None:
                return True
            time.sleep(0.02)
        return False

    def close(self):
        self.stopped = True
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class HostView:
    """Another machine that shares a stack's paths: bartld (and bartlctl) run in a private mount
    namespace in which the directory `shared` (one that holds the state paths and bartl_dir,
    e.g. ROOT/var/lib) is this host's own directory DIR/view, and under the host name `name`
    (a UTS namespace). Everything else, the store above all, stays shared, as a network
    store would be; two hosts with the same configuration then have the same state paths but
    each its own state, as two real servers do. Needs root (unshare, mount)."""

    def __init__(self, name, directory, shared):
        self.name = name
        self.dir = directory  # the host's own files: its config, notify socket, log
        self.view = os.path.join(directory, "view")
        self.shared = shared
        os.makedirs(self.view, exist_ok=True)
        os.makedirs(shared, exist_ok=True)

    def wrap(self, argv):
        """The argv that runs ARGV as this host: same PID (unshare and sh exec), so signals
        reach bartld itself."""
        script = 'hostname "$1" && mount --bind "$2" "$3" && shift 3 && exec "$@"'
        return ["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", script, "host-view",
                self.name, self.view, self.shared, *argv]

    def here(self, path):
        """Where the test (outside the namespace) sees `path` as this host sees it."""
        rel = os.path.relpath(path, self.shared)
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            return path  # outside the view: shared by every host
        return os.path.normpath(os.path.join(self.view, rel))


class Stack:
    """One instance of the example notes app under a private root directory. With `host` (a
    HostView) it is that host's instance over a root other stacks may share: its config,
    notify socket and log live in the host's directory, and bartld runs in the host's view."""

    def __init__(self, root, version="1.0.0", port=None, name="notes", host=None):
        self.root = root
        self.host = host
        home = host.dir if host else root
        self.port = port or free_port()
        self.config = os.path.join(home, "etc", f"{name}.toml")
        os.makedirs(os.path.dirname(self.config), exist_ok=True)
        self.render(version)
        self.state = os.path.join(root, "var", "lib", "notes")
        self.bartl_dir = os.path.join(root, "var", "lib", "bartl", "notes")
        self.store = os.path.join(root, "backups")
        # The backup disk is mounted and empty, as after installing the package; tests of an
        # unreachable store remove it.
        os.makedirs(self.store, exist_ok=True)
        self.notify = NotifyListener(home)
        self.proc = None
        self.log_path = os.path.join(home, "bartld.log")
        self.init_store()

    def here(self, path):
        """Where the test sees `path` (a path as bartld sees it): another place for a HostView."""
        return self.host.here(path) if self.host else path

    def argv(self, program, *args):
        """The argv that runs PROGRAM ARGS (bartld or bartlctl) as this stack's host."""
        argv = command(program, *args)
        return self.host.wrap(argv) if self.host else argv

    def init_store(self):
        """The one-time `bartld --init-store` an operator runs for a new store."""
        r = self.run("--init-store", timeout=60)
        if r.returncode != 0:
            raise AssertionError(f"--init-store failed ({r.returncode}): {r.stderr}")

    def render(self, version, **overrides):
        subprocess.run([os.path.join(EXAMPLES, "render-config"), self.root, str(self.port), version, self.config],
                       check=True)
        if overrides:
            edit_config(self.config, overrides)
        self.version = version

    def env(self, notify=True, extra=None):
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        if notify:
            env["NOTIFY_SOCKET"] = self.notify.path
        env["BARTL_LOG_LEVEL"] = "debug"
        # Never the host's system bus: a test that wants a bus passes PrivateBus.env().
        env["DBUS_SYSTEM_BUS_ADDRESS"] = "unix:path=" + os.path.join(self.root, "no-system-bus")
        env.update(extra or {})
        return env

    def run(self, *args, timeout=120, notify=False, extra_env=None):
        """Runs bartld --config CONFIG ARGS to completion; returns CompletedProcess (text)."""
        # errors="replace": messages may quote bytes of a corrupt backup or a non-UTF-8 file name.
        return subprocess.run(self.argv(BARTLD, "--config", self.config, *args), capture_output=True, text=True,
                              errors="replace", timeout=scaled(timeout), env=self.env(notify, extra_env))

    def ctl(self, *args, bus=None, timeout=60):
        """Runs bartlctl ARGS as this stack's host (against `bus` when given); CompletedProcess."""
        env = dict(os.environ)
        env["DBUS_SYSTEM_BUS_ADDRESS"] = "unix:path=" + os.path.join(self.root, "no-system-bus")
        if bus:
            env.update(bus.env())
        return subprocess.run(self.argv(BARTLCTL, *args), capture_output=True, text=True, errors="replace",
                              timeout=scaled(timeout), env=env)

    def start(self, *args, extra_env=None):
        """Starts the daemon in the background (stdout+stderr to bartld.log)."""
        with open(self.log_path, "a") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(self.argv(BARTLD, "--config", self.config, *args), stdout=log,
                                         stderr=subprocess.STDOUT, env=self.env(True, extra_env))
        return self.proc

    def wait_ready(self, timeout=60):
        timeout = scaled(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.notify.first_time("READY=1") is not None:
                return True
            if self.proc and self.proc.poll() is not None:
                raise AssertionError(f"bartld exited {self.proc.returncode} before READY:\n{self.read_log()}")
            time.sleep(0.02)
        raise AssertionError(f"no READY=1 within {timeout}s:\n{self.read_log()}")

    def stop(self, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(scaled(timeout))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        self.notify.messages.clear()
        return rc

    def read_log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def marker(self):
        with open(os.path.join(self.here(self.bartl_dir), "marker.json")) as f:
            return json.load(f)

    def backups(self):
        """Sidecar manifests in the store, newest first."""
        out = []
        if not os.path.isdir(self.store):
            return out
        for n in os.listdir(self.store):
            if n.endswith(".json") and not n.startswith(".") and n != "bartl-store.json":
                with open(os.path.join(self.store, n)) as f:
                    out.append(json.load(f))
        return sorted(out, key=lambda m: (m["created"], m["blob"]["name"]), reverse=True)

    # The notes app's HTTP API.
    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            return r.status, json.loads(r.read())

    def post_note(self, text, **extra):
        body = json.dumps({"text": text, **extra}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/notes", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())

    def close(self):
        self.stop()
        self.notify.close()


STORE_BOOKKEEPING = ("bartl-store.json", ".bartl-store.lock")


def store_objects(store):
    """Names in a file:// store directory, sorted, without the store's own identity and lock."""
    return sorted(n for n in os.listdir(store) if n not in STORE_BOOKKEEPING)


def edit_config(path, overrides):
    """Replaces or adds `key = value` lines: overrides maps "section.key" to a TOML value text."""
    with open(path) as f:
        lines = f.read().split("\n")
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        start = lines.index(f"[{section}]") if f"[{section}]" in lines else None
        if start is None:
            lines += ["", f"[{section}]", f"{key} = {value}"]
            continue
        end = start + 1
        while end < len(lines) and not lines[end].startswith("["):
            end += 1
        for i in range(start + 1, end):
            if lines[i].split("=")[0].strip() == key:
                if value is None:
                    del lines[i]
                else:
                    lines[i] = f"{key} = {value}"
                break
        else:
            if value is not None:
                lines.insert(start + 1, f"{key} = {value}")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def tree_digest(path):
    """{relative path: (type, mode, content-or-target)} for comparing directory trees."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, path)
            st = os.lstat(p)
            if os.path.islink(p):
                out[rel] = ("l", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("d", st.st_mode & 0o7777)
            else:
                with open(p, "rb") as f:
                    out[rel] = ("f", st.st_mode & 0o7777, f.read())
    return out


class CheckedTest(unittest.TestCase):
    """Base class: a test fails when a process it started reported a memory error (a sanitizer
    report or a valgrind error); one that failed already gets the report on stderr."""

    def setUp(self):
        _outside_tests.append(memory_reports())

    def tearDown(self):
        reports = memory_reports()
        if not reports:
            return
        result = getattr(getattr(self, "_outcome", None), "result", None)
        failed = [t for t, _ in getattr(result, "failures", []) + getattr(result, "errors", [])]
        if any(t is self or getattr(t, "test_case", None) is self for t in failed):
            # Counted once: the test failed already (likely of this very error).
            sys.stderr.write(f"memory errors reported during {self.id()}:\n{reports}\n")
            return
        self.fail(f"memory errors reported:\n{reports}")


class StackTest(CheckedTest):
    """Base class: self.tmp is a fresh directory, removed afterwards; self.stack(...) makes stacks
    of `stack_class` (a subclass of Stack for another kind of store)."""

    stack_class = Stack

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="bartl-it-")
        self.stacks = []

    def tearDown(self):
        for s in self.stacks:
            s.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        super().tearDown()

    def stack(self, version="1.0.0", root=None, **kw):
        s = self.stack_class(root or os.path.join(self.tmp, f"host{len(self.stacks)}"), version, **kw)
        self.stacks.append(s)
        return s

    def host_stack(self, name, root, version="1.0.0", **kw):
        """The stack of host `name` over the shared `root`: the same configuration paths as
        every other host's (and the same store), its own state under ROOT/var/lib (HostView)."""
        host = HostView(name, os.path.join(self.tmp, name), os.path.join(root, "var", "lib"))
        return self.stack(version, root=root, host=host, **kw)


# --- D-Bus (issue 4): a private system-type bus and bartlctl ------------------------------

_BUILD_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(BARTLD))))
BARTLCTL = os.environ.get("BARTLCTL", os.path.join(_BUILD_ROOT, "src", "ctl", "bartlctl"))
DBUS_POLICY = os.environ.get("BARTL_DBUS_POLICY", os.path.join(_BUILD_ROOT, "dbus", "app.bartl.Instance1.conf"))

# The default policy of Debian's /usr/share/dbus-1/system.conf: deny owning names and method
# calls unless a policy file punches a hole; replies, signals and the bus driver are allowed.
_SYSTEM_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>{address}</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  {includes}
</busconfig>
"""


class PrivateBus:
    """A real dbus-daemon configured like the system bus (deny by default) with the bartl bus
    policy under test included. Its directory is world-traversable so unprivileged callers
    (setpriv) can connect. env() gives DBUS_SYSTEM_BUS_ADDRESS for bartld and bartlctl."""

    def __init__(self, policy=DBUS_POLICY):
        self.dir = tempfile.mkdtemp(prefix="bartl-bus-")
        os.chmod(self.dir, 0o755)
        self.address = "unix:path=" + os.path.join(self.dir, "system_bus_socket")
        self.config = os.path.join(self.dir, "system.conf")
        includes = f"<include>{policy}</include>" if policy else ""
        with open(self.config, "w") as f:
            f.write(_SYSTEM_BUS_CONFIG.format(address=self.address, includes=includes))
        self.proc = subprocess.Popen(["dbus-daemon", "--config-file", self.config, "--nofork", "--print-address"],
                                     stdout=subprocess.PIPE, text=True)
        # The address is printed once the socket listens.
        line = self.proc.stdout.readline()
        if not line.startswith("unix:"):
            self.close()
            raise AssertionError(f"dbus-daemon did not start: {line!r}")

    def env(self):
        return {"DBUS_SYSTEM_BUS_ADDRESS": self.address}

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def bartlctl(*args, bus=None, env=None, as_nobody=False, timeout=60):
    """Runs bartlctl ARGS (against `bus` when given); returns CompletedProcess (text). With
    as_nobody it runs as uid/gid 65534 without supplementary groups (setpriv)."""
    e = dict(os.environ)
    if bus:
        e.update(bus.env())
    e.update(env or {})
    argv = command(BARTLCTL, *args)
    if as_nobody:
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    return subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=scaled(timeout), env=e)


def busctl(*args, bus, as_nobody=False, timeout=30):
    """Runs busctl --system ARGS against `bus`; returns CompletedProcess (text)."""
    argv = ["busctl", "--system", *args]
    if as_nobody:
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env={**os.environ, **bus.env()})
