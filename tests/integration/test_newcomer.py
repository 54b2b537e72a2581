#!/usr/bin/python3
"""What a newcomer meets first: the README's `tools/demo`, a first run of bartld where there is
no system bus (containers, image builds), and the opt-in tests on a server without developer
tools. Each case is a papercut a first run on a pristine Debian 12 found (tests/pristine runs
the whole of it there)."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

from bartltest import BARTLD, EXIT_RUNTIME, SOURCE_ROOT, CheckedTest, StackTest, bartlctl, edit_config

EXIT_NOT_RUNNING = 3  # bartlctl: LSB "program is not running"
BUILD_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(BARTLD))))


class Demo(CheckedTest):
    def test_demo_runs_to_the_end_in_plain_text(self):
        # Output to a pipe, as in a log: no terminal escapes, and each command shown as run.
        # The build under test, as built (installing packages and building is the pristine
        # suite's part: tests/pristine).
        build = os.path.relpath(BUILD_ROOT, SOURCE_ROOT)
        r = subprocess.run([os.path.join(SOURCE_ROOT, "tools", "demo"), build], capture_output=True, text=True,
                           errors="replace", timeout=600, stdin=subprocess.DEVNULL,
                           env={**os.environ, "BARTL_DEMO_BUILT": "1"})
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-4000:])
        self.assertIn("== Done ==", out)
        self.assertNotIn("\x1b", out, "terminal escape sequences in a log")
        # The way back: the start command shows the backup it restores.
        pre = re.search(r"pre-migration backup (\w+) of state 1\.0\.0 taken", out)
        self.assertIsNotNone(pre, out[-4000:])
        way_back = out[out.index("== 7."):]
        self.assertRegex(way_back, rf"(?m)^\$ bartld --config \S+ --restore-from {pre.group(1)} &$")
        # Hints repeat how bartld was run (--config), not an --instance the demo has no config for.
        step0 = out[out.index("== 0."):out.index("== 1.")]
        self.assertRegex(step0, r"create its identity once with `bartld --config \S+/notes\.toml --init-store`")
        self.assertNotIn("--instance notes", out)

    def test_demo_on_postgresql_runs_to_the_end(self):
        # tools/demo --postgresql: the same lifecycle with the notes in a PostgreSQL database.
        build = os.path.relpath(BUILD_ROOT, SOURCE_ROOT)
        argv = [os.path.join(SOURCE_ROOT, "tools", "demo"), "--postgresql", build]
        with tempfile.TemporaryDirectory() as closed:
            if os.geteuid() == 0 and shutil.which("unshare"):
                # A clone under a 0700 /root, as root: postgres cannot enter the demo's cwd. The
                # checkout is bind-mounted there in a mount namespace of the demo's own.
                os.chmod(closed, 0o700)
                clone = os.path.join(closed, "bartl")
                os.mkdir(clone)
                argv = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" "$1" && shift && exec "$@"', SOURCE_ROOT,
                        clone, os.path.join(clone, "tools", "demo"), *argv[1:]]
            r = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=600,
                               stdin=subprocess.DEVNULL, env={**os.environ, "BARTL_DEMO_BUILT": "1"})
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out[-4000:])
        self.assertNotIn("could not change directory", out)
        self.assertIn("== Done ==", out)
        self.assertIn("the notes live in PostgreSQL", out)
        self.assertIn('$ psql -c "DROP DATABASE notes"', out)
        # The restore after the disaster brings the notes back from the dumped database.
        restored = out[out.index("== 4."):out.index("== 5.")]
        self.assertIn("buy milk", restored)
        self.assertIn("call the plumber", restored)
        # The way back restores the pre-upgrade database: its notes have no tags.
        way_back = out[out.index("== 7."):]
        self.assertIn("buy milk", way_back)
        self.assertNotIn('"tags": [', way_back)


class WithoutSystemBus(StackTest):
    """bartld and bartlctl where no system bus exists (the Stack's environment points nowhere)."""

    def test_prepare_does_not_say_it_serves(self):
        s = self.stack("1.0.0")
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        warning = [l for l in r.stderr.splitlines() if "no D-Bus system bus" in l]
        self.assertEqual(len(warning), 1, r.stderr)
        self.assertNotIn("serving", warning[0])  # --prepare exits once the state is ready

    def test_bartlctl_does_not_call_a_running_bartld_stopped(self):
        s = self.stack("1.0.0")
        s.start()
        s.wait_ready()
        r = bartlctl("-i", "notes", "status", env=s.env(notify=False))
        self.assertEqual(r.returncode, EXIT_NOT_RUNNING, r.stdout + r.stderr)
        self.assertIn("cannot connect to the D-Bus system bus", r.stderr)
        self.assertIn("reaches bartld only over that bus", r.stderr)
        self.assertNotIn("not running", r.stderr)
        self.assertIsNone(s.proc.poll(), "bartld went on serving")


class RestoreFromWithState(StackTest):
    def test_plan_says_the_pin_is_ignored(self):
        s = self.stack("1.0.0")
        self.assertEqual(s.run("--prepare").returncode, 0)
        r = s.run("--backup")
        self.assertEqual(r.returncode, 0, r.stderr)
        backup = s.backups()[0]["id"]
        r = s.run("--plan", "--restore-from", backup)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("plan: serve", r.stdout)
        self.assertIn(f"note: restore-from {backup} is ignored: state exists", r.stdout)
        # Without state the same pin is the plan, and no note.
        os.rename(s.state, s.state + ".aside")
        os.rename(os.path.join(s.bartl_dir, "marker.json"), os.path.join(self.tmp, "marker.json"))
        r = s.run("--plan", "--restore-from", backup)
        self.assertIn(f"plan: restore {backup} -> take over the store -> serve", r.stdout)
        self.assertNotIn("ignored", r.stdout)


class InitStoreWithoutDirectory(StackTest):
    def test_init_store_says_how_to_create_the_store_directory(self):
        s = self.stack("1.0.0")
        missing = os.path.join(s.root, "new-backups")
        edit_config(s.config, {"backup.store": json.dumps("file://" + missing)})
        r = s.run("--init-store")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn(f"store file://{missing}: directory {missing} does not exist: create it with "
                      f"`mkdir -m 0700 {missing}` (or mount the backup disk there), then run --init-store again",
                      r.stderr)
        self.assertFalse(os.path.exists(missing), "bartld created the store directory itself")
        os.mkdir(missing, 0o700)
        r = s.run("--init-store")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("initialised", r.stdout)
        # Said once: the log line on stderr repeated it.
        self.assertEqual((r.stdout + r.stderr).count("initialised"), 1, r.stdout + r.stderr)


class FreshServer(unittest.TestCase):
    """tools/run-tests on a server without developer tools."""

    def test_packaging_skips_without_git_when_not_asked_to_build(self):
        with tempfile.TemporaryDirectory() as d:
            fake = os.path.join(d, "build", "src", "daemon", "bartld")  # no packages-cache beside it
            env = {k: v for k, v in os.environ.items() if k != "BARTL_TEST_PACKAGES"}
            env.update(PATH=os.path.join(d, "empty"), BARTLD=fake)  # no git on PATH
            r = subprocess.run([sys.executable, os.path.join(SOURCE_ROOT, "tests", "integration", "test_packaging.py")],
                               capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(r.returncode, 77, r.stdout + r.stderr)
        self.assertIn("BARTL_TEST_PACKAGES=1", r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
