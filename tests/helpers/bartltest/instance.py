"""bartl instances under a private root directory: what every test's instance has
(InstanceBase), and the generic app of the fault suite (Instance)."""
import json
import os
import shutil
import subprocess

from . import procs
from .config import write_config
from .fs import staging_of, tree_hash
from .paths import find_bartld
from .store import newest_first, sidecars


def init_store(bartld, config, env=None):
    """The one-time `bartld --config CONFIG --init-store` an operator runs for a new store."""
    _store_initialised(subprocess.run([bartld, "--config", config, "--init-store"], capture_output=True, text=True,
                                      errors="replace", timeout=60, env=env))


def _store_initialised(r):
    """Raises AssertionError naming the exit status and stderr when `bartld --init-store` failed."""
    if r.returncode != 0:
        raise AssertionError(f"--init-store failed ({r.returncode}): {r.stderr}")


class InstanceBase:
    """One bartl instance: its config file, bartl_dir and file:// store, the environment
    bartld gets, and readers of the files bartl leaves. A subclass provides run(*args,
    timeout=...), which returns a subprocess.CompletedProcess."""

    def __init__(self, root, config, bartl_dir, store):
        self.root, self.config, self.bartl_dir, self.store = root, config, bartl_dir, store

    def here(self, path):
        """Where the test sees `path` (a path as bartld sees it): the same place but on
        another host (stack.HostView)."""
        return path

    def env(self, extra=None):
        """bartld's environment (procs.bartld_env): debug logging, never the host's system bus
        (a test that wants a bus passes bus.PrivateBus.env() in `extra`)."""
        return procs.bartld_env("debug", os.path.join(self.root, "no-system-bus"), extra)

    def init_store(self):
        """The one-time `bartld --init-store` an operator runs for a new store."""
        _store_initialised(self.run("--init-store", timeout=60))

    def marker(self):
        """The state marker (bartl_dir/marker.json), or None when there is none."""
        try:
            with open(os.path.join(self.here(self.bartl_dir), "marker.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def sidecars(self):
        """{blob name: sidecar dict or None} of the store (store.sidecars)."""
        return sidecars(self.store)

    def backups(self):
        """Sidecar manifests in the store, newest first."""
        return newest_first(self.sidecars().values())

    def backup_ids(self):
        """The IDs of the backups in the store, newest first."""
        return [m["id"] for m in self.backups()]


class Instance(InstanceBase):
    """The fault suite's instance of a generic app (no app process, state only) under `root`:
    `n_paths` state paths, a config written from the attributes (write_config), bartld run in
    a session of its own with its output in root/logs (procs)."""

    # A fault run tests a build of its own (build-faults/, often a release build) before build/.
    bartld = find_bartld(("build-faults", "build"))

    def __init__(self, root, name="fapp", version="1.0.0", n_paths=1, init_hook=None, migrations=None,
                 store=True, store_dir=None, before_migrate=False, keep_last=0, state_dir=None,
                 hooks=None, moved=None, backup_keys=None):
        super().__init__(root, os.path.join(root, "etc", f"{name}.toml"), os.path.join(root, "var", "lib", "bartl", name),
                         store_dir or os.path.join(root, "backups"))
        self.name = name
        self.version = version
        base = state_dir or os.path.join(root, "var", "lib")
        self.paths = [os.path.join(base, f"{name}{i if i else ''}") for i in range(n_paths)]
        self.init_hook = init_hook
        self.migrations = migrations
        self.use_store = store
        self.before_migrate = before_migrate
        self.keep_last = keep_last
        self.hooks = hooks or {}  # more [hooks] keys: {"post_restore": [argv...]}
        self.moved = moved or {}  # [state] moved: {old path: declared path}
        self.backup_keys = backup_keys or {}  # more [backup] keys: {"signing_key_file": path}
        self.log_dir = os.path.join(root, "logs")
        os.makedirs(self.log_dir, exist_ok=True)
        if store:
            os.makedirs(self.store, exist_ok=True)
        self.write_config()
        if store:
            self.init_store()

    def write_config(self, **changes):
        """Sets the attributes `changes` and writes the config file from the attributes."""
        for k, v in changes.items():
            setattr(self, k, v)
        tables = {"app": {"name": self.name, "version": self.version},
                  "state": {"paths": self.paths, "bartl_dir": self.bartl_dir, "moved": self.moved or None},
                  "hooks": {"init": self.init_hook, "migrations": self.migrations, **self.hooks}}
        if self.use_store:
            tables["backup"] = {"store": "file://" + self.store, "before_migrate": self.before_migrate,
                                "keep_last": self.keep_last, "compression": "zstd:3", **self.backup_keys}
            if not self.keep_last:  # retention off: every backup stays
                tables["backup"].update(keep_daily=0, keep_weekly=0, keep_monthly=0)
        write_config(self.config, tables)

    # Processes -----------------------------------------------------------------------------
    def argv(self, *args):
        return [self.bartld, "--config", self.config, *args]

    def run(self, *args, timeout=600, env=None):
        """Runs bartld to completion; procs.Result with exit code, output, wall time and peak RSS."""
        return procs.run(self.argv(*args), self.env(env), self.log_dir, timeout)

    def run_session(self, *args, env=None):
        """Runs bartld to completion, then kills what is left of its session (procs.run_session)."""
        return procs.run_session(self.argv(*args), self.env(env), self.log_dir)

    def start(self, *args, env=None):
        """Starts bartld; a procs.Process (wait() gives its Result)."""
        return procs.Process(self.argv(*args), self.env(env), self.log_dir)

    def run_killed(self, delay, *args, env=None):
        """Starts bartld, SIGKILLs its session after `delay` seconds (procs.run_killed)."""
        return procs.run_killed(self.argv(*args), self.env(env), self.log_dir, delay)

    # Files ---------------------------------------------------------------------------------
    def state_hash(self):
        return tree_hash(self.paths)

    def wipe_state(self):
        """Disaster: every state path, its staging leftovers and the bartl dir are gone."""
        for p in self.paths:
            shutil.rmtree(p, ignore_errors=True)
            shutil.rmtree(staging_of(p), ignore_errors=True)
        shutil.rmtree(self.bartl_dir, ignore_errors=True)

    def snapshot(self, dest):
        """Copies state paths and bartl_dir (cp -a) to dest."""
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(dest)
        for i, p in enumerate(self.paths + [self.bartl_dir]):
            if os.path.lexists(p):
                subprocess.run(["cp", "-a", p, os.path.join(dest, str(i))], check=True)

    def restore_snapshot(self, src):
        self.wipe_state()
        for i, p in enumerate(self.paths + [self.bartl_dir]):
            s = os.path.join(src, str(i))
            if os.path.lexists(s):
                os.makedirs(os.path.dirname(p), exist_ok=True)
                subprocess.run(["cp", "-a", s, p], check=True)
