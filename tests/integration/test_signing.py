#!/usr/bin/python3
"""Signed sidecars (bartl(7) "KEY MANAGEMENT"): bartld signs each sidecar with the credential
signing-key (an ssh-keygen Ed25519 key) as NAME.json.sig, which ssh-keygen -Y verify accepts by
hand; with [backup] trusted_keys a planted unsigned or wrongly signed newer backup is rejected
and the good one restores; a missing signing key is a clear error; rotating the key keeps older
backups restorable while the old key stays trusted; retention removes signatures too."""
import json
import os
import shutil
import subprocess
import unittest

from bartltest import EXIT_CONFIG, EXIT_RUNTIME, EXIT_USAGE, PrivateBus, StackTest, bartlctl, edit_config, tree_digest


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True, **kw)


def disaster(s):
    shutil.rmtree(s.state)
    shutil.rmtree(s.bartl_dir)


class Signing(StackTest):
    def setUp(self):
        super().setUp()
        self.keys = os.path.join(self.tmp, "keys")
        os.makedirs(self.keys)
        self.creds = os.path.join(self.tmp, "credentials")
        os.makedirs(self.creds)
        self.key_a = self.keygen("a")
        self.key_b = self.keygen("b")

    def keygen(self, name):
        key = os.path.join(self.keys, name)
        r = sh(f"ssh-keygen -q -t ed25519 -N '' -C {name}@host -f {key}")
        self.assertEqual(r.returncode, 0, r.stderr)
        return key

    def pub(self, key):
        with open(key + ".pub") as f:
            return f.read().strip()

    def use_key(self, key):
        """The credential signing-key, as LoadCredential=signing-key:KEY makes it."""
        shutil.copy(key, os.path.join(self.creds, "signing-key"))

    def env(self):
        return {"CREDENTIALS_DIRECTORY": self.creds}

    def trust(self, s, *keys):
        edit_config(s.config, {"backup.trusted_keys": json.dumps([self.pub(k) for k in keys]) if keys else None})

    def backup(self, s, note=None):
        if note:
            s.start(extra_env=self.env()); s.wait_ready(); s.post_note(note); s.stop()
        r = s.run("--backup", extra_env=self.env())
        self.assertEqual(r.returncode, 0, r.stderr)
        return s.backups()[0]

    def signed_stack(self):
        s = self.stack("1.0.0")
        self.use_key(self.key_a)
        self.trust(s, self.key_a)
        return s

    def paths(self, s, m):
        """Blob, sidecar and signature of `m` (a sidecar, or a row of bartlctl backups --json)."""
        blob = os.path.join(s.store, m["blob"] if isinstance(m["blob"], str) else m["blob"]["name"])
        return blob, blob + ".json", blob + ".json.sig"

    def ssh_verify(self, key, sig, sidecar, ns="bartl-backup"):
        allowed = os.path.join(self.tmp, "allowed_signers")
        with open(allowed, "w") as f:
            f.write(f"bartl {self.pub(key)}\n")
        return sh(f"ssh-keygen -Y verify -f {allowed} -I bartl -n {ns} -s {sig} < {sidecar}")

    def test_signature_verifies_by_hand_with_ssh_keygen_and_is_reported(self):
        s = self.signed_stack()
        m = self.backup(s, "signed")
        _, sidecar, sig = self.paths(s, m)
        with open(sig) as f:
            self.assertTrue(f.read().startswith("-----BEGIN SSH SIGNATURE-----\n"))
        r = self.ssh_verify(self.key_a, sig, sidecar)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('Good "bartl-backup" signature for bartl with ED25519 key', r.stdout + r.stderr)
        # Another namespace or another key: ssh-keygen refuses too.
        self.assertNotEqual(self.ssh_verify(self.key_a, sig, sidecar, ns="git").returncode, 0)
        self.assertNotEqual(self.ssh_verify(self.key_b, sig, sidecar).returncode, 0)
        fp = sh(f"ssh-keygen -l -f {self.key_a}.pub").stdout.split()[1]
        self.assertEqual(m["signature"], {"type": "sshsig", "namespace": "bartl-backup", "key": fp})
        r = s.run("--verify", extra_env=self.env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"signed by a@host {fp}", r.stdout)

    def test_planted_unsigned_or_wrongly_signed_newer_backup_is_rejected_and_the_good_one_restores(self):
        s = self.signed_stack()
        good = self.backup(s, "good")
        good_tree = tree_digest(s.state)
        for plant in ("unsigned", "signed by another key", "sidecar altered after signing"):
            with self.subTest(plant=plant):
                # The planted backup is a real bartld backup of other data, newer than the good
                # one: well-formed, only its signature is wrong.
                self.trust(s)
                os.remove(os.path.join(self.creds, "signing-key"))
                if plant == "sidecar altered after signing":
                    self.use_key(self.key_a)
                planted = self.backup(s, "planted " + plant)
                self.assertNotEqual(planted["id"], good["id"])
                _, sidecar, sig = self.paths(s, planted)
                if plant == "signed by another key":
                    r = sh(f"ssh-keygen -q -Y sign -f {self.key_b} -n bartl-backup {sidecar}")
                    self.assertEqual(r.returncode, 0, r.stderr)
                elif plant == "sidecar altered after signing":
                    with open(sidecar) as f:
                        m = json.load(f)
                    m["reason"] = "manual "
                    with open(sidecar, "w") as f:
                        json.dump(m, f, indent=2)
                else:
                    self.assertFalse(os.path.exists(sig))
                self.trust(s, self.key_a)
                self.use_key(self.key_a)
                disaster(s)
                r = s.run("--prepare", extra_env=self.env())
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(s.marker()["origin"], f"restore:{good['id']}")
                self.assertEqual(tree_digest(s.state), good_tree)
                why = {"unsigned": f"backup {planted['id']} is not signed",
                       "signed by another key": f"backup {planted['id']} is signed by SHA256:",
                       "sidecar altered after signing": "does not match the signed bytes"}[plant]
                self.assertIn(why, r.stderr)
                self.assertIn("not accepted", r.stderr)
                # bartld --verify of the planted backup fails too, naming why.
                r = s.run("--verify", planted["id"], extra_env=self.env())
                self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
                self.assertIn(why, r.stderr)
                for p in self.paths(s, planted):
                    if os.path.exists(p):
                        os.remove(p)

    def test_a_pinned_unsigned_backup_is_refused(self):
        s = self.stack("1.0.0")
        unsigned = self.backup(s, "unsigned")
        self.trust(s, self.key_a)
        self.use_key(self.key_a)
        good = self.backup(s, "signed")
        disaster(s)
        r = s.run("--prepare", "--restore-from", unsigned["id"], extra_env=self.env())
        self.assertEqual(r.returncode, EXIT_USAGE, r.stderr)
        self.assertIn(f"the chosen backup cannot be restored: backup {unsigned['id']} "
                      "is not signed", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(s.bartl_dir, "marker.json")))
        r = s.run("--prepare", "--restore-from", good["id"], extra_env=self.env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(s.marker()["origin"], f"restore:{good['id']}")

    def test_verify_without_trusted_keys_names_the_signature_state(self):
        s = self.stack("1.0.0")
        self.use_key(self.key_a)
        m = self.backup(s, "signed, nothing trusted")
        fp = sh(f"ssh-keygen -l -f {self.key_a}.pub").stdout.split()[1]
        r = s.run("--verify", extra_env=self.env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"signed by {fp} unchecked", r.stdout)
        _, sidecar, sig = self.paths(s, m)
        with open(sig) as f:
            text = f.read()
        with open(sig, "w") as f:  # one base64 letter of the signature bytes changed
            f.write(text[:-40] + ("A" if text[-40] != "A" else "B") + text[-39:])
        r = s.run("--verify", extra_env=self.env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("signature INVALID: ", r.stdout)
        os.remove(sig)
        r = s.run("--verify", extra_env=self.env())
        self.assertIn("signature INVALID: the signature file is missing", r.stdout)

    def test_only_bad_signatures_left_is_exit_1_never_init(self):
        s = self.stack("1.0.0")
        self.backup(s, "unsigned")
        self.trust(s, self.key_a)
        disaster(s)
        r = s.run("--prepare", extra_env=self.env())
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("is not signed", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(s.bartl_dir, "marker.json")), "a fresh install happened")

    def test_missing_signing_key_is_a_clear_error(self):
        s = self.stack("1.0.0")
        missing = os.path.join(self.keys, "missing")
        edit_config(s.config, {"backup.signing_key_file": json.dumps(missing)})
        r = s.run("--check-config")
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        self.assertIn(f"{s.config}:", r.stderr)
        self.assertIn(f"signing_key_file {missing}: no such file", r.stderr)
        # trusted_keys without any signing key: no backup is taken that no restore would take.
        edit_config(s.config, {"backup.signing_key_file": None})
        self.trust(s, self.key_a)
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = s.run("--backup")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("no signing key is available", r.stderr)
        self.assertIn("signing-key", r.stderr)
        self.assertEqual(s.backups(), [])
        # A signing key that is not trusted: refused the same way, naming its public line.
        self.use_key(self.key_b)
        r = s.run("--backup", extra_env=self.env())
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("is not among [backup] trusted_keys", r.stderr)
        self.assertIn(self.pub(self.key_b).split()[1], r.stderr)
        # A passphrase-protected key is named as such.
        locked = os.path.join(self.keys, "locked")
        self.assertEqual(sh(f"ssh-keygen -q -t ed25519 -N secret -f {locked}").returncode, 0)
        shutil.copy(locked, os.path.join(self.creds, "signing-key"))
        r = s.run("--backup", extra_env=self.env())
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("passphrase", r.stderr)
        self.assertIn(os.path.join(self.creds, "signing-key"), r.stderr)

    def test_signing_key_and_trusted_keys_file_problems_are_config_errors_at_start(self):
        # Each is exit 78 naming FILE:LINE:COLUMN of the key, from --check-config and from a
        # normal start alike, not at the first backup or restore.
        s = self.stack("1.0.0")
        rsa = os.path.join(self.keys, "id_rsa")
        self.assertEqual(sh(f"ssh-keygen -q -t rsa -b 2048 -N '' -f {rsa}").returncode, 0)
        pub = os.path.join(self.keys, "a.pub")
        cases = [
            ({"backup.signing_key_file": json.dumps(rsa)},
             rf"{s.config}:\d+:\d+: .*signing_key_file {rsa}: .*is a ssh-rsa key; bartl signs with "
             r"(and trusts )?ssh-ed25519"),
            ({"backup.signing_key_file": json.dumps(pub)},
             rf"{s.config}:\d+:\d+: .*signing_key_file {pub}: not an OpenSSH private key"),
            ({"backup.signing_key_file": json.dumps(self.keys)},
             rf"{s.config}:\d+:\d+: .*signing_key_file {self.keys}: is a directory"),
            ({"backup.trusted_keys_file": json.dumps(os.path.join(self.keys, "allowed_signers"))},
             rf"{s.config}:\d+:\d+: \[backup\] trusted_keys_file {self.keys}/allowed_signers: no such file"),
            ({"backup.trusted_keys_file": json.dumps(self.keys)},
             rf"{s.config}:\d+:\d+: \[backup\] trusted_keys_file {self.keys}: is a directory"),
        ]
        for overrides, message in cases:
            with self.subTest(overrides=overrides):
                edit_config(s.config, {"backup.signing_key_file": None, "backup.trusted_keys_file": None})
                edit_config(s.config, overrides)
                for args in (("--check-config",), ()):
                    r = s.run(*args)
                    self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
                    self.assertRegex(r.stderr, message)
        edit_config(s.config, {"backup.trusted_keys_file": None, "backup.signing_key_file": json.dumps(self.key_a)})
        r = s.run("--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_trusted_keys_errors_name_file_line_and_column(self):
        s = self.stack("1.0.0")
        edit_config(s.config, {"backup.trusted_keys": json.dumps(["ssh-rsa AAAAB3NzaC1yc2E= x"])})
        r = s.run("--check-config")
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        self.assertRegex(r.stderr, rf"{s.config}:\d+:\d+: \[backup\] trusted_keys\[0\]: .*ssh-ed25519")
        keys = os.path.join(self.keys, "allowed_signers")
        with open(keys, "w") as f:
            f.write(f"# ops\nbartl {self.pub(self.key_a)}\nbartl ssh-ed25519 AAAA!!\n")
        edit_config(s.config, {"backup.trusted_keys": None, "backup.trusted_keys_file": json.dumps(keys)})
        r = s.run("--check-config")
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        self.assertIn(f"{keys}:3:7: ", r.stderr)

    def test_trusted_keys_file_in_allowed_signers_form_restores(self):
        s = self.stack("1.0.0")
        self.use_key(self.key_a)
        keys = os.path.join(self.keys, "allowed_signers")
        with open(keys, "w") as f:
            f.write(f"bartl namespaces=\"bartl-backup\" {self.pub(self.key_a)}\n")
        edit_config(s.config, {"backup.trusted_keys_file": json.dumps(keys)})
        good = self.backup(s, "good")
        _, sidecar, sig = self.paths(s, good)
        # The same file is what ssh-keygen -Y verify takes.
        r = sh(f"ssh-keygen -Y verify -f {keys} -I bartl -n bartl-backup -s {sig} < {sidecar}")
        self.assertEqual(r.returncode, 0, r.stderr)
        disaster(s)
        r = s.run("--prepare", extra_env=self.env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(s.marker()["origin"], f"restore:{good['id']}")

    def test_rotation_keeps_older_backups_restorable_while_the_old_key_stays_trusted(self):
        s = self.signed_stack()
        old = self.backup(s, "by a")
        # Rotate: trust both, sign with b.
        self.trust(s, self.key_a, self.key_b)
        self.use_key(self.key_b)
        new = self.backup(s, "by b")
        _, sidecar, sig = self.paths(s, new)
        self.assertEqual(self.ssh_verify(self.key_b, sig, sidecar).returncode, 0)
        _, sidecar, sig = self.paths(s, old)
        self.assertEqual(self.ssh_verify(self.key_a, sig, sidecar).returncode, 0)
        disaster(s)
        r = s.run("--prepare", extra_env=self.env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(s.marker()["origin"], f"restore:{new['id']}")
        # The newer backup lost: the older one, signed by the old key still listed, restores.
        for p in self.paths(s, new):
            os.remove(p)
        disaster(s)
        r = s.run("--prepare", extra_env=self.env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(s.marker()["origin"], f"restore:{old['id']}")
        r = s.run("--verify", old["id"], extra_env=self.env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("signed by a@host SHA256:", r.stdout)
        # The old key removed from the list (it leaked): its backups are refused, never an init.
        self.trust(s, self.key_b)
        disaster(s)
        r = s.run("--prepare", extra_env=self.env())
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn(f"backup {old['id']} is signed by SHA256:", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(s.bartl_dir, "marker.json")), "a fresh install happened")

    def test_bartlctl_backups_and_verify_name_the_signer(self):
        bus = PrivateBus()
        self.addCleanup(bus.close)
        s = self.signed_stack()
        s.start(extra_env={**bus.env(), **self.env()})
        s.wait_ready()

        def ctl(*args, rc=0):
            r = bartlctl(*args, bus=bus)
            self.assertEqual(r.returncode, rc, f"bartlctl {args}: {r.stdout}{r.stderr}")
            return r

        for _ in range(3):
            ctl("backup", "--wait")
        fp = sh(f"ssh-keygen -l -f {self.key_a}.pub").stdout.split()[1]
        fp_b = sh(f"ssh-keygen -l -f {self.key_b}.pub").stdout.split()[1]
        listed = json.loads(ctl("backups", "--json").stdout)
        self.assertEqual([b["signer"] for b in listed], [f"a@host {fp}"] * 3)
        self.assertIn(f" a@host {fp} ", ctl("backups").stdout)
        v = json.loads(ctl("verify", "--json").stdout)
        self.assertEqual((v["id"], v["signer"]), (listed[0]["id"], f"a@host {fp}"))
        self.assertIn(f"signed by a@host {fp}", ctl("verify").stdout)
        # The newest loses its signature, the next is re-signed by an untrusted key, the oldest
        # is a planted unsigned one: all are listed as such, and verify refuses them naming why.
        unsigned, untrusted, planted = listed
        os.remove(self.paths(s, unsigned)[2])
        _, sidecar, sig = self.paths(s, untrusted)
        os.remove(sig)
        self.assertEqual(sh(f"ssh-keygen -q -Y sign -f {self.key_b} -n bartl-backup {sidecar}").returncode, 0)
        _, sidecar, sig = self.paths(s, planted)
        os.remove(sig)
        with open(sidecar) as f:
            m = json.load(f)
        m["signature"] = None
        with open(sidecar, "w") as f:
            json.dump(m, f)
        listed = json.loads(ctl("backups", "--json").stdout)
        self.assertEqual([b["signer"] for b in listed],
                         [f"INVALID: the signature file is missing although its sidecar says {fp} signed it",
                          f"{fp_b} UNTRUSTED", "UNSIGNED"])
        self.assertIn(" UNSIGNED ", ctl("backups").stdout)
        r = ctl("verify", unsigned["id"], rc=EXIT_RUNTIME)
        self.assertIn(f"backup {unsigned['id']} is not signed (no .json.sig beside its sidecar although its sidecar "
                      f"says {fp} signed it)", r.stderr)
        r = ctl("verify", untrusted["id"], rc=EXIT_RUNTIME)
        self.assertIn(f"backup {untrusted['id']} is signed by {fp_b}, which is not a trusted key", r.stderr)

    def test_retention_deletes_the_signature_with_its_backup(self):
        s = self.signed_stack()
        edit_config(s.config, {"backup.keep_last": "1", "backup.keep_daily": "0", "backup.keep_weekly": "0",
                               "backup.keep_monthly": "0", "backup.keep_pre_migration": "0"})
        first = self.backup(s, "one")
        # A signature left by a backup killed before its sidecar: removed once a day old.
        stale = os.path.join(s.store, first["blob"]["name"].replace(first["id"], "0badc0de") + ".json.sig")
        fresh = os.path.join(s.store, first["blob"]["name"].replace(first["id"], "00000001") + ".json.sig")
        for p in (stale, fresh):
            shutil.copy(self.paths(s, first)[2], p)
        os.utime(stale, (1, 1))
        second = self.backup(s, "two")
        self.assertFalse(os.path.exists(stale))
        self.assertTrue(os.path.exists(fresh))
        os.remove(fresh)
        self.assertEqual([m["id"] for m in s.backups()], [second["id"]])
        sigs = sorted(n for n in os.listdir(s.store) if n.endswith(".json.sig"))
        self.assertEqual(sigs, [second["blob"]["name"] + ".json.sig"])
        self.assertFalse(os.path.exists(self.paths(s, first)[2]))


if __name__ == "__main__":
    unittest.main()
