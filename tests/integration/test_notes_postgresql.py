#!/usr/bin/python3
"""The example app's PostgreSQL variant (examples/notes/notes-pg-VERSION.toml.in, issue
"database state" item 7): the notes live in the database "notes" of a real PostgreSQL 15 the
test starts (bartltest.db), declared in [[state.databases]] beside the state path. The demo's
lifecycle, asserted on what the server holds: fresh install (bartl creates and stamps the
database, the init hook creates the tables through BARTL_DB_NOTES_CONNECTION), backup, disaster
(state and database gone) and restore, upgrade with the migration running against the
database, refused downgrade that leaves the database as it was."""
import os
import shutil
import unittest

from bartltest import EXIT_DOWNGRADE, StackTest
from bartltest.db import PostgresServer, Unavailable

SERVER = None


def setUpModule():
    global SERVER
    try:
        SERVER = PostgresServer()
    except Unavailable as e:
        raise unittest.SkipTest(str(e))


def tearDownModule():
    if SERVER:
        SERVER.close()


class NotesOnPostgreSQL(StackTest):
    def setUp(self):
        super().setUp()
        SERVER.sql("DROP DATABASE IF EXISTS notes WITH (FORCE)")
        self.addCleanup(SERVER.sql, "DROP DATABASE IF EXISTS notes WITH (FORCE)", check=False)

    def pg_stack(self, version="1.0.0"):
        return self.stack(version, pgconn=SERVER.conninfo)

    def rows(self, query):
        out = SERVER.sql(query, db="notes")
        return out.split("\n") if out else []

    def test_fresh_install_creates_the_tables_in_the_stamped_database(self):
        s = self.pg_stack()
        s.start()
        s.wait_ready()
        marker = s.marker()
        self.assertEqual(SERVER.state_id("notes"), marker["state_id"])
        self.assertEqual(self.rows("SELECT version FROM notes_schema"), ["1"])
        s.post_note("kept in postgres")
        self.assertEqual(self.rows("SELECT text FROM notes"), ["kept in postgres"])
        self.assertEqual([n["text"] for n in s.get("/notes")[1]], ["kept in postgres"])
        # The SQLite variant's file is not there: the state path holds nothing of the notes.
        self.assertFalse(os.path.exists(os.path.join(s.state, "notes.db")))
        self.assertIn(("postgresql", "notes", "setting"),
                      [(c["kind"], c["name"], c["binding"]) for c in marker["components"]])

    def test_backup_disaster_restore_upgrade_and_refused_downgrade(self):
        s = self.pg_stack()
        s.start()
        s.wait_ready()
        s.post_note("buy milk")
        s.post_note("call the plumber")
        s.stop()
        r = s.run("--backup")
        self.assertEqual(r.returncode, 0, r.stderr)
        [backup] = s.backups()

        # Disaster: the state path, the marker and the database are gone.
        shutil.rmtree(s.state)
        shutil.rmtree(s.bartl_dir)
        SERVER.sql("DROP DATABASE notes WITH (FORCE)")
        s.start()
        s.wait_ready()
        self.assertEqual([n["text"] for n in s.get("/notes")[1]], ["buy milk", "call the plumber"])
        self.assertEqual(SERVER.state_id("notes"), s.marker()["state_id"])
        s.stop()

        # Upgrade: the migration adds the tags column in the database, after the pre-migration
        # backup (which holds the database) was taken.
        s.render("2.0.0")
        s.start()
        s.wait_ready()
        self.assertEqual(self.rows("SELECT version FROM notes_schema"), ["2"])
        s.post_note("tagged", tags=["v2"])
        self.assertEqual([(n["text"], n["tags"]) for n in s.get("/notes")[1]],
                         [("buy milk", []), ("call the plumber", []), ("tagged", ["v2"])])
        pre = [b for b in s.backups() if b.get("reason") == "pre-migration"]
        self.assertEqual([b["version"] for b in pre], ["1.0.0"], s.backups())
        s.stop()

        # Downgrade: refused, and the database keeps schema 2 and every note.
        s.render("1.0.0")
        r = s.run("--prepare")
        self.assertEqual(r.returncode, EXIT_DOWNGRADE, r.stderr)
        # The way back it names moves the database aside too, or the restore would not happen.
        self.assertIn("the databases (postgresql:notes; move each aside: PostgreSQL ALTER DATABASE NAME RENAME TO "
                      "NAME_aside", r.stderr)
        self.assertEqual(self.rows("SELECT version FROM notes_schema"), ["2"])
        self.assertEqual(self.rows("SELECT count(*) FROM notes"), ["3"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
