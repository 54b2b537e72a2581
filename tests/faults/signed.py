#!/usr/bin/env python3
"""Signed backups killed between the signature and the sidecar. A signed backup is committed to
its store as blob, then NAME.json.sig, then NAME.json (the sidecar: only now is the backup
listable, bartl(7) "THE BACKUP BLOB"). The crashsim shim (crashsim.c, tracking the store only)
numbers bartld's calls that change the store; a counting run finds the call that creates the
sidecar's temporary file, and a second run from the same start is killed (SIGKILL of the whole
session) right before it, so the store holds the new blob and its signature but no sidecar.
Then, each a row of the table:

  not listed     the next start (--prepare, --verify) does not see that backup: the newest
                 listed one is the backup before it
  stray .sig     a sidecar forged beside the stray blob and signature (the listing's view of
                 the stray backup, with a newer time) is refused as badly signed, and a
                 restore falls back to the good backup
  orphans kept   the next --backup succeeds and leaves the orphans while they are younger
                 than a day (an upload of another bartld may be between its blob and its
                 sidecar that long; remove_incomplete_backups() in src/ops/backup.cpp)
  orphans gone   once a day old (their names and times moved two days back, as two days
                 later), the next --backup removes blob and signature
  no .sig        the reverse: a sidecar whose signature is gone, with trusted_keys set, is
                 refused as unsigned and the restore takes the next older backup

Usage: signed.py [--seed N] (no randomness; accepted like the other scripts)
Exit status 0 when every row passes.
"""
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import bartltest as bt  # noqa: E402
from powerloss import Sim, find_crashsim  # noqa: E402

SIDECAR_TEMP = re.compile(r"/\.[^/]*\.json\.tmp-[^/]*$")     # FileStore's temporary for NAME.json
SIGNATURE_TEMP = re.compile(r"/\.[^/]*\.json\.sig\.tmp-[^/]*$")


class Row:
    def __init__(self, check):
        self.check, self.passed, self.detail = check, False, ""

    def row(self):
        return [self.check, "pass" if self.passed else "FAIL", self.detail]

    def ok(self):
        return self.passed


def fail(row, msg, *results):
    row.detail = msg
    print(f"FAIL {row.check}: {msg}", file=sys.stderr)
    for r in results:
        print(repr(r), file=sys.stderr)


def orphans(inst):
    """Names in the store of blobs without a sidecar, and signatures without one."""
    names = set(os.listdir(inst.store))
    blobs = {n for n in names if re.search(r"\.tar\.zst(\.age)?$", n) and n + ".json" not in names}
    sigs = {n for n in names if n.endswith(".json.sig") and n[:-4] not in names}
    return blobs, sigs


def sidecar_of(inst, bid):
    for name, m in inst.sidecars().items():
        if m and m["id"] == bid:
            return name, m
    raise AssertionError(f"no sidecar of {bid}")


def run_signed(work, shim):
    rows = {k: Row(k) for k in ("not listed", "stray .sig", "orphans kept", "orphans gone", "no .sig")}
    root = os.path.join(work, "signed")
    keys = os.path.join(root, "keys")
    os.makedirs(keys)
    key = os.path.join(keys, "signing")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "host", "-f", key], check=True)
    with open(key + ".pub") as f:
        pub = f.read().strip()
    inst = bt.Instance(root, init_hook=bt.init_hook(root),
                       backup_keys={"signing_key_file": key, "trusted_keys": [pub]})
    assert inst.run("--prepare").returncode == 0
    r = inst.run("--backup")
    assert r.returncode == 0, r
    [good] = inst.backup_ids()
    time.sleep(1.1)  # the next backup's name has a later second
    with open(os.path.join(inst.paths[0], "after-the-good-backup"), "w") as f:
        f.write("newer\n")

    sim = Sim(root, [inst.store], shim)
    sim.save_start()
    r = inst.run("--backup", env=sim.env())
    assert r.returncode == 0, r
    ops, _, _ = sim.read_log()
    sig_at = next((o.n for o in ops if any(SIGNATURE_TEMP.search(p) for p in o.paths)), None)
    at = next((o.n for o in ops if any(SIDECAR_TEMP.search(p) for p in o.paths)), None)
    sim.reset()
    if sig_at is None or at is None or sig_at > at:
        fail(rows["not listed"], f"the counting run did not write the signature (call {sig_at}) before the "
                                 f"sidecar (call {at})")
        return list(rows.values())
    killed = inst.run("--backup", env=sim.env(at=at))
    sim.clear()
    blobs, sigs = orphans(inst)
    if killed.returncode != -9 or len(blobs) != 1 or [b + ".json.sig" for b in blobs] != sorted(sigs):
        fail(rows["not listed"], f"not killed between signature and sidecar: exit {killed.returncode}, "
                                 f"orphan blobs {sorted(blobs)}, signatures {sorted(sigs)}", killed)
        return list(rows.values())
    [stray] = blobs

    # The next start: the stray backup is not there, the good one is the newest.
    r = inst.run("--prepare")
    v = inst.run("--verify")
    if r.returncode != 0 or v.returncode != 0 or f"backup {good} OK" not in v.stdout or inst.backup_ids() != [good]:
        fail(rows["not listed"], "the next start did not take the good backup as the newest", r, v)
    else:
        rows["not listed"].passed = True
        rows["not listed"].detail = f"killed before call {at} (signature at {sig_at}); {stray} unlisted"

    # A sidecar forged beside the stray blob and its signature is not made valid by it.
    _, m = sidecar_of(inst, good)
    forged = dict(m)
    stray_id = re.match(r".*-([0-9a-z]+)\.tar\.zst(\.age)?$", stray).group(1)
    with open(os.path.join(inst.store, stray), "rb") as f:
        data = f.read()
    forged["id"] = stray_id
    made = datetime.datetime.strptime(re.search(r"-(\d{8}T\d{6}Z)-", stray).group(1), "%Y%m%dT%H%M%SZ")
    forged["created"] = made.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    forged["blob"] = dict(m["blob"], name=stray, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    forged_path = os.path.join(inst.store, stray + ".json")
    with open(forged_path, "w") as f:
        json.dump(forged, f)
    inst.wipe_state()
    r = inst.run("--prepare")
    marker = inst.marker() or {}
    if r.returncode != 0 or marker.get("origin") != f"restore:{good}" or "signature is not valid" not in r.stderr:
        fail(rows["stray .sig"], f"restore took {marker.get('origin')} (exit {r.returncode}), not {good} after "
                                 f"refusing the forged sidecar", r)
    else:
        rows["stray .sig"].passed = True
        rows["stray .sig"].detail = f"forged {stray_id} refused, restore:{good}"
    os.remove(forged_path)

    # The next backup: orphans younger than a day stay.
    r = inst.run("--backup")
    blobs, sigs = orphans(inst)
    if r.returncode != 0 or blobs != {stray} or sigs != {stray + ".json.sig"} or len(inst.backup_ids()) != 2:
        fail(rows["orphans kept"], f"exit {r.returncode}, orphans {sorted(blobs | sigs)}", r)
    else:
        rows["orphans kept"].passed = True
        rows["orphans kept"].detail = "blob and .sig younger than a day stay"

    # Two days later (the names' time and the files' mtimes moved back): removed.
    ts = re.search(r"-(\d{8}T\d{6}Z)-", stray).group(1)
    then = datetime.datetime.strptime(ts, "%Y%m%dT%H%M%SZ") - datetime.timedelta(days=2)
    old = stray.replace(ts, then.strftime("%Y%m%dT%H%M%SZ"))
    past = time.time() - 2 * 86400
    for a, b in ((stray, old), (stray + ".json.sig", old + ".json.sig")):
        os.rename(os.path.join(inst.store, a), os.path.join(inst.store, b))
        os.utime(os.path.join(inst.store, b), (past, past))
    time.sleep(1.1)
    r = inst.run("--backup")
    blobs, sigs = orphans(inst)
    if r.returncode != 0 or blobs or sigs or f"removed {old}," not in r.stderr:
        fail(rows["orphans gone"], f"exit {r.returncode}, orphans left {sorted(blobs | sigs)}", r)
    else:
        rows["orphans gone"].passed = True
        rows["orphans gone"].detail = "blob and .sig a day old removed by the next backup"

    # The reverse: the newest sidecar without its signature is refused as unsigned.
    ids = inst.backup_ids()
    newest_blob, _ = sidecar_of(inst, ids[0])
    os.remove(os.path.join(inst.store, newest_blob + ".json.sig"))
    inst.wipe_state()
    r = inst.run("--prepare")
    marker = inst.marker() or {}
    if (r.returncode != 0 or marker.get("origin") != f"restore:{ids[1]}"
            or f"backup {ids[0]} is not signed" not in r.stderr):
        fail(rows["no .sig"], f"restore took {marker.get('origin')} (exit {r.returncode}), not {ids[1]}", r)
    else:
        rows["no .sig"].passed = True
        rows["no .sig"].detail = f"{ids[0]} refused as unsigned, restore:{ids[1]}"
    return list(rows.values())


def main(argv):
    shim = find_crashsim()
    print(f"signed: bartld {bt.Instance.bartld}, shim {shim}", flush=True)
    work = bt.scratch_root()
    try:
        rows = run_signed(work, shim)
    finally:
        bt.remove_scratch(work)
    return bt.finish("signed", "Signed backups killed between the signature and the sidecar",
                     ["check", "result", "detail"], rows)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
