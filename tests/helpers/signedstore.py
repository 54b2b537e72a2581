"""A signed and age-encrypted backup round trip through a remote store (bartl(7) "KEY
MANAGEMENT"), shared by the s3:// and sftp:// suites: each backup uploads blob, sidecar and
NAME.json.sig; retention removes the signature with its backup; a newer unsigned backup planted
in the store (by a bartld without the signing key, as anyone who can write to the store could)
is refused, and the signed one restores with trusted_keys and the identity credential."""
import json
import os
import shutil
import subprocess
import time

from bartltest import edit_config

KEEP_ONE = {"backup.keep_last": "1", "backup.keep_daily": "0", "backup.keep_weekly": "0",
            "backup.keep_monthly": "0", "backup.keep_pre_migration": "0"}


def _sh(*argv):
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def signed_encrypted_round_trip(t, s, names):
    """Runs the round trip on stack `s` (its store remote) for test case `t`; `names()` lists
    the object names in the store (bartl-store.json included)."""
    keys = os.path.join(t.tmp, "round-trip-keys")
    os.makedirs(keys)
    age_key = os.path.join(keys, "age.txt")
    _sh("age-keygen", "-o", age_key)
    recipient = _sh("age-keygen", "-y", age_key).strip()
    signing = os.path.join(keys, "signing")
    _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "host", "-f", signing)
    with open(signing + ".pub") as f:
        pub = f.read().strip()
    # LoadCredential=age-identity:... and signing-key:...; the planter has no signing key.
    creds, planter = os.path.join(keys, "credentials"), os.path.join(keys, "planter")
    for d in (creds, planter):
        os.makedirs(d)
        shutil.copy(age_key, os.path.join(d, "age-identity"))
    shutil.copy(signing, os.path.join(creds, "signing-key"))
    env, planter_env = {"CREDENTIALS_DIRECTORY": creds}, {"CREDENTIALS_DIRECTORY": planter}
    signed = {"backup.encrypt_to": json.dumps([recipient]), "backup.trusted_keys": json.dumps([pub]), **KEEP_ONE}
    edit_config(s.config, signed)

    def run(*args, extra_env=env):
        r = s.run(*args, extra_env=extra_env)
        t.assertEqual(r.returncode, 0, f"bartld {' '.join(args)}:\n{r.stderr}")
        return r

    def trio(m):
        return {m["blob"]["name"], m["blob"]["name"] + ".json", m["blob"]["name"] + ".json.sig"}

    run("--prepare")
    os.makedirs(s.here(s.state), exist_ok=True)
    with open(os.path.join(s.here(s.state), "precious.txt"), "w") as f:
        f.write("signed and sealed\n")
    run("--backup")
    [first] = s.backups()
    t.assertTrue(first["blob"]["name"].endswith(".tar.zst.age"), first["blob"]["name"])
    t.assertEqual(first["encryption"], {"type": "age"})
    t.assertEqual(set(names()), {"bartl-store.json"} | trio(first))
    time.sleep(1.1)  # retention retires only what is older (in seconds) than the newest
    run("--backup")
    [second] = s.backups()
    t.assertEqual(set(names()), {"bartl-store.json"} | trio(second))  # the first's .sig went with it

    # Planted: a newer, well-formed, encrypted but unsigned backup.
    time.sleep(1.1)
    edit_config(s.config, {"backup.trusted_keys": None, "backup.keep_last": "10"})
    run("--backup", extra_env=planter_env)
    planted = s.backups()[0]
    t.assertNotEqual(planted["id"], second["id"])
    t.assertNotIn(planted["blob"]["name"] + ".json.sig", names())

    edit_config(s.config, signed)
    shutil.rmtree(s.here(s.state))
    shutil.rmtree(s.here(s.bartl_dir))
    r = run("--prepare")
    t.assertIn(f"backup {planted['id']} is not signed", r.stderr)
    t.assertEqual(s.marker()["origin"], f"restore:{second['id']}")
    with open(os.path.join(s.here(s.state), "precious.txt")) as f:
        t.assertEqual(f.read(), "signed and sealed\n")
