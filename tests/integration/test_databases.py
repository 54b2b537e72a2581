#!/usr/bin/python3
"""Databases as declared state ([[state.databases]], bartl.toml(5) DATABASES), end to end
through the real bartld against real servers the test starts itself (bartltest.db): a private
PostgreSQL 15 and a private MariaDB, each on a Unix socket in a temporary directory, and real
SQLite files. Each test drives bartld --prepare (the whole startup loop) and asserts what the
server holds afterwards: the database created, bartl's state ID in it, a foreign database
refused with exit 66 and left as it was, an empty pre-created database taken as absent, the
BARTL_DB_* variables a hook sees; backups that stream each database's dump into the blob while a
writer keeps writing, and restores that load it into a staging database swapped in only after
the whole blob verified (also when killed -9 in the middle, and by hand from the blob)."""
import glob
import os
import random
import pwd
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest

from bartltest import (EXIT_CONFIG, EXIT_FOREIGN, EXIT_OK, EXIT_RUNTIME, CheckedTest, Instance, bartlctl, command,
                       kill_session, scaled, write_exec)
from bartltest.config import edit_config, toml_value
from bartltest.db import MariaDBServer, PostgresServer, Unavailable

SERVERS = {}


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def server(kind):
    """The one server of `kind` ("postgresql", "mariadb") for this run, started on first use;
    the test is skipped when it cannot run here."""
    if kind not in SERVERS:
        try:
            SERVERS[kind] = PostgresServer() if kind == "postgresql" else MariaDBServer()
        except Unavailable as e:
            SERVERS[kind] = e
    s = SERVERS[kind]
    if isinstance(s, Unavailable):
        raise unittest.SkipTest(str(s))
    return s


def tearDownModule():
    for s in SERVERS.values():
        if not isinstance(s, Unavailable):
            s.close()


class DbInstance(Instance):
    """The fault suite's generic instance with [[state.databases]] entries appended; bartld
    runs under the memory checker when one is set up (BARTL_TEST_WRAPPER)."""

    def __init__(self, root, databases, **kw):
        self.databases = databases
        super().__init__(root, **kw)

    def argv(self, *args):
        argv = command(self.bartld, "--config", self.config, *args)
        return [shutil.which(argv[0]) or argv[0], *argv[1:]]  # posix_spawn does not search PATH

    def write_config(self, **changes):
        super().write_config(**changes)
        with open(self.config, "a") as f:
            for d in self.databases:
                f.write("\n[[state.databases]]\n")
                f.write("".join(f"{k} = {toml_value(v)}\n" for k, v in d.items()))


# A dump holding every kind of object bound to its schema (my_objects_seeded()).
OBJECTS_SQL = """
CREATE TABLE t (x int, note varchar(20)) ENGINE=InnoDB;
CREATE TABLE calls (x int, via varchar(20)) ENGINE=InnoDB;
CREATE TABLE other (y int) ENGINE=InnoDB;
CREATE SEQUENCE ids;
CREATE TABLE versioned (y int) WITH SYSTEM VERSIONING;
INSERT INTO versioned VALUES (7);
CREATE FUNCTION dbl(a int) RETURNS int DETERMINISTIC RETURN a * 2;
CREATE PROCEDURE note_it(IN v int) INSERT INTO calls VALUES (v, 'trigger');
CREATE TRIGGER t_ins AFTER INSERT ON t FOR EACH ROW CALL note_it(NEW.x);
CREATE VIEW v1 AS SELECT x, dbl(x) AS d FROM t;
CREATE VIEW v0 AS SELECT d FROM v1 WHERE d > 2;
SET sql_mode = 'PIPES_AS_CONCAT';
CREATE FUNCTION joined() RETURNS varchar(10) DETERMINISTIC RETURN 'a' || 'b';
SET sql_mode = DEFAULT;
SET NAMES latin1;
CREATE PROCEDURE latin() SELECT 'déjà';
SET NAMES utf8mb4;
CREATE VIEW `grüße` AS SELECT 'ä€' AS a;
CREATE EVENT tidy ON SCHEDULE EVERY 1 DAY DO DELETE FROM calls WHERE x < 0;
INSERT INTO t VALUES (1, 'a'), (2, 'b');
"""

HOOK_ENV = """#!/bin/sh
# The init hook records the BARTL_DB_ variables it gets, then writes into each database.
env | grep '^BARTL_DB_' | sort > "$BARTL_STAGING/db-env"
"""


class DatabaseTest(CheckedTest):
    counter = 0

    def setUp(self):
        super().setUp()
        self.root = tempfile.mkdtemp(prefix="bartl-it-db-")
        os.chmod(self.root, 0o755)
        self.addCleanup(shutil.rmtree, self.root, ignore_errors=True)
        DatabaseTest.counter += 1
        self.dbname = f"notes{os.getpid()}_{DatabaseTest.counter}"

    def instance(self, databases, **kw):
        return DbInstance(self.root, databases, **kw)

    def prepare(self, inst, expect=EXIT_OK, env=None):
        r = inst.run("--prepare", env=env)
        self.assertEqual(r.returncode, expect, f"bartld --prepare:\n{r.stderr}")
        return r

    # --- PostgreSQL ------------------------------------------------------------------------

    def pg_entry(self, pg):
        return {"type": "postgresql", "name": self.dbname, "connection": pg.conninfo}

    def test_postgresql_fresh_install_creates_the_database_with_its_state_id(self):
        pg = server("postgresql")
        self.addCleanup(pg.sql, f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        hook = write_exec(os.path.join(self.root, "init-hook"), HOOK_ENV + (
            'psql -X -q -v ON_ERROR_STOP=1 "$BARTL_DB_%s_CONNECTION" -c "CREATE TABLE notes (body text); '
            "INSERT INTO notes VALUES ('first')\"\n" % self.dbname.upper()))
        inst = self.instance([self.pg_entry(pg)], init_hook=[hook], store=False)
        self.prepare(inst)
        m = inst.marker()
        self.assertEqual(pg.state_id(self.dbname), m["state_id"])
        self.assertIn({"kind": "postgresql", "name": self.dbname, "binding": "setting"},
                      [{k: c[k] for k in ("kind", "name", "binding")} for c in m["components"]])
        self.assertEqual(pg.sql("SELECT body FROM notes", db=self.dbname), "first")
        env = read(os.path.join(inst.paths[0], "db-env"))
        p = f"BARTL_DB_{self.dbname.upper()}_"
        self.assertIn(f"{p}TYPE=postgresql\n", env)
        self.assertIn(f"{p}NAME={self.dbname}\n", env)
        self.assertIn(f"{p}CONNECTION={pg.conninfo} dbname={self.dbname}\n", env)
        # The next start serves: the database carries the marker's state ID.
        r = self.prepare(inst)
        self.assertIn("decision: serve", r.stderr)

    def foreign_pg(self):
        """A PostgreSQL database with a table and no state ID (an install bartl did not make),
        and an instance declaring it; (server, instance)."""
        pg = server("postgresql")
        pg.sql(f'CREATE DATABASE "{self.dbname}"')
        self.addCleanup(pg.sql, f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        pg.sql("CREATE TABLE t (x int); INSERT INTO t VALUES (42)", db=self.dbname)
        inst = self.instance([self.pg_entry(pg)], store=False)
        return pg, inst

    def test_postgresql_foreign_database_is_refused_and_untouched(self):
        pg, inst = self.foreign_pg()
        r = self.prepare(inst, EXIT_FOREIGN)
        self.assertIn(f"postgresql:{self.dbname} holds tables (no state ID) and there is no marker", r.stderr)
        self.assertIn("bartlctl adopt", r.stderr)
        self.assertEqual(pg.sql("SELECT x FROM t", db=self.dbname), "42")
        self.assertEqual(pg.state_id(self.dbname), "")
        self.assertIsNone(inst.marker())

    def test_postgresql_foreign_database_adopted_then_served(self):
        pg, inst = self.foreign_pg()
        self.prepare(inst, EXIT_FOREIGN)
        # The way out the refusal names: bartlctl adopt (run here with no bartld running).
        no_bus = {"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=" + os.path.join(self.root, "no-system-bus")}
        r = bartlctl("adopt", "1.0.0", "-c", inst.config, env=no_bus)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"postgresql:{self.dbname}", r.stdout)
        m = inst.marker()
        self.assertEqual((m["origin"], m["version"]), ("adopt", "1.0.0"))
        self.assertEqual(pg.state_id(self.dbname), m["state_id"])
        self.assertIn("decision: serve", self.prepare(inst).stderr)
        self.assertEqual(pg.sql("SELECT x FROM t", db=self.dbname), "42")

    def assert_swapped_in_is_foreign(self, inst, swap_in):
        """Inits `inst`, then swap_in() puts another instance's database in place of its own:
        tables, and a state ID ('0' * 32) that is not this one's. The next start refuses it
        as foreign (66) and keeps the marker as it was."""
        self.prepare(inst)
        ours = inst.marker()["state_id"]
        swap_in()
        r = self.prepare(inst, EXIT_FOREIGN)
        self.assertIn(f"holds tables with state ID {'0' * 32}, not the marker's state ID {ours}", r.stderr)
        self.assertEqual(inst.marker()["state_id"], ours)

    def test_postgresql_database_of_another_state_is_foreign(self):
        pg = server("postgresql")
        self.addCleanup(pg.sql, f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        inst = self.instance([self.pg_entry(pg)], store=False)

        def swap_in():
            pg.sql(f'DROP DATABASE "{self.dbname}"')
            pg.sql(f'CREATE DATABASE "{self.dbname}"')
            pg.sql(f"ALTER DATABASE \"{self.dbname}\" SET bartl.state_id = '{'0' * 32}'")
            pg.sql("CREATE TABLE t (x int)", db=self.dbname)
        self.assert_swapped_in_is_foreign(inst, swap_in)
        self.assertEqual(pg.state_id(self.dbname), "0" * 32)

    def test_postgresql_empty_precreated_database_counts_as_absent(self):
        pg = server("postgresql")
        pg.sql(f'CREATE DATABASE "{self.dbname}"')  # as a package's postinst leaves it
        self.addCleanup(pg.sql, f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        inst = self.instance([self.pg_entry(pg)], store=False)
        r = self.prepare(inst)
        self.assertIn("decision: init", r.stderr)
        self.assertEqual(pg.state_id(self.dbname), inst.marker()["state_id"])

    def test_postgresql_dropped_database_is_state_lost_and_not_recreated(self):
        pg = server("postgresql")
        self.addCleanup(pg.sql, f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        inst = self.instance([self.pg_entry(pg)], store=False)
        self.prepare(inst)
        pg.sql(f'DROP DATABASE "{self.dbname}"')
        r = inst.run("--plan")
        self.assertIn(f"postgresql:{self.dbname} does not exist (no state ID): state lost", r.stderr + r.stdout)
        # The state directory is still there: one lost component is never silently recreated.
        r = self.prepare(inst, EXIT_RUNTIME)
        self.assertIn("some state components are present and others lost", r.stderr)
        self.assertNotIn(self.dbname, pg.databases())

    def test_postgresql_failed_init_hook_drops_the_database_it_created(self):
        pg = server("postgresql")
        self.addCleanup(pg.sql, f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        hook = write_exec(os.path.join(self.root, "init-hook"), (
            '#!/bin/sh\npsql -X -q "$BARTL_DB_%s_CONNECTION" -c "CREATE TABLE half (x int)"\nexit 3\n'
            % self.dbname.upper()))
        inst = self.instance([self.pg_entry(pg)], init_hook=[hook], store=False)
        self.prepare(inst, EXIT_RUNTIME)
        self.assertNotIn(self.dbname, pg.databases())
        self.assertIsNone(inst.marker())

    def test_postgresql_unreachable_server_is_a_runtime_failure_not_absent(self):
        inst = self.instance([{"type": "postgresql", "name": self.dbname,
                               "connection": f"host={self.root}/nothing-here user=postgres"}], store=False)
        r = self.prepare(inst, EXIT_RUNTIME)
        self.assertIn(f"postgresql:{self.dbname}: cannot connect", r.stderr)
        self.assertIsNone(inst.marker())

    def test_postgresql_interrupted_init_is_dropped_and_redone_at_the_next_start(self):
        pg = server("postgresql")
        self.addCleanup(pg.sql, f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        started = os.path.join(self.root, "hook-started")
        hook = write_exec(os.path.join(self.root, "init-hook"), (
            '#!/bin/sh\npsql -X -q "$BARTL_DB_%s_CONNECTION" -c "CREATE TABLE half (x int)"\n'
            'if [ ! -e %s ]; then touch %s; sleep 600; fi\n' % (self.dbname.upper(), started, started)))
        inst = self.instance([self.pg_entry(pg)], init_hook=[hook], store=False)
        p = inst.start("--prepare")
        deadline = time.monotonic() + scaled(60)
        while not os.path.exists(started) and time.monotonic() < deadline and not p.exited():
            time.sleep(0.05)
        self.assertTrue(os.path.exists(started), "the init hook never ran")
        kill_session(p.pid)  # kill -9 of the whole unit while the hook fills the database
        p.wait(killed=True)
        half_id = pg.state_id(self.dbname)
        self.assertRegex(half_id, "^[0-9a-f]{32}$")  # stamped before the hook ran
        self.assertIsNone(inst.marker())
        r = self.prepare(inst)
        self.assertIn("cleaning up an interrupted init", r.stderr)
        m = inst.marker()
        self.assertNotEqual(m["state_id"], half_id)
        self.assertEqual(pg.state_id(self.dbname), m["state_id"])
        self.assertEqual(pg.sql("SELECT count(*) FROM half", db=self.dbname), "0")

    def test_postgresql_role_without_the_grant_is_told_the_grant(self):
        pg = server("postgresql")
        role = self.dbname + "_role"
        pg.sql(f'CREATE ROLE "{role}" LOGIN CREATEDB')
        self.addCleanup(pg.sql, f'DROP ROLE IF EXISTS "{role}"')
        self.addCleanup(pg.sql, f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        entry = {"type": "postgresql", "name": self.dbname, "connection": f"host={pg.socket_dir} user={role}"}
        inst = self.instance([entry], store=False)
        r = self.prepare(inst, EXIT_RUNTIME)
        self.assertIn(f"GRANT SET ON PARAMETER bartl.state_id TO ROLE", r.stderr)
        self.assertNotIn(self.dbname, pg.databases())  # the rollback dropped what it created
        self.assertIsNone(inst.marker())
        # As the message says: granted once, the role's database is created and bound.
        pg.sql(f'GRANT SET ON PARAMETER bartl.state_id TO "{role}"')
        self.addCleanup(pg.sql, f'REVOKE SET ON PARAMETER bartl.state_id FROM "{role}"')
        self.prepare(inst)
        self.assertEqual(pg.state_id(self.dbname), inst.marker()["state_id"])
        self.assertEqual(pg.sql(f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{self.dbname}'"),
                         role)

    def test_postgresql_database_declared_later_is_created_and_recorded(self):
        pg = server("postgresql")
        self.addCleanup(pg.sql, f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        inst = self.instance([], store=False)
        self.prepare(inst)
        state_id = inst.marker()["state_id"]
        # A newer release of the product declares a database beside its directory, filled by
        # its init_component hook; the first start with it is killed while the hook runs.
        hook = write_exec(os.path.join(self.root, "init-component"), (
            '#!/bin/sh\nset -e\n[ "$BARTL_COMPONENT" = "postgresql:%s" ]\n'
            'psql -X -q -v ON_ERROR_STOP=1 "$BARTL_DB_%s_CONNECTION" -c "CREATE TABLE seeded (x int)"\n'
            % (self.dbname, self.dbname.upper())))
        inst.databases = [self.pg_entry(pg)]
        # A first start is killed (-9) while the hook runs: the database holds its half.
        started = os.path.join(self.root, "hook-started")
        write_exec(os.path.join(self.root, "init-component-slow"), (
            '#!/bin/sh\npsql -X -q "$BARTL_DB_%s_CONNECTION" -c "CREATE TABLE half (x int)"\n'
            'touch %s\nsleep 600\n' % (self.dbname.upper(), started)))
        inst.write_config(hooks={"init_component": [os.path.join(self.root, "init-component-slow")]})
        p = inst.start("--prepare")
        deadline = time.monotonic() + scaled(60)
        while not os.path.exists(started) and time.monotonic() < deadline and not p.exited():
            time.sleep(0.05)
        self.assertTrue(os.path.exists(started), "the init_component hook never ran")
        kill_session(p.pid)
        p.wait(killed=True)
        self.assertEqual(pg.state_id(self.dbname), state_id)  # bound before the hook ran
        inst.write_config(hooks={"init_component": [hook]})
        r = self.prepare(inst)
        self.assertIn("an interrupted init_component; dropping it and running the hook again", r.stderr)
        self.assertEqual(pg.sql("SELECT to_regclass('half') IS NULL", db=self.dbname), "t")
        self.assertEqual(pg.sql("SELECT count(*) FROM seeded", db=self.dbname), "0")
        m = inst.marker()
        self.assertEqual(m["state_id"], state_id)
        self.assertIn(f"postgresql:{self.dbname}", [f"{c['kind']}:{c['name']}" for c in m["components"]])
        self.assertEqual(pg.state_id(self.dbname), state_id)
        self.assertEqual(m["history"][-1]["event"], "add")
        self.assertIn("decision: serve", self.prepare(inst).stderr)

    def test_postgresql_migration_sees_the_database(self):
        pg = server("postgresql")
        self.addCleanup(pg.sql, f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        migrations = os.path.join(self.root, "migrations")
        write_exec(os.path.join(migrations, "2.0.0"), (
            '#!/bin/sh\nset -e\npsql -X -q -v ON_ERROR_STOP=1 "$BARTL_DB_%s_CONNECTION" '
            '-c "CREATE TABLE tags (name text)"\n' % self.dbname.upper()))
        inst = self.instance([self.pg_entry(pg)], migrations=migrations, store=False)
        self.prepare(inst)
        inst.write_config(version="2.0.0")
        r = self.prepare(inst)
        self.assertIn("decision: migrate", r.stderr)
        self.assertEqual(pg.sql("SELECT count(*) FROM tags", db=self.dbname), "0")
        self.assertEqual(inst.marker()["version"], "2.0.0")

    # --- MariaDB ---------------------------------------------------------------------------

    def my_entry(self, my):
        return {"type": "mariadb", "name": self.dbname, "connection": my.connection}

    def test_mariadb_fresh_install_creates_the_database_with_its_state_id(self):
        my = server("mariadb")
        self.addCleanup(my.sql, f"DROP DATABASE IF EXISTS `{self.dbname}`")
        hook = write_exec(os.path.join(self.root, "init-hook"), HOOK_ENV + (
            'mariadb --no-defaults -S "$BARTL_DB_{N}_SOCKET" -u "$BARTL_DB_{N}_USER" "$BARTL_DB_{N}_NAME" '
            "-e \"CREATE TABLE notes (body text); INSERT INTO notes VALUES ('first')\"\n"
            .replace("{N}", self.dbname.upper())))
        inst = self.instance([self.my_entry(my)], init_hook=[hook], store=False)
        self.prepare(inst)
        self.assertEqual(my.comment(self.dbname), "bartl.state_id=" + inst.marker()["state_id"])
        self.assertEqual(my.sql("SELECT body FROM notes", db=self.dbname), "first")
        env = read(os.path.join(inst.paths[0], "db-env"))
        p = f"BARTL_DB_{self.dbname.upper()}_"
        self.assertIn(f"{p}TYPE=mariadb\n{p}USER={my.user}\n", env.replace(f"{p}SOCKET={my.socket}\n", ""))
        self.assertIn(f"{p}SOCKET={my.socket}\n", env)
        r = self.prepare(inst)
        self.assertIn("decision: serve", r.stderr)

    def test_mariadb_foreign_database_is_refused_and_untouched(self):
        my = server("mariadb")
        my.sql(f"CREATE DATABASE `{self.dbname}`")
        self.addCleanup(my.sql, f"DROP DATABASE IF EXISTS `{self.dbname}`")
        my.sql("CREATE TABLE t (x int); INSERT INTO t VALUES (42)", db=self.dbname)
        inst = self.instance([self.my_entry(my)], store=False)
        r = self.prepare(inst, EXIT_FOREIGN)
        self.assertIn(f"mariadb:{self.dbname} holds tables (no state ID) and there is no marker", r.stderr)
        self.assertEqual(my.sql("SELECT x FROM t", db=self.dbname), "42")
        self.assertEqual(my.comment(self.dbname), "")

    def test_mariadb_database_holding_only_a_routine_is_foreign_not_empty(self):
        # A routine (or an event) is data someone wrote: never dropped as an empty database.
        my = server("mariadb")
        my.sql(f"CREATE DATABASE `{self.dbname}`")
        self.addCleanup(my.sql, f"DROP DATABASE IF EXISTS `{self.dbname}`")
        my.sql("CREATE FUNCTION answer() RETURNS int DETERMINISTIC RETURN 42", db=self.dbname)
        inst = self.instance([self.my_entry(my)], store=False)
        self.prepare(inst, EXIT_FOREIGN)
        self.assertEqual(my.sql("SELECT answer()", db=self.dbname), "42")
        self.assertEqual(my.comment(self.dbname), "")

    def test_mariadb_empty_precreated_database_counts_as_absent(self):
        my = server("mariadb")
        my.sql(f"CREATE DATABASE `{self.dbname}`")
        self.addCleanup(my.sql, f"DROP DATABASE IF EXISTS `{self.dbname}`")
        inst = self.instance([self.my_entry(my)], store=False)
        r = self.prepare(inst)
        self.assertIn("decision: init", r.stderr)
        self.assertEqual(my.comment(self.dbname), "bartl.state_id=" + inst.marker()["state_id"])

    # --- SQLite ----------------------------------------------------------------------------

    def sqlite_path(self):
        return os.path.join(self.root, "var", "lib", "fapp-db", "notes.db")

    def test_sqlite_fresh_install_creates_the_file_and_its_side_record(self):
        path = self.sqlite_path()
        hook = write_exec(os.path.join(self.root, "init-hook"), HOOK_ENV + (
            "sqlite3 \"$BARTL_DB_NOTES_PATH\" \"CREATE TABLE notes (body text); INSERT INTO notes VALUES ('x')\"\n"))
        inst = self.instance([{"type": "sqlite", "name": "notes", "path": path}], init_hook=[hook], store=False)
        self.prepare(inst)
        self.assertEqual(read(path + ".bartl-state-id"), inst.marker()["state_id"] + "\n")
        with sqlite3.connect(path) as c:
            self.assertEqual(c.execute("SELECT body FROM notes").fetchall(), [("x",)])
        env = read(os.path.join(inst.paths[0], "db-env"))
        self.assertIn(f"BARTL_DB_NOTES_PATH={path}\n", env)
        self.assertIn("BARTL_DB_NOTES_TYPE=sqlite\n", env)
        self.assertIn("decision: serve", self.prepare(inst).stderr)

    def test_sqlite_database_and_its_new_directory_belong_to_the_app_user(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to run the hook as another user")
        path = self.sqlite_path()
        hook = write_exec(os.path.join(self.root, "init-hook"), (
            "#!/bin/sh\nset -e\nsqlite3 \"$BARTL_DB_NOTES_PATH\" \"PRAGMA journal_mode=WAL; "
            "CREATE TABLE notes (body text)\" >/dev/null\n"))
        inst = self.instance([{"type": "sqlite", "name": "notes", "path": path}], init_hook=[hook], store=False)
        edit_config(inst.config, {"app.user": '"nobody"'})
        self.prepare(inst)
        nobody = pwd.getpwnam("nobody").pw_uid
        self.assertEqual(os.stat(path).st_uid, nobody)
        self.assertEqual(os.stat(os.path.dirname(path)).st_uid, nobody)  # the app writes its -wal there
        with sqlite3.connect(path) as c:
            self.assertEqual(c.execute("SELECT name FROM sqlite_master").fetchall(), [("notes",)])
        self.assertEqual(os.stat(path + ".bartl-state-id").st_uid, 0)  # bartl's record, not the app's

    def test_sqlite_foreign_file_is_refused_and_untouched(self):
        path = self.sqlite_path()
        os.makedirs(os.path.dirname(path))
        with sqlite3.connect(path) as c:
            c.execute("CREATE TABLE t (x int)")
            c.execute("INSERT INTO t VALUES (7)")
        before = read(path, "rb")
        inst = self.instance([{"type": "sqlite", "name": "notes", "path": path}], store=False)
        r = self.prepare(inst, EXIT_FOREIGN)
        self.assertIn(f"sqlite:{path} holds tables (no state ID) and there is no marker", r.stderr)
        self.assertEqual(read(path, "rb"), before)
        self.assertFalse(os.path.exists(path + ".bartl-state-id"))

    def test_sqlite_empty_file_counts_as_absent(self):
        path = self.sqlite_path()
        os.makedirs(os.path.dirname(path))
        open(path, "w").close()
        inst = self.instance([{"type": "sqlite", "name": "notes", "path": path}], store=False)
        self.assertIn("decision: init", self.prepare(inst).stderr)
        self.assertEqual(read(path + ".bartl-state-id"), inst.marker()["state_id"] + "\n")

    # --- client libraries are loaded only when needed ----------------------------------------

    def test_missing_client_library_is_a_configuration_error_naming_the_package(self):
        # libpq hidden by an empty file bind-mounted over it, in a mount namespace of bartld's own.
        lib = os.path.realpath("/usr/lib/x86_64-linux-gnu/libpq.so.5")
        if os.geteuid() != 0 or not shutil.which("unshare") or not os.path.exists(lib):
            self.skipTest("needs root, unshare(1) and Debian's libpq5")
        empty = os.path.join(self.root, "empty.so")
        open(empty, "w").close()
        hidden = self.instance([{"type": "postgresql", "name": self.dbname, "connection": "host=/nowhere"}],
                               store=False)

        def run_without_libpq(inst):
            inst.bartld, real = "/usr/bin/unshare", inst.bartld
            try:
                return inst.run("-m", "--propagation", "private", "sh", "-c",
                                'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh", empty, lib, real, "--config",
                                inst.config, "--prepare")
            finally:
                inst.bartld = real

        hidden.argv = lambda *args: [hidden.bartld, *args]
        r = run_without_libpq(hidden)
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        self.assertIn(f"{hidden.config}:11:1: [[state.databases]] declares a postgresql database, which needs "
                      "libpq.so.5", r.stderr)
        self.assertIn("apt-get install libpq5", r.stderr)
        # Without a database declared, bartld does not need libpq at all.
        plain = Instance(os.path.join(self.root, "plain"), store=False)
        plain.argv = lambda *args: [plain.bartld, *args]
        r = run_without_libpq(plain)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertIsNotNone(plain.marker())

    # --- backup and restore -------------------------------------------------------------

    def blob_dir(self, inst, backup):
        """The blob of sidecar `backup` unpacked (tar, zstd: by hand, as bartl.toml(5) says)."""
        out = os.path.join(self.root, "unpacked-" + backup["id"])
        os.makedirs(out)
        subprocess.run(["tar", "--zstd", "-xf", os.path.join(inst.store, backup["blob"]["name"]), "-C", out],
                       check=True)
        return out

    def pg_seeded(self, pg, rows=100000, **kw):
        """An instance whose init hook fills table pairs with `rows` rows (even) of 100 bytes."""
        hook = write_exec(os.path.join(self.root, "init-hook"), (
            '#!/bin/sh\nset -e\npsql -X -q -v ON_ERROR_STOP=1 "$BARTL_DB_%s_CONNECTION" -c "CREATE TABLE pairs '
            "(n int, pad text DEFAULT ''); INSERT INTO pairs SELECT g, repeat('x', 100) FROM "
            'generate_series(1, %d) g"\n' % (self.dbname.upper(), rows)))
        self.addCleanup(pg.sql, f'DROP DATABASE IF EXISTS "{self.dbname}__bartl_restore" WITH (FORCE)')
        self.addCleanup(pg.sql, f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        inst = self.instance([self.pg_entry(pg)], init_hook=[hook], **kw)
        self.prepare(inst)
        return inst

    def pair_writer(self, client):
        """A shell loop feeding `client` (a psql or mariadb command line) pairs of inserted
        rows, one transaction each, until stopped: a row count consistent with one point in
        time is even. The function that stops it (also run at cleanup)."""
        loop = ("while :; do echo 'BEGIN; INSERT INTO pairs (n) VALUES (1); INSERT INTO pairs (n) VALUES (2); "
                "COMMIT;'; done | " + client)
        p = subprocess.Popen(["sh", "-c", loop], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)

        def stop():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.addCleanup(stop)
        return stop

    def backup_while_writing(self, inst, count, start_writer):
        """Takes a backup while the writer start_writer() started (pair_writer()) inserts,
        once it has written; (count() before it started, count() right after the backup)."""
        before = count()
        stop = start_writer()
        deadline = time.monotonic() + scaled(30)
        while count() == before and time.monotonic() < deadline:
            time.sleep(0.05)
        r = inst.run("--backup")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        during = count()
        stop()
        self.assertGreater(during, before, "the writer did not write during the backup")
        return before, during

    def pg_writer(self, pg):
        return self.pair_writer("psql -X -q -h %s -U %s -d %s" % (pg.root, pg.user, self.dbname))

    def pg_disaster(self, pg, inst):
        """Takes a backup, then the state and the database are gone."""
        r = inst.run("--backup")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        inst.wipe_state()
        pg.sql(f'DROP DATABASE "{self.dbname}" WITH (FORCE)')

    def pg_count(self, pg, db=None):
        return int(pg.sql("SELECT count(*) FROM pairs", db=db or self.dbname))

    def test_postgresql_backup_while_writing_restores_one_point_in_time(self):
        pg = server("postgresql")
        inst = self.pg_seeded(pg)
        before, during = self.backup_while_writing(inst, lambda: self.pg_count(pg), lambda: self.pg_writer(pg))
        (b,) = inst.backups()
        self.assertEqual([(c["kind"], c["name"]) for c in b["components"]],
                         [("path", inst.paths[0]), ("postgresql", self.dbname)])
        r = inst.run("--verify")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertIn(f"backup {b['id']} OK", r.stdout)
        # By hand, as bartl.toml(5) says: the chunks joined are pg_dump's custom format.
        out = self.blob_dir(inst, b)
        chunks = sorted(glob.glob(os.path.join(out, "db", self.dbname + ".dump.*")))
        self.assertGreater(len(chunks), 1, "a dump of 10 MB spans chunks of 8 MiB")
        listing = subprocess.run(f"cat {out}/db/{self.dbname}.dump.* | pg_restore --list", shell=True,
                                 capture_output=True, text=True)
        self.assertEqual(listing.returncode, 0, listing.stderr)
        self.assertIn("TABLE DATA public pairs", listing.stdout)
        by_hand = self.dbname + "_by_hand"
        pg.sql(f'CREATE DATABASE "{by_hand}"')
        self.addCleanup(pg.sql, f'DROP DATABASE IF EXISTS "{by_hand}" WITH (FORCE)')
        r2 = subprocess.run(f"cat {out}/db/{self.dbname}.dump.* | pg_restore --no-owner --exit-on-error "
                            f"-h {pg.root} -U {pg.user} -d {by_hand}", shell=True, capture_output=True, text=True)
        self.assertEqual(r2.returncode, 0, r2.stderr)
        in_backup = self.pg_count(pg, by_hand)
        self.assertEqual(in_backup % 2, 0, "the dump holds half a transaction")
        self.assertTrue(before < in_backup <= during, (before, in_backup, during))
        # Disaster: the state and the database are gone; the next start restores both.
        inst.wipe_state()
        pg.sql(f'DROP DATABASE "{self.dbname}" WITH (FORCE)')
        r = self.prepare(inst)
        self.assertIn("decision: restore", r.stderr)
        self.assertEqual(self.pg_count(pg), in_backup)
        m = inst.marker()
        self.assertEqual(pg.state_id(self.dbname), m["state_id"])
        self.assertIn({"kind": "postgresql", "name": self.dbname, "binding": "setting"},
                      [{k: c[k] for k in ("kind", "name", "binding")} for c in m["components"]])
        self.assertNotIn(self.dbname + "__bartl_restore", pg.databases())
        self.assertIn("decision: serve", self.prepare(inst).stderr)

    def assert_lost_with_its_state_is_restored(self, inst, drop, count, carried_id):
        """Backs up, then behind bartl's back drop() removes the database and the first state
        path is removed too; the marker stays, so the whole state is lost (not foreign, not
        mixed) and the next start restores it: count() rows of 1000 again, carried_id() the
        new state ID."""
        self.assertEqual(inst.run("--backup").returncode, EXIT_OK)
        drop()
        shutil.rmtree(inst.paths[0])
        state_id = inst.marker()["state_id"]
        r = self.prepare(inst)
        self.assertIn("state lost", r.stderr)
        self.assertIn("decision: restore", r.stderr)
        self.assertEqual(count(), 1000)
        self.assertNotEqual(inst.marker()["state_id"], state_id)
        self.assertEqual(carried_id(), inst.marker()["state_id"])

    def test_postgresql_database_dropped_with_its_state_is_restored(self):
        pg = server("postgresql")
        inst = self.pg_seeded(pg, rows=1000)
        self.assert_lost_with_its_state_is_restored(
            inst, lambda: pg.sql(f'DROP DATABASE "{self.dbname}" WITH (FORCE)'), lambda: self.pg_count(pg),
            lambda: pg.state_id(self.dbname))

    def test_postgresql_restore_replaces_an_empty_precreated_database(self):
        pg = server("postgresql")
        inst = self.pg_seeded(pg, rows=1000)
        self.pg_disaster(pg, inst)
        # Reinstalled: the package's postinst created the database again, empty.
        pg.sql(f'CREATE DATABASE "{self.dbname}"')
        r = self.prepare(inst)
        self.assertIn("decision: restore", r.stderr)
        self.assertEqual(self.pg_count(pg), 1000)
        self.assertEqual(pg.state_id(self.dbname), inst.marker()["state_id"])

    def test_postgresql_restore_onto_another_instances_database_is_refused_untouched(self):
        pg = server("postgresql")
        inst = self.pg_seeded(pg, rows=1000)
        self.pg_disaster(pg, inst)
        # Another instance's database is in place: tables and a state ID that is not this one's.
        pg.sql(f'CREATE DATABASE "{self.dbname}"')
        pg.sql(f"ALTER DATABASE \"{self.dbname}\" SET bartl.state_id = '{'1' * 32}'")
        pg.sql("CREATE TABLE theirs (x int); INSERT INTO theirs VALUES (5)", db=self.dbname)
        self.prepare(inst, EXIT_FOREIGN)
        self.assertEqual(pg.sql("SELECT x FROM theirs", db=self.dbname), "5")
        self.assertEqual(pg.state_id(self.dbname), "1" * 32)
        self.assertNotIn(self.dbname + "__bartl_restore", pg.databases())
        self.assertIsNone(inst.marker())

    def pg_role(self, pg, suffix, options=""):
        """A login role that is no superuser (CREATEDB, allowed to set bartl.state_id), dropped
        at the end with the test's database; its name."""
        role = self.dbname + suffix
        pg.sql(f'CREATE ROLE "{role}" LOGIN CREATEDB{options}')
        pg.sql(f'GRANT SET ON PARAMETER bartl.state_id TO "{role}"')
        self.addCleanup(pg.sql, f'DROP ROLE IF EXISTS "{role}"')
        self.addCleanup(pg.sql, f'REVOKE SET ON PARAMETER bartl.state_id FROM "{role}"')
        self.addCleanup(pg.sql, f'DROP DATABASE IF EXISTS "{self.dbname}__bartl_restore" WITH (FORCE)')
        self.addCleanup(pg.sql, f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        return role

    def test_postgresql_restore_as_a_role_that_is_no_superuser_owns_everything(self):
        pg = server("postgresql")
        role = self.pg_role(pg, "_owner")
        hook = write_exec(os.path.join(self.root, "init-hook"), (
            '#!/bin/sh\nset -e\npsql -X -q -v ON_ERROR_STOP=1 "$BARTL_DB_%s_CONNECTION" -c "CREATE TABLE notes '
            "(body text); INSERT INTO notes VALUES ('mine')\"\n" % self.dbname.upper()))
        entry = {"type": "postgresql", "name": self.dbname, "connection": f"host={pg.socket_dir} user={role}"}
        inst = self.instance([entry], init_hook=[hook])
        self.prepare(inst)
        self.pg_disaster(pg, inst)
        r = self.prepare(inst)
        self.assertIn("decision: restore", r.stderr)
        self.assertEqual(pg.sql("SELECT body FROM notes", db=self.dbname), "mine")
        # --no-owner: the restored database and its tables are the connection's role's.
        self.assertEqual(pg.sql(f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{self.dbname}'"),
                         role)
        self.assertEqual(pg.sql("SELECT tableowner FROM pg_tables WHERE tablename = 'notes'", db=self.dbname), role)
        self.assertEqual(pg.state_id(self.dbname), inst.marker()["state_id"])

    def password_round_trip(self, entry, password, fill, drop):
        """An instance declaring `entry` with `password` in the credential db-password: init,
        fill(), backup, then the state and the database (drop()) gone, and the restore; its
        Result."""
        creds = os.path.join(self.root, "credentials")
        os.makedirs(creds)
        with open(os.path.join(creds, "db-password"), "w") as f:
            f.write(password + "\n")
        env = {"CREDENTIALS_DIRECTORY": creds}
        inst = self.instance([dict(entry, password_credential="db-password")])
        r = inst.run("--prepare", env=env)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        fill()
        r = inst.run("--backup", env=env)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        inst.wipe_state()
        drop()
        r = inst.run("--prepare", env=env)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertIn("decision: restore", r.stderr)
        return r

    def test_postgresql_password_reaches_pg_dump_and_pg_restore_in_a_password_file(self):
        pg = server("postgresql")
        password = "s3cr:t\\pass"
        role = self.pg_role(pg, "_pw", f" PASSWORD '{password}'")
        # This role alone must give its password (the others keep trust).
        hba = os.path.join(pg.data, "pg_hba.conf")
        rules = read(hba)
        with open(hba, "w") as f:
            f.write(f"local all {role} scram-sha-256\n" + rules)
        pg.sql("SELECT pg_reload_conf()")

        def restore_hba():
            with open(hba, "w") as f:
                f.write(rules)
            pg.sql("SELECT pg_reload_conf()")
        self.addCleanup(restore_hba)
        r = self.password_round_trip(
            {"type": "postgresql", "name": self.dbname, "connection": f"host={pg.socket_dir} user={role}"}, password,
            lambda: pg.sql(f'CREATE TABLE t (x int); INSERT INTO t VALUES (8); ALTER TABLE t OWNER TO "{role}"',
                           db=self.dbname),
            lambda: pg.sql(f'DROP DATABASE "{self.dbname}" WITH (FORCE)'))
        self.assertEqual(pg.sql("SELECT x FROM t", db=self.dbname), "8")
        # The role must authenticate (scram-sha-256): pg_dump and pg_restore got the password.
        self.assertNotIn(password, r.stderr)

    def kill_restore_when(self, inst, ready, env=None):
        """Starts the restore (--prepare), kills -9 its whole session once ready() is true."""
        p = inst.start("--prepare", env=env)
        deadline = time.monotonic() + scaled(60)
        while not ready() and time.monotonic() < deadline and not p.exited():
            time.sleep(0.02)
        self.assertTrue(ready(), "the moment to kill never came")
        kill_session(p.pid)
        p.wait(killed=True)

    def test_postgresql_restore_killed_while_loading_is_redone_never_half_filled(self):
        pg = server("postgresql")
        inst = self.pg_seeded(pg, rows=300000)
        expected = self.pg_count(pg)
        self.pg_disaster(pg, inst)
        staging = self.dbname + "__bartl_restore"
        # Killed once pg_restore has created the table, while its COPY streams in.
        self.kill_restore_when(inst, lambda: pg.sql("SELECT to_regclass('public.pairs') IS NOT NULL", db=staging,
                                                    check=False) == "t")
        self.assertIn(staging, pg.databases())
        self.assertNotIn(self.dbname, pg.databases())  # the live database never half-filled
        self.assertIsNone(inst.marker())
        r = self.prepare(inst)
        self.assertIn("cleaning up an interrupted restore", r.stderr)
        self.assertEqual(self.pg_count(pg), expected)
        self.assertNotIn(staging, pg.databases())
        self.assertEqual(pg.state_id(self.dbname), inst.marker()["state_id"])

    def test_postgresql_restore_killed_at_random_moments_recovers_every_time(self):
        # Issue 14 item 6: kill -9 at random moments of a restore (seeded, printed): after each
        # kill the live database is absent or bartl's restored one awaiting its marker (the
        # intent proves it), never a half-filled database served; the next start that runs to
        # its end restores every row.
        pg = server("postgresql")
        inst = self.pg_seeded(pg, rows=200000)
        expected = self.pg_count(pg)
        self.pg_disaster(pg, inst)
        t0 = time.monotonic()
        self.prepare(inst)  # how long one undisturbed restore takes here
        took = time.monotonic() - t0
        self.assertEqual(self.pg_count(pg), expected)
        inst.wipe_state()
        pg.sql(f'DROP DATABASE "{self.dbname}" WITH (FORCE)')
        seed = int(os.environ.get("BARTL_TEST_SEED", str(int(time.time()))))
        rnd = random.Random(seed)
        for i in range(5):
            at = rnd.uniform(0.0, took)
            p = inst.start("--prepare")
            time.sleep(at)
            kill_session(p.pid)
            p.wait(killed=True)
            if self.dbname in pg.databases():
                # Swapped in (committed or not yet): the rows of a whole restore, never a part.
                self.assertEqual(self.pg_count(pg), expected, f"seed {seed}, kill {i} at {at:.2f}s of {took:.2f}s")
        if inst.marker() is None:
            self.prepare(inst)
        self.assertEqual(self.pg_count(pg), expected, f"seed {seed}")
        self.assertNotIn(self.dbname + "__bartl_restore", pg.databases())
        self.assertEqual(pg.state_id(self.dbname), inst.marker()["state_id"])

    def test_postgresql_restore_killed_after_the_swap_is_rolled_back_and_redone(self):
        pg = server("postgresql")
        swapped = os.path.join(self.root, "swapped")
        hook = write_exec(os.path.join(self.root, "post-restore"),
                          f"#!/bin/sh\nif [ ! -e {swapped} ]; then touch {swapped}; sleep 600; fi\n")
        inst = self.pg_seeded(pg, rows=1000, hooks={"post_restore": [hook]})
        self.pg_disaster(pg, inst)
        # post_restore runs after the swap and before the marker: killed there, the live
        # database is the restored one, proven bartl's by the intent.
        self.kill_restore_when(inst, lambda: os.path.exists(swapped))
        self.assertIn(self.dbname, pg.databases())
        self.assertIsNone(inst.marker())
        r = self.prepare(inst)
        self.assertIn("cleaning up an interrupted restore", r.stderr)
        self.assertIn("decision: restore", r.stderr)
        self.assertEqual(self.pg_count(pg), 1000)
        self.assertEqual(pg.state_id(self.dbname), inst.marker()["state_id"])

    def test_postgresql_restore_then_schema_migration_with_its_pre_migration_backup(self):
        pg = server("postgresql")
        migrations = os.path.join(self.root, "migrations")
        write_exec(os.path.join(migrations, "2.0.0"), (
            '#!/bin/sh\nset -e\npsql -X -q -v ON_ERROR_STOP=1 "$BARTL_DB_%s_CONNECTION" '
            "-c \"ALTER TABLE pairs ADD COLUMN tag text DEFAULT 'v2'\"\n" % self.dbname.upper()))
        write_exec(os.path.join(migrations, "3.0.0"), "#!/bin/sh\nexit 4\n")
        inst = self.pg_seeded(pg, rows=1000, migrations=migrations, before_migrate=True)
        # Out of place: the state and database are gone, the new release (2.0.0) starts.
        self.pg_disaster(pg, inst)
        inst.write_config(version="2.0.0")
        r = self.prepare(inst)
        self.assertIn("decision: restore", r.stderr)
        self.assertIn("decision: migrate", r.stderr)
        self.assertEqual(pg.sql("SELECT DISTINCT tag FROM pairs", db=self.dbname), "v2")
        self.assertEqual(inst.marker()["version"], "2.0.0")
        pre = [b for b in inst.backups() if b["reason"] == "pre-migration"]
        self.assertEqual(len(pre), 1)
        self.assertIn({"kind": "postgresql", "name": self.dbname}, pre[0]["components"])
        # 3.0.0's script fails: the marker stays at 2.0.0 and the database keeps its schema.
        inst.write_config(version="3.0.0")
        self.prepare(inst, EXIT_RUNTIME)
        self.assertEqual(inst.marker()["version"], "2.0.0")
        self.assertEqual(pg.sql("SELECT count(*) FROM pairs WHERE tag = 'v2'", db=self.dbname), "1000")

    def my_seeded(self, sql, entry=None, password=None, env=None, **kw):
        """A MariaDB server and an instance (with a store) whose init hook runs `sql` (a script:
        DELIMITER works) in its database, connected as `entry` says (default my_entry()) with
        `password` if any; bartld gets `env`."""
        my = server("mariadb")
        self.addCleanup(my.sql, f"DROP DATABASE IF EXISTS `{self.dbname}__bartl_restore`")
        self.addCleanup(my.sql, f"DROP DATABASE IF EXISTS `{self.dbname}`")
        script = os.path.join(self.root, "init.sql")
        with open(script, "w") as f:
            f.write(sql)
        hook = write_exec(os.path.join(self.root, "init-hook"), (
            '#!/bin/sh\nset -e\nmariadb --no-defaults -S "$BARTL_DB_{N}_SOCKET" -u "$BARTL_DB_{N}_USER" {PW}'
            '"$BARTL_DB_{N}_NAME" < {SQL}\n').replace("{N}", self.dbname.upper()).replace("{SQL}", script)
            .replace("{PW}", f"-p'{password}' " if password else ""))
        inst = self.instance([entry or self.my_entry(my)], init_hook=[hook], **kw)
        self.prepare(inst, env=env)
        return my, inst

    def my_disaster(self, my, inst):
        """Takes a backup, then the state and the database are gone."""
        r = inst.run("--backup")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        inst.wipe_state()
        my.sql(f"DROP DATABASE `{self.dbname}`")

    def my_count(self, my, table="pairs", db=None):
        return int(my.sql(f"SELECT count(*) FROM `{table}`", db=db or self.dbname))

    def test_mariadb_backup_and_restore_round_trip(self):
        my, inst = self.my_seeded(
            "CREATE TABLE notes (id int PRIMARY KEY, body text) ENGINE=InnoDB; CREATE TABLE tags (name varchar(20)); "
            "INSERT INTO notes VALUES (1, 'first'), (2, 'second'); INSERT INTO tags VALUES ('t')")
        r = inst.run("--backup")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        (b,) = inst.backups()
        self.assertIn({"kind": "mariadb", "name": self.dbname}, b["components"])
        r = inst.run("--verify")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertIn(f"backup {b['id']} OK", r.stdout)
        out = self.blob_dir(inst, b)
        dump = "".join(read(f) for f in sorted(glob.glob(os.path.join(out, "db", self.dbname + ".sql.*"))))
        self.assertIn("CREATE TABLE `notes`", dump)
        inst.wipe_state()
        my.sql(f"DROP DATABASE `{self.dbname}`")
        r = self.prepare(inst)
        self.assertIn("decision: restore", r.stderr)
        self.assertEqual(my.sql("SELECT body FROM notes ORDER BY id", db=self.dbname), "first\nsecond")
        self.assertEqual(my.sql("SELECT name FROM tags", db=self.dbname), "t")
        self.assertEqual(my.comment(self.dbname), "bartl.state_id=" + inst.marker()["state_id"])
        self.assertNotIn(self.dbname + "__bartl_restore", my.databases())
        self.assertIn("decision: serve", self.prepare(inst).stderr)

    def test_postgresql_backup_without_pg_dump_names_the_package_and_writes_nothing(self):
        pg = server("postgresql")
        inst = self.pg_seeded(pg, rows=10)
        empty = os.path.join(self.root, "empty-bin")
        os.makedirs(empty)
        r = inst.run("--backup", env={"PATH": empty})
        self.assertEqual(r.returncode, EXIT_RUNTIME, r.stderr)
        self.assertIn("cannot start pg_dump", r.stderr)
        self.assertIn("apt-get install postgresql-client", r.stderr)
        self.assertEqual(inst.backups(), [])

    def test_mariadb_password_reaches_mariadb_dump_and_mariadb_in_an_option_file(self):
        my = server("mariadb")
        user, password = self.dbname + "_pw", 'p"w\\d'
        quoted = password.replace("\\", "\\\\").replace('"', '\\"')
        my.sql(f"CREATE USER '{user}'@'localhost' IDENTIFIED BY \"{quoted}\"")
        self.addCleanup(my.sql, f"DROP USER IF EXISTS '{user}'@'localhost'")
        for db in (self.dbname, self.dbname + "__bartl_restore"):
            my.sql(f"GRANT ALL ON `{db}`.* TO '{user}'@'localhost'")
            self.addCleanup(my.sql, f"DROP DATABASE IF EXISTS `{db}`")
        self.password_round_trip(
            {"type": "mariadb", "name": self.dbname, "connection": f"socket={my.socket} user={user}"}, password,
            lambda: my.sql("CREATE TABLE t (x int); INSERT INTO t VALUES (6)", db=self.dbname),
            lambda: my.sql(f"DROP DATABASE `{self.dbname}`"))
        # The user has a password (no unix_socket login): the tools read it from their option file.
        self.assertEqual(my.sql("SELECT x FROM t", db=self.dbname), "6")

    def my_objects(self, my, db=None):
        """What information_schema says of every object of database `db` that RENAME TABLE
        cannot move, and of its tables: compared before the backup and after the restore."""
        where = f"'{db or self.dbname}'"
        return {kind: my.sql(sql.replace("DB", where)) for kind, sql in {
            "tables": "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DB ORDER BY 1",
            "routines": "SELECT ROUTINE_TYPE, ROUTINE_NAME, ROUTINE_DEFINITION, SQL_MODE, CHARACTER_SET_CLIENT, "
                        "COLLATION_CONNECTION, DATABASE_COLLATION, DEFINER, SECURITY_TYPE, IS_DETERMINISTIC FROM "
                        "information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DB ORDER BY 1, 2",
            "views": "SELECT TABLE_NAME, VIEW_DEFINITION, CHARACTER_SET_CLIENT, COLLATION_CONNECTION, DEFINER, "
                     "SECURITY_TYPE, CHECK_OPTION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DB ORDER BY 1",
            "triggers": "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER, "
                        "ACTION_STATEMENT, SQL_MODE, CHARACTER_SET_CLIENT, COLLATION_CONNECTION, DATABASE_COLLATION, "
                        "DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DB ORDER BY 1",
            "events": "SELECT EVENT_NAME, EVENT_DEFINITION, INTERVAL_VALUE, INTERVAL_FIELD, STARTS, STATUS, "
                      "ON_COMPLETION, SQL_MODE, TIME_ZONE, CHARACTER_SET_CLIENT, COLLATION_CONNECTION, "
                      "DATABASE_COLLATION, DEFINER FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DB ORDER BY 1",
        }.items()}

    def assert_objects_work(self, my, before):
        """The restored database holds what `before` (my_objects()) listed, and it works: the
        trigger fires and calls its procedure, the view over a view (over a function) returns
        rows, the function kept its sql_mode, the sequence goes on, the event is there."""
        self.assertEqual(self.my_objects(my), before)
        my.sql("INSERT INTO t VALUES (3, 'c')", db=self.dbname)
        self.assertEqual(my.sql("SELECT x, via FROM calls ORDER BY x", db=self.dbname),
                         "1\ttrigger\n2\ttrigger\n3\ttrigger")
        self.assertEqual(my.sql("SELECT d FROM v0 ORDER BY d", db=self.dbname), "4\n6")
        self.assertEqual(my.sql("SELECT joined()", db=self.dbname), "ab")  # PIPES_AS_CONCAT kept
        self.assertEqual(my.sql("SELECT a FROM `grüße`", db=self.dbname), "ä€")
        self.assertEqual(my.sql("SELECT y FROM versioned", db=self.dbname), "7")
        # The dump sets it past its cache (mariadb-dump's SETVAL), as a server restart would.
        self.assertGreater(int(my.sql("SELECT NEXTVAL(ids)", db=self.dbname)), 1)
        self.assertEqual(my.sql("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = "
                                f"'{self.dbname}'"), "tidy")
        self.assertNotIn(self.dbname + "__bartl_restore", my.databases())

    def my_objects_seeded(self, entry=None, **kw):
        """my_seeded() with a dump that holds every kind of object bound to its schema: a
        function used by a view, a view over that view (sorting before it, so it cannot be
        created first), a trigger calling a procedure, a function created under another
        sql_mode, a procedure under another character set, a sequence, an event."""
        return self.my_seeded(OBJECTS_SQL, entry=entry, **kw)

    def test_mariadb_restore_moves_views_triggers_routines_and_events(self):
        my, inst = self.my_objects_seeded()
        my.sql("SELECT NEXTVAL(ids)", db=self.dbname)
        before = self.my_objects(my)
        self.assertEqual(len(before["routines"].split("\n")), 4, before)
        # A sequence and a system-versioned table are not BASE TABLEs: they move all the same.
        self.assertIn("ids\tSEQUENCE", before["tables"])
        self.assertIn("versioned\tSYSTEM VERSIONED", before["tables"])
        self.assertIn("grüße\tselect 'ä€' AS `a`", before["views"])
        self.my_disaster(my, inst)
        r = self.prepare(inst)
        self.assertIn("decision: restore", r.stderr)
        self.assertIn(f"mariadb:{self.dbname}: moving 5 tables from {self.dbname}__bartl_restore, creating 4 "
                      "routines, 3 views, 1 triggers and 1 events again", r.stderr)
        self.assertEqual(my.comment(self.dbname), "bartl.state_id=" + inst.marker()["state_id"])
        self.assert_objects_work(my, before)
        self.assertIn("decision: serve", self.prepare(inst).stderr)

    def test_mariadb_view_created_under_latin1_round_trips(self):
        # Review: a view whose character_set_client is latin1 (its SHOW CREATE text read as
        # binary, then sent back under character_set_client = latin1).
        my, inst = self.my_seeded("CREATE TABLE t (x int);\nSET NAMES latin1;\n"
                                  "CREATE VIEW vl AS SELECT 'd\u00e9j\u00e0' AS a, x FROM t;\nSET NAMES utf8mb4;\n")
        before = self.my_objects(my)
        value = my.sql("SELECT a FROM vl UNION ALL SELECT 'none' LIMIT 1", db=self.dbname)
        self.my_disaster(my, inst)
        self.prepare(inst)
        self.assertEqual(self.my_objects(my), before)
        self.assertEqual(my.sql("SELECT a FROM vl UNION ALL SELECT 'none' LIMIT 1", db=self.dbname), value)

    def test_mariadb_restore_as_a_user_without_super_keeps_the_definers(self):
        my = server("mariadb")
        user, password = self.dbname + "_app", "app-pw"
        my.sql(f"CREATE USER '{user}'@'localhost' IDENTIFIED BY '{password}'")
        self.addCleanup(my.sql, f"DROP USER IF EXISTS '{user}'@'localhost'")
        # No SUPER, no SET USER: only its own database and the staging one.
        for db in (self.dbname, self.dbname + "__bartl_restore"):
            my.sql(f"GRANT ALL ON `{db}`.* TO '{user}'@'localhost'")
        self.assertEqual(my.sql("SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = "
                                f"\"'{user}'@'localhost'\" AND PRIVILEGE_TYPE <> 'USAGE'"), "0")
        creds = os.path.join(self.root, "credentials")
        os.makedirs(creds)
        with open(os.path.join(creds, "db-password"), "w") as f:
            f.write(password + "\n")
        env = {"CREDENTIALS_DIRECTORY": creds}
        entry = {"type": "mariadb", "name": self.dbname, "connection": f"socket={my.socket} user={user}",
                 "password_credential": "db-password"}
        # The app (the init hook) creates its objects as the same account: it is their definer.
        my, inst = self.my_seeded(OBJECTS_SQL, entry=entry, password=password, env=env)
        my.sql("SELECT NEXTVAL(ids)", db=self.dbname)
        before = self.my_objects(my)
        self.assertIn(f"{user}@localhost", before["triggers"])
        self.assertIn(f"{user}@localhost", before["views"])
        r = inst.run("--backup", env=env)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        inst.wipe_state()
        my.sql(f"DROP DATABASE `{self.dbname}`")
        r = self.prepare(inst, env=env)
        self.assertIn("decision: restore", r.stderr)
        self.assert_objects_work(my, before)

    def test_mariadb_objects_of_an_older_database_collation_keep_it(self):
        # Created before the database's collation changed: mariadb-dump switches the database's
        # collation around them with ALTER DATABASE `NAME`, which bartl applies to the staging
        # database it loads into (core/mariadb_dump.hpp), never to the live NAME.
        my = server("mariadb")
        default = my.sql("SELECT @@collation_server")
        other = "utf8mb4_bin" if default != "utf8mb4_bin" else "utf8mb4_general_ci"
        my, inst = self.my_seeded(
            f"CREATE TABLE t (x int); ALTER DATABASE `{self.dbname}` COLLATE {other}; "
            "CREATE FUNCTION f() RETURNS int RETURN 1; CREATE TRIGGER t_ins BEFORE INSERT ON t FOR EACH ROW "
            "SET NEW.x = NEW.x + f(); CREATE EVENT e ON SCHEDULE EVERY 1 HOUR DO DELETE FROM t; "
            f"ALTER DATABASE `{self.dbname}` COLLATE {default};")
        before = self.my_objects(my)
        self.assertEqual(before["routines"].count(other), 1, before)
        self.assertEqual(before["triggers"].count(other), 1, before)
        self.my_disaster(my, inst)
        r = self.prepare(inst)
        self.assertIn("decision: restore", r.stderr)
        self.assertEqual(self.my_objects(my), before)
        self.assertEqual(my.sql("SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = "
                                f"'{self.dbname}'"), default)
        my.sql("INSERT INTO t VALUES (1)", db=self.dbname)
        self.assertEqual(my.sql("SELECT x FROM t", db=self.dbname), "2")

    # The statements of MariaDBComponent::commit_restore() in order, as the server's process
    # list shows them (DB: the connection's default database; INFO), and the read that holds
    # the statement when the backup lock cannot, with the step from which what it reads
    # exists (kill_at_commit_step()): a kill -9 at each.
    COMMIT_STEPS = [
        ("create the live database", None, r"^CREATE DATABASE `{live}` CHARACTER SET", None, None),
        ("drop the staging triggers", None, r"^DROP TRIGGER `{staging}`\.",
         "SELECT COUNT(*) FROM `{staging}`.t", 0),
        ("move the tables", None, r"^RENAME TABLE ", None, None),
        ("create a routine", "{live}", r"^CREATE .*(FUNCTION|PROCEDURE)", None, None),
        ("create a view", "{live}", r"^CREATE .*VIEW", None, None),
        ("create a trigger", "{live}", r"^CREATE .*TRIGGER", "SELECT COUNT(*) FROM `{live}`.t", 3),
        ("create an event", "{live}", r"^CREATE .*EVENT", None, None),
        ("drop the staging database", None, r"^DROP DATABASE `{staging}`$", "SELECT `{staging}`.dbl(1)", 3),
    ]

    def kill_at_commit_step(self, my, inst, step):
        """Starts the restore and kills -9 its whole session while the statement of
        COMMIT_STEPS[step] (or a later one) waits for a lock the test holds: MariaDB's backup
        lock (BACKUP STAGE BLOCK_DDL: every DDL statement waits until it is released; the
        process list names the one waiting), each DDL statement before let through by
        releasing and taking it again. Several may slip through at once, so a step that
        names a read is held by it instead (a table's or a function's metadata lock lasts
        until COMMIT), taken while a statement before waits. The name of the step killed at."""
        live, staging = self.dbname, self.dbname + "__bartl_restore"
        steps = [(name, db and db.format(live=live), re.compile(rx.format(live=live, staging=staging)),
                  hold and hold.format(live=live, staging=staging), since)
                 for name, db, rx, hold, since in self.COMMIT_STEPS]
        killed = None
        with my.session() as lock, my.session() as reader:
            lock.sql("BACKUP STAGE START; BACKUP STAGE BLOCK_DDL")
            locked = True
            p = inst.start("--prepare")
            try:
                deadline = time.monotonic() + scaled(120)
                while killed is None and time.monotonic() < deadline and not p.exited():
                    waiting = lock.sql("SELECT DB, INFO FROM information_schema.PROCESSLIST WHERE STATE LIKE "
                                       "'Waiting for %lock' AND ID <> CONNECTION_ID()")
                    at = [i for db, info in waiting for i, (_, want_db, rx, _, _) in enumerate(steps)
                          if rx.search(info) and (want_db is None or db == want_db)]
                    if not waiting:
                        time.sleep(0.005)
                    elif at and max(at) >= step:
                        kill_session(p.pid)
                        p.wait(killed=True)
                        killed = steps[max(at)][0]
                    elif locked and steps[step][3] and at and steps[step][4] <= max(at) < step:
                        # The read lasts until COMMIT; the backup lock is not taken again,
                        # or it would wait for the statement that waits for the read.
                        reader.sql(f"START TRANSACTION; {steps[step][3]}")
                        lock.sql("BACKUP STAGE END")
                        locked = False
                    elif locked:
                        lock.sql("BACKUP STAGE END; BACKUP STAGE START; BACKUP STAGE BLOCK_DDL")
                    else:
                        time.sleep(0.005)
            finally:
                if locked:
                    lock.sql("BACKUP STAGE END")
                reader.sql("COMMIT")
                if killed is None and not p.exited():
                    kill_session(p.pid)
                    p.wait(killed=True)
            # The statement bartld left waiting runs once the lock is released, as one sent
            # just before a crash would: the next start must cope with it done.
            deadline = time.monotonic() + scaled(30)
            while lock.sql("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' AND ID <> "
                           "CONNECTION_ID()") and time.monotonic() < deadline:
                time.sleep(0.01)
        self.assertIsNotNone(killed, f"the restore got past {self.COMMIT_STEPS[step][0]} unkilled")
        return killed

    def test_mariadb_restore_killed_anywhere_in_the_move_is_redone_with_every_object(self):
        my, inst = self.my_objects_seeded()
        my.sql("SELECT NEXTVAL(ids)", db=self.dbname)
        before = self.my_objects(my)
        self.assertEqual(inst.run("--backup").returncode, EXIT_OK)
        for step in range(len(self.COMMIT_STEPS)):
            with self.subTest(step=self.COMMIT_STEPS[step][0]):
                inst.wipe_state()
                my.sql(f"DROP DATABASE IF EXISTS `{self.dbname}`")
                killed = self.kill_at_commit_step(my, inst, step)
                if self.COMMIT_STEPS[step][3]:  # held by a read: exactly there
                    self.assertEqual(killed, self.COMMIT_STEPS[step][0])
                self.assertIsNone(inst.marker(), killed)
                r = self.prepare(inst)
                self.assertIn("cleaning up an interrupted restore", r.stderr)
                self.assertIn("decision: restore", r.stderr)
                self.assertEqual(my.comment(self.dbname), "bartl.state_id=" + inst.marker()["state_id"])
                self.assertEqual(self.my_objects(my), before, killed)
                self.assertEqual(my.sql("SELECT x, via FROM calls ORDER BY x", db=self.dbname),
                                 "1\ttrigger\n2\ttrigger")
                self.assertNotIn(self.dbname + "__bartl_restore", my.databases())
        self.assert_objects_work(my, before)

    PAIRS_SQL = ("CREATE TABLE pairs (n int, pad varchar(100) DEFAULT '') ENGINE=InnoDB; "
                 "INSERT INTO pairs SELECT seq, REPEAT('x', 100) FROM seq_1_to_{rows};")

    def my_writer(self, my):
        return self.pair_writer("mariadb --no-defaults -S %s -u %s %s" % (my.socket, my.user, self.dbname))

    def test_mariadb_backup_while_writing_restores_one_point_in_time(self):
        my, inst = self.my_seeded(self.PAIRS_SQL.format(rows=100000))
        before, during = self.backup_while_writing(inst, lambda: self.my_count(my), lambda: self.my_writer(my))
        inst.wipe_state()
        my.sql(f"DROP DATABASE `{self.dbname}`")
        r = self.prepare(inst)
        self.assertIn("decision: restore", r.stderr)
        in_backup = self.my_count(my)
        # --single-transaction: one snapshot, never half a transaction of the writer's.
        self.assertEqual(in_backup % 2, 0, "the dump holds half a transaction")
        self.assertTrue(before < in_backup <= during, (before, in_backup, during))
        self.assertEqual(my.comment(self.dbname), "bartl.state_id=" + inst.marker()["state_id"])

    def test_mariadb_restore_killed_while_loading_is_redone_never_half_filled(self):
        my, inst = self.my_seeded(self.PAIRS_SQL.format(rows=300000))
        expected = self.my_count(my)
        self.my_disaster(my, inst)
        staging = self.dbname + "__bartl_restore"
        # Killed once the loader has created the table, while its INSERTs stream in.
        self.kill_restore_when(inst, lambda: my.sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE "
                                                    f"TABLE_SCHEMA = '{staging}' AND TABLE_NAME = 'pairs'") == "1")
        self.assertIn(staging, my.databases())
        self.assertNotIn(self.dbname, my.databases())  # the live database never half-filled
        self.assertIsNone(inst.marker())
        r = self.prepare(inst)
        self.assertIn("cleaning up an interrupted restore", r.stderr)
        self.assertEqual(self.my_count(my), expected)
        self.assertNotIn(staging, my.databases())
        self.assertEqual(my.comment(self.dbname), "bartl.state_id=" + inst.marker()["state_id"])

    def test_mariadb_database_of_another_state_is_foreign(self):
        my = server("mariadb")
        self.addCleanup(my.sql, f"DROP DATABASE IF EXISTS `{self.dbname}`")
        inst = self.instance([self.my_entry(my)], store=False)
        self.assert_swapped_in_is_foreign(inst, lambda: my.sql(
            f"DROP DATABASE `{self.dbname}`; CREATE DATABASE `{self.dbname}` COMMENT 'bartl.state_id={'0' * 32}'; "
            f"CREATE TABLE `{self.dbname}`.t (x int); INSERT INTO `{self.dbname}`.t VALUES (5)"))
        self.assertEqual(my.comment(self.dbname), "bartl.state_id=" + "0" * 32)
        self.assertEqual(my.sql("SELECT x FROM t", db=self.dbname), "5")

    def test_mariadb_database_dropped_with_its_state_is_restored(self):
        my, inst = self.my_seeded(self.PAIRS_SQL.format(rows=1000))
        self.assert_lost_with_its_state_is_restored(
            inst, lambda: my.sql(f"DROP DATABASE `{self.dbname}`"), lambda: self.my_count(my),
            lambda: my.comment(self.dbname).removeprefix("bartl.state_id="))

    def sqlite_seeded(self, rows, **kw):
        """An instance declaring sqlite:sqlite_path() whose init hook fills table pairs with
        `rows` rows of 100 bytes; (path, instance)."""
        path = self.sqlite_path()
        hook = write_exec(os.path.join(self.root, "init-hook"), (
            "#!/bin/sh\nset -e\nsqlite3 \"$BARTL_DB_NOTES_PATH\" \"CREATE TABLE pairs (n int, pad text); WITH "
            "RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < %d) INSERT INTO pairs SELECT i, "
            "printf('%%.100c', 'x') FROM g\"\n" % rows))
        inst = self.instance([{"type": "sqlite", "name": "notes", "path": path}], init_hook=[hook], **kw)
        self.prepare(inst)
        return path, inst

    def sqlite_count(self, path):
        with sqlite3.connect(path) as c:
            n = c.execute("SELECT count(*) FROM pairs").fetchone()[0]
        c.close()
        return n

    def test_sqlite_restore_killed_while_loading_is_redone_never_half_filled(self):
        path, inst = self.sqlite_seeded(400000)
        self.assertEqual(inst.run("--backup").returncode, EXIT_OK)
        inst.wipe_state()
        for f in glob.glob(path + "*"):
            os.remove(f)
        staging = path + ".bartl-restore"
        # Killed while the blob streams into the file beside the live one.
        self.kill_restore_when(inst, lambda: os.path.exists(staging) and os.path.getsize(staging) > 0)
        self.assertFalse(os.path.exists(path), "the live file appeared before the restore committed")
        self.assertIsNone(inst.marker())
        r = self.prepare(inst)
        self.assertIn("cleaning up an interrupted restore", r.stderr)
        self.assertEqual(self.sqlite_count(path), 400000)
        self.assertEqual(read(path + ".bartl-state-id"), inst.marker()["state_id"] + "\n")
        self.assertEqual(glob.glob(path + ".bartl-restore*"), [])

    def test_sqlite_database_of_another_state_is_foreign(self):
        path = self.sqlite_path()
        inst = self.instance([{"type": "sqlite", "name": "notes", "path": path}], store=False)
        before = []

        def swap_in():  # the file and its side record
            for f in glob.glob(path + "*"):
                os.remove(f)
            with sqlite3.connect(path) as c:
                c.execute("CREATE TABLE theirs (x int)")
                c.execute("INSERT INTO theirs VALUES (5)")
            c.close()
            with open(path + ".bartl-state-id", "w") as f:
                f.write("0" * 32 + "\n")
            before.append(read(path, "rb"))
        self.assert_swapped_in_is_foreign(inst, swap_in)
        self.assertEqual(read(path, "rb"), before[0])
        self.assertEqual(read(path + ".bartl-state-id"), "0" * 32 + "\n")

    def test_sqlite_database_dropped_with_its_state_is_restored(self):
        path, inst = self.sqlite_seeded(1000)

        def drop():  # the file and its side record
            for f in glob.glob(path + "*"):
                os.remove(f)
        self.assert_lost_with_its_state_is_restored(inst, drop, lambda: self.sqlite_count(path),
                                                    lambda: read(path + ".bartl-state-id").rstrip("\n"))

    def test_sqlite_restore_killed_after_the_swap_is_rolled_back_and_redone(self):
        path = self.sqlite_path()
        swapped = os.path.join(self.root, "swapped")
        hook = write_exec(os.path.join(self.root, "post-restore"),
                          f"#!/bin/sh\nif [ ! -e {swapped} ]; then touch {swapped}; sleep 600; fi\n")
        init = write_exec(os.path.join(self.root, "init-hook"),
                          "#!/bin/sh\nsqlite3 \"$BARTL_DB_NOTES_PATH\" \"CREATE TABLE t (x int); INSERT INTO t VALUES (9)\"\n")
        inst = self.instance([{"type": "sqlite", "name": "notes", "path": path}], init_hook=[init],
                             hooks={"post_restore": [hook]})
        self.prepare(inst)
        self.assertEqual(inst.run("--backup").returncode, EXIT_OK)
        inst.wipe_state()
        for f in glob.glob(path + "*"):
            os.remove(f)
        self.kill_restore_when(inst, lambda: os.path.exists(swapped))
        # Swapped in and stamped, but no marker: the intent proves the file is bartl's.
        self.assertTrue(os.path.exists(path + ".bartl-state-id"))
        self.assertIsNone(inst.marker())
        r = self.prepare(inst)
        self.assertIn("cleaning up an interrupted restore", r.stderr)
        self.assertIn("decision: restore", r.stderr)
        with sqlite3.connect(path) as c:
            self.assertEqual(c.execute("SELECT x FROM t").fetchall(), [(9,)])
        c.close()
        self.assertEqual(read(path + ".bartl-state-id"), inst.marker()["state_id"] + "\n")
        self.assertEqual(glob.glob(path + ".bartl-restore*"), [])

    def test_mariadb_restore_killed_after_the_swap_is_rolled_back_and_redone(self):
        swapped = os.path.join(self.root, "swapped")
        hook = write_exec(os.path.join(self.root, "post-restore"),
                          f"#!/bin/sh\nif [ ! -e {swapped} ]; then touch {swapped}; sleep 600; fi\n")
        my, inst = self.my_seeded("CREATE TABLE t (x int); INSERT INTO t VALUES (3), (4)",
                                  hooks={"post_restore": [hook]})
        self.assertEqual(inst.run("--backup").returncode, EXIT_OK)
        inst.wipe_state()
        my.sql(f"DROP DATABASE `{self.dbname}`")
        self.kill_restore_when(inst, lambda: os.path.exists(swapped))
        self.assertEqual(my.sql("SELECT count(*) FROM t", db=self.dbname), "2")  # moved in, not yet committed
        self.assertIsNone(inst.marker())
        r = self.prepare(inst)
        self.assertIn("cleaning up an interrupted restore", r.stderr)
        self.assertEqual(my.sql("SELECT x FROM t ORDER BY x", db=self.dbname), "3\n4")
        self.assertEqual(my.comment(self.dbname), "bartl.state_id=" + inst.marker()["state_id"])
        self.assertNotIn(self.dbname + "__bartl_restore", my.databases())

    def test_sqlite_empty_database_backs_up_and_restores_empty(self):
        path = self.sqlite_path()
        inst = self.instance([{"type": "sqlite", "name": "notes", "path": path}])
        self.prepare(inst)  # no init hook: the file stays empty, as bartl created it
        r = inst.run("--backup")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        inst.wipe_state()
        for f in glob.glob(path + "*"):
            os.remove(f)
        self.assertIn("decision: restore", self.prepare(inst).stderr)
        with sqlite3.connect(path) as c:  # the online backup API gives it a header: one empty page
            self.assertEqual(c.execute("SELECT count(*) FROM sqlite_master").fetchone()[0], 0)
        c.close()
        self.assertEqual(read(path + ".bartl-state-id"), inst.marker()["state_id"] + "\n")
        self.assertIn("decision: serve", self.prepare(inst).stderr)

    def test_sqlite_backup_while_writing_and_restore(self):
        path = self.sqlite_path()
        hook = write_exec(os.path.join(self.root, "init-hook"), (
            "#!/bin/sh\nset -e\nsqlite3 \"$BARTL_DB_NOTES_PATH\" \"PRAGMA journal_mode=WAL; CREATE TABLE pairs "
            "(n int, pad text); WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 50000) "
            "INSERT INTO pairs SELECT i, printf('%.100c', 'x') FROM g\" >/dev/null\n"))
        inst = self.instance([{"type": "sqlite", "name": "notes", "path": path}], init_hook=[hook])
        self.prepare(inst)
        stop = threading.Event()
        written = [0]

        def writer():
            c = sqlite3.connect(path, timeout=30)
            while not stop.is_set():
                with c:
                    c.execute("INSERT INTO pairs (n) VALUES (1)")
                    c.execute("INSERT INTO pairs (n) VALUES (2)")
                written[0] += 1
            c.close()
        t = threading.Thread(target=writer)
        t.start()
        try:
            r = inst.run("--backup")
        finally:
            stop.set()
            t.join()
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertGreater(written[0], 0)
        self.assertEqual(glob.glob(path + ".bartl-backup*"), [])  # the online backup's copy is gone
        (b,) = inst.backups()
        self.assertIn({"kind": "sqlite", "name": path}, b["components"])
        inst.wipe_state()
        for f in glob.glob(path + "*"):
            os.remove(f)
        r = self.prepare(inst)
        self.assertIn("decision: restore", r.stderr)
        with sqlite3.connect(path) as c:
            self.assertEqual(c.execute("PRAGMA integrity_check").fetchall(), [("ok",)])
            n = c.execute("SELECT count(*) FROM pairs").fetchone()[0]
        c.close()
        self.assertEqual(n % 2, 0, "the backup holds half a transaction")
        self.assertGreaterEqual(n, 50000)
        self.assertEqual(read(path + ".bartl-state-id"), inst.marker()["state_id"] + "\n")
        self.assertEqual(glob.glob(path + ".bartl-restore*"), [])
        # By hand: the chunks joined are the database file.
        out = self.blob_dir(inst, b)
        subprocess.run(f"cat {out}/db/notes.sqlite.* > {out}/notes.db", shell=True, check=True)
        with sqlite3.connect(f"{out}/notes.db") as c:
            self.assertEqual(c.execute("SELECT count(*) FROM pairs").fetchone()[0], n)
        c.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
