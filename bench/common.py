"""Shared helpers for the bartl benchmarks (Python 3 standard library only)."""
import os
import statistics
import sys

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(BENCH_DIR)

MiB = 1024 * 1024
GiB = 1024 * MiB


def find_bartld(explicit=None):
    """--bartld, else $BARTLD, else the first built one of build-bench/ and build/."""
    candidates = [explicit, os.environ.get("BARTLD")] if explicit or os.environ.get("BARTLD") else []
    candidates += [os.path.join(SOURCE_ROOT, d, "src", "daemon", "bartld") for d in ("build-bench", "build")]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    sys.exit("bartld not found: build it (meson setup build-bench --buildtype=release && "
             "ninja -C build-bench src/daemon/bartld) or pass --bartld PATH")


def pct(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def median(values):
    return statistics.median(values)


def parse_size(text):
    """'256M', '1G', '2GiB', '1048576' -> bytes."""
    t = text.strip().upper().replace("IB", "").replace("B", "")
    mult = 1
    for suffix, m in (("K", 1024), ("M", MiB), ("G", GiB), ("T", 1024 * GiB)):
        if t.endswith(suffix):
            t, mult = t[:-1], m
            break
    return int(float(t) * mult)


def human(n):
    for unit, m in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= m:
            return f"{n / m:.1f} {unit}"
    return f"{n} B"


def proc_status(pid):
    """Selected /proc/PID/status fields in KiB (Threads as a count); {} when the process is gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "VmSize", "Threads"):
                    out[key] = int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def verdict(ok):
    return "PASS" if ok else "FAIL"
