#!/usr/bin/python3
"""Observed facts that cannot lie (issue 10, "What was found" 1-10), end to end through the real
bartld and bartlctl on real filesystems: real bind and tmpfs mounts, two hosts in their own
mount and UTS namespaces sharing one store, a real kill -9. Each test is one finding, driven as
the issue reproduces it, asserting the right outcome: the exit status, a message naming what is
wrong, data untouched, the right backup restored, nothing deleted. Needs root (mounts,
namespaces); tests that cannot get them skip."""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import unittest

from bartltest import (BARTLD, EXAMPLES, EXIT_CONFIG, EXIT_FOREIGN, EXIT_RUNTIME, PrivateBus, StackTest, edit_config,
                       tree_digest)
from bartltest import write_file as write

# Retention that keeps only the newest backup: what made each finding delete data.
KEEP_ONE = {"backup.keep_last": "1", "backup.keep_daily": "0", "backup.keep_weekly": "0", "backup.keep_monthly": "0"}


def read(path):
    with open(path) as f:
        return f.read()


def disaster(s):
    """The server loses its state: state paths and bartl's bookkeeping are gone."""
    for p in state_paths(s) + [s.here(s.bartl_dir)]:
        shutil.rmtree(p, ignore_errors=True)


def state_paths(s):
    with open(s.config) as f:
        m = re.search(r"^paths = (\[.*\])$", f.read(), re.M)
    return [s.here(p) for p in json.loads(m.group(1))]


def backup_ids(s):
    return [b["id"] for b in s.backups()]


def blob_listing(s, backup):
    """The entry names of a backup's archive (zstd | tar -t): what a restore would bring back."""
    blob = os.path.join(s.store, backup["blob"]["name"])
    r = subprocess.run(f"zstd -dc '{blob}' | tar -t", shell=True, capture_output=True, text=True, check=True)
    return r.stdout.split("\n")


def redate(s, backup, when):
    """Renames a real backup (blob and sidecar) as if created at `when` (seconds since the
    epoch), its sidecar saying so: what a host with a wrong clock writes. The blob and its
    SHA-256 stay as they are. Returns the new sidecar."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))
    name = re.sub(r"-\d{8}T\d{6}Z-", f"-{stamp}-", backup["blob"]["name"], count=1)
    m = dict(backup, created=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(when)),
             blob=dict(backup["blob"], name=name))
    os.rename(os.path.join(s.store, backup["blob"]["name"]), os.path.join(s.store, name))
    with open(os.path.join(s.store, name + ".json"), "w") as f:
        json.dump(m, f)
    os.remove(os.path.join(s.store, backup["blob"]["name"] + ".json"))
    return m


def history(s):
    return [(h["event"], h.get("detail", "")) for h in s.marker()["history"]]


def can_mount():
    return os.geteuid() == 0 and shutil.which("mount") is not None


class Facts(StackTest):
    def bare(self, version="1.0.0", **overrides):
        """A state-only instance (no app, no init hook): the quickest bartld that still makes
        every decision. Retention keeps one backup."""
        s = self.stack(version)
        edit_config(s.config, {"app.exec": None, "app.ready": None, "hooks.init": None, **KEEP_ONE, **overrides})
        return s

    def ok(self, s, *args):
        r = s.run(*args)
        self.assertEqual(r.returncode, 0, f"bartld {' '.join(args)}:\n{r.stderr}")
        return r

    def mount(self, *argv):
        """mount ARGV (the target last), unmounted again when the test ends, failed or not."""
        target = argv[-1]
        os.makedirs(target, exist_ok=True)
        subprocess.run(["mount", *argv], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", target], stderr=subprocess.DEVNULL)

    def umount(self, target):
        subprocess.run(["umount", target], check=True)

    # --- 1. an emptied versus a replaced state directory -------------------------------------

    def test_1_emptied_directory_is_served_replaced_one_is_restored_and_its_backup_kept(self):
        s = self.bare()
        self.ok(s, "--prepare")
        write(os.path.join(s.state, "f"), "precious\n")
        self.ok(s, "--backup")
        [with_f] = s.backups()
        marker = s.marker()
        # The app empties its own directory: still this state (the directory keeps its ID).
        os.remove(os.path.join(s.state, "f"))
        r = self.ok(s, "--prepare")
        self.assertIn("decision: serve", r.stderr)
        self.assertNotIn("decision: restore", r.stderr)
        self.assertEqual(os.listdir(s.state), [])
        self.assertEqual(s.marker()["state_id"], marker["state_id"])
        # The directory is *replaced* (rm -rf and mkdir, or a new disk): the state is lost,
        # never served as an empty one, and a backup of it is refused.
        shutil.rmtree(s.state)
        os.makedirs(s.state)
        r = s.run("--backup")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn(f"{s.state} is empty (no state ID): state lost", r.stderr)
        self.assertEqual(backup_ids(s), [with_f["id"]], "a backup of the replaced directory was taken")
        self.assertIn(f"plan: restore {with_f['id']}", s.run("--plan").stdout)
        r = self.ok(s, "--prepare")
        self.assertIn("decision: restore", r.stderr)
        self.assertEqual(read(os.path.join(s.state, "f")), "precious\n")
        self.assertEqual(s.marker()["origin"], f"restore:{with_f['id']}")
        self.assertNotEqual(s.marker()["state_id"], marker["state_id"])
        # keep_last = 1: the next backups never delete the only backup that held f (it is
        # the restored state's way back), while retention still prunes the state's own.
        self.ok(s, "--backup")
        first = s.backups()[0]
        time.sleep(1.1)  # retention orders backups by their names' seconds
        self.ok(s, "--backup")
        ids = backup_ids(s)
        self.assertIn(with_f["id"], ids)
        self.assertNotIn(first["id"], ids)
        self.assertEqual(len(ids), 2, ids)
        for b in s.backups():
            self.assertIn("state/0/f", blob_listing(s, b))

    # --- 2. a state filesystem that is not mounted --------------------------------------------

    def state_on_a_disk(self):
        """A bare stack whose state path is DISK/data, the disk mounted at MNT: (stack, DISK,
        MNT, MNT/data). The disk is a filesystem of its own (a tmpfs that outlives its mount at
        MNT): a directory of the filesystem underneath would still be the recorded device there."""
        s = self.bare()
        disk, mnt = os.path.join(self.tmp, "disk"), os.path.join(s.root, "mnt", "notes")
        data = os.path.join(mnt, "data")
        self.mount("-t", "tmpfs", "-o", "size=8m", "tmpfs", disk)
        edit_config(s.config, {"state.paths": json.dumps([data])})
        self.mount("--bind", disk, mnt)
        return s, disk, mnt, data

    def test_2_unmounted_state_filesystem_exit_1_never_restored_onto_the_mount_point(self):
        if not can_mount():
            self.skipTest("needs root to mount")
        s, disk, mnt, data = self.state_on_a_disk()
        self.ok(s, "--prepare")
        self.assertEqual(s.marker()["components"][0]["mount_point"], mnt)
        write(os.path.join(data, "f"), "backed up\n")
        self.ok(s, "--backup")
        [b] = s.backups()
        write(os.path.join(data, "f"), "changed after the backup\n")

        self.umount(mnt)
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertRegex(r.stderr, rf"{re.escape(data)} is missing and the filesystem that held it "
                                   rf"\(\d+:\d+ on {re.escape(mnt)}\) is not mounted")
        self.assertIn("will not restore onto the filesystem underneath: mount it (systemd retries this start), or, "
                      "to replace a broken disk, mount the new one there and bartld restores onto it (bartl(7)",
                      r.stderr)
        self.assertEqual(os.listdir(mnt), [], "something was restored onto the bare mount point")
        self.assertIn("not mounted", s.run("--plan").stdout)
        self.assertEqual(s.run("--backup").returncode, EXIT_RUNTIME)
        self.assertEqual(backup_ids(s), [b["id"]])

        # The disk is back: its state is served as it is, nothing rolled back.
        self.mount("--bind", disk, mnt)
        r = self.ok(s, "--prepare")
        self.assertIn("decision: serve", r.stderr)
        self.assertEqual(read(os.path.join(data, "f")), "changed after the backup\n")
        self.umount(mnt)

        # A new, empty filesystem at the recorded mount point (a replaced disk): state lost,
        # restored from the backup.
        self.mount("-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt)
        self.assertIn(f"on a new filesystem at {mnt}", s.run("--plan").stdout)
        r = self.ok(s, "--prepare")
        self.assertIn(f"decision: restore (no local state: restoring backup {b['id']}", r.stderr)
        self.assertEqual(read(os.path.join(data, "f")), "backed up\n")
        self.assertEqual(read(os.path.join(disk, "data", "f")), "changed after the backup\n", "the old disk changed")

    def sandboxed(self, s, *args):
        """bartld ARGS as under the unit: in a mount namespace of its own where ReadWritePaths=
        made the state paths' parent (s.state) a bind mount of itself."""
        argv = s.argv(BARTLD, "--config", s.config, *args)
        return subprocess.run(["unshare", "-m", "sh", "-c", 'mount --bind "$0" "$0" && exec "$@"', s.state, *argv],
                              capture_output=True, text=True, errors="replace", env=s.env(False))

    def test_2_unmounted_state_disk_under_the_unit_exit_1_never_restored_onto_the_root_filesystem(self):
        # Under the unit ReadWritePaths= makes the state path's parent a bind mount. With the
        # disk not mounted, it binds the bare mount point of the root filesystem instead, at
        # the very mount point recorded: that was judged "a new filesystem", state lost, and
        # the backup was restored onto the root filesystem (found on a real systemd).
        if not can_mount() or not shutil.which("unshare"):
            self.skipTest("needs root and unshare to mount")
        if os.stat(self.tmp).st_dev != os.stat("/").st_dev:
            self.skipTest("the test directory is not on the root filesystem")
        s, disk, mnt, data = self.state_on_a_disk()

        def unit(*args):  # bartld as under the unit: mnt bound onto itself in a namespace
            argv = s.argv(BARTLD, "--config", s.config, *args)
            return subprocess.run(["unshare", "-m", "sh", "-c", 'mount --bind "$0" "$0" && exec "$@"', mnt, *argv],
                                  capture_output=True, text=True, errors="replace", env=s.env(False))

        self.assertEqual(unit("--prepare").returncode, 0)
        write(os.path.join(data, "f"), "backed up\n")
        self.assertEqual(unit("--backup").returncode, 0)
        [b] = s.backups()
        self.umount(mnt)
        r = unit("--prepare")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertRegex(r.stderr, rf"{re.escape(data)} is missing and the filesystem that held it "
                                   rf"\(\d+:\d+ on {re.escape(mnt)}\) is not mounted")
        self.assertEqual(os.listdir(mnt), [], "something was restored onto the bare mount point")
        self.assertEqual(backup_ids(s), [b["id"]])
        # The disk back: served as it is.
        self.mount("--bind", disk, mnt)
        r = unit("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("decision: serve", r.stderr)

    def test_2_a_missing_bind_mount_of_a_directory_of_the_same_filesystem_is_not_mounted(self):
        # fstab binds /srv/appdata at /var/lib/app. Without the bind, /var/lib/app is a bare
        # directory of the very filesystem /srv/appdata is on: the device said "present", the
        # state was taken for lost and restored underneath the missing bind, a second copy
        # beside the real one.
        if not can_mount() or not shutil.which("unshare"):
            self.skipTest("needs root and unshare to mount")
        s = self.bare()
        src = os.path.realpath(os.path.join(self.tmp, "srv-appdata"))
        mnt = os.path.realpath(os.path.join(s.root, "var-lib-app"))
        data = os.path.join(mnt, "data")
        os.makedirs(src)
        edit_config(s.config, {"state.paths": json.dumps([data])})
        self.mount("--bind", src, mnt)

        def unit(*args):  # bartld as under the unit: ReadWritePaths= binds mnt onto itself
            argv = s.argv(BARTLD, "--config", s.config, *args)
            return subprocess.run(["unshare", "-m", "sh", "-c", 'mount --bind "$0" "$0" && exec "$@"', mnt, *argv],
                                  capture_output=True, text=True, errors="replace", env=s.env(False))

        self.ok(s, "--prepare")
        c = s.marker()["components"][0]
        self.assertEqual((c["bind_source"], c["bind_mount_point"]), (src, mnt))
        write(os.path.join(data, "f"), "backed up\n")
        self.ok(s, "--backup")
        [b] = s.backups()
        write(os.path.join(data, "f"), "changed after the backup\n")

        self.umount(mnt)
        self.assertEqual(os.stat(mnt).st_dev, os.stat(src).st_dev, "not the case this test is about")
        missing = f"{data} is missing and the bind mount that held it ({src} at {mnt}) is not mounted"
        for how, r in (("by hand", s.run("--prepare")), ("under the unit", unit("--prepare"))):
            with self.subTest(how):
                self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
                self.assertIn(missing, r.stderr)
                self.assertIn("will not restore onto the filesystem underneath: mount it", r.stderr)
                self.assertEqual(os.listdir(mnt), [], "something was restored underneath the bind mount")
        self.assertIn("not mounted", s.run("--plan").stdout)
        self.assertEqual(backup_ids(s), [b["id"]])

        # The bind back, by hand and under the unit: served as it is, nothing rolled back.
        self.mount("--bind", src, mnt)
        for how, r in (("by hand", s.run("--prepare")), ("under the unit", unit("--prepare"))):
            with self.subTest(how):
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("decision: serve", r.stderr)
        self.assertEqual(read(os.path.join(src, "data", "f")), "changed after the backup\n")
        self.umount(mnt)

        # Another, empty directory bound there: the operator gave the state a new home.
        new = os.path.realpath(os.path.join(self.tmp, "srv-newdata"))
        os.makedirs(new)
        self.mount("--bind", new, mnt)
        self.assertIn(f"{data} is missing in {new} now bound at {mnt} (was {src})", s.run("--plan").stdout)
        r = self.ok(s, "--prepare")
        self.assertIn(f"decision: restore (no local state: restoring backup {b['id']}", r.stderr)
        self.assertEqual(read(os.path.join(new, "data", "f")), "backed up\n")
        self.assertEqual(read(os.path.join(src, "data", "f")), "changed after the backup\n", "the old copy changed")

    def test_2_a_state_lost_in_a_bind_of_a_btrfs_directory_is_restored_not_called_unmounted(self):
        # A btrfs data disk, a directory of it bound at the state's parent. btrfs gives its
        # files an st_dev of their subvolume, never the device /proc/self/mountinfo shows:
        # the bind's device was judged against the state's st_dev, so with the bind there and
        # the state deleted, bartld said "not mounted" at every start (exit 1, forever).
        if not can_mount() or not shutil.which("mkfs.btrfs"):
            self.skipTest("needs root and mkfs.btrfs to mount a btrfs disk")
        s = self.bare()
        image = os.path.join(self.tmp, "btrfs.img")
        with open(image, "wb") as f:
            f.truncate(128 << 20)
        subprocess.run(["mkfs.btrfs", "-q", image], check=True, capture_output=True)
        disk = os.path.realpath(os.path.join(self.tmp, "disk"))
        try:
            self.mount("-o", "loop", image, disk)
        except subprocess.CalledProcessError:  # no loop devices here (a container without /dev/loop*)
            self.skipTest("cannot mount a loop device here")
        src = os.path.join(disk, "appdata")
        mnt = os.path.realpath(os.path.join(s.root, "var-lib-app"))
        data = os.path.join(mnt, "data")
        os.makedirs(src)
        self.mount("--bind", src, mnt)
        edit_config(s.config, {"state.paths": json.dumps([data])})
        self.ok(s, "--prepare")
        c = s.marker()["components"][0]
        self.assertEqual((c["bind_source"], c["bind_mount_point"]), (src, mnt))
        self.assertEqual(c["bind_filesystem"], disk)
        with open("/proc/self/mountinfo") as f:
            table_device = next(line.split()[2] for line in f if line.split()[4] == disk)
        st = os.stat(data)
        self.assertNotEqual(table_device, f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}",
                            "btrfs gave its files the mount table's device: not the case this test is about")
        write(os.path.join(data, "f"), "backed up\n")
        self.ok(s, "--backup")
        [b] = s.backups()

        shutil.rmtree(data)  # the state lost, the bind and its disk there
        r = self.ok(s, "--prepare")
        self.assertIn(f"decision: restore (no local state: restoring backup {b['id']}", r.stderr)
        self.assertEqual(read(os.path.join(src, "data", "f")), "backed up\n")

        # The bind missing is still "not mounted".
        self.umount(mnt)
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn(f"the bind mount that held it ({src} at {mnt}) is not mounted", r.stderr)
        self.assertEqual(os.listdir(mnt), [])

    def test_2_state_lost_under_the_unit_is_lost_by_hand_too_and_the_reverse(self):
        if not can_mount() or not shutil.which("unshare"):
            self.skipTest("needs root and unshare to mount")
        s = self.bare()
        data = os.path.join(s.state, "data")
        os.makedirs(s.state)
        edit_config(s.config, {"state.paths": json.dumps([data])})
        r = self.sandboxed(s, "--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(s.marker()["components"][0]["mount_point"], s.state)
        write(os.path.join(data, "f"), "backed up\n")
        r = self.sandboxed(s, "--backup")
        self.assertEqual(r.returncode, 0, r.stderr)
        [b] = s.backups()

        # Stopped; the data moved aside; bartld by hand, outside the sandbox.
        aside = os.path.join(s.state, "aside")
        os.makedirs(aside)
        os.rename(data, os.path.join(aside, "data"))
        plan = s.run("--plan").stdout
        self.assertNotIn("not mounted", plan)
        self.assertIn(f"{data} is missing (no state ID): state lost", plan)
        self.assertRegex(plan, r"plan: (.* -> )?restore ")
        r = self.ok(s, "--prepare")
        self.assertIn(f"decision: restore (no local state: restoring backup {b['id']}", r.stderr)
        self.assertEqual(read(os.path.join(data, "f")), "backed up\n")
        self.assertEqual(read(os.path.join(aside, "data", "f")), "backed up\n", "the data moved aside changed")

        # The reverse: a marker bartld wrote by hand, the data lost, judged under the unit.
        self.assertNotEqual(s.marker()["components"][0]["mount_point"], s.state)
        shutil.rmtree(data)
        r = self.sandboxed(s, "--plan")
        self.assertNotIn("not mounted", r.stdout)
        self.assertIn(f"{data} is missing (no state ID): state lost", r.stdout)
        self.assertRegex(r.stdout, r"plan: (.* -> )?restore ")

    # --- 3. a store that is unmounted or mistyped ---------------------------------------------

    def test_3_unmounted_or_mistyped_store_is_not_a_bartl_store_never_init(self):
        s = self.bare()
        # Mistyped: an empty directory, and a directory that holds other things.
        for where, fill in [("backup", None), ("etc", "junk")]:
            url = "file://" + os.path.join(s.root, where)
            os.makedirs(os.path.join(s.root, where), exist_ok=True)
            if fill:
                write(os.path.join(s.root, where, fill), "not a backup\n")
            edit_config(s.config, {"backup.store": json.dumps(url)})
            r = s.run("--prepare")
            self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
            self.assertIn(f"store {url} holds no bartl-store.json: it is not a bartl store", r.stderr)
            self.assertIn(f"`bartld --config {s.config} --init-store` (or `bartlctl init-store -c {s.config}`)", r.stderr)
            self.assertNotIn("decision: init", r.stderr)
            self.assertFalse(os.path.exists(s.state), "a fresh install happened")
            self.assertFalse(os.path.exists(os.path.join(s.bartl_dir, "marker.json")))
            self.assertIn("not a bartl store", s.run("--plan").stdout)
        # Another app's store.
        other = os.path.join(s.root, "other")
        os.makedirs(other)
        with open(os.path.join(s.store, "bartl-store.json")) as f:
            identity = json.load(f)
        with open(os.path.join(other, "bartl-store.json"), "w") as f:
            json.dump(dict(identity, app="wiki"), f)
        edit_config(s.config, {"backup.store": json.dumps("file://" + other)})
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("belongs to app wiki, not notes", r.stderr)
        self.assertFalse(os.path.exists(s.state))

        if not can_mount():
            return
        # The store is a mounted disk; back up; the disk is not mounted when the server
        # restarts after losing its state.
        disk = os.path.join(self.tmp, "backup-disk")
        os.makedirs(disk)
        shutil.rmtree(s.store)
        self.mount("--bind", disk, s.store)
        edit_config(s.config, {"backup.store": json.dumps("file://" + s.store)})
        s.init_store()
        self.ok(s, "--prepare")
        write(os.path.join(s.state, "f"), "precious\n")
        self.ok(s, "--backup")
        [b] = s.backups()
        self.umount(s.store)
        disaster(s)
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("not a bartl store", r.stderr)
        self.assertIn("--init-store", r.stderr)
        self.assertFalse(os.path.exists(s.state), "a fresh install happened")
        self.assertEqual(os.listdir(s.store), [], "bartl wrote into the bare mount point")
        self.mount("--bind", disk, s.store)
        r = self.ok(s, "--prepare")
        self.assertEqual(s.marker()["origin"], f"restore:{b['id']}")
        self.assertEqual(read(os.path.join(s.state, "f")), "precious\n")

    # --- 4. reordered state paths -------------------------------------------------------------

    def test_4_reordered_or_moved_state_paths_restore_by_name(self):
        s = self.bare()
        one, two = os.path.join(s.root, "var", "lib", "one"), os.path.join(s.root, "var", "lib", "two")
        edit_config(s.config, {"state.paths": json.dumps([one, two])})
        self.ok(s, "--prepare")
        write(os.path.join(one, "which"), "one\n")
        write(os.path.join(two, "which"), "two\n")
        write(os.path.join(two, "only-in-two"), "2\n")
        before = (tree_digest(one), tree_digest(two))
        self.ok(s, "--backup")
        [b] = s.backups()
        edit_config(s.config, {"state.paths": json.dumps([two, one])})
        disaster(s)
        self.ok(s, "--prepare")
        self.assertEqual(s.marker()["origin"], f"restore:{b['id']}")
        self.assertEqual((tree_digest(one), tree_digest(two)), before)

        # A path renamed since the backup: refused (78) until [state] moved says where it went.
        three = os.path.join(s.root, "srv", "three")
        edit_config(s.config, {"state.paths": json.dumps([one, three])})
        disaster(s)
        shutil.rmtree(three, ignore_errors=True)
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        self.assertIn(f"backup {b['id']} holds state path {two}, which [state] paths does not declare", r.stderr)
        # Exit 78 at the key's FILE:LINE:COLUMN, as every configuration error.
        self.assertRegex(r.stderr, rf"{re.escape(s.config)}:\d+:\d+: backup {b['id']} holds state path")
        self.assertIn("[state] moved", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(s.bartl_dir, "marker.json")))
        edit_config(s.config, {"state.moved": f"{{ {json.dumps(two)} = {json.dumps(three)} }}"})
        self.ok(s, "--prepare")
        self.assertEqual((tree_digest(one), tree_digest(three)), before)

    # --- 5. components that come and go -------------------------------------------------------

    def test_5_new_declared_path_is_created_empty_by_hook_or_filled_by_migration(self):
        s = self.bare()
        media, thumbs, cache = (os.path.join(s.root, "var", "lib", n) for n in ("media", "thumbs", "cache"))
        self.ok(s, "--prepare")
        write(os.path.join(s.state, "db"), "kept\n")
        # A path added with the same engine: created empty, recorded, served (not "incomplete").
        edit_config(s.config, {"state.paths": json.dumps([s.state, media])})
        r = self.ok(s, "--prepare")
        self.assertIn(f"new component path:{media} of notes: created empty", r.stderr)
        self.assertEqual(os.listdir(media), [])
        self.assertEqual([c["name"] for c in s.marker()["components"]], [s.state, media])
        self.assertIn(("add", f"path:{media}: created empty"), history(s))
        self.assertIn("plan: serve", s.run("--plan").stdout)

        # A path added by [hooks] init_component.
        hook = os.path.join(self.tmp, "init-component")
        write(hook, '#!/bin/sh\nset -e\necho "$BARTL_COMPONENT $BARTL_COMPONENT_KIND $BARTL_COMPONENT_NAME" '
              '> "$BARTL_STAGING/made-by-hook"\n', 0o755)
        edit_config(s.config, {"state.paths": json.dumps([s.state, media, thumbs]),
                               "hooks.init_component": json.dumps([hook])})
        r = self.ok(s, "--prepare")
        self.assertIn(f"new component path:{thumbs} of notes: created by {hook}", r.stderr)
        self.assertEqual(read(os.path.join(thumbs, "made-by-hook")), f"path:{thumbs} path {thumbs}\n")
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(thumbs), ".thumbs.bartl-staging")))

        # A path added by a new engine whose migration fills it: recorded before the step runs.
        mig = os.path.join(self.tmp, "migrations")
        write(os.path.join(mig, "2.0.0_cache"), f'#!/bin/sh\nset -e\necho filled > "{cache}/by-migration"\n', 0o755)
        edit_config(s.config, {"state.paths": json.dumps([s.state, media, thumbs, cache]),
                               "hooks.init_component": None, "hooks.migrations": json.dumps(mig),
                               "app.version": '"2.0.0"', "backup.before_migrate": "false"})
        r = self.ok(s, "--prepare")
        self.assertLess(r.stderr.index(f"new component path:{cache}"), r.stderr.index("migration step 2.0.0_cache done"))
        self.assertEqual(read(os.path.join(cache, "by-migration")), "filled\n")
        m = s.marker()
        self.assertEqual((m["version"], [a["name"] for a in m["migrations"]]), ("2.0.0", ["2.0.0_cache"]))
        self.assertEqual(len(m["components"]), 4)
        self.assertEqual(read(os.path.join(s.state, "db")), "kept\n")
        # Every component is in the next backup, under its own name.
        self.ok(s, "--backup")
        self.assertEqual(s.backups()[0]["paths"], [s.state, media, thumbs, cache])

    def test_5_added_path_holding_data_is_foreign_and_untouched(self):
        s = self.bare()
        self.ok(s, "--prepare")
        legacy = os.path.join(s.root, "var", "lib", "legacy")
        write(os.path.join(legacy, "theirs.db"), "someone else's data\n")
        before, marker = tree_digest(legacy), s.marker()
        edit_config(s.config, {"state.paths": json.dumps([s.state, legacy])})
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_FOREIGN, r.stderr)
        self.assertIn(f"{legacy} holds data with no state ID, not the marker's state ID {marker['state_id']}", r.stderr)
        self.assertIn("adopt", r.stderr)
        self.assertEqual(tree_digest(legacy), before)
        self.assertEqual(s.marker(), marker)

    def test_5_removed_path_exit_78_until_bartlctl_forget(self):
        s = self.bare()
        media = os.path.join(s.root, "var", "lib", "media")
        edit_config(s.config, {"state.paths": json.dumps([s.state, media])})
        self.ok(s, "--prepare")
        write(os.path.join(media, "photo"), "pixels\n")
        self.ok(s, "--backup")
        edit_config(s.config, {"state.paths": json.dumps([s.state])})
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        self.assertIn(f"records component(s) path:{media} that the configuration no longer declares", r.stderr)
        self.assertIn(f"bartlctl forget -c {s.config} COMPONENT", r.stderr)
        r = s.run("--backup")
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        self.assertIn(f"no longer declared: path:{media}", r.stderr)
        self.assertIn(f"bartlctl forget -c {s.config} COMPONENT", r.stderr)
        self.assertEqual(len(s.backups()), 1, "a backup silently dropped the removed path")
        r = s.ctl("forget", "--config", s.config, f"path:{media}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([c["name"] for c in s.marker()["components"]], [s.state])
        [(event, detail)] = [h for h in history(s) if h[0] == "forget"]
        self.assertIn(media, detail)
        self.ok(s, "--prepare")
        self.assertEqual(read(os.path.join(media, "photo")), "pixels\n", "forget deleted the data")
        self.ok(s, "--backup")
        self.assertEqual(s.backups()[0]["paths"], [s.state])

    # --- 6. two hosts writing one store -------------------------------------------------------

    def test_6_old_host_is_fenced_after_another_host_takes_the_store_over(self):
        if not can_mount() or shutil.which("unshare") is None:
            self.skipTest("needs root and unshare for a second host")
        bus = PrivateBus()
        self.addCleanup(bus.close)
        root = os.path.join(self.tmp, "shared")
        a = self.host_stack("host-a", root)
        edit_config(a.config, KEEP_ONE)
        a.start(extra_env=bus.env())
        a.wait_ready()
        a.post_note("written on A")
        r = a.ctl("backup", "--wait", bus=bus)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        [a1] = a.backups()
        self.assertEqual(a1["host"], "host-a")

        # Host B, the new server of a migration to engine 2.0.0, restores A's backup, takes the
        # store over, migrates and backs up, while A still serves (nobody stopped it).
        b = self.host_stack("host-b", root, "2.0.0")
        edit_config(b.config, KEEP_ONE)
        r = self.ok(b, "--prepare")
        self.assertIn(f"restoring backup {a1['id']}", r.stderr)
        self.assertRegex(r.stderr, r"taken over by state \w+ \(generation 2\); the previous writer, state \w+ on "
                                   r"host host-a .* is fenced from now on")
        self.assertEqual(b.marker()["version"], "2.0.0")
        with open(os.path.join(a.store, "bartl-store.json")) as f:
            writer = json.load(f)["writer"]
        self.assertEqual((writer["host"], writer["generation"], writer["state_id"]),
                         ("host-b", 2, b.marker()["state_id"]))
        [pre] = [x for x in b.backups() if x["reason"] == "pre-migration"]
        b.start()
        b.wait_ready()
        b.post_note("written on B", tags=["b"])
        b.stop()
        self.ok(b, "--backup")
        b1 = b.backups()[0]
        self.assertEqual(b1["host"], "host-b")
        both = sorted([a1["id"], pre["id"], b1["id"]])
        self.assertEqual(sorted(backup_ids(b)), both)

        # A's next backup while it serves is refused as fenced; it deletes nothing.
        r = a.ctl("backup", "--wait", bus=bus)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("fenced", r.stdout + r.stderr)
        self.assertEqual(sorted(backup_ids(a)), both)
        st = a.ctl("status", bus=bus)
        self.assertIn("FENCED:", st.stdout)
        self.assertIn("taken over by state", st.stdout)
        self.assertIn("host host-b", st.stdout)
        self.assertIn("host-b", json.loads(a.ctl("status", "--json", bus=bus).stdout)["fenced"])
        self.assertIn("fenced: store", a.read_log())
        self.assertEqual(a.stop(), 0)
        # ... and so is `bartld --backup`, exit 1, naming the way out.
        r = a.run("--backup")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("fenced: store", r.stderr)
        self.assertIn("systemctl disable --now bartld@notes", r.stderr)
        self.assertEqual(sorted(backup_ids(a)), both)
        # B's retention (keep_last = 1) deletes its own older backup, never A's, and keeps the
        # pre-migration one (keep_pre_migration).
        time.sleep(1.1)  # retention orders backups by their names' seconds
        self.ok(b, "--backup")
        b2 = b.backups()[0]
        self.assertEqual(sorted(backup_ids(b)), sorted([a1["id"], pre["id"], b2["id"]]))

        # A backup of A dated after the takeover (A's clock a minute fast) is a fenced writer's:
        # a later disaster recovery (host C) restores B's newest backup, not A's.
        late = redate(a, a1, time.time() + 60)
        c = self.host_stack("host-c", root, "2.0.0")
        r = self.ok(c, "--prepare")
        self.assertIn(f"backup {late['id']} was written by state", r.stderr)
        self.assertIn("a fenced writer's backup, not restored", r.stderr)
        self.assertEqual(c.marker()["origin"], f"restore:{b2['id']}")
        c.start()
        c.wait_ready()
        self.assertEqual([(n["text"], n["tags"]) for n in c.get("/notes")[1]],
                         [("written on A", []), ("written on B", ["b"])])

    # --- 7. a crash in step 2 of a 2-step migration -------------------------------------------

    def test_7_crash_in_step_2_resumes_without_a_second_pre_migration_backup(self):
        s = self.bare()
        self.ok(s, "--prepare")
        write(os.path.join(s.state, "v"), "1.0.0\n")
        mig = os.path.join(self.tmp, "migrations")
        log = os.path.join(self.tmp, "steps.log")
        crashed = os.path.join(self.tmp, "crashed")
        write(os.path.join(mig, "1.5.0"), f'#!/bin/sh\necho 1.5.0 >> {log}\necho 1.5.0 > "{s.state}/v"\n', 0o755)
        # Step 2 writes half its work, then bartld dies under it (kill -9), once.
        write(os.path.join(mig, "2.0.0"),
              f'#!/bin/sh\necho "2.0.0 $BARTL_STATE_VERSION" >> {log}\necho half > "{s.state}/half"\n'
              f'if [ ! -e {crashed} ]; then touch {crashed}; kill -9 $PPID; exit 1; fi\n'
              f'rm "{s.state}/half"; echo 2.0.0 > "{s.state}/v"\n', 0o755)
        edit_config(s.config, {"hooks.migrations": json.dumps(mig), "app.version": '"2.0.0"',
                               "backup.keep_pre_migration": "1"})
        r = s.run("--prepare")
        self.assertEqual(r.returncode, -signal.SIGKILL, r.stderr)
        [pre] = s.backups()
        self.assertEqual((pre["reason"], pre["version"]), ("pre-migration", "1.0.0"))
        with open(os.path.join(s.bartl_dir, "intent.json")) as f:
            intent = json.load(f)
        self.assertEqual((intent["op"], intent["pre_migration_backup"]), ("migrate", pre["id"]))
        self.assertEqual(s.marker()["version"], "1.5.0")

        r = self.ok(s, "--prepare")
        self.assertNotIn("decision: back up (pre-migration)", r.stderr)
        self.assertIn(f"1 step(s); the way back is backup {pre['id']}", r.stderr)
        self.assertEqual(backup_ids(s), [pre["id"]], "a second pre-migration backup was taken")
        self.assertEqual(read(log).split("\n")[:-1], ["1.5.0", "2.0.0 1.5.0", "2.0.0 1.5.0"])
        self.assertEqual(read(os.path.join(s.state, "v")), "2.0.0\n")
        m = s.marker()
        self.assertEqual((m["version"], [a["name"] for a in m["migrations"]]), ("2.0.0", ["1.5.0", "2.0.0"]))
        self.assertFalse(os.path.exists(os.path.join(s.bartl_dir, "intent.json")))
        # The pre-migration backup holds the clean 1.0.0 state, and keep_pre_migration keeps it.
        self.assertNotIn("state/0/half", blob_listing(s, pre))
        self.ok(s, "--backup")
        self.assertIn(pre["id"], backup_ids(s))

    # --- 8. a pre-release engine and its release's scripts ------------------------------------

    def test_8_prerelease_engine_runs_the_release_scripts_once(self):
        example = os.path.join(EXAMPLES, "bartl", "migrations")
        for name in ("2.0.0-add-tags", "2.0.0_add-tags"):
            with self.subTest(script=name):
                s = self.stack("1.0.0")
                s.start(); s.wait_ready(); s.post_note("before"); s.stop()
                mig = os.path.join(s.root, "migrations")
                os.makedirs(mig)
                shutil.copy2(os.path.join(example, "2.0.0-add-tags"), os.path.join(mig, name))
                runs = os.path.join(s.root, "runs")
                # The real add-tags migration, counting its runs.
                with open(os.path.join(mig, name), "a") as f:
                    f.write(f"\nopen({runs!r}, 'a').write('ran\\n')\n")
                s.render("2.0.0", **{"app.version": '"2.0.0-rc.1"', "hooks.migrations": json.dumps(mig)})
                self.assertIn("migrate 1.0.0 -> 2.0.0-rc.1", s.run("--plan").stdout)
                s.start(); s.wait_ready()
                self.assertEqual([(n["text"], n["tags"]) for n in s.get("/notes")[1]], [("before", [])])
                s.post_note("tagged", tags=["rc"])
                s.stop()
                m = s.marker()
                self.assertEqual((m["version"], [a["name"] for a in m["migrations"]]), ("2.0.0-rc.1", [name]))
                self.assertEqual(read(runs), "ran\n")
                # The release runs nothing twice.
                s.render("2.0.0", **{"hooks.migrations": json.dumps(mig)})
                self.assertIn("migrate 2.0.0-rc.1 -> 2.0.0", s.run("--plan").stdout)
                r = self.ok(s, "--prepare")
                self.assertIn("0 step(s)", r.stderr)
                self.assertEqual(read(runs), "ran\n")
                m = s.marker()
                self.assertEqual((m["version"], [a["name"] for a in m["migrations"]]), ("2.0.0", [name]))

    # --- 9. a backup dated in the future ------------------------------------------------------

    def test_9_future_dated_backup_neither_restored_first_nor_pushes_real_ones_out(self):
        s = self.bare(**{"backup.keep_last": "7"})
        self.ok(s, "--prepare")
        write(os.path.join(s.state, "f"), "old\n")
        self.ok(s, "--backup")
        [old] = s.backups()
        time.sleep(1.1)  # backups are named to the second
        write(os.path.join(s.state, "f"), "newest\n")
        self.ok(s, "--backup")
        newest = s.backups()[0]
        self.assertNotEqual(newest["id"], old["id"])
        # Another host's wrong clock: the old backup as if made in 2099.
        future = redate(s, old, 4070908800)
        self.assertEqual(future["created"], "2099-01-01T00:00:00.000Z")
        with open(os.path.join(s.store, future["blob"]["name"]), "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), future["blob"]["sha256"])

        # Retention (keep_last = 1) neither deletes the real newest backups nor counts it.
        edit_config(s.config, KEEP_ONE)
        for _ in range(2):
            time.sleep(1.1)
            self.ok(s, "--backup")
            ids = backup_ids(s)
            self.assertEqual(ids[0], old["id"], "the future-dated backup was deleted")
            self.assertEqual(len(ids), 2, ids)
        real = s.backups()[1]
        self.assertNotIn(real["id"], (old["id"], newest["id"]))

        # Disaster recovery restores the real newest backup and names the future one.
        disaster(s)
        plan = s.run("--plan").stdout
        self.assertIn(f"warning: backup {old['id']} is dated 2099", plan)
        self.assertIn(f"plan: restore {real['id']}", plan)
        r = self.ok(s, "--prepare")
        self.assertEqual(s.marker()["origin"], f"restore:{real['id']}")
        self.assertEqual(read(os.path.join(s.state, "f")), "newest\n")
        warned = [l for l in r.stderr.split("\n") if old["id"] in l and "warning" in l]
        self.assertEqual(len(warned), 1, r.stderr)
        self.assertRegex(warned[0], rf"backup {old['id']} is dated 2099-01-01T00:00:00Z, more than 5 min ahead of this "
                                    rf"host's clock .*not taken as the newest; backup {real['id']} is")

    # --- 10. smaller findings -----------------------------------------------------------------

    def test_10_store_and_state_overlapping_exit_78_at_check_config(self):
        s = self.bare()
        lib = os.path.join(s.root, "var", "lib")
        cases = [(s.state, [s.state], "is"), (os.path.join(s.state, "backups"), [s.state], "is inside"),
                 (lib, [s.state], "contains")]
        for store, paths, how in cases:
            with self.subTest(store=store):
                edit_config(s.config, {"backup.store": json.dumps("file://" + store), "state.paths": json.dumps(paths),
                                       "state.bartl_dir": json.dumps(os.path.join(s.root, "bartl"))})
                r = s.run("--check-config")
                self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
                self.assertRegex(r.stderr, re.escape(s.config) + rf":\d+:\d+: \[backup\] store file://{re.escape(store)} "
                                 rf"{how} \[state\] paths\[0\]")
                self.assertEqual(s.run("--prepare").returncode, EXIT_CONFIG)
                self.assertFalse(os.path.exists(s.state))

    def test_10_empty_lost_and_found_is_no_data(self):
        s = self.bare()
        os.makedirs(os.path.join(s.state, "lost+found"))
        r = self.ok(s, "--prepare")
        self.assertIn("decision: init", r.stderr)
        write(os.path.join(s.state, "f"), "data\n")
        self.ok(s, "--backup")
        [b] = s.backups()
        # A replacement disk with only its empty lost+found: restored.
        disaster(s)
        os.makedirs(os.path.join(s.state, "lost+found"))
        self.ok(s, "--prepare")
        self.assertEqual(s.marker()["origin"], f"restore:{b['id']}")
        self.assertEqual(read(os.path.join(s.state, "f")), "data\n")
        # A lost+found that holds something is data: foreign, untouched.
        disaster(s)
        write(os.path.join(s.state, "lost+found", "#1234"), "recovered by fsck\n")
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_FOREIGN, r.stderr)
        self.assertEqual(read(os.path.join(s.state, "lost+found", "#1234")), "recovered by fsck\n")

    def test_10_killed_backup_leaves_no_temporary_upload_after_the_next_backup(self):
        s = self.bare(**{"backup.compression": '"zstd:19"'})
        self.ok(s, "--prepare")
        # Incompressible data at a slow level: the upload runs long enough to be killed in it.
        with open(os.path.join(s.state, "big"), "wb") as f:
            f.write(os.urandom(24 << 20))
        pid, temp = s.kill_backup_mid_upload(timeout=30)
        self.assertTrue(temp, "no temporary upload was seen before the backup finished")
        self.assertEqual(s.backups(), [])
        self.assertIn(f"-{pid}-", temp[0], "the temporary upload does not name its writer's PID")
        self.assertTrue(os.path.exists(os.path.join(s.store, temp[0])))
        os.remove(os.path.join(s.state, "big"))
        self.ok(s, "--backup")
        self.assertEqual([n for n in os.listdir(s.store) if ".tmp-" in n], [])
        self.assertEqual(len(s.backups()), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
