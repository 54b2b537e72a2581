#!/usr/bin/python3
"""Two real Debian-packaged services under bartl on a real systemd: Radicale (CalDAV/CardDAV,
Debian's radicale 3.1.x) and Redis (Debian's redis-server 7.0.x), each installed from Debian
with apt-get in its own minimal bookworm booted with systemd-nspawn (the container of
test_nspawn.py), set up with exactly the files the bartl package ships in
/usr/share/doc/bartl/examples/{radicale,redis} (checked against this checkout's examples/),
and run by bartld@radicale / bartld@redis as the app's own user with no hand-written drop-in.

The scenarios of each app run in order in its container, each building on the one before:
  1 fresh install          5 upgrade: a migration, the pre-migration backup marked "way back"
  2 data through the app   6 downgrade refused (exit 65, NRestarts=0), bartlctl status of the
  3 backup while writing     failed unit
  4 disaster and restore   7 the way back: the pre-migration backup restored, the old engine
                           8 state paths changed without daemon-reload: exit 78

Debian 12 has one Radicale and one Redis, so the upgrade is the installed engine announcing
a newer version: the test diverts the binary (dpkg-divert) to a wrapper whose --version says
3.2.0 / 7.2.0 and that runs the real binary otherwise; removing the diversion is the
downgrade. Everything else (data, migration scripts, backups, restores) is the real app's.

Opt-in (slow): runs only with BARTL_SYSTEM_APPS=1 (tests/system/README.md), else exit 77.
Needs root and the network to Debian's mirror on the first run (apt's archives are cached).
Ports 5232 (Radicale) and 6379 (Redis) must be free on the host: the container shares its
network.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_nspawn as nspawn  # noqa: E402
from test_nspawn import log  # noqa: E402

EXAMPLES = "/usr/share/doc/bartl/examples"
SOURCE_EXAMPLES = "/mnt/examples"
GENERATED = nspawn.GENERATED


class AppCase:
    """The scenarios, shared by both apps; a subclass supplies the app's own protocol."""

    APP = NAME = None  # instance name, the Debian package
    PACKAGES = ()
    USER = None
    PORT = None
    STATE = None  # the state path of the example's [state] paths
    BINARY = None  # the engine binary version_command runs (diverted for the "upgrade")
    ENGINE = NEWER = None
    timings = None

    @classmethod
    def setUpClass(cls):
        cls.timings = {}
        t0 = time.monotonic()
        _, cls.timings["root"] = nspawn.ensure_root()
        cls.debdir, cls.timings["packages"] = nspawn.ensure_packages()
        bartl = [p for p in os.listdir(cls.debdir) if p.startswith("bartl_") and p.endswith(".deb")]
        if len(bartl) != 1:
            raise AssertionError(f"{cls.debdir} must hold one bartl_*.deb, holds {bartl}")
        if not nspawn.port_free(cls.PORT):
            raise AssertionError(f"port {cls.PORT} in use on the host; the container shares its network")
        cls.workdir = tempfile.mkdtemp(prefix=f"bartl-{cls.APP}.")
        cls.addClassCleanup(shutil.rmtree, cls.workdir, ignore_errors=True)
        cls.c = nspawn.Container(nspawn.ROOT, cls.debdir, cls.workdir,
                                 binds=[(os.path.join(nspawn.SOURCE_ROOT, "examples"), SOURCE_EXAMPLES)])
        cls.addClassCleanup(cls.c.close)
        t_boot = time.monotonic()
        cls.c.find_init()
        cls.c.wait_booted()
        t1 = time.monotonic()
        cls.timings["boot"] = t1 - t_boot
        # Both from Debian, by apt as an operator would (the app's dependencies from the mirror).
        nspawn.apt_install(cls.c, f"/mnt/host/{bartl[0]}", *cls.PACKAGES)
        cls.timings["apt install"] = time.monotonic() - t1
        cls.t_start = t0

    @classmethod
    def tearDownClass(cls):
        cls.timings["total"] = time.monotonic() - cls.t_start
        log(f"timings {cls.APP}: " + ", ".join(f"{k} {v:.1f} s" for k, v in cls.timings.items()))

    def setUp(self):
        self.t0 = time.monotonic()

    def tearDown(self):
        self.timings[self._testMethodName.split("_")[1]] = time.monotonic() - self.t0

    # -- helpers ------------------------------------------------------------------------------

    @property
    def unit(self):
        return f"bartld@{self.APP}.service"

    def ctl(self, *args, check=True):
        return self.c.run("bartlctl", "-i", self.APP, *args, check=check)

    def ctl_json(self, *args):
        return json.loads(self.ctl(*args, "--json").stdout)

    def marker(self):
        return json.loads(self.c.run("cat", f"/var/lib/bartl/{self.APP}/marker.json").stdout)

    def journal(self, unit=None):
        return self.c.run("journalctl", "-u", unit or self.unit, "--no-pager", "-o", "cat", check=False).stdout

    def start_and_watch(self, timeout=180):
        """systemctl start --no-block, then poll until the unit settles: [(ActiveState,
        SubState, app answers?)] in order, without repeats."""
        self.c.run("systemctl", "start", "--no-block", self.unit)
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.c.show(self.unit, "ActiveState", "SubState")
            row = (s["ActiveState"], s["SubState"], self.answers() if s["ActiveState"] == "active" else None)
            if not seen or seen[-1] != row:
                seen.append(row)
            if s["ActiveState"] in ("active", "failed"):
                return seen
            time.sleep(0.05)
        self.fail(f"{self.unit} did not settle in {timeout} s: {seen}\n{self.journal()}")

    def assert_serving(self, engine, state):
        s = self.c.show(self.unit, "ActiveState", "SubState", "StatusText")
        self.assertEqual((s["ActiveState"], s["SubState"]), ("active", "running"), f"{s}\n{self.journal()[-3000:]}")
        self.assertEqual(s["StatusText"].split(" (since")[0].split(";")[0],
                         f"Serving {self.APP} {engine} (state {state})", s)
        self.assertTrue(self.answers(), f"{self.unit} is active but {self.APP} does not answer")

    def app_processes(self):
        """[(pid, comm, user)] of the unit's main process (bartld) and its children (the app)."""
        main = self.c.show(self.unit, "MainPID")["MainPID"]
        out = self.c.sh(f'for p in {main} $(cat /proc/{main}/task/*/children); do '
                        f'echo "$p $(cat /proc/$p/comm) $(stat -c %U /proc/$p)"; done').stdout
        return [tuple(line.split()) for line in out.splitlines()]

    def restart_expecting_failure(self):
        try:  # refusing takes well under a second; a hang here is a bug
            r = self.c.run("systemctl", "restart", self.unit, check=False, timeout=60)
        except subprocess.TimeoutExpired:
            self.fail(f"systemctl restart {self.unit} still running after 60 s:\n{self.journal()[-3000:]}")
        self.assertNotEqual(r.returncode, 0, self.journal()[-3000:])
        return self.c.show(self.unit, "ActiveState", "SubState", "Result", "ExecMainStatus", "NRestarts")

    def divert(self, version):
        """The "upgrade": BINARY diverted to BINARY.distrib, a wrapper in its place that reports
        `version` and runs the real binary for everything else."""
        self.c.sh(f"""
            dpkg-divert --quiet --local --rename --divert {self.BINARY}.distrib --add {self.BINARY}
            cat >{self.BINARY} <<'EOF'
#!/bin/sh
case "${{1:-}}" in --version|-v) echo "{self.version_line(version)}"; exit 0 ;; esac
exec {self.BINARY}.distrib "$@"
EOF
            chmod 0755 {self.BINARY}
        """)

    def undivert(self):
        self.c.sh(f"rm -f {self.BINARY}; dpkg-divert --quiet --local --rename --remove {self.BINARY}")

    # -- the scenarios ------------------------------------------------------------------------

    def test_1_fresh_install(self):
        unit = self.unit
        # The package ships exactly this checkout's example, runnable as installed.
        r = self.c.run("diff", "-r", f"{SOURCE_EXAMPLES}/{self.APP}", f"{EXAMPLES}/{self.APP}", check=False)
        self.assertEqual(r.returncode, 0, f"the bartl package ships another {self.APP} example:\n{r.stdout}")
        # Debian started its own service at install: the example's install masks and stops it.
        self.c.run(f"{EXAMPLES}/{self.APP}/install")
        self.assertEqual(self.c.run("systemctl", "is-enabled", self.DEBIAN_UNIT, check=False).stdout.strip(), "masked")
        self.assertEqual(self.c.show(self.DEBIAN_UNIT, "ActiveState")["ActiveState"], "inactive")
        self.assertFalse(self.answers(), f"something still answers on :{self.PORT}")
        s = self.c.show(unit, "ActiveState", "LoadState", "DropInPaths")
        self.assertEqual((s["LoadState"], s["ActiveState"]), ("loaded", "inactive"))
        # No hand-written drop-in: bartl-generator's is the only one.
        self.assertEqual(s["DropInPaths"], GENERATED.format(unit=unit))
        self.prepare_app()
        self.c.run("bartld", "--instance", self.APP, "--init-store")

        seen = self.start_and_watch()
        log(f"{unit} start: {seen}")
        self.assertEqual(seen[-1][:2], ("active", "running"), f"{seen}\n{self.journal()[-3000:]}")
        # Active only once the app answered: the readiness probe, not the exec, made it so.
        self.assertTrue(any(r[0] == "activating" for r in seen), seen)
        self.assertTrue(next(r for r in seen if r[0] == "active")[2], f"active before {self.APP} answered: {seen}")
        self.assert_serving(self.ENGINE, self.ENGINE)
        m = self.marker()
        self.assertEqual((m["app"], m["version"], m["origin"]), (self.APP, self.ENGINE, "init"))
        # bartld stays root, the app runs as its own user.
        procs = self.app_processes()
        users = {comm: user for _, comm, user in procs}
        self.assertEqual(users.get("bartld"), "root", procs)
        self.assertEqual(users.get(self.COMM), self.USER, procs)
        self.assertEqual(self.c.run("stat", "-c", "%U:%G", self.STATE).stdout.strip(), f"{self.USER}:{self.USER}")
        # The app's own log reaches the journal as the instance's.
        logged = self.c.run("journalctl", f"BARTL_INSTANCE={self.APP}", "-o", "cat", "--no-pager").stdout
        self.assertIn(self.READY_LOG, logged)

    def test_2_data_through_the_app(self):
        self.write_data()
        self.assert_data()
        st = self.ctl_json("status")
        self.assertEqual((st["phase"], st["engine_version"], st["state_origin"]), ("serving", self.ENGINE, "init"), st)

    def test_3_backup_while_writing(self):
        # A scratch file of the kind [backup] exclude names: never archived, so never restored.
        self.c.run("install", "-o", self.USER, "-g", self.USER, "/dev/null", f"{self.STATE}/{self.SCRATCH}")
        stop = threading.Event()
        written = []
        writer = threading.Thread(target=self.writer, args=(stop, written), daemon=True)
        writer.start()
        try:
            deadline = time.monotonic() + 60
            while len(written) < 20 and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertGreaterEqual(len(written), 20, "the writer did not get going")
            before = len(written)
            t0 = time.monotonic()
            backup = self.ctl_json("backup", "--wait")
            self.timings["backup"] = time.monotonic() - t0
            during = len(written) - before
            time.sleep(0.5)
        finally:
            stop.set()
            writer.join(60)
        self.assertEqual(backup.get("result"), "success", backup)
        self.assertGreater(during, 0, "nothing was written while the backup ran")
        log(f"{self.APP}: {during} writes while the backup ran ({self.timings['backup']:.1f} s), {len(written)} in all")
        self.__class__.backup_id = backup["id"]
        self.__class__.written_before_backup = before
        self.__class__.written = list(written)
        mine = [b for b in self.ctl_json("backups") if b["id"] == backup["id"]]
        self.assertEqual(len(mine), 1)
        self.assertEqual((mine[0]["reason"], mine[0]["version"]), ("manual", self.ENGINE), mine)
        if self.BACKUP_HOOK_LOG:
            self.assertIn(self.BACKUP_HOOK_LOG, self.journal())
        listing = self.blob_listing(backup["id"])
        self.assertFalse([p for p in listing if os.path.basename(p) == self.SCRATCH], listing[:50])

    def test_4_disaster_and_restore(self):
        self.c.run("systemctl", "stop", self.unit, timeout=300)
        self.c.sh(f"rm -rf {self.STATE} /var/lib/bartl/{self.APP}")
        t0 = time.monotonic()
        self.c.run("systemctl", "start", self.unit, timeout=600)
        self.timings["restore"] = time.monotonic() - t0
        self.assert_serving(self.ENGINE, self.ENGINE)
        m = self.marker()
        self.assertEqual(m["origin"], f"restore:{self.backup_id}", m)
        self.assertEqual(self.ctl_json("status")["state_origin"], f"restore:{self.backup_id}")
        self.assertEqual(self.c.run("stat", "-c", "%U:%G", self.STATE).stdout.strip(), f"{self.USER}:{self.USER}")
        self.assertNotEqual(self.c.run("test", "-e", f"{self.STATE}/{self.SCRATCH}", check=False).returncode, 0,
                            f"{self.SCRATCH} is excluded, yet was restored")
        self.assert_data()
        self.assert_restored_writes(self.written_before_backup, self.written)
        procs = self.app_processes()
        self.assertEqual({comm: user for _, comm, user in procs}.get(self.COMM), self.USER, procs)

    def test_5_upgrade_migrates_and_keeps_the_way_back(self):
        self.divert(self.NEWER)
        self.assertIn("migrate", self.c.run("bartld", "--instance", self.APP, "--plan").stdout)
        self.assertIn("migrate", self.ctl_json("plan")["plan"])
        t0 = time.monotonic()
        self.c.run("systemctl", "restart", self.unit, timeout=600)
        self.timings["migration"] = time.monotonic() - t0
        self.assert_serving(self.NEWER, self.NEWER)
        m = self.marker()
        self.assertEqual(m["version"], self.NEWER)
        migrations = [h for h in self.ctl_json("history") if h["event"] == "migrate"]
        self.assertEqual((migrations[-1]["from"], migrations[-1]["to"]), (self.ENGINE, self.NEWER), migrations)
        self.assert_migrated()
        self.assert_data()
        # The migration ran as the app's user: what it rewrote is still the app's.
        bad = self.c.run("find", self.STATE, "!", "-user", self.USER, check=False).stdout.strip()
        self.assertEqual(bad, "", f"not owned by {self.USER} after the migration")
        pre = [b for b in self.ctl_json("backups") if b["reason"] == "pre-migration"]
        self.assertEqual([b["version"] for b in pre], [self.ENGINE], pre)
        self.__class__.way_back = pre[0]["id"]
        line = next(l for l in self.ctl("backups").stdout.splitlines() if l.startswith(pre[0]["id"]))
        self.assertIn("pre-migration", line)
        self.assertIn("way back", line)
        self.assertIn("pre-migration", self.journal())

    def test_6_downgrade_exits_65_without_a_restart_loop(self):
        self.undivert()
        self.assertIn(self.ENGINE, self.c.run(self.BINARY, "--version").stdout)
        s = self.restart_expecting_failure()
        self.assertEqual(s["ExecMainStatus"], "65", f"{s}\n{self.journal()[-3000:]}")
        self.assertEqual((s["ActiveState"], s["SubState"], s["Result"], s["NRestarts"]),
                         ("failed", "failed", "exit-code", "0"), s)
        time.sleep(3)
        s = self.c.show(self.unit, "ActiveState", "NRestarts")
        self.assertEqual((s["ActiveState"], s["NRestarts"]), ("failed", "0"), s)
        self.assertEqual(self.marker()["version"], self.NEWER, "the refused downgrade must not touch the state")
        # bartlctl status of a unit that is not running: what systemd and the marker say.
        r = self.ctl("status", check=False)
        log(f"bartlctl status of the failed unit:\n{r.stdout}{r.stderr}")
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn(f"× {self.APP} - not running", r.stdout)
        lines = {l.split(":", 1)[0].strip(): l.split(":", 1)[1] for l in r.stdout.splitlines()[1:] if ":" in l}
        self.assertIn(f"{self.unit}: failed (failed), result exit-code, exit status 65, 0 restart(s)", lines.get("Unit", ""))
        self.assertTrue(lines.get("State", "").strip().startswith(f"{self.NEWER} (state ID "), lines)  # the marker
        self.assertIn("downgrade", lines.get("Decision", ""))  # the journal's last decision
        self.assertIn(f"newer than engine {self.ENGINE}: downgrade refused", lines.get("Error", ""))

    def test_7_the_way_back(self):
        # bartl(7) "Pre-upgrade backup and the way back", with the engine already back.
        aside = f"{os.path.dirname(self.STATE)}/aside"
        self.c.sh(f"mkdir {aside} && mv {self.STATE} /var/lib/bartl/{self.APP}/marker.json {aside}/")
        self.ctl("restore-from", self.way_back)
        self.c.run("systemctl", "reset-failed", self.unit)
        self.c.run("systemctl", "start", self.unit, timeout=600)
        self.assert_serving(self.ENGINE, self.ENGINE)
        self.assertEqual(self.marker()["origin"], f"restore:{self.way_back}")
        self.assert_data()
        self.assert_not_migrated()
        # What was moved aside stays where the operator put it.
        self.assertEqual(self.c.run("test", "-d", f"{aside}/{os.path.basename(self.STATE)}", check=False).returncode, 0)

    def test_8_paths_changed_without_daemon_reload_exit_78(self):
        conf = f"/etc/bartl/{self.APP}.toml"
        self.c.run("cp", conf, f"{conf}.orig")
        self.c.run("sed", "-i", f"s#file:///var/backups/bartl/{self.APP}\"#file:///srv/backups/{self.APP}\"#", conf)
        self.assertIn(f"file:///srv/backups/{self.APP}", self.c.run("cat", conf).stdout)
        s = self.restart_expecting_failure()
        self.assertEqual((s["ActiveState"], s["ExecMainStatus"], s["NRestarts"]), ("failed", "78", "0"),
                         f"{s}\n{self.journal()[-3000:]}")
        self.assertIn("daemon-reload", self.journal())
        self.assertEqual(self.marker()["origin"], f"restore:{self.way_back}", "a refused start touches nothing")
        # Put back as it was, the unit starts again.
        self.c.run("mv", f"{conf}.orig", conf)
        self.c.run("systemctl", "reset-failed", self.unit)
        self.c.run("systemctl", "start", self.unit, timeout=300)
        self.assert_serving(self.ENGINE, self.ENGINE)

    def blob_listing(self, backup_id):
        """The member names of the backup's blob (read on the host: zstd is not in the container)."""
        store = f"/proc/{self.c.pid}/root/var/backups/bartl/{self.APP}"
        blobs = [n for n in os.listdir(store) if backup_id in n and n.endswith(".tar.zst")]
        self.assertEqual(len(blobs), 1, os.listdir(store))
        r = subprocess.run(["tar", "--zstd", "-tf", os.path.join(store, blobs[0])], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.splitlines()


class RadicaleOnSystemd(AppCase, unittest.TestCase):
    """Debian's radicale under bartld@radicale, spoken to with curl over CalDAV/CardDAV."""

    APP, PACKAGES, USER, COMM, DEBIAN_UNIT = "radicale", ("radicale",), "radicale", "radicale", "radicale.service"
    PORT, STATE, BINARY = 5232, "/var/lib/radicale/collections", "/usr/bin/radicale"
    ENGINE, NEWER = "3.1.8", "3.2.0"
    SCRATCH = ".Radicale.tmp-planted"
    READY_LOG, BACKUP_HOOK_LOG = "Radicale server ready", None
    USERNAME, PASSWORD = "alice", "correct horse"
    EVENTS = 30
    BULK = 200

    def version_line(self, version):
        return version

    def curl(self, method, path, body=None, ctype=None, depth=None, expect=(200, 201, 207), timeout=20):
        """One request with the host's curl (the container shares its network): (status, body)."""
        cmd = ["curl", "-sS", "--max-time", str(timeout), "-o", "-", "-w", "\n%{http_code}", "-u",
               f"{self.USERNAME}:{self.PASSWORD}", "-X", method, f"http://127.0.0.1:{self.PORT}{path}"]
        if body is not None:
            cmd += ["--data-binary", "@-", "-H", f"Content-Type: {ctype}"]
        if depth is not None:
            cmd += ["-H", f"Depth: {depth}"]
        r = subprocess.run(cmd, input=body, capture_output=True, text=True, timeout=timeout + 10)
        self.assertEqual(r.returncode, 0, f"curl {method} {path}: {r.stderr}")
        text, _, code = r.stdout.rpartition("\n")
        if expect:
            self.assertIn(int(code), expect, f"{method} {path}: {code}\n{text}")
        return int(code), text

    def answers(self):
        r = subprocess.run(["curl", "-sS", "--max-time", "2", "-o", "/dev/null", "-w", "%{http_code}",
                            f"http://127.0.0.1:{self.PORT}/.web/"], capture_output=True, text=True)
        return r.stdout.startswith("2")

    def prepare_app(self):
        self.c.run("/usr/local/lib/bartl-radicale/add-user", self.USERNAME, input=self.PASSWORD + "\n")
        self.assertEqual(self.c.run("stat", "-c", "%U:%G %a", "/etc/bartl/radicale.users").stdout, "root:radicale 640\n")

    @staticmethod
    def event(uid, summary):
        return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bartl test//EN\r\nBEGIN:VEVENT\r\n"
                f"UID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20240102T100000Z\r\n"
                f"DTEND:20240102T110000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")

    def write_data(self):
        u = self.USERNAME
        self.curl("MKCALENDAR", f"/{u}/calendar/", expect=(201,))
        body = ('<?xml version="1.0" encoding="utf-8"?><mkcol xmlns="DAV:" '
                'xmlns:CR="urn:ietf:params:xml:ns:carddav"><set><prop><resourcetype><collection/>'
                '<CR:addressbook/></resourcetype><displayname>Contacts</displayname></prop></set></mkcol>')
        self.curl("MKCOL", f"/{u}/contacts/", body, "application/xml", expect=(201,))
        for i in range(self.EVENTS):
            self.curl("PUT", f"/{u}/calendar/ev-{i}.ics", self.event(f"ev-{i}", f"meeting {i}"),
                      "text/calendar", expect=(201,))
        # One PUT of a whole calendar: Radicale stores each of its events as an item of its own,
        # enough files that a backup takes a moment.
        events = "".join(f"BEGIN:VEVENT\r\nUID:bulk-{i}\r\nDTSTAMP:20240101T000000Z\r\n"
                         f"DTSTART:20240103T{i % 24:02d}0000Z\r\nSUMMARY:bulk {i}\r\nEND:VEVENT\r\n"
                         for i in range(self.BULK))
        t0 = time.monotonic()
        self.curl("PUT", f"/{u}/bulk/", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bartl test//EN\r\n"
                  + events + "END:VCALENDAR\r\n", "text/calendar", expect=(201,), timeout=300)
        log(f"radicale: a calendar of {self.BULK} events in {time.monotonic() - t0:.1f} s")
        card = ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bob\r\nFN:Bob Builder\r\nN:Builder;Bob;;;\r\n"
                "EMAIL:bob@example.org\r\nEND:VCARD\r\n")
        self.curl("PUT", f"/{u}/contacts/bob.vcf", card, "text/vcard", expect=(201,))

    def assert_data(self):
        u = self.USERNAME
        for i in (0, self.EVENTS // 2, self.EVENTS - 1):
            _, text = self.curl("GET", f"/{u}/calendar/ev-{i}.ics", expect=(200,))
            self.assertIn(f"SUMMARY:meeting {i}", text)
        _, text = self.curl("GET", f"/{u}/contacts/bob.vcf", expect=(200,))
        self.assertIn("FN:Bob Builder", text)
        self.assertGreaterEqual(len(self.hrefs("calendar")), self.EVENTS)
        self.assertEqual(len(self.hrefs("bulk")), self.BULK)

    def hrefs(self, collection):
        _, text = self.curl("PROPFIND", f"/{self.USERNAME}/{collection}/", '<?xml version="1.0"?>'
                            '<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>', "application/xml",
                            depth="1", expect=(207,))
        return sorted(set(re.findall(r"<href>[^<]*/([^/<]+\.ics)</href>", text)))

    def writer(self, stop, written):
        i = 0
        while not stop.is_set():
            self.curl("PUT", f"/{self.USERNAME}/calendar/live-{i}.ics", self.event(f"live-{i}", f"live {i}"),
                      "text/calendar", expect=(201,))
            written.append(f"live-{i}.ics")
            i += 1

    def assert_restored_writes(self, before, written):
        # A live backup of a directory written item by item: every item the backup holds is
        # whole, and it holds every item written before it began.
        have = [h for h in self.hrefs("calendar") if h.startswith("live-")]
        self.assertLessEqual(set(written[:before]), set(have))
        self.assertLess(len(have), len(written), "writes after the backup cannot be in it")
        for h in have:
            _, text = self.curl("GET", f"/{self.USERNAME}/calendar/{h}", expect=(200,))
            self.assertTrue(text.startswith("BEGIN:VCALENDAR") and text.rstrip().endswith("END:VCALENDAR"), text)
            self.assertIn(f"UID:{h[:-4]}", text)

    def calendar_color(self):
        _, text = self.curl("PROPFIND", f"/{self.USERNAME}/calendar/", '<?xml version="1.0"?>'
                            '<propfind xmlns="DAV:" xmlns:I="http://apple.com/ns/ical/"><prop><I:calendar-color/>'
                            '</prop></propfind>', "application/xml", depth="0", expect=(207,))
        m = re.search(r"calendar-color[^>]*>([^<]+)<", text)
        return m and m.group(1)

    def assert_migrated(self):
        self.assertEqual(self.calendar_color(), "#3465a4ff")

    def assert_not_migrated(self):
        self.assertIsNone(self.calendar_color())


class RedisOnSystemd(AppCase, unittest.TestCase):
    """Debian's redis-server under bartld@redis, spoken to with redis-cli."""

    APP, PACKAGES, USER, COMM, DEBIAN_UNIT = "redis", ("redis-server",), "redis", "redis-server", "redis-server.service"
    PORT, STATE, BINARY = 6379, "/var/lib/redis/data", "/usr/bin/redis-server"
    ENGINE, NEWER = "7.0.15", "7.2.0"
    SCRATCH = "temp-4242.rdb"
    # pre_backup's last words: it made a fresh dump.rdb for this backup.
    READY_LOG, BACKUP_HOOK_LOG = "Ready to accept connections", "dump.rdb saved for the manual backup"
    BULK = 200_000

    def version_line(self, version):
        return f"Redis server v={version} sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=0"

    def cli(self, *args):
        return self.c.run("redis-cli", *args).stdout.strip()

    def answers(self):
        return self.c.run("redis-cli", "ping", check=False).stdout.strip() == "PONG"

    def prepare_app(self):
        pass

    def write_data(self):
        self.assertEqual(self.cli("HSET", "note:1", "text", "written by 7.0.15"), "1")
        self.assertEqual(self.cli("SET", "greeting", "hello"), "OK")
        # Enough data that a save takes a moment and a load shows LOADING.
        t0 = time.monotonic()
        self.cli("EVAL", f"for i = 1, {self.BULK} do redis.call('SET', 'k:' .. i, redis.sha1hex(tostring(i))) end",
                 "0")
        log(f"redis: {self.BULK} keys in {time.monotonic() - t0:.1f} s")

    def assert_data(self):
        self.assertEqual(self.cli("HGET", "note:1", "text"), "written by 7.0.15")
        self.assertEqual(self.cli("GET", "greeting"), "hello")
        self.assertEqual(self.cli("EVAL", "return #redis.call('KEYS', 'k:*')", "0"), str(self.BULK))
        self.assertEqual(self.cli("GET", f"k:{self.BULK}"),
                         self.cli("EVAL", f"return redis.sha1hex('{self.BULK}')", "0"))

    def writer(self, stop, written):
        i = 0
        while not stop.is_set():
            i += 1
            self.assertEqual(self.cli("SET", f"w:{i}", str(i)), "OK")
            written.append(i)

    def assert_restored_writes(self, before, written):
        # The backup holds BGSAVE's snapshot, taken after it began: a point in time, so the
        # sequential writes it holds are exactly the first M, with M at least what was written
        # before the backup started and less than all.
        have = sorted(int(k[2:]) for k in self.cli("--scan", "--pattern", "w:*").split())
        self.assertTrue(have, "no live write restored")
        self.assertEqual(have, list(range(1, len(have) + 1)), "the restored writes are not a point in time")
        self.assertGreaterEqual(len(have), before)
        self.assertLess(len(have), len(written))

    def assert_migrated(self):
        self.assertEqual(self.cli("HGET", "note:1", "schema"), "2")
        self.assertIn("1 note(s) migrated", self.journal())

    def assert_not_migrated(self):
        self.assertEqual(self.cli("HGET", "note:1", "schema"), "")


if __name__ == "__main__":
    if os.environ.get("BARTL_SYSTEM_APPS") != "1":
        print("SKIP: set BARTL_SYSTEM_APPS=1 to run the real-app system tests (minutes; tests/system/README.md)")
        raise SystemExit(77)
    try:
        nspawn.ensure_tools()
    except unittest.SkipTest as e:
        print(f"SKIP: {e}", flush=True)
        raise SystemExit(77)
    prog = unittest.main(verbosity=2, exit=False)
    raise SystemExit(0 if prog.result.wasSuccessful() else 1)
