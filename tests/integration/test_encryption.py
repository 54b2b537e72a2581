#!/usr/bin/python3
"""Encrypted backups (bartl(7) "ENCRYPTION"): age-encrypted blobs that the real age, zstd and tar
open by hand and the other way round; restore with the systemd credential age-identity or
[backup] identity_file; a missing identity is exit 1 naming the credential, never an init; a
backup no identity opens is rejected and the restore falls back to an older one."""
import hashlib
import json
import os
import shutil
import subprocess
import unittest

from bartltest import EXIT_CONFIG, EXIT_RUNTIME, StackTest, edit_config, tree_digest


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, **kw)


def disaster(s):
    shutil.rmtree(s.state)
    shutil.rmtree(s.bartl_dir)


class Encryption(StackTest):
    def setUp(self):
        super().setUp()
        self.keys = os.path.join(self.tmp, "keys")
        os.makedirs(self.keys)
        # The operator's key, kept offline, and the host's SSH key (ssh-keygen -t ed25519).
        self.offline = os.path.join(self.keys, "offline.txt")
        sh(f"age-keygen -o {self.offline}")
        self.offline_recipient = sh(f"age-keygen -y {self.offline}", text=True).stdout.strip()
        self.host_key = os.path.join(self.keys, "id_ed25519")
        sh(f"ssh-keygen -q -t ed25519 -N '' -C host -f {self.host_key}")
        with open(self.host_key + ".pub") as f:
            self.host_recipient = f.read().strip()
        # $CREDENTIALS_DIRECTORY as systemd's LoadCredential=age-identity:... makes it.
        self.creds = os.path.join(self.tmp, "credentials")
        os.makedirs(self.creds)
        shutil.copy(self.host_key, os.path.join(self.creds, "age-identity"))

    def cred_env(self):
        return {"CREDENTIALS_DIRECTORY": self.creds}

    def encrypted_stack(self, recipients=None):
        s = self.stack("1.0.0")
        recipients = recipients or [self.offline_recipient, self.host_recipient]
        edit_config(s.config, {"backup.encrypt_to": json.dumps(recipients)})
        s.start(); s.wait_ready()
        for n in ("a", "b"):
            s.post_note(n)
        s.stop()
        r = s.run("--backup")
        self.assertEqual(r.returncode, 0, r.stderr)
        return s

    def blob(self, s, m):
        return os.path.join(s.store, m["blob"]["name"])

    def test_encrypted_backup_opens_by_hand_and_restores_with_the_credential(self):
        s = self.encrypted_stack()
        before = tree_digest(s.state)
        [m] = s.backups()
        self.assertTrue(m["blob"]["name"].endswith(".tar.zst.age"), m["blob"]["name"])
        self.assertEqual(m["encryption"], {"type": "age"})
        blob = self.blob(s, m)
        with open(blob, "rb") as f:
            data = f.read()
        self.assertTrue(data.startswith(b"age-encryption.org/v1\n"))
        self.assertEqual(hashlib.sha256(data).hexdigest(), m["blob"]["sha256"])
        # By hand, with the offline key: age -d | zstd -dc | tar -x.
        out = os.path.join(self.tmp, "by-hand")
        os.makedirs(out)
        sh(f"age -d -i {self.offline} {blob} | zstd -dc | tar -x --warning=no-unknown-keyword -C {out}")
        self.assertEqual(tree_digest(os.path.join(out, "state", "0")), before)
        with open(os.path.join(out, "bartl", "manifest.json")) as f:
            self.assertEqual(json.load(f)["encryption"], {"type": "age"})

        disaster(s)
        r = s.run("--prepare", extra_env=self.cred_env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(s.marker()["origin"], f"restore:{m['id']}")
        self.assertEqual(tree_digest(s.state), before)

    def test_encryption_problems_are_config_errors_at_start(self):
        # Found by --check-config and by every start (exit 78, FILE:LINE:COLUMN), not by the
        # first scheduled backup hours later.
        s = self.stack("1.0.0")
        bad = "age1" + "q" * 58
        edit_config(s.config, {"backup.encrypt_to": json.dumps([self.offline_recipient, bad])})
        r = s.run("--check-config")
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        self.assertRegex(r.stderr, rf"{s.config}:\d+:\d+: \[backup\] encrypt_to\[1\] \"{bad}\" is refused by age: "
                                   r"age: error: malformed recipient")
        self.assertNotIn("report unexpected", r.stderr)
        r = s.run()  # a normal start says the same before it serves
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        self.assertIn("encrypt_to[1]", r.stderr)
        # encrypt_to_file: missing, a directory, a file age refuses.
        rfile = os.path.join(self.keys, "recipients")
        edit_config(s.config, {"backup.encrypt_to": None, "backup.encrypt_to_file": json.dumps(rfile)})
        r = s.run("--check-config")
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        self.assertRegex(r.stderr, rf"{s.config}:\d+:\d+: \[backup\] encrypt_to_file {rfile}: no such file")
        os.makedirs(rfile)
        r = s.run("--check-config")
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        self.assertIn(f"encrypt_to_file {rfile}: cannot be read: is a directory", r.stderr)
        os.rmdir(rfile)
        with open(rfile, "w") as f:
            f.write(f"{self.offline_recipient}\nnot-a-recipient\n")
        r = s.run("--check-config")
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        self.assertRegex(r.stderr, rf"{s.config}:\d+:\d+: \[backup\] encrypt_to_file {rfile} is refused by age: "
                                   r"age: error: .*line 2")
        with open(rfile, "w") as f:
            f.write(f"# offline\n{self.offline_recipient}\n{self.host_recipient}\n")
        r = s.run("--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        # No age in PATH: exit 78 naming the Debian package.
        bindir = os.path.join(self.tmp, "bin-without-age")
        os.makedirs(bindir)
        for d in ("/usr/bin", "/bin", "/usr/sbin", "/sbin"):
            for n in os.listdir(d) if os.path.isdir(d) and not os.path.islink(d) else ():
                if not n.startswith("age") and not os.path.lexists(os.path.join(bindir, n)):
                    os.symlink(os.path.join(d, n), os.path.join(bindir, n))
        r = s.run("--check-config", extra_env={"PATH": bindir})
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        self.assertRegex(r.stderr, rf"{s.config}:\d+:\d+: \[backup\] encrypt_to_file needs the program age, "
                                   r"which is not in PATH \(install the Debian package age")

    def test_verify_decrypts_with_the_credential_and_names_a_missing_one(self):
        s = self.encrypted_stack()
        [m] = s.backups()
        r = s.run("--verify", extra_env=self.cred_env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"backup {m['id']} OK", r.stdout)
        r = s.run("--verify")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("age-identity", r.stderr)

    def test_identity_file_restores_too(self):
        s = self.encrypted_stack()
        [m] = s.backups()
        edit_config(s.config, {"backup.identity_file": json.dumps(self.offline)})
        disaster(s)
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(s.marker()["origin"], f"restore:{m['id']}")

    def test_missing_identity_is_exit_1_naming_the_credential_never_init(self):
        s = self.encrypted_stack()
        disaster(s)
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("no identity is available", r.stderr)
        self.assertIn("age-identity", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(s.bartl_dir, "marker.json")), "a fresh install happened")
        self.assertFalse(os.path.exists(s.state) and os.listdir(s.state), "state was created")
        # With an empty credentials directory the message names the file it looked for.
        empty = os.path.join(self.tmp, "no-credentials")
        os.makedirs(empty)
        r = s.run("--prepare", extra_env={"CREDENTIALS_DIRECTORY": empty})
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn(os.path.join(empty, "age-identity"), r.stderr)

    def test_wrong_identity_rejects_every_backup_never_init(self):
        s = self.encrypted_stack()
        other = os.path.join(self.creds, "age-identity")
        os.remove(other)
        sh(f"age-keygen -o {other}")
        disaster(s)
        r = s.run("--prepare", extra_env=self.cred_env())
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("every backup of notes was rejected", r.stderr)
        self.assertIn("no identity matched", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(s.bartl_dir, "marker.json")))

    def test_rotated_recipients_keep_older_backups_restorable_and_fall_back(self):
        # Old backup: to the host key. Then the recipients rotate to a new key the host does not
        # hold: the newer backup is rejected (no identity matched) and the older one restores.
        s = self.encrypted_stack([self.host_recipient])
        [old] = s.backups()
        new_key = os.path.join(self.keys, "new.txt")
        sh(f"age-keygen -o {new_key}")
        new_recipient = sh(f"age-keygen -y {new_key}", text=True).stdout.strip()
        edit_config(s.config, {"backup.encrypt_to": json.dumps([new_recipient])})
        s.start(); s.wait_ready(); s.post_note("c"); s.stop()
        self.assertEqual(s.run("--backup").returncode, 0)
        new = s.backups()[0]
        self.assertNotEqual(new["id"], old["id"])
        disaster(s)
        r = s.run("--prepare", extra_env=self.cred_env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"backup {new['id']} rejected", r.stderr)
        self.assertIn("no identity matched", r.stderr)
        self.assertEqual(s.marker()["origin"], f"restore:{old['id']}")

    def test_altered_ciphertext_with_a_matching_sidecar_is_rejected_by_age_and_falls_back(self):
        # An attacker who rewrites the sidecar's size and SHA-256 gets past those checks; age's
        # authentication still refuses a flipped byte in the header, the body or the last chunk,
        # and a truncation, and the restore falls back to the older backup.
        s = self.encrypted_stack()
        [old] = s.backups()
        for damage in ("header", "body", "last chunk", "truncated"):
            with self.subTest(damage=damage):
                # From the state restored last time, which took the store over: it may write.
                r = s.run("--backup")
                self.assertEqual(r.returncode, 0, r.stderr)
                new = s.backups()[0]
                self.assertNotEqual(new["id"], old["id"])
                blob = self.blob(s, new)
                with open(blob, "rb") as f:
                    data = bytearray(f.read())
                at = {"header": data.index(b"\n---") // 2, "body": len(data) // 2,
                      "last chunk": len(data) - 5}.get(damage)
                if at is None:
                    data = data[:-100]
                else:
                    data[at] ^= 0x01
                with open(blob, "wb") as f:
                    f.write(data)
                with open(blob + ".json") as f:
                    sidecar = json.load(f)
                sidecar["blob"]["size"] = len(data)
                sidecar["blob"]["sha256"] = hashlib.sha256(data).hexdigest()
                with open(blob + ".json", "w") as f:
                    json.dump(sidecar, f)
                disaster(s)
                r = s.run("--prepare", extra_env=self.cred_env())
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn(f"backup {new['id']} rejected", r.stderr)
                self.assertIn("cannot decrypt", r.stderr)
                self.assertEqual(s.marker()["origin"], f"restore:{old['id']}")
                os.remove(blob + ".json")
                os.remove(blob)

    def test_blob_made_by_hand_with_tar_zstd_age_is_restored(self):
        # An unencrypted bartl backup, re-made by hand as tar | zstd | age -r with its sidecar
        # updated (size, SHA-256, encryption, name), is restored by bartld.
        s = self.stack("1.0.0")
        s.start(); s.wait_ready(); s.post_note("by hand"); s.stop()
        self.assertEqual(s.run("--backup").returncode, 0)
        before = tree_digest(s.state)
        [m] = s.backups()
        plain = self.blob(s, m)
        tree = os.path.join(self.tmp, "tree")
        os.makedirs(tree)
        sh(f"zstd -dc {plain} | tar -x --warning=no-unknown-keyword -C {tree}")
        with open(os.path.join(tree, "bartl", "manifest.json")) as f:
            manifest = json.load(f)
        manifest["encryption"] = {"type": "age"}
        with open(os.path.join(tree, "bartl", "manifest.json"), "w") as f:
            json.dump(manifest, f)
        enc = plain + ".age"
        sh(f"tar -cf - -C {tree} bartl/manifest.json state/0 | zstd -q -3 | age -r '{self.host_recipient}' -o {enc}")
        with open(plain + ".json") as f:
            sidecar = json.load(f)
        with open(enc, "rb") as f:
            data = f.read()
        sidecar["blob"] = {"name": os.path.basename(enc), "size": len(data),
                           "sha256": hashlib.sha256(data).hexdigest()}
        sidecar["encryption"] = {"type": "age"}
        with open(enc + ".json", "w") as f:
            json.dump(sidecar, f)
        os.remove(plain)
        os.remove(plain + ".json")
        disaster(s)
        r = s.run("--prepare", extra_env=self.cred_env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(s.marker()["origin"], f"restore:{m['id']}")
        self.assertEqual(tree_digest(s.state), before)


if __name__ == "__main__":
    unittest.main()
