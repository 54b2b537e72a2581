#!/usr/bin/env python3
"""Hostile archives at scale (the per-entry cases live in tests/unit/blob): blobs built with
python's tarfile + the zstd CLI, given a sidecar with the right size and SHA-256 so they pass
the hash check and reach the extractor, then restored by `bartld --prepare`.

  many-entries        N empty files (200k in CI, 2M --long), sidecar truthful: restored in
                      bounded time; ru_maxrss of bartld reported (vs a 1k-entry baseline)
  many-entries-lying  the same archive, sidecar claiming 10 files: the unpacked-bytes limit
                      derived from the sidecar stops it; rejected, nothing left behind
  zstd-bomb           one file of 1 GiB (8 GiB --long) of zeros (a ~30 KiB blob), sidecar
                      claiming 4 KiB: rejected at the limit

The state paths live on a private tmpfs: a sampler reads statvfs every few ms and records the
peak bytes and inodes in use while bartld runs, which shows how much was written before the
limit stopped it. Figures: case, entries/bytes in the archive, exit, seconds, maxrss MiB, peak
written, verdict. Usage: hostile.py [--long] [--seed N]
"""
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import bartltest as bt  # noqa: E402

APP = "fapp"
MIB = 1 << 20


class Zeros:
    def __init__(self, n):
        self.left = n
        self.buf = bytes(1 << 20)

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        n = min(n, len(self.buf))
        self.left -= n
        return self.buf[:n]


class HashingFile:
    def __init__(self, f):
        self.f, self.h, self.n = f, hashlib.sha256(), 0

    def write(self, b):
        self.h.update(b)
        self.n += len(b)
        self.f.write(b)


def make_backup(inst, bid, entries, claim_files, claim_bytes, created="2030-01-01T00:00:00.000Z"):
    """Writes blob + sidecar into inst.store. `entries(tar)` adds the state entries."""
    name = f"{APP}-20300101T000000Z-1.0.0-{bid}.tar.zst"
    path = os.path.join(inst.store, name)
    zstd = subprocess.Popen(["zstd", "-q", "-3", "-T0", "-c"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    hasher_out = open(path, "wb")
    hf = HashingFile(hasher_out)

    def pump():
        while True:
            b = zstd.stdout.read(1 << 16)
            if not b:
                return
            hf.write(b)

    t = threading.Thread(target=pump)
    t.start()
    manifest = {"app": APP, "components": [{"kind": "path", "name": p} for p in inst.paths],
                "compression": "zstd:3", "created": created, "encryption": None, "format": 1,
                "host": "hostile", "id": bid, "paths": inst.paths, "version": "1.0.0"}
    with tarfile.open(fileobj=zstd.stdin, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        data = json.dumps(manifest).encode()
        ti = tarfile.TarInfo("bartl/manifest.json")
        ti.size = len(data)
        import io
        tar.addfile(ti, io.BytesIO(data))
        ti = tarfile.TarInfo("state/0")
        ti.type = tarfile.DIRTYPE
        ti.mode = 0o755
        tar.addfile(ti)
        entries(tar)
    zstd.stdin.close()
    zstd.wait()
    t.join()
    hasher_out.close()
    side = dict(manifest)
    side["blob"] = {"name": name, "size": hf.n, "sha256": hf.h.hexdigest()}
    side["files"] = claim_files
    side["bytes"] = claim_bytes
    with open(path + ".json", "w") as f:
        json.dump(side, f, indent=2)
    return name


def empty_files(n):
    def add(tar):
        per_dir = 1000
        for d in range((n + per_dir - 1) // per_dir):
            ti = tarfile.TarInfo(f"state/0/d{d:05d}")
            ti.type = tarfile.DIRTYPE
            ti.mode = 0o755
            tar.addfile(ti)
            for i in range(min(per_dir, n - d * per_dir)):
                tar.addfile(tarfile.TarInfo(f"state/0/d{d:05d}/f{i:04d}"))
    dirs = (n + 999) // 1000
    return add, n + dirs + 1  # + state/0 itself


def bomb(size):
    def add(tar):
        ti = tarfile.TarInfo("state/0/zero")
        ti.size = size
        tar.addfile(ti, Zeros(size))
    return add


class Sampler:
    """Peak bytes and inodes in use on a filesystem while a process runs."""

    def __init__(self, path):
        self.path = path
        st = os.statvfs(path)
        self.base_bytes = (st.f_blocks - st.f_bfree) * st.f_frsize
        self.base_inodes = st.f_files - st.f_ffree
        self.peak_bytes = self.peak_inodes = 0
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            st = os.statvfs(self.path)
            self.peak_bytes = max(self.peak_bytes, (st.f_blocks - st.f_bfree) * st.f_frsize - self.base_bytes)
            self.peak_inodes = max(self.peak_inodes, st.f_files - st.f_ffree - self.base_inodes)
            time.sleep(0.002)

    def finish(self):
        self.stop = True
        self.t.join()
        return self


def state_empty(inst):
    return all(not os.path.lexists(p) or (os.path.isdir(p) and not os.listdir(p)) for p in inst.paths) and \
        not any(os.path.lexists(bt.staging_of(p)) for p in inst.paths) and inst.marker() is None


def main(argv):
    long, seed = bt.mode_from_argv(argv)
    n_entries = 2_000_000 if long else 200_000
    bomb_size = (8 << 30) if long else (1 << 30)
    work = bt.scratch_root()
    mnt = os.path.join(work, "statefs")
    os.makedirs(mnt)
    rows = []
    failures = []
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4g,nr_inodes=4m", "tmpfs", mnt]).returncode == 0
    if not mounted:
        print("hostile: cannot mount a tmpfs (not root?): peak-written figures come from the scratch filesystem")
    print(f"hostile: {n_entries} entries, bomb {bomb_size >> 20} MiB, bartld {bt.Instance.bartld}", flush=True)
    try:
        def case(label, bid, entries, claim_files, claim_bytes, expect_ok, size_text, max_rss_mib, max_secs,
                 max_written=None):
            root = os.path.join(work, bid)
            inst = bt.Instance(root, state_dir=mnt)
            inst.wipe_state()
            t0 = time.monotonic()
            make_backup(inst, bid, entries, claim_files, claim_bytes)
            build_s = time.monotonic() - t0
            s = Sampler(mnt)
            r = inst.run("--prepare", timeout=3600)
            s.finish()
            rss = r.maxrss_kib / 1024
            verdict = []
            if expect_ok:
                m = inst.marker()
                if r.returncode != 0 or not m or m["origin"] != "restore:" + bid:
                    verdict.append(f"expected a restore, got exit {r.returncode}")
            else:
                if r.returncode != 1:
                    verdict.append(f"expected exit 1, got {r.returncode}")
                if not state_empty(inst):
                    verdict.append("state or staging left behind")
                if bid not in r.stderr:
                    verdict.append("backup not named in the log")
            if rss > max_rss_mib:
                verdict.append(f"maxrss {rss:.0f} MiB > {max_rss_mib} MiB")
            if r.elapsed > max_secs:
                verdict.append(f"took {r.elapsed:.0f}s > {max_secs}s")
            if max_written is not None and s.peak_bytes > max_written:
                verdict.append(f"wrote {s.peak_bytes >> 20} MiB > limit {max_written >> 20} MiB")
            rows.append([label, size_text, r.returncode, f"{r.elapsed:.1f}", f"{rss:.1f}", f"{s.peak_bytes / MIB:.1f}",
                         s.peak_inodes, "ok" if not verdict else "FAIL: " + "; ".join(verdict)])
            if verdict:
                failures.append(label)
                print(f"  FAIL {label}: {verdict}\n{r!r}"[:6000], file=sys.stderr)
            else:
                print(f"  {label}: ok (blob built in {build_s:.1f}s)", flush=True)
            # Free the tmpfs for the next case.
            inst.wipe_state()
            for n in os.listdir(inst.store):
                os.unlink(os.path.join(inst.store, n))

        add, files = empty_files(1000)
        case("baseline 1k entries", "0000b001", add, files, 0, True, "1k entries", 48, 30)
        add, files = empty_files(n_entries // 4)
        if long:
          case(f"many-entries {n_entries // 4 // 1000}k", "0000e001", add, files, 0, True,
             f"{n_entries // 4} entries", 128, 300)
        add, files = empty_files(n_entries)
        case(f"many-entries {n_entries // 1000}k", "0000e002", add, files, 0, True, f"{n_entries} entries",
             512 if long else 128, 1800 if long else 120)
        add, files = empty_files(n_entries)
        limit = 0 + (10 + 1) * 8192 + (16 << 20)
        case("many-entries-lying", "0000e003", add, 10, 0, False, f"{n_entries} entries, claims 10", 64, 120,
             max_written=limit + (8 << 20))
        limit = 4096 + (2 + 1) * 8192 + (16 << 20)
        case("zstd-bomb", "0000b0mb", bomb(bomb_size), 2, 4096, False,
             f"{bomb_size >> 20} MiB zeros, claims 4 KiB", 64, 120, max_written=limit + (1 << 20))
    finally:
        if mounted:
            subprocess.run(["umount", "-l", mnt])
        bt.remove_scratch(work)
    bt.print_table("Hostile archives at scale (restore by bartld --prepare)",
                   ["case", "archive", "exit", "seconds", "maxrss MiB", "peak written MiB", "peak inodes",
                    "verdict"], rows)
    print("hostile: PASS" if not failures else f"hostile: FAIL {failures}", flush=True)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
