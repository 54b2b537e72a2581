#!/usr/bin/python3
"""Self-test of the notes example (engines, init hook, migration, render-config).

Standard library only, no bartl needed:  ./test_notes.py  (or python3 -m unittest).
Each test works in its own temporary directory.
"""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
ENGINE = {v: os.path.join(HERE, "engine", v, "notes.py") for v in ("1.0.0", "2.0.0")}
INIT = os.path.join(HERE, "bartl", "init")
MIGRATION = os.path.join(HERE, "bartl", "migrations", "2.0.0-add-tags")
RENDER = os.path.join(HERE, "render-config")
# Waits scale as the project's tests do (a sanitizer build sets 3): a loaded machine may take
# seconds to start Python and open SQLite before the app handles a signal.
TIME_FACTOR = float(os.environ.get("BARTL_TEST_TIMEOUT_FACTOR") or 1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def user_version(db_path):
    db = sqlite3.connect(db_path)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


class Notify:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self, directory, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"notes-test-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = os.path.join(directory, f"notify-{time.monotonic_ns()}.sock")
            self.sock.bind(self.address)
        self.messages = []

    def wait_for(self, key, timeout):
        """Returns the first datagram holding line `key`=..., as a dict, or None."""
        deadline = time.monotonic() + timeout
        while True:
            for fields in self.messages:
                if key in fields:
                    return fields
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                return None
            self.messages.append(dict(line.split("=", 1)
                                      for line in data.decode().splitlines() if "=" in line))

    def close(self):
        self.sock.close()


def catches(pid, sig):
    """Whether process `pid` has a handler for signal `sig` (SigCgt of /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


class Service:
    """One running notes.py."""

    def __init__(self, tmp, version, db, port, ready_delay=0.0, abstract=False):
        self.notify = Notify(tmp, abstract)
        self.port = port
        env = dict(os.environ, NOTIFY_SOCKET=self.notify.address)
        argv = [PYTHON, ENGINE[version], "--db", db, "--port", str(port)]
        if ready_delay:
            argv += ["--ready-delay", str(ready_delay)]
        self.log = open(os.path.join(tmp, f"notes-{version}-{time.monotonic_ns()}.log"), "w+")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout=5.0):
        """Waits for READY=1; returns the seconds it took (fails the test on timeout)."""
        timeout *= TIME_FACTOR
        fields = self.notify.wait_for("READY", timeout)
        if fields is None:
            raise AssertionError(f"no READY=1 within {timeout}s; log:\n{self.output()}")
        if self.port == 0:
            self.port = int(fields["STATUS"].rsplit(":", 1)[1])
        return time.monotonic() - self.started, fields

    def request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def stop(self, timeout=5.0):
        """SIGTERM; returns the exit status."""
        timeout *= TIME_FACTOR
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"no exit within {timeout}s of SIGTERM; log:\n{self.output()}")

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.notify.close()
        self.log.close()


def run(argv, env=None, timeout=10):
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


class NotesTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="notes-test-")
        self.tmp = self._tmp.name
        self.addCleanup(self._tmp.cleanup)
        # Stand-ins for bartl's directories: the staging and the declared state path.
        self.staging = os.path.join(self.tmp, "staging")
        self.state = os.path.join(self.tmp, "var", "lib", "notes")
        self.db = os.path.join(self.state, "notes.db")

    def bartl_env(self, **extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("BARTL_")}
        env.update(BARTL_APP="notes", BARTL_INSTANCE="notes", **extra)
        return env

    def init(self, engine_version):
        """Runs the init hook the way bartl does, then 'renames the staging into place'."""
        os.makedirs(self.staging)
        r = run([INIT], self.bartl_env(BARTL_STAGING=self.staging,
                                       BARTL_ENGINE_VERSION=engine_version))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("created", r.stdout)
        self.assertEqual(os.listdir(self.staging), ["notes.db"])
        os.makedirs(os.path.dirname(self.state), exist_ok=True)
        os.rename(self.staging, self.state)

    def migrate(self):
        return run([MIGRATION], self.bartl_env(
            BARTL_STATE_PATHS=f"{self.state}:{os.path.join(self.tmp, 'other')}",
            BARTL_STATE_VERSION="1.0.0", BARTL_ENGINE_VERSION="2.0.0"))

    def start(self, version, **kw):
        port = kw.pop("port", None)
        svc = Service(self.tmp, version, self.db, free_port() if port is None else port, **kw)
        self.addCleanup(svc.close)
        return svc

    def assert_refuses(self, version, db, *words):
        r = run([PYTHON, ENGINE[version], "--db", db, "--port", str(free_port())])
        self.assertEqual(r.returncode, 2, r.stderr)
        for w in words:
            self.assertIn(w, r.stderr)
        return r

    # --- the upgrade story --------------------------------------------------------------

    def test_install_v1_upgrade_to_v2(self):
        self.init("1.0.0")
        self.assertEqual(user_version(self.db), 1)

        v1 = self.start("1.0.0", ready_delay=0.5)
        took, fields = v1.wait_ready()
        self.assertGreaterEqual(took, 0.5, "READY=1 before --ready-delay passed")
        self.assertEqual(fields["STATUS"], f"listening on 127.0.0.1:{v1.port}")
        self.assertEqual(v1.request("GET", "/health"),
                         (200, {"status": "ok", "version": "1.0.0", "schema": 1}))
        self.assertEqual(v1.request("GET", "/notes"), (200, []))
        for text in ("buy milk", "call Bartl"):
            status, note = v1.request("POST", "/notes", {"text": text})
            self.assertEqual(status, 201)
            self.assertEqual(note["text"], text)
            self.assertNotIn("tags", note)
        self.assertEqual(v1.request("POST", "/notes", {"text": ""})[0], 400)
        self.assertEqual(v1.request("GET", "/nope")[0], 404)
        self.assertEqual(v1.stop(), 0, v1.output())

        # A 1.x database does not run under 2.0.0 before the migration.
        self.assert_refuses("2.0.0", self.db, "schema 1", "2.0.0-add-tags")

        r = self.migrate()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("schema 1 -> 2", r.stdout)
        self.assertEqual(user_version(self.db), 2)
        r = self.migrate()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("nothing to do", r.stdout)
        self.assertEqual(user_version(self.db), 2)

        v2 = self.start("2.0.0", port=0)  # port 0: the STATUS line tells the port
        v2.wait_ready()
        self.assertEqual(v2.request("GET", "/health"),
                         (200, {"status": "ok", "version": "2.0.0", "schema": 2}))
        status, notes = v2.request("GET", "/notes")
        self.assertEqual(status, 200)
        self.assertEqual([(n["text"], n["tags"]) for n in notes],
                         [("buy milk", []), ("call Bartl", [])])
        status, note = v2.request("POST", "/notes", {"text": "tagged", "tags": ["a", "b"]})
        self.assertEqual(status, 201)
        self.assertEqual(note["tags"], ["a", "b"])
        self.assertEqual(v2.request("POST", "/notes", {"text": "x", "tags": "a"})[0], 400)
        self.assertEqual(v2.request("GET", "/notes")[1][-1]["tags"], ["a", "b"])
        self.assertEqual(v2.stop(), 0, v2.output())

        # And no way back: 1.0.0 refuses the migrated database.
        self.assert_refuses("1.0.0", self.db, "schema 2", "newer")

    # --- engines on their own -----------------------------------------------------------

    def test_version_flag(self):
        for version, path in ENGINE.items():
            r = run([PYTHON, path, "--version"])
            self.assertEqual((r.returncode, r.stdout.strip()), (0, version))

    def test_missing_database_is_not_created(self):
        for version in ENGINE:
            self.assert_refuses(version, self.db, "does not exist", "init")
            self.assertFalse(os.path.exists(self.db))
            self.assertFalse(os.path.exists(self.state))

    def test_fresh_install_v2_and_abstract_notify_socket(self):
        self.init("2.0.0")
        self.assertEqual(user_version(self.db), 2)
        self.assert_refuses("1.0.0", self.db, "schema 2")
        svc = self.start("2.0.0", abstract=True)
        svc.wait_ready()
        self.assertEqual(svc.request("POST", "/notes", {"text": "t"})[1]["tags"], [])
        self.assertEqual(svc.stop(), 0, svc.output())
        self.assertIsNotNone(svc.notify.wait_for("STOPPING", 1.0))

    def test_sigterm_during_ready_delay(self):
        self.init("1.0.0")
        svc = self.start("1.0.0", ready_delay=5)
        # Once its SIGTERM handler is in place (the kernel's SigCgt mask), not after a fixed
        # time: a loaded machine may take longer to start Python than any guess.
        deadline = time.monotonic() + 30
        while not catches(svc.proc.pid, signal.SIGTERM):
            self.assertLess(time.monotonic(), deadline, "notes.py never installed its SIGTERM handler")
            self.assertIsNone(svc.proc.poll(), svc.output())
            time.sleep(0.01)
        self.assertEqual(svc.stop(), 0)
        self.assertEqual(svc.notify.messages, [])

    def test_foreign_database_refused(self):
        os.makedirs(self.state)
        sqlite3.connect(self.db).close()  # an empty SQLite file, user_version 0
        for version in ENGINE:
            self.assert_refuses(version, self.db, "not an initialised notes database")

    # --- hooks --------------------------------------------------------------------------

    def test_init_refuses_without_env_or_over_existing_file(self):
        r = run([INIT], self.bartl_env(BARTL_ENGINE_VERSION="1.0.0"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("BARTL_STAGING", r.stderr)
        os.makedirs(self.staging)
        r = run([INIT], self.bartl_env(BARTL_STAGING=self.staging, BARTL_ENGINE_VERSION="3.0.0"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("no schema", r.stderr)
        env = self.bartl_env(BARTL_STAGING=self.staging, BARTL_ENGINE_VERSION="1.2.3")
        self.assertEqual(run([INIT], env).returncode, 0)
        r = run([INIT], env)
        self.assertEqual(r.returncode, 1)
        self.assertIn("already exists", r.stderr)

    def test_init_with_staging_paths_list(self):
        # BARTL_STAGING_PATHS (one staging directory per state path) wins over BARTL_STAGING.
        first, second = os.path.join(self.tmp, "s0"), os.path.join(self.tmp, "s1")
        os.makedirs(first)
        os.makedirs(second)
        r = run([INIT], self.bartl_env(BARTL_STAGING_PATHS=f"{first}:{second}",
                                       BARTL_STAGING=first, BARTL_ENGINE_VERSION="2.0.0"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.listdir(first), ["notes.db"])
        self.assertEqual(user_version(os.path.join(first, "notes.db")), 2)
        self.assertEqual(os.listdir(second), [])

    def test_migration_failures(self):
        r = self.migrate()  # no database
        self.assertEqual(r.returncode, 1)
        self.assertIn("does not exist", r.stderr)
        r = run([MIGRATION], self.bartl_env())
        self.assertEqual(r.returncode, 1)
        self.assertIn("BARTL_STATE_PATHS", r.stderr)
        os.makedirs(self.state)
        sqlite3.connect(self.db).close()
        r = self.migrate()
        self.assertEqual(r.returncode, 1)
        self.assertIn("unexpected schema 0", r.stderr)
        self.assertEqual(user_version(self.db), 0)

    def test_migration_failure_rolls_back(self):
        # A schema-1 database whose ALTER TABLE must fail: the hook reports it, exits 1 and
        # leaves schema 1 untouched (user_version is set in the same transaction).
        os.makedirs(self.state)
        db = sqlite3.connect(self.db)
        db.executescript("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL,"
                         " created TEXT NOT NULL, tags TEXT); PRAGMA user_version = 1;")
        db.close()
        r = self.migrate()
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("rolled back", r.stderr)
        self.assertEqual(user_version(self.db), 1)

    # --- configs ------------------------------------------------------------------------

    def test_render_config(self):
        for version in ENGINE:
            out = os.path.join(self.tmp, f"notes-{version}.toml")
            r = run([RENDER, self.tmp, "18080", version, out])
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(out, "rb") as f:
                text = f.read()
            self.assertNotIn(b"@", text.replace(b"[app]", b""))
            cfg = tomllib.loads(text.decode())
            self.assertEqual(cfg["app"]["name"], "notes")
            self.assertEqual(cfg["app"]["version"], version)
            self.assertEqual(cfg["app"]["exec"], [
                "/usr/bin/python3", ENGINE[version], "--db",
                os.path.join(self.tmp, "var/lib/notes/notes.db"), "--port", "18080"])
            self.assertEqual(cfg["state"]["paths"], [os.path.join(self.tmp, "var/lib/notes")])
            self.assertEqual(cfg["state"]["bartl_dir"],
                             os.path.join(self.tmp, "var/lib/bartl/notes"))
            self.assertEqual(cfg["hooks"]["init"], [INIT])
            self.assertTrue(os.access(cfg["hooks"]["init"][0], os.X_OK))
            self.assertEqual(os.listdir(cfg["hooks"]["migrations"]), ["2.0.0-add-tags"])
            self.assertEqual(cfg["backup"]["store"], "file://" + os.path.join(self.tmp, "backups"))
            self.assertEqual(cfg["backup"]["compression"], "zstd:3")
        self.assertEqual(run([RENDER, self.tmp, "x", "1.0.0", "-"]).returncode, 64)
        self.assertEqual(run([RENDER, self.tmp, "1", "9.9.9", "-"]).returncode, 64)

    def test_render_config_postgresql_variant(self):
        conn = "host=/run/postgresql user=notes"
        for version in ENGINE:
            r = run([RENDER, self.tmp, "18080", version, "-", conn])
            self.assertEqual(r.returncode, 0, r.stderr)
            cfg = tomllib.loads(r.stdout)
            self.assertEqual(cfg["app"]["version"], version)
            self.assertEqual(cfg["app"]["exec"], [
                "/usr/bin/python3", ENGINE[version], "--postgresql", conn + " dbname=notes", "--port", "18080"])
            self.assertEqual(cfg["state"]["databases"],
                             [{"type": "postgresql", "name": "notes", "connection": conn}])
            self.assertEqual(cfg["state"]["paths"], [os.path.join(self.tmp, "var/lib/notes")])
            self.assertEqual(cfg["backup"]["before_migrate"], True)
        r = run([RENDER, self.tmp, "1", "1.0.0", "-", conn + " dbname=other"])
        self.assertEqual(r.returncode, 64)
        self.assertIn("must not name a dbname", r.stderr)
        self.assertEqual(run([RENDER, self.tmp, "1", "1.0.0", "-", 'host="x"']).returncode, 64)
        self.assertEqual(run([RENDER, self.tmp, "1", "1.0.0", "-", ""]).returncode, 64)

    def test_postgresql_without_psycopg2_says_what_to_install(self):
        # The SQLite engine needs only the standard library; --postgresql names the package.
        env = dict(os.environ, PYTHONPATH=self.tmp)
        with open(os.path.join(self.tmp, "psycopg2.py"), "w") as f:
            f.write("raise ImportError('no psycopg2 here')\n")
        r = subprocess.run([PYTHON, ENGINE["2.0.0"], "--postgresql", "host=/nonexistent", "--port", "0"],
                           capture_output=True, text=True, env=env, timeout=30)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("python3-psycopg2", r.stderr)


if __name__ == "__main__":
    unittest.main()
