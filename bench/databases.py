#!/usr/bin/env python3
"""Issue 14 speed and memory targets: backup and restore of a PostgreSQL database by bartld
against PostgreSQL's own tools, in one run.

A private PostgreSQL 15 (bartltest.db.PostgresServer: initdb into --dir, Unix socket only,
fsync off) gets a database of about --size (default 1G) in one table: rows of an integer and
text (half of it random hex, half repeated: compresses about 2x). bartld declares it
([[state.databases]]) beside one small state path, creates and stamps it (--prepare), the
table is filled afterwards, so the database is bartl's own.

Then, --runs times, every measurement after `sync` (untimed), on a warm page cache:

  backup   bartld --backup (pg_dump --format=custom --compress=0 | tar chunks | zstd -3 | file store)
           baseline: pg_dump --format=custom > /dev/null     (issue 14; pg_dump's own compression)
           raw:      pg_dump --format=custom --compress=0 > /dev/null          (informational)
  restore  bartld --prepare after the database and the state are gone (disaster): staging
           database, pg_restore fed from the blob, verify, rename
           baseline: pg_restore --no-owner -d EMPTY DUMP (the --compress=0 dump, from a file)

Peak RSS of bartld is its VmHWM (sampled every 5 ms; the children pg_dump and pg_restore are
not counted, they are PostgreSQL's). Targets: bartld time / baseline time <= 1.1 for both,
peak RSS < 64 MiB for both. Exit status is 0 unless --check is given and a target fails.
Everything is removed at the end (the server included).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "helpers"))
import bartltest as bt  # noqa: E402
from bartltest import human, median, parse_size, verdict  # noqa: E402
from bartltest.db import PostgresServer, Unavailable  # noqa: E402
from backup import bash, must, timed  # noqa: E402  (bench/backup.py, beside this script)

TARGET_RATIO = 1.1
TARGET_RSS_KIB = 64 * 1024
DB = "benchdb"
ROW_BYTES = 1000  # about, on disk


def write_config(path, root, pg):
    bt.write_config(path, {
        "app": {"name": "benchdb", "version": "1.0.0"},
        "state": {"paths": [os.path.join(root, "state")], "bartl_dir": os.path.join(root, "bartl")},
        "backup": {"store": "file://" + os.path.join(root, "store"), "compression": "zstd:3", "keep_last": 100}})
    with open(path, "a") as f:
        f.write(f'\n[[state.databases]]\ntype = "postgresql"\nname = "{DB}"\nconnection = "{pg.conninfo}"\n')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bartld", help="bartld binary (default: $BARTLD, build-bench/, build/)")
    ap.add_argument("--size", default="1G", help="database size, e.g. 256M, 1G (default 1G)")
    ap.add_argument("--dir", default="/var/tmp/bartl-bench", help="where the server and scratch go")
    ap.add_argument("--runs", type=int, default=1, help="measured runs; medians are reported (default 1)")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target fails")
    args = ap.parse_args()

    pg_dump, pg_restore = shutil.which("pg_dump"), shutil.which("pg_restore")
    if not pg_dump or not pg_restore:
        sys.exit("pg_dump and pg_restore not found (Debian: apt-get install postgresql-client)")
    bartld = bt.require_bartld(("build-bench", "build"), args.bartld)
    size = parse_size(args.size)
    os.makedirs(args.dir, exist_ok=True)
    env = bt.bartld_env(os.environ.get("BARTL_LOG_LEVEL", "notice"))
    try:
        pg = PostgresServer(prefix=os.path.join(args.dir, "pg-"))
    except Unavailable as e:
        sys.exit(str(e))
    work = tempfile.mkdtemp(prefix="work-", dir=args.dir)
    os.chmod(work, 0o755)
    res = {k: [] for k in ("backup", "backup_base", "backup_raw", "restore", "restore_base",
                           "backup_rss", "restore_rss")}
    try:
        cfg = os.path.join(work, "bench.toml")
        os.makedirs(os.path.join(work, "store"))
        write_config(cfg, work, pg)
        must(timed([bartld, "--config", cfg, "--init-store"], work, env), "bartld --init-store")
        must(timed([bartld, "--config", cfg, "--prepare"], work, env), "bartld --prepare (init)")
        rows = max(1, size // ROW_BYTES)
        print(f"bartld: {bartld}; {os.cpu_count()} CPUs; filling {DB} with {rows} rows ...", flush=True)
        pg.sql("CREATE TABLE t (id bigint PRIMARY KEY, body text); INSERT INTO t SELECT g, "
               "(SELECT string_agg(md5(g::text || i), '') FROM generate_series(1, 14) i) || repeat('x', 500) "
               f"FROM generate_series(1, {rows}) g", db=DB)
        db_bytes = int(pg.sql(f"SELECT pg_database_size('{DB}')"))
        print(f"database: {human(db_bytes)}", flush=True)
        dump = os.path.join(work, "raw.dump")
        conn = f"{pg.conninfo} dbname={DB}"
        for run in range(args.runs):
            m = must(timed(bash(f"{pg_dump} --format=custom --dbname='{conn}' > /dev/null"), work),
                     "baseline pg_dump")
            res["backup_base"].append(m.elapsed)
            m = must(timed(bash(f"{pg_dump} --format=custom --compress=0 --dbname='{conn}' > {dump}"), work),
                     "raw pg_dump")
            res["backup_raw"].append(m.elapsed)
            m = must(timed([bartld, "--config", cfg, "--backup"], work, env), "bartld --backup")
            res["backup"].append(m.elapsed)
            res["backup_rss"].append(m.maxrss_kib)
            base = f"{DB}_base"
            pg.sql(f'DROP DATABASE IF EXISTS "{base}"')
            pg.sql(f'CREATE DATABASE "{base}" TEMPLATE template0')
            m = must(timed([pg_restore, "--no-owner", "--exit-on-error", f"--dbname={pg.conninfo} dbname={base}",
                            dump], work), "baseline pg_restore")
            res["restore_base"].append(m.elapsed)
            pg.sql(f'DROP DATABASE "{base}"')
            os.unlink(dump)
            # Disaster: the database and the state are gone; the next start restores both.
            pg.sql(f'DROP DATABASE "{DB}" WITH (FORCE)')
            shutil.rmtree(os.path.join(work, "state"))
            shutil.rmtree(os.path.join(work, "bartl"))
            m = must(timed([bartld, "--config", cfg, "--prepare"], work, env), "bartld --prepare (restore)")
            if "restore" not in m.stdout + m.stderr:
                sys.exit(f"bartld --prepare did not restore:\n{m.stderr[-2000:]}")
            res["restore"].append(m.elapsed)
            res["restore_rss"].append(m.maxrss_kib)
            got = int(pg.sql("SELECT count(*) FROM t", db=DB))
            if got != rows:
                sys.exit(f"restore gave {got} rows, expected {rows}")
            print(f"  run {run + 1}/{args.runs}: backup {res['backup'][-1]:.2f} s vs {res['backup_base'][-1]:.2f} s "
                  f"(raw {res['backup_raw'][-1]:.2f} s), restore {res['restore'][-1]:.2f} s vs "
                  f"{res['restore_base'][-1]:.2f} s, RSS {res['backup_rss'][-1] / 1024:.1f} / "
                  f"{res['restore_rss'][-1] / 1024:.1f} MiB", flush=True)
        blobs = [os.path.join(work, "store", n) for n in os.listdir(os.path.join(work, "store"))
                 if n.endswith(".tar.zst")]
        blob = max(os.path.getsize(b) for b in blobs)
    finally:
        pg.close()
        shutil.rmtree(work, ignore_errors=True)

    ok = True
    print()
    print(f"database {human(db_bytes)}, blob {human(blob)}; load average {os.getloadavg()[0]:.1f} "
          "(a shared machine: ratios are of the same run)")
    for step in ("backup", "restore"):
        t, b = median(res[step]), median(res[step + "_base"])
        rss = max(res[step + "_rss"])
        ok_t, ok_m = t / b <= TARGET_RATIO, rss < TARGET_RSS_KIB
        ok = ok and ok_t and ok_m
        print(f"{verdict(ok_t)}  {step} time {t:.2f} s / baseline {b:.2f} s = {t / b:.2f} <= {TARGET_RATIO}")
        print(f"{verdict(ok_m)}  {step} peak RSS {rss / 1024:.1f} MiB < 64 MiB")
    print(f"info  pg_dump --compress=0 to a file: {median(res['backup_raw']):.2f} s")
    return 1 if (args.check and not ok) else 0


if __name__ == "__main__":
    sys.exit(main())
