#!/usr/bin/python3
"""bartl-generator and bartl-prepare-dirs, the real binaries (bartl-generator(8)).

The generator runs as systemd runs it (NORMAL_DIR EARLY_DIR LATE_DIR) into a temporary
directory, on configurations in a temporary directory ($BARTL_GENERATOR_CONFIG_DIR), with its
kernel log lines sent to a file ($BARTL_GENERATOR_LOG). Its drop-ins are compared whole
(test_units.py gives one to systemd-analyze verify and security with the installed units).
bartl-prepare-dirs creates directories in a temporary tree (as root: owners are part of what it
does)."""
import grp
import pwd
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import unittest

from bartltest import SOURCE_ROOT, BARTLD, CheckedTest, command, scaled

BUILD_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(BARTLD))))
GENERATOR = os.environ.get("BARTL_GENERATOR", os.path.join(BUILD_ROOT, "src", "generator", "bartl-generator"))
PREPARE_DIRS = os.environ.get("BARTL_PREPARE_DIRS", os.path.join(BUILD_ROOT, "src", "generator", "bartl-prepare-dirs"))
# Where the drop-ins say bartl-prepare-dirs is installed (the build's prefix/libexecdir).
INSTALLED_HELPER = os.path.join(os.environ.get("BARTL_TEST_LIBEXECDIR", "/usr/local/libexec"), "bartl",
                                "bartl-prepare-dirs")
DROPIN = "50-bartl-generator.conf"

DEMO = """[app]
name = "demo"
version = "1.0.0"
exec = ["/bin/sleep", "infinity"]
[state]
paths = ["/var/lib/demo/data"]
[backup]
store = "file:///var/backups/bartl/demo"
"""


def config_text(name, paths='["/var/lib/{name}/data"]', store="file:///var/backups/bartl/{name}", extra=""):
    return (f'[app]\nname = "{name}"\nversion = "1.0.0"\nexec = ["/bin/sleep", "infinity"]\n'
            f"[state]\npaths = {paths.format(name=name)}\n{extra}"
            f'[backup]\nstore = "{store.format(name=name)}"\n')


class Generator(CheckedTest):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="bartl-gen-")
        self.conf = os.path.join(self.tmp, "etc-bartl")
        self.out = os.path.join(self.tmp, "generator")
        self.log = os.path.join(self.tmp, "kmsg")
        os.makedirs(self.conf)
        for d in ("generator", "generator.early", "generator.late"):
            os.makedirs(os.path.join(self.tmp, d))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)
        super().tearDown()

    def write(self, name, text):
        path = os.path.join(self.conf, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def generate(self, *args, env=None):
        if not args:
            args = (self.out, self.out + ".early", self.out + ".late")
        e = dict(os.environ, BARTL_GENERATOR_CONFIG_DIR=self.conf, BARTL_GENERATOR_LOG=self.log)
        e.pop("SYSTEMD_IN_INITRD", None)
        e.update(env or {})
        return subprocess.run(command(GENERATOR, *args), capture_output=True, text=True, env=e, timeout=scaled(30))

    def written(self):
        """{relative path: text} of everything in the output directories."""
        out = {}
        for d, _, files in os.walk(self.tmp):
            rel = os.path.relpath(d, self.tmp)
            if not rel.startswith("generator"):
                continue
            for f in files:
                with open(os.path.join(d, f)) as fh:
                    out[os.path.join(rel, f)] = fh.read()
        return out

    def log_lines(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return f.read().splitlines()

    def test_writes_the_drop_in_of_each_config(self):
        cfg = self.write("demo.toml", DEMO)
        r = self.generate()
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""))
        self.assertEqual(self.written(), {f"generator/bartld@demo.service.d/{DROPIN}": (
            f"# Written by bartl-generator(8) from {cfg} at boot and at each \"systemctl daemon-reload\";\n"
            "# edits here are lost. Settings of your own belong in a drop-in of their own.\n"
            "\n[Unit]\n"
            "RequiresMountsFor=/var/backups/bartl/demo\n"
            "RequiresMountsFor=/var/lib/demo/data\n"
            "\n[Service]\n"
            f"ExecStartPre=+{INSTALLED_HELPER} --mode=0755 /var/lib/demo\n"
            "ReadWritePaths=-/var/backups/bartl/demo\n"
            "ReadWritePaths=-/var/lib/demo\n"
            f"Environment=BARTL_SANDBOX_FINGERPRINT={self.fingerprint('demo')}\n")})
        st = os.stat(os.path.join(self.out, "bartld@demo.service.d", DROPIN))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o644)
        self.assertEqual(self.log_lines(), [])

    def fingerprint(self, instance):
        """The fingerprint the drop-in of bartld@INSTANCE sets: 16 hex digits."""
        with open(os.path.join(self.out, f"bartld@{instance}.service.d", DROPIN)) as f:
            m = re.search(r"^Environment=BARTL_SANDBOX_FINGERPRINT=([0-9a-f]{16})$", f.read(), re.M)
        self.assertIsNotNone(m, "no fingerprint in the drop-in")
        return m.group(1)

    def test_bartld_refuses_a_drop_in_written_for_another_configuration(self):
        # The operator adds a state path and restarts without daemon-reload: the unit's sandbox
        # would leave the new path read-only and every start fail with EROFS, retried forever.
        # bartld sees the drop-in's fingerprint is not its configuration's: exit 78 (not
        # retried), naming the file and the way out.
        cfg = self.write("demo.toml", DEMO)
        self.assertEqual(self.generate().returncode, 0)
        env = dict(os.environ, BARTL_SANDBOX_FINGERPRINT=self.fingerprint("demo"),
                   STATE_DIRECTORY="/var/lib/bartl/demo")
        check = lambda: subprocess.run(command(BARTLD, "--config", cfg, "--check-config"),
                                       capture_output=True, text=True, env=env, timeout=scaled(30))
        r = check()
        self.assertEqual(r.returncode, 0, r.stderr)
        # A change the sandbox does not depend on keeps fitting.
        self.write("demo.toml", DEMO + "keep_last = 3\n")
        self.assertEqual(check().returncode, 0)
        self.write("demo.toml", DEMO.replace('["/var/lib/demo/data"]', '["/var/lib/demo/data", "/srv/demo/uploads"]'))
        r = check()
        self.assertEqual(r.returncode, 78, r.stderr)
        # (The unit's name is the cgroup's; outside systemd, bartld.service for --config.)
        self.assertRegex(r.stderr, rf"{re.escape(cfg)}: \S+\.service was set up by bartl-generator\(8\) for "
                         r"another version of this file \(\[state\] paths, bartl_dir, \[\[state\.databases\]\], "
                         r"\[backup\] store or \[app\] user changed")
        self.assertIn('run "systemctl daemon-reload", then start', r.stderr)
        # After the reload (the generator runs again) it fits.
        self.assertEqual(self.generate().returncode, 0)
        env["BARTL_SANDBOX_FINGERPRINT"] = self.fingerprint("demo")
        self.assertEqual(check().returncode, 0, check().stderr)

    def test_the_app_user_is_named_not_looked_up(self):
        # At boot the user database may not answer yet: the generator passes the names on and
        # bartl-prepare-dirs looks them up at start. A user created later (by the product's
        # postinst) is no reason to skip the config.
        self.write("own.toml", config_text("own").replace("[state]", 'user = "made-by-postinst"\n[state]'))
        self.write("grp.toml", config_text("grp").replace("[state]", 'user = "app"\ngroup = "www"\n[state]'))
        r = self.generate()
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(self.log_lines(), [])
        w = self.written()
        self.assertIn(f"ExecStartPre=+{INSTALLED_HELPER} --mode=0750 --group-of=made-by-postinst /var/lib/own\n",
                      w[f"generator/bartld@own.service.d/{DROPIN}"])
        self.assertIn(f"ExecStartPre=+{INSTALLED_HELPER} --mode=0750 --group=www /var/lib/grp\n",
                      w[f"generator/bartld@grp.service.d/{DROPIN}"])

    def test_remote_store_wants_the_network(self):
        self.write("s3.toml", config_text("s3", store="s3://bucket/s3"))
        self.write("files.toml", config_text("files"))
        self.assertEqual(self.generate().returncode, 0)
        w = self.written()
        self.assertIn("Wants=network-online.target\nAfter=network-online.target\n",
                      w[f"generator/bartld@s3.service.d/{DROPIN}"])
        self.assertNotIn("network-online", w[f"generator/bartld@files.service.d/{DROPIN}"])

    def test_bad_configs_are_logged_and_skipped(self):
        self.write("good.toml", config_text("good"))
        bad = self.write("bad.toml", '[app]\nname = "bad"\nversoin = "1.0.0"\n')
        broken = self.write("broken.toml", "[app\nname = 1\n")
        badname = self.write("Bad_Name.toml", config_text("bad_name"))
        os.makedirs(os.path.join(self.conf, "dir.toml"))               # not a file: ignored
        self.write("good.toml.dpkg-dist", "not toml")                  # not *.toml: ignored
        self.write(".hidden.toml", "not toml")                         # editor leftovers: ignored
        r = self.generate()
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(sorted(self.written()), [f"generator/bartld@good.service.d/{DROPIN}"])
        lines = self.log_lines()
        pid = r"bartl-generator\[\d+\]: "
        self.assertEqual(len(lines), 3, lines)
        self.assertRegex(lines[0], "^<3>" + pid + re.escape(
            f"{badname}: invalid instance name \"Bad_Name\": use lowercase letters, digits, '_' and '-', starting "
            "with a letter or digit, at most 64 characters (bartld@Bad_Name.service gets no drop-in)") + "$")
        self.assertRegex(lines[1], "^<3>" + pid + re.escape(
            f"{bad}:3:1: unknown key 'versoin' in [app]; did you mean 'version'? (bartld@bad.service gets no "
            "drop-in)") + "$")
        self.assertRegex(lines[2], "^<3>" + pid + re.escape(f"{broken}:1:") + r"\d+: .*\(bartld@broken\.service gets "
                         r"no drop-in\)$")

    def test_what_the_sandbox_cannot_open_is_warned_about(self):
        cfg = self.write("top.toml", config_text("top", paths='["/top", "/var/lib/top/data"]'))
        r = self.generate()
        self.assertEqual(r.returncode, 0)
        self.assertRegex("\n".join(self.log_lines()), r"^<4>bartl-generator\[\d+\]: " + re.escape(
            f"{cfg}:6:10: [state] paths[0] \"/top\" lies directly in /, which the unit cannot open for writing; move "
            "it one level down, e.g. to /srv/top (bartld@top.service)") + "$")
        text = self.written()[f"generator/bartld@top.service.d/{DROPIN}"]
        self.assertIn("ReadWritePaths=-/var/lib/top\n", text)
        self.assertNotIn("ReadWritePaths=-/\n", text)

    def test_bartl_toml_serves_bartld_service_too(self):
        self.write("bartl.toml", config_text("notes"))
        self.assertEqual(self.generate().returncode, 0)
        w = self.written()
        self.assertEqual(sorted(w), [f"generator/bartld.service.d/{DROPIN}", f"generator/bartld@bartl.service.d/{DROPIN}"])
        self.assertIn("ReadWritePaths=-/var/lib/notes\n", w[f"generator/bartld.service.d/{DROPIN}"])

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare"), "a private /dev and /run: needs root")
    def test_without_a_kernel_log_it_logs_to_the_journal_without_waiting(self):
        # A container: no /dev/kmsg. The generator tries the journal's socket (here the test's,
        # in a private mount namespace), then stderr; it never waits for either.
        self.write("bad.toml", '[app]\nname = "bad"\nversoin = "1.0.0"\n')
        sock_path = os.path.join(self.tmp, "journal.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        sock.settimeout(scaled(10))
        journal = 'touch /run/systemd/journal/socket && mount --bind "$0" /run/systemd/journal/socket && '
        container = ("mount -t tmpfs tmpfs /dev && mount -t tmpfs -o size=1m tmpfs /run && "
                     "mkdir -p /run/systemd/journal && {journal}exec \"$@\"")
        env = dict(os.environ, BARTL_GENERATOR_CONFIG_DIR=self.conf)
        env.pop("BARTL_GENERATOR_LOG", None)
        message = (f"{self.conf}/bad.toml:3:1: unknown key 'versoin' in [app]; did you mean 'version'? "
                   "(bartld@bad.service gets no drop-in)")
        try:
            for with_journal in (True, False):
                with self.subTest(journal=with_journal):
                    script = container.format(journal=journal if with_journal else "")
                    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script,
                                        sock_path, *command(GENERATOR, self.out)],
                                       capture_output=True, text=True, env=env, timeout=scaled(30))
                    self.assertEqual(r.returncode, 0, r.stderr)
                    if with_journal:
                        self.assertEqual(r.stderr, "")
                        fields = dict(line.split("=", 1) for line in sock.recv(65536).decode().splitlines())
                        self.assertEqual((fields["PRIORITY"], fields["SYSLOG_IDENTIFIER"]), ("3", "bartl-generator"))
                        self.assertTrue(fields["SYSLOG_PID"].isdigit())
                        self.assertEqual(fields["MESSAGE"], message)
                    else:
                        self.assertRegex(r.stderr, r"^<3>bartl-generator\[\d+\]: " + re.escape(message) + "\n$")
        finally:
            sock.close()

    def test_no_config_directory_is_nothing_to_do(self):
        os.rmdir(self.conf)
        r = self.generate()
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(self.written(), {})
        self.assertEqual(self.log_lines(), [])

    def test_an_unusable_output_directory_is_the_only_failure(self):
        self.write("demo.toml", DEMO)
        missing = os.path.join(self.tmp, "nowhere")
        r = self.generate(missing, missing, missing)
        self.assertEqual(r.returncode, 1)
        self.assertRegex("\n".join(self.log_lines()),
                         r"^<3>bartl-generator\[\d+\]: " + re.escape(f"{missing}: No such file or directory") + "$")
        # A drop-in directory that cannot be made.
        with open(os.path.join(self.out, "bartld@demo.service.d"), "w"):
            pass
        r = self.generate()
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"cannot write {self.out}/bartld@demo.service.d/.{DROPIN}.tmp: Not a directory",
                      self.log_lines()[-1])

    def test_usage_and_initrd(self):
        self.write("demo.toml", DEMO)
        r = self.generate("a", "b")
        self.assertEqual(r.returncode, 64)
        self.assertIn("usage: bartl-generator NORMAL_DIR", r.stderr)
        r = self.generate(env={"SYSTEMD_IN_INITRD": "1"})
        self.assertEqual(r.returncode, 0)
        self.assertEqual(self.written(), {})
        # One argument works too (systemd-analyze and old managers pass only NORMAL_DIR).
        self.assertEqual(self.generate(self.out).returncode, 0)
        self.assertEqual(len(self.written()), 1)

    def test_a_hundred_configs_take_milliseconds(self):
        for i in range(100):
            self.write(f"app{i:03}.toml", config_text(f"app{i:03}",
                                                      paths='["/srv/{name}/data", "/srv/{name}/media", "/var/lib/{name}/db"]',
                                                      extra=f'bartl_dir = "/srv/app{i:03}/bartl"\n'))
        t0 = time.monotonic()
        r = self.generate()
        took = time.monotonic() - t0
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(len(self.written()), 100)
        self.assertEqual(self.log_lines(), [])
        print(f"\nbartl-generator: 100 configurations in {took * 1000:.0f} ms", flush=True)
        # systemd waits for generators before it starts any unit; 100 apps must not be felt.
        self.assertLess(took, scaled(1.0))


@unittest.skipUnless(os.geteuid() == 0, "owners of created directories: needs root")
class PrepareDirs(CheckedTest):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="bartl-prep-")
        # A real group of this host other than root, for the app's group.
        self.group = next(g for g in grp.getgrall() if g.gr_gid != 0)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)
        super().tearDown()

    def prepare(self, *args):
        return subprocess.run(command(PREPARE_DIRS, *args), capture_output=True, text=True, timeout=scaled(30))

    def owner_mode(self, path):
        st = os.lstat(path)
        return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)

    def test_creates_what_is_missing_with_owner_and_mode(self):
        a = os.path.join(self.tmp, "srv", "demo")
        b = os.path.join(self.tmp, "var", "lib", "demo")
        os.makedirs(os.path.join(self.tmp, "var", "lib"))
        os.chmod(os.path.join(self.tmp, "var"), 0o711)
        r = self.prepare("--mode=0750", f"--group={self.group.gr_name}", a, b)
        self.assertEqual(r.returncode, 0, r.stderr)
        g = self.group.gr_gid
        self.assertEqual(self.owner_mode(a), (0, g, 0o750))
        self.assertEqual(self.owner_mode(b), (0, g, 0o750))
        # Ancestors made on the way are open to every app's path through them.
        self.assertEqual(self.owner_mode(os.path.dirname(a)), (0, 0, 0o755))
        # What existed is left as it was.
        self.assertEqual(self.owner_mode(os.path.join(self.tmp, "var")), (0, 0, 0o711))
        self.assertEqual(r.stderr.splitlines(), [
            f"bartl-prepare-dirs: created {os.path.dirname(a)} (root:root, 0755)",
            f"bartl-prepare-dirs: created {a} (root:{self.group.gr_name}, 0750)",
            f"bartl-prepare-dirs: created {b} (root:{self.group.gr_name}, 0750)"])

    def test_existing_directories_are_never_changed(self):
        d = os.path.join(self.tmp, "demo")
        os.makedirs(d)
        os.chown(d, 12345, 12345)
        os.chmod(d, 0o700)
        r = self.prepare("--mode=0750", f"--group={self.group.gr_gid}", d)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(self.owner_mode(d), (12345, 12345, 0o700))
        # A numeric GID, and no group at all: root's.
        n = os.path.join(self.tmp, "numeric")
        self.assertEqual(self.prepare("--mode=0750", f"--group={self.group.gr_gid}", n).returncode, 0)
        self.assertEqual(self.owner_mode(n), (0, self.group.gr_gid, 0o750))
        p = os.path.join(self.tmp, "plain")
        self.assertEqual(self.prepare(p).returncode, 0)
        self.assertEqual(self.owner_mode(p), (0, 0, 0o755))

    def test_group_of_a_user_is_its_primary_group(self):
        user = next(u for u in pwd.getpwall() if u.pw_uid != 0 and u.pw_gid != 0)
        shown = grp.getgrgid(user.pw_gid).gr_name
        for spec in (user.pw_name, str(user.pw_uid)):
            with self.subTest(user=spec):
                d = os.path.join(self.tmp, "by-" + spec)
                r = self.prepare("--mode=0750", f"--group-of={spec}", d)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(self.owner_mode(d), (0, user.pw_gid, 0o750))
                self.assertEqual(r.stderr, f"bartl-prepare-dirs: created {d} (root:{shown}, 0750)\n")

    def test_symlinked_ancestors_are_followed(self):
        real = os.path.join(self.tmp, "data")
        os.makedirs(real)
        os.symlink(real, os.path.join(self.tmp, "link"))
        r = self.prepare("--mode=0750", os.path.join(self.tmp, "link", "demo"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.owner_mode(os.path.join(real, "demo")), (0, 0, 0o750))
        self.assertTrue(os.path.islink(os.path.join(self.tmp, "link")))

    def test_what_is_not_a_directory_fails_and_names_it(self):
        f = os.path.join(self.tmp, "file")
        with open(f, "w"):
            pass
        dangling = os.path.join(self.tmp, "dangling")
        os.symlink(os.path.join(self.tmp, "nowhere"), dangling)
        ok = os.path.join(self.tmp, "ok")
        r = self.prepare(os.path.join(f, "sub"), dangling, ok)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.splitlines(), [
            f"bartl-prepare-dirs: {f}/sub: {f} is not a directory",
            f"bartl-prepare-dirs: {dangling}: {dangling} is not a directory",
            f"bartl-prepare-dirs: created {ok} (root:root, 0755)"])
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "nowhere")), "followed a dangling link")

    def test_bad_arguments(self):
        d = os.path.join(self.tmp, "x")
        for args, code, message in (
                ((), 64, "usage: bartl-prepare-dirs"),
                (("--mode=0999", d), 64, "--mode \"0999\" is not an octal mode"),
                (("--owner=x", d), 64, "unknown option --owner=x"),
                (("relative/x",), 1, "relative/x: not an absolute path"),
                ((os.path.join(self.tmp, "a", "..", "b"),), 1, "must not contain '..'"),
                (("--group=no-such-group-here", d), 78, "group \"no-such-group-here\" does not exist"),
                (("--group-of=no-such-user-here", d), 78, "user \"no-such-user-here\" does not exist"),
                (("--group=root", "--group-of=root", d), 64, "usage: bartl-prepare-dirs")):
            with self.subTest(args=args):
                r = self.prepare(*args)
                self.assertEqual(r.returncode, code, r.stderr)
                self.assertIn(message, r.stderr)
        self.assertFalse(os.path.exists(d))


if __name__ == "__main__":
    unittest.main(verbosity=2)
