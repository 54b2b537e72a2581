#!/usr/bin/python3
"""The man pages document every config key, every D-Bus member and every bartld option, and
render without warnings. The sources of truth are the code: src/config/config.cpp's key lists
(cross-checked with the fixture that sets every key), dbus/*.xml, and `bartld --help`.

The repository carries its own contract: bartl(7) holds the invariants, the decision table and
the exit codes the code cites, every citation names a section that exists, and no file points
at a document outside the repository."""
import glob
import os
import re
import shutil
import subprocess
import tomllib
import unittest
import xml.etree.ElementTree as ET

from bartltest import SOURCE_ROOT, BARTLD, CheckedTest, command

MAN = os.path.join(SOURCE_ROOT, "man")
BUILD_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(BARTLD))))


def man_source(page):
    with open(os.path.join(MAN, page + ".scd")) as f:
        return f.read()


def config_keys():
    """{table: [keys]} from the key arrays the config parser accepts."""
    with open(os.path.join(SOURCE_ROOT, "src", "config", "config.cpp")) as f:
        text = f.read()
    out = {}
    for table, body in re.findall(r"constexpr std::array (\w+)_keys\{(.*?)\};", text, re.S):
        out[table.replace("_", ".")] = re.findall(r'"(\w+)"sv', body)  # store_s3 -> [store.s3]
    return out


# Tables written as arrays of tables ([[state.databases]]): documented under that heading.
ARRAY_TABLES = {"state.databases"}


def fixture_table(full, table):
    """The table "store.s3" of a parsed TOML document (nested tables by their dotted name); of
    an array of tables, the keys of all its entries."""
    for part in table.split("."):
        full = full[part]
    if isinstance(full, list):
        return {k: v for entry in full for k, v in entry.items()}
    return full


def source_files():
    """Paths (relative to SOURCE_ROOT) of the checkout's files: tracked and new ones, not ignored
    (git ls-files), or every file outside build directories when this is not a git checkout."""
    r = subprocess.run(["git", "-C", SOURCE_ROOT, "ls-files", "-z", "-co", "--exclude-standard"],
                       capture_output=True) if shutil.which("git") else None
    if r is not None and r.returncode == 0:
        return sorted(n for n in r.stdout.decode().split("\0") if n and os.path.isfile(os.path.join(SOURCE_ROOT, n)))
    out = []
    for d, dirs, files in os.walk(SOURCE_ROOT):
        dirs[:] = [x for x in dirs if x != ".git" and not x.startswith("build")]
        out += [os.path.relpath(os.path.join(d, f), SOURCE_ROOT) for f in files]
    return sorted(out)


# Documents a user of the repository does not have. Spelled in pieces so that this file does
# not match itself.
OUTSIDE_REFERENCES = ["DESIGN" + ".md", "../" + "shared", "/work/" + "shared", "shared " + "folder"]


def outside_references(name, data):
    """'NAME:LINE: text' for every line of `data` (bytes) that mentions an outside document."""
    found = []
    for i, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        if any(ref.lower() in line.lower() for ref in OUTSIDE_REFERENCES):
            found.append(f"{name}:{i}: {line.strip()[:120]}")
    return found


def section(text, heading):
    """The text of '# HEADING' up to the next top-level heading."""
    m = re.search(rf"^# {re.escape(heading)}\n(.*?)(?=^# |\Z)", text, re.S | re.M)
    return m.group(1) if m else ""


class ConfigKeys(unittest.TestCase):
    def test_parser_and_fixture_agree(self):
        # Guards the parsing of config.cpp below: if its shape changes, this fails loudly.
        keys = config_keys()
        with open(os.path.join(SOURCE_ROOT, "tests", "unit", "config", "fixtures", "full.toml"), "rb") as f:
            full = tomllib.load(f)
        self.assertEqual({t for t in keys if "." not in t}, set(full))
        for table, names in keys.items():
            # One version source only: the fixture's is version_command (for version_pattern).
            fixture = set(fixture_table(full, table)) | ({"version", "version_file"} if table == "app" else set())
            self.assertEqual(set(names), fixture, table)

    def test_every_key_documented_in_its_table(self):
        page = man_source("bartl.toml.5")
        for table, names in config_keys().items():
            heading = f"[[{table}]]" if table in ARRAY_TABLES else f"[{table}]"
            text = section(page, heading)
            self.assertTrue(text, f"bartl.toml(5) has no '# {heading}' section")
            for key in names:
                with self.subTest(key=f"[{table}] {key}"):
                    m = re.search(rf"^\*{key}\* = (.*)\n((?:\t.*\n|\n)+)", text, re.M)
                    self.assertIsNotNone(m, f"[{table}] {key} is not documented in bartl.toml(5)")
                    entry = m.group(0)
                    self.assertRegex(entry, r"Example:", f"[{table}] {key} has no example")
                    # A default (or "required") is stated on the key's line, except for the
                    # mutually exclusive version sources, which have none.
                    if key not in ("version", "version_file", "version_command"):
                        self.assertRegex(m.group(1), r"\((default|required)", f"[{table}] {key} has no default")

    def test_detects_an_undocumented_key(self):
        # The check above can fail: drop one key's entry and it must notice.
        page = man_source("bartl.toml.5").replace("*keep_weekly* =", "*keep_weakly* =")
        text = section(page, "[backup]")
        self.assertIsNone(re.search(r"^\*keep_weekly\* = ", text, re.M))


class DBus(unittest.TestCase):
    def test_every_member_documented(self):
        xmls = glob.glob(os.path.join(SOURCE_ROOT, "dbus", "*.xml"))
        if not xmls:
            self.skipTest("dbus/*.xml does not exist yet: nothing to compare the man page with")
        for path in xmls:
            root = ET.parse(path).getroot()
            for iface in root.iter("interface"):
                name = iface.get("name")
                page = man_source(name + ".5")
                for kind, heading in (("method", "METHODS"), ("signal", "SIGNALS"), ("property", "PROPERTIES")):
                    text = section(page, heading)
                    for member in iface.iter(kind):
                        with self.subTest(member=f"{kind} {member.get('name')}"):
                            self.assertRegex(text, rf"(?m)^\*{member.get('name')}\*",
                                             f"{name}.{member.get('name')} ({kind}) is not in {name}(5) {heading}")
                        if kind == "property":
                            self.assertRegex(text, rf"(?m)^\*{member.get('name')}\* \({re.escape(member.get('type'))}\)")
                with open(path) as f:
                    errors = set(re.findall(r"app\.bartl\.Error\.\w+", f.read()))
                for error in errors:
                    with self.subTest(error=error):
                        self.assertIn(f"*{error}*", section(page, "ERRORS"))


class Options(CheckedTest):
    def test_every_bartld_option_in_bartld_8(self):
        help_text = subprocess.run(command(BARTLD, "--help"), capture_output=True, text=True, check=True).stdout
        options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", help_text))
        self.assertIn("--restore-from", options)
        page = section(man_source("bartld.8"), "OPTIONS")
        for opt in sorted(options):
            with self.subTest(option=opt):
                self.assertIn(f"*{opt}*", page, f"bartld {opt} is not documented in bartld(8) OPTIONS")

    def test_help_names_each_argument(self):
        # Placeholders say what goes there, and --verify's ID is optional.
        help_text = subprocess.run(command(BARTLD, "--help"), capture_output=True, text=True, check=True).stdout
        for shown in ("--config FILE", "--instance NAME", "--restore-from ID", "--verify [ID]"):
            with self.subTest(option=shown):
                self.assertRegex(help_text, rf"(?m)^.*{re.escape(shown)}\s", help_text)
        self.assertNotIn("TEXT", help_text)

    def test_every_bartlctl_verb_in_bartlctl_1(self):
        ctl = os.environ.get("BARTLCTL", os.path.join(BUILD_ROOT, "src", "ctl", "bartlctl"))
        if not os.access(ctl, os.X_OK):
            self.skipTest("bartlctl is not built yet")
        help_text = subprocess.run(command(ctl, "--help"), capture_output=True, text=True).stdout
        verbs = re.findall(r"^\s{2,}([a-z][a-z-]+)\s{2,}\S", help_text.split("Subcommands:")[-1], re.M) \
            if "Subcommands:" in help_text else []
        if not verbs:
            self.skipTest("bartlctl --help lists no subcommands in CLI11's format")
        page = section(man_source("bartlctl.1"), "VERBS")
        for verb in verbs:
            with self.subTest(verb=verb):
                self.assertRegex(page, rf"(?m)^\*{verb}\*", f"bartlctl {verb} is not in bartlctl(1) VERBS")


class Rendering(unittest.TestCase):
    def test_pages_built_and_render_cleanly(self):
        pages = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(MAN, "*.scd")))
        # Every source is built and installed: man/meson.build lists each one.
        with open(os.path.join(MAN, "meson.build")) as f:
            listed = re.search(r"foreach page : \[(.*?)\]", f.read(), re.S).group(1)
        self.assertEqual(sorted(re.findall(r"'([^']+)'", listed)), pages)
        self.assertGreaterEqual(len(pages), 6, pages)
        for page in pages:
            with self.subTest(page=page):
                built = os.path.join(BUILD_ROOT, "man", page)
                self.assertTrue(os.path.exists(built), f"meson did not build {built}")
                r = subprocess.run(["man", "--warnings", "-l", "-Tutf8", built], capture_output=True, text=True,
                                   env=dict(os.environ, MANWIDTH="80"))
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stderr, "", f"{page} renders with warnings")
                text = re.sub(".\b", "", r.stdout)  # man's overstrike bold, when not on a terminal
                self.assertTrue(re.search(r"^SEE ALSO$", text, re.M), f"{page}: no SEE ALSO section rendered")
                # A server without locales (a minimal Debian) renders in ASCII: a character
                # groff cannot map there is a warning ("can't find special character").
                r = subprocess.run(["man", "--warnings", "-l", built], capture_output=True, text=True,
                                   env=dict(os.environ, MANWIDTH="80", LC_ALL="C", LANG="C"))
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stderr, "", f"{page} renders with warnings in the C locale")

    def test_sources_are_ascii(self):
        # What makes the C-locale rendering above fail, named at its line.
        for path in sorted(glob.glob(os.path.join(MAN, "*.scd"))):
            with open(path, "rb") as f:
                for i, line in enumerate(f, 1):
                    with self.subTest(page=os.path.basename(path), line=i):
                        self.assertTrue(line.isascii(), f"{path}:{i}: non-ASCII {line.decode(errors='replace')!r}")


class Contract(unittest.TestCase):
    """bartl(7) is the contract the code cites; nothing points outside the repository."""

    def test_no_file_refers_to_a_document_outside_the_repository(self):
        found = []
        for name in source_files():
            with open(os.path.join(SOURCE_ROOT, name), "rb") as f:
                found += outside_references(name, f.read())
        self.assertEqual(found, [], "cite bartl(7) or a file in the repository instead")

    def test_detects_an_outside_reference(self):
        # The scan above can fail: each spelling is caught, with its line.
        for ref in OUTSIDE_REFERENCES:
            with self.subTest(ref=ref):
                text = f"first line\nsee {ref.upper()} for the contract\n".encode()
                self.assertEqual(outside_references("README.md", text),
                                 [f"README.md:2: see {ref.upper()} for the contract"])

    def test_bartl_7_carries_nine_invariants(self):
        text = section(man_source("bartl.7"), "INVARIANTS")
        self.assertTrue(text, "bartl(7) has no INVARIANTS section")
        items = re.findall(r"(?m)^\. \*([^*]+)\*", text)
        self.assertEqual(len(items), 9, items)
        for word in ("marker", "did not create", "half-done", "verified", "no backup", "Retention", "Memory", "Bad input",
                     "One writer"):
            self.assertTrue(any(word.lower() in i.lower() for i in items), f"no invariant about {word!r}: {items}")

    def test_citations_of_bartl_7_name_what_it_holds(self):
        page = man_source("bartl.7")
        headings = [h.lower() for h in re.findall(r"(?m)^#+ (.+)$", page)]
        count = len(re.findall(r"(?m)^\. \*", section(page, "INVARIANTS")))
        bad, seen = [], 0
        for name in source_files():
            if name.startswith("tests/fuzz/corpus/"):
                continue
            try:
                with open(os.path.join(SOURCE_ROOT, name), encoding="utf-8") as f:
                    text = f.read()
            except (UnicodeDecodeError, OSError):
                continue
            # Comments wrap: a citation may run over a line break and a comment marker.
            flat = re.sub(r"\s*\n\s*(?:#|//|\*|;)?\s*", " ", text)
            for cited in re.findall(r'bartl\(7\)(?:\'s)?,? "([^"]+)"', flat):
                seen += 1
                if not any(cited.lower() in h for h in headings):
                    bad.append(f"{name}: bartl(7) \"{cited}\" is no section of man/bartl.7.scd")
            for nums in re.findall(r"bartl\(7\),? invariants? ([0-9][0-9, and-]*)", flat):
                seen += 1
                for n in re.findall(r"[0-9]+", nums):
                    if not 1 <= int(n) <= count:
                        bad.append(f"{name}: bartl(7) invariant {n}, but it has {count}")
        self.assertGreater(seen, 5, "the citation patterns no longer match the code's comments")
        self.assertEqual(bad, [])

    def test_exit_codes_agree(self):
        with open(os.path.join(SOURCE_ROOT, "src", "core", "error.hpp")) as f:
            enum = re.search(r"enum class ExitCode : int \{(.*?)\};", f.read(), re.S).group(1)
        # bartld's codes; bartlctl's own (3, 4) are in bartlctl(1).
        code = {int(n) for n, note in re.findall(r"= (\d+),[^\n]*?(///[^\n]*)?\n", enum) if "bartlctl only" not in note}
        contract = section(man_source("bartl.7"), "BINARIES AND EXIT CODES")
        listed = {int(n) for n in re.findall(r"(?m)^- \*(\d+)\*", contract)}
        not_restarted = {int(n) for n, rest in re.findall(r"(?ms)^- \*(\d+)\*:(.*?)(?=^- |^$)", contract)
                         if "Not restarted" in " ".join(rest.split())}
        daemon = {int(n) for n in re.findall(r"(?m)^\*(\d+)\*$", section(man_source("bartld.8"), "EXIT STATUS"))}
        self.assertEqual(listed, code, "bartl(7) BINARIES AND EXIT CODES vs src/core/error.hpp ExitCode")
        self.assertEqual(daemon, code, "bartld(8) EXIT STATUS vs src/core/error.hpp ExitCode")
        self.assertEqual(not_restarted, {64, 65, 66, 78})
        for unit in glob.glob(os.path.join(SOURCE_ROOT, "units", "bartld*.service.in")):
            with open(unit) as f:
                prevent = re.search(r"(?m)^RestartPreventExitStatus=(.*)$", f.read())
            with self.subTest(unit=os.path.basename(unit)):
                self.assertIsNotNone(prevent)
                self.assertEqual({int(n) for n in prevent.group(1).split()}, not_restarted)

    def test_readme_points_at_the_man_pages_for_the_contract(self):
        with open(os.path.join(SOURCE_ROOT, "README.md")) as f:
            readme = f.read()
        m = re.search(r"(?s)The contract \(.*?\n\n", readme)
        self.assertIsNotNone(m, "README.md says nowhere where the contract is")
        self.assertIn("bartl(7)", m.group(0))


def install_set(*args):
    """The packages `tools/install-deps --list ARGS` names, as a set."""
    r = subprocess.run([os.path.join(SOURCE_ROOT, "tools", "install-deps"), "--list", *args],
                       capture_output=True, text=True, check=True)
    return set(r.stdout.split())


def providers(package):
    """`package` and the packages it depends on directly (alternatives included), as installed."""
    r = subprocess.run(["dpkg-query", "-W", "-f=${Depends} ${Pre-Depends}", package], capture_output=True, text=True)
    return {package} | {re.split(r"[\s(:]", d.strip())[0] for d in re.split(r"[,|]", r.stdout) if d.strip()}


class Dependencies(unittest.TestCase):
    """tools/install-deps holds the one package list; its sets are what each step needs."""

    def test_build_set_is_the_debian_build_depends(self):
        with open(os.path.join(SOURCE_ROOT, "packaging", "debian", "control")) as f:
            control = f.read()
        field = re.search(r"^Build-Depends:(.*?)^\S", control, re.S | re.M).group(1)
        build_depends = {re.split(r"[\s(]", d.strip())[0] for d in field.split(",") if d.strip()}
        # The package builds with -Dtests=false (no catch2, no python3) under debhelper. The
        # build set holds systemd and libdbus-1-dev too: their .pc files give the install
        # directories at meson setup, so the demo's build directory is the tests' as well.
        self.assertEqual(install_set("--build") | {"debhelper-compat"}, build_depends | {"catch2", "python3"})

    def test_every_set_is_part_of_the_whole_list(self):
        everything = install_set()
        for subset in ("--build", "--demo", "--demo-postgresql"):
            with self.subTest(subset=subset):
                self.assertLessEqual(install_set(subset), everything)
        self.assertLess(install_set("--build"), install_set("--demo"))
        self.assertLess(install_set("--demo"), install_set("--demo-postgresql"))

    def test_an_unknown_set_is_a_usage_error(self):
        r = subprocess.run([os.path.join(SOURCE_ROOT, "tools", "install-deps"), "--list", "--tests"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 64)
        self.assertIn("usage: tools/install-deps", r.stderr)

    def test_demo_installs_what_it_runs_and_builds_what_it_starts(self):
        with open(os.path.join(SOURCE_ROOT, "tools", "demo")) as f:
            demo = f.read()
        self.assertIn("tools/install-deps --demo${PG:+-postgresql}", demo)
        built = re.search(r'meson compile -C "\$BUILD" ([\w ]+)', demo).group(1).split()
        started = re.findall(r"^(BARTL\w+)=\$SRC/\$BUILD/src/\w+/(\w+)$", demo, re.M)
        self.assertEqual(sorted(built), sorted(name for _, name in started))
        # The programs the demo runs besides those, by the package that ships them here.
        for program, subset in (("dbus-daemon", "--demo"), ("curl", "--demo"), ("psql", "--demo-postgresql"),
                                ("initdb", "--demo-postgresql"), ("pg_ctl", "--demo-postgresql")):
            with self.subTest(program=program):
                self.assertRegex(demo, rf"\b{program}\b")
                path = shutil.which(program) or glob.glob(f"/usr/lib/postgresql/*/bin/{program}")[0]
                owner = subprocess.run(["dpkg", "-S", os.path.realpath(path)], capture_output=True, text=True,
                                       check=True).stdout.split(":")[0]
                self.assertTrue(any(owner in providers(p) for p in install_set(subset)),
                                f"{program} ({owner}) comes with no package of install-deps {subset}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
