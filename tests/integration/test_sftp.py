#!/usr/bin/python3
"""The sftp:// store end to end (issue 12, items 4 and 5): the real bartld against Debian's
OpenSSH server, which each test starts on a loopback port with a host key and a user key of
its own, checked by independent clients (sftp, scp, zstd, tar). The store directory lives on
this machine, so the tests also look at it directly. Needs root (sshd's privilege separation)
and openssh-server/openssh-client (tools/install-deps)."""
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from bartltest import (BARTLD, EXIT_CONFIG, EXIT_RUNTIME, Stack, StackTest, edit_config, position_of, scaled,
                       store_objects, tree_digest)
from signedstore import signed_encrypted_round_trip
from sshtest import SshServer, keygen

KEEP_ONE = {"backup.keep_last": "1", "backup.keep_daily": "0", "backup.keep_weekly": "0", "backup.keep_monthly": "0"}


class SftpStack(Stack):
    """The example notes app whose [backup] store is ROOT/backups on `ssh`, over sftp://."""

    def __init__(self, root, version="1.0.0", ssh=None, **kw):
        self.ssh = ssh
        super().__init__(root, version, **kw)

    def render(self, version, **overrides):
        sftp = {"backup.store": json.dumps(self.ssh.url(os.path.join(self.root, "backups"))),
                "store.retry_for": '"1s"', "store.call_timeout": '"10s"',
                "store.sftp.key_file": json.dumps(self.ssh.user_key),
                "store.sftp.known_hosts": json.dumps(self.ssh.known_hosts)}
        super().render(version, **{**sftp, **overrides})


def disaster(s):
    """The server loses its state: state paths and bartl's bookkeeping are gone."""
    shutil.rmtree(s.here(s.state))
    shutil.rmtree(s.here(s.bartl_dir))


class Sftp(StackTest):
    stack_class = SftpStack

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("sshd needs root")
        self.ssh = SshServer(os.path.join(self.tmp, "sshd"))
        self.addCleanup(self.ssh.stop)

    def stack(self, version="1.0.0", root=None, **kw):
        return super().stack(version, root, ssh=self.ssh, **kw)

    def sftp_stack(self, version="1.0.0", root=None, **overrides):
        """A stack over sftp://; `overrides` as edit_config() takes them ("backup.compression")."""
        s = self.stack(version, root)
        if overrides:
            edit_config(s.config, overrides)
        return s

    def ok(self, s, *args, **kw):
        r = s.run(*args, **kw)
        self.assertEqual(r.returncode, 0, f"bartld {' '.join(args)}:\n{r.stderr}")
        return r

    def test_fresh_install_backup_disaster_and_restore(self):
        s = self.sftp_stack()  # its --init-store went over sftp
        with open(os.path.join(s.store, "bartl-store.json")) as f:
            self.assertEqual(json.load(f)["app"], "notes")
        s.start()
        s.wait_ready()
        s.post_note("kept on the SSH server")
        self.assertEqual(s.stop(), 0)
        self.ok(s, "--backup")
        [m] = s.backups()
        self.assertEqual(store_objects(s.store), sorted([m["blob"]["name"], m["blob"]["name"] + ".json"]))
        blob = os.path.join(s.store, m["blob"]["name"])
        self.assertEqual(os.stat(blob).st_mode & 0o777, 0o600)
        with open(blob, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), m["blob"]["sha256"])
        before = tree_digest(s.state)

        disaster(s)
        r = self.ok(s, "--plan")
        self.assertIn(f"plan: restore {m['id']}", r.stdout)
        r = self.ok(s, "--prepare")
        self.assertIn(f"restoring backup {m['id']}", r.stderr)
        self.assertEqual(tree_digest(s.state), before)
        self.assertEqual(s.marker()["origin"], f"restore:{m['id']}")
        s.start()
        s.wait_ready()
        self.assertEqual([n["text"] for n in s.get("/notes")[1]], ["kept on the SSH server"])

    def test_signed_and_encrypted_backup_through_sftp(self):
        # As through s3:// (test_s3.py): .sig uploaded, removed by retention with its backup, a
        # planted unsigned backup refused, the signed one restored.
        s = self.sftp_stack()
        signed_encrypted_round_trip(self, s, lambda: [n for n in os.listdir(s.store) if not n.startswith(".")])

    def test_the_systemd_credential_sftp_key(self):
        s = self.sftp_stack()
        creds = os.path.join(self.tmp, "credentials")
        os.makedirs(creds)
        shutil.copy(self.ssh.user_key, os.path.join(creds, "sftp-key"))
        edit_config(s.config, {"store.sftp.key_file": None})
        self.ok(s, "--prepare", extra_env={"CREDENTIALS_DIRECTORY": creds})
        self.ok(s, "--backup", extra_env={"CREDENTIALS_DIRECTORY": creds})
        self.assertEqual(len(s.backups()), 1)
        r = s.run("--backup")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("no SSH key", r.stderr)
        self.assertIn("sftp-key", r.stderr)

    def test_a_key_others_can_read_is_warned_about_one_they_can_write_refused(self):
        # As ssh(1) refuses an "UNPROTECTED PRIVATE KEY FILE": one line per start, naming the
        # file, its mode and the fix; a key others may replace is exit 78 at key_file.
        s = self.sftp_stack()
        key = self.ssh.user_key
        warning = f"[store.sftp] key_file {key}: mode 0644: group and others can read it (run chmod 600 {key})"
        os.chmod(key, 0o600)
        r = self.ok(s, "--check-config")
        self.assertNotIn("key_file", r.stderr)
        os.chmod(key, 0o644)
        for args in (["--check-config"], ["--prepare"], ["--backup"]):
            r = self.ok(s, *args)
            self.assertEqual(r.stderr.count(warning), 1, r.stderr)
        self.assertEqual(len(s.backups()), 1)  # a warning, and the key still works
        os.chmod(key, 0o600)
        os.chown(key, 65534, 65534)  # nobody's: it can chmod the key back at will
        r = self.ok(s, "--check-config")
        self.assertIn(f"[store.sftp] key_file {key}: owned by uid 65534, neither root nor bartld's uid 0", r.stderr)
        os.chown(key, 0, 0)
        for mode, who in ((0o620, "in the group"), (0o602, "on this host"), (0o666, "on this host")):
            os.chmod(key, mode)
            r = s.run("--check-config")
            self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
            self.assertIn(f"{s.config}:{position_of(s.config, json.dumps(key))}: [store.sftp] key_file {key}: "
                          f"mode {mode:04o}: anyone {who} could have replaced it: run chmod g-w,o-w {key} and check "
                          f"its content",
                          r.stderr)
            r = s.run("--backup")
            self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        self.assertEqual(len(s.backups()), 1)
        # systemd's credentials are 0400 or 0440 root: fine; one that others can read is not.
        os.chmod(key, 0o600)
        creds = os.path.join(self.tmp, "credentials")
        os.makedirs(creds)
        cred = os.path.join(creds, "sftp-key")
        shutil.copy(key, cred)
        edit_config(s.config, {"store.sftp.key_file": None})
        env = {"CREDENTIALS_DIRECTORY": creds}
        for mode in (0o400, 0o440):
            os.chmod(cred, mode)
            r = self.ok(s, "--check-config", extra_env=env)
            self.assertNotIn("sftp-key", r.stderr)
        os.chmod(cred, 0o444)
        r = self.ok(s, "--backup", extra_env=env)
        self.assertEqual(r.stderr.count(f"the systemd credential sftp-key {cred}: mode 0444: others can read it (run "
                                        f"chmod o-r {cred})"), 1, r.stderr)
        self.assertEqual(len(s.backups()), 2)  # the credential worked too

    def test_no_bartl_store_there_is_exit_1_never_init(self):
        s = self.sftp_stack()
        os.remove(os.path.join(s.store, "bartl-store.json"))
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("holds no bartl-store.json", r.stderr)
        self.assertFalse(os.path.exists(s.state))
        # A directory that is not there (a typo in the URL) is not created.
        shutil.rmtree(s.store)
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn(f"directory {s.store} does not exist on 127.0.0.1:{self.ssh.port}", r.stderr)
        self.assertFalse(os.path.exists(s.store))
        self.assertFalse(os.path.exists(s.state))

    def test_host_keys_and_user_keys_are_checked(self):
        s = self.sftp_stack()
        self.ok(s, "--prepare")
        # Another server answering at that address: its host key is not the one known.
        other = os.path.join(self.tmp, "other-hostkey")
        keygen(other)
        with open(self.ssh.known_hosts, "w") as f:
            f.write(self.ssh.known_hosts_line(other))
        r = s.run("--backup")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn(f"the host key of 127.0.0.1:{self.ssh.port} does not match", r.stderr)
        with open(self.ssh.known_hosts, "w") as f:
            f.write("")
        r = s.run("--backup")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("is not in " + self.ssh.known_hosts, r.stderr)
        with open(self.ssh.known_hosts) as f:
            self.assertEqual(f.read(), "")  # never added
        with open(self.ssh.known_hosts, "w") as f:
            f.write(self.ssh.known_hosts_line(self.ssh.host_key))
        stranger = os.path.join(self.tmp, "stranger")
        keygen(stranger)
        edit_config(s.config, {"store.sftp.key_file": json.dumps(stranger)})
        r = s.run("--backup")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn(f"refused the key {stranger}", r.stderr)
        self.assertEqual(s.backups(), [])

    def test_known_hosts_listing_ssh_rsa_first_names_the_cause(self):
        # ssh-keyscan writes the server's ssh-rsa key first; libcurl then offers the server
        # only that host key type, which OpenSSH 8.8 and later refuse, and all bartl said was
        # libssh2's "Failure establishing ssh session: -5, Unable to exchange encryption keys"
        # (found on a real systemd, following bartl.toml(5)'s ssh-keyscan line).
        s = self.sftp_stack()
        self.ok(s, "--prepare")
        rsa = os.path.join(self.tmp, "rsa-hostkey")
        subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", rsa], check=True)
        with open(self.ssh.known_hosts, "w") as f:
            f.write(self.ssh.known_hosts_line(rsa) + self.ssh.known_hosts_line(self.ssh.host_key))
        r = s.run("--backup")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn(f"no host key type in common with 127.0.0.1:{self.ssh.port}", r.stderr)
        self.assertIn(f"the first key {self.ssh.known_hosts} lists for [127.0.0.1]:{self.ssh.port}", r.stderr)
        self.assertIn(f"ssh-keyscan -t ed25519 -p {self.ssh.port} 127.0.0.1", r.stderr)
        self.assertEqual(s.backups(), [])
        # The ed25519 line first, the ssh-rsa one after it: connects.
        with open(self.ssh.known_hosts, "w") as f:
            f.write(self.ssh.known_hosts_line(self.ssh.host_key) + self.ssh.known_hosts_line(rsa))
        self.ok(s, "--backup")

    def test_a_passphrase_protected_key_is_named_as_such(self):
        # libssh2 cannot use it and curl says only "login denied": the message blamed the
        # server's authorized_keys.
        s = self.sftp_stack()
        self.ok(s, "--prepare")
        locked = os.path.join(self.tmp, "locked")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret words", "-f", locked], check=True)
        with open(os.path.join(self.ssh.dir, "authorized_keys"), "a") as f, open(locked + ".pub") as pub:
            f.write(pub.read())
        edit_config(s.config, {"store.sftp.key_file": json.dumps(locked)})
        r = s.run("--backup")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn(f"the key {locked} ([store.sftp] key_file) is protected by a passphrase", r.stderr)
        self.assertNotIn("authorized_keys", r.stderr)
        self.assertNotIn("secret words", r.stderr)
        self.assertEqual(s.backups(), [])

    def test_an_unreachable_server_is_retried_then_exit_1(self):
        s = self.sftp_stack()
        self.ok(s, "--prepare")
        self.ssh.stop()
        r = s.run("--backup")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        tries = re.search(r"Couldn't connect to server \(after (\d+) tries in \d+\.\d s\)", r.stderr)
        self.assertTrue(tries, r.stderr)
        self.assertGreater(int(tries.group(1)), 1)  # retried, within retry_for = "1s"
        self.ssh.start()
        self.ok(s, "--backup")
        self.assertEqual(len(s.backups()), 1)

    def test_a_stopped_server_while_serving_is_one_warning_not_a_line_per_retry(self):
        # The fence watch looks every fence_check; each look retried for [store] retry_for and
        # logged every retry at info ("try N failed; trying again"): a journal line every few
        # seconds for a whole outage beside the one warning (found on a real systemd).
        s = self.sftp_stack(**{"backup.fence_check": '"1s"'})
        self.ok(s, "--prepare")
        s.start(extra_env={"BARTL_LOG_LEVEL": "info"})  # bartld's default, as under systemd
        s.wait_ready()
        self.ssh.stop()

        def wait_for(text):
            deadline = time.monotonic() + scaled(30)  # a pooled connection may take call_timeout
            while text not in s.read_log():
                self.assertLess(time.monotonic(), deadline, f"no {text!r} in:\n{s.read_log()}")
                time.sleep(0.2)

        wait_for("the store cannot be read")
        time.sleep(scaled(5))  # more looks of 1 s + up to 1 s of retries each
        self.ssh.start()
        wait_for("can be read again")
        log = s.read_log()
        self.assertEqual(s.stop(), 0)
        self.assertEqual(log.count("the store cannot be read"), 1, log)
        self.assertNotIn("trying again", log)
        self.assertIn("can be read again", log)

    def test_killed_backup_and_stopped_server_leave_nothing_listable_cleaned_later(self):
        s = self.sftp_stack(**{"backup.compression": '"zstd:1"'})
        self.ok(s, "--prepare")
        with open(os.path.join(s.state, "big"), "wb") as f:
            f.write(os.urandom(256 << 20))
        # The server stops mid-upload: a clear error, no backup.
        p = subprocess.Popen(s.argv(BARTLD, "--config", s.config, "--backup"), env=s.env(notify=False),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        temp = self.wait_for_upload(s, p)
        self.ssh.stop()
        _, err = p.communicate(timeout=scaled(60))
        self.assertEqual(p.returncode, EXIT_RUNTIME, err)
        self.assertIn(f"uploading {temp.split('.tmp-')[0][1:]}", err)
        self.assertEqual(s.backups(), [])
        self.ssh.start()
        # bartld killed mid-upload: its temporary names its (dead) PID.
        p = subprocess.Popen(s.argv(BARTLD, "--config", s.config, "--backup"), env=s.env(notify=False),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        killed = self.wait_for_upload(s, p, besides=temp)
        p.kill()
        p.wait()
        self.assertIn(f"-{p.pid}-", killed)
        self.assertEqual(s.backups(), [])
        self.assertEqual(len([n for n in os.listdir(s.store) if ".tmp-" in n]), 2)
        # Both writers ran on this host and are gone: the next backup removes their uploads at
        # once (others only when older than a day).
        os.remove(os.path.join(s.state, "big"))
        self.ok(s, "--backup")
        self.assertEqual([n for n in os.listdir(s.store) if ".tmp-" in n], [])
        self.assertEqual(len(s.backups()), 1)

    def test_a_full_disk_on_the_server_is_named_and_leaves_nothing(self):
        # OpenSSH's sftp-server answers ENOSPC with a bare "Failure", which libcurl turned into
        # "Error in the SSH layer" and nothing else.
        s = self.sftp_stack()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", s.store], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", s.store])
        s.init_store()
        self.ok(s, "--prepare")
        with open(os.path.join(s.state, "big"), "wb") as f:
            f.write(os.urandom(4 << 20))
        r = s.run("--backup")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn(f"is the disk on 127.0.0.1:{self.ssh.port} full, or a quota reached?", r.stderr)
        self.assertEqual(s.backups(), [])
        self.assertEqual([n for n in os.listdir(s.store) if ".tmp-" in n], [])

    def wait_for_upload(self, s, p, besides=None):
        deadline = time.monotonic() + scaled(60)
        while time.monotonic() < deadline and p.poll() is None:
            temp = [n for n in os.listdir(s.store) if ".tmp-" in n and n != besides]
            temp = [n for n in temp if os.path.getsize(os.path.join(s.store, n)) > (8 << 20)]
            if temp:
                return temp[0]
            time.sleep(0.01)
        p.kill()
        p.wait()
        self.fail("no upload in progress was seen")

    def test_independent_clients_read_what_bartld_wrote(self):
        s = self.sftp_stack()
        s.start()
        s.wait_ready()
        s.post_note("read by hand")
        s.stop()
        self.ok(s, "--backup")
        [m] = s.backups()
        blob = m["blob"]["name"]
        listing = self.ssh.sftp(f"ls -l {s.store}")
        self.assertIn(blob, listing)
        self.assertIn(blob + ".json", listing)
        self.assertNotIn(".tmp-", listing)
        out = os.path.join(self.tmp, "by-hand")
        os.makedirs(out)
        self.ssh.scp(f"root@127.0.0.1:{s.store}/{blob}", out)
        self.ssh.sftp(f"get {s.store}/{blob}.json {out}/")
        with open(os.path.join(out, blob + ".json")) as f:
            sidecar = json.load(f)
        with open(os.path.join(out, blob), "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), sidecar["blob"]["sha256"])
        # bartl(7) "Restoring by hand, without bartl": zstd -dc BLOB | tar -x.
        tree = os.path.join(out, "tree")
        os.makedirs(tree)
        subprocess.run(f"zstd -dc '{os.path.join(out, blob)}' | tar -x -C '{tree}'", shell=True, check=True)
        restored = [os.path.join(dp, n) for dp, _, ns in os.walk(tree) for n in ns if n == "notes.db"]
        self.assertEqual(len(restored), 1, os.listdir(tree))
        with open(restored[0], "rb") as a, open(os.path.join(s.state, "notes.db"), "rb") as b:
            self.assertEqual(a.read(), b.read())

    def test_a_backup_copied_in_with_scp_is_restored(self):
        # A backup made on a server with a file:// store, carried to the SSH server by hand,
        # blob first, then its sidecar (bartl(7) "Evacuation to another provider").
        root = os.path.join(self.tmp, "moved")
        before = self.stack(root=root)
        before.start()
        before.wait_ready()
        before.post_note("carried over by scp")
        before.stop()
        self.ok(before, "--backup")
        [m] = before.backups()
        carried = os.path.join(self.tmp, "carried")
        os.makedirs(carried)
        for name in (m["blob"]["name"], m["blob"]["name"] + ".json"):
            shutil.copy(os.path.join(before.store, name), carried)
        before.close()
        self.stacks.remove(before)
        shutil.rmtree(before.store)
        disaster(before)
        # The same paths, now with an empty, initialised store on the SSH server.
        s = self.sftp_stack(root=root)
        self.assertEqual(store_objects(s.store), [])
        for name in (m["blob"]["name"], m["blob"]["name"] + ".json"):
            self.ssh.scp(os.path.join(carried, name), f"root@127.0.0.1:{s.store}/")
        r = self.ok(s, "--prepare")
        self.assertIn(f"restoring backup {m['id']}", r.stderr)
        s.start()
        s.wait_ready()
        self.assertEqual([n["text"] for n in s.get("/notes")[1]], ["carried over by scp"])

    def test_another_host_takes_over_migrates_and_backs_up_the_old_one_is_fenced(self):
        if shutil.which("unshare") is None:
            self.skipTest("needs unshare for a second host")
        root = os.path.join(self.tmp, "shared")
        a = self.host_stack("host-a", root)
        edit_config(a.config, KEEP_ONE)
        self.ok(a, "--prepare")
        a.start()
        a.wait_ready()
        a.post_note("written on A")
        self.assertEqual(a.stop(), 0)
        self.ok(a, "--backup")
        [a1] = a.backups()
        self.assertEqual(a1["host"], "host-a")
        # Host B restores A's backup from the SSH server and takes the store over.
        b = self.host_stack("host-b", root)
        edit_config(b.config, KEEP_ONE)
        r = self.ok(b, "--prepare")
        self.assertIn(f"restoring backup {a1['id']}", r.stderr)
        self.assertRegex(r.stderr, r"taken over by state \w+ \(generation 2\); the previous writer, state \w+ on "
                                   r"host host-a .* is fenced from now on")
        with open(os.path.join(a.store, "bartl-store.json")) as f:
            writer = json.load(f)["writer"]
        self.assertEqual((writer["host"], writer["generation"]), ("host-b", 2))
        # B moves to a newer engine: a pre-migration backup, the migration, then a backup of
        # the 2.0.0 state, all on the SSH server.
        b.render("2.0.0", **KEEP_ONE)
        r = self.ok(b, "--prepare")
        self.assertEqual(b.marker()["version"], "2.0.0")
        self.ok(b, "--backup")
        kept = sorted(x["id"] for x in b.backups())
        self.assertIn(a1["id"], kept)  # B's retention never touches A's backups
        self.assertEqual(b.backups()[0]["version"], "2.0.0")
        self.assertEqual(b.backups()[0]["host"], "host-b")
        b.start()
        b.wait_ready()
        self.assertEqual([n["text"] for n in b.get("/notes")[1]], ["written on A"])
        self.assertEqual(b.stop(), 0)
        # A's next backup is refused as fenced; it deletes nothing (keep_last = 1).
        r = a.run("--backup")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("fenced: store " + a.ssh.url(a.store), r.stderr)
        self.assertEqual(sorted(x["id"] for x in a.backups()), kept)


if __name__ == "__main__":
    unittest.main(verbosity=2)
