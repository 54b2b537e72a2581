#!/usr/bin/python3
"""Bartl under a real systemd: a minimal Debian bookworm booted with systemd-nspawn, the built
bartl .deb and the example appliance (examples/appliance, notes 1.0.0 and 2.0.0) installed with
apt, and the lifecycle driven with systemctl and bartlctl on the container's own system bus.

How a real systemd boots on machines whose PID 1 is not systemd: tests/system/README.md.
Expensive things are cached between runs:

- the debootstrapped root, $BARTL_SYSTEM_CACHE/bookworm-root (default /var/cache/bartl-test),
  built once (into a temporary directory, then renamed) and never modified afterwards: every
  container runs on a volatile overlay of it;
- the packages, $BARTL_SYSTEM_CACHE/packages/DIGEST, keyed by the digest of the sources that go
  into them (the digest of tests/integration/test_packaging.py, whose cache is reused when it
  matches);
- apt's downloaded archives ($BARTL_SYSTEM_CACHE/apt-archives, bound into the container).

Needs root. Missing systemd-nspawn/debootstrap are installed with apt-get; when that is not
possible, or when not root, the test is skipped (exit 77). The container shares the host's
network: ports 8080 (notes) and 8081 (the second instance) must be free on the host.

The scenarios run in order in one container, each building on the one before:
  1 fresh install      4 downgrade refused (exit 65, no restart loop)
  2 bartlctl status    5 disaster recovery (state deleted, restored from the backup)
  3 in-place upgrade   6 two instances side by side
  7 bartl-generator: a config and no drop-in is enough, a bad config breaks nothing, and
    across a reboot
  8 backups at [backup] nice under the hardened unit, the app at bartld's niceness
"""
import fcntl
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("BARTL_SOURCE_ROOT", os.path.abspath(os.path.join(HERE, "..", "..")))
CACHE_ROOT = os.environ.get("BARTL_SYSTEM_CACHE", "/var/cache/bartl-test")
SUITE = "bookworm"
ROOT = os.path.join(CACHE_ROOT, f"{SUITE}-root")
ARCHIVES = os.path.join(CACHE_ROOT, "apt-archives")
INCLUDE = "systemd,systemd-sysv,dbus,libsystemd0"
NOTES_PORT, OTHER_PORT, DEMO_PORT = 8080, 8081, 8082
EXIT_CONFIG = 78
GENERATED = "/run/systemd/generator/{unit}.d/50-bartl-generator.conf"
EXIT_DOWNGRADE = 65
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# test_packaging.py knows the digest of the package sources and where its cache lives.
sys.path[:0] = [os.path.join(SOURCE_ROOT, "tests", "helpers"), os.path.join(SOURCE_ROOT, "tests", "integration")]
import test_packaging  # noqa: E402


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Locked:
    """An exclusive flock on CACHE_ROOT/NAME.lock: one builder of each cached thing at a time."""

    def __init__(self, name):
        os.makedirs(CACHE_ROOT, exist_ok=True)
        self.f = open(os.path.join(CACHE_ROOT, name + ".lock"), "w")

    def __enter__(self):
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


# ---------------------------------------------------------------------------------------------
# Prerequisites

def ensure_tools():
    """Root, and systemd-nspawn, nsenter and debootstrap (installed when missing); SkipTest if not."""
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root (systemd-nspawn, debootstrap)")
    tools = {"systemd-nspawn": "systemd-container", "debootstrap": "debootstrap", "nsenter": "util-linux"}
    missing = sorted({pkg for tool, pkg in tools.items() if shutil.which(tool) is None})
    if missing:
        if shutil.which("apt-get") is None:
            raise unittest.SkipTest(f"missing {', '.join(missing)} and no apt-get to install them")
        log(f"installing {' '.join(missing)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        still = [t for t in tools if shutil.which(t) is None]
        if still:
            raise unittest.SkipTest(f"{', '.join(still)} missing and apt-get could not install "
                                    f"{' '.join(missing)}: {r.stderr.strip()[-500:]}")
    with open("/proc/self/status") as f:
        if not re.search(r"(?m)^CapEff:\s*0*[1-9a-f]", f.read()):
            raise unittest.SkipTest("root without capabilities cannot run systemd-nspawn")


def mirror():
    """The Debian mirror this machine's apt uses for SUITE ($BARTL_TEST_MIRROR overrides)."""
    if os.environ.get("BARTL_TEST_MIRROR"):
        return os.environ["BARTL_TEST_MIRROR"]
    files = glob.glob("/etc/apt/sources.list") + sorted(glob.glob("/etc/apt/sources.list.d/*"))
    for path in files:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        if path.endswith(".sources"):  # deb822 stanzas
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.split()
                if "deb" in fields.get("types", []) and SUITE in fields.get("suites", []) \
                        and "main" in fields.get("components", []) and fields.get("uris"):
                    return fields["uris"][0]
        elif path.endswith(".list"):
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
                if len(words) >= 4 and words[0] == "deb" and words[2] == SUITE and "main" in words[3:]:
                    return words[1]
    return "http://deb.debian.org/debian"


def ensure_root():
    """The cached bootable root: debootstrap + apt lists, built once into a temp dir and renamed."""
    marker = os.path.join(ROOT, "usr", "lib", "systemd", "systemd")
    if os.path.exists(marker):
        return ROOT, 0.0
    with Locked("root"):
        if os.path.exists(marker):
            return ROOT, 0.0
        for stale in glob.glob(os.path.join(CACHE_ROOT, f"{SUITE}-root.tmp.*")):
            shutil.rmtree(stale, ignore_errors=True)
        if os.path.exists(ROOT):  # a root without systemd is not ours to trust
            shutil.rmtree(ROOT)
        t0 = time.monotonic()
        tmp = tempfile.mkdtemp(prefix=f"{SUITE}-root.tmp.", dir=CACHE_ROOT)
        os.chmod(tmp, 0o755)
        url = mirror()
        log(f"debootstrap {SUITE} from {url} into {tmp} (about a minute, once)")
        try:
            r = subprocess.run(["debootstrap", "--variant=minbase", f"--include={INCLUDE}", SUITE, tmp, url],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise AssertionError(f"debootstrap failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
            # apt inside the container resolves the packages' dependencies from these lists.
            r = subprocess.run(["systemd-nspawn", "-q", "-D", tmp, "--register=no", "--keep-unit",
                                "--resolv-conf=copy-host", "apt-get", "update", "-qq"],
                               capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if r.returncode != 0:
                raise AssertionError(f"apt-get update in the new root failed:\n{r.stdout}\n{r.stderr}")
            os.rename(tmp, ROOT)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        took = time.monotonic() - t0
        log(f"root ready in {took:.0f} s: {ROOT}")
        return ROOT, took


def ensure_packages():
    """Directory holding bartl_*.deb, notes_1.0.0_all.deb and notes_2.0.0_all.deb for these sources."""
    if os.environ.get("BARTL_SYSTEM_PACKAGES"):  # prebuilt packages, e.g. while the sources change
        return os.environ["BARTL_SYSTEM_PACKAGES"], 0.0
    digest = test_packaging.source_digest()
    base = os.path.join(CACHE_ROOT, "packages")
    out = os.path.join(base, digest)
    if os.path.exists(os.path.join(out, "complete")):
        return out, 0.0
    with Locked("packages"):
        if os.path.exists(os.path.join(out, "complete")):
            return out, 0.0
        os.makedirs(base, exist_ok=True)
        for old in os.listdir(base):  # earlier sources' builds, half-done builds
            shutil.rmtree(os.path.join(base, old), ignore_errors=True)
        t0 = time.monotonic()
        tmp = tempfile.mkdtemp(prefix=digest + ".tmp.", dir=base)
        try:
            theirs = test_packaging.CACHE
            stamp = os.path.join(theirs, "digest")
            reuse = glob.glob(os.path.join(theirs, "bartl_*.deb"))
            theirs_digest = None
            if os.path.exists(stamp):
                with open(stamp) as f:
                    theirs_digest = f.read()
            if theirs_digest == digest and len(reuse) == 1:
                log(f"reusing {reuse[0]} (test_packaging's cache matches the sources)")
                shutil.copy2(reuse[0], tmp)
            else:
                log("packaging/build-deb (minutes, once per source digest)")
                run_build([os.path.join(SOURCE_ROOT, "packaging", "build-deb"), tmp], tmp, "build-deb")
            for version in ("1.0.0", "2.0.0"):
                run_build([os.path.join(SOURCE_ROOT, "examples", "appliance", "build"), version, tmp], tmp,
                          f"appliance-{version}")
            debs = sorted(os.path.basename(p) for p in glob.glob(os.path.join(tmp, "*.deb")))
            if len([d for d in debs if d.startswith("bartl_")]) != 1 or \
                    not {"notes_1.0.0_all.deb", "notes_2.0.0_all.deb"} <= set(debs):
                raise AssertionError(f"unexpected packages in {tmp}: {debs}")
            with open(os.path.join(tmp, "complete"), "w") as f:
                f.write(digest + "\n")
            os.rename(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        took = time.monotonic() - t0
        log(f"packages ready in {took:.0f} s: {out}")
        return out, took


def run_build(cmd, outdir, name):
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    with open(os.path.join(outdir, name + ".log"), "w") as f:
        f.write(r.stdout + r.stderr)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    log(f"{name}: {time.monotonic() - t0:.0f} s")


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


# ---------------------------------------------------------------------------------------------
# The container

class Container:
    """systemd-nspawn -b on an overlay of the cached root; commands run via nsenter.

    The overlay is mounted on the host (upper and work directories in `workdir`), so what the
    container writes survives a reboot() and is gone with close(); the cached root is never
    written."""

    def __init__(self, root, debdir, workdir, binds=()):
        """binds: more (HOSTDIR, CONTAINERDIR) pairs bound read-only, besides debdir at /mnt/host."""
        self.name = f"bartl-test-{os.getpid()}"
        self.debdir = debdir
        self.binds = [f"--bind-ro={src}:{dst}" for src, dst in binds]
        self.workdir = workdir
        self.tree = os.path.join(workdir, "tree")
        for d in ("upper", "work", "tree"):
            os.makedirs(os.path.join(workdir, d))
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={root},upperdir={workdir}/upper,workdir={workdir}/work", self.tree],
                       check=True, capture_output=True)
        os.makedirs(os.path.join(ARCHIVES, "partial"), exist_ok=True)
        self.boots = 0
        self.boot()

    def boot(self):
        """Starts systemd-nspawn -b on the overlay (in the background); find_init() follows."""
        self.boots += 1
        self.logpath = os.path.join(self.workdir, f"console-{self.boots}.log")
        self.log = open(self.logpath, "w")
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-D", self.tree, "-b", "--console=pipe", "--register=no", "--keep-unit",
             f"--machine={self.name}", f"--bind-ro={self.debdir}:/mnt/host",
             f"--bind={ARCHIVES}:/var/cache/apt/archives", *self.binds],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = None

    def reboot(self):
        """Powers off and boots the same tree again: a real boot, generators and all."""
        self.stop()
        self.boot()
        self.find_init()
        return self.wait_booted()

    def close(self):
        self.stop()
        subprocess.run(["umount", self.tree], capture_output=True)

    def find_init(self, timeout=30):
        """The container's PID 1: the child of nspawn in another PID namespace."""
        own = os.readlink("/proc/self/ns/pid")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"systemd-nspawn exited with {self.proc.returncode}:\n{self.console()}")
            for task in glob.glob(f"/proc/{self.proc.pid}/task/*/children"):
                try:
                    with open(task) as f:
                        kids = f.read().split()
                except OSError:
                    continue
                for kid in kids:
                    try:
                        if os.readlink(f"/proc/{kid}/ns/pid") != own and \
                                os.path.basename(os.readlink(f"/proc/{kid}/exe")) == "systemd":
                            self.pid = int(kid)
                            return self.pid
                    except OSError:
                        continue
            time.sleep(0.05)
        raise AssertionError(f"no container PID 1 under nspawn {self.proc.pid} after {timeout} s:\n{self.console()}")

    def run(self, *cmd, check=True, timeout=120, input=None):
        env = ["env", "-i", f"PATH={CONTAINER_PATH}", "LANG=C.UTF-8", "TERM=dumb", "SYSTEMD_PAGER=",
               "SYSTEMD_COLORS=0", "DEBIAN_FRONTEND=noninteractive", "HOME=/root"]
        r = subprocess.run(["nsenter", "-t", str(self.pid), "-a", *env, *cmd], capture_output=True, text=True,
                           timeout=timeout, input=input, stdin=None if input is not None else subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} in the container exited {r.returncode}:\n"
                                 f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def sh(self, script, **kw):
        return self.run("sh", "-ec", script, **kw)

    def wait_booted(self, timeout=60):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=timeout)
            state = last.stdout.strip()
            if state in ("running", "degraded"):
                if state == "degraded":
                    failed = self.run("systemctl", "--failed", "--no-legend", check=False).stdout
                    log(f"container booted degraded (not bartl's units):\n{failed}")
                return state
            time.sleep(0.1)
        raise AssertionError(f"container did not boot: {last and (last.stdout + last.stderr)}\n{self.console()}")

    def show(self, unit, *props):
        out = self.run("systemctl", "show", unit, "-p", ",".join(props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def console(self):
        self.log.flush()
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        """Power off inside; SIGTERM to nspawn after 20 s; SIGKILL to its process group after 10 more."""
        if self.proc.poll() is None and self.pid is not None:
            try:
                self.run("systemctl", "poweroff", "--no-block", check=False, timeout=10)
            except (subprocess.TimeoutExpired, OSError):
                pass
        for sig, grace in ((None, 20), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            if sig is not None and self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, sig) if sig == signal.SIGKILL else self.proc.send_signal(sig)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        self.log.close()


# ---------------------------------------------------------------------------------------------

def apt_install(container, *packages, downgrade=False):
    """apt-get install in the container (.deb files or package names from the mirror)."""
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends",
           "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confnew"]
    if downgrade:
        cmd.append("--allow-downgrades")
    r = container.run(*cmd, *packages, check=False, timeout=600)
    if r.returncode != 0:  # lists older than the mirror: refresh once and retry
        container.run("apt-get", "update", "-qq", timeout=300)
        r = container.run(*cmd, *packages, timeout=600)
    return r


def http_json(port, path, data=None, timeout=5):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 data=None if data is None else json.dumps(data).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


def health(port):
    try:
        return http_json(port, "/health", timeout=2)
    except (urllib.error.URLError, OSError, ValueError):
        return None


class RealSystemd(unittest.TestCase):
    """Ordered scenarios (test_1 … test_6) in one booted container."""

    timings = {}

    @classmethod
    def setUpClass(cls):
        t0 = time.monotonic()
        _, cls.timings["root"] = ensure_root()
        cls.debdir, cls.timings["packages"] = ensure_packages()
        bartl = glob.glob(os.path.join(cls.debdir, "bartl_*.deb"))
        wanted = [os.path.join(cls.debdir, f"notes_{v}_all.deb") for v in ("1.0.0", "2.0.0")]
        if len(bartl) != 1 or not all(map(os.path.exists, wanted)):
            raise AssertionError(f"{cls.debdir} must hold one bartl_*.deb and {', '.join(wanted)}")
        busy = [p for p in (NOTES_PORT, OTHER_PORT, DEMO_PORT) if not port_free(p)]
        if busy:
            raise AssertionError(f"port(s) {busy} in use on the host; the container shares its network")
        cls.workdir = tempfile.mkdtemp(prefix="bartl-nspawn.")
        t1 = time.monotonic()
        cls.addClassCleanup(shutil.rmtree, cls.workdir, ignore_errors=True)
        cls.c = Container(ROOT, cls.debdir, cls.workdir)
        cls.addClassCleanup(cls.c.close)
        cls.c.find_init()
        state = cls.c.wait_booted()
        cls.timings["boot"] = time.monotonic() - t1
        log(f"container PID 1 is {cls.c.pid} ({state} after {cls.timings['boot']:.1f} s)")
        t2 = time.monotonic()
        cls.install(f"/mnt/host/{os.path.basename(bartl[0])}", "/mnt/host/notes_1.0.0_all.deb")
        cls.timings["install"] = time.monotonic() - t2
        cls.timings["setup"] = time.monotonic() - t0

    @classmethod
    def tearDownClass(cls):
        t = cls.timings
        log("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in t.items()))

    @classmethod
    def install(cls, *debs, downgrade=False):
        return apt_install(cls.c, *debs, downgrade=downgrade)

    def setUp(self):
        self.t0 = time.monotonic()

    def tearDown(self):
        self.timings[self._testMethodName.split("_")[1]] = time.monotonic() - self.t0

    # -- helpers ------------------------------------------------------------------------------

    def ctl(self, *args, instance="notes", check=True):
        return self.c.run("bartlctl", "-i", instance, *args, check=check)

    def ctl_json(self, *args, instance="notes"):
        return json.loads(self.ctl(*args, "--json", instance=instance).stdout)

    def marker(self, instance="notes"):
        return json.loads(self.c.run("cat", f"/var/lib/bartl/{instance}/marker.json").stdout)

    def journal(self, unit):
        return self.c.run("journalctl", "-u", unit, "--no-pager", "-o", "cat", check=False).stdout

    def diagnose(self, unit):
        """The unit's processes as the host sees them: comm, wchan, and gdb backtraces."""
        out = [self.journal(unit)[-3000:]]
        cg = self.c.show(unit, "ControlGroup")["ControlGroup"]
        own_ns = os.readlink(f"/proc/{self.c.pid}/ns/pid")
        for pid in self.c.run("cat", f"/sys/fs/cgroup{cg}/cgroup.procs", check=False).stdout.split():
            for hp in filter(str.isdigit, os.listdir("/proc")):  # container PID -> host PID
                try:
                    with open(f"/proc/{hp}/status") as f:
                        nspid = re.search(r"(?m)^NSpid:\s*(.*)$", f.read()).group(1).split()
                    if nspid[-1] != pid or os.readlink(f"/proc/{hp}/ns/pid") != own_ns:
                        continue
                    with open(f"/proc/{hp}/comm") as f, open(f"/proc/{hp}/wchan") as g:
                        out.append(f"== container PID {pid} (host {hp}) {f.read().strip()} wchan {g.read()}")
                except (OSError, AttributeError):
                    continue
                if shutil.which("gdb"):
                    r = subprocess.run(["gdb", "-p", hp, "-batch", "-ex", "thread apply all bt 25"],
                                       capture_output=True, text=True, timeout=60)
                    out.append("\n".join(l for l in r.stdout.splitlines() if l.startswith(("#", "Thread"))))
        return "\n".join(out)

    def start_and_watch(self, unit, port, timeout=120):
        """systemctl start --no-block, then poll until the unit settles. Returns what was seen:
        [(ActiveState, SubState, StatusText, app health)] in order, without repeats."""
        self.c.run("systemctl", "start", "--no-block", unit)
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.c.show(unit, "ActiveState", "SubState", "StatusText")
            h = health(port) is not None if s["ActiveState"] == "active" else None
            row = (s["ActiveState"], s["SubState"], s["StatusText"], h)
            if not seen or seen[-1] != row:
                seen.append(row)
            if s["ActiveState"] in ("active", "failed"):
                return seen
            time.sleep(0.02)
        self.fail(f"{unit} did not settle in {timeout} s: {seen}\n{self.journal(unit)}")

    def assert_serving(self, unit, port, engine, state):
        s = self.c.show(unit, "ActiveState", "SubState", "StatusText", "NRestarts")
        self.assertEqual((s["ActiveState"], s["SubState"]), ("active", "running"), f"{s}\n{self.journal(unit)}")
        self.assertTrue(s["StatusText"].startswith(f"Serving {unit.split('@')[1].removesuffix('.service')} "),
                        s["StatusText"])
        self.assertIn(f"{engine} (state {state})", s["StatusText"])
        h = health(port)
        self.assertIsNotNone(h, f"{unit} is active but its app does not answer on :{port}")
        self.assertEqual(h["version"], engine)

    # -- the scenarios ------------------------------------------------------------------------

    def test_1_fresh_install_becomes_active_only_when_ready(self):
        unit = "bartld@notes.service"
        s = self.c.show(unit, "ActiveState", "LoadState", "DropInPaths", "Type", "NotifyAccess")
        self.assertEqual(s["LoadState"], "loaded")
        self.assertEqual(s["ActiveState"], "inactive", "the package must not start the instance")
        self.assertEqual((s["Type"], s["NotifyAccess"]), ("notify", "main"))
        # The package ships no drop-in: bartl-generator wrote the only one, from notes.toml.
        self.assertEqual(s["DropInPaths"], GENERATED.format(unit=unit))
        self.assertIsNone(health(NOTES_PORT))
        self.assertNotEqual(self.c.run("test", "-e", "/var/lib/notes", check=False).returncode, 0,
                            "/var/lib/notes exists before the first start")
        # The operator's one step for a new store (bartl(7) "Fresh install"): without the
        # store's identity an empty store is never taken for "no backup".
        self.c.run("bartld", "--instance", "notes", "--init-store")

        seen = self.start_and_watch(unit, NOTES_PORT)
        log(f"bartld@notes start: {seen}")
        self.assertEqual(seen[-1][:2], ("active", "running"), f"{seen}\n{self.journal(unit)}")
        # The unit was "activating" while bartld worked, and the first time systemd called it
        # active the app already answered (READY=1 is relayed only once the app is ready).
        self.assertTrue(any(r[0] == "activating" for r in seen), seen)
        first_active = next(r for r in seen if r[0] == "active")
        self.assertTrue(first_active[3], f"active before the app answered: {seen}")
        self.assert_serving(unit, NOTES_PORT, "1.0.0", "1.0.0")
        # Made by bartl-prepare-dirs (ExecStartPre=+) before the sandbox was set up.
        self.assertEqual(self.c.run("stat", "-c", "%U:%G %a", "/var/lib/notes").stdout, "root:root 755\n")

        status = self.c.run("systemctl", "status", "--no-pager", "--lines=0", unit, check=False).stdout
        self.assertRegex(status, r"Active: active \(running\)")
        self.assertRegex(status, r'Status: "Serving notes 1\.0\.0 \(state 1\.0\.0\)')
        m = self.marker()
        self.assertEqual((m["app"], m["version"], m["origin"]), ("notes", "1.0.0", "init"))
        http_json(NOTES_PORT, "/notes", {"text": "written by 1.0.0"})

    def test_2_bartlctl_status_on_the_system_bus(self):
        r = self.ctl("status")
        self.assertIn("notes", r.stdout)
        st = self.ctl_json("status")
        self.assertEqual(st["phase"], "serving", st)
        self.assertEqual((st["engine_version"], st["state_version"], st["state_origin"]), ("1.0.0", "1.0.0", "init"))
        self.assertTrue(st["status"].startswith("Serving notes"), st)
        names = [i["instance"] for i in json.loads(self.c.run("bartlctl", "instances", "--json").stdout)]
        self.assertIn("notes", names)
        # The container's bus is reachable from the host, too (the same socket bartlctl used inside).
        self.assertTrue(os.path.exists(f"/proc/{self.c.pid}/root/run/dbus/system_bus_socket"))

    def test_3_newer_engine_and_restart_migrates(self):
        unit = "bartld@notes.service"
        self.install("/mnt/host/notes_2.0.0_all.deb")
        self.assertEqual(self.c.run("dpkg-query", "-W", "-f", "${Version}", "notes").stdout, "2.0.0")
        # Upgrading the package restarts nothing: still serving the old engine.
        self.assert_serving(unit, NOTES_PORT, "1.0.0", "1.0.0")
        # bartld --plan reads the config afresh: the next start migrates.
        self.assertIn("migrate", self.c.run("bartld", "--instance", "notes", "--plan").stdout)
        with self.subTest("bartlctl plan, answered by the running bartld, names the migration"):
            plan = self.ctl_json("plan")["plan"]
            self.assertIn("migrate", plan)

        self.c.run("systemctl", "restart", unit, timeout=300)
        self.assert_serving(unit, NOTES_PORT, "2.0.0", "2.0.0")
        self.assertEqual(self.marker()["version"], "2.0.0")
        history = self.ctl_json("history")
        migrations = [h for h in history if h["event"] == "migrate"]
        self.assertTrue(migrations, history)
        self.assertEqual((migrations[-1]["from"], migrations[-1]["to"]), ("1.0.0", "2.0.0"))
        self.assertIn("migrate", self.ctl("history").stdout)
        self.assertEqual(health(NOTES_PORT)["schema"], 2)
        self.assertIn("written by 1.0.0", [n["text"] for n in http_json(NOTES_PORT, "/notes")])
        # before_migrate = true: a backup of the 1.0.0 state was taken first.
        self.assertIn("1.0.0", [b["version"] for b in self.ctl_json("backups")])

    def test_4_older_engine_fails_with_65_and_no_restart_loop(self):
        unit = "bartld@notes.service"
        self.install("/mnt/host/notes_1.0.0_all.deb", downgrade=True)
        try:  # refusing takes well under a second; a hang here is a bug, shown with stacks
            r = self.c.run("systemctl", "restart", unit, check=False, timeout=30)
        except subprocess.TimeoutExpired:
            self.fail(f"systemctl restart {unit} still running after 30 s:\n{self.diagnose(unit)}")
        self.assertNotEqual(r.returncode, 0)
        props = ("ActiveState", "SubState", "Result", "ExecMainStatus", "NRestarts")
        s = self.c.show(unit, *props)
        self.assertEqual(s["ExecMainStatus"], str(EXIT_DOWNGRADE), f"{s}\n{self.journal(unit)}")
        # "failed", not "activating (auto-restart)": RestartPreventExitStatus= took effect.
        self.assertEqual((s["ActiveState"], s["SubState"], s["Result"]), ("failed", "failed", "exit-code"), s)
        self.assertEqual(s["NRestarts"], "0")
        time.sleep(3)
        s2 = self.c.show(unit, *props)
        self.assertEqual((s2["ActiveState"], s2["NRestarts"], s2["ExecMainStatus"]), ("failed", "0", "65"), s2)
        status = self.c.run("systemctl", "status", "--no-pager", "--lines=0", unit, check=False).stdout
        self.assertRegex(status, r"status=65")
        self.assertRegex(self.journal(unit).lower(), "downgrade")
        self.assertEqual(self.marker()["version"], "2.0.0", "the refused downgrade must not touch the state")

    def test_5_deleted_state_is_restored_from_the_backup(self):
        unit = "bartld@notes.service"
        self.install("/mnt/host/notes_2.0.0_all.deb")
        self.c.run("systemctl", "reset-failed", unit)
        self.c.run("systemctl", "start", unit, timeout=300)
        self.assert_serving(unit, NOTES_PORT, "2.0.0", "2.0.0")
        http_json(NOTES_PORT, "/notes", {"text": "written by 2.0.0", "tags": ["dr"]})
        backup = self.ctl_json("backup", "--wait")
        self.assertEqual(backup.get("result"), "success", backup)

        self.c.run("systemctl", "stop", unit, timeout=300)
        self.c.sh("rm -rf /var/lib/notes/data /var/lib/bartl/notes")
        self.c.run("systemctl", "start", unit, timeout=300)
        self.assert_serving(unit, NOTES_PORT, "2.0.0", "2.0.0")
        m = self.marker()
        self.assertEqual(m["origin"], f"restore:{backup['id']}", m)
        self.assertIn("restore", [h["event"] for h in self.ctl_json("history")])
        self.assertEqual(self.ctl_json("status")["state_origin"], f"restore:{backup['id']}")
        texts = [n["text"] for n in http_json(NOTES_PORT, "/notes")]
        self.assertIn("written by 1.0.0", texts)
        self.assertIn("written by 2.0.0", texts)

    def test_6_two_instances_side_by_side(self):
        self.c.sh(f"""
            sed -e 's/^name = "notes"/name = "other"/' \
                -e 's#/var/lib/notes/data#/var/lib/other/data#g' \
                -e 's#--port", "{NOTES_PORT}"#--port", "{OTHER_PORT}"#' \
                -e 's#file:///var/backups/bartl/notes#file:///var/backups/bartl/other#' \
                /etc/bartl/notes.toml >/etc/bartl/other.toml
            mkdir -p -m 0700 /var/backups/bartl/other
            bartld --instance other --init-store
            systemctl daemon-reload
        """)
        conf = "\n".join(l for l in self.c.run("cat", "/etc/bartl/other.toml").stdout.splitlines()
                         if not l.lstrip().startswith("#"))
        self.assertIn('name = "other"', conf)
        self.assertIn(f'"{OTHER_PORT}"', conf)
        self.assertNotIn("/var/lib/notes", conf)
        self.assertNotIn("bartl/notes", conf)

        # Never started: systemd has it unloaded, and GetUnit would not know it.
        r = self.c.run("bartlctl", "-i", "other", "status", check=False)
        self.assertIn("Unit: bartld@other.service: inactive (dead)", r.stdout)
        self.assertNotIn("does not know", r.stdout)

        seen = self.start_and_watch("bartld@other.service", OTHER_PORT)
        self.assertEqual(seen[-1][:2], ("active", "running"), f"{seen}\n{self.journal('bartld@other.service')}")
        self.assert_serving("bartld@other.service", OTHER_PORT, "2.0.0", "2.0.0")
        self.assert_serving("bartld@notes.service", NOTES_PORT, "2.0.0", "2.0.0")
        self.assertEqual(self.marker("other")["origin"], "init")
        self.assertEqual(self.ctl_json("status", instance="other")["state_origin"], "init")
        self.assertNotEqual(self.ctl_json("status", instance="notes")["state_origin"], "init")
        names = sorted(i["instance"] for i in json.loads(self.c.run("bartlctl", "instances", "--json").stdout))
        self.assertEqual(names, ["notes", "other"])
        self.assertEqual(http_json(OTHER_PORT, "/notes"), [])

    def test_7_a_config_is_all_an_instance_needs(self):
        """bartl-generator: /etc/bartl/NAME.toml and no drop-in run under the hardened unit, with
        the state's parent missing and the app as its own user; a bad config breaks neither
        daemon-reload nor the boot."""
        unit, bad = "bartld@demo.service", "bartld@bad.service"
        self.assertNotEqual(self.c.run("test", "-e", "/var/lib/demo", check=False).returncode, 0)
        notes = self.c.run("cat", "/etc/bartl/notes.toml").stdout
        demo = (notes.replace('name = "notes"', 'name = "demo"').replace("/var/lib/notes/data", "/var/lib/demo/data")
                .replace(f'"--port", "{NOTES_PORT}"', f'"--port", "{DEMO_PORT}"')
                .replace("file:///var/backups/bartl/notes", "file:///var/backups/bartl/demo"))
        # [app] user, in the [app] table (TOML tables cannot be reopened).
        demo = demo.replace('name = "demo"\n', 'name = "demo"\nuser = "demo"\n', 1)
        self.assertIn('paths = ["/var/lib/demo/data"]', demo)
        self.assertIn('user = "demo"', demo)
        self.c.run("useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "demo")
        self.c.run("tee", "/etc/bartl/demo.toml", input=demo)
        self.c.run("tee", "/etc/bartl/bad.toml", input='[app]\nname = "bad"\nversoin = "1.0.0"\n')
        # Quoting on the way to systemd: a space, "%" and "$" in a state path (a state-only
        # instance, no app).
        odd_path = "/srv/odd dir/50% $HOME/data"
        self.c.run("tee", "/etc/bartl/odd.toml", input=f'[app]\nname = "odd"\nversion = "1.0.0"\n'
                                                      f'[state]\npaths = ["{odd_path}"]\n')
        self.c.run("mkdir", "-p", "-m", "0700", "/var/backups/bartl/demo")
        self.c.run("bartld", "--instance", "demo", "--init-store")
        before = self.c.run("systemctl", "is-system-running", check=False).stdout.strip()
        self.c.run("systemctl", "daemon-reload")
        self.assertEqual(self.c.run("systemctl", "is-system-running", check=False).stdout.strip(), before)

        with self.subTest("the bad config is logged and gets no drop-in"):
            logged = self.c.run("journalctl", "-t", "bartl-generator", "-o", "cat", "--no-pager").stdout
            self.assertIn("/etc/bartl/bad.toml:3:1: unknown key 'versoin' in [app]; did you mean 'version'? "
                          "(bartld@bad.service gets no drop-in)", logged)
            s = self.c.show(bad, "LoadState", "DropInPaths")
            self.assertEqual((s["LoadState"], s["DropInPaths"]), ("loaded", ""))

        s = self.c.show(unit, "DropInPaths", "ReadWritePaths", "RequiresMountsFor", "ExecStartPre")
        self.assertEqual(s["DropInPaths"], GENERATED.format(unit=unit))
        self.assertEqual(s["ReadWritePaths"].split(), ["-/var/backups/bartl", "-/var/backups/bartl/demo", "-/var/lib/demo"])
        # Besides those systemd adds for StateDirectory=, RuntimeDirectory= and PrivateTmp=.
        self.assertLessEqual({"/var/backups/bartl/demo", "/var/lib/demo/data"}, set(s["RequiresMountsFor"].split()))
        self.assertIn("argv[]=/usr/libexec/bartl/bartl-prepare-dirs --mode=0750 --group-of=demo /var/lib/demo ;",
                      s["ExecStartPre"])
        # systemctl show quotes what holds a space and writes "$" as "\$".
        s = self.c.show("bartld@odd.service", "ReadWritePaths", "RequiresMountsFor")
        shown = os.path.dirname(odd_path).replace("$", "\\$")
        self.assertIn(f'"-{shown}"', s["ReadWritePaths"])
        self.assertIn(f'"{odd_path}"'.replace("$", "\\$"), s["RequiresMountsFor"])

        self.c.run("systemctl", "start", unit, timeout=300)
        self.assert_serving(unit, DEMO_PORT, "2.0.0", "2.0.0")
        # The parent bartl-prepare-dirs made for the app, the state bartld made as the app's.
        self.assertEqual(self.c.run("stat", "-c", "%U:%G %a", "/var/lib/demo").stdout, "root:demo 750\n")
        self.assertIn("bartl-prepare-dirs: created /var/lib/demo (root:demo, 0750)", self.journal(unit))
        self.assertEqual(self.c.run("stat", "-c", "%U:%G", "/var/lib/demo/data").stdout, "demo:demo\n")
        # The app writes its own state as its own user.
        http_json(DEMO_PORT, "/notes", {"text": "kept across the reboot"})
        self.assertEqual(self.c.run("stat", "-c", "%U", "/var/lib/demo/data/notes.db").stdout, "demo\n")
        self.c.run("systemctl", "start", "bartld@odd.service", timeout=120)
        self.assertEqual(self.c.show("bartld@odd.service", "ActiveState")["ActiveState"], "active",
                         self.journal("bartld@odd.service"))
        self.assertEqual(self.c.run("ls", "-A", odd_path).returncode, 0)

        # The generator at boot: the drop-in exists before any unit starts, bad.toml and all.
        self.c.run("systemctl", "enable", unit)
        t0 = time.monotonic()
        state = self.c.reboot()
        self.timings["reboot"] = time.monotonic() - t0
        self.assertEqual(state, "running", self.c.run("systemctl", "--failed", "--no-legend", check=False).stdout)
        self.assert_serving(unit, DEMO_PORT, "2.0.0", "2.0.0")
        self.assertEqual(self.c.show(unit, "DropInPaths")["DropInPaths"], GENERATED.format(unit=unit))
        self.assertIn("kept across the reboot", [n["text"] for n in http_json(DEMO_PORT, "/notes")])
        self.assertEqual(self.marker("demo")["origin"], "init", "the reboot must serve the state, not make it anew")

        with self.subTest("the skipped config fails its own unit at start, exit 78, no restart loop"):
            self.assertNotEqual(self.c.run("systemctl", "start", bad, check=False, timeout=60).returncode, 0)
            s = self.c.show(bad, "ActiveState", "ExecMainStatus", "NRestarts")
            self.assertEqual((s["ActiveState"], s["ExecMainStatus"], s["NRestarts"]),
                             ("failed", str(EXIT_CONFIG), "0"), self.journal(bad))
            self.assertIn("unknown key 'versoin'", self.journal(bad))

    def test_8_a_fixed_failure_is_not_the_status_and_a_crash_loop_stops(self):
        """bartlctl status shows the last run's error only, not one an operator fixed since; an
        app that fails before it is ready on every start stops at the unit's start limit
        (StartLimitBurst=5 in StartLimitIntervalSec=5min) instead of restarting forever."""
        unit = "bartld@other.service"
        conf = "/etc/bartl/other.toml"
        good = self.c.run("cat", conf).stdout
        self.c.run("systemctl", "stop", unit, check=False)
        self.c.run("systemctl", "reset-failed", unit, check=False)
        try:
            with self.subTest("a config typo: exit 78, and the offline status names it"):
                typo = good.replace("[app]\n", '[app]\nversoin = "2.0.0"\n', 1)
                self.assertNotEqual(typo, good)
                self.c.run("tee", conf, input=typo)
                self.assertNotEqual(self.c.run("systemctl", "start", unit, check=False, timeout=60).returncode, 0)
                self.assertEqual(self.c.show(unit, "ExecMainStatus")["ExecMainStatus"], str(EXIT_CONFIG))
                r = self.ctl("status", instance="other", check=False)
                self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
                self.assertRegex(r.stdout, r"(?m)^ +Error: .*unknown key 'versoin'", r.stdout)

            with self.subTest("fixed and run again: the typo is an earlier run's, not shown"):
                self.c.run("tee", conf, input=good)
                self.c.run("systemctl", "start", unit, timeout=120)
                self.assert_serving(unit, OTHER_PORT, "2.0.0", "2.0.0")
                self.c.run("systemctl", "stop", unit)
                r = self.ctl("status", instance="other", check=False)
                self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
                self.assertNotIn("versoin", r.stdout)
                self.assertNotRegex(r.stdout, r"(?m)^ +Error:")
                self.assertRegex(r.stdout, r"(?m)^ +Decision: .*serve")
                st = json.loads(self.ctl("status", "--json", instance="other", check=False).stdout)
                self.assertIsNone(st["journal"]["error"], st)
                self.assertIsNotNone(st["journal"]["run"], st)

            with self.subTest("an app that logs thousands of lines after the decision: the decision is still shown"):
                # bartlctl once read the newest 2,000 entries of the instance, the app's
                # included: a chatty app pushed the run's decision out of the status.
                chatty = good.replace('exec = ["/usr/bin/python3"',
                                      'exec = ["/bin/sh", "-c", \'seq -f "chatty line %g" 3000; exec "$0" "$@"\', '
                                      '"/usr/bin/python3"', 1)
                self.assertNotEqual(chatty, good)
                self.c.run("tee", conf, input=chatty)
                self.c.run("systemctl", "start", unit, timeout=120)
                self.assert_serving(unit, OTHER_PORT, "2.0.0", "2.0.0")
                self.c.run("journalctl", "--sync")
                lines = self.c.run("journalctl", "BARTL_INSTANCE=other", "-o", "cat", "--no-pager").stdout
                self.assertIn("chatty line 3000", lines)
                self.c.run("systemctl", "stop", unit)
                r = self.ctl("status", instance="other", check=False)
                self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
                self.assertRegex(r.stdout, r"(?m)^ +Decision: .*serve", r.stdout)
                self.assertNotRegex(r.stdout, r"(?m)^ +Error:")
                self.c.run("tee", conf, input=good)

            with self.subTest("an app that crashes before it is ready: five starts, then the start limit"):
                self.c.run("systemctl", "reset-failed", unit, check=False)
                crash = re.sub(r"(?m)^exec = .*$", 'exec = ["/bin/sh", "-c", "echo crashing >&2; exit 1"]', good, 1)
                self.assertNotEqual(crash, good)
                self.c.run("tee", conf, input=crash)
                self.c.run("systemctl", "start", "--no-block", unit)
                deadline = time.monotonic() + 150
                while time.monotonic() < deadline:
                    s = self.c.show(unit, "ActiveState", "SubState", "Result", "NRestarts")
                    if s["ActiveState"] == "failed":
                        break
                    time.sleep(0.5)
                journal = self.journal(unit)
                self.assertEqual(s["ActiveState"], "failed", f"{s}\n{journal[-3000:]}")
                # systemd 252 refuses the fifth restart (NRestarts counts it) and keeps the
                # last attempt's Result=exit-code; it says why in the journal and in status.
                self.assertIn("Start request repeated too quickly", journal)
                self.assertEqual(s["NRestarts"], "5", s)
                # Five attempts ran, each with its reason, the app named after itself (sh -c).
                attempts = journal.count("app other exited before it was ready: exited with status 1")
                self.assertEqual(attempts, 5, journal[-3000:])
                time.sleep(12)  # longer than RestartSec=: no further attempt
                s2 = self.c.show(unit, "ActiveState", "NRestarts")
                self.assertEqual((s2["ActiveState"], s2["NRestarts"]), ("failed", "5"))
                self.assertEqual(self.journal(unit).count("app other exited before it was ready"), 5)
                status = self.c.run("systemctl", "status", "--no-pager", unit, check=False).stdout
                self.assertIn("Start request repeated too quickly", status)
                r = self.ctl("status", instance="other", check=False)
                self.assertRegex(r.stdout, r"(?m)^ +Error: app other exited before it was ready", r.stdout)

            with self.subTest("fixed: refused until reset-failed, then it serves"):
                self.c.run("tee", conf, input=good)
                before = self.journal(unit)
                refused = self.c.run("systemctl", "start", unit, check=False, timeout=60)
                self.assertNotEqual(refused.returncode, 0)
                # Refused by the limit, bartld not even run (systemd 252 keeps Result=exit-code).
                after = self.journal(unit)
                self.assertEqual(after.count("Start request repeated too quickly"),
                                 before.count("Start request repeated too quickly") + 1, after[-2500:])
                self.assertEqual(after.count("D-Bus: app.bartl.Instance1.other"),
                                 before.count("D-Bus: app.bartl.Instance1.other"), after[-2500:])
                self.c.run("systemctl", "reset-failed", unit)
                self.c.run("systemctl", "start", unit, timeout=120)
                self.assert_serving(unit, OTHER_PORT, "2.0.0", "2.0.0")
        finally:
            self.c.run("tee", conf, input=good)
            self.c.run("systemctl", "stop", unit, check=False)

    def test_9_backups_run_at_backup_nice_under_the_unit(self):
        """[backup] nice under the shipped unit: its SystemCallFilter=~@resources made
        setpriority(2) fail with EPERM, so every backup ran at the app's priority and logged
        "cannot lower this thread's priority". The hook a backup runs is at bartld's niceness
        + 10 (the default), the app at bartld's."""
        unit = "bartld@nicety.service"
        # PrivateTmp=: the hook writes beside the state path, where the unit may write.
        self.c.run("tee", "/etc/bartl/nicety.toml", input=(
            '[app]\nname = "nicety"\nversion = "1.0.0"\nexec = ["/bin/sleep", "infinity"]\n'
            '[state]\npaths = ["/var/lib/nicety/data"]\n'
            '[hooks]\npre_backup = ["/bin/sh", "-c", "nice > /var/lib/nicety/hook-nice"]\n'
            '[backup]\nstore = "file:///var/backups/bartl/nicety"\n'))
        self.c.run("mkdir", "-p", "-m", "0700", "/var/backups/bartl/nicety")
        self.c.run("bartld", "--instance", "nicety", "--init-store")
        self.c.run("systemctl", "daemon-reload")
        self.c.run("systemctl", "start", unit, timeout=120)
        backup = self.ctl_json("backup", "--wait", instance="nicety")
        self.assertEqual(backup.get("result"), "success", backup)
        journal = self.journal(unit)
        self.assertNotIn("cannot lower this thread's priority", journal)
        main = int(self.c.show(unit, "MainPID")["MainPID"])
        # The minimal root has no procps: /proc/PID/stat's 19th field is the niceness.
        app = int(self.c.run("cat", f"/proc/{main}/task/{main}/children").stdout.split()[0])
        nice = lambda pid: int(self.c.run("cat", f"/proc/{pid}/stat").stdout.rsplit(")", 1)[1].split()[16])
        # setpriority(2) clamps at 19: a suite run under `nice` starts bartld at 10 already.
        self.assertEqual(self.c.run("cat", "/var/lib/nicety/hook-nice").stdout.strip(), str(min(19, nice(main) + 10)),
                         journal)
        self.assertGreater(int(self.c.run("cat", "/var/lib/nicety/hook-nice").stdout), nice(main), journal)
        self.assertEqual(nice(app), nice(main))
        self.c.run("systemctl", "stop", unit, timeout=120)

    def test_10_instances_lists_the_failed_instances_too(self):
        """bartlctl instances once listed only the bartlds on the bus: an instance failed on a
        config typo or stopped at the unit's start limit, the one an operator must look at,
        was missing from the fleet view. Each row now says what systemd says and what to do."""
        def conf(name, app_exec, extra=""):
            return (f'[app]\nname = "{name}"\nversion = "1.0.0"\nexec = {json.dumps(app_exec)}\nready = "started"\n'
                    f'{extra}\n[state]\npaths = ["/var/lib/{name}/data"]\n')
        self.c.run("tee", "/etc/bartl/fleetok.toml", input=conf("fleetok", ["/bin/sleep", "infinity"]))
        self.c.run("tee", "/etc/bartl/fleettypo.toml", input=conf("fleettypo", ["/bin/sleep", "infinity"], 'redy = "x"'))
        self.c.run("tee", "/etc/bartl/fleetcrash.toml", input=conf("fleetcrash", ["/bin/sh", "-c", "exit 3"]))
        # The shipped RestartSec=10s would take a minute to reach the limit of 5 starts.
        self.c.sh("mkdir -p /run/systemd/system/bartld@fleetcrash.service.d && printf '[Service]\\nRestartSec=100ms\\n' "
                  ">/run/systemd/system/bartld@fleetcrash.service.d/fast.conf")
        self.c.run("systemctl", "daemon-reload")
        units = [f"bartld@{n}.service" for n in ("fleetok", "fleettypo", "fleetcrash")]
        try:
            self.c.run("systemctl", "start", units[0], timeout=120)
            for u in units[1:]:
                self.c.run("systemctl", "start", "--no-block", u)
            deadline = time.monotonic() + 60
            while any(self.c.show(u, "ActiveState")["ActiveState"] != "failed" for u in units[1:]):
                self.assertLess(time.monotonic(), deadline, [self.c.show(u, "ActiveState", "NRestarts") for u in units])
                time.sleep(0.2)
            out = self.c.run("bartlctl", "instances").stdout
            row = lambda name: next((l for l in out.splitlines() if l.startswith(name + " ")), None)
            self.assertRegex(row("fleetok") or "", r"^fleetok +serving +1\.0\.0 +1\.0\.0 ", out)
            self.assertRegex(row("fleettypo") or "", r"^fleettypo +failed +- +- +- +configuration error \(exit 78\): "
                                                     r"/etc/bartl/fleettypo\.toml:\d+:\d+: .*redy", out)
            self.assertRegex(row("fleetcrash") or "", r"^fleetcrash +failed +- +1\.0\.0 +- +start limit hit after \d+ "
                                                      r"restart\(s\), last run: runtime failure \(exit 1\); fix it, then "
                                                      r"systemctl reset-failed bartld@fleetcrash\.service and start it", out)
            self.assertRegex(out, r"instances listed, \d+ with a problem \(bartlctl -i NAME status says more\)\.\n$")
            rows = {e["instance"]: e for e in json.loads(self.c.run("bartlctl", "instances", "--json").stdout)}
            self.assertEqual((rows["fleetok"]["running"], rows["fleetok"]["phase"]), (True, "serving"), rows)
            self.assertEqual((rows["fleettypo"]["running"], rows["fleettypo"]["phase"]), (False, "failed"), rows)
            self.assertIn("redy", rows["fleettypo"]["config_error"])
            self.assertEqual(rows["fleetcrash"]["systemd"]["exit_status"], 1, rows)
            self.assertTrue(rows["fleetcrash"]["problem"].startswith("start limit hit"), rows)
        finally:
            for u in units:
                self.c.run("systemctl", "stop", u, check=False)
                self.c.run("systemctl", "reset-failed", u, check=False)
            self.c.run("rm", "-rf", "/etc/bartl/fleetok.toml", "/etc/bartl/fleettypo.toml", "/etc/bartl/fleetcrash.toml",
                       "/run/systemd/system/bartld@fleetcrash.service.d")
            self.c.run("systemctl", "daemon-reload")


if __name__ == "__main__":
    try:
        ensure_tools()
    except unittest.SkipTest as e:
        print(f"SKIP: {e}", flush=True)
        raise SystemExit(77)  # meson's "skipped"
    t0 = time.monotonic()
    prog = unittest.main(verbosity=2, exit=False)
    log(f"total {time.monotonic() - t0:.1f} s")
    raise SystemExit(0 if prog.result.wasSuccessful() else 1)
