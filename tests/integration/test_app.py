#!/usr/bin/python3
"""The app's own process: [app] user and group (the app, hooks, migration scripts and the version
command run as a real throwaway user, proven by the kernel's ids of the processes and by file
ownership), the notify socket reachable by that user only, version_pattern, and the app's and
hooks' output in the journal (a real datagram socket at /run/systemd/journal/socket in a private
mount namespace, fed by libsystemd's sd_journal_send) or prefixed on bartld's stderr."""
import grp
import json
import os
import pwd
import re
import shutil
import struct
import subprocess
import tempfile
import time
import unittest

from bartltest import (BARTLD, EXAMPLES, EXIT_CONFIG, EXIT_RUNTIME, Datagrams, StackTest, command, edit_config,
                       position_of, scaled)
from bartltest import write_exec as write_script


def ids_of(pid):
    """The Uid, Gid and Groups lines of /proc/PID/status: who the kernel says the process is."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                out[key] = value.split()
    return out


def app_pid(port):
    r = subprocess.run(["pgrep", "-f", f"notes.py .*--port {port}"], capture_output=True, text=True)
    pids = r.stdout.split()
    return int(pids[0]) if pids else None


# Records who ran it, then hands over to the example's real init hook.
INIT_WRAPPER = """#!/bin/sh
target=${{BARTL_STAGING_PATHS%%:*}}
{{ id -u; id -g; id -G; echo "$HOME $USER $LOGNAME"; }} > "$target/init-ran-as"
echo "init on stdout"
echo "init on stderr" >&2
exec {real} "$@"
"""

PRE_BACKUP = """#!/bin/sh
id -u > {out}
"""

MIGRATION_WRAPPER = """#!/bin/sh
id -u > "${{BARTL_STATE_PATHS%%:*}}/migration-ran-as"
exec {real} "$@"
"""


class AppUserTest(StackTest):
    """Runs with a throwaway system user (and a supplementary group) made for this class."""

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0 or shutil.which("useradd") is None:
            raise unittest.SkipTest("needs root and useradd to make a throwaway user")
        tag = f"{os.getpid() % 100000}"
        cls.user, cls.extra_group = f"bartl-it-{tag}", f"bartl-itg-{tag}"
        subprocess.run(["groupadd", "--system", cls.extra_group], check=True)
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", "--groups", cls.extra_group, cls.user], check=True)
        pw = pwd.getpwnam(cls.user)
        cls.uid, cls.gid = pw.pw_uid, pw.pw_gid
        cls.extra_gid = grp.getgrnam(cls.extra_group).gr_gid

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["userdel", cls.user], check=False)
        subprocess.run(["groupdel", cls.extra_group], check=False)

    def setUp(self):
        super().setUp()
        os.chmod(self.tmp, 0o755)  # the user must reach its state and scripts below it
        # ... and the example's engine and hooks: a copy, since the checkout may lie below a
        # directory only root enters (a clone in /root: the pristine Debian 12 run found it).
        self.examples = os.path.join(self.tmp, "examples-notes")
        shutil.copytree(EXAMPLES, self.examples, ignore=shutil.ignore_patterns("__pycache__"))
        # As the shipped units make $RUNTIME_DIRECTORY: searchable, not listable.
        self.runtime = os.path.join(self.tmp, "run")
        os.mkdir(self.runtime, 0o711)
        os.chmod(self.runtime, 0o711)

    def stack(self, version="1.0.0", root=None, **kw):
        kw.setdefault("examples", self.examples)
        return super().stack(version, root, **kw)

    def user_stack(self, version="1.0.0"):
        s = self.stack(version)
        edit_config(s.config, {"app.user": f'"{self.user}"'})
        return s

    def env(self):
        return {"RUNTIME_DIRECTORY": self.runtime}


class AppUser(AppUserTest):
    def test_app_hooks_and_migrations_run_as_the_user_who_owns_the_state(self):
        s = self.user_stack()
        real_init = os.path.join(self.examples, "bartl", "init")
        init = write_script(os.path.join(self.tmp, "init"), INIT_WRAPPER.format(real=real_init))
        pre_backup_out = os.path.join(self.tmp, "pre-backup-ran-as")
        open(pre_backup_out, "w").close()
        os.chmod(pre_backup_out, 0o666)
        pre_backup = write_script(os.path.join(self.tmp, "pre-backup"), PRE_BACKUP.format(out=pre_backup_out))
        edit_config(s.config, {"hooks.init": f'["{init}"]', "hooks.pre_backup": f'["{pre_backup}"]'})

        s.start(extra_env=self.env())
        s.wait_ready()
        # The app: the kernel's ids of the process, and the database it writes through its API.
        self.assertEqual(s.post_note("written by the app")[0], 201)
        ids = ids_of(app_pid(s.port))
        self.assertEqual(ids["Uid"], [str(self.uid)] * 4)
        self.assertEqual(ids["Gid"], [str(self.gid)] * 4)
        self.assertEqual(sorted(map(int, ids["Groups"])), sorted({self.gid, self.extra_gid}))
        # The init hook, with the user's environment; its staging (now the state) is the user's.
        with open(os.path.join(s.state, "init-ran-as")) as f:
            uid, gid, groups, env = f.read().splitlines()
        self.assertEqual((int(uid), int(gid)), (self.uid, self.gid))
        self.assertEqual(sorted(map(int, groups.split())), sorted({self.gid, self.extra_gid}))
        self.assertEqual(env, f"/nonexistent {self.user} {self.user}")
        for p in (s.state, os.path.join(s.state, "notes.db"), os.path.join(s.state, "init-ran-as")):
            st = os.stat(p)
            self.assertEqual((st.st_uid, st.st_gid), (self.uid, self.gid), p)
        # bartld's own files stay root's.
        self.assertEqual(os.stat(os.path.join(s.bartl_dir, "marker.json")).st_uid, 0)
        self.assertEqual(s.stop(), 0)

        # pre_backup runs as the user too.
        r = s.run("--backup", extra_env=self.env())
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(pre_backup_out) as f:
            self.assertEqual(f.read().strip(), str(self.uid))

        # A restore keeps the owners the backup recorded.
        shutil.rmtree(s.state)
        shutil.rmtree(s.bartl_dir)
        r = s.run("--prepare", extra_env=self.env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("restore", s.marker()["origin"])
        for p in (s.state, os.path.join(s.state, "notes.db")):
            st = os.stat(p)
            self.assertEqual((st.st_uid, st.st_gid), (self.uid, self.gid), p)

        # A migration script runs as the user, on the user's state.
        migrations = os.path.join(self.tmp, "migrations")
        os.mkdir(migrations)
        os.chmod(migrations, 0o755)
        real = os.path.join(self.examples, "bartl", "migrations", "2.0.0-add-tags")
        write_script(os.path.join(migrations, "2.0.0-add-tags"), MIGRATION_WRAPPER.format(real=real))
        s.render("2.0.0", **{"app.user": f'"{self.user}"', "hooks.migrations": f'"{migrations}"'})
        r = s.run("--prepare", extra_env=self.env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(s.marker()["version"], "2.0.0")
        with open(os.path.join(s.state, "migration-ran-as")) as f:
            self.assertEqual(f.read().strip(), str(self.uid))
        self.assertEqual(os.stat(os.path.join(s.state, "notes.db")).st_uid, self.uid)

    def test_version_command_runs_as_the_user(self):
        s = self.user_stack()
        # The version it reports carries the uid it ran as.
        edit_config(s.config, {"app.version": None,
                               "app.version_command": '["/bin/sh", "-c", "echo notes build v=1.$(id -u).0"]',
                               "app.version_pattern": '"v=([^ ]+)"'})
        r = s.run("--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"engine 1.{self.uid}.0)", r.stdout)

    def test_notify_socket_the_user_cannot_reach_fails_at_once(self):
        s = self.user_stack()
        closed = os.path.join(self.tmp, "closed-run")
        os.mkdir(closed, 0o700)  # as RuntimeDirectoryMode=0750 was: the user cannot pass
        t0 = time.monotonic()
        r = s.run("--prepare", extra_env={"RUNTIME_DIRECTORY": closed})
        self.assertEqual(r.returncode, 0, r.stderr)  # --prepare starts no app
        s.start(extra_env={"RUNTIME_DIRECTORY": closed})
        self.assertEqual(s.proc.wait(scaled(20)), EXIT_RUNTIME)
        self.assertLess(time.monotonic() - t0, 10, "waited for the ready timeout (30s) instead")
        self.assertRegex(s.read_log(), rf"cannot start /usr/bin/python3 as user {self.user}: it cannot write to "
                                       rf"{re.escape(closed)}/bartl-notify-\w+/notify: Permission denied")
        self.assertEqual(os.listdir(closed), [], "the notify directory was left behind")

    def test_unknown_user_or_group_is_a_config_error_at_its_position(self):
        s = self.stack()
        edit_config(s.config, {"app.user": '"bartl-no-such-user"'})
        r = s.run("--check-config")
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        where = position_of(s.config, '"bartl-no-such-user"')
        self.assertIn(f'{s.config}:{where}: [app] user "bartl-no-such-user" does not exist in the user database',
                      r.stderr)
        edit_config(s.config, {"app.user": f'"{self.user}"', "app.group": '"bartl-no-such-group"'})
        r = s.run("--check-config")
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        where = position_of(s.config, '"bartl-no-such-group"')
        self.assertIn(f'{s.config}:{where}: [app] group "bartl-no-such-group" does not exist in the group database',
                      r.stderr)
        # The group may be any group. The supplementary groups are then the user's memberships
        # in the group database plus that group (initgroups(3), as systemd's User= and Group=).
        edit_config(s.config, {"app.group": f'"{self.extra_group}"'})
        s.start(extra_env=self.env())
        s.wait_ready()
        ids = ids_of(app_pid(s.port))
        self.assertEqual(ids["Gid"], [str(self.extra_gid)] * 4)
        self.assertEqual(list(map(int, ids["Groups"])), [self.extra_gid])

    def test_an_unprivileged_bartld_refuses_to_switch_users(self):
        s = self.stack()
        edit_config(s.config, {"app.user": '"root"'})
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
        r = subprocess.run(as_nobody + command(BARTLD, "--config", s.config, "--check-config"), capture_output=True,
                           text=True, env=s.env(notify=False))
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        where = position_of(s.config, '"root"')
        self.assertIn(f'{s.config}:{where}: [app] user "root" (uid 0, group root gid 0): bartld runs as uid 65534 '
                      f'gid 65534 without CAP_SETUID and CAP_SETGID and cannot start the app', r.stderr)
        # Its own user needs no switch.
        edit_config(s.config, {"app.user": '"nobody"'})
        r = subprocess.run(as_nobody + command(BARTLD, "--config", s.config, "--check-config"), capture_output=True,
                           text=True, env=s.env(notify=False))
        self.assertEqual(r.returncode, 0, r.stderr)


class VersionPattern(StackTest):
    def version_config(self, s, argv, pattern):
        edit_config(s.config, {"app.version": None, "app.version_command": json.dumps(argv),
                               "app.version_pattern": json.dumps(pattern)})

    def test_pattern_picks_the_version_out_of_command_output(self):
        s = self.stack()
        # What redis-server --version prints.
        banner = "Redis server v=1.0.0 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=9f2c3b1c6c2f8ac3"
        self.version_config(s, ["/bin/echo", banner], "v=([0-9][^ ]*)")
        r = s.run("--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("engine 1.0.0)", r.stdout)
        # The whole lifecycle works with it: init at 1.0.0.
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(s.marker()["version"], "1.0.0")

        self.version_config(s, ["/bin/echo", banner], "version ([0-9.]+)")
        r = s.run("--check-config")
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        self.assertIn(f'[app] version_command /bin/echo: [app] version_pattern "version ([0-9.]+)" matches nothing in '
                      f'"{banner}"', r.stderr)

    def test_pattern_applies_to_a_version_file(self):
        s = self.stack()
        vfile = os.path.join(self.tmp, "VERSION")
        with open(vfile, "w") as f:
            f.write("# built by CI\nversion=1.0.0\ncommit=abc\n")
        edit_config(s.config, {"app.version": None, "app.version_file": json.dumps(vfile),
                               "app.version_pattern": '"version=([0-9.]+)"'})
        r = s.run("--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("engine 1.0.0)", r.stdout)

    def test_a_pattern_without_exactly_one_group_is_a_config_error(self):
        s = self.stack()
        self.version_config(s, ["/bin/echo", "v=1.0.0"], "v=[0-9.]+")
        r = s.run("--check-config")
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        where = position_of(s.config, '"v=[0-9.]+"')
        self.assertIn(f'{s.config}:{where}: [app] version_pattern "v=[0-9.]+" has 0 capture groups; it needs exactly '
                      f'one', r.stderr)


class FakeJournal(Datagrams):
    """A real AF_UNIX datagram socket speaking journald's native protocol: each datagram is one
    entry of "NAME=value\\n" fields (or "NAME\\n" + 64-bit LE length + value + "\\n")."""

    def __init__(self, path):
        super().__init__(path, mode=0o666)

    def parse(self, data):
        fields, i = {}, 0
        while i < len(data):
            nl = data.index(b"\n", i)
            head = data[i:nl]
            if b"=" in head:
                k, _, v = head.partition(b"=")
                fields[k.decode()] = v.decode(errors="replace")
                i = nl + 1
            else:
                (n,) = struct.unpack("<Q", data[nl + 1:nl + 9])
                fields[head.decode()] = data[nl + 9:nl + 9 + n].decode(errors="replace")
                i = nl + 9 + n + 1
        return fields

    def entries(self):
        with self.lock:
            return [e for _, e in self.messages]

    def find(self, **match):
        return [e for e in self.entries() if all(e.get(k) == v for k, v in match.items())]


# Runs the rest of its arguments in a private mount namespace whose
# /run/systemd/journal/socket is the test's socket ($0), as libsystemd expects journald's.
JOURNAL_NS = ("mount -t tmpfs -o size=1m tmpfs /run && mkdir -p /run/systemd/journal && "
              "touch /run/systemd/journal/socket && mount --bind \"$0\" /run/systemd/journal/socket && exec \"$@\"")


class Journal(StackTest):
    def setUp(self):
        super().setUp()
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            self.skipTest("needs root and unshare(1) for a private /run/systemd/journal")
        self.journal = FakeJournal(os.path.join(self.tmp, "journal.sock"))

    def tearDown(self):
        self.journal.close()
        super().tearDown()

    def start_under_journal(self, s):
        """bartld as systemd would start it: stderr is the journal stream ($JOURNAL_STREAM)."""
        log = open(s.log_path, "a")
        st = os.fstat(log.fileno())
        env = s.env(True, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", JOURNAL_NS, self.journal.path,
                *command(BARTLD, "--config", s.config)]
        s.proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env)
        log.close()

    def wait_for(self, timeout=10, **match):
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            if self.journal.find(**match):
                return self.journal.find(**match)
            time.sleep(0.02)
        raise AssertionError(f"no journal entry with {match}; got:\n" +
                             "\n".join(json.dumps(e) for e in self.journal.entries()))

    def test_app_and_hook_lines_carry_the_instance_and_their_identifier(self):
        s = self.stack()
        engine = os.path.join(EXAMPLES, "engine", "1.0.0", "notes.py")
        app = ("echo notes starting on stdout; exec /usr/bin/python3 " + engine +
               f" --db {s.state}/notes.db --port {s.port}")
        edit_config(s.config, {"app.exec": json.dumps(["/bin/sh", "-c", app])})
        self.start_under_journal(s)
        s.wait_ready()
        pid = str(app_pid(s.port))
        # The app's stdout and stderr (notes.py logs there), with its PID, named after the app
        # ([app] name): `sh -c CODE` runs no script to name it by.
        out = self.wait_for(MESSAGE="notes starting on stdout")[0]
        self.assertEqual((out["SYSLOG_IDENTIFIER"], out["BARTL_INSTANCE"], out["BARTL_STREAM"], out["PRIORITY"],
                          out["SYSLOG_PID"]), ("notes", "notes", "stdout", "6", pid))
        err = [e for e in self.wait_for(SYSLOG_IDENTIFIER="notes", BARTL_STREAM="stderr")
               if e["MESSAGE"].startswith("notes 1.0.0: listening on")][0]
        self.assertEqual((err["BARTL_INSTANCE"], err["SYSLOG_PID"]), ("notes", pid))
        # The init hook's stdout, tagged like its stderr would be.
        hook = self.wait_for(SYSLOG_IDENTIFIER="init", BARTL_STREAM="stdout")[0]
        self.assertTrue(hook["MESSAGE"].startswith("notes init: created"), hook)
        self.assertEqual((hook["BARTL_INSTANCE"], hook["BARTL_HOOK"]), ("notes", "init"))
        # bartld's own entries are there too, under its own name.
        self.assertTrue(self.journal.find(SYSLOG_IDENTIFIER="bartld", BARTL_INSTANCE="notes"))
        self.assertEqual(s.stop(), 0)
        # Nothing of it went to the stream as well.
        log = s.read_log()
        self.assertNotIn("notes starting on stdout", log)
        self.assertNotIn("listening on", log)



class Prefixed(StackTest):
    def test_without_the_journal_lines_are_prefixed_on_stderr(self):
        s = self.stack()
        s.start()
        s.wait_ready()
        self.assertEqual(s.stop(), 0)
        log = s.read_log()
        self.assertRegex(log, r"(?m)^\[init\] notes init: created ")       # hook stdout
        # The app, /usr/bin/python3 running notes.py, by its script, not by its interpreter.
        self.assertRegex(log, r"(?m)^\[notes\.py\] notes 1\.0\.0: listening on ")  # app stderr
        self.assertNotIn("[python3]", log)
        self.assertRegex(log, r"app notes\.py ready \(PID \d+\)")


if __name__ == "__main__":
    unittest.main(verbosity=2)
