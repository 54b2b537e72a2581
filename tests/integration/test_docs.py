#!/usr/bin/python3
"""The man pages document every config key, every D-Bus member and every bartld option, and
render without warnings. The sources of truth are the code: src/config/config.cpp's key lists
(cross-checked with the fixture that sets every key), dbus/*.xml, and `bartld --help`."""
import glob
import os
import re
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
        out[table] = re.findall(r'"(\w+)"sv', body)
    return out


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
        self.assertEqual(set(keys), set(full))
        for table, names in keys.items():
            # One version source only: the fixture's is version_command (for version_pattern).
            fixture = set(full[table]) | ({"version", "version_file"} if table == "app" else set())
            self.assertEqual(set(names), fixture, table)

    def test_every_key_documented_in_its_table(self):
        page = man_source("bartl.toml.5")
        for table, names in config_keys().items():
            text = section(page, f"[{table}]")
            self.assertTrue(text, f"bartl.toml(5) has no '# [{table}]' section")
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
        self.assertEqual(len(pages), 5, pages)
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
