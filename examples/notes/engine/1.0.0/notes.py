#!/usr/bin/python3
"""notes 1.0.0: a small HTTP notes service on SQLite or PostgreSQL (the bartl example application).

    notes.py --db PATH --port PORT [--host 127.0.0.1] [--ready-delay SECONDS]
    notes.py --postgresql CONNINFO --port PORT [...]
    notes.py --version

API (JSON):
    GET  /health  -> 200 {"status": "ok", "version": "1.0.0", "schema": 1}
    GET  /notes   -> 200 [{"id", "text", "created"}, ...]
    POST /notes   {"text": "..."} -> 201 {the note}

The database must exist and carry schema 1 (PRAGMA user_version = 1): this
program never creates it (that is the init hook's job) and refuses, with exit
status 2, a schema it does not know (a database migrated to 2.x cannot go
back). Readiness is reported with sd_notify when $NOTIFY_SOCKET is
set. SIGTERM or SIGINT stops it cleanly (exit 0).

With --postgresql the notes live in a PostgreSQL database (a libpq conninfo string,
e.g. "host=/run/postgresql dbname=notes"), its schema version in the one-row table
notes_schema; the same rules apply. That needs psycopg2 (Debian: python3-psycopg2);
SQLite needs only the Python 3 standard library.
"""

import argparse
import json
import os
import signal
import socket
import sqlite3
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "1.0.0"
SCHEMA = 1  # PRAGMA user_version this engine reads and writes
MAX_BODY = 1 << 20
PROG = "notes " + VERSION


class StartupError(Exception):
    """A reason not to start: printed to stderr, exit status 2."""


def log(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def sd_notify(state):
    """Sends `state` to $NOTIFY_SOCKET (path or abstract '@name'); False when not set."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        s.connect(addr)
        s.sendall(state.encode())
    return True


def open_db(path):
    """Opens an existing database of schema SCHEMA, or raises StartupError."""
    if not os.path.isfile(path):
        raise StartupError(
            f"database {path} does not exist; notes does not create it: "
            "run the init hook (bartl does this on a fresh install)")
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=rw"
    try:
        db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        version = db.execute("PRAGMA user_version").fetchone()[0]
        columns = {row[1] for row in db.execute("PRAGMA table_info(notes)")}
    except sqlite3.Error as e:
        raise StartupError(f"cannot open database {path}: {e}") from e
    if version == SCHEMA and {"id", "text", "created"} <= columns:
        db.execute("PRAGMA busy_timeout = 5000")
        return db
    db.close()
    check_schema(f"database {path}", version)


def check_schema(what, version):
    """Raises StartupError saying why schema `version` of `what` cannot be served."""
    if version > SCHEMA:
        raise StartupError(
            f"{what} has schema {version}, newer than notes {VERSION} "
            f"(schema {SCHEMA}) understands; refusing to start (downgrade?)")
    if version == SCHEMA:
        raise StartupError(f"{what} claims schema {SCHEMA} but has no complete "
                           "notes table; refusing to start")
    raise StartupError(f"{what} is not an initialised notes database "
                       f"(schema version {version}); refusing to start")


def row_to_note(row):
    note_id, text, created = row
    return {"id": note_id, "text": text, "created": created}


class Notes:
    """The notes table behind one connection (serialised: SQLite connections are not shared)."""

    def __init__(self, db):
        self.db = db
        self.lock = threading.Lock()

    def list(self):
        with self.lock:
            rows = self.db.execute(
                "SELECT id, text, created FROM notes ORDER BY id").fetchall()
        return [row_to_note(r) for r in rows]

    def add(self, text):
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self.lock:
            cur = self.db.execute("INSERT INTO notes (text, created) VALUES (?, ?)",
                                  (text, created))
            return {"id": cur.lastrowid, "text": text, "created": created}

    def close(self):
        with self.lock:
            self.db.close()


def open_pg(conninfo):
    """Opens an existing PostgreSQL notes database of schema SCHEMA, or raises StartupError."""
    try:
        import psycopg2
    except ImportError as e:
        raise StartupError(f"--postgresql needs psycopg2 (Debian: apt-get install python3-psycopg2): {e}") from e
    try:
        db = psycopg2.connect(conninfo)
        db.autocommit = True
        with db.cursor() as cur:
            cur.execute("SELECT current_database()")
            name = cur.fetchone()[0]
            cur.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'notes'")
            columns = {r[0] for r in cur.fetchall()}
            cur.execute("SELECT to_regclass('notes_schema') IS NOT NULL")
            version = 0
            if cur.fetchone()[0]:
                cur.execute("SELECT version FROM notes_schema")
                row = cur.fetchone()
                version = row[0] if row else 0
    except psycopg2.Error as e:
        raise StartupError(f"cannot open PostgreSQL database ({conninfo}): {str(e).strip()}") from e
    what = f"PostgreSQL database {name}"
    if version == SCHEMA and {"id", "text", "created"} <= columns:
        return db
    db.close()
    check_schema(what, version)


class PgNotes:
    """The notes table in PostgreSQL behind one connection (serialised, like the SQLite one)."""

    def __init__(self, db):
        self.db = db
        self.lock = threading.Lock()

    def list(self):
        with self.lock, self.db.cursor() as cur:
            cur.execute("SELECT id, text, created FROM notes ORDER BY id")
            rows = cur.fetchall()
        return [row_to_note(r) for r in rows]

    def add(self, text):
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self.lock, self.db.cursor() as cur:
            cur.execute("INSERT INTO notes (text, created) VALUES (%s, %s) RETURNING id",
                        (text, created))
            return {"id": cur.fetchone()[0], "text": text, "created": created}

    def close(self):
        with self.lock:
            self.db.close()


class Handler(BaseHTTPRequestHandler):
    server_version = "notes/" + VERSION
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        log(f"{self.address_string()} {fmt % args}")

    def reply(self, status, body):
        data = json.dumps(body).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, message):
        self.reply(status, {"error": message})

    def route(self):
        return urllib.parse.urlsplit(self.path).path.rstrip("/") or "/"

    def do_GET(self):
        path = self.route()
        if path == "/health":
            self.reply(200, {"status": "ok", "version": VERSION, "schema": SCHEMA})
        elif path == "/notes":
            self.reply(200, self.server.notes.list())
        else:
            self.error(404, f"no such resource: {path}")

    def do_POST(self):
        path = self.route()
        if path != "/notes":
            # Drain the body so the connection stays usable.
            self.read_body()
            return self.error(404 if path != "/health" else 405, f"cannot POST {path}")
        body = self.read_body()
        if body is None:
            return
        try:
            doc = json.loads(body)
        except ValueError as e:
            return self.error(400, f"invalid JSON: {e}")
        if not isinstance(doc, dict):
            return self.error(400, "expected a JSON object")
        text = doc.get("text")
        if not isinstance(text, str) or not text.strip():
            return self.error(400, '"text" must be a non-empty string')
        self.reply(201, self.server.notes.add(text))  # 1.x knows no other fields

    def read_body(self):
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            self.error(400, "invalid Content-Length")
            return None
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self.error(413, f"body larger than {MAX_BODY} bytes")
            return None
        return self.rfile.read(length)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, notes):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.notes = notes
        super().__init__(address, Handler)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="notes.py", description=f"notes {VERSION}: HTTP notes on SQLite or PostgreSQL")
    p.add_argument("--version", action="version", version=VERSION)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--db", help="SQLite database (created by the init hook)")
    where.add_argument("--postgresql", metavar="CONNINFO", help="PostgreSQL database, a libpq conninfo string")
    p.add_argument("--port", required=True, type=int, help="TCP port (0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--ready-delay", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long before listening and reporting READY=1 (tests)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    try:
        notes = PgNotes(open_pg(args.postgresql)) if args.postgresql else Notes(open_db(args.db))
    except StartupError as e:
        log(str(e))
        return 2

    try:
        if args.ready_delay > 0 and stop.wait(args.ready_delay):
            log("stopped during start-up")
            return 0
        try:
            server = Server((args.host, args.port), notes)
        except OSError as e:
            log(f"cannot listen on {args.host}:{args.port}: {e}")
            return 1
        host, port = server.server_address[:2]
        thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
        thread.start()
        where = f"PostgreSQL {args.postgresql!r}" if args.postgresql else f"database {args.db}"
        log(f"listening on {host}:{port} ({where}, schema {SCHEMA})")
        try:
            sd_notify(f"READY=1\nSTATUS=listening on {host}:{port}")
        except OSError as e:
            log(f"sd_notify failed: {e}")
        stop.wait()
        log("stopping")
        try:
            sd_notify("STOPPING=1")
        except OSError:
            pass
        server.shutdown()
        server.server_close()
        thread.join()
    finally:
        notes.close()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
