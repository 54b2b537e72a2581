#!/usr/bin/env python3
"""Corrupt backups: damage a random subset of a store's backups, wipe the state, start
`bartld --prepare` and check what it restored.

Damage kinds (each applied to a random non-empty subset of the backups):
  flip-byte       one random byte of the blob flipped
  truncate        blob truncated at a random offset
  sidecar-sha     the sidecar's blob.sha256 replaced by another valid-looking hash
  sidecar-counts  the sidecar's files/bytes changed (the archive no longer matches it)
  swap-fields     two backups' blob.sha256 and blob.size swapped
  swap-sidecars   two backups' whole sidecar files swapped (each names the other's blob)
  garbled-sidecar the sidecar's text cut in half (no longer JSON)
  delete-sidecar  the sidecar removed: by bartl(7) the backup no longer exists

Expected: the newest undamaged backup is restored (marker origin restore:ID, state identical
to what it backed up), every damaged backup newer than it is named in the log; when none is
intact: exit 1, no marker, nothing written to the state paths (never an init) — except when
every sidecar was deleted: then the store holds no backup by contract and init is right.

Figures: per kind, variants, rejected (outcome right, damaged ones named), wrongly accepted
(a damaged backup restored, or an init over damaged backups: must be 0).
Usage: corrupt.py [--long] [--seed N]   (CI: 10 variants per kind, --long: 100)
"""
import json
import os
import random
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import bartltest as bt  # noqa: E402

INIT_HOOK = r"""#!/bin/sh
set -eu
d="$(echo "$BARTL_STAGING_PATHS" | cut -d: -f1)"
mkdir -p "$d/data"
seq 1 5000 > "$d/data/numbers"
echo initial > "$d/generation"
"""

KINDS = ["flip-byte", "truncate", "sidecar-sha", "sidecar-counts", "swap-fields", "swap-sidecars",
         "garbled-sidecar", "delete-sidecar"]
N_BACKUPS = 4


def load(path):
    with open(path) as f:
        return json.load(f)


def dump(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)


def damage(rng, kind, store, blobs, subset):
    """Applies `kind` to the backups in `subset` (blob names). Returns the set of damaged blobs
    and whether each is expected to be named in the log."""
    sc = lambda b: os.path.join(store, b + ".json")  # noqa: E731
    if kind in ("swap-fields", "swap-sidecars"):
        subset = list(subset)
        if len(subset) % 2:
            extra = [b for b in blobs if b not in subset]
            if extra:
                subset.append(rng.choice(extra))
            else:
                subset.pop()
        rng.shuffle(subset)
        for a, b in zip(subset[0::2], subset[1::2]):
            if kind == "swap-sidecars":
                ta, tb = sc(a) + ".t", sc(b)
                os.rename(sc(a), ta)
                os.rename(sc(b), sc(a))
                os.rename(ta, tb)
            else:
                ma, mb = load(sc(a)), load(sc(b))
                for k in ("sha256", "size"):
                    ma["blob"][k], mb["blob"][k] = mb["blob"][k], ma["blob"][k]
                dump(sc(a), ma)
                dump(sc(b), mb)
        return set(subset)
    for b in subset:
        p = os.path.join(store, b)
        if kind == "flip-byte":
            size = os.path.getsize(p)
            off = rng.randrange(size)
            with open(p, "r+b") as f:
                f.seek(off)
                c = f.read(1)[0]
                f.seek(off)
                f.write(bytes([c ^ (1 << rng.randrange(8))]))
        elif kind == "truncate":
            os.truncate(p, rng.randrange(os.path.getsize(p)))
        elif kind == "sidecar-sha":
            m = load(sc(b))
            while True:
                h = rng.randbytes(32).hex()
                if h != m["blob"]["sha256"]:
                    break
            m["blob"]["sha256"] = h
            dump(sc(b), m)
        elif kind == "sidecar-counts":
            m = load(sc(b))
            if rng.random() < 0.5:
                m["files"] += rng.choice([-1, 1, 7])
            else:
                m["bytes"] += rng.choice([-1, 1, 4096])
            dump(sc(b), m)
        elif kind == "garbled-sidecar":
            with open(sc(b)) as f:
                t = f.read()
            with open(sc(b), "w") as f:
                f.write(t[: rng.randrange(1, len(t) // 2)])
        elif kind == "delete-sidecar":
            os.unlink(sc(b))
    return set(subset)


def main(argv):
    long, seed = bt.mode_from_argv(argv)
    n = 100 if long else 10
    rng = random.Random(seed)
    print(f"corrupt: {n} variants per kind, seed {seed}, bartld {bt.Instance.bartld}", flush=True)
    work = bt.scratch_root()
    rows = []
    failures = 0
    try:
        inst = bt.Instance(work, init_hook=[bt.write_exec(os.path.join(work, "hooks", "init"), INIT_HOOK)],
                           keep_last=0)
        r = inst.run("--prepare")
        assert r.returncode == 0, r
        expected = {}  # blob name -> state hash
        for g in range(N_BACKUPS):
            with open(os.path.join(inst.paths[0], "generation"), "w") as f:
                f.write(f"generation {g}\n")
            with open(os.path.join(inst.paths[0], "data", f"g{g}"), "wb") as f:
                f.write(rng.randbytes(200_000))
            before = set(inst.sidecars())
            r = inst.run("--backup")
            assert r.returncode == 0, r
            (new,) = set(inst.sidecars()) - before
            expected[new] = inst.state_hash()
        pristine = os.path.join(work, "pristine-store")
        shutil.copytree(inst.store, pristine)
        sidecars = inst.sidecars()
        order = sorted(sidecars, key=lambda b: (sidecars[b]["created"], b), reverse=True)  # newest first
        ids = {b: sidecars[b]["id"] for b in order}
        for kind in KINDS:
            row = {"variants": 0, "rejected": 0, "wrong": 0, "none-intact exit 1": 0, "other": 0}
            for v in range(n):
                shutil.rmtree(inst.store)
                shutil.copytree(pristine, inst.store)
                inst.wipe_state()
                # The first variant of each kind damages every backup (the "none intact" case).
                k = N_BACKUPS if v == 0 else rng.randint(1, N_BACKUPS)
                subset = rng.sample(order, k)
                damaged = damage(rng, kind, inst.store, order, subset)
                r = inst.run("--prepare")
                row["variants"] += 1
                intact = [b for b in order if b not in damaged]
                m = inst.marker()
                log = r.stderr
                verdict = None
                if intact:
                    want = intact[0]
                    passed = [b for b in order[: order.index(want)]]
                    if r.returncode != 0 or not m:
                        verdict = f"exit {r.returncode}, expected restore of {ids[want]}"
                    elif m["origin"] != "restore:" + ids[want]:
                        verdict = f"origin {m['origin']}, expected restore:{ids[want]}"
                        if m["origin"] == "init" or m["origin"].removeprefix("restore:") in {ids[b] for b in damaged}:
                            row["wrong"] += 1
                    elif inst.state_hash() != expected[want]:
                        verdict = "restored state differs from the backup's"
                        row["wrong"] += 1
                    elif kind != "delete-sidecar" and any(ids[b] not in log for b in passed):
                        verdict = f"damaged backups {[ids[b] for b in passed if ids[b] not in log]} not named in the log"
                else:
                    if kind == "delete-sidecar":
                        # No sidecar left: the store answered "no backup" (bartl(7)), so init.
                        if r.returncode != 0 or not m or m["origin"] != "init":
                            verdict = f"every sidecar deleted: expected init, got exit {r.returncode}"
                    elif r.returncode == 0 or m is not None:
                        verdict = f"no intact backup, yet exit {r.returncode} origin {m and m['origin']}"
                        row["wrong"] += 1
                    elif r.returncode != 1:
                        verdict = f"no intact backup: exit {r.returncode}, expected 1"
                    elif any(os.path.lexists(p) and (not os.path.isdir(p) or os.listdir(p)) for p in inst.paths) \
                            or any(os.path.lexists(bt.staging_of(p)) for p in inst.paths):
                        verdict = "state paths written although nothing was restored"
                        row["wrong"] += 1
                    elif any(ids[b] not in log for b in damaged):
                        verdict = f"damaged backups {[ids[b] for b in damaged if ids[b] not in log]} not named in the log"
                    else:
                        row["none-intact exit 1"] += 1
                if verdict is None:
                    row["rejected"] += 1
                else:
                    failures += 1
                    print(f"  FAIL [{kind}] damaged {sorted(ids[b] for b in damaged)}: {verdict}\n{r!r}"[:5000],
                          file=sys.stderr)
            rows.append([kind, row["variants"], row["rejected"], row["wrong"], row["none-intact exit 1"]])
            print(f"  {kind}: done", flush=True)
    finally:
        bt.remove_scratch(work)
    tot = [sum(r[i] for r in rows) for i in range(1, 5)]
    rows.append(["total", *tot])
    bt.print_table(f"Corrupt backups ({N_BACKUPS} backups, random damaged subsets; seed {seed})",
                   ["damage", "variants", "handled right", "wrongly accepted", "of which none intact -> exit 1"],
                   rows)
    ok = failures == 0
    print("corrupt: PASS" if ok else f"corrupt: FAIL ({failures} variants)", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
