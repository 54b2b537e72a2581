"""Private, real database servers for the tests: PostgreSQL 15 and MariaDB from Debian's
packages, each in a temporary directory of its own, reachable only over a Unix socket there.

    with PostgresServer() as pg:          # initdb, pg_ctl start (about 1 s), trust auth
        pg.conninfo                       # "host=/tmp/... port=5432 user=postgres"
        pg.sql("SELECT 1", db="postgres") # psql -At, the output as text
    with MariaDBServer() as my:           # mariadb-install-db, mariadbd --skip-networking
        my.connection                     # "socket=/tmp/.../mysqld.sock user=root"
        my.sql("SELECT 1")                # mariadb -N -B
        with my.session() as s:           # one connection kept open: s.sql(...) rows as lists

Both raise Unavailable (the reason as the message) when the server's packages are not
installed; a test turns that into a skip. close() stops the server (fast shutdown) and removes
its directory; nothing outlives the test. PostgreSQL refuses to run as root, so when the tests
run as root the cluster belongs to Debian's "postgres" user (setpriv), and the temporary
directory is that user's.
"""
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time


class Unavailable(Exception):
    """The server cannot run on this machine (the reason is the message)."""


def _pg_bindir():
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    raise Unavailable("PostgreSQL is not installed (Debian: apt-get install postgresql-15)")


class PostgresServer:
    """A PostgreSQL cluster in a temporary directory: initdb (trust authentication), then a
    postmaster listening only on the Unix socket in that directory (listen_addresses = '')."""

    def __init__(self, prefix="bartl-pg-"):
        self.bindir = _pg_bindir()
        self.root = tempfile.mkdtemp(prefix=prefix)
        os.chmod(self.root, 0o755)
        self.data = os.path.join(self.root, "data")
        self.log = os.path.join(self.root, "postgres.log")
        self.user = "postgres"
        self._as = []
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise Unavailable("running as root and there is no 'postgres' user to run PostgreSQL as")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._as = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]
        self.started = time.monotonic()
        try:
            self._run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-A", "trust", "-U", self.user,
                       "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"])
            self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-t", "30",
                       "-o", f"-k {self.root} -c listen_addresses= -c fsync=off -c full_page_writes=off", "start"])
        except Exception:
            self.close()
            raise
        self.startup_seconds = time.monotonic() - self.started
        self.socket_dir = self.root
        self.conninfo = f"host={self.root} user={self.user}"

    def _run(self, argv):
        r = subprocess.run(self._as + argv, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            log = open(self.log).read()[-2000:] if os.path.exists(self.log) else ""
            raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr or r.stdout}\n{log}")
        return r

    def sql(self, query, db="postgres", check=True):
        """Runs `query` with psql in database `db`; its output (-At: unaligned, tuples only)."""
        r = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", self.root, "-U", self.user,
                            "-d", db, "-c", query], capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError(f"psql {query!r} in {db}: {r.stderr}")
        return r.stdout.strip()

    def databases(self):
        """The names of the databases other than postgres and the templates."""
        out = self.sql("SELECT datname FROM pg_database WHERE datname NOT IN "
                       "('postgres', 'template0', 'template1') ORDER BY 1")
        return out.split("\n") if out else []

    def state_id(self, db):
        """The bartl.state_id setting of database `db` ("" when none)."""
        return self.sql("SELECT split_part(c, '=', 2) FROM pg_db_role_setting s JOIN pg_database d "
                        "ON d.oid = s.setdatabase, unnest(s.setconfig) c WHERE s.setrole = 0 AND "
                        f"d.datname = '{db}' AND c LIKE 'bartl.state_id=%'")

    def close(self):
        """Stops the server (fast shutdown) and removes its directory."""
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            subprocess.run(self._as + [os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", "fast", "-w",
                                       "-t", "30", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class MariaDBServer:
    """A MariaDB server in a temporary directory: mariadb-install-db (root authenticates by
    unix_socket), then mariadbd with --skip-networking and its socket in that directory."""

    def __init__(self, prefix="bartl-mariadb-"):
        self.mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        installer = shutil.which("mariadb-install-db")
        if not os.path.exists(self.mariadbd) or not installer:
            raise Unavailable("MariaDB is not installed (Debian: apt-get install mariadb-server)")
        self.root = tempfile.mkdtemp(prefix=prefix)
        os.chmod(self.root, 0o755)
        self.data = os.path.join(self.root, "data")
        self.socket = os.path.join(self.root, "mysqld.sock")
        self.pid_file = os.path.join(self.root, "mysqld.pid")
        self.log = os.path.join(self.root, "error.log")
        self.user = "root" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self.proc = None
        self.started = time.monotonic()
        try:
            r = subprocess.run([installer, "--no-defaults", f"--datadir={self.data}", f"--user={self.user}",
                                "--auth-root-authentication-method=socket", "--skip-test-db",
                                "--skip-name-resolve"], capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                raise RuntimeError(f"mariadb-install-db failed ({r.returncode}): {r.stderr or r.stdout}")
            self.proc = subprocess.Popen(
                [self.mariadbd, "--no-defaults", f"--datadir={self.data}", f"--socket={self.socket}",
                 "--skip-networking", f"--user={self.user}", f"--pid-file={self.pid_file}",
                 f"--log-error={self.log}", "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M",
                 "--skip-log-bin"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            self._wait_ready()
        except Exception:
            self.close()
            raise
        self.startup_seconds = time.monotonic() - self.started
        self.connection = f"socket={self.socket} user={self.user}"

    def _wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            r = subprocess.run(["mariadb", "--no-defaults", "-S", self.socket, "-u", self.user, "-e", "SELECT 1"],
                               capture_output=True, timeout=30)
            if r.returncode == 0:
                return
            time.sleep(0.05)
        log = open(self.log).read()[-2000:] if os.path.exists(self.log) else ""
        raise RuntimeError(f"mariadbd did not come up (exit {self.proc.poll()}):\n{log}")

    def sql(self, query, db=None, check=True):
        """Runs `query` with the mariadb client (-N -B: tab-separated rows, no header)."""
        argv = ["mariadb", "--no-defaults", "-S", self.socket, "-u", self.user, "-N", "-B", "-e", query]
        if db:
            argv.append(db)
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError(f"mariadb {query!r}: {r.stderr}")
        return r.stdout.strip()

    def session(self, db=None):
        """A connection kept open (MariaDBSession): for what must outlive one statement, such
        as a lock held while bartld runs."""
        return MariaDBSession(self, db)

    def databases(self):
        """The names of the databases other than the server's own."""
        out = self.sql("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN "
                       "('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY 1")
        return out.split("\n") if out else []

    def comment(self, db):
        """The comment of database `db` (where bartl keeps its state ID)."""
        return self.sql(f"SELECT SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{db}'")

    def close(self):
        """Stops the server (SIGTERM: a clean shutdown) and removes its directory."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class MariaDBSession:
    """One mariadb client kept running on a pipe (-n: its output flushed after each
    statement): sql() sends a statement and a marker SELECT and reads up to the marker, so
    each call returns that statement's rows (tab-separated columns) once the server answered.
    An error ends the client (batch mode): sql() then raises RuntimeError with its message."""

    def __init__(self, server, db=None):
        argv = ["mariadb", "--no-defaults", "-S", server.socket, "-u", server.user, "-N", "-B", "-n"]
        self.proc = subprocess.Popen(argv + ([db] if db else []), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.marks = itertools.count()

    def sql(self, query):
        """Runs `query` (one statement, or several separated by ';'); its rows as lists."""
        mark = f"bartl-test-mark-{next(self.marks)}"
        try:
            self.proc.stdin.write(f"{query};\nSELECT '{mark}';\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        rows = []
        for line in self.proc.stdout:
            if line.rstrip("\n") == mark:
                return rows
            rows.append(line.rstrip("\n").split("\t"))
        raise RuntimeError(f"mariadb session {query!r}: {self.proc.stderr.read()}")

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
