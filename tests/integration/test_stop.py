#!/usr/bin/python3
"""SIGTERM during a long start (systemctl stop while bartld inits, migrates or restores).

systemd's KillMode=mixed signals only bartld: it must stop the hook, migration script or
extraction in progress itself, leave the state as it was before that step (never half
done and marked), exit 0 promptly, and let the next start do the step again.
"""
import json
import os
import shutil
import signal
import subprocess
import time
import unittest

from bartltest import store_objects, TIME_FACTOR, StackTest, edit_config, tree_digest

# Under a wrapper (valgrind) everything is slower: waits scale by $BARTL_TEST_TIMEOUT_FACTOR
# (default 10 under a wrapper, see bartltest).
FACTOR = TIME_FACTOR


def wait_status(s, prefix, timeout=10):
    """Waits until bartld sent a STATUS= starting with `prefix` (it is then in that step)."""
    deadline = time.monotonic() + timeout * FACTOR
    while not any(x.startswith(prefix) for x in s.notify.statuses()):
        if s.proc.poll() is not None:
            raise AssertionError(f"bartld exited {s.proc.returncode} before '{prefix}':\n{s.read_log()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no status '{prefix}' within {timeout}s:\n{s.read_log()}")
        time.sleep(0.02)


def wait_file(path, what, timeout=10):
    deadline = time.monotonic() + timeout * FACTOR
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.02)


def terminate_frozen(s, within):
    """SIGTERM to a SIGSTOPped bartld, then SIGCONT; returns (exit status, seconds until exit)."""
    t0 = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    s.proc.send_signal(signal.SIGCONT)
    rc = s.proc.wait(within * FACTOR)
    return rc, time.monotonic() - t0


def pids_running(pattern):
    r = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return r.stdout.split()


class StopDuringStart(StackTest):
    def big_stack(self):
        """An initialised stack whose state holds 160 MiB that zstd cannot shrink: its backup
        and restore take long enough to be interrupted."""
        s = self.stack("1.0.0")
        self.assertEqual(s.run("--prepare").returncode, 0)
        with open(os.path.join(s.state, "big.bin"), "wb") as f:
            for _ in range(160):
                f.write(os.urandom(1 << 20))
        return s

    def terminate_promptly(self, s):
        """SIGTERM; bartld must exit 0 well before the 300 s its hook would take."""
        t0 = time.monotonic()
        s.proc.terminate()
        self.assertEqual(s.proc.wait(20 * FACTOR), 0, s.read_log())
        self.assertLess(time.monotonic() - t0, 10 * FACTOR, "the hook was waited for instead of stopped")

    def test_sigterm_stops_a_long_init_hook_and_rolls_the_init_back(self):
        s = self.stack("1.0.0")
        marker_file = os.path.join(self.tmp, "init-hook-ran")
        hook = f"touch {marker_file}; echo partial > \"$BARTL_STAGING/partial\"; exec sleep 300"
        edit_config(s.config, {"hooks.init": json.dumps(["/bin/sh", "-c", hook])})
        s.start()
        wait_status(s, "Initializing notes")
        wait_file(marker_file, "the init hook never ran")
        self.terminate_promptly(s)
        log = s.read_log()
        self.assertIn("stop requested: init hook /bin/sh was stopped", log)
        self.assertIsNone(s.notify.first_time("READY=1"))
        self.assertEqual(pids_running("exec sleep 300"), [], "the hook outlived bartld")
        # Rolled back: no state, no marker, no intent, no staging next to the state path.
        self.assertFalse(os.path.exists(s.state))
        self.assertFalse(os.path.exists(os.path.join(s.bartl_dir, "marker.json")))
        self.assertFalse(os.path.exists(os.path.join(s.bartl_dir, "intent.json")))
        self.assertEqual([n for n in os.listdir(os.path.dirname(s.state)) if "staging" in n], [])
        # The next start inits again, with a hook that finishes.
        edit_config(s.config, {"hooks.init": json.dumps(["/bin/sh", "-c", "echo ok > \"$BARTL_STAGING/done\""])})
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(s.marker()["origin"], "init")
        self.assertEqual(os.listdir(s.state), ["done"])

    def test_sigterm_stops_a_long_migration_step_and_the_next_start_runs_it_again(self):
        s = self.stack("1.0.0")
        self.assertEqual(s.run("--prepare").returncode, 0)
        before = tree_digest(s.state)
        mig = os.path.join(self.tmp, "migrations")
        os.makedirs(mig)
        runs = os.path.join(self.tmp, "runs")
        step = os.path.join(mig, "2.0.0")
        with open(step, "w") as f:
            # Idempotent, as migration scripts must be; the first run hangs after starting.
            f.write(f"#!/bin/sh\necho run >> {runs}\n[ -e {self.tmp}/fast ] || exec sleep 300\n")
        os.chmod(step, 0o755)
        s.render("2.0.0", **{"hooks.migrations": json.dumps(mig), "backup.before_migrate": "false"})
        s.start()
        wait_status(s, "Migrating notes")
        wait_file(runs, "the migration step never ran")
        self.terminate_promptly(s)
        self.assertIn("migration step 2.0.0 stopped; state stays at 1.0.0", s.read_log())
        self.assertEqual(pids_running("exec sleep 300"), [])
        self.assertEqual(s.marker()["version"], "1.0.0")
        self.assertEqual(tree_digest(s.state), before)
        open(os.path.join(self.tmp, "fast"), "w").close()
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(s.marker()["version"], "2.0.0")
        with open(runs) as f:
            self.assertEqual(f.read().split(), ["run", "run"])

    def migration_stack(self, post_backup):
        s = self.big_stack()
        mig = os.path.join(self.tmp, "migrations")
        os.makedirs(mig)
        runs = os.path.join(self.tmp, "runs")
        with open(os.path.join(mig, "2.0.0"), "w") as f:
            f.write(f"#!/bin/sh\necho run >> {runs}\n")
        os.chmod(os.path.join(mig, "2.0.0"), 0o755)
        s.render("2.0.0", **{"hooks.migrations": json.dumps(mig), "backup.before_migrate": "true",
                             "hooks.post_backup": json.dumps(["/bin/sh", "-c", post_backup])})
        return s, runs

    def test_sigterm_during_the_pre_migration_backup_abandons_it_and_touches_nothing(self):
        # The backup is not committed yet: abandoning it loses nothing, and the next start
        # takes it again (the state it backs up is unchanged).
        s, runs = self.migration_stack("true")
        before = tree_digest(s.state)
        s.start()
        wait_status(s, "Backing up notes")
        s.proc.send_signal(signal.SIGSTOP)
        rc, took = terminate_frozen(s, 60)
        self.assertEqual(rc, 0, s.read_log())
        self.assertLess(took, 10 * FACTOR)
        # Noticed by the backup between files, or by the store writer it is feeding (a pristine
        # Debian 12 container under load hit the second): both abandon the same backup.
        self.assertRegex(s.read_log(), r"stop requested: (Backing up notes|store \S+: writing notes-\S+\.tar\.zst)")
        self.assertFalse(os.path.exists(runs), "a step ran after the stop request")
        self.assertEqual(s.marker()["version"], "1.0.0")
        self.assertEqual(tree_digest(s.state), before)
        self.assertEqual(s.backups(), [])
        self.assertEqual([n for n in store_objects(s.store) if n.startswith(".")], [], "an upload was left")
        self.assertFalse(os.path.exists(os.path.join(s.bartl_dir, "intent.json")))
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(s.marker()["version"], "2.0.0")
        self.assertEqual([b["reason"] for b in s.backups()], ["pre-migration"])

    def test_sigterm_after_the_pre_migration_backup_committed_keeps_it_as_the_way_back(self):
        # Found in review: a post_backup hook slower than one poll was stopped too, after the
        # backup was committed. It runs to its end; no step starts; the next start resumes the
        # migration without a second "pre-migration" backup.
        started = os.path.join(self.tmp, "post-backup-started")
        post = os.path.join(self.tmp, "post-backup-ran")
        s, runs = self.migration_stack(f"touch {started}; sleep 1; touch {post}")
        before = tree_digest(s.state)
        s.start()
        deadline = time.monotonic() + 60 * FACTOR
        while not os.path.exists(started):
            self.assertLess(time.monotonic(), deadline, s.read_log())
            time.sleep(0.01)
        s.proc.send_signal(signal.SIGTERM)
        self.assertEqual(s.proc.wait(60 * FACTOR), 0, s.read_log())
        self.assertTrue(os.path.exists(post), "post_backup was stopped after its backup was committed")
        self.assertFalse(os.path.exists(runs), "a step ran after the stop request")
        self.assertEqual(s.marker()["version"], "1.0.0")
        self.assertEqual(tree_digest(s.state), before)
        [b] = s.backups()  # the pre-migration backup completed and is listed
        self.assertEqual((b["version"], b["reason"]), ("1.0.0", "pre-migration"))
        with open(os.path.join(s.bartl_dir, "intent.json")) as f:
            self.assertEqual(json.load(f)["pre_migration_backup"], b["id"])
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"the way back is backup {b['id']}", r.stderr)
        self.assertEqual(s.marker()["version"], "2.0.0")
        self.assertEqual(len(s.backups()), 1, "a second pre-migration backup was taken")

    def test_sigterm_abandons_a_restore_and_the_next_start_restores_again(self):
        s = self.big_stack()
        self.assertEqual(s.run("--backup").returncode, 0)
        before = tree_digest(s.state)
        shutil.rmtree(s.state)
        shutil.rmtree(s.bartl_dir)
        s.start()
        wait_status(s, "Restoring notes")
        # Frozen mid-extraction, SIGTERM queued, thawed: the signal is pending while the restore
        # runs, however fast this machine's disk is.
        s.proc.send_signal(signal.SIGSTOP)
        rc, took = terminate_frozen(s, 20)
        self.assertEqual(rc, 0, s.read_log())
        self.assertLess(took, 10 * FACTOR)
        log = s.read_log()
        # Wherever the restore was (opening the blob, extracting), it is abandoned.
        self.assertRegex(log, r"stop requested: (restore of backup|store .*: opening)")
        self.assertFalse(os.path.exists(s.state), "a half restore was left in place")
        self.assertFalse(os.path.exists(os.path.join(s.bartl_dir, "marker.json")))
        self.assertFalse(os.path.exists(os.path.join(s.bartl_dir, "intent.json")))
        self.assertEqual([n for n in os.listdir(os.path.dirname(s.state)) if "staging" in n], [])
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(s.marker()["origin"].startswith("restore:"))
        self.assertEqual(tree_digest(s.state), before)


if __name__ == "__main__":
    unittest.main()
