#!/usr/bin/python3
"""The .deb and .rpm hold what an installation needs, at the paths the distribution expects,
and their maintainer scripts never start or restart bartl instances implicitly.

Building both takes minutes, so the packages are built once into a cache under the build
directory, keyed by a digest of the sources that go into them. The test builds when
BARTL_TEST_PACKAGES=1 (suite 'packaging': BARTL_TEST_PACKAGES=1 meson test --suite packaging)
and otherwise checks a cache that matches the sources, or skips saying how to build."""
import glob
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from bartltest import SOURCE_ROOT, BARTLD, BUILD_ROOT, command

CACHE = os.path.join(BUILD_ROOT, "packages-cache")

# Paths every package must hold ("*" ends a prefix match, for compressed man pages).
COMMON = [
    "/usr/sbin/bartld",
    "/usr/bin/bartlctl",
    "/bartld.service",
    "/bartld@.service",
    "/system-generators/bartl-generator",
    "/usr/libexec/bartl/bartl-prepare-dirs",
    "/usr/lib/systemd/catalog/bartl.catalog",
    "/usr/lib/sysusers.d/bartl.conf",
    "/usr/lib/tmpfiles.d/bartl.conf",
    "/usr/share/dbus-1/system.d/app.bartl.Instance1.conf",
    "/usr/share/dbus-1/interfaces/app.bartl.Instance1.xml",
    "/usr/share/bash-completion/completions/bartlctl",
    "/usr/share/man/man8/bartld.8*",
    "/usr/share/man/man8/bartl-generator.8*",
    "/usr/share/man/man1/bartlctl.1*",
    "/usr/share/man/man5/bartl.toml.5*",
    "/usr/share/man/man5/app.bartl.Instance1.5*",
    "/usr/share/man/man7/bartl.7*",
    "/usr/share/doc/bartl/examples/state-paths.conf",
    "/usr/share/doc/bartl/README.md*",  # README.md.gz in the .deb (dh_compress)
]
DOC = "/usr/share/doc/bartl/"


def cited_doc_paths():
    """Every /usr/share/doc/bartl/... path the man pages cite (files and directories)."""
    cited = set()
    for page in glob.glob(os.path.join(SOURCE_ROOT, "man", "*.scd")):
        with open(page) as f:
            # scdoc's _underline_ and *bold* markers are not part of the path.
            cited |= {p.rstrip("_*") for p in re.findall(r"/usr/share/doc/bartl/[\w./@-]*[\w@-]", f.read())}
    return sorted(cited)


def shipped_examples():
    """{path under DOC: executable?} of the example trees the packages ship uncompressed."""
    out = {}
    for example in ("appliance", "notes", "radicale", "redis"):
        top = os.path.join(SOURCE_ROOT, "examples", example)
        for d, dirs, files in os.walk(top):
            dirs[:] = [x for x in dirs if x != "__pycache__"]
            for name in files:
                path = os.path.join(d, name)
                out["examples/" + os.path.relpath(path, os.path.join(SOURCE_ROOT, "examples"))] = \
                    os.access(path, os.X_OK)
    return out


SKIP_REASON = ("no package build for these sources in the cache; build with "
               "BARTL_TEST_PACKAGES=1 meson test --suite packaging (takes minutes)")


def source_digest():
    """Digest of every file the packages are built from (tracked and new, not ignored)."""
    files = subprocess.run(["git", "-C", SOURCE_ROOT, "ls-files", "-z", "-co", "--exclude-standard"],
                           capture_output=True, check=True).stdout.split(b"\0")
    h = hashlib.sha256()
    for name in sorted(f for f in files if f):
        path = os.path.join(SOURCE_ROOT, name.decode())
        if not os.path.isfile(path) or name.startswith(b"tests/"):
            continue
        h.update(name + b"\0")
        with open(path, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def packages():
    """{'deb': path, 'rpm': path}, building them when asked to; raises SkipTest otherwise."""
    stamp = os.path.join(CACHE, "digest")
    asked = os.environ.get("BARTL_TEST_PACKAGES") == "1"
    # Nothing to check and not asked to build: skip before the digest, which needs git
    # (a fresh server may not have it).
    if not asked and not os.path.exists(stamp):
        raise unittest.SkipTest(SKIP_REASON)
    digest = source_digest()
    fresh = False
    if os.path.exists(stamp):
        with open(stamp) as f:
            fresh = f.read() == digest
    if not fresh:
        if not asked:
            raise unittest.SkipTest(SKIP_REASON)
        shutil.rmtree(CACHE, ignore_errors=True)
        os.makedirs(CACHE)
        for kind in ("deb", "rpm"):
            t0 = time.monotonic()
            r = subprocess.run([os.path.join(SOURCE_ROOT, "packaging", "build-" + kind), CACHE],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise AssertionError(f"packaging/build-{kind} failed:\n{r.stdout}\n{r.stderr}")
            print(f"packaging/build-{kind}: {time.monotonic() - t0:.0f} s", flush=True)
            with open(os.path.join(CACHE, f"build-{kind}.log"), "w") as f:
                f.write(r.stdout + r.stderr)
        with open(stamp, "w") as f:
            f.write(digest)
    found = {"deb": glob.glob(os.path.join(CACHE, "bartl_*.deb")),
             "rpm": glob.glob(os.path.join(CACHE, "bartl-*.rpm"))}
    for kind, paths in found.items():
        if len(paths) != 1:
            raise AssertionError(f"expected one {kind} in {CACHE}, found {paths}")
    return {k: v[0] for k, v in found.items()}


def has(listing, wanted):
    if wanted.endswith("*"):
        return any(p.startswith(wanted[:-1]) for p in listing)
    if wanted.startswith("/bartld"):  # units: the directory differs per distribution
        return any(p.endswith("/systemd/system" + wanted) for p in listing)
    if wanted.startswith("/system-generators/"):  # /lib or /usr/lib, as pkg-config says
        return any(p.endswith("/systemd" + wanted) for p in listing)
    return wanted in listing


class Packages(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pkgs = packages()

    def deb_list(self):
        out = subprocess.run(["dpkg-deb", "-c", self.pkgs["deb"]], capture_output=True, text=True, check=True).stdout
        # "drwxr-xr-x root/root 0 2024-11-30 12:00 ./usr/sbin/bartld" (symlinks add "-> target")
        return [line.split()[5][1:] for line in out.splitlines()]

    def rpm_list(self):
        return subprocess.run(["rpm", "-qlp", self.pkgs["rpm"]], capture_output=True, text=True,
                              check=True).stdout.split()

    def test_deb_contents(self):
        listing = self.deb_list()
        for path in COMMON:
            with self.subTest(path=path):
                self.assertTrue(has(listing, path), f"{path} not in {self.pkgs['deb']}")
        # Debian bookworm keeps units below /lib (pkg-config systemd says so).
        self.assertIn("/lib/systemd/system/bartld@.service", listing)
        self.assertIn("/etc/bartl/", listing)

    def test_rpm_contents(self):
        listing = self.rpm_list()
        for path in COMMON:
            with self.subTest(path=path):
                self.assertTrue(has(listing, path), f"{path} not in {self.pkgs['rpm']}")
        self.assertIn("/usr/lib/systemd/system/bartld@.service", listing)

    def test_examples_the_man_pages_cite_are_shipped(self):
        cited = cited_doc_paths()
        self.assertIn(DOC + "examples/appliance", cited)  # bartl(7)
        for kind, listing in (("deb", self.deb_list()), ("rpm", self.rpm_list())):
            # dpkg-deb lists directories with a trailing "/", rpm without.
            entries = {p.rstrip("/") for p in listing}
            for path in cited:
                with self.subTest(package=kind, path=path):
                    self.assertIn(path, entries, f"{path} is cited by a man page but not in the {kind}")
            for rel in shipped_examples():
                with self.subTest(package=kind, example=rel):
                    self.assertIn(DOC + rel, entries, f"{DOC + rel} (uncompressed) not in the {kind}")

    def test_deb_appliance_example_builds_as_shipped(self):
        # The operator's way: copy the shipped examples and build the product package from them.
        with tempfile.TemporaryDirectory() as d:
            subprocess.run(["dpkg-deb", "-x", self.pkgs["deb"], os.path.join(d, "root")], check=True)
            examples = os.path.join(d, "root", DOC.strip("/"), "examples")
            for rel, executable in shipped_examples().items():
                with self.subTest(example=rel):
                    self.assertEqual(os.access(os.path.join(d, "root", DOC.strip("/"), rel), os.X_OK), executable)
            copy = os.path.join(d, "examples")
            shutil.copytree(examples, copy, symlinks=True)
            r = subprocess.run([os.path.join(copy, "appliance", "build"), "1.0.0", os.path.join(d, "out")],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            deb = os.path.join(d, "out", "notes_1.0.0_all.deb")
            listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True, check=True).stdout
            self.assertIn("./etc/bartl/notes.toml", listing)
            self.assertIn("./usr/lib/notes/bartl/migrations/2.0.0-add-tags", listing)

    def test_deb_units_name_the_installed_binary(self):
        with tempfile.TemporaryDirectory() as d:
            subprocess.run(["dpkg-deb", "-x", self.pkgs["deb"], d], check=True)
            with open(os.path.join(d, "lib", "systemd", "system", "bartld@.service")) as f:
                self.assertIn("ExecStart=/usr/sbin/bartld --instance %i\n", f.read())
            self.assertTrue(os.access(os.path.join(d, "usr", "sbin", "bartld"), os.X_OK))
            r = subprocess.run([os.path.join(d, "usr", "sbin", "bartld"), "--help"], capture_output=True, text=True)
            # Built with sysconfdir /etc, not the /usr/local of a plain meson setup.
            self.assertIn("/etc/bartl/NAME.toml", r.stdout)

    def test_deb_maintainer_scripts_start_nothing(self):
        with tempfile.TemporaryDirectory() as d:
            subprocess.run(["dpkg-deb", "-e", self.pkgs["deb"], d], check=True)
            scripts = {}
            for n in ("postinst", "prerm", "postrm"):
                if os.path.exists(os.path.join(d, n)):
                    with open(os.path.join(d, n)) as f:
                        scripts[n] = f.read()
        postinst = scripts.get("postinst", "")
        # The bartl group is created at install time (dh_installsysusers).
        self.assertIn("systemd-sysusers", postinst)
        self.assertIn("bartl.conf", postinst)
        # bartl-generator sees the configurations already present (a reload restarts nothing).
        self.assertIn("systemctl --system daemon-reload", postinst)
        for name, text in scripts.items():
            lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
            for i, line in enumerate(lines):
                if "deb-systemd-invoke" in line and any(v in line for v in ("start", "restart")):
                    self.fail(f"{name} starts or restarts a unit: {line}")
                # Re-creating the links of a unit the admin had enabled is fine; enabling is not.
                if "deb-systemd-helper enable" in line and "was-enabled" not in lines[i - 1]:
                    self.fail(f"{name} enables a unit: {line}")

    def test_rpm_scriptlets_use_the_systemd_macros(self):
        out = subprocess.run(["rpm", "-qp", "--scripts", self.pkgs["rpm"]], capture_output=True, text=True,
                             check=True).stdout
        out = "\n".join(l for l in out.splitlines() if not l.lstrip().startswith("#"))
        self.assertIn("systemctl --no-reload preset bartld.service", out)   # %systemd_post
        self.assertIn("systemctl --no-reload disable --now bartld.service", out)  # %systemd_preun
        self.assertIn("systemctl try-restart bartld.service", out)   # %systemd_postun_with_restart
        self.assertNotIn("bartld@", out, "template instances are the products' to restart")
        self.assertIn("systemctl daemon-reload", out)  # bartl-generator, for the configs present

    def test_lintian_reports_no_errors(self):
        if shutil.which("lintian") is None:
            self.skipTest("lintian is not installed")
        r = subprocess.run(["lintian", "--fail-on", "error", self.pkgs["deb"]], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotRegex(r.stdout, r"(?m)^E: ")


class Appliance(unittest.TestCase):
    """The example product package: depends on bartl, ships its config and hooks, no drop-in."""

    def test_appliance_package(self):
        if os.environ.get("BARTL_TEST_PACKAGES") != "1":
            self.skipTest("builds a package; run with BARTL_TEST_PACKAGES=1")
        with tempfile.TemporaryDirectory() as out:
            subprocess.run([os.path.join(SOURCE_ROOT, "examples", "appliance", "build"), "2.0.0", out],
                           check=True, capture_output=True)
            deb = os.path.join(out, "notes_2.0.0_all.deb")
            depends = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], capture_output=True, text=True,
                                     check=True).stdout
            self.assertIn("bartl", depends.replace(",", " ").split())
            root = os.path.join(out, "root")
            subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
            for path in ("etc/bartl/notes.toml", "usr/lib/notes/bartl/init",
                         "usr/lib/notes/bartl/migrations/2.0.0-add-tags"):
                self.assertTrue(os.path.exists(os.path.join(root, path)), path)
            # No drop-in: bartl-generator derives the unit's from notes.toml.
            self.assertFalse(os.path.exists(os.path.join(root, "lib/systemd/system/bartld@notes.service.d")))
            ctl = os.path.join(out, "ctl")
            subprocess.run(["dpkg-deb", "-e", deb, ctl], check=True)
            with open(os.path.join(ctl, "conffiles")) as f:
                self.assertIn("/etc/bartl/notes.toml", f.read().split())
            # The conffile reads the engine version from the installed engine (version_command
            # runs /usr/lib/notes/notes.py): point it at the extracted package instead.
            with open(os.path.join(root, "etc/bartl/notes.toml")) as f:
                conf = f.read().replace("/usr/lib/notes/", os.path.join(root, "usr/lib/notes") + "/")
            checked = os.path.join(out, "notes.toml")
            with open(checked, "w") as f:
                f.write(conf)
            r = subprocess.run(command(BARTLD, "--check-config", "--config", checked), capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("engine 2.0.0", r.stdout)


if __name__ == "__main__":
    try:
        packages()
    except unittest.SkipTest as e:
        print(f"SKIP: {e}")
        raise SystemExit(77)  # meson's "skipped"
    unittest.main(verbosity=2)
