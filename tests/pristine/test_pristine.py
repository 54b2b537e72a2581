#!/usr/bin/python3
"""The README's two commands on a pristine Debian 12: `tools/demo` and `tools/run-tests` in a
debootstrapped minbase bookworm with nothing added, run with systemd-nspawn, from a git clone
of the committed HEAD (so an untracked file cannot hide a missing step). Passes when both exit
0 and the last line of run-tests says "0 failed".

A development machine carries packages a new server does not (git, compilers, locales); this
is what a newcomer sees. tests/pristine/README.md has the details and the timings.

Cached between runs, under $BARTL_SYSTEM_CACHE (default /var/cache/bartl-test), as the system
suite does (tests/system/README.md):
- bookworm-minbase/: `debootstrap --variant=minbase bookworm` and nothing else, built once
  (into a temporary directory, then renamed) and never written afterwards: the container runs
  on a volatile overlay of it (--volatile=overlay), so every run starts pristine;
- pristine-apt-archives/: bound to the container's /var/cache/apt/archives, so the packages
  tools/install-deps installs are downloaded once (they are still installed every run).

Needs root; missing systemd-nspawn or debootstrap are installed with apt-get; when that is not
possible, or when not root, the test is skipped (exit 77). Takes about 40 minutes on 2 quiet
cores (an hour on a loaded machine).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("BARTL_SOURCE_ROOT", os.path.abspath(os.path.join(HERE, "..", "..")))
sys.path[:0] = [os.path.join(SOURCE_ROOT, "tests", "system")]
import test_nspawn  # noqa: E402  (root, tools, mirror, cache lock: shared with the system suite)
from test_nspawn import CACHE_ROOT, SUITE, Locked, log  # noqa: E402

ROOT = os.path.join(CACHE_ROOT, f"{SUITE}-minbase")
ARCHIVES = os.path.join(CACHE_ROOT, "pristine-apt-archives")
LOGS = os.environ.get("BARTL_PRISTINE_LOGS", "")  # where the two logs are kept (default: printed only)
# The last line of tools/run-tests: "N passed, N failed[, N skipped]".
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?$")


def ensure_minbase():
    """The cached minbase root (path, seconds spent building it now)."""
    if os.path.exists(os.path.join(ROOT, "usr", "bin", "apt-get")):
        return ROOT, 0.0
    with Locked("minbase"):
        if os.path.exists(os.path.join(ROOT, "usr", "bin", "apt-get")):
            return ROOT, 0.0
        shutil.rmtree(ROOT, ignore_errors=True)
        t0 = time.monotonic()
        tmp = tempfile.mkdtemp(prefix=f"{SUITE}-minbase.tmp.", dir=CACHE_ROOT)
        os.chmod(tmp, 0o755)
        url = test_nspawn.mirror()
        log(f"debootstrap --variant=minbase {SUITE} from {url} into {tmp} (about a minute, once)")
        try:
            r = subprocess.run(["debootstrap", "--variant=minbase", SUITE, tmp, url], capture_output=True, text=True)
            if r.returncode != 0:
                raise AssertionError(f"debootstrap failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
            os.rename(tmp, ROOT)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return ROOT, time.monotonic() - t0


def clone_head(workdir):
    """`git clone` of the checkout into WORKDIR/bartl: the commit, never the working tree."""
    dest = os.path.join(workdir, "bartl")
    r = subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", SOURCE_ROOT, dest], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"git clone {SOURCE_ROOT} failed: {r.stderr}")
    head = subprocess.run(["git", "-C", dest, "log", "-1", "--format=%h %s"], capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "-C", SOURCE_ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout
    log(f"testing commit {head.strip()}" + (" (uncommitted changes in the checkout are not part of it)"
                                           if dirty.strip() else ""))
    return dest


# Both commands in one container (the overlay, and what install-deps put into it, ends with it);
# each one's output, exit status and duration go to files in the bound work directory.
SCRIPT = r"""
cd /src/bartl
for step in demo run-tests; do
    start=$(date +%s)
    tools/$step >/src/$step.log 2>&1 </dev/null
    echo $? >/src/$step.rc
    echo $(( $(date +%s) - start )) >/src/$step.seconds
done
"""


class Pristine(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        prerequisites()
        cls.root, cls.root_seconds = ensure_minbase()
        cls.work = tempfile.mkdtemp(prefix="bartl-pristine.", dir="/var/tmp")
        cls.addClassCleanup(shutil.rmtree, cls.work, ignore_errors=True)
        clone_head(cls.work)
        os.makedirs(os.path.join(ARCHIVES, "partial"), exist_ok=True)
        log("systemd-nspawn: tools/demo, then tools/run-tests (about 40 minutes on 2 quiet cores)")
        t0 = time.monotonic()
        # The command of tests/pristine/README.md, plus the download cache.
        r = subprocess.run(["systemd-nspawn", "-q", "-D", cls.root, "--register=no", "--keep-unit",
                            "--volatile=overlay", f"--bind={cls.work}:/src", f"--bind={ARCHIVES}:/var/cache/apt/archives",
                            "--chdir=/src/bartl", "bash", "-c", SCRIPT],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
        cls.container_seconds = time.monotonic() - t0
        cls.nspawn = r
        cls.out = {}
        for step in ("demo", "run-tests"):
            cls.out[step] = {k: cls.read(f"{step}.{k}") for k in ("log", "rc", "seconds")}
            if LOGS and os.path.exists(os.path.join(cls.work, f"{step}.log")):
                os.makedirs(LOGS, exist_ok=True)
                shutil.copy2(os.path.join(cls.work, f"{step}.log"), os.path.join(LOGS, f"pristine-{step}.log"))
        print(f"timings: debootstrap {cls.root_seconds:.0f} s, container {cls.container_seconds:.0f} s "
              f"(demo {cls.out['demo']['seconds'].strip() or '?'} s, "
              f"run-tests {cls.out['run-tests']['seconds'].strip() or '?'} s)", flush=True)

    @classmethod
    def read(cls, name):
        try:
            with open(os.path.join(cls.work, name), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def step(self, name):
        out = self.out[name]
        if not out["rc"]:
            self.fail(f"tools/{name} never finished; systemd-nspawn exited {self.nspawn.returncode}:\n"
                      f"{self.nspawn.stdout[-2000:]}\n{self.nspawn.stderr[-2000:]}\n{out['log'][-3000:]}")
        return out

    def test_demo_runs_to_the_end(self):
        out = self.step("demo")
        self.assertEqual(out["rc"].strip(), "0", f"tools/demo failed:\n{out['log'][-4000:]}")
        self.assertIn("== Done ==", out["log"])
        # Not a terminal: no escape sequences in the log.
        self.assertNotIn("\x1b", out["log"])

    def test_run_tests_ends_with_0_failed(self):
        out = self.step("run-tests")
        lines = [l for l in out["log"].splitlines() if l.strip()]
        last = lines[-1] if lines else ""
        runs = [l for l in lines if re.match(r"^(default|sanitize|valgrind|fuzz) \(.*\): \d+ passed", l)]
        print("tools/run-tests:\n  " + "\n  ".join(runs + [last]), flush=True)
        m = SUMMARY.match(last)
        self.assertIsNotNone(m, f"last line of tools/run-tests is not a summary: {last!r}\n{out['log'][-4000:]}")
        failing = [l for l in lines if re.search(r"\b(FAIL|ERROR|TIMEOUT)\b", l)]
        self.assertEqual(m.group(2), "0", f"{last}\n" + "\n".join(failing[-40:]) + "\n" + out["log"][-3000:])
        self.assertGreater(int(m.group(1)), 400, last)  # the whole suite ran, not a stub of it
        self.assertEqual(out["rc"].strip(), "0", out["log"][-3000:])


def prerequisites():
    """SkipTest unless root, systemd-nspawn, debootstrap (installed when missing) and git."""
    test_nspawn.ensure_tools()
    if shutil.which("git") is None:
        raise unittest.SkipTest("git is needed to clone the commit under test")


if __name__ == "__main__":
    try:
        prerequisites()
    except unittest.SkipTest as e:
        print(f"SKIP: {e}", flush=True)
        raise SystemExit(77)  # meson's "skipped"
    prog = unittest.main(verbosity=2, exit=False)
    raise SystemExit(0 if prog.result.wasSuccessful() else 1)
