"""Figures of the fault suite and the benchmarks: statistics, sizes, tables, verdicts."""
import statistics
import sys

MiB = 1024 * 1024
GiB = 1024 * MiB


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
    """A byte count as "1.5 GiB", "3.0 MiB", "12 B"."""
    for unit, m in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= m:
            return f"{n / m:.1f} {unit}"
    return f"{n} B"


def verdict(ok):
    return "PASS" if ok else "FAIL"


def print_table(title, header, rows, file=None):
    """Prints rows (lists) under `title` and `header`, each column as wide as its widest cell."""
    file = file or sys.stdout
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}", file=file)
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)), file=file)
    print(line, file=file)
    for r in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)), file=file)
    file.flush()
