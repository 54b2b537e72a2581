#!/usr/bin/env python3
"""Issue 3 speed and memory targets: bartld --backup and restore against tar + zstd.

For each --size (default 1G): a deterministic data set (from --seed) is generated once under
--dir (default /var/tmp/bartl-bench) and reused by later runs. It is made by bartld itself: a
fresh install whose init hook is this script (--generate-into), so the state has a real
marker. Mix: ~20% of the bytes in small files (512 B - 64 KiB, thousands of them), ~30% in
medium ones (64 KiB - 4 MiB), ~50% in large ones (16 - 160 MiB); half of the bytes are
log-like text (compresses ~3-5x), half random (incompressible).

Then, --runs times, every measurement after `sync` (untimed) so no earlier dirty data is
flushed inside a timed step, on a warm page cache (the data set is read once before the
first run; dropping the cache needs root and disturbs the other users of this machine):

  backup   bartld --backup (blob into a file:// store, fsync + rename, sidecar)
           baseline: tar -cf - -C STATE . | zstd -3 -T0 | sha256sum          (issue 3)
           durable:  ... | zstd -3 -T0 | tee FILE | sha256sum; sync FILE      (informational)
  restore  bartld --prepare with no state and that backup in the store
           (fetch, verify SHA-256 while extracting into staging, syncfs, rename, marker)
           baseline: zstd -dc BLOB | tar -x -C DIR                            (issue 3)
           durable:  zstd -dc BLOB | tar -x -C DIR; sync -f DIR              (informational)

With --encrypt (issue 13), every run also takes and restores an age-encrypted backup
(encrypt_to = an age-keygen recipient, identity from the credential age-identity) right after
the unencrypted one: target encrypted / unencrypted <= 1.15 for both, peak RSS < 64 MiB.

Peak RSS of bartld is its VmHWM (/proc/PID/status, sampled every 5 ms). Targets: bartld time / baseline
time <= 1.0 for both, peak RSS < 64 MiB for both. Exit status is 0 unless --check is given
and a target fails. Everything but the reusable data set is removed at the end (--clean
removes the data set too).
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "helpers"))
import bartltest as bt  # noqa: E402
from bartltest import GiB, MiB, human, median, parse_size, verdict  # noqa: E402

GEN_VERSION = 1  # bump when the generator changes: old data sets are regenerated
TARGET_RATIO = 1.0
TARGET_RSS_KIB = 64 * 1024
TARGET_AGE_RATIO = 1.15


# ---------------------------------------------------------------------------------------------
# Data set generation (runs as bartld's init hook, in $BARTL_STAGING)

def text_pool(rng, size=8 * MiB):
    """Log-like text: compresses about like real application logs and JSON."""
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
             for _ in range(3000)]
    services = ["api", "worker", "db", "cache", "auth", "notes", "sync", "mailer"]
    levels = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]
    out, n = [], 0
    while n < size:
        line = (f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
                f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999999):06d}Z "
                f"host{rng.randint(1, 40)} {rng.choice(services)}[{rng.randint(100, 99999)}] "
                f"{rng.choice(levels)} {' '.join(rng.choice(vocab) for _ in range(rng.randint(3, 12)))} "
                f"id={rng.getrandbits(64):016x} took={rng.randint(0, 5000)}ms\n")
        out.append(line)
        n += len(line)
    return "".join(out).encode()


def write_content(f, rng, pool, kind, size):
    left = size
    while left > 0:
        if kind == "rand":
            n = min(left, 4 * MiB)
            f.write(rng.randbytes(n))
        else:
            n = min(left, rng.randint(4096, 65536))
            off = rng.randrange(0, len(pool) - n)
            f.write(pool[off:off + n])
        left -= n


def plan_files(size, seed):
    """Deterministic list of (relative path, kind, bytes)."""
    rng = random.Random(seed)
    classes = [("small", 0.20, 512, 64 * 1024), ("medium", 0.30, 64 * 1024, 4 * MiB),
               ("large", 0.50, 16 * MiB, 160 * MiB)]
    files = []
    text = rand = 0
    for name, share, lo, hi in classes:
        budget = int(size * share)
        i = 0
        while budget > 0:
            # log-uniform sizes: many near the low end, a few near the high end
            n = int(math_exp(rng.uniform(math_log(lo), math_log(hi))))
            n = max(1, min(n, budget))
            kind = "text" if text <= rand else "rand"
            if kind == "text":
                text += n
            else:
                rand += n
            if name == "small":
                path = f"small/d{i // 256:04d}/f{i:06d}.{'log' if kind == 'text' else 'bin'}"
            else:
                path = f"{name}/{name}{i:04d}.{'log' if kind == 'text' else 'bin'}"
            files.append((path, kind, n))
            budget -= n
            i += 1
    return files


def math_log(x):
    import math
    return math.log(x)


def math_exp(x):
    import math
    return math.exp(x)


def generate(into, size, seed):
    rng = random.Random(seed * 7919 + 1)
    pool = text_pool(random.Random(seed))
    for path, kind, n in plan_files(size, seed):
        full = os.path.join(into, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            write_content(f, rng, pool, kind, n)


# ---------------------------------------------------------------------------------------------
# Running and timing

def timed(argv, workdir, env=None):
    """Runs argv after an untimed sync; bartltest.Result with the wall time from spawn to exit
    (elapsed) and the program's own peak RSS (maxrss_kib, VmHWM); its output stays in workdir."""
    subprocess.run(["sync"], check=True)
    return bt.procs.run(argv, env or os.environ, workdir, timeout=None)


def must(m, what):
    if m.returncode != 0:
        sys.exit(f"{what} failed (exit {m.returncode}):\n{m.stdout[-2000:]}\n{m.stderr[-4000:]}")
    return m


def bash(cmd):
    return ["/bin/bash", "-o", "pipefail", "-c", cmd]


def write_config(path, state, bartl_dir, store, init_hook=None, moved_from=None, encrypt_to=None):
    backup = {"store": "file://" + store, "compression": "zstd:3", "interval": "24h", "keep_last": 100}
    if encrypt_to:
        backup["encrypt_to"] = [encrypt_to]
    bt.write_config(path, {
        "app": {"name": "benchdata", "version": "1.0.0"},
        # moved: the restore side's state lives elsewhere than the backed-up one
        "state": {"paths": [state], "bartl_dir": bartl_dir, "moved": {moved_from: state} if moved_from else None},
        **({"hooks": {"init": init_hook}} if init_hook else {}),
        "backup": backup})


def du_bytes(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for n in files:
            total += os.lstat(os.path.join(dirpath, n)).st_size
    return total


def count_files(path):
    return sum(len(files) for _, _, files in os.walk(path))


def ensure_dataset(bartld, base, size, seed, env):
    """Returns (state path, bartl dir); generates the data set through bartld init if needed."""
    root = os.path.join(base, f"data-{size}-s{seed}")
    state = os.path.join(root, "state", "data")
    bartl_dir = os.path.join(root, "bartl")
    stamp = os.path.join(root, "complete.json")
    want = {"size": size, "seed": seed, "generator": GEN_VERSION}
    try:
        with open(stamp) as f:
            if json.load(f) == want and os.path.isfile(os.path.join(bartl_dir, "marker.json")):
                print(f"data set: reusing {state}")
                return root, state, bartl_dir
    except (OSError, ValueError):
        pass
    if os.path.exists(root):
        shutil.rmtree(root)
    need = size + GiB // 2
    st = os.statvfs(base)
    if st.f_bavail * st.f_frsize < need:
        sys.exit(f"not enough space in {base}: {human(st.f_bavail * st.f_frsize)} free, "
                 f"about {human(need)} needed (data + blob + restore)")
    os.makedirs(os.path.join(root, "store"))
    cfg = os.path.join(root, "generate.toml")
    hook = [sys.executable, os.path.abspath(__file__), "--generate-size", str(size), "--seed", str(seed),
            "--generate-into-staging"]
    write_config(cfg, state, bartl_dir, os.path.join(root, "store"), init_hook=hook)
    must(timed([bartld, "--config", cfg, "--init-store"], root, env), "bartld --init-store")
    print(f"data set: generating {human(size)} (seed {seed}) in {state} via bartld init ...", flush=True)
    os.makedirs(os.path.join(root, "tmp"))
    m = timed([bartld, "--config", cfg, "--prepare"], os.path.join(root, "tmp"), env)
    must(m, "generating the data set (bartld --prepare with the generator as init hook)")
    print(f"data set: generated in {m.elapsed:.1f} s")
    with open(stamp, "w") as f:
        json.dump(want, f)
    return root, state, bartl_dir


def warm(state, workdir):
    """Reads every file once so both sides start from a warm page cache."""
    m = timed(bash(f"tar -cf - -C {q(state)} . | cat >/dev/null"), workdir)
    must(m, "warm-up read")
    return m.elapsed


def q(s):
    return "'" + s.replace("'", "'\\''") + "'"


def new_store(bartld, ex, name, state, bartl_dir, env, encrypt_to=None):
    """A fresh file:// store EX/NAME with its identity, and the config backing up into it."""
    store = os.path.join(ex, name)
    os.makedirs(store)
    cfg = os.path.join(ex, name + ".toml")
    write_config(cfg, state, bartl_dir, store, encrypt_to=encrypt_to)
    must(timed([bartld, "--config", cfg, "--init-store"], ex, env), f"bartld --init-store ({name})")
    return store, cfg


def restore_into(bartld, ex, name, state, store, env, nfiles, encrypt_to=None):
    """bartld --prepare restoring the one backup in `store` into EX/NAME; the timed Result."""
    rroot = os.path.join(ex, name)
    cfg = os.path.join(ex, name + ".toml")
    write_config(cfg, os.path.join(rroot, "state", "data"), os.path.join(rroot, "bartl"), store, moved_from=state,
                 encrypt_to=encrypt_to)
    m = must(timed([bartld, "--config", cfg, "--prepare"], ex, env), f"bartld --prepare (restore, {name})")
    if "restore" not in m.stdout:
        sys.exit(f"bartld --prepare did not restore: {m.stdout}\n{m.stderr[-2000:]}")
    got = count_files(os.path.join(rroot, "state", "data"))
    if got != nfiles:
        sys.exit(f"restore gave {got} files, expected {nfiles}")
    return m


def bench_size(bartld, base, size, seed, runs, env, durable, encrypt=False):
    root, state, bartl_dir = ensure_dataset(bartld, base, size, seed, env)
    nfiles, nbytes = count_files(state), du_bytes(state)
    work = os.path.join(base, f"work-{os.getpid()}")
    need = int(nbytes * (3 if durable else 2) * runs + nbytes + GiB // 2)  # extracted trees + blobs
    st = os.statvfs(base)
    if st.f_bavail * st.f_frsize < need:
        sys.exit(f"not enough space in {base}: {human(st.f_bavail * st.f_frsize)} free, about {human(need)} "
                 f"needed for {runs} run(s) of {human(nbytes)} (use --runs 1 or --no-durable)")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    res = {"size": size, "files": nfiles, "bytes": nbytes, "backup": [], "backup_base": [],
           "backup_durable": [], "restore": [], "restore_base": [], "restore_durable": [],
           "backup_rss": [], "restore_rss": [], "blob": 0,
           "backup_age": [], "restore_age": [], "backup_age_rss": [], "restore_age_rss": []}
    try:
        recipient = None
        if encrypt:
            key = os.path.join(work, "age.key")
            must(timed([shutil.which("age-keygen"), "-o", key], work), "age-keygen")
            recipient = must(timed([shutil.which("age-keygen"), "-y", key], work), "age-keygen -y").stdout.strip()
            creds = os.path.join(work, "credentials")
            os.makedirs(creds)
            shutil.copy(key, os.path.join(creds, "age-identity"))
            env_age = dict(env, CREDENTIALS_DIRECTORY=creds)
        print(f"data set: {nfiles} files, {human(nbytes)}; warm-up read {warm(state, work):.1f} s", flush=True)
        for run in range(runs):
            # Nothing is deleted before the end of this size's runs: ext4 scans recently deleted
            # inodes when it allocates new ones (find_inode_bit -> recently_deleted), so a
            # restore right after an `rm -rf` of a big tree pays ~1 ms per created file.
            ex = os.path.join(work, f"run{run}")
            os.makedirs(ex)
            # A new store per run: the restore below takes the store over (fencing), after
            # which the data set's state may no longer back up there.
            store, cfg_a = new_store(bartld, ex, "store", state, bartl_dir, env)
            if encrypt:
                store_age, cfg_e = new_store(bartld, ex, "store-age", state, bartl_dir, env, recipient)
            # backup: baseline, then bartld
            m = must(timed(bash(f"tar -cf - -C {q(state)} . | zstd -3 -T0 -q | sha256sum"), work), "baseline backup")
            res["backup_base"].append(m.elapsed)
            if durable:
                f = os.path.join(work, "baseline.tar.zst")
                m = must(timed(bash(f"tar -cf - -C {q(state)} . | zstd -3 -T0 -q | tee {q(f)} | sha256sum"
                                    f" && sync {q(f)}"), work), "durable baseline backup")
                res["backup_durable"].append(m.elapsed)
                os.unlink(f)
            m = must(timed([bartld, "--config", cfg_a, "--backup"], work, env), "bartld --backup")
            res["backup"].append(m.elapsed)
            res["backup_rss"].append(m.maxrss_kib)
            if encrypt:
                # Right after the unencrypted one, on the same page cache and writeback state:
                # run after the restores, it paid for their dirty pages being written back.
                m = must(timed([bartld, "--config", cfg_e, "--backup"], work, env), "bartld --backup (age)")
                res["backup_age"].append(m.elapsed)
                res["backup_age_rss"].append(m.maxrss_kib)
            blobs = [n for n in os.listdir(store) if n.endswith(".tar.zst")]
            if len(blobs) != 1:
                sys.exit(f"expected one blob in {store}, found {blobs}")
            blob = os.path.join(store, blobs[0])
            res["blob"] = os.path.getsize(blob)

            # restore: baseline, then bartld. GNU tar does not know pax "hdrcharset" (bartl
            # writes it on every entry) and would print a warning per file: silenced.
            tar_x = "tar --warning=no-unknown-keyword -x"
            x = os.path.join(ex, "tar-x")
            os.makedirs(x)
            m = must(timed(bash(f"zstd -dc -q {q(blob)} | {tar_x} -C {q(x)}"), work), "baseline restore")
            res["restore_base"].append(m.elapsed)
            if durable:
                x = os.path.join(ex, "tar-x-durable")
                os.makedirs(x)
                m = must(timed(bash(f"zstd -dc -q {q(blob)} | {tar_x} -C {q(x)} && sync -f {q(x)}"), work),
                         "durable baseline restore")
                res["restore_durable"].append(m.elapsed)
            steps = [("restore", lambda: restore_into(bartld, ex, "bartl-restore", state, store, env, nfiles))]
            if encrypt:
                steps.append(("restore_age", lambda: restore_into(bartld, ex, "bartl-restore-age", state, store_age,
                                                                  env_age, nfiles, recipient)))
                # A restore is bound by writing back 1 GiB, and the second of two in a row
                # finds the disk busier: alternate the order (ABBA), so neither side always pays.
                if run % 2:
                    steps.reverse()
            for key, step in steps:
                m = step()
                res[key].append(m.elapsed)
                res[key + "_rss"].append(m.maxrss_kib)
            for s in (store, store_age) if encrypt else (store,):
                shutil.rmtree(s)
            print(f"  run {run + 1}/{runs}: backup {res['backup'][-1]:.2f} s vs {res['backup_base'][-1]:.2f} s, "
                  f"restore {res['restore'][-1]:.2f} s vs {res['restore_base'][-1]:.2f} s, "
                  f"RSS {res['backup_rss'][-1] / 1024:.1f} / {res['restore_rss'][-1] / 1024:.1f} MiB"
                  + (f"; age: backup {res['backup_age'][-1]:.2f} s, restore {res['restore_age'][-1]:.2f} s"
                     if encrypt else ""), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return root, res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bartld", help="bartld binary (default: $BARTLD, build-bench/, build/)")
    ap.add_argument("--size", action="append", help="data set size, e.g. 256M, 1G, 2G (repeatable; default 1G)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--dir", default="/var/tmp/bartl-bench", help="where data sets and scratch go")
    ap.add_argument("--runs", type=int, default=3, help="measured runs per size; medians are reported (default 3)")
    ap.add_argument("--no-durable", action="store_true", help="skip the informational fsync'ing baselines")
    ap.add_argument("--encrypt", action="store_true",
                    help="also time an age-encrypted backup and restore per run (issue 13; needs age)")
    ap.add_argument("--clean", action="store_true", help="remove the generated data sets afterwards")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target fails")
    ap.add_argument("--generate-into-staging", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--generate-size", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.generate_into_staging:  # called by bartld as the init hook
        generate(os.environ["BARTL_STAGING"], args.generate_size, args.seed)
        return 0

    for tool in ("tar", "zstd", "sha256sum", "sync") + (("age", "age-keygen") if args.encrypt else ()):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found")
    bartld = bt.require_bartld(("build-bench", "build"), args.bartld)
    sizes = [parse_size(s) for s in (args.size or ["1G"])]
    os.makedirs(args.dir, exist_ok=True)
    env = bt.bartld_env(os.environ.get("BARTL_LOG_LEVEL", "notice"))
    print(f"bartld: {bartld}; {os.cpu_count()} CPUs; warm page cache (data read once before the runs);"
          f" sync before every timed step")
    results, roots = [], []
    try:
        for size in sizes:
            root, res = bench_size(bartld, args.dir, size, args.seed, args.runs, env, not args.no_durable,
                                   args.encrypt)
            results.append(res)
            roots.append(root)
    finally:
        if args.clean:
            for r in roots:
                shutil.rmtree(r, ignore_errors=True)

    ok = True
    print()
    print(f"{'data set':<22} {'step':<8} {'bartld':>8} {'baseline':>9} {'ratio':>6} {'durable':>8} {'ratio':>6}"
          f" {'peak RSS':>10}  verdict")
    lines = []
    for r in results:
        label = f"{human(r['bytes'])}, {r['files']} files"
        for step in ("backup", "restore"):
            t, b = median(r[step]), median(r[step + "_base"])
            d = median(r[step + "_durable"]) if r[step + "_durable"] else None
            rss = max(r[step + "_rss"])
            ok_t, ok_m = t / b <= TARGET_RATIO, rss < TARGET_RSS_KIB
            ok = ok and ok_t and ok_m
            dtext = f"{d:7.2f}s {t / d:6.2f}" if d else f"{'-':>8} {'-':>6}"
            print(f"{label:<22} {step:<8} {t:7.2f}s {b:8.2f}s {t / b:6.2f} {dtext} {rss / 1024:7.1f} MiB"
                  f"  time {verdict(ok_t)}, RSS {verdict(ok_m)}")
            lines.append((label, step, ok_t, t / b, ok_m, rss))
        print(f"{'':<22} blob {human(r['blob'])} (ratio {r['bytes'] / max(1, r['blob']):.2f}x)")
        for step in ("backup", "restore") if r["backup_age"] else ():
            # Per run, encrypted / unencrypted of the same run: both saw the same machine load.
            ratio = median([a / p for a, p in zip(r[step + "_age"], r[step])])
            rss = max(r[step + "_age_rss"])
            ok_t, ok_m = ratio <= TARGET_AGE_RATIO, rss < TARGET_RSS_KIB
            ok = ok and ok_t and ok_m
            print(f"{label:<22} {step + '+age':<8} {median(r[step + '_age']):7.2f}s {'(bartld)':>9} {ratio:6.2f}"
                  f" {'-':>8} {'-':>6} {rss / 1024:7.1f} MiB  time {verdict(ok_t)}, RSS {verdict(ok_m)}")
            lines.append((label, step + " encrypted/unencrypted", ok_t, ratio, ok_m, rss))
    print()
    print("ratio = bartld / baseline (target <= 1.0); durable = baseline that also fsyncs its output"
          " (informational); peak RSS target < 64 MiB")
    for label, step, ok_t, ratio, ok_m, rss in lines:
        target = TARGET_AGE_RATIO if "encrypted" in step else TARGET_RATIO
        print(f"{verdict(ok_t)}  {step} time ratio {ratio:.2f} <= {target} ({label})")
        print(f"{verdict(ok_m)}  {step} peak RSS {rss / 1024:.1f} MiB < 64 MiB ({label})")
    return 1 if (args.check and not ok) else 0


if __name__ == "__main__":
    sys.exit(main())
