"""The integration tests' instance: the example notes app (examples/notes) rendered for a
private root directory, served by bartld as a child process with a real NOTIFY_SOCKET, on
this host or on another one (HostView)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

from .instance import InstanceBase
from .memcheck import CheckedTest, command, scaled
from .config import edit_config
from .notify import NotifyListener
from .paths import BARTLCTL, BARTLD, EXAMPLES


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


class Stack(InstanceBase):
    """One instance of the example notes app under a private root directory. With `host` (a
    HostView) it is that host's instance over a root other stacks may share: its config,
    notify socket and log live in the host's directory, and bartld runs in the host's view."""

    def __init__(self, root, version="1.0.0", port=None, name="notes", host=None, pgconn=None, examples=None):
        home = host.dir if host else root
        self.pgconn = pgconn  # the PostgreSQL variant (notes-pg-VERSION.toml.in) when set
        self.examples = examples or EXAMPLES  # the examples/notes whose engines and hooks it runs
        super().__init__(root, os.path.join(home, "etc", f"{name}.toml"),
                         os.path.join(root, "var", "lib", "bartl", "notes"), os.path.join(root, "backups"))
        self.host = host
        self.port = port or free_port()
        os.makedirs(os.path.dirname(self.config), exist_ok=True)
        self.render(version)
        self.state = os.path.join(root, "var", "lib", "notes")
        # The backup disk is mounted and empty, as after installing the package; tests of an
        # unreachable store remove it.
        os.makedirs(self.store, exist_ok=True)
        self.notify = NotifyListener(home)
        self.proc = None
        self.log_path = os.path.join(home, "bartld.log")
        self.init_store()

    def here(self, path):
        return self.host.here(path) if self.host else path

    def argv(self, program, *args):
        """The argv that runs PROGRAM ARGS (bartld or bartlctl) as this stack's host."""
        argv = command(program, *args)
        return self.host.wrap(argv) if self.host else argv

    def render(self, version, **overrides):
        subprocess.run([os.path.join(self.examples, "render-config"), self.root, str(self.port), version, self.config]
                       + ([self.pgconn] if self.pgconn else []), check=True)
        if overrides:
            edit_config(self.config, overrides)
        self.version = version

    def env(self, notify=True, extra=None):
        env = super().env()
        if notify:
            env["NOTIFY_SOCKET"] = self.notify.path
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

    def kill_backup_mid_upload(self, min_bytes=0, timeout=60):
        """Runs bartld --backup and SIGKILLs it once a temporary upload (a ".tmp-" name) of more
        than `min_bytes` bytes is in the file:// store; waits at most `timeout` seconds (scaled).
        Returns (pid, names of the temporary uploads seen; [] when the backup ended first)."""
        p = subprocess.Popen(self.argv(BARTLD, "--config", self.config, "--backup"), env=self.env(notify=False),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + scaled(timeout)
        temp = []
        try:
            while not temp and time.monotonic() < deadline and p.poll() is None:
                temp = []
                for n in os.listdir(self.store):
                    try:
                        if ".tmp-" in n and os.path.getsize(os.path.join(self.store, n)) > min_bytes:
                            temp.append(n)
                    except FileNotFoundError:  # renamed or removed between listdir and stat
                        pass
                time.sleep(0.005)
        finally:
            p.kill()
            p.wait()
        return p.pid, temp

    def wait_ready(self, timeout=60):
        if self.notify.wait_for("READY=1", timeout, alive=lambda: not self.proc or self.proc.poll() is None):
            return True
        if self.proc and self.proc.poll() is not None:
            raise AssertionError(f"bartld exited {self.proc.returncode} before READY:\n{self.read_log()}")
        raise AssertionError(f"no READY=1 within {scaled(timeout)}s:\n{self.read_log()}")

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
        self.notify.clear()
        return rc

    def read_log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

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


class StackTest(CheckedTest):
    """Base class: self.tmp is a fresh directory, removed afterwards; self.stack(...) makes stacks
    of `stack_class` (a subclass of Stack for another kind of store)."""

    stack_class = Stack

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="bartl-it-")
        # A cleanup, not tearDown: cleanups a test adds later (unmounting what it mounted
        # under self.tmp) run first, so nothing is left behind under a mount point.
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.stacks = []

    def tearDown(self):
        for s in self.stacks:
            s.close()
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
