#!/usr/bin/python3
"""The startup decision end to end: init, reboot, migrate, downgrade, foreign, partial, config errors."""
import json
import os
import re
import shutil
import subprocess
import time
import unittest

from bartltest import (EXIT_CONFIG, EXIT_DOWNGRADE, EXIT_FOREIGN, EXIT_RUNTIME, EXIT_USAGE, BARTLCTL, BARTLD,
                       StackTest, command, edit_config, scaled, tree_digest)


class Lifecycle(StackTest):
    def test_fresh_install_then_reboot_serves_same_state(self):
        s = self.stack("1.0.0")
        self.assertIn("plan: init (fresh install) -> take over the store -> serve", s.run("--plan").stdout)
        self.assertFalse(os.path.exists(s.bartl_dir), "--plan must change nothing")
        s.start()
        s.wait_ready()
        self.assertEqual(s.get("/health")[1]["version"], "1.0.0")
        s.post_note("first")
        self.assertIn("Serving notes 1.0.0 (state 1.0.0)", s.notify.statuses())
        self.assertTrue(any(st.startswith("Initializing notes 1.0.0") for st in s.notify.statuses()), s.notify.statuses())
        self.assertEqual(s.stop(), 0)
        m = s.marker()
        self.assertEqual((m["version"], m["origin"], m["app"]), ("1.0.0", "init", "notes"))
        self.assertFalse(os.path.exists(os.path.join(s.bartl_dir, "intent.json")))
        # Reboot: state present, versions equal -> serve, data kept, marker unchanged.
        self.assertIn("plan: serve", s.run("--plan").stdout)
        s.start()
        s.wait_ready()
        self.assertEqual([n["text"] for n in s.get("/notes")[1]], ["first"])
        self.assertEqual(s.marker()["history"], m["history"])

    def test_upgrade_migrates_with_data_and_history(self):
        s = self.stack("1.0.0")
        s.start(); s.wait_ready(); s.post_note("kept"); s.stop()
        s.render("2.0.0")
        self.assertIn("plan: back up (pre-migration) -> migrate 1.0.0 -> 2.0.0 -> serve", s.run("--plan").stdout)
        s.start()
        s.wait_ready()
        notes = s.get("/notes")[1]
        self.assertEqual([(n["text"], n["tags"]) for n in notes], [("kept", [])])
        s.stop()
        m = s.marker()
        self.assertEqual(m["version"], "2.0.0")
        self.assertEqual(m["origin"], "init")
        events = [(h["event"], h["from"], h["to"]) for h in m["history"]]
        self.assertIn(("migrate", "1.0.0", "2.0.0"), events)
        # before_migrate = true: a backup of the 1.0.0 state exists.
        self.assertEqual([b["version"] for b in s.backups()], ["1.0.0"])

    def test_migration_runs_every_step_in_order_and_ends_at_engine(self):
        s = self.stack("1.0.0")
        mig = os.path.join(self.tmp, "migrations")
        os.makedirs(mig)
        log = os.path.join(self.tmp, "steps.log")
        # "1.1.0-a" is the older VERSION-slug naming; "1.2.0-rc.1" names a pre-release; the
        # pre-release engine 2.0.0-beta.1 runs the 2.0.0 script (it ships the 2.0.0 schema).
        for name in ["1.1.0-a", "1.10.0", "1.2.0-rc.1", "2.0.0", "3.0.0-too-new", "0.9.0-old"]:
            p = os.path.join(mig, name)
            with open(p, "w") as f:
                f.write(f"#!/bin/sh\necho \"{name} $BARTL_STATE_VERSION $BARTL_MIGRATION_VERSION\" >> {log}\n")
            os.chmod(p, 0o755)
        s.run("--prepare")
        s.render("2.0.0", **{"hooks.migrations": json.dumps(mig), "app.version": '"2.0.0-beta.1"',
                                     "backup.before_migrate": "false"})
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(log) as f:
            self.assertEqual(f.read().split("\n")[:-1],
                             ["1.1.0-a 1.0.0 1.1.0", "1.2.0-rc.1 1.1.0 1.2.0-rc.1", "1.10.0 1.2.0-rc.1 1.10.0",
                              "2.0.0 1.10.0 2.0.0"])
        m = s.marker()
        self.assertEqual(m["version"], "2.0.0-beta.1")
        self.assertEqual([a["name"] for a in m["migrations"]], ["1.1.0-a", "1.2.0-rc.1", "1.10.0", "2.0.0"])
        self.assertTrue(all(a["engine"] == "2.0.0-beta.1" and len(a["sha256"]) == 64 for a in m["migrations"]))
        # The release engine runs nothing twice.
        s.render("2.0.0", **{"hooks.migrations": json.dumps(mig), "backup.before_migrate": "false"})
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(log) as f:
            self.assertEqual(len(f.read().split("\n")[:-1]), 4)
        self.assertEqual(s.marker()["version"], "2.0.0")

    def test_a_changed_applied_migration_is_reported_and_not_run_again(self):
        s = self.stack("1.0.0")
        s.run("--prepare")
        mig = os.path.join(self.tmp, "migrations")
        os.makedirs(mig)
        runs = os.path.join(self.tmp, "runs")
        script = os.path.join(mig, "2.0.0_add-tags")
        with open(script, "w") as f:
            f.write(f"#!/bin/sh\necho v1 >> {runs}\n")
        os.chmod(script, 0o755)
        s.render("2.0.0", **{"hooks.migrations": json.dumps(mig), "backup.before_migrate": "false"})
        self.assertEqual(s.run("--prepare").returncode, 0)
        [applied] = s.marker()["migrations"]
        with open(script, "w") as f:  # edited after it ran (Flyway's "validate" case)
            f.write(f"#!/bin/sh\necho v2 >> {runs}\n")
        plan = s.run("--plan").stdout
        self.assertIn("warning: migration 2.0.0_add-tags changed since it was applied", plan)
        self.assertIn(applied["sha256"][:12], plan)
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("migration 2.0.0_add-tags changed since it was applied", r.stderr)
        with open(runs) as f:
            self.assertEqual(f.read().split(), ["v1"])

    def test_an_install_of_an_older_bartl_is_upgraded_without_an_operator_step(self):
        # A marker of format 1 (bartl before state identity) over a store without
        # bartl-store.json that holds this app's backups: the first start binds the state to a
        # state ID and serves without touching the store; the first backup gives the store its
        # identity and claims it.
        s = self.stack("1.0.0")
        s.start(); s.wait_ready(); s.post_note("from the old days"); s.stop()
        self.assertEqual(s.run("--backup").returncode, 0)
        os.remove(os.path.join(s.store, "bartl-store.json"))
        for n in os.listdir(s.store):
            if n.endswith(".tar.zst.json"):  # an old sidecar: no reason, writer, migrations
                with open(os.path.join(s.store, n)) as f:
                    side = json.load(f)
                for k in ("reason", "writer", "migrations"):
                    side.pop(k)
                with open(os.path.join(s.store, n), "w") as f:
                    json.dump(side, f)
        m = s.marker()
        old = {"format": 1, "app": m["app"], "version": m["version"], "origin": m["origin"],
               "state_paths": [c["name"] for c in m["components"]], "history": m["history"][:1]}
        with open(os.path.join(s.bartl_dir, "marker.json"), "w") as f:
            json.dump(old, f)
        subprocess.run(["setfattr", "-x", "user.bartl.state_id", s.state], check=True)
        self.assertIn("plan: record state identity -> serve", s.run("--plan").stdout)
        s.start(); s.wait_ready()
        self.assertIn("from the old days", json.dumps(s.get("/notes")[1]))
        s.stop()
        m = s.marker()
        self.assertEqual(m["format"], 2)
        self.assertEqual(len(m["state_id"]), 32)
        self.assertEqual(m["writer"]["deferred"], "claim")
        self.assertEqual(m["history"][-1]["event"], "upgrade")
        got = subprocess.run(["getfattr", "--only-values", "-n", "user.bartl.state_id", s.state],
                             capture_output=True, text=True, check=True).stdout
        self.assertEqual(got, m["state_id"])
        self.assertFalse(os.path.exists(os.path.join(s.store, "bartl-store.json")), "a reboot touched the store")
        r = s.run("--backup")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(s.store, "bartl-store.json")) as f:
            ident = json.load(f)
        self.assertEqual(ident["writer"]["state_id"], m["state_id"])
        self.assertEqual(s.marker()["writer"]["deferred"], "")
        self.assertEqual(len(s.backups()), 2)

    def test_failing_migration_stops_at_last_completed_step(self):
        s = self.stack("1.0.0")
        s.run("--prepare")
        mig = os.path.join(self.tmp, "migrations")
        os.makedirs(mig)
        for name, body in [("1.5.0", "exit 0"), ("2.0.0", "echo 'schema change exploded' >&2; exit 3")]:
            p = os.path.join(mig, name)
            with open(p, "w") as f:
                f.write(f"#!/bin/sh\n{body}\n")
            os.chmod(p, 0o755)
        s.render("2.0.0", **{"hooks.migrations": json.dumps(mig)})
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_RUNTIME)
        self.assertIn("schema change exploded", r.stderr)
        self.assertIn("exited with status 3", r.stderr)
        self.assertEqual(s.marker()["version"], "1.5.0")

    def test_downgrade_refused_and_nothing_touched(self):
        s = self.stack("2.0.0")
        s.start(); s.wait_ready(); s.post_note("v2 data", tags=["x"]); s.stop()
        before = (tree_digest(s.state), s.marker())
        s.render("1.0.0")
        self.assertIn("plan: refuse: downgrade", s.run("--plan").stdout)
        s.start()
        self.assertEqual(s.proc.wait(scaled(30)), EXIT_DOWNGRADE)
        self.assertIsNone(s.notify.first_time("READY=1"))
        log = s.read_log()
        self.assertIn("state 2.0.0 of notes is newer than engine 1.0.0", log)
        self.assertIn("--restore-from", log)
        self.assertEqual((tree_digest(s.state), s.marker()), before)

    def test_downgrade_refusal_names_the_pre_migration_backup_and_its_way_back_works(self):
        s = self.stack("1.0.0")
        self.assertEqual(s.run("--prepare").returncode, 0)
        s.render("2.0.0")
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        [b] = s.backups()
        self.assertIn({"event": "backup", "from": "1.0.0", "to": "1.0.0", "detail": f"before migration: {b['id']}"},
                      [{k: h[k] for k in ("event", "from", "to", "detail")} for h in s.marker()["history"]])
        s.render("1.0.0")
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_DOWNGRADE, r.stderr)
        # The unit is failed, so bartlctl cannot list backups: the message names the one to use.
        self.assertIn(f"run `bartlctl restore-from -c {s.config} {b['id']}` (or `bartld --config {s.config} "
                      f"--restore-from {b['id']} --prepare`) with the backup taken before the migration: {b['id']} "
                      "(state 1.0.0)", r.stderr)
        self.assertNotIn("`bartlctl backups` lists", r.stderr)
        # Following it: the state and marker aside, the named backup restored by the old engine.
        aside = os.path.join(self.tmp, "aside")
        os.makedirs(aside)
        shutil.move(s.state, aside)
        shutil.move(os.path.join(s.bartl_dir, "marker.json"), aside)
        r = s.run("--restore-from", b["id"], "--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual((s.marker()["version"], s.marker()["origin"]), ("1.0.0", "restore:" + b["id"]))

    def test_foreign_state_refused_untouched(self):
        s = self.stack("1.0.0")
        os.makedirs(s.state)
        with open(os.path.join(s.state, "notes.db"), "w") as f:
            f.write("someone else's data")
        before = tree_digest(s.state)
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_FOREIGN, r.stderr)
        self.assertIn(f"run `bartlctl adopt -c {s.config} VERSION`", r.stderr)
        self.assertIn(s.state, r.stderr)
        self.assertEqual(tree_digest(s.state), before)

    def test_lost_marker_over_bartls_own_state_names_its_state_id_and_both_ways(self):
        s = self.stack("1.0.0")
        self.assertEqual(s.run("--prepare").returncode, 0)
        state_id = s.marker()["state_id"]
        shutil.move(os.path.join(s.bartl_dir, "marker.json"), os.path.join(self.tmp, "marker.json"))
        before = tree_digest(s.state)
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_FOREIGN, r.stderr)
        self.assertIn(f"This looks like bartl's own state whose marker is lost: it carries state ID {state_id}, but "
                      f"{os.path.join(s.bartl_dir, 'marker.json')} does not exist", r.stderr)
        self.assertIn(f"run `bartlctl adopt -c {s.config} VERSION` with the version of the data", r.stderr)
        self.assertIn(f"move the state paths ({s.state}) aside and start it again: with no state it restores the "
                      "newest backup from the store", r.stderr)
        self.assertNotIn("bartl did not create this data", r.stderr)
        self.assertEqual(tree_digest(s.state), before)
        self.assertFalse(os.path.exists(os.path.join(s.bartl_dir, "marker.json")))

    def test_a_damaged_marker_over_bartls_own_state_names_it_and_adopt_takes_the_data(self):
        # Found by a hostile operator: a truncated marker over bartl's own state was refused as
        # data "bartl did not create", and the adopt it advised refused too ("already has a
        # state marker ... its state is bartl's, nothing to adopt").
        s = self.stack("1.0.0")
        self.assertEqual(s.run("--prepare").returncode, 0)
        state_id = s.marker()["state_id"]
        marker = os.path.join(s.bartl_dir, "marker.json")
        with open(marker, "r+") as f:
            f.truncate(100)
        before = tree_digest(s.state)
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_FOREIGN, r.stderr)
        self.assertIn(f"This looks like bartl's own state whose marker is damaged: it carries state ID {state_id}, "
                      f"but {marker} does not parse", r.stderr)
        self.assertNotIn("bartl did not create this data", r.stderr)
        self.assertIn(f"run `bartlctl adopt -c {s.config} VERSION` with the version of the data", r.stderr)
        self.assertEqual(tree_digest(s.state), before)
        with open(marker, "rb") as f:
            damaged = f.read()
        r = subprocess.run(command(BARTLCTL, "adopt", "-c", s.config, "1.0.0"), capture_output=True, text=True,
                           env=s.env(notify=False), timeout=scaled(60))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        aside = [n for n in os.listdir(s.bartl_dir) if n.startswith("marker.json.stale-")]
        self.assertEqual(len(aside), 1, os.listdir(s.bartl_dir))
        with open(os.path.join(s.bartl_dir, aside[0]), "rb") as f:
            self.assertEqual(f.read(), damaged, "the damaged marker was not kept as it was")
        self.assertEqual(s.marker()["origin"], "adopt")
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("decision: serve", r.stderr)
        self.assertEqual(tree_digest(s.state), before)

    def test_a_second_instance_on_the_same_state_path_is_a_config_error_and_adopt_refuses(self):
        # Found by a hostile operator: the second instance's refusal advised `bartlctl adopt`,
        # which re-bound the first instance's live state to the second (the first then
        # refused its own data as foreign, exit 66).
        s = self.stack("1.0.0")
        self.assertEqual(s.run("--prepare").returncode, 0)
        owner = s.marker()["state_id"]
        before = tree_digest(s.state)
        dup = os.path.join(self.tmp, "dup.toml")
        shutil.copy(s.config, dup)
        edit_config(dup, {"state.bartl_dir": json.dumps(os.path.join(os.path.dirname(s.bartl_dir), "dup")),
                          "backup.store": json.dumps("file://" + os.path.join(self.tmp, "dup-store"))})
        r = subprocess.run(command(BARTLD, "--config", dup, "--prepare"), capture_output=True, text=True,
                           env=s.env(notify=False), timeout=scaled(60))
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        self.assertRegex(r.stderr, re.escape(dup) + r":\d+:\d+: state path " + re.escape(s.state) +
                         r" holds the state of instance notes \(marker " +
                         re.escape(os.path.join(s.bartl_dir, "marker.json")) + rf"\) \(state ID {owner}\)")
        [error] = [line for line in r.stderr.splitlines() if line.startswith("bartld: error: ")]
        self.assertNotIn("adopt VERSION", error)
        r = subprocess.run(command(BARTLCTL, "adopt", "-c", dup, "1.0.0"), capture_output=True, text=True,
                           env=s.env(notify=False), timeout=scaled(60), stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stdout + r.stderr)
        self.assertIn("two instances cannot share a state path, nothing adopted", r.stderr)
        self.assertEqual(tree_digest(s.state), before)
        # The first instance still owns and serves its state.
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(s.marker()["state_id"], owner)

    def test_a_second_instance_on_the_same_store_does_not_fence_the_first(self):
        # Found by a hostile operator: a second instance given the first one's store (same app)
        # initialised and took the store over, fencing the first instance on the same host.
        s = self.stack("1.0.0")
        self.assertEqual(s.run("--prepare").returncode, 0)
        writer = json.load(open(os.path.join(s.store, "bartl-store.json")))["writer"]
        other = os.path.join(self.tmp, "other.toml")
        shutil.copy(s.config, other)
        edit_config(other, {"state.bartl_dir": json.dumps(os.path.join(os.path.dirname(s.bartl_dir), "other")),
                            "state.paths": json.dumps([os.path.join(self.tmp, "other-state", "data")])})
        r = subprocess.run(command(BARTLD, "--config", other, "--prepare"), capture_output=True, text=True,
                           env=s.env(notify=False), timeout=scaled(60))
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        self.assertRegex(r.stderr, re.escape(other) + r":\d+:\d+: store file://" + re.escape(s.store) +
                         r" is the store of instance notes \(marker " + re.escape(os.path.join(s.bartl_dir, "marker.json"))
                         + rf"\) on this host \(state ID {writer['state_id']}, .*nothing was taken over")
        self.assertEqual(json.load(open(os.path.join(s.store, "bartl-store.json")))["writer"], writer)
        r = s.run("--backup")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_a_migration_killed_mid_step_is_named_at_the_next_start(self):
        s = self.stack("1.0.0")
        self.assertEqual(s.run("--prepare").returncode, 0)
        mig = os.path.join(self.tmp, "migrations")
        os.makedirs(mig)
        started, release, done = (os.path.join(self.tmp, n) for n in ("step-started", "step-release", "step-done"))
        with open(os.path.join(mig, "2.0.0_reindex"), "w") as f:
            f.write(f"#!/bin/sh\ntouch {started}\ni=0; while [ ! -e {release} ] && [ $i -lt 1200 ]; do sleep 0.05; "
                    f"i=$((i+1)); done\ntouch {done}\n")
        os.chmod(os.path.join(mig, "2.0.0_reindex"), 0o755)
        s.render("2.0.0", **{"hooks.migrations": json.dumps(mig)})
        p = subprocess.Popen(command(BARTLD, "--config", s.config, "--prepare"), env=s.env(notify=False),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + scaled(30)
        while not os.path.exists(started) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertTrue(os.path.exists(started), "the migration step never started")
        p.kill()
        p.wait()
        open(release, "w").close()  # the orphaned step ends and lets go of the instance lock
        deadline = time.monotonic() + scaled(10)
        while not os.path.exists(done) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stderr, rf"the migration of notes from 1\.0\.0 to 2\.0\.0 started at \S+ by PID {p.pid} "
                                   r"did not finish .*; the state is at 1\.0\.0 .*resumes with step 2\.0\.0_reindex, "
                                   r"which runs again")
        self.assertEqual(r.stderr.count("did not finish"), 1, r.stderr)
        self.assertEqual(s.marker()["version"], "2.0.0")
        # A migration that was not interrupted says nothing of the kind.
        t = self.stack("1.0.0")
        self.assertEqual(t.run("--prepare").returncode, 0)
        open(release, "w").close()
        t.render("2.0.0", **{"hooks.migrations": json.dumps(mig)})
        r = t.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("migration step 2.0.0_reindex done", r.stderr)
        self.assertNotIn("did not finish", r.stderr)

    def test_a_config_that_is_a_dangling_symlink_names_the_missing_target(self):
        s = self.stack("1.0.0")
        link, missing = os.path.join(self.tmp, "link.toml"), os.path.join(self.tmp, "gone", "notes.toml")
        os.symlink(missing, link)
        r = subprocess.run(command(BARTLD, "--config", link, "--check-config"), capture_output=True, text=True,
                           env=s.env(notify=False), timeout=scaled(30))
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        self.assertIn(f"{link}: cannot read: it is a symbolic link to {missing}, which does not exist", r.stderr)

    def test_partial_init_proven_by_intent_is_cleaned_and_redone(self):
        s = self.stack("1.0.0")
        staging = os.path.join(os.path.dirname(s.state), ".notes.bartl-staging")
        os.makedirs(staging)
        os.makedirs(s.state)
        with open(os.path.join(s.state, "half.db"), "w") as f:
            f.write("half-written by a killed init")
        os.makedirs(s.bartl_dir)
        with open(os.path.join(s.bartl_dir, "intent.json"), "w") as f:
            json.dump({"format": 1, "op": "init", "started": "2026-11-30T00:00:00Z", "pid": 1, "staging": [staging],
                       "targets": [s.state], "backup_id": "", "from": "", "to": "1.0.0"}, f)
        self.assertIn("plan: clean up interrupted work -> init (fresh install) -> take over the store -> serve",
                      s.run("--plan").stdout)
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(os.listdir(s.state)), ["notes.db"])
        self.assertFalse(os.path.exists(staging))
        self.assertEqual(s.marker()["origin"], "init")

    def test_init_hook_failure_leaves_no_state(self):
        s = self.stack("1.0.0")
        edit_config(s.config, {"hooks.init": '["/bin/sh", "-c", "echo disk on fire >&2; exit 7"]'})
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_RUNTIME)
        self.assertIn("disk on fire", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(s.bartl_dir, "marker.json")))
        # The failed init rolled itself back: no staging, no intent, no half state.
        self.assertFalse(os.path.exists(os.path.join(s.bartl_dir, "intent.json")))
        self.assertFalse(os.path.exists(s.state) and os.listdir(s.state))
        self.assertEqual([n for n in os.listdir(os.path.dirname(s.state)) if "staging" in n], [])
        edit_config(s.config, {"hooks.init": json.dumps([os.path.join(os.environ["BARTL_SOURCE_ROOT"], "examples", "notes", "bartl", "init")])})
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(s.marker()["origin"], "init")

    def test_hook_outliving_a_killed_bartld_keeps_the_instance_locked(self):
        s = self.stack("1.0.0")
        done, release = os.path.join(self.tmp, "hook-done"), os.path.join(self.tmp, "hook-release")
        # The hook runs until the test releases it (at most 60 s), however slow bartld starts.
        hook = f"i=0; while [ ! -e {release} ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; touch {done}"
        edit_config(s.config, {"hooks.init": json.dumps(["/bin/sh", "-c", hook])})
        p = subprocess.Popen(command(BARTLD, "--config", s.config, "--prepare"), env=s.env(notify=False),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + scaled(10)
        while not os.path.exists(os.path.join(s.bartl_dir, "intent.json")) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        p.kill()  # bartld alone: its init hook (own process group) runs on
        p.wait()
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn(f"started by bartld PID {p.pid}, which has died", r.stderr)
        # It names the live holder: the hook's shell (issue "observed facts" item 10).
        self.assertRegex(r.stderr, r"locked by PID \d+ \((sh|dash|sleep)\)")
        open(release, "w").close()
        deadline = time.monotonic() + 10
        while not os.path.exists(done) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        # The hook ended and released the lock: the next start cleans the half init and redoes it.
        edit_config(s.config, {"hooks.init": None})
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("decision: clean up interrupted work", r.stderr)
        self.assertEqual(s.marker()["origin"], "init")

    def test_retried_migration_keeps_the_clean_pre_migration_backup(self):
        # Found in review: each retry of a failing step took another "pre-migration" backup
        # of the half-migrated state, and retention pushed the clean one out.
        s = self.stack("1.0.0")
        s.run("--prepare")
        mig = os.path.join(self.tmp, "migrations")
        os.makedirs(mig)
        with open(os.path.join(mig, "2.0.0"), "w") as f:
            f.write(f"#!/bin/sh\necho half >> {s.state}/half; exit 1\n")
        os.chmod(os.path.join(mig, "2.0.0"), 0o755)
        s.render("2.0.0", **{"hooks.migrations": json.dumps(mig), "backup.keep_last": "1",
                             "backup.keep_daily": "0", "backup.keep_weekly": "0", "backup.keep_monthly": "0"})
        for _ in range(3):
            self.assertEqual(s.run("--prepare").returncode, EXIT_RUNTIME)
        [b] = s.backups()
        blob = os.path.join(s.store, b["blob"]["name"])
        listing = subprocess.run(f"zstd -dc '{blob}' | tar -t", shell=True, capture_output=True, text=True).stdout
        self.assertNotIn("half", listing, "the kept backup holds the half-migrated state")

    def test_symlinked_or_mounted_state_path_is_refused_untouched(self):
        s = self.stack("1.0.0")
        real = os.path.join(self.tmp, "real")
        os.makedirs(real)
        os.makedirs(os.path.dirname(s.state), exist_ok=True)
        os.symlink(real, s.state)
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        self.assertIn("is a symlink", r.stderr)
        self.assertTrue(os.path.islink(s.state), "the operator's symlink was removed")
        self.assertFalse(os.path.exists(os.path.join(s.bartl_dir, "intent.json")))
        os.remove(s.state)
        os.makedirs(s.state)
        if os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "tmpfs", s.state]).returncode == 0:
            try:
                r = s.run("--prepare")
                self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
                self.assertIn("is a mount point", r.stderr)
                self.assertFalse(os.path.exists(os.path.join(s.bartl_dir, "intent.json")))
            finally:
                subprocess.run(["umount", s.state])

    def test_stale_restore_pin_is_cleared_when_state_exists(self):
        s = self.stack("1.0.0")
        s.run("--prepare")
        with open(os.path.join(s.bartl_dir, "restore-from"), "w") as f:
            f.write("deadbeef\n")
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("restore pin deadbeef ignored and cleared", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(s.bartl_dir, "restore-from")))

    def test_without_init_hook_state_is_empty_directories(self):
        s = self.stack("1.0.0")
        edit_config(s.config, {"hooks.init": None, "app.exec": None, "app.ready": None,
                               "state.paths": json.dumps([s.state, s.root + "/var/lib/notes-media"])})
        r = s.run("--prepare")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.listdir(s.state), [])
        self.assertEqual(os.listdir(s.root + "/var/lib/notes-media"), [])

    def test_config_errors_exit_78_with_position(self):
        s = self.stack("1.0.0")
        edit_config(s.config, {"backup.intervall": '"1h"'})
        r = s.run("--check-config")
        self.assertEqual(r.returncode, EXIT_CONFIG)
        self.assertRegex(r.stderr, s.config.replace(".", r"\.") + r":\d+:\d+: .*intervall.*interval")
        s.render("1.0.0", **{"app.version": '"1.0"'})
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_CONFIG)
        self.assertIn("1.0", r.stderr)
        self.assertFalse(os.path.exists(s.state))

    def test_a_state_path_directly_in_var_lib_is_warned_about_with_its_position(self):
        # The unit opens a state path's parent: /var/lib/notes made all of /var/lib writable.
        s = self.stack("1.0.0")
        r = s.run("--check-config")
        self.assertNotIn("lies directly in", r.stderr)
        edit_config(s.config, {"state.paths": json.dumps(["/var/lib/bartl-test-never-created"])})
        r = s.run("--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stderr, s.config.replace(".", r"\.") + r":\d+:\d+: \[state\] paths\[0\] "
                         r"/var/lib/bartl-test-never-created lies directly in /var/lib, .*such as "
                         r"/var/lib/bartl-test-never-created/data")
        self.assertFalse(os.path.exists("/var/lib/bartl-test-never-created"))

    def test_version_from_file_and_command(self):
        s = self.stack("1.0.0")
        vf = os.path.join(self.tmp, "VERSION")
        with open(vf, "w") as f:
            f.write("  1.0.0\n")
        edit_config(s.config, {"app.version": None, "app.version_file": json.dumps(vf)})
        r = s.run("--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("engine 1.0.0", r.stdout)
        with open(vf, "w") as f:
            f.write("one point oh\n")
        r = s.run("--check-config")
        self.assertEqual(r.returncode, EXIT_CONFIG)
        self.assertIn(vf, r.stderr)
        edit_config(s.config, {"app.version_file": None, "app.version_command": '["/bin/echo", "1.2.3-rc.1"]'})
        r = s.run("--check-config")
        self.assertIn("engine 1.2.3-rc.1", r.stdout)

    def test_usage_errors_exit_64(self):
        r = subprocess.run(command(BARTLD, "--plan"), capture_output=True, text=True)
        self.assertEqual(r.returncode, EXIT_USAGE)
        r = subprocess.run(command(BARTLD, "--bogus"), capture_output=True, text=True)
        self.assertEqual(r.returncode, EXIT_USAGE)
        s = self.stack()
        r = s.run("--plan", "--prepare")
        self.assertEqual(r.returncode, EXIT_USAGE)


if __name__ == "__main__":
    unittest.main(verbosity=2)
