#!/usr/bin/python3
"""Issue 4 target: `bartlctl status` answers in under 50 ms (median) while a backup runs.

Starts a private system-type dbus-daemon, bartld serving a state-only instance with a data
set large enough that a backup runs for several seconds, then times `bartlctl status`
N times while idle (the baseline, same run) and N times while `bartlctl backup` runs.
Prints medians, p90 and the ratio; PASS/FAIL against 50 ms. Exit 1 on FAIL with --check.

Usage: bench/status.py [--runs N] [--size-mib M] [--check]   (BARTLD/BARTLCTL from build/)
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "helpers"))
import bartltest  # noqa: E402


def time_status(bus, runs):
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = bartltest.bartlctl("-i", "bench", "status", bus=bus)
        out.append((time.perf_counter() - t0) * 1000)
        if r.returncode != 0:
            raise SystemExit(f"bartlctl status failed: {r.stderr}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="bartl-bench-status-", dir="/var/tmp")
    bus = bartltest.PrivateBus()
    proc = None
    try:
        state = os.path.join(root, "state")
        os.makedirs(os.path.join(root, "store"))
        os.makedirs(state)
        # Incompressible data so the backup takes a while even at zstd level 1.
        with open(os.path.join(state, "data.bin"), "wb") as f:
            for _ in range(a.size_mib):
                f.write(os.urandom(1 << 20))
        conf = bartltest.write_config(os.path.join(root, "bench.toml"), {
            "app": {"name": "bench", "version": "1.0.0"},
            "state": {"paths": [state], "bartl_dir": f"{root}/bartl"},
            "backup": {"store": f"file://{root}/store", "compression": "zstd:19", "keep_last": 0, "keep_daily": 0,
                       "keep_weekly": 0, "keep_monthly": 0}})
        # A new store gets its identity; adopt the data (it is not bartl's yet); then serve.
        r = bartltest.bartlctl("init-store", "-c", conf, bus=bus)
        if r.returncode != 0:
            raise SystemExit(f"init-store failed: {r.stderr}")
        r = bartltest.bartlctl("adopt", "-c", conf, "1.0.0", bus=bus)
        if r.returncode != 0:
            raise SystemExit(f"adopt failed: {r.stderr}")
        env = {**os.environ, **bus.env(), "BARTL_LOG_LEVEL": "warning"}
        proc = subprocess.Popen([bartltest.BARTLD, "--config", conf], env=env)
        for _ in range(200):
            if bartltest.bartlctl("-i", "bench", "status", bus=bus).returncode == 0:
                break
            time.sleep(0.05)
        idle = time_status(bus, a.runs)
        backup = subprocess.Popen([bartltest.BARTLCTL, "-i", "bench", "backup", "--wait"],
                                  env=env, stdout=subprocess.DEVNULL)
        time.sleep(0.3)
        busy = time_status(bus, a.runs)
        still_running = backup.poll() is None
        backup.wait()
        med_i, med_b = bartltest.median(idle), bartltest.median(busy)
        p90 = lambda v: bartltest.pct(v, 90)  # noqa: E731
        print(f"bartlctl status, {a.runs} runs each, {os.cpu_count()} cores")
        print(f"  idle:           median {med_i:6.1f} ms   p90 {p90(idle):6.1f} ms   (baseline)")
        print(f"  backup running: median {med_b:6.1f} ms   p90 {p90(busy):6.1f} ms   ratio {med_b / med_i:.2f}")
        print(f"  backup still running after the last sample: {still_running}")
        ok = med_b < 50 and still_running
        print(f"target median < 50 ms while a backup runs: {'PASS' if ok else 'FAIL'}")
        return 0 if ok or not a.check else 1
    finally:
        if proc and proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        bus.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
