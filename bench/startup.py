#!/usr/bin/env python3
"""Issue 2 speed target: bartld's reboot path against exec of the app alone.

Reboot path: state present (marker written by a first `bartld --prepare`), engine version ==
state version, app `ready = "started"`. For each run:

  bartld   t0 = just before posix_spawn(bartld --config C), t1 = arrival of the datagram
           holding READY=1 on a real AF_UNIX NOTIFY_SOCKET listener (this process). Between
           the two, bartld loads its config, takes the instance lock, observes the state,
           forks+execs the app and reports READY=1.
  baseline t0 = just before posix_spawn(APP), t1 = posix_spawn returned. glibc's posix_spawn
           uses CLONE_VFORK and returns only once the child has exec'd, which is exactly what
           ready = "started" promises about the app.

Runs alternate (bartld, baseline, bartld, ...) after a few discarded warm-up runs. Also reads
bartld's /proc/PID/status (VmRSS, VmHWM, RssAnon/RssFile) right after READY=1 and again after
--settle seconds of serving.

Targets: median(bartld) - median(baseline) <= 10 ms; VmRSS while serving < 10 MiB.
Exit status is 0 unless --check is given and a target fails.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "helpers"))
import bartltest as bt  # noqa: E402
from bartltest import median, pct, proc_status, verdict  # noqa: E402

TARGET_MS = 10.0
TARGET_RSS_KIB = 10 * 1024


def write_config(root, app_argv, store, bartld):
    cfg = os.path.join(root, "bench.toml")
    tables = {"app": {"name": "benchapp", "version": "1.0.0", "exec": app_argv, "ready": "started", "stop_timeout": "5s"},
              "state": {"paths": [os.path.join(root, "state")], "bartl_dir": os.path.join(root, "bartl")}}
    if store:
        os.makedirs(os.path.join(root, "store"), exist_ok=True)
        tables["backup"] = {"store": "file://" + os.path.join(root, "store"), "interval": "24h"}
    bt.write_config(cfg, tables)
    if store:  # the operator's one-time step for a new store
        bt.init_store(bartld, cfg)
    return cfg


def spawn(argv, env):
    """posix_spawn(3) with stdin, stdout and stderr on /dev/null; returns the PID."""
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        return bt.spawn(argv, env, stdin=devnull, stdout=devnull, stderr=devnull)
    finally:
        os.close(devnull)


def stop(pid, timeout=10.0):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    return os.wait4(pid, 0)[1:]


def run_bartld(bartld, cfg, env, listener, settle):
    """One start on the reboot path: (ms from exec to the arrival of READY=1, /proc status at
    READY=1, status and smaps_rollup after `settle` s, CPU ms of the whole run)."""
    listener.clear()
    t0 = time.monotonic()  # the listener's clock
    pid = spawn([bartld, "--config", cfg], env)
    try:
        t1 = listener.wait_for("READY=1", timeout=10, alive=lambda: not bt.exited(pid))
        if t1 is None:
            raise RuntimeError(f"bartld (PID {pid}) exited or sent no READY=1 within 10 s")
        at_ready = proc_status(pid)
        serving = {}
        if settle > 0:
            time.sleep(settle)
            serving = proc_status(pid)
        serving.update(smaps_rollup(pid))
    finally:
        status, usage = stop(pid)
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
        raise RuntimeError(f"bartld did not stop cleanly after SIGTERM (wait status {status})")
    cpu_ms = (usage.ru_utime + usage.ru_stime) * 1000.0
    return (t1 - t0) * 1000.0, at_ready, serving, cpu_ms


def run_baseline(app_argv, env):
    t0 = time.perf_counter()
    pid = spawn(app_argv, env)
    t1 = time.perf_counter()
    stop(pid)
    return (t1 - t0) * 1000.0


def run_to_exit(argv, env):
    """Wall ms of spawn .. exit of a short command (for the breakdown)."""
    t0 = time.perf_counter()
    pid = spawn(argv, env)
    os.waitpid(pid, 0)
    return (time.perf_counter() - t0) * 1000.0


def smaps_rollup(pid):
    """Pss and Private_* (KiB) of /proc/PID/smaps_rollup: what bartld really costs beyond shared pages."""
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("Pss", "Private_Clean", "Private_Dirty"):
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bartld", help="bartld binary (default: $BARTLD, build-bench/, build/)")
    ap.add_argument("--runs", type=int, default=30, help="measured runs of each side (default 30)")
    ap.add_argument("--warmup", type=int, default=3, help="discarded runs of each side first (default 3)")
    ap.add_argument("--settle", type=float, default=0.3,
                    help="seconds of serving before the second RSS sample (default 0.3)")
    ap.add_argument("--app", default="/bin/sleep 1000",
                    help='app command line, split on spaces (default "/bin/sleep 1000")')
    ap.add_argument("--no-store", action="store_true", help="leave [backup] out of the config")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target fails")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()

    bartld = bt.require_bartld(("build-bench", "build"), args.bartld)
    app_argv = args.app.split()
    if not os.path.isabs(app_argv[0]):
        app_argv[0] = shutil.which(app_argv[0]) or app_argv[0]
    root = tempfile.mkdtemp(prefix="bartl-bench-startup-")
    listener = bt.NotifyListener(root, background=False)
    try:
        cfg = write_config(root, app_argv, store=not args.no_store, bartld=bartld)
        base_env = bt.bartld_env(os.environ.get("BARTL_LOG_LEVEL", "notice"))
        # First start: fresh install (init without a hook), so every measured start is a reboot.
        p = subprocess.run([bartld, "--config", cfg, "--prepare"], env=base_env, capture_output=True, text=True,
                           timeout=60)
        if p.returncode != 0:
            sys.exit(f"bartld --prepare failed ({p.returncode}):\n{p.stderr}")
        plan = subprocess.run([bartld, "--config", cfg, "--plan"], env=base_env, capture_output=True, text=True,
                              timeout=60)
        plan_line = next((l for l in plan.stdout.splitlines() if "serve" in l), plan.stdout.strip()[:200])
        env = dict(base_env, NOTIFY_SOCKET=listener.path)

        load_before = os.getloadavg()[0]
        bartld_ms, base_ms, cpu_ms, rss_ready, rss_serving = [], [], [], [], []
        true_ms, version_ms, check_ms = [], [], []
        for i in range(args.warmup + args.runs):
            ms, at_ready, serving, cpu = run_bartld(bartld, cfg, env, listener, args.settle)
            b = run_baseline(app_argv, base_env)
            t_true = run_to_exit(["/bin/true"], base_env)
            t_version = run_to_exit([bartld, "--version"], base_env)
            t_check = run_to_exit([bartld, "--config", cfg, "--check-config"], base_env)
            if i < args.warmup:
                continue
            bartld_ms.append(ms)
            base_ms.append(b)
            cpu_ms.append(cpu)
            true_ms.append(t_true)
            version_ms.append(t_version)
            check_ms.append(t_check)
            rss_ready.append(at_ready)
            if serving:
                rss_serving.append(serving)

        def row(name, v):
            return f"  {name:<28} median {median(v):7.2f} ms   p90 {pct(v, 90):7.2f} ms   min {min(v):7.2f} ms"

        print(f"bartld: {bartld}")
        print(f"app: {' '.join(app_argv)} (ready = \"started\"); store: {'none' if args.no_store else 'file://'}")
        print(f"path: {plan_line.strip()}")
        print(f"runs: {args.runs} measured (+{args.warmup} warm-up) of each, alternating")
        print()
        print("Startup, exec to ready:")
        print(row("bartld exec -> READY=1", bartld_ms))
        print(row("baseline: app exec", base_ms))
        diff_med = median(bartld_ms) - median(base_ms)
        diff_p90 = pct(bartld_ms, 90) - pct(base_ms, 90)
        print(f"  {'difference':<28} median {diff_med:7.2f} ms   p90 {diff_p90:7.2f} ms   (target <= {TARGET_MS:.0f} ms)")
        print()
        print("Breakdown (informational; spawn .. exit, same runs):")
        print(row("/bin/true", true_ms))
        print(row("bartld --version", version_ms))
        print(row("bartld --check-config", check_ms))
        print(row("bartld CPU (user+sys, whole run)", cpu_ms))
        print(f"  load average (1 min) {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, {os.cpu_count()} CPUs"
              " -- other processes competing for the CPUs widen the p90")

        def kib(samples, key):
            vals = [s[key] for s in samples if key in s]
            return max(vals) if vals else float("nan")

        sample = rss_serving or rss_ready
        rss_kib = max(kib(rss_ready, "VmRSS"), kib(rss_serving, "VmRSS") if rss_serving else 0)
        hwm_kib = max(kib(rss_ready, "VmHWM"), kib(rss_serving, "VmHWM") if rss_serving else 0)
        print()
        print("bartld memory while serving (max over runs, from /proc/PID/status):")
        print(f"  VmRSS   {rss_kib / 1024:6.2f} MiB  (at READY=1 {kib(rss_ready, 'VmRSS') / 1024:.2f} MiB"
              + (f", after {args.settle}s {kib(rss_serving, 'VmRSS') / 1024:.2f} MiB)" if rss_serving else ")"))
        print(f"  VmHWM   {hwm_kib / 1024:6.2f} MiB  (peak since exec)")
        print(f"  RssAnon {kib(sample, 'RssAnon') / 1024:6.2f} MiB   RssFile {kib(sample, 'RssFile') / 1024:6.2f} MiB"
              f"   RssShmem {kib(sample, 'RssShmem') / 1024:6.2f} MiB   threads {kib(sample, 'Threads')}")
        priv = kib(sample, "Private_Clean") + kib(sample, "Private_Dirty")
        print(f"  Pss     {kib(sample, 'Pss') / 1024:6.2f} MiB   Private {priv / 1024:6.2f} MiB"
              "  (RssFile is mostly shared library pages)")
        print()
        ok_time = diff_med <= TARGET_MS
        ok_rss = rss_kib < TARGET_RSS_KIB
        print(f"{verdict(ok_time)}  startup overhead {diff_med:.2f} ms (median; p90 {diff_p90:.2f} ms) <= {TARGET_MS:.0f} ms")
        print(f"{verdict(ok_rss)}  RSS while serving {rss_kib / 1024:.2f} MiB < 10 MiB"
              f" (VmHWM {hwm_kib / 1024:.2f} MiB)")
        if args.check and not (ok_time and ok_rss):
            return 1
        return 0
    finally:
        listener.close()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
