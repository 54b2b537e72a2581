#!/usr/bin/env python3
"""Full disk and I/O errors, on real small tmpfs mounts (needs root: mount -t tmpfs).

  store-enospc      backup into a store too small: exit 1 naming ENOSPC and the store's file
                    system with its size, no new sidecar,
                    no temporary left, the older backup intact; after growing the store
                    (remount,size=) the next backup succeeds
  state-enospc      restore into a state filesystem too small: exit 1 naming the file system,
                    its size and free space and what the backup holds, staging removed, no
                    marker, never an init; after growing it the restore succeeds, identical
  migrate-enospc    a migration script that fills the state disk fails: exit 1, marker at the
                    last completed step; after growing it the migration completes
  store-readonly    store remounted read-only: backup exits 1 with a clear error, backups
                    intact; restore from the read-only store still works
  store-removed     the store directory removed while a backup runs: exit 1, nothing listable;
                    after recreating it the next backup succeeds
Usage: diskfull.py [--long] [--seed N]
"""
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import bartltest as bt  # noqa: E402

COPY_HOOK = r"""#!/bin/sh
set -eu
cp -a "{src}/." "$(echo "$BARTL_STAGING_PATHS" | cut -d: -f1)/"
"""

FILL_MIGRATION = r"""#!/bin/sh
# 1.1.0: writes a 24 MiB index next to the data (idempotent: rewrites it from scratch).
set -eu
d="$(echo "$BARTL_STATE_PATHS" | cut -d: -f1)"
rm -f "$d/index.tmp"
head -c 25165824 /dev/zero > "$d/index.tmp"
mv "$d/index.tmp" "$d/index"
"""


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], check=True)


def remount(path, opts):
    subprocess.run(["mount", "-o", f"remount,{opts}", path], check=True)


def objects(store):
    """Visible objects other than the store's identity."""
    return [n for n in bt.store_objects(store) if not n.startswith(".")]


def main(argv):
    long, seed = bt.mode_from_argv(argv)
    work = bt.scratch_root()
    mounts = []
    rows = []
    failures = []

    def check(case, cond, what, *results):
        if not cond:
            failures.append(f"{case}: {what}")
            print(f"  FAIL {case}: {what}", file=sys.stderr)
            for r in results:
                print(f"    {r!r}"[:4000], file=sys.stderr)
        return cond

    def row(case, r, ok_before, recovered):
        first = (r.stderr.strip().splitlines() or [""])[-1]
        rows.append([case, r.returncode, "yes" if ok_before else "NO", "yes" if recovered else "NO", first[:110]])

    try:
        src = os.path.join(work, "dataset")
        bt.make_mixed_data(src, 40, seed=3)
        hook = bt.write_exec(os.path.join(work, "hooks", "copy"), COPY_HOOK.format(src=src))

        # --- store-enospc -------------------------------------------------------------------
        case = "store-enospc"
        storefs = os.path.join(work, "store-small")
        mount_tmpfs(storefs, "64m")
        mounts.append(storefs)
        inst = bt.Instance(os.path.join(work, "a"), init_hook=[hook], store_dir=storefs)
        r = inst.run("--prepare")
        assert r.returncode == 0, r
        r = inst.run("--backup")  # fits (about 28 MiB: the random part does not compress)
        assert r.returncode == 0, r
        before = inst.sidecars()
        remount(storefs, "size=40m")  # the second backup no longer fits
        ref = inst.state_hash()
        r = inst.run("--backup")
        ok = check(case, r.returncode == 1, f"exit {r.returncode}, expected 1", r)
        ok &= check(case, "No space left" in r.stderr, "error does not name ENOSPC", r)
        ok &= check(case, f"(the file system at {storefs} holds 40 MiB, " in r.stderr,
                    "error does not name the store's file system and its size", r)
        ok &= check(case, inst.sidecars() == before, "sidecars changed")
        ok &= check(case, not bt.temporaries(storefs), f"temporaries left: {bt.temporaries(storefs)}")
        ok &= check(case, objects(storefs) == sorted([b for b in before] + [b + ".json" for b in before]),
                    f"store holds unexpected objects: {os.listdir(storefs)}")
        ok &= check(case, inst.run("--verify").returncode == 0, "older backup does not verify")
        ok &= check(case, inst.state_hash() == ref, "state changed")
        remount(storefs, "size=128m")
        r2 = inst.run("--backup")
        rec = check(case, r2.returncode == 0 and len(inst.sidecars()) == 2, f"backup after space returned failed ({sorted(os.listdir(storefs))})", r2)
        row(case, r, ok, rec)

        # --- store-readonly (same store, now with two backups) -------------------------------
        case = "store-readonly"
        remount(storefs, "ro")
        before = inst.sidecars()
        r = inst.run("--backup")
        ok = check(case, r.returncode == 1, f"exit {r.returncode}, expected 1", r)
        ok &= check(case, "Read-only" in r.stderr, "error does not say read-only", r)
        ok &= check(case, inst.sidecars() == before, "sidecars changed")
        # Disaster recovery from a read-only medium works; the store is claimed later.
        inst.wipe_state()
        r2 = inst.run("--prepare")
        ok &= check(case, r2.returncode == 0 and inst.marker()["origin"].startswith("restore:") and inst.state_hash() == ref,
                    "restore from the read-only store failed", r2)
        ok &= check(case, "previous writer is NOT fenced" in r2.stderr and inst.marker()["writer"]["deferred"] == "takeover",
                    "the deferred takeover is not said or not recorded", r2)
        remount(storefs, "rw")
        r3 = inst.run("--backup")
        rec = check(case, r3.returncode == 0, "backup after remount rw failed", r3)
        row(case, r, ok, rec)

        # --- state-enospc -------------------------------------------------------------------
        case = "state-enospc"
        statefs = os.path.join(work, "state-small")
        mount_tmpfs(statefs, "20m")
        mounts.append(statefs)
        b = bt.Instance(os.path.join(work, "b"), init_hook=[hook], state_dir=statefs, store_dir=inst.store,
                        moved={inst.paths[0]: os.path.join(statefs, "fapp")})
        r = b.run("--prepare")  # restores inst's newest backup (same app, same store)... into 20 MiB
        ok = check(case, r.returncode == 1, f"exit {r.returncode}, expected 1", r)
        ok &= check(case, "No space left" in r.stderr, "error does not name ENOSPC", r)
        full = re.search(r"Backup \w+ holds [\d.]+ MiB of files, and before this restore for state path "
                         + re.escape(os.path.join(statefs, "fapp")) + r", the file system at " + re.escape(statefs)
                         + r" holds 20 MiB, [\d.]+ MiB of it free", r.stderr)
        ok &= check(case, full is not None,
                    "error does not name the state's file system, its size and what the backup needs", r)
        ok &= check(case, b.marker() is None, "a marker was written")
        ok &= check(case, not os.listdir(statefs), f"left on the state disk: {os.listdir(statefs)}")
        ok &= check(case, "init of" not in r.stderr, "an init ran", r)
        remount(statefs, "size=128m")
        r2 = b.run("--prepare")
        # b's path differs from inst's: [state] moved maps the backup's name to it.
        rec = check(case, r2.returncode == 0 and b.marker() and b.marker()["origin"].startswith("restore:") and
                    bt.content_hash(b.paths[0]) == bt.content_hash(inst.paths[0]),
                    "restore after space returned failed or differs", r2)
        row(case, r, ok, rec)

        # --- migrate-enospc -----------------------------------------------------------------
        case = "migrate-enospc"
        migfs = os.path.join(work, "mig-small")
        mount_tmpfs(migfs, "12m")
        mounts.append(migfs)
        small_hook = bt.write_exec(os.path.join(work, "hooks", "small"),
                                   "#!/bin/sh\nset -eu\nd=$(echo \"$BARTL_STAGING_PATHS\" | cut -d: -f1)\n"
                                   "seq 1 10000 > \"$d/data\"\n")
        mig = os.path.join(work, "migrations")
        bt.write_exec(os.path.join(mig, "1.1.0-index"), FILL_MIGRATION)
        c = bt.Instance(os.path.join(work, "c"), init_hook=[small_hook], state_dir=migfs, before_migrate=True)
        r = c.run("--prepare")
        assert r.returncode == 0, r
        c.write_config(version="1.1.0", migrations=mig)
        r = c.run("--prepare")
        ok = check(case, r.returncode == 1, f"exit {r.returncode}, expected 1", r)
        ok &= check(case, c.marker()["version"] == "1.0.0", f"marker at {c.marker()['version']}")
        ok &= check(case, "state stays at 1.0.0" in r.stderr, "error does not say where the state stays", r)
        remount(migfs, "size=64m")
        r2 = c.run("--prepare")
        rec = check(case, r2.returncode == 0 and c.marker()["version"] == "1.1.0" and
                    os.path.getsize(os.path.join(c.paths[0], "index")) == 25165824,
                    "migration after space returned failed", r2)
        row(case, r, ok, rec)

        # --- store-removed mid-backup -------------------------------------------------------
        case = "store-removed"
        d = bt.Instance(os.path.join(work, "d"), init_hook=[hook])
        r = d.run("--prepare")
        assert r.returncode == 0, r
        r = d.run("--backup")
        assert r.returncode == 0, r
        dur = r.elapsed
        hits = 0
        ok = True
        last = None
        for attempt in range(10 if not long else 40):
            p = d.start("--backup")
            time.sleep(dur * (0.2 + 0.6 * attempt / 10 % 0.6))
            shutil.rmtree(d.store, ignore_errors=True)
            r = p.wait()
            if r.returncode == 0:
                os.makedirs(d.store, exist_ok=True)
                d.init_store()
                continue  # finished before the removal
            hits += 1
            last = r
            ok &= check(case, r.returncode == 1, f"exit {r.returncode}, expected 1", r)
            os.makedirs(d.store, exist_ok=True)
            ok &= check(case, not d.sidecars() and not os.listdir(d.store), "objects appeared in the new store")
            d.init_store()  # a new store: the operator's one-time step
        rec = check(case, d.run("--backup").returncode == 0 and len(d.sidecars()) == 1, "backup after recreating failed")
        if last is None:
            failures.append(f"{case}: the removal never landed mid-backup")
            last = r
        row(f"{case} ({hits} hits)", last, ok, rec)
    finally:
        for m in reversed(mounts):
            subprocess.run(["umount", "-l", m])
        bt.remove_scratch(work)
    bt.print_table("Full disk and I/O errors (real tmpfs mounts)",
                   ["case", "exit", "old data intact, clean", "recovered", "last log line"], rows)
    print("diskfull: PASS" if not failures else f"diskfull: FAIL {failures}", flush=True)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
