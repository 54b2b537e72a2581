#!/usr/bin/python3
"""systemd integration without a running systemd: the installed units pass systemd-analyze verify
and security, the catalog and sysusers/tmpfiles files are accepted by journalctl and
systemd-sysusers/-tmpfiles working on a private root, and bartld speaks the notify protocol
(EXTEND_TIMEOUT_USEC= during long steps, STATUS= progress, READY=1, STOPPING=1) to a real
NOTIFY_SOCKET listener."""
import configparser
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from bartltest import SOURCE_ROOT, BARTLD, StackTest, edit_config, scaled

BUILD_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(BARTLD))))
HOST_UNITS = "/lib/systemd/system"
MAX_EXPOSURE = 2.6  # issue 11: with the user switch (CAP_SETUID, CAP_SETGID) in the unit; 2.6 since
# setpriority(2) passes the SystemCallFilter (the backup thread lowers its own priority by
# [backup] nice), which systemd-analyze counts as @resources not filtered
EVENTS = os.path.join(SOURCE_ROOT, "src", "ops", "events.hpp")


def need(tool):
    if shutil.which(tool) is None:
        raise unittest.SkipTest(f"{tool} is not installed (apt-get install systemd)")


def meson_install(destdir):
    """Installs the build into destdir exactly as a package build would."""
    subprocess.run(["meson", "install", "-C", BUILD_ROOT, "--destdir", destdir, "--no-rebuild", "--quiet"],
                   check=True, capture_output=True)


def find_one(root, name):
    hits = [os.path.join(d, name) for d, _, files in os.walk(root) if name in files]
    if len(hits) != 1:
        raise AssertionError(f"expected one installed {name}, found {hits}")
    return hits[0]


def read_unit(path):
    """A unit file as {section: {key: [values]}} (keys may repeat)."""
    out, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = out.setdefault(line.strip("[]"), {})
                continue
            key, _, value = line.partition("=")
            section.setdefault(key, []).append(value)
    return out


class ExposureQuoted(unittest.TestCase):
    """The exposure the units' comments and bartld(8) quote is the one test_security_exposure holds
    them to: a limit raised without the comment was 2.5 in the units while bartld(8) said 2.6."""

    def test_units_and_bartld_8_quote_the_limit(self):
        quoted = {}
        for unit in ("bartld.service.in", "bartld@.service.in"):
            with open(os.path.join(SOURCE_ROOT, "units", unit)) as f:
                quoted[unit] = re.findall(r"systemd-analyze security, (\d+\.\d+)", f.read())
        with open(os.path.join(SOURCE_ROOT, "man", "bartld.8.scd")) as f:
            quoted["bartld.8"] = re.findall(r"rates the exposure (\d+\.\d+)", " ".join(f.read().split()))
        for where, figures in quoted.items():
            with self.subTest(where=where):
                self.assertEqual(figures, [str(MAX_EXPOSURE)])


class Installed(unittest.TestCase):
    """One meson install into a private root, shared by the tests of this class."""

    @classmethod
    def setUpClass(cls):
        need("systemd-analyze")
        cls.root = tempfile.mkdtemp(prefix="bartl-units-")
        meson_install(cls.root)
        cls.template = find_one(cls.root, "bartld@.service")
        cls.single = find_one(cls.root, "bartld.service")
        cls.unitdir = os.path.dirname(cls.template)
        # systemd-analyze --root resolves the units' dependencies (sysinit.target,
        # network-online.target, ...) inside the root: give it the host's, never overwriting ours.
        if os.path.isdir(HOST_UNITS):
            subprocess.run(["cp", "-an", HOST_UNITS + "/.", cls.unitdir + "/"], check=True)
        mans = [d for d, _, files in os.walk(cls.root) if "bartld.8" in files]
        cls.env = dict(os.environ, MANPATH=os.path.dirname(mans[0]) if mans else "", SYSTEMD_LOG_COLOR="0")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def analyze(self, *args):
        return subprocess.run(["systemd-analyze", *args, f"--root={self.root}"], capture_output=True, text=True,
                              env=self.env, cwd=self.root)

    def test_units_installed_where_pkg_config_says(self):
        expected = subprocess.run(["pkg-config", "--variable=systemdsystemunitdir", "systemd"],
                                  capture_output=True, text=True).stdout.strip()
        if expected:
            self.assertEqual(os.path.relpath(self.unitdir, self.root), expected.lstrip("/"))
        sbin_bartld = find_one(self.root, "bartld")
        exec_start = read_unit(self.template)["Service"]["ExecStart"][0].split()
        # The unit names the binary where meson installed it, not a hard-coded path.
        self.assertEqual(self.root + exec_start[0], sbin_bartld)
        self.assertEqual(exec_start[1:], ["--instance", "%i"])

    def test_verify_passes_without_warnings(self):
        r = self.analyze("verify", "bartld@notes.service", "bartld.service")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr.strip(), "", "systemd-analyze verify warned")

    def verify_without(self, binary, unit):
        """systemd-analyze verify's stderr for `unit` while `binary` (a path in the root) is gone."""
        os.rename(binary, binary + ".away")
        try:
            r = self.analyze("verify", unit)
        finally:
            os.rename(binary + ".away", binary)
        self.assertNotEqual(r.returncode, 0)
        return r.stderr

    def test_verify_catches_a_missing_binary(self):
        # The check above can fail: with the binary gone verify must complain.
        unit = read_unit(self.template)["Service"]["ExecStart"][0].split()[0]
        self.assertIn("not executable", self.verify_without(self.root + unit, "bartld@notes.service"))

    def exposure(self, unit):
        r = self.analyze("security", "--offline=true", unit)
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        return float(m.group(1))

    def test_security_exposure(self):
        for unit in ("bartld@notes.service", "bartld.service"):
            with self.subTest(unit=unit):
                self.assertLessEqual(self.exposure(unit), MAX_EXPOSURE)

    def test_example_drop_in_applies_and_keeps_exposure(self):
        example = find_one(self.root, "state-paths.conf")
        dropin_dir = os.path.join(self.root, "etc", "systemd", "system", "bartld@notes.service.d")
        os.makedirs(dropin_dir)
        with open(example) as f:
            text = f.read().replace("NAME", "notes")
        with open(os.path.join(dropin_dir, "50-notes.conf"), "w") as f:
            f.write(text)
        try:
            r = self.analyze("verify", "bartld@notes.service")
            self.assertEqual(r.returncode, 0, r.stderr)
            # postgresql.service is unknown here; verify mentions nothing else.
            self.assertEqual([l for l in r.stderr.splitlines() if "postgresql" not in l], [])
            self.assertLessEqual(self.exposure("bartld@notes.service"), MAX_EXPOSURE)
        finally:
            shutil.rmtree(os.path.join(self.root, "etc", "systemd"))

    def test_generator_installed_where_pkg_config_says(self):
        expected = subprocess.run(["pkg-config", "--variable=systemdsystemgeneratordir", "systemd"],
                                  capture_output=True, text=True).stdout.strip()
        generator = find_one(self.root, "bartl-generator")
        if expected:
            self.assertEqual(os.path.relpath(os.path.dirname(generator), self.root), expected.lstrip("/"))
        self.assertTrue(os.access(find_one(self.root, "bartl-prepare-dirs"), os.X_OK))

    def test_generated_drop_in_applies_and_keeps_exposure(self):
        # The installed generator's drop-in for a config with every kind of path, as systemd
        # loads it. systemd-analyze's offline manager reads no generator directory, so the
        # drop-in goes to the root's /etc/systemd/system.
        etc = os.path.join(self.root, "etc", "systemd", "system")
        with tempfile.TemporaryDirectory() as tmp:
            os.makedirs(os.path.join(tmp, "conf"))
            with open(os.path.join(tmp, "conf", "demo.toml"), "w") as f:
                f.write('[app]\nname = "demo"\nversion = "1.0.0"\nexec = ["/bin/sleep", "infinity"]\n'
                        '[state]\npaths = ["/var/lib/demo/data", "/srv/demo files/50% off"]\n'
                        'bartl_dir = "/srv/demo-bartl"\n[backup]\nstore = "s3://bucket/demo"\n')
            r = subprocess.run([find_one(self.root, "bartl-generator"), tmp, tmp, tmp], capture_output=True, text=True,
                               env=dict(os.environ, BARTL_GENERATOR_CONFIG_DIR=os.path.join(tmp, "conf"),
                                        BARTL_GENERATOR_LOG=os.path.join(tmp, "log")))
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(tmp, "log")) as f:
                self.assertEqual(f.read(), "", "the generator logged something")
            shutil.copytree(os.path.join(tmp, "bartld@demo.service.d"), os.path.join(etc, "bartld@demo.service.d"))
        try:
            r = self.analyze("verify", "bartld@demo.service")
            self.assertEqual((r.returncode, r.stderr.strip()), (0, ""), "systemd-analyze verify warned")
            self.assertLessEqual(self.exposure("bartld@demo.service"), MAX_EXPOSURE)
            # The check can fail: without the helper the drop-in runs, verify complains.
            helper = find_one(self.root, "bartl-prepare-dirs")
            self.assertIn(f"Command /{os.path.relpath(helper, self.root)} is not executable",
                          self.verify_without(helper, "bartld@demo.service"))
        finally:
            shutil.rmtree(os.path.join(self.root, "etc", "systemd"))

    def test_lifecycle_settings(self):
        svc = read_unit(self.template)["Service"]
        unit = read_unit(self.template)["Unit"]
        self.assertEqual(svc["Type"], ["notify"])
        self.assertEqual(svc["NotifyAccess"], ["main"])
        self.assertEqual(svc["Restart"], ["on-failure"])
        self.assertEqual(set(" ".join(svc["RestartPreventExitStatus"]).split()), {"64", "65", "66", "78"})
        # A crash loop ends: five starts, RestartSec= apart, fit well within the start limit's
        # interval, so the fifth failure leaves the unit failed (start limit) instead of
        # restarting it every 10 s forever; a transient failure still gets four retries.
        self.assertEqual((unit["StartLimitIntervalSec"], unit["StartLimitBurst"]), (["5min"], ["5"]))
        seconds = lambda v: int(re.fullmatch(r"(\d+)(s|min)", v).group(1)) * (60 if v.endswith("min") else 1)
        burst, every = int(unit["StartLimitBurst"][0]), seconds(svc["RestartSec"][0])
        self.assertLess(burst * every, seconds(unit["StartLimitIntervalSec"][0]) / 2,
                        "the starts of a crash loop must fit into the interval, with room for slow starts")
        self.assertEqual(svc["StateDirectory"], ["bartl/%i"])
        self.assertEqual(svc["RuntimeDirectory"], ["bartl/%i"])
        self.assertEqual(svc["KillMode"], ["mixed"], "bartld stops the app itself")
        self.assertIn("TimeoutStartSec", svc)
        self.assertIn("WatchdogSec", svc)
        after = " ".join(unit["After"]).split()
        for target in ("network.target", "remote-fs.target", "local-fs.target"):
            self.assertIn(target, after)
        # Only an instance with a remote store waits for the network: bartl-generator adds it
        # (tests/integration/test_generator.py).
        self.assertNotIn("network-online.target", after)
        self.assertNotIn("Wants", unit)
        caps = set(" ".join(svc["CapabilityBoundingSet"]).split())
        # Restore's owners and modes, reading state as root, signalling and starting the app
        # as [app] user: nothing more.
        self.assertEqual(caps, {"CAP_CHOWN", "CAP_FOWNER", "CAP_FSETID", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH",
                                "CAP_KILL", "CAP_SETUID", "CAP_SETGID"})
        self.assertNotIn("AmbientCapabilities", svc)
        # The app's user passes through the runtime directory to its own notify socket.
        self.assertEqual(svc["RuntimeDirectoryMode"], ["0711"])

    def test_both_units_share_one_sandbox(self):
        # The two units are written out twice; a hardening change made to only one is a bug.
        per_instance = {"ExecStart", "StateDirectory", "RuntimeDirectory"}
        a = {k: v for k, v in read_unit(self.template)["Service"].items() if k not in per_instance}
        b = {k: v for k, v in read_unit(self.single)["Service"].items() if k not in per_instance}
        self.assertEqual(a, b)
        self.assertEqual(read_unit(self.single)["Service"]["ExecStart"][0].split()[1], "--config")

    def test_catalog_covers_every_event(self):
        need("journalctl")
        with open(EVENTS) as f:
            ids = dict((v, k) for k, v in re.findall(r'(\w+) = "([0-9a-f]{32})"', f.read()))
        self.assertGreaterEqual(len(ids), 10)
        catalog = find_one(self.root, "bartl.catalog")
        # journalctl reads catalogs from ROOT/usr/lib/systemd/catalog only.
        croot = os.path.join(self.root, "catalog-root")
        os.makedirs(os.path.join(croot, "usr", "lib", "systemd", "catalog"))
        shutil.copy(catalog, os.path.join(croot, "usr", "lib", "systemd", "catalog"))
        r = subprocess.run(["journalctl", f"--root={croot}", "--update-catalog"], capture_output=True, text=True)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        listed = subprocess.run(["journalctl", f"--root={croot}", "--list-catalog"], capture_output=True,
                                text=True, check=True).stdout
        entries = dict(line.split(" ", 1) for line in listed.splitlines())
        for mid, name in ids.items():
            with self.subTest(event=name):
                self.assertIn(mid, entries, f"{name} ({mid}) has no catalog entry")
                self.assertTrue(entries[mid].startswith("bartl: "), entries[mid])
        self.assertEqual(set(entries) - set(ids), set(), "catalog entries for unknown ids")

    def test_sysusers_creates_the_bartl_group(self):
        need("systemd-sysusers")
        sysusers = [os.path.join(d, "bartl.conf") for d, _, f in os.walk(self.root)
                    if d.endswith("sysusers.d") and "bartl.conf" in f]
        self.assertEqual(len(sysusers), 1)
        r = subprocess.run(["systemd-sysusers", f"--root={self.root}", sysusers[0]], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.root, "etc", "group")) as f:
            self.assertIn("bartl", [line.split(":")[0] for line in f])

    def test_tmpfiles_creates_the_store_root_closed(self):
        need("systemd-tmpfiles")
        tmpfiles = [os.path.join(d, "bartl.conf") for d, _, f in os.walk(self.root)
                    if d.endswith("tmpfiles.d") and "bartl.conf" in f]
        self.assertEqual(len(tmpfiles), 1)
        r = subprocess.run(["systemd-tmpfiles", f"--root={self.root}", "--create", tmpfiles[0]],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        st = os.stat(os.path.join(self.root, "var", "backups", "bartl"))
        self.assertEqual(st.st_mode & 0o777, 0o700, "backups hold every file of the state")
        self.assertTrue(os.path.isdir(os.path.join(self.root, "var", "lib", "bartl")))


SLOW_INIT = """#!/bin/sh
# Outlasts bartld's 10 s heartbeat, then does the real init.
sleep {delay}
exec {real} "$@"
"""


class NotifyProtocol(StackTest):
    def test_long_init_extends_timeout_and_stop_says_stopping(self):
        s = self.stack("1.0.0")
        hook = os.path.join(self.tmp, "slow-init")
        with open(hook, "w") as f:
            f.write(SLOW_INIT.format(delay=10.5, real=os.path.join(SOURCE_ROOT, "examples", "notes", "bartl", "init")))
        os.chmod(hook, 0o755)
        edit_config(s.config, {"hooks.init": f'["{hook}"]'})
        t0 = time.monotonic()
        s.start()
        s.wait_ready(timeout=60)
        with s.notify.lock:
            messages = list(s.notify.messages)
        extends = [(t, m) for t, m in messages if m.startswith("EXTEND_TIMEOUT_USEC=")]
        ready = s.notify.first_time("READY=1")
        during = [t for t, _ in extends if t < ready]
        # Periodic, not once: at least two, about 10 s apart, before READY.
        self.assertGreaterEqual(len(during), 2, messages)
        self.assertGreaterEqual(during[-1] - during[0], 9.0)
        for _, m in extends:
            usec = int(m.split("=", 1)[1].split("\n")[0])
            # Each extension outlasts the gap to the next one.
            self.assertGreater(usec, 10_000_000)
        statuses = s.notify.statuses()
        self.assertTrue(any(x.startswith("Initializing notes 1.0.0") for x in statuses), statuses)
        self.assertGreaterEqual(ready - t0, 10.5)
        s.proc.send_signal(15)
        self.assertEqual(s.proc.wait(scaled(30)), 0)
        time.sleep(0.2)
        texts = s.notify.texts()
        stopping = [m for m in texts if "STOPPING=1" in m.split("\n")]
        self.assertEqual(len(stopping), 1, texts)

    def test_restore_reports_its_step(self):
        s = self.stack("1.0.0")
        s.run("--prepare")
        with open(os.path.join(s.state, "bulk.bin"), "wb") as f:
            f.write(os.urandom(8 << 20))
        self.assertEqual(s.run("--backup").returncode, 0)
        shutil.rmtree(s.state)
        shutil.rmtree(s.bartl_dir)
        r = s.run("--prepare", notify=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        statuses = s.notify.statuses()
        restoring = [x for x in statuses if x.startswith("Restoring notes from notes-")]
        self.assertTrue(restoring, statuses)
        # Byte progress ("…: 312 MiB of 1.2 GiB") follows once a second; a restore that fits a
        # fast test ends sooner, so only the step itself is asserted here.
        self.assertTrue(any(m.startswith("EXTEND_TIMEOUT_USEC=") for m in s.notify.texts()))


if __name__ == "__main__":
    unittest.main(verbosity=2)
