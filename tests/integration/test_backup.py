#!/usr/bin/python3
"""Backups on a file:// store: blob + sidecar, portability, schedule while serving, retention, verify."""
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import unittest

from bartltest import (BARTLD, EXIT_RUNTIME, StackTest, edit_config, scaled, session_members, store_objects,
                       tree_digest)


class Backup(StackTest):
    def test_backup_writes_blob_and_sidecar_with_design_keys(self):
        s = self.stack("1.0.0")
        s.start(); s.wait_ready(); s.post_note("to back up"); s.stop()
        r = s.run("--backup")
        self.assertEqual(r.returncode, 0, r.stderr)
        [m] = s.backups()
        for k in ["format", "app", "version", "created", "host", "id", "blob", "compression", "encryption", "components"]:
            self.assertIn(k, m)
        self.assertEqual((m["format"], m["app"], m["version"], m["encryption"]), (1, "notes", "1.0.0", None))
        self.assertRegex(m["blob"]["name"], r"^notes-\d{8}T\d{6}Z-1\.0\.0-[0-9a-f]{8}\.tar\.zst$")
        self.assertTrue(m["blob"]["name"].endswith(m["id"] + ".tar.zst"))
        blob = os.path.join(s.store, m["blob"]["name"])
        with open(blob, "rb") as f:
            data = f.read()
        self.assertEqual(len(data), m["blob"]["size"])
        self.assertEqual(hashlib.sha256(data).hexdigest(), m["blob"]["sha256"])
        self.assertEqual(m["components"], [{"kind": "path", "name": s.state}])
        # No temporary names left in the store.
        self.assertEqual(store_objects(s.store), sorted([m["blob"]["name"], m["blob"]["name"] + ".json"]))

    def test_blob_is_portable_with_plain_zstd_and_tar(self):
        s = self.stack("1.0.0")
        s.run("--prepare")
        with open(os.path.join(s.state, "big.bin"), "wb") as f:
            f.write(os.urandom(3 << 20))
        os.symlink("notes.db", os.path.join(s.state, "link"))
        self.assertEqual(s.run("--backup").returncode, 0)
        [m] = s.backups()
        out = os.path.join(self.tmp, "by-hand")
        os.makedirs(out)
        blob = os.path.join(s.store, m["blob"]["name"])
        subprocess.run(f"zstd -dc '{blob}' | tar -x -C '{out}'", shell=True, check=True)
        listing = subprocess.run(f"zstd -dc '{blob}' | tar -t", shell=True, check=True, capture_output=True,
                                 text=True).stdout.split("\n")
        self.assertEqual(listing[0], "bartl/manifest.json")
        self.assertEqual(tree_digest(os.path.join(out, "state", "0")), tree_digest(s.state))
        with open(os.path.join(out, "bartl", "manifest.json")) as f:
            inner = json.load(f)
        self.assertEqual((inner["id"], inner["version"]), (m["id"], "1.0.0"))

    def test_scheduled_backups_while_serving_and_retention(self):
        s = self.stack("1.0.0")
        edit_config(s.config, {"backup.interval": '"1s"', "backup.keep_last": "2", "backup.keep_daily": "0",
                               "backup.keep_weekly": "0", "backup.keep_monthly": "0"})
        s.start()
        t0 = time.monotonic()
        s.wait_ready()
        self.assertEqual(s.backups(), [], "the first scheduled backup comes after one interval, not at start")
        deadline = time.monotonic() + scaled(30)
        while time.monotonic() < deadline and not (s.read_log().count("finished: notes-") >= 3
                                                   and "retention: deleted backup" in s.read_log()):
            time.sleep(0.2)
        s.post_note("still serving")
        self.assertEqual(s.stop(), 0)
        log = s.read_log()
        self.assertGreaterEqual(log.count("finished: notes-"), 3, log)
        self.assertIn("retention: deleted backup", log)
        self.assertEqual(len(s.backups()), 2)
        self.assertGreater(time.monotonic() - t0, 1)

    def test_consistency_stop_restarts_app_and_keeps_serving(self):
        s = self.stack("1.0.0")
        edit_config(s.config, {"backup.interval": '"1s"', "backup.consistency": '"stop"'})
        s.start()
        s.wait_ready()
        deadline = time.monotonic() + scaled(30)
        while time.monotonic() < deadline and not s.backups():
            time.sleep(0.1)
        self.assertTrue(s.backups())
        time.sleep(1.5)
        self.assertIsNone(s.proc.poll())
        self.assertIn("app stopped for backup", s.read_log())
        for _ in range(int(scaled(50))):
            try:
                self.assertEqual(s.get("/health")[0], 200)
                break
            except OSError:
                time.sleep(0.1)
        else:
            self.fail("app did not come back after a consistency=stop backup")

    def test_backup_hooks_get_env(self):
        s = self.stack("1.0.0")
        out = os.path.join(self.tmp, "hooks.log")
        hook = f'["/bin/sh", "-c", "echo $0 $BARTL_APP $BARTL_STATE_VERSION $BARTL_BACKUP_ID >> {out}"]'
        edit_config(s.config, {"hooks.pre_backup": hook.replace("$0", "pre"), "hooks.post_backup": hook.replace("$0", "post")})
        s.run("--prepare")
        self.assertEqual(s.run("--backup").returncode, 0)
        [m] = s.backups()
        with open(out) as f:
            self.assertEqual(f.read().split("\n")[:-1], ["pre notes 1.0.0", f"post notes 1.0.0 {m['id']}"])

    def test_hooks_know_why_a_backup_runs_and_whether_the_app_is_up(self):
        # Issue "real apps" item 4: pre_backup also ran for the pre-migration backup while the
        # app was stopped (redis-cli save: "Connection refused"), and could not tell.
        s = self.stack("1.0.0")
        out = os.path.join(self.tmp, "hooks.log")
        hook = f'["/bin/sh", "-c", "echo pre_backup $BARTL_BACKUP_REASON $BARTL_APP_RUNNING >> {out}"]'
        edit_config(s.config, {"hooks.pre_backup": hook, "backup.interval": '"1s"'})
        s.run("--prepare")
        self.assertEqual(s.run("--backup").returncode, 0)               # manual, app down
        s.start(); s.wait_ready()
        deadline = time.monotonic() + scaled(20)
        while time.monotonic() < deadline and not any(b["reason"] == "scheduled" for b in s.backups()):
            time.sleep(0.1)
        s.stop()
        s.render("2.0.0", **{"hooks.pre_backup": hook, "backup.interval": '"24h"'})
        self.assertEqual(s.run("--prepare").returncode, 0)              # pre-migration, app down
        with open(out) as f:
            lines = f.read().split("\n")[:-1]
        self.assertEqual(lines[0], "pre_backup manual 0")
        self.assertIn("pre_backup scheduled 1", lines)
        self.assertEqual(lines[-1], "pre_backup pre-migration 0")
        self.assertEqual({b["reason"] for b in s.backups()}, {"manual", "scheduled", "pre-migration"})

    def test_backups_run_at_backup_nice_and_the_app_at_bartlds(self):
        # A backup's zstd workers must not take the CPUs from the app it serves: the thread
        # taking it (and what it starts: the hooks here) runs at [backup] nice above bartld's.
        base = os.nice(0)
        s = self.stack("1.0.0")
        out = os.path.join(self.tmp, "nice.log")
        hook = f'["/bin/sh", "-c", "echo $BARTL_BACKUP_REASON $(nice) >> {out}"]'
        edit_config(s.config, {"hooks.pre_backup": hook})
        s.run("--prepare")
        self.assertEqual(s.run("--backup").returncode, 0)
        edit_config(s.config, {"backup.nice": "0"})
        self.assertEqual(s.run("--backup").returncode, 0)
        # The pre-migration backup runs in the process that then serves the app.
        s.render("2.0.0", **{"hooks.pre_backup": hook, "backup.nice": "5"})
        s.start(); s.wait_ready()
        try:
            [app] = [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == s.proc.pid]
            app_nice = _niceness(app)
        finally:
            s.stop()
        with open(out) as f:
            lines = f.read().split("\n")[:-1]
        self.assertEqual(lines, [f"manual {min(19, base + 10)}", f"manual {base}", f"pre-migration {min(19, base + 5)}"])
        self.assertEqual(app_nice, base)

    def test_the_backup_schedule_survives_a_restart(self):
        # A restart used to start the interval over: an instance restarted more often than
        # its interval (daily backups, nightly reboots) never took a scheduled backup.
        s = self.stack("1.0.0")
        edit_config(s.config, {"backup.interval": '"40s"'})
        s.run("--prepare")
        self.assertEqual(s.run("--backup").returncode, 0)
        time.sleep(3)  # not scaled: the point is that the start is later than the backup
        s.start(); s.wait_ready()
        line = self.serving_line(s)
        s.stop()
        m = re.search(r"next backup in ((?:\d+[hms])+)\)", line)
        self.assertIsNotNone(m, line)
        left = sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in re.findall(r"(\d+)([hms])", m.group(1)))
        self.assertLess(left, 38)  # 40 s after the manual backup, not after this start
        self.assertGreater(left, 0)
        # Down for longer than the interval: the first scheduled backup is taken at once.
        edit_config(s.config, {"backup.interval": '"2s"'})  # the manual backup is older than that now
        before = len(s.backups())
        s.start(); s.wait_ready()
        self.assertIn("next backup now: the last one is older than 2s", self.serving_line(s))
        deadline = time.monotonic() + scaled(20)
        while time.monotonic() < deadline and not any(b["reason"] == "scheduled" for b in s.backups()):
            time.sleep(0.1)
        s.stop()
        self.assertGreater(len(s.backups()), before)

    def test_a_store_that_cannot_be_read_is_warned_about_when_serving_starts(self):
        # With local state a start does not consult the store; a mistyped store path stayed
        # silent until the first backup, up to an interval (24 h) later.
        s = self.stack("1.0.0")
        s.run("--prepare")
        self.assertEqual(s.run("--backup").returncode, 0)
        wrong = os.path.join(self.tmp, "backups-mistyped")
        edit_config(s.config, {"backup.store": f'"file://{wrong}"'})
        s.start(); s.wait_ready()
        deadline = time.monotonic() + scaled(10)
        while time.monotonic() < deadline and "serving, but the store cannot be read" not in s.read_log():
            time.sleep(0.05)
        s.stop()
        log = s.read_log()
        self.assertIn(f"warning: serving, but the store cannot be read: store file://{wrong}", log)
        self.assertIn("backups will fail until this is fixed", log)
        self.assertEqual(log.count("serving, but the store cannot be read"), 1)

    def serving_line(self, s):
        deadline = time.monotonic() + scaled(10)
        while time.monotonic() < deadline:
            lines = [ln for ln in s.read_log().splitlines() if " serving (decision:" in ln]
            if lines:
                return lines[-1]
            time.sleep(0.05)
        self.fail("no serving line in the log:\n" + s.read_log())

    def test_failing_pre_backup_hook_makes_no_backup(self):
        s = self.stack("1.0.0")
        edit_config(s.config, {"hooks.pre_backup": '["/bin/false"]'})
        s.run("--prepare")
        r = s.run("--backup")
        self.assertEqual(r.returncode, EXIT_RUNTIME)
        self.assertIn("pre_backup hook /bin/false failed", r.stderr)
        self.assertEqual(store_objects(s.store), [])

    def test_backup_to_missing_store_fails_clearly_state_untouched(self):
        s = self.stack("1.0.0")
        s.run("--prepare")
        shutil.rmtree(s.store)
        before = tree_digest(s.state)
        r = s.run("--backup")
        self.assertEqual(r.returncode, EXIT_RUNTIME)
        self.assertIn(s.store, r.stderr)
        self.assertEqual(tree_digest(s.state), before)

    def test_backup_to_unwritable_store_fails_clearly(self):
        s = self.stack("1.0.0")
        s.run("--prepare")
        # A regular file where the store directory should be: unwritable even for root.
        shutil.rmtree(s.store)
        with open(s.store, "w") as f:
            f.write("not a directory")
        r = s.run("--backup")
        self.assertEqual(r.returncode, EXIT_RUNTIME)
        self.assertIn(s.store, r.stderr)

    def test_leftovers_of_killed_backups_are_removed_after_a_day(self):
        s = self.stack("1.0.0")
        s.run("--prepare")
        old = time.time() - 2 * 86400
        leftovers = {
            "orphan_old": "notes-20200101T000000Z-1.0.0-0badc0de.tar.zst",   # blob, sidecar never written
            "tmp_old": ".notes-20200101T000000Z-1.0.0-1badc0de.tar.zst.tmp-abcdef12",
        }
        # An upload on this host whose writer is gone (a reaped child's PID) goes at once.
        dead = subprocess.Popen(["true"])
        dead.wait()
        leftovers["tmp_dead"] = f".notes-y.tar.zst.tmp-{socket.gethostname()}-{dead.pid}-0000dead"
        fresh_orphan = time.strftime("notes-%Y%m%dT%H%M%SZ-1.0.0-2badc0de.tar.zst", time.gmtime())
        fresh_tmp = ".notes-x.tar.zst.tmp-12345678"
        # An old name but committed just now: its sidecar may still be on its way.
        late_commit = "notes-20200101T000000Z-1.0.0-4badc0de.tar.zst"
        for n in list(leftovers.values()) + [fresh_orphan, fresh_tmp, late_commit]:
            with open(os.path.join(s.store, n), "w") as f:
                f.write("partial")
        for n in (leftovers["tmp_old"], leftovers["orphan_old"]):
            os.utime(os.path.join(s.store, n), (old, old))
        other_app = "notesy-20200101T000000Z-1.0.0-3badc0de.tar.zst"
        with open(os.path.join(s.store, other_app), "w") as f:
            f.write("not ours")
        r = s.run("--backup")
        self.assertEqual(r.returncode, 0, r.stderr)
        names = set(os.listdir(s.store))
        for n in leftovers.values():
            self.assertNotIn(n, names)
        for n in (fresh_orphan, fresh_tmp, other_app, late_commit):
            self.assertIn(n, names, "a possibly running upload or another app's object was removed")
        self.assertEqual(len(s.backups()), 1)

    def test_a_backup_killed_mid_upload_is_named_at_the_next_start(self):
        # Found on a real systemd: kill -9 of bartld mid-backup left nothing in the journal at
        # the next start, and the partial upload stayed in the store with no word about it.
        s = self.stack("1.0.0")
        edit_config(s.config, {"backup.compression": '"zstd:1"'})
        s.run("--prepare")
        record = os.path.join(s.bartl_dir, "backup-running")
        with open(os.path.join(s.state, "big"), "wb") as f:
            f.write(os.urandom(96 << 20))
        _, temp = s.kill_backup_mid_upload(min_bytes=4 << 20)
        self.assertTrue(temp, "no upload in progress was seen")
        self.assertEqual(s.backups(), [])
        with open(record) as f:
            backup_id, reason, started, phase = f.read().split()
        self.assertEqual((reason, phase), ("manual", "upload"))
        self.assertIn(backup_id, temp[0])
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"warning: the backup {backup_id} started at {started} (manual) was interrupted: bartld was "
                      f"killed or the host went down before it ended; its partial upload is removed by the next "
                      f"backup", r.stderr)
        self.assertFalse(os.path.exists(record), "the record was left for the next start to repeat")
        self.assertNotIn("was interrupted", s.run("--prepare").stderr)  # said once
        # The next backup removes the partial upload and ends without leaving a record.
        os.remove(os.path.join(s.state, "big"))
        self.assertEqual(s.run("--backup").returncode, 0)
        self.assertEqual([n for n in os.listdir(s.store) if ".tmp-" in n], [])
        self.assertFalse(os.path.exists(record))
        self.assertEqual(len(s.backups()), 1)

    def kill_backup_in_hook(self, s, began, hook):
        """Runs bartld --backup, waits until `hook` (which writes its PID to `began`, then
        sleeps) runs, and SIGKILLs bartld and the hook, as systemd kills the unit."""
        p = subprocess.Popen(s.argv(BARTLD, "--config", s.config, "--backup"), env=s.env(notify=False),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + scaled(30)
            while not (os.path.exists(began) and os.path.getsize(began)) and time.monotonic() < deadline \
                    and p.poll() is None:
                time.sleep(0.01)
            self.assertTrue(os.path.exists(began), f"{hook} never ran")
        finally:
            # bartld and its hook (a process group of its own).
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            hook_pid = ""
            if os.path.exists(began):
                with open(began) as f:
                    hook_pid = f.read().strip()
            if hook_pid:
                os.kill(int(hook_pid), signal.SIGKILL)
            while session_members(p.pid):  # the hook is in bartld's session
                time.sleep(0.01)

    def test_a_backup_killed_in_its_pre_backup_hook_is_named_with_post_backup_not_run(self):
        # A backup killed while pre_backup ran (it may pause the app or freeze a filesystem)
        # left no word at all: the record was written only once the hook had ended.
        s = self.stack("1.0.0")
        s.run("--prepare")
        began = os.path.join(s.root, "pre-began")
        post = os.path.join(s.root, "post-ran")
        edit_config(s.config, {"hooks.pre_backup": f'["/bin/sh", "-c", "echo $$ > {began}; exec sleep 600"]',
                               "hooks.post_backup": f'["/bin/sh", "-c", "touch {post}"]'})
        record = os.path.join(s.bartl_dir, "backup-running")
        self.kill_backup_in_hook(s, began, "pre_backup")
        with open(record) as f:
            backup_id, reason, started, phase = f.read().split()
        self.assertEqual((reason, phase), ("manual", "pre_backup"))
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"warning: the backup {backup_id} started at {started} (manual) was interrupted in its "
                      f"pre_backup hook: bartld was killed or the host went down before the hook ended; "
                      f"post_backup never ran", r.stderr)
        self.assertNotIn("partial upload", r.stderr)
        self.assertFalse(os.path.exists(post))
        self.assertFalse(os.path.exists(record))
        # A pre_backup hook that fails ends the backup and leaves no record.
        edit_config(s.config, {"hooks.pre_backup": '["/bin/false"]'})
        self.assertNotEqual(s.run("--backup").returncode, 0)
        self.assertFalse(os.path.exists(record), "a failed pre_backup left the record for the next start")
        self.assertEqual(s.backups(), [])

    def test_a_backup_killed_in_its_post_backup_hook_is_named_as_stored_not_as_a_partial_upload(self):
        # The record stayed through post_backup: a backup killed there, already stored and
        # listed, was named at the next start as interrupted with a partial upload.
        s = self.stack("1.0.0")
        s.run("--prepare")
        began = os.path.join(s.root, "post-began")
        edit_config(s.config, {"hooks.post_backup": f'["/bin/sh", "-c", "echo $$ > {began}; exec sleep 600"]'})
        record = os.path.join(s.bartl_dir, "backup-running")
        self.kill_backup_in_hook(s, began, "post_backup")
        [b] = s.backups()
        with open(record) as f:
            backup_id, reason, started, phase = f.read().split()
        self.assertEqual((backup_id, reason, phase), (b["id"], "manual", "post_backup"))
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"warning: the backup {backup_id} started at {started} (manual) was interrupted in its "
                      f"post_backup hook: bartld was killed or the host went down before the hook ended; the "
                      f"backup itself is stored and listed", r.stderr)
        self.assertNotIn("partial upload", r.stderr)
        self.assertFalse(os.path.exists(record))
        # A backup whose post_backup ends leaves no record.
        edit_config(s.config, {"hooks.post_backup": '["/bin/true"]'})
        self.assertEqual(s.run("--backup").returncode, 0)
        self.assertFalse(os.path.exists(record))

    def test_backup_refuses_a_symlink_a_restore_would_refuse(self):
        s = self.stack("1.0.0")
        s.run("--prepare")
        os.symlink("/etc/passwd", os.path.join(s.state, "abs"))
        r = s.run("--backup")
        self.assertEqual(r.returncode, EXIT_RUNTIME)
        self.assertIn("cannot back up symlink " + os.path.join(s.state, "abs") + " -> /etc/passwd", r.stderr)
        self.assertEqual(s.backups(), [], "an unrestorable backup was written")
        self.assertEqual(store_objects(s.store), [])

    def test_verify_round_trips_and_detects_corruption(self):
        s = self.stack("1.0.0")
        s.run("--prepare")
        s.run("--backup")
        [m] = s.backups()
        r = s.run("--verify")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"backup {m['id']} OK", r.stdout)
        blob = os.path.join(s.store, m["blob"]["name"])
        with open(blob, "r+b") as f:
            f.seek(m["blob"]["size"] // 2)
            b = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([b[0] ^ 0xFF]))
        r = s.run("--verify", m["id"])
        self.assertEqual(r.returncode, EXIT_RUNTIME)
        self.assertIn(m["id"], r.stderr)


def _stat_fields(pid):
    """/proc/PID/stat after the command name (which may hold spaces): field 3 is [0]."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def _ppid(pid):
    try:
        return int(_stat_fields(pid)[1])
    except (OSError, IndexError, ValueError):
        return None


def _niceness(pid):
    return int(_stat_fields(pid)[16])  # field 19 of proc(5)


if __name__ == "__main__":
    unittest.main(verbosity=2)

