#!/usr/bin/env python3
"""Issue "observed facts" speed target: the identity checks do not touch file contents, so the
reboot path costs the same at 10 and at 100,000 files in the state.

For each size, a fresh instance whose state (one directory) holds N small files in 100
subdirectories is made by bartld itself (an init hook writes them), then `bartld --prepare` on
the reboot path (state present, versions equal: observe the marker and each component's
state ID, decide "serve", exit) is timed, alternating the two sizes, after warm-up runs.

Prints the median wall time per size and their ratio; target: ratio <= 1.10 (the same cost
within noise). Usage: bench/identity.py [--bartld PATH] [--runs N] [--check]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "helpers"))
import bartltest as bt  # noqa: E402
from bartltest import median, pct, verdict  # noqa: E402

HOOK = """#!/usr/bin/env python3
import os
d = os.environ["BARTL_STAGING"]
n = int(os.environ["BENCH_FILES"])
per = max(1, n // 100)
for i in range(n):
    sub = os.path.join(d, f"d{i // per:03d}")
    if i % per == 0:
        os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, f"f{i:06d}"), "w") as f:
        f.write("x")
"""


def make_instance(bartld, root, files, env):
    os.makedirs(root)
    hook = bt.write_exec(os.path.join(root, "fill"), HOOK)
    os.makedirs(os.path.join(root, "store"))
    cfg = bt.write_config(os.path.join(root, "bench.toml"), {
        "app": {"name": "bench", "version": "1.0.0", "environment": {"BENCH_FILES": str(files)}},
        "state": {"paths": [f"{root}/state/data"], "bartl_dir": f"{root}/bartl"},
        "hooks": {"init": [hook]},
        "backup": {"store": f"file://{root}/store"}})
    run_env = dict(env, BENCH_FILES=str(files))
    for args in (["--init-store"], ["--prepare"]):
        p = subprocess.run([bartld, "--config", cfg, *args], env=run_env, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"bartld {' '.join(args)} failed ({p.returncode}):\n{p.stderr}")
    n = sum(len(fs) for _, _, fs in os.walk(os.path.join(root, "state", "data")))
    if n != files:
        sys.exit(f"expected {files} files in the state, found {n}")
    return cfg


def time_prepare(bartld, cfg, env):
    t0 = time.perf_counter()
    p = subprocess.run([bartld, "--config", cfg, "--prepare"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    ms = (time.perf_counter() - t0) * 1000.0
    if p.returncode != 0 or "decision: serve" not in p.stderr:
        sys.exit(f"bartld --prepare is not on the reboot path ({p.returncode}):\n{p.stderr}")
    return ms


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bartld")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--check", action="store_true", help="exit 1 when the target fails")
    args = ap.parse_args()
    bartld = bt.require_bartld(("build-bench", "build"), args.bartld)
    env = bt.bartld_env("info", "/nonexistent-bench-bus")
    base = tempfile.mkdtemp(prefix="bartl-bench-identity-")
    try:
        sizes = (10, 100_000)
        cfgs = {n: make_instance(bartld, os.path.join(base, f"n{n}"), n, env) for n in sizes}
        times = {n: [] for n in sizes}
        for i in range(args.warmup + args.runs):
            for n in sizes:
                ms = time_prepare(bartld, cfgs[n], env)
                if i >= args.warmup:
                    times[n].append(ms)
        small, big = median(times[sizes[0]]), median(times[sizes[1]])
        ratio = big / small
        print(f"bartld: {bartld}")
        for n in sizes:
            print(f"reboot path (--prepare, state present) with {n:>7} files: median {median(times[n]):6.2f} ms, "
                  f"p90 {pct(times[n], 90):6.2f} ms ({args.runs} runs)")
        ok = ratio <= 1.10
        print(f"ratio 100k/10 files: {ratio:.3f} (target <= 1.10): {verdict(ok)}")
        return 0 if ok or not args.check else 1
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
