#!/usr/bin/env python3
"""Issue 12 speed and memory targets of the s3:// store, against npm's s3rver on loopback.

For each --size (default 2G): bench/backup.py's deterministic data set (generated once under
--dir, reused), then --runs times, every timed step after an untimed `sync`:

  upload   bartld --backup to s3://bartl-test/bench (tar + zstd + multipart upload of the blob,
           [store.s3] part_size and parts_in_flight as given, [backup] nice = --nice)
           baseline: nice -n NICE aws s3 cp BLOB s3://bartl-test/baseline/BLOB  (the same blob,
           Debian's awscli, at the backup's niceness; s3rver runs at the bench's own)
  restore  bartld --prepare with no state and that backup in the bucket
           (streaming GET, SHA-256, extraction into staging, syncfs, rename, marker)
           baseline: aws s3 cp s3://.../BLOB FILE && zstd -dc FILE | tar -x -C DIR && sync

Both sides talk to s3rver directly (--through-proxy puts tests/helpers/s3proxy.py, which
verifies every signature, in front of both). Peak RSS of bartld comes from wait4(2)
(ru_maxrss). Each run also prints the CPU seconds of each upload's client (wait4(2)) and of
s3rver meanwhile (/proc/PID/stat): on a small machine they share the CPUs. Then the DR
start: a bucket prefix holding 1,000 backups (one real, 999 older copies with their own
sidecars, uploaded by `aws s3 cp --recursive`), and bartld --prepare
with no state through the proxy, which counts the requests before the first byte of the
chosen blob is asked for.

Targets: upload and restore time / baseline <= 1.0; peak RSS < 64 MiB + part_size x
parts_in_flight (upload) and < 64 MiB (restore); the DR start issues at most 2 listing
requests and 1 sidecar GET before the restore begins. --quick: 256 MiB, one run. Exit status
is 0 unless --check is given and a target fails.
"""
import argparse
import json
import os
import shutil
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
sys.path.insert(0, os.path.join(os.path.dirname(BENCH), "tests", "helpers"))
import bartltest as bt  # noqa: E402
from backup import bash, count_files, ensure_dataset, must, q, timed, warm  # noqa: E402
from bartltest import MiB, human, median, parse_size, verdict  # noqa: E402
from s3servers import BUCKET, S3Servers, Unavailable, aws_cli  # noqa: E402

TARGET_RATIO = 1.0
BASE_RSS_MIB = 64
DR_BACKUPS = 1000


# [backup] nice of bartld's backups; the upload baseline runs at the same niceness (--nice).
BACKUP_NICE = 10


def write_config(path, state, bartl_dir, prefix, endpoint, part_size, parts, moved_from=None):
    bt.write_config(path, {
        "app": {"name": "benchdata", "version": "1.0.0"},
        "state": {"paths": [state], "bartl_dir": bartl_dir, "moved": {moved_from: state} if moved_from else None},
        "backup": {"store": f"s3://{BUCKET}/{prefix}", "compression": "zstd:3", "interval": "24h",
                   "keep_last": 2000, "nice": BACKUP_NICE},
        "store": {"call_timeout": "60s"},
        "store.s3": {"endpoint": endpoint, "path_style": True, "part_size": f"{part_size // MiB}MiB",
                     "parts_in_flight": parts}})


def s3_object_path(servers, prefix, name):
    return os.path.join(servers.data, BUCKET, prefix, name + "._S3rver_object")


def clear_prefix(servers, prefix):
    shutil.rmtree(os.path.join(servers.data, BUCKET, prefix), ignore_errors=True)


def aws_argv(servers, endpoint, *args):
    return [aws_cli(), "--endpoint-url", endpoint, *args]


def timed_cpu(servers, argv, workdir, env=None):
    """timed(), and the CPU seconds s3rver used meanwhile as Result.server_cpu_s: on a small
    machine the server shares the CPUs with the client, so the wall time is also a question
    of whose client leaves the server more of them."""
    before = bt.cpu_seconds(servers.s3rver.pid)
    m = timed(argv, workdir, env)
    after = bt.cpu_seconds(servers.s3rver.pid)
    m.server_cpu_s = after - before if before is not None and after is not None else float("nan")
    return m


def bench_size(bartld, servers, endpoint, base, size, seed, runs, env, part_size, parts):
    root, state, bartl_dir = ensure_dataset(bartld, base, size, seed, env)
    nfiles = count_files(state)
    work = os.path.join(base, f"s3work-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    res = {"size": size, "files": nfiles, "upload": [], "upload_base": [], "restore": [], "restore_base": [],
           "upload_rss": [], "restore_rss": [], "blob": 0}
    try:
        print(f"data set: {nfiles} files; warm-up read {warm(state, work):.1f} s", flush=True)
        for run in range(runs):
            ex = os.path.join(work, f"run{run}")
            os.makedirs(ex)
            # A new store each run: the restore below takes the store over, which fences the
            # data set's state there.
            cfg_a = os.path.join(ex, "a.toml")
            write_config(cfg_a, state, bartl_dir, "bench", endpoint, part_size, parts)
            clear_prefix(servers, "bench")
            must(timed([bartld, "--config", cfg_a, "--init-store"], work, env), "bartld --init-store")
            m = must(timed_cpu(servers, [bartld, "--config", cfg_a, "--backup"], work, env), "bartld --backup")
            cpu = f"bartld {m.cpu_s:.1f} + s3rver {m.server_cpu_s:.1f}"
            res["upload"].append(m.elapsed)
            res["upload_rss"].append(m.maxrss_kib)
            blobs = [n[:-len("._S3rver_object")] for n in os.listdir(os.path.join(servers.data, BUCKET, "bench"))
                     if n.endswith(".tar.zst._S3rver_object")]
            if len(blobs) != 1:
                sys.exit(f"expected one blob in the bucket, found {blobs}")
            name = blobs[0]
            local = os.path.join(ex, name)
            shutil.copyfile(s3_object_path(servers, "bench", name), local)  # untimed: the same bytes
            res["blob"] = os.path.getsize(local)
            m = must(timed_cpu(servers, [shutil.which("nice") or "/usr/bin/nice", "-n", str(BACKUP_NICE)] +
                               aws_argv(servers, endpoint, "s3", "cp", "--only-show-errors", local,
                                        f"s3://{BUCKET}/baseline/{name}"), work, env), "aws s3 cp (upload)")
            cpu += f" vs aws {m.cpu_s:.1f} + s3rver {m.server_cpu_s:.1f} CPU-s"
            res["upload_base"].append(m.elapsed)
            os.unlink(local)
            clear_prefix(servers, "baseline")

            x = os.path.join(ex, "tar-x")
            os.makedirs(x)
            down = os.path.join(ex, "download.tar.zst")
            tar_x = "tar --warning=no-unknown-keyword -x"
            m = must(timed(bash(f"{q(aws_cli())} --endpoint-url {q(endpoint)} s3 cp --only-show-errors "
                                f"{q(f's3://{BUCKET}/bench/{name}')} {q(down)} && zstd -dc -q {q(down)} | "
                                f"{tar_x} -C {q(x)} && sync"), work, env), "aws s3 cp + zstd | tar + sync")
            res["restore_base"].append(m.elapsed)
            os.unlink(down)
            rroot = os.path.join(ex, "bartl-restore")
            cfg_b = os.path.join(ex, "b.toml")
            write_config(cfg_b, os.path.join(rroot, "state", "data"), os.path.join(rroot, "bartl"), "bench", endpoint,
                         part_size, parts, moved_from=state)
            m = must(timed([bartld, "--config", cfg_b, "--prepare"], work, env), "bartld --prepare (restore)")
            if "restore" not in m.stdout:
                sys.exit(f"bartld --prepare did not restore: {m.stdout}\n{m.stderr[-2000:]}")
            res["restore"].append(m.elapsed)
            res["restore_rss"].append(m.maxrss_kib)
            got = count_files(os.path.join(rroot, "state", "data"))
            if got != nfiles:
                sys.exit(f"restore gave {got} files, expected {nfiles}")
            shutil.rmtree(ex)
            print(f"  run {run + 1}/{runs}: upload {res['upload'][-1]:.2f} s vs {res['upload_base'][-1]:.2f} s, "
                  f"restore {res['restore'][-1]:.2f} s vs {res['restore_base'][-1]:.2f} s, "
                  f"RSS {res['upload_rss'][-1] / 1024:.1f} / {res['restore_rss'][-1] / 1024:.1f} MiB\n"
                  f"    upload CPU: {cpu}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        clear_prefix(servers, "bench")
        clear_prefix(servers, "baseline")
    return res


def bench_dr(bartld, servers, base, env, part_size, parts):
    """1,000 backups in s3://BUCKET/dr; returns the proxy's requests of one DR start."""
    work = os.path.join(base, f"s3dr-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    try:
        state = os.path.join(work, "src", "state")
        marker_dir = os.path.join(work, "src", "bartl")
        cfg = os.path.join(work, "src.toml")
        os.makedirs(work)
        write_config(cfg, state, marker_dir, "dr", servers.direct, part_size, parts)
        clear_prefix(servers, "dr")
        must(timed([bartld, "--config", cfg, "--init-store"], work, env), "bartld --init-store (dr)")
        # A fresh install (an empty state), a few files, one real backup.
        must(timed([bartld, "--config", cfg, "--prepare"], work, env), "bartld --prepare (dr, fresh install)")
        for i in range(20):
            with open(os.path.join(state, f"f{i}.txt"), "w") as f:
                f.write(f"file {i}\n" * 100)
        must(timed([bartld, "--config", cfg, "--backup"], work, env), "bartld --backup (dr)")
        d = os.path.join(servers.data, BUCKET, "dr")
        [real] = [n[:-len("._S3rver_object")] for n in os.listdir(d) if n.endswith(".tar.zst._S3rver_object")]
        with open(s3_object_path(servers, "dr", real + ".json")) as f:
            sidecar = json.load(f)
        up = os.path.join(work, "upload")
        os.makedirs(up)
        blob = s3_object_path(servers, "dr", real)
        t0 = time.time() - 86400 * 3
        for i in range(DR_BACKUPS - 1):  # older backups, one a minute
            when = t0 + 60 * i
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))
            bid = f"{i:08x}"
            name = f"benchdata-{stamp}-1.0.0-{bid}.tar.zst"
            os.link(blob, os.path.join(up, name))
            m = dict(sidecar, id=bid, created=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(when)),
                     blob=dict(sidecar["blob"], name=name))
            with open(os.path.join(up, name + ".json"), "w") as f:
                json.dump(m, f)
        print(f"DR: uploading {2 * (DR_BACKUPS - 1)} objects with aws s3 cp --recursive ...", flush=True)
        must(timed(aws_argv(servers, servers.direct, "s3", "cp", "--recursive", "--only-show-errors", up,
                            f"s3://{BUCKET}/dr/"), work, env), "aws s3 cp --recursive")
        listed = sum(1 for n in os.listdir(d) if n.endswith(".tar.zst.json._S3rver_object"))
        if listed != DR_BACKUPS:
            sys.exit(f"expected {DR_BACKUPS} sidecars in the bucket, found {listed}")
        cfg_b = os.path.join(work, "dr.toml")
        rroot = os.path.join(work, "restore")
        write_config(cfg_b, os.path.join(rroot, "state"), os.path.join(rroot, "bartl"), "dr", servers.endpoint,
                     part_size, parts, moved_from=state)
        servers.reset()
        m = must(timed([bartld, "--config", cfg_b, "--prepare"], work, env), "bartld --prepare (DR start)")
        requests = servers.stats()["requests"]
        first = next((i for i, r in enumerate(requests) if r["op"] == "GetObject" and r["key"].endswith(real)), None)
        if first is None:
            sys.exit(f"the DR start did not restore {real}:\n{m.stderr[-2000:]}")
        before = requests[:first]
        return {"seconds": m.elapsed, "lists": sum(r["op"] == "ListObjectsV2" for r in before),
                "sidecars": sum(r["op"] == "GetObject" and r["key"].endswith(".tar.zst.json") for r in before),
                "before": len(before), "ops": sorted({r["op"] for r in before})}
    finally:
        shutil.rmtree(work, ignore_errors=True)
        clear_prefix(servers, "dr")


def main():
    global BACKUP_NICE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bartld", help="bartld binary (default: $BARTLD, build-bench/, build/)")
    ap.add_argument("--size", action="append", help="data set size, e.g. 256M, 2G (repeatable; default 2G)")
    ap.add_argument("--quick", action="store_true", help="256 MiB, one run")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--dir", default="/var/tmp/bartl-bench", help="where data sets and scratch go")
    ap.add_argument("--runs", type=int, default=1, help="measured runs per size; medians are reported (default 1)")
    ap.add_argument("--part-size", default="16M", help="[store.s3] part_size (default 16M)")
    ap.add_argument("--parts-in-flight", type=int, default=4, help="[store.s3] parts_in_flight (default 4)")
    ap.add_argument("--through-proxy", action="store_true", help="time both sides through the verifying proxy")
    ap.add_argument("--no-dr", action="store_true", help="skip the 1,000-backup DR start")
    ap.add_argument("--nice", type=int, default=BACKUP_NICE,
                    help="[backup] nice of the backups, and the niceness of the upload baseline (default 10)")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target fails")
    args = ap.parse_args()
    BACKUP_NICE = args.nice

    for tool in ("tar", "zstd", "sync"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found")
    if not aws_cli():
        sys.exit("aws (Debian's awscli) not found")
    bartld = bt.require_bartld(("build-bench", "build"), args.bartld)
    sizes = [parse_size(s) for s in (args.size or (["256M"] if args.quick else ["2G"]))]
    runs = 1 if args.quick else args.runs
    part_size = parse_size(args.part_size)
    os.makedirs(args.dir, exist_ok=True)
    try:
        servers = S3Servers(data=None)
    except Unavailable as e:
        sys.exit(f"no local S3 server: {e}")
    env = dict(os.environ, BARTL_LOG_LEVEL=os.environ.get("BARTL_LOG_LEVEL", "notice"), **servers.env())
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env.pop("NOTIFY_SOCKET", None)
    endpoint = servers.endpoint if args.through_proxy else servers.direct
    rss_limit = BASE_RSS_MIB * 1024 + part_size // 1024 * args.parts_in_flight
    print(f"bartld: {bartld}; {os.cpu_count()} CPUs; s3rver at {servers.direct}, proxy at {servers.endpoint}; "
          f"timing against {'the proxy' if args.through_proxy else 's3rver'}; part_size {human(part_size)}, "
          f"parts_in_flight {args.parts_in_flight}")
    results, dr = [], None
    try:
        for size in sizes:
            results.append(bench_size(bartld, servers, endpoint, args.dir, size, args.seed, runs, env, part_size,
                                      args.parts_in_flight))
        if not args.no_dr:
            dr = bench_dr(bartld, servers, args.dir, env, part_size, args.parts_in_flight)
    finally:
        servers.close()

    ok = True
    lines = []
    print()
    print(f"{'data set':<22} {'step':<8} {'bartld':>8} {'aws s3':>8} {'ratio':>6} {'peak RSS':>10}  verdict")
    for r in results:
        label = f"{human(r['size'])}, {r['files']} files"
        for step, limit in (("upload", rss_limit), ("restore", BASE_RSS_MIB * 1024)):
            t, b = median(r[step]), median(r[step + "_base"])
            rss = max(r[step + "_rss"])
            ok_t, ok_m = t / b <= TARGET_RATIO, rss < limit
            ok = ok and ok_t and ok_m
            print(f"{label:<22} {step:<8} {t:7.2f}s {b:7.2f}s {t / b:6.2f} {rss / 1024:7.1f} MiB"
                  f"  time {verdict(ok_t)}, RSS {verdict(ok_m)} (< {limit / 1024:.0f} MiB)")
            lines.append(f"{verdict(ok_t)}  {step} time ratio {t / b:.2f} <= 1.0 ({label})")
            lines.append(f"{verdict(ok_m)}  {step} peak RSS {rss / 1024:.1f} MiB < {limit / 1024:.0f} MiB ({label})")
        print(f"{'':<22} blob {human(r['blob'])}")
    if dr:
        ok_dr = dr["lists"] <= 2 and dr["sidecars"] <= 1
        ok = ok and ok_dr
        print(f"DR start, {DR_BACKUPS} backups: {dr['lists']} listing requests, {dr['sidecars']} sidecar GET, "
              f"{dr['before']} requests in all before the blob ({', '.join(dr['ops'])}); {dr['seconds']:.2f} s "
              f"for the whole --prepare (restore included)")
        lines.append(f"{verdict(ok_dr)}  DR start: {dr['lists']} list requests <= 2, {dr['sidecars']} sidecar GET <= 1")
    print()
    for line in lines:
        print(line)
    return 1 if (args.check and not ok) else 0


if __name__ == "__main__":
    sys.exit(main())
