"""Reading a file:// store as bartl(7) lays it out: a blob and its sidecar manifest
(BLOB.json) per backup, the store's identity (bartl-store.json) and lock, hidden temporaries."""
import json
import os

from .fs import sha256_file

STORE_BOOKKEEPING = ("bartl-store.json", ".bartl-store.lock")


def store_objects(store):
    """Names in a file:// store directory, sorted, without the store's own identity and lock."""
    return sorted(n for n in os.listdir(store) if n not in STORE_BOOKKEEPING)


def temporaries(store):
    """Hidden names in a store other than its lock: uploads in progress or left behind."""
    return [n for n in os.listdir(store) if n.startswith(".") and n not in STORE_BOOKKEEPING]


def sidecars(store):
    """{blob name: sidecar dict, or None where it does not parse} for every visible sidecar;
    {} when the store directory is missing."""
    out = {}
    if not os.path.isdir(store):
        return out
    for n in os.listdir(store):
        if n.startswith(".") or not n.endswith(".json") or n in STORE_BOOKKEEPING:
            continue
        try:
            with open(os.path.join(store, n)) as f:
                out[n[:-5]] = json.load(f)
        except (OSError, ValueError):
            out[n[:-5]] = None
    return out


def newest_first(manifests):
    """The sidecars that parse, newest first, as bartl orders backups (created, then name)."""
    return sorted((m for m in manifests if m), key=lambda m: (m["created"], m["blob"]["name"]), reverse=True)


def check_store(inst, before_blobs, verify_new=True, verified=None):
    """Every listable backup of `inst` (an Instance) is whole: its blob exists and matches the
    sidecar's size and SHA-256, and (verify_new) `bartld --verify ID` passes for those not in
    before_blobs. `verified` (a set of (blob, sha256)) skips blobs already verified and
    collects new ones. Returns (orphan blobs, temporaries, problems: [(message, Result or
    None)])."""
    sc = inst.sidecars()
    names = os.listdir(inst.store)
    blobs = [n for n in names if not n.startswith(".") and not n.endswith((".json", ".json.sig"))]
    orphans = [b for b in blobs if b not in sc]
    problems = []
    for blob, m in sc.items():
        if m is None:
            problems.append((f"sidecar {blob}.json does not parse", None))
            continue
        p = os.path.join(inst.store, blob)
        if not os.path.exists(p) or os.path.getsize(p) != m["blob"]["size"] or sha256_file(p) != m["blob"]["sha256"]:
            problems.append((f"listable backup {m['id']}: blob missing or not matching its sidecar", None))
            continue
        key = (blob, m["blob"]["sha256"])
        if verify_new and blob not in before_blobs and (verified is None or key not in verified):
            r = inst.run("--verify", m["id"])
            if r.returncode != 0:
                problems.append((f"bartld --verify {m['id']} failed", r))
            elif verified is not None:
                verified.add(key)
    return orphans, temporaries(inst.store), problems
