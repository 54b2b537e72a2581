#!/usr/bin/python3
"""D-Bus interface and bartlctl (issue 4): a private system-type dbus-daemon with the bus policy
under test, real bartld serving the example notes app, driven through bartlctl and busctl."""
import json
import os
import shutil
import subprocess
import time
import unittest
import xml.etree.ElementTree as ET

from bartltest import (EXIT_DOWNGRADE, DBUS_POLICY, EXIT_FOREIGN, EXIT_USAGE, SOURCE_ROOT, WRAPPER, PrivateBus, StackTest,
                       bartlctl, busctl, edit_config, scaled)

EXIT_NOT_RUNNING, EXIT_DENIED = 3, 4
OBJECT = "/app/bartl/Instance1"
IFACE = "app.bartl.Instance1"


class DBus(StackTest):
    def setUp(self):
        super().setUp()
        self.bus = PrivateBus()
        self.addCleanup(self.bus.close)

    def serve(self, name=None, root=None):
        s = self.stack(root=root)
        if name:
            edit_config(s.config, {"app.name": json.dumps(name)})
            os.remove(os.path.join(s.store, "bartl-store.json"))  # it was made for app "notes"
            s.init_store()
        s.start(extra_env=self.bus.env())
        s.wait_ready()
        return s

    def ctl(self, *args, ok=True, **kw):
        r = bartlctl(*args, bus=self.bus, **kw)
        if ok:
            self.assertEqual(r.returncode, 0, f"bartlctl {args}: {r.stdout}{r.stderr}")
        return r

    def test_status_says_last_success_and_failure_apart_and_what_is_known_when_not_running(self):
        # Issue "real apps" item 8: after a failure, status showed the failed attempt and no
        # last success; on a restored host it showed another host's backup as its own; a
        # stopped unit showed only "not running".
        s = self.serve()
        self.ctl("backup", "--wait")
        good = s.backups()[0]
        os.chmod(s.store, 0o500)  # root ignores it: break the store another way
        os.chmod(s.store, 0o755)
        shutil.move(s.store, s.store + ".away")
        self.ctl("backup", "--wait", ok=False)
        shutil.move(s.store + ".away", s.store)
        st = json.loads(self.ctl("status", "--json").stdout)
        self.assertEqual(st["last_success"]["id"], good["id"])
        self.assertEqual(st["last_success"]["host"], good["host"])
        self.assertIsNotNone(st["last_failure"])
        self.assertIn("does not exist", st["last_failure"]["error"])
        text = self.ctl("status").stdout
        self.assertIn(f"Last backup: {good['id']} at", text)
        self.assertIn("Last failure:", text)
        # After a restart, the last success comes from the store: this state's newest.
        s.stop()
        s.start(extra_env=self.bus.env())
        s.wait_ready()
        st = json.loads(self.ctl("status", "--json").stdout)
        deadline = time.monotonic() + scaled(10)
        while st["last_success"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
            st = json.loads(self.ctl("status", "--json").stdout)
        self.assertEqual(st["last_success"]["id"], good["id"])
        # A disaster and a restore: the restored state has no backup of its own yet.
        s.stop()
        shutil.rmtree(s.state)
        shutil.rmtree(s.bartl_dir)
        s.start(extra_env=self.bus.env())
        s.wait_ready()
        time.sleep(0.5)  # give the store lookup its chance to (wrongly) fill it in
        st = json.loads(self.ctl("status", "--json").stdout)
        self.assertIsNone(st["last_success"])
        self.assertIn(f"none of this state yet (it was restored from backup {good['id']}", self.ctl("status").stdout)
        # Not running: what the marker says (systemd and the journal are not there in this test).
        s.stop()
        r = self.ctl("-i", "notes", "status", "-c", s.config, ok=False)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("× notes - not running", r.stdout)
        self.assertIn("is not running", r.stderr)
        self.assertIn(f"State: 1.0.0 (state ID {s.marker()['state_id']}, origin restore:{good['id']}", r.stdout)
        j = json.loads(self.ctl("-i", "notes", "status", "-c", s.config, "--json", ok=False).stdout)
        self.assertEqual((j["running"], j["state"]["version"], j["state"]["origin"]),
                         (False, "1.0.0", f"restore:{good['id']}"))

    def wait_status(self, until, what, s):
        deadline = time.monotonic() + scaled(10)
        st = json.loads(self.ctl("status", "--json").stdout)
        while not until(st):
            self.assertLess(time.monotonic(), deadline, f"{what}: {st}\n{s.read_log()}")
            time.sleep(0.1)
            st = json.loads(self.ctl("status", "--json").stdout)
        return st

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("mount"), "needs root to mount a small tmpfs store")
    def test_a_full_store_is_a_store_problem_until_a_backup_fits_again(self):
        # Found by a hostile operator: a backup that filled the store's disk was only a failed
        # backup; status showed the store as fine, and a fence look (a read) would have said so.
        s = self.stack()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", s.store], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", s.store], stderr=subprocess.DEVNULL)
        s.init_store()
        edit_config(s.config, {"backup.fence_check": '"1s"'})
        s.start(extra_env=self.bus.env())
        s.wait_ready()
        s.post_note(os.urandom(96 * 1024).hex())  # does not compress into 64 KiB
        r = self.ctl("backup", "--wait", ok=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("No space left on device", r.stderr)
        self.assertIn(f"(the file system at {s.store} holds 64 KiB, ", r.stderr)
        st = json.loads(self.ctl("status", "--json").stdout)
        self.assertIsNotNone(st["store_problem"], st)
        self.assertIn("No space left on device", st["store_problem"]["error"])
        time.sleep(scaled(2.5))  # fence looks read the store fine meanwhile
        self.assertIsNotNone(json.loads(self.ctl("status", "--json").stdout)["store_problem"])
        self.assertTrue(self.ctl("status").stdout.startswith("×"))
        self.assertRegex(self.ctl("instances").stdout, r"notes .* store unreachable for \d+s\n")
        self.assertEqual([n for n in os.listdir(s.store) if n.endswith(".json") and n != "bartl-store.json"], [])
        subprocess.run(["mount", "-o", "remount,size=4m", s.store], check=True)
        self.ctl("backup", "--wait")
        self.assertIsNone(json.loads(self.ctl("status", "--json").stdout)["store_problem"])

    def test_status_shows_a_store_the_fence_watch_cannot_read_and_since_when(self):
        # Found on a real systemd: the fence watch warned in the journal that the store could
        # not be read, but status (and its --json, and instances) showed nothing.
        s = self.stack()
        edit_config(s.config, {"backup.fence_check": '"1s"'})
        s.start(extra_env=self.bus.env())
        s.wait_ready()
        self.ctl("backup", "--wait")
        self.assertIsNone(json.loads(self.ctl("status", "--json").stdout)["store_problem"])
        t0 = time.time()
        shutil.move(s.store, s.store + ".away")  # the backup disk is unmounted
        st = self.wait_status(lambda st: st["store_problem"], "no store problem shown", s)
        self.assertIn("does not exist", st["store_problem"]["error"])
        self.assertIn(s.store, st["store_problem"]["error"])
        since = time.mktime(time.strptime(st["store_problem"]["since"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        self.assertGreaterEqual(since, int(t0) - 1)
        self.assertLessEqual(since, time.time() + 1)
        # The outage's start stays while later looks fail again.
        time.sleep(scaled(2.5))
        self.assertEqual(json.loads(self.ctl("status", "--json").stdout)["store_problem"]["since"],
                         st["store_problem"]["since"])
        text = self.ctl("status").stdout
        self.assertTrue(text.startswith("×"), text)
        self.assertRegex(text, r"\n {12} unreachable since " + st["store_problem"]["since"] + r" \(.* ago\): store ")
        listed = self.ctl("instances").stdout
        self.assertRegex(listed, r"notes .* store unreachable for \d+s\n", listed)
        shutil.move(s.store + ".away", s.store)
        st = self.wait_status(lambda st: st["store_problem"] is None, "the store problem stayed", s)
        self.assertTrue(self.ctl("status").stdout.startswith("●"))
        self.assertNotIn("unreachable", self.ctl("instances").stdout)
        self.assertEqual(s.stop(), 0)

    def test_a_backup_failing_on_the_store_shows_it_until_a_backup_succeeds(self):
        # With the fence watch off ("0"), the failed backup is what finds the store problem.
        s = self.stack()
        edit_config(s.config, {"backup.fence_check": '"0"'})
        s.start(extra_env=self.bus.env())
        s.wait_ready()
        shutil.move(s.store, s.store + ".away")
        self.ctl("backup", "--wait", ok=False)
        st = json.loads(self.ctl("status", "--json").stdout)
        self.assertIsNotNone(st["store_problem"], st)
        self.assertIn("does not exist", st["store_problem"]["error"])
        shutil.move(s.store + ".away", s.store)
        self.ctl("backup", "--wait")
        self.assertIsNone(json.loads(self.ctl("status", "--json").stdout)["store_problem"])
        # A failure that is not the store's (a failing hook) shows no store problem.
        self.assertEqual(s.stop(), 0)
        edit_config(s.config, {"hooks.pre_backup": '["/bin/false"]'})
        s.start(extra_env=self.bus.env())
        s.wait_ready()
        self.ctl("backup", "--wait", ok=False)
        self.assertIsNone(json.loads(self.ctl("status", "--json").stdout)["store_problem"])
        self.assertEqual(s.stop(), 0)

    def test_status_backup_and_read_verbs(self):
        s = self.serve()
        st = json.loads(self.ctl("status", "--json").stdout)
        self.assertEqual((st["instance"], st["phase"], st["engine_version"], st["state_version"], st["state_origin"],
                          st["last_decision"], st["backup_job"], st["last_backup"], st["last_success"],
                          st["last_failure"], st["fenced"]),
                         ("notes", "serving", "1.0.0", "1.0.0", "init", "init -> take_over -> serve", None, None, None,
                          None, None))
        self.assertEqual(st["bus_name"], "app.bartl.Instance1.notes")
        self.assertGreater(st["app_pid"], 0)
        self.assertTrue(os.path.exists(f"/proc/{st['app_pid']}"))
        self.assertEqual(st["store"], "file://" + s.store)
        self.assertIsNotNone(st["next_backup"])
        text = self.ctl("status").stdout
        self.assertIn("● notes - serving since", text)
        self.assertIn("engine 1.0.0, state 1.0.0", text)
        self.assertIn("Decision: init (fresh install) -> take over the store -> serve", text)

        # backup --wait: progress lines (from BackupProgress signals) and the result; a second
        # one estimates from the first.
        for n in (1, 2):
            r = self.ctl("backup", "--wait")
            lines = r.stdout.splitlines()
            job = lines[0].split()[1]
            self.assertRegex(job, "^[0-9a-f]{8}$")
            self.assertTrue(any(l.startswith(f"backup {job}: ") for l in lines), r.stdout)
            self.assertEqual(lines[-1], f"backup {job} of notes finished: success")
            self.assertEqual(s.backups()[0]["id"], job)
            self.assertEqual(len(s.backups()), n)
        self.assertIn(" of ~", r.stdout, "the second backup has no estimate from the first")
        st = json.loads(self.ctl("status", "--json").stdout)
        self.assertEqual(st["last_backup"]["id"], job)
        self.assertEqual(st["last_backup"]["result"], "success")
        self.assertEqual(st["last_backup"]["size"], s.backups()[0]["blob"]["size"])

        listed = json.loads(self.ctl("backups", "--json").stdout)
        self.assertEqual([b["id"] for b in listed], [b["id"] for b in s.backups()])
        self.assertEqual([(b["reason"], b["ours"], b["encryption"], b["signer"]) for b in listed],
                         [("manual", True, None, None)] * 2)
        self.assertEqual(listed[0]["writer"], s.marker()["state_id"])
        table = self.ctl("backups").stdout
        self.assertRegex(table, rf"{job} .* no +manual +- +\S+")
        self.assertEqual(listed[0]["blob"], s.backups()[0]["blob"]["name"])
        v = json.loads(self.ctl("verify", "--json").stdout)
        self.assertEqual((v["id"], v["result"]), (job, "ok"))
        r = self.ctl("verify", "deadbeef", ok=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("holds no backup 'deadbeef'", r.stderr)
        hist = json.loads(self.ctl("history", "--json").stdout)
        self.assertEqual([(h["event"], h["to"]) for h in hist], [("init", "1.0.0"), ("takeover", "1.0.0")])
        self.assertIn("plan: serve", self.ctl("plan").stdout)
        plan = json.loads(self.ctl("plan", "--json").stdout)
        self.assertEqual(plan["instance"], "notes")
        self.assertIn("state 1.0.0", plan["plan"])

        # A backup job started without --wait returns its id at once; a second call while it
        # runs returns the same id (busctl shows the D-Bus answer itself).
        r = busctl("call", "app.bartl.Instance1.notes", OBJECT, IFACE, "Backup", bus=self.bus)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout.strip(), r'^s "[0-9a-f]{8}"$')

    def test_failing_start_with_the_bus_name_taken_always_exits(self):
        # Found by tests/system: the D-Bus thread could swallow the stop wake-up and poll
        # forever, so a refused downgrade hung instead of exiting 65 (2 in 400 runs).
        s = self.stack("2.0.0")
        self.assertEqual(s.run("--prepare").returncode, 0)
        s.render("1.0.0")
        # Fewer rounds under a wrapper (valgrind): each is a whole start, ~2 s there.
        for i in range(40 if WRAPPER else 400):
            r = s.run("--prepare", timeout=10, extra_env={**self.bus.env(), "BARTL_LOG_LEVEL": "error"})
            self.assertEqual(r.returncode, EXIT_DOWNGRADE, f"run {i}: {r.stderr}")

    def test_introspection_matches_the_xml(self):
        self.serve()
        r = busctl("--xml-interface", "introspect", "app.bartl.Instance1.notes", OBJECT, bus=self.bus)
        self.assertEqual(r.returncode, 0, r.stderr)

        def members(root):
            iface = [i for i in root.iter("interface") if i.get("name") == IFACE][0]
            out = set()
            for m in iface:
                if m.tag in ("method", "signal"):
                    sig = ",".join(f"{a.get('direction', 'out')}:{a.get('type')}" for a in m.iter("arg"))
                    out.add((m.tag, m.get("name"), sig))
                elif m.tag == "property":
                    out.add((m.tag, m.get("name"), m.get("type") + m.get("access")))
            return out

        source = ET.parse(os.path.join(SOURCE_ROOT, "dbus", "app.bartl.Instance1.xml")).getroot()
        served = ET.fromstring(r.stdout)
        self.assertEqual(members(served), members(source))
        for name in ("Phase", "App", "EngineVersion", "StateVersion", "StateOrigin", "AppPID", "LastDecision",
                     "LastBackup", "NextBackup", "Store"):
            self.assertIn(name, {m[1] for m in members(source)})

    def test_unprivileged_caller_reads_but_cannot_trigger(self):
        s = self.serve()
        for verb in (["backup"], ["backup", "--wait"], ["verify"]):
            r = bartlctl(*verb, bus=self.bus, as_nobody=True)
            self.assertEqual(r.returncode, EXIT_DENIED, f"{verb}: {r.stdout}{r.stderr}")
            self.assertIn("access denied", r.stderr)
        r = busctl("call", "app.bartl.Instance1.notes", OBJECT, IFACE, "Backup", bus=self.bus, as_nobody=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Access denied", r.stderr)
        self.assertEqual(s.backups(), [], "a denied call started a backup")
        for verb in (["status", "--json"], ["backups"], ["history"], ["plan"], ["instances"]):
            r = bartlctl(*verb, bus=self.bus, as_nobody=True)
            self.assertEqual(r.returncode, 0, f"{verb}: {r.stdout}{r.stderr}")
        self.assertEqual(json.loads(bartlctl("status", "--json", bus=self.bus, as_nobody=True).stdout)["phase"],
                         "serving")
        # Nobody may take a bartl name either.
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "dbus-send", "--system",
                            "--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
                            "org.freedesktop.DBus.RequestName", "string:app.bartl.Instance1.evil", "uint32:4"],
                           capture_output=True, text=True, env={**os.environ, **self.bus.env()})
        self.assertIn("AccessDenied", r.stderr)

    def test_two_instances_and_one_name_per_instance(self):
        self.serve()
        self.serve(name="2nd-notes")
        listed = json.loads(self.ctl("instances", "--json").stdout)
        self.assertEqual([(i["instance"], i["bus_name"], i["phase"]) for i in listed],
                         [("2nd-notes", "app.bartl.Instance1._32nd_2dnotes", "serving"),
                          ("notes", "app.bartl.Instance1.notes", "serving")])
        text = self.ctl("instances").stdout
        self.assertIn("2 instances listed.", text)
        r = self.ctl("status", ok=False)
        self.assertEqual(r.returncode, EXIT_USAGE)
        self.assertIn("choose one with -i", r.stderr)
        self.assertEqual(json.loads(self.ctl("-i", "2nd-notes", "status", "--json").stdout)["app"], "2nd-notes")
        # A name bartld would refuse is a usage error, not an instance that is not running (3).
        for verb in ("status", "backup", "history"):
            r = self.ctl("-i", "a b", verb, ok=False)
            self.assertEqual(r.returncode, EXIT_USAGE, f"{verb}: {r.stdout}{r.stderr}")
            self.assertIn('invalid instance name "a b": use lowercase letters', r.stderr)
        # A second bartld for "notes" (another root, so not the same lock) cannot take the name.
        dup = self.stack()
        r = dup.run(extra_env=self.bus.env())
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"D-Bus name app\.bartl\.Instance1\.notes .* is owned by PID \d+")

    def test_daemon_gone_and_no_bus(self):
        s = self.serve()
        s.stop()
        for args in (["status"], ["-i", "notes", "status"], ["backup", "--wait"], ["instances", "--json"]):
            r = self.ctl(*args, ok=False)
            if args[0] == "instances":
                self.assertEqual(json.loads(r.stdout), [])
                continue
            self.assertEqual(r.returncode, EXIT_NOT_RUNNING, f"{args}: {r.stdout}{r.stderr}")
            # status -i NAME says what is known without the daemon, on stdout (as systemctl).
            self.assertRegex(r.stdout if args == ["-i", "notes", "status"] else r.stderr,
                             "is not running|no bartld is running|notes - not running")
        no_bus = {"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=" + os.path.join(self.tmp, "no-such-socket")}
        r = bartlctl("status", env=no_bus)
        self.assertEqual(r.returncode, EXIT_NOT_RUNNING)
        # bartld itself serves on without a bus (containers), saying so.
        s.start(extra_env=no_bus)
        s.wait_ready()
        self.assertEqual(s.get("/health")[0], 200)
        self.assertIn("no D-Bus system bus", s.read_log())

    def test_backups_marks_as_way_back_only_the_pre_migration_backups_retention_keeps(self):
        # Issue "real apps": `bartlctl backups` marked every pre-migration backup "way back",
        # also those beyond keep_pre_migration that retention may prune.
        s = self.serve()
        self.ctl("backup", "--wait")
        s.stop()
        s.render("2.0.0", **{"backup.keep_pre_migration": "1"})
        s.start(extra_env=self.bus.env())
        s.wait_ready()
        [pre] = [b for b in s.backups() if b["reason"] == "pre-migration"]
        listed = {b["id"]: b for b in json.loads(self.ctl("backups", "--json").stdout)}
        self.assertEqual({i: b["way_back"] for i, b in listed.items()},
                         {i: i == pre["id"] for i in listed}, listed)
        [row] = [l for l in self.ctl("backups").stdout.splitlines() if l.startswith(pre["id"])]
        self.assertTrue(row.endswith(", way back"), row)
        s.stop()
        # keep_pre_migration = 0: retention no longer keeps it as the way back; nor says so.
        s.render("2.0.0", **{"backup.keep_pre_migration": "0"})
        s.start(extra_env=self.bus.env())
        s.wait_ready()
        listed = json.loads(self.ctl("backups", "--json").stdout)
        self.assertEqual([b["way_back"] for b in listed], [False] * len(listed), listed)
        self.assertNotIn("way back", self.ctl("backups").stdout)

    def test_backups_of_a_location_that_is_no_store_say_so_not_zero_backups(self):
        # Hostile-operator run: an emptied or mistyped location listed "0 backups".
        s = self.serve()
        shutil.move(s.store, s.store + ".away")  # the backup disk not mounted: an empty directory
        os.makedirs(s.store)
        r = self.ctl("backups", ok=False)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("bartl-store.json", r.stderr)
        self.assertIn("--init-store", r.stderr)
        self.assertNotIn("0 backups", r.stdout)
        # The store back: an empty list is an empty list.
        os.rmdir(s.store)
        shutil.move(s.store + ".away", s.store)
        r = self.ctl("backups")
        self.assertIn("0 backups.", r.stdout)

    def test_adopt_foreign_data_then_serve_it(self):
        s = self.serve()
        s.post_note("kept through adoption")
        s.stop()
        shutil.rmtree(s.bartl_dir)  # the data now looks like an install bartl did not create
        self.assertEqual(s.run(extra_env=self.bus.env()).returncode, EXIT_FOREIGN)
        r = bartlctl("adopt", "1.0.0", "-c", s.config)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(s.state, r.stdout)
        self.assertIn("Adopted as state 1.0.0", r.stdout)
        self.assertEqual((s.marker()["origin"], s.marker()["version"]), ("adopt", "1.0.0"))
        r = bartlctl("adopt", "1.0.0", "-c", s.config)
        self.assertEqual(r.returncode, 1)
        self.assertIn("already has a state marker", r.stderr)
        s.start(extra_env=self.bus.env())
        s.wait_ready()
        self.assertIn("kept through adoption", json.dumps(s.get("/notes")[1]))
        st = json.loads(self.ctl("status", "--json").stdout)
        # The adopted state claims the store from the state bartl had before (generation 2).
        self.assertEqual((st["state_origin"], st["last_decision"]), ("adopt", "take_over -> serve"))
        self.assertEqual([h["event"] for h in json.loads(self.ctl("history", "--json").stdout)],
                         ["adopt", "takeover"])
        self.assertIn("writer generation 2", json.loads(self.ctl("history", "--json").stdout)[1]["detail"])
        r = bartlctl("adopt", "1.0.0", "-c", s.config)
        self.assertEqual(r.returncode, 1, "adopt ran while bartld holds the instance")

    def test_restore_from_pins_an_older_backup(self):
        s = self.serve()
        s.post_note("first")
        first = self.ctl("backup", "--wait").stdout.splitlines()[0].split()[1]
        s.post_note("second")
        self.ctl("backup", "--wait")
        s.stop()
        r = bartlctl("restore-from", "nosuchid", "-c", s.config)
        self.assertEqual(r.returncode, EXIT_USAGE)  # as `bartld --restore-from nosuchid`
        self.assertIn(f"no backup nosuchid of notes in store file://{s.store}; newest: ", r.stderr)
        self.assertNotIn("--restore-from", r.stderr)
        self.assertIn(first, r.stderr)  # it names the newest backups
        r = bartlctl("restore-from", first, "-c", s.config, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["pin"], first)
        shutil.rmtree(s.state)  # disaster: the state is gone
        os.remove(os.path.join(s.bartl_dir, "marker.json"))
        # A slow post_restore hook keeps the restore running long enough to watch it on the bus:
        # the name is taken before the loop, so status shows the phase while it runs.
        edit_config(s.config, {"hooks.post_restore": f'["/bin/sleep", "{scaled(1.5)}"]'})
        s.start(extra_env=self.bus.env())
        phases = set()
        deadline = time.monotonic() + scaled(30)
        while s.notify.first_time("READY=1") is None and time.monotonic() < deadline:
            r = self.ctl("-i", "notes", "status", "--json", ok=False)
            if r.returncode == 0:
                phases.add(json.loads(r.stdout)["phase"])
            time.sleep(0.1)
        s.wait_ready()
        self.assertIn("restoring", phases)
        st = json.loads(self.ctl("status", "--json").stdout)
        self.assertEqual((st["state_origin"], st["last_decision"]), (f"restore:{first}", "restore -> take_over -> serve"))
        notes = json.dumps(s.get("/notes")[1])
        self.assertIn("first", notes)
        self.assertNotIn("second", notes)
        self.assertFalse(os.path.exists(os.path.join(s.bartl_dir, "restore-from")), "the pin outlived its restore")
        # --clear removes a pin again.
        self.assertEqual(bartlctl("restore-from", first, "-c", s.config).returncode, 0)
        self.assertEqual(bartlctl("restore-from", "--clear", "-c", s.config).returncode, 0)
        self.assertFalse(os.path.exists(os.path.join(s.bartl_dir, "restore-from")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
