#!/usr/bin/python3
"""s3:// stores end to end (issue 12): the real bartld against npm's s3rver on loopback,
fronted by tests/helpers/s3proxy.py, which verifies every request's SigV4 signature with
botocore (s3rver accepts a wrong secret), injects faults and counts requests. Debian's awscli
is the independent client of the interop tests. Two hosts sharing the bucket run in their own
mount and UTS namespaces (bartltest.HostView). Skips, naming why, when s3rver cannot be
installed with npm (or botocore / awscli are missing)."""
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import unittest

from bartltest import BARTLD, EXIT_RUNTIME, PrivateBus, Stack, StackTest, bartlctl, edit_config, scaled
from s3servers import BUCKET, S3Servers, Unavailable, aws_cli
from signedstore import signed_encrypted_round_trip

AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
S3_SETTINGS_MARK = "# --- s3 store settings of the test ---"
# A state-only instance (no app, no init hook) that keeps one backup: the quickest bartld that
# still makes every decision.
BARE = {"app.exec": None, "app.ready": None, "hooks.init": None, "backup.keep_last": "1",
        "backup.keep_daily": "0", "backup.keep_weekly": "0", "backup.keep_monthly": "0"}

_servers = None


def setUpModule():
    global _servers
    try:
        _servers = S3Servers()
    except Unavailable as e:
        raise unittest.SkipTest(f"no local S3 server: {e}")


def tearDownModule():
    if _servers:
        _servers.close()


def configure_s3(config, endpoint, prefix, settings):
    """Points [backup] store at s3://BUCKET/PREFIX and writes [store] / [store.s3]."""
    edit_config(config, {"backup.store": json.dumps(f"s3://{BUCKET}/{prefix}")})
    with open(config) as f:
        text = f.read().split(S3_SETTINGS_MARK)[0].rstrip("\n")
    store = {"call_timeout": '"10s"', "retry_for": '"20s"'}
    s3 = {"endpoint": json.dumps(endpoint), "path_style": "true", "part_size": '"5MiB"', "parts_in_flight": "3"}
    for k, v in settings.items():
        (store if k in ("call_timeout", "retry_for") else s3)[k] = v
    lines = [text, "", S3_SETTINGS_MARK, "[store]"] + [f"{k} = {v}" for k, v in store.items()]
    lines += ["", "[store.s3]"] + [f"{k} = {v}" for k, v in s3.items()]
    with open(config, "w") as f:
        f.write("\n".join(lines) + "\n")


class S3Stack(Stack):
    """A stack whose store is s3://BUCKET/PREFIX on the test servers; bartld gets the test
    credentials in its environment unless `extra_env` says otherwise (None unsets a variable)."""

    def __init__(self, root, version="1.0.0", prefix="notes", s3=None, **kw):
        self.s3_prefix = prefix
        self.s3_settings = dict(s3 or {})
        super().__init__(root, version, **kw)

    def render(self, version, **overrides):
        super().render(version, **overrides)
        configure_s3(self.config, _servers.endpoint, self.s3_prefix, self.s3_settings)

    def env(self, notify=True, extra=None):
        env = super().env(notify)
        for k in AWS_VARS + ("CREDENTIALS_DIRECTORY",):
            env.pop(k, None)
        env.update({k: v for k, v in _servers.env().items() if k.startswith("AWS_") and k != "AWS_DEFAULT_REGION"})
        for k, v in (extra or {}).items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def objects(self):
        """{name: bytes} of the objects under the prefix, from s3rver's own directory."""
        return s3_objects(self.s3_prefix)

    def backups(self):
        out = [json.loads(v) for n, v in self.objects().items() if n.endswith(".json") and n != "bartl-store.json"]
        return sorted(out, key=lambda m: (m["created"], m["blob"]["name"]), reverse=True)

    def identity(self):
        return json.loads(self.objects()["bartl-store.json"])


def s3_objects(prefix):
    """{name: bytes} of the objects under s3://BUCKET/PREFIX/ (one level), read from s3rver's
    directory (DATA/BUCKET/PREFIX/NAME._S3rver_object)."""
    d = os.path.join(_servers.data, BUCKET, prefix)
    out = {}
    suffix = "._S3rver_object"
    for n in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if n.endswith(suffix):
            with open(os.path.join(d, n), "rb") as f:
                out[n[:-len(suffix)]] = f.read()
    return out


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class S3(StackTest):
    stack_class = S3Stack

    def setUp(self):
        super().setUp()
        _servers.reset()
        self.n = getattr(S3, "_n", 0)
        S3._n = self.n + 1

    def bare(self, prefix=None, version="1.0.0", **kw):
        s = self.stack(version, prefix=prefix or f"{self._testMethodName}-{self.n}", **kw)
        edit_config(s.config, BARE)
        return s

    def ok(self, s, *args, **kw):
        r = s.run(*args, **kw)
        self.assertEqual(r.returncode, 0, f"bartld {' '.join(args)}:\n{r.stderr}")
        return r

    def fill(self, s, big=12 << 20):
        """State with a note file and `big` random bytes (a multipart upload at 5 MiB parts)."""
        os.makedirs(s.state, exist_ok=True)
        with open(os.path.join(s.state, "note.txt"), "w") as f:
            f.write("precious\n")
        data = os.urandom(big)
        with open(os.path.join(s.state, "big.bin"), "wb") as f:
            f.write(data)
        return data

    def disaster(self, s):
        shutil.rmtree(s.here(s.state), ignore_errors=True)
        shutil.rmtree(s.here(s.bartl_dir), ignore_errors=True)

    # --- backup, disaster recovery, and what the DR start asks of the store ---------------

    def test_backup_and_disaster_recovery_through_s3(self):
        s = self.bare()
        self.assertEqual(list(s.objects()), ["bartl-store.json"])  # --init-store, by the Stack
        self.ok(s, "--prepare")
        data = self.fill(s)
        _servers.reset()
        self.ok(s, "--backup")
        [b] = s.backups()
        objects = s.objects()
        self.assertEqual(sorted(objects), sorted(["bartl-store.json", b["blob"]["name"], b["blob"]["name"] + ".json"]))
        blob = objects[b["blob"]["name"]]
        self.assertEqual(len(blob), b["blob"]["size"])
        self.assertEqual(sha256(blob), b["blob"]["sha256"])
        st = _servers.stats()
        self.assertGreaterEqual(st["counts"].get("UploadPart", 0), 2, st["counts"])  # the blob went multipart
        self.assertEqual(st["counts"].get("CompleteMultipartUpload"), 1)
        self.assertEqual(st["rejected"], [])
        self.assertEqual(_servers.uploads_in_progress(), [])
        self.assertEqual(s.identity()["writer"]["state_id"], s.marker()["state_id"])

        self.disaster(s)
        _servers.reset()
        r = self.ok(s, "--prepare")
        self.assertIn(f"restoring backup {b['id']}", r.stderr)
        self.assertEqual(s.marker()["origin"], f"restore:{b['id']}")
        with open(os.path.join(s.state, "big.bin"), "rb") as f:
            self.assertEqual(f.read(), data)
        # Before the blob is read: the identity, at most 2 listing pages, one sidecar.
        requests = _servers.stats()["requests"]
        first_blob = next(i for i, q in enumerate(requests)
                          if q["op"] == "GetObject" and q["key"].endswith(b["blob"]["name"]))
        before = requests[:first_blob]
        self.assertLessEqual(sum(q["op"] == "ListObjectsV2" for q in before), 2, before)
        sidecars = [q for q in before if q["op"] == "GetObject" and q["key"].endswith(".tar.zst.json")]
        self.assertEqual(len(sidecars), 1, before)

    def test_signed_and_encrypted_backup_through_s3(self):
        # The .sig object is uploaded and listed with its backup, removed by retention with
        # it; a planted unsigned backup in the bucket is refused; the signed one restores.
        s = self.bare()
        signed_encrypted_round_trip(self, s, lambda: list(s.objects()))

    # --- interop with an independent client -------------------------------------------------

    def test_awscli_reads_what_bartld_wrote_and_bartld_restores_what_awscli_uploaded(self):
        if not aws_cli():
            self.skipTest("awscli is not installed")
        s = self.bare()
        self.ok(s, "--prepare")
        data = self.fill(s)
        self.ok(s, "--backup")
        [b] = s.backups()
        name = b["blob"]["name"]
        url = f"s3://{BUCKET}/{s.s3_prefix}/"
        r = _servers.aws("s3", "ls", url)
        self.assertEqual(r.returncode, 0, r.stderr)
        listed = sorted(line.split()[-1] for line in r.stdout.strip().split("\n"))
        self.assertEqual(listed, sorted(["bartl-store.json", name, name + ".json"]))
        work = tempfile.mkdtemp(prefix="bartl-s3-interop-", dir=self.tmp)
        for n in (name, name + ".json"):
            r = _servers.aws("s3", "cp", "--only-show-errors", url + n, os.path.join(work, n))
            self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(work, name), "rb") as f:
            self.assertEqual(sha256(f.read()), b["blob"]["sha256"])
        # Restored by hand with zstd and tar.
        out = os.path.join(work, "by-hand")
        os.makedirs(out)
        subprocess.run(f"zstd -dc '{os.path.join(work, name)}' | tar -x -C '{out}'", shell=True, check=True)
        found = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs if f == "big.bin"]
        self.assertEqual(len(found), 1, found)
        with open(found[0], "rb") as f:
            self.assertEqual(f.read(), data)

        # The other way: blob and sidecar uploaded by `aws s3 cp` (multipart, its own part
        # size) into another initialised prefix; the server, its state lost, restores from there.
        self.disaster(s)
        t = s
        t.s3_prefix += "-copy"
        t.render(t.version)
        edit_config(t.config, BARE)
        t.init_store()
        for n in (name, name + ".json"):
            r = _servers.aws("s3", "cp", "--only-show-errors", os.path.join(work, n), f"s3://{BUCKET}/{t.s3_prefix}/{n}")
            self.assertEqual(r.returncode, 0, r.stderr)
        r = self.ok(t, "--prepare")
        self.assertEqual(t.marker()["origin"], f"restore:{b['id']}")
        with open(os.path.join(t.state, "big.bin"), "rb") as f:
            self.assertEqual(f.read(), data)

    # --- wrong credentials, bucket, prefix: exit 1, never a fresh install -------------------

    def test_wrong_secret_is_rejected_exit_1_never_init(self):
        s = self.bare()
        wrong = {"AWS_SECRET_ACCESS_KEY": "not-the-secret"}
        r = s.run("--prepare", extra_env=wrong)
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("SignatureDoesNotMatch", r.stderr)
        self.assertIn("credentials are wrong", r.stderr)
        self.assertNotIn("not-the-secret", r.stderr)
        self.assertNotIn("decision: init", r.stderr)
        self.assertFalse(os.path.exists(s.state), "a fresh install happened")
        self.assertTrue(_servers.stats()["rejected"])
        r = s.run("--init-store", extra_env=wrong)
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("credentials are wrong", r.stderr)

    def run_with_a_mistyped_prefix(self, s, *args):
        """Runs bartld ARGS with [backup] store pointing at PREFIX-typo: exit 1, "not a bartl store"."""
        edit_config(s.config, {"backup.store": json.dumps(f"s3://{BUCKET}/{s.s3_prefix}-typo")})
        r = s.run(*args)
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn(f"store s3://{BUCKET}/{s.s3_prefix}-typo holds no bartl-store.json: it is not a bartl store",
                      r.stderr)
        return r

    def test_wrong_bucket_or_prefix_exit_1_never_init(self):
        s = self.bare()
        r = self.run_with_a_mistyped_prefix(s, "--prepare")
        self.assertIn("--init-store", r.stderr)
        self.assertNotIn("decision: init", r.stderr)
        self.assertFalse(os.path.exists(s.state))
        edit_config(s.config, {"backup.store": json.dumps(f"s3://no-such-bucket/{s.s3_prefix}")})
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("bucket no-such-bucket does not exist", r.stderr)
        self.assertFalse(os.path.exists(s.state))

    def test_verify_of_a_mistyped_prefix_says_it_is_not_a_bartl_store(self):
        s = self.bare()
        self.ok(s, "--prepare")
        self.ok(s, "--backup")
        # Not "holds no backup": the location is no bartl store at all.
        r = self.run_with_a_mistyped_prefix(s, "--verify")
        self.assertNotIn("holds no backup of", r.stderr)

    def test_credentials_from_the_systemd_credential_or_a_clear_error(self):
        s = self.bare()
        none = {k: None for k in AWS_VARS}
        r = s.run("--prepare", extra_env=none)
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("no S3 credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set", r.stderr)
        self.assertIn("$CREDENTIALS_DIRECTORY is not set", r.stderr)
        self.assertFalse(os.path.exists(s.state))
        creds = os.path.join(self.tmp, "credentials")
        os.makedirs(creds)
        r = s.run("--prepare", extra_env={**none, "CREDENTIALS_DIRECTORY": creds})
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn(f"there is no systemd credential {creds}/aws-credentials", r.stderr)
        with open(os.path.join(creds, "aws-credentials"), "w") as f:
            f.write("[default]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\n")
        self.ok(s, "--prepare", extra_env={**none, "CREDENTIALS_DIRECTORY": creds})
        self.assertTrue(os.path.exists(os.path.join(s.bartl_dir, "marker.json")))

    def test_aws_profile_names_the_profile_unless_store_s3_profile_does(self):
        # One credentials file, two profiles; only [backups] holds the secret the proxy accepts.
        s = self.bare()
        creds = os.path.join(self.tmp, "credentials")
        os.makedirs(creds)
        with open(os.path.join(creds, "aws-credentials"), "w") as f:
            f.write("[default]\naws_access_key_id = S3RVER\naws_secret_access_key = wrong\n\n"
                    "[profile backups]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\n")
        env = {**{k: None for k in AWS_VARS}, "AWS_DEFAULT_PROFILE": None, "CREDENTIALS_DIRECTORY": creds}
        r = s.run("--prepare", extra_env=env)
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("SignatureDoesNotMatch", r.stderr)
        r = s.run("--prepare", extra_env={**env, "AWS_PROFILE": "absent"})
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn(f"the credentials file {creds}/aws-credentials has no profile [absent] (AWS_PROFILE)", r.stderr)
        self.assertFalse(os.path.exists(s.state))
        self.ok(s, "--prepare", extra_env={**env, "AWS_PROFILE": "backups"})
        self.ok(s, "--backup", extra_env={**env, "AWS_PROFILE": "backups"})
        self.assertEqual(len(s.backups()), 1)
        # [store.s3] profile wins over AWS_PROFILE.
        s.s3_settings["profile"] = '"default"'
        configure_s3(s.config, _servers.endpoint, s.s3_prefix, s.s3_settings)
        r = s.run("--backup", extra_env={**env, "AWS_PROFILE": "backups"})
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("SignatureDoesNotMatch", r.stderr)
        s.s3_settings["profile"] = '"backups"'
        configure_s3(s.config, _servers.endpoint, s.s3_prefix, s.s3_settings)
        self.ok(s, "--backup", extra_env={**env, "AWS_PROFILE": "default"})
        self.assertEqual(len(s.backups()), 1)  # keep_last = 1

    # --- resilience ------------------------------------------------------------------------

    def test_failed_upload_leaves_no_backup_and_no_upload(self):
        s = self.bare(s3={"retry_for": '"2s"'})
        self.ok(s, "--prepare")
        self.fill(s)
        before = s.objects()
        _servers.fault({"op": "UploadPart", "action": "status", "status": 500, "count": 1000})
        r = s.run("--backup")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("uploading part", r.stderr)
        self.assertIn("HTTP 500 InternalError", r.stderr)
        _servers.reset()
        self.assertEqual(sorted(s.objects()), sorted(before))
        self.assertEqual(s.backups(), [])
        self.assertEqual(_servers.uploads_in_progress(), [])  # aborted, not left behind

    def test_killed_backup_is_never_listed_and_its_upload_is_aborted_once_a_day_old(self):
        s = self.bare()
        self.ok(s, "--prepare")
        self.fill(s, big=16 << 20)
        # Parts never arrive (the proxy drops them), so the backup is mid-upload when killed.
        _servers.fault({"op": "UploadPart", "action": "drop", "count": 100000})
        p = subprocess.Popen(s.argv(BARTLD, "--config", s.config, "--backup"), env=s.env(False),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + scaled(60)
        while not (_servers.uploads_in_progress() and _servers.stats()["counts"].get("UploadPart", 0) >= 2):
            self.assertLess(time.monotonic(), deadline, "the backup never started its upload")
            self.assertIsNone(p.poll(), "bartld --backup ended before it was killed")
            time.sleep(0.05)
        p.kill()
        p.wait()
        _servers.reset()
        [killed] = _servers.uploads_in_progress()
        self.assertEqual(s.backups(), [])
        # The next backup leaves an upload younger than a day alone (its writer may be alive).
        self.ok(s, "--backup")
        self.assertEqual(len(s.backups()), 1)
        self.assertEqual(_servers.uploads_in_progress(), [killed])
        # A day later (s3rver dates an upload by its directory) the one after aborts it.
        old = time.time() - 2 * 86400
        os.utime(os.path.join(_servers.data, BUCKET, "._S3rver_uploads", killed), (old, old))
        r = self.ok(s, "--backup")
        self.assertIn(f"aborted the unfinished upload {killed}", r.stderr)
        self.assertEqual(_servers.uploads_in_progress(), [])
        self.assertEqual(_servers.stats()["counts"].get("AbortMultipartUpload"), 1)

    def test_restore_resumes_after_resets_and_bursts(self):
        s = self.bare()
        self.ok(s, "--prepare")
        data = self.fill(s)
        self.ok(s, "--backup")
        [b] = s.backups()
        self.disaster(s)
        _servers.reset()
        _servers.fault({"op": "GetObject", "key_suffix": ".tar.zst", "action": "reset", "after": 4 << 20, "count": 2},
                       {"op": "ListObjectsV2", "action": "status", "status": 503, "count": 2},
                       {"op": "GetObject", "key_suffix": ".json", "action": "status", "status": 429, "count": 2})
        r = self.ok(s, "--prepare")
        self.assertEqual(s.marker()["origin"], f"restore:{b['id']}")
        with open(os.path.join(s.state, "big.bin"), "rb") as f:
            self.assertEqual(f.read(), data)
        ranges = [q["range"] for q in _servers.stats()["requests"]
                  if q["op"] == "GetObject" and q["key"].endswith(b["blob"]["name"])]
        self.assertEqual(len(ranges), 3, ranges)
        self.assertEqual(ranges[0], "")
        self.assertTrue(all(x.startswith("bytes=") for x in ranges[1:]), ranges)

    def test_bartlctl_backups_while_the_store_hangs_says_bartld_is_busy_not_timed_out(self):
        # sd-bus gives up after 25 s while bartld still waits for the listing; bartlctl used to
        # print only "Connection timed out".
        bus = PrivateBus()
        self.addCleanup(bus.close)
        s = self.bare(s3={"call_timeout": '"60s"', "retry_for": '"60s"'})
        self.ok(s, "--prepare")
        s.start(extra_env=bus.env())
        s.wait_ready()
        # Every listing for a while, not only the next: under ASan bartld was still listing
        # for its own status after READY, took the one slow answer, and bartlctl's was quick.
        _servers.fault({"op": "ListObjectsV2", "action": "slow", "delay": 30, "count": 4})
        r = bartlctl("-i", "notes", "backups", bus=bus, timeout=120)
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stdout + r.stderr)
        self.assertIn("list backups of notes: bartld did not answer in time", r.stderr)
        self.assertIn("waiting for a store that does not answer", r.stderr)
        self.assertNotIn("not running", r.stderr)

    # --- store identity and fencing on S3 -----------------------------------------------------

    def host_a_backed_up(self, name, fence_check):
        """Host A of two that share a prefix, with a backup and [backup] fence_check =
        `fence_check`, and a private bus: (bus, shared root, prefix, A). Skips without root
        and unshare."""
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            self.skipTest("needs root and unshare for a second host")
        bus = PrivateBus()
        self.addCleanup(bus.close)
        root = os.path.join(self.tmp, "shared")
        prefix = f"{name}-{self.n}"
        a = self.host_stack("host-a", root, prefix=prefix)
        edit_config(a.config, {**BARE, "backup.fence_check": json.dumps(fence_check)})
        self.ok(a, "--prepare")
        self.fill(a, big=1 << 16)
        self.ok(a, "--backup")
        return bus, root, prefix, a

    def test_a_serving_host_notices_a_takeover_within_fence_check_without_a_backup(self):
        # Host A serves with a day to its next backup; host B restores and takes the store over.
        # A reads the writer record every [backup] fence_check and shows FENCED (status, D-Bus,
        # one journal line) without a backup attempt, writing and deleting nothing.
        bus, root, prefix, a = self.host_a_backed_up("fence-check", "2s")
        a.start(extra_env=bus.env())
        a.wait_ready()
        status = lambda: json.loads(a.ctl("status", "--json", bus=bus).stdout)
        self.assertIsNone(status()["fenced"])

        b = self.host_stack("host-b", root, prefix=prefix)
        edit_config(b.config, BARE)
        r = self.ok(b, "--prepare")
        self.assertRegex(r.stderr, r"taken over by state \w+ \(generation 2\)")
        _servers.reset()
        before = a.objects()
        t0 = time.monotonic()
        while not status()["fenced"]:
            self.assertLess(time.monotonic() - t0, scaled(10), "A did not notice the takeover")
            time.sleep(0.2)
        self.assertLess(time.monotonic() - t0, scaled(2 + 3))  # one period and a GET
        fenced = status()["fenced"]
        self.assertIn("fenced: store", fenced)
        self.assertIn("host host-b", fenced)
        text = a.ctl("status", bus=bus).stdout
        self.assertIn("FENCED:", text)
        time.sleep(scaled(5))  # two more looks: still one journal line
        log = a.read_log()
        self.assertEqual(log.count("fenced: store"), 1, log)
        self.assertNotIn("backup of notes failed", log)
        self.assertEqual(a.objects(), before)
        ops = [q["op"] for q in _servers.stats()["requests"]]
        self.assertIn("GetObject", ops)
        self.assertEqual(sorted(set(ops)), ["GetObject"], ops)  # nothing listed, written or deleted
        self.assertLessEqual(ops.count("GetObject"), (time.monotonic() - t0) / 2 + 2, ops)  # one GET a look
        self.assertEqual(a.stop(), 0)

    def test_restore_from_a_read_only_store_is_not_shown_fenced(self):
        # A restore whose takeover the store refused (deferred "takeover") serves; the previous
        # writer is knowingly NOT fenced. The fence watch must not call THIS host fenced.
        s = self.bare()
        edit_config(s.config, {"backup.fence_check": '"1s"'})
        self.ok(s, "--prepare")
        self.fill(s, big=1 << 16)
        self.ok(s, "--backup")
        self.disaster(s)
        _servers.reset()
        _servers.fault({"op": "PutObject", "action": "status", "status": 403, "count": 1000})
        bus = PrivateBus()
        self.addCleanup(bus.close)
        s.start(extra_env=bus.env())
        s.wait_ready()
        time.sleep(scaled(4))
        log = s.read_log()
        self.assertIn("cannot take the store over", log)
        st = json.loads(s.ctl("status", "--json", bus=bus).stdout)
        self.assertEqual(s.stop(), 0)
        self.assertNotIn("fenced: store", log)
        self.assertIsNone(st["fenced"], st["fenced"])

    def test_a_takeover_deferred_at_the_start_is_watched_once_a_backup_completes_it(self):
        # Host A restores while the store refuses writes: the takeover waits for the first
        # backup, and the fence watch is off until then. That backup completed the takeover,
        # but the watch stayed off for the rest of the run: host B took the store over and A
        # showed nothing until its next backup, up to an interval later.
        bus, root, prefix, a = self.host_a_backed_up("fence-deferred", "1s")
        self.disaster(a)
        _servers.fault({"op": "PutObject", "action": "status", "status": 403, "count": 1000})
        a.start(extra_env=bus.env())
        a.wait_ready()
        self.assertIn("cannot take the store over", a.read_log())
        _servers.reset()  # writable again: the backup completes the takeover
        r = a.ctl("backup", "--wait", bus=bus)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr + a.read_log())
        status = lambda: json.loads(a.ctl("status", "--json", bus=bus).stdout)
        self.assertIsNone(status()["fenced"])

        b = self.host_stack("host-b", root, prefix=prefix)
        edit_config(b.config, BARE)
        self.ok(b, "--prepare")
        t0 = time.monotonic()
        while not status()["fenced"]:
            self.assertLess(time.monotonic() - t0, scaled(10), "A did not notice the takeover:\n" + a.read_log())
            time.sleep(0.2)
        self.assertIn("host host-b", status()["fenced"])
        self.assertEqual(a.stop(), 0)

    def test_an_unreadable_store_is_warned_about_once_per_outage(self):
        # Once per outage, not once per look: a retried call's message carries "(after N tries
        # in X.Y s)", different at every look.
        s = self.bare(s3={"retry_for": '"2s"', "call_timeout": '"2s"'})
        edit_config(s.config, {"backup.fence_check": '"1s"'})
        self.ok(s, "--prepare")
        s.start()
        s.wait_ready()
        _servers.fault({"op": "GetObject", "action": "status", "status": 503, "count": 10000})
        time.sleep(scaled(7))  # two or more looks of 1 s + up to 2 s of retries
        log = s.read_log()
        self.assertEqual(s.stop(), 0)
        n = log.count("the store cannot be read")
        self.assertEqual(n, 1, log)

    def test_migration_to_another_server_through_s3_fences_the_old_host(self):
        """Issue 12, item 6: host A backs up to the bucket; host B restores from it, takes the
        store over, migrates to a newer engine and backs up; A's next backup is refused as
        fenced and A deletes nothing."""
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            self.skipTest("needs root and unshare for a second host")
        root = os.path.join(self.tmp, "shared")
        prefix = f"fencing-{self.n}"
        a = self.host_stack("host-a", root, prefix=prefix)
        edit_config(a.config, BARE)
        self.ok(a, "--prepare")
        self.fill(a, big=1 << 20)
        db = sqlite3.connect(os.path.join(a.here(a.state), "notes.db"))
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
        db.execute("INSERT INTO notes (text) VALUES ('written on host A')")
        db.execute("PRAGMA user_version = 1")
        db.commit()
        db.close()
        self.ok(a, "--backup")
        [a1] = a.backups()
        self.assertEqual(a.identity()["writer"]["host"], "host-a")

        b = self.host_stack("host-b", root, version="2.0.0", prefix=prefix)
        edit_config(b.config, BARE)
        r = self.ok(b, "--prepare")
        self.assertIn(f"restoring backup {a1['id']}", r.stderr)
        self.assertRegex(r.stderr, r"taken over by state \w+ \(generation 2\)")
        self.assertIn("2.0.0-add-tags", r.stderr)
        db = sqlite3.connect(os.path.join(b.here(b.state), "notes.db"))
        self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], 2)
        self.assertEqual(db.execute("SELECT text, tags FROM notes").fetchall(), [("written on host A", "[]")])
        db.close()
        writer = a.identity()["writer"]
        self.assertEqual((writer["host"], writer["generation"]), ("host-b", 2))
        # The way back B took before migrating is in the bucket, made by B from A's data.
        pre = [m for m in a.backups() if m.get("reason") == "pre-migration"]
        self.assertEqual([(m["host"], m["version"]) for m in pre], [("host-b", "1.0.0")], a.backups())

        before = a.objects()
        r = a.run("--backup")
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("fenced: store", r.stderr)
        self.assertEqual(a.objects(), before)  # A wrote and deleted nothing
        self.ok(b, "--backup")
        newest = b.backups()[0]
        self.assertEqual((newest["host"], newest["version"]), ("host-b", "2.0.0"))
        # keep_last = 1, and the way back is kept (keep_pre_migration).
        self.assertIn(pre[0]["id"], [m["id"] for m in b.backups()])


if __name__ == "__main__":
    unittest.main(verbosity=2)
