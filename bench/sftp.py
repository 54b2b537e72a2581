#!/usr/bin/env python3
"""sftp:// store speed and memory (issue 12): bartld backing up to and restoring from an SSH
server, against OpenSSH's own clients moving the same blob, in the same run.

A private sshd (Debian's openssh-server, tests/helpers/sshtest.py) on a loopback port serves a
store directory on this machine. The state is one file of --size (default 1G) random bytes
(incompressible: the blob is as large as the data, so the transfer dominates), made once by
bartld's init hook and reused. Then, --runs times, every timed step after an untimed `sync`:

  upload    bartld --backup to sftp://           (tar, zstd -1, SHA-256, upload, rename, sidecar)
            baselines: scp BLOB HOST:FILE; sftp's `put BLOB FILE` (the blob bartld just wrote)
            informational: curl -T BLOB sftp://HOST/FILE (libcurl's SFTP, libssh2: the library
            bartld uses); tar -cf - | zstd -1 -T0 | ssh HOST 'cat > FILE'
  restore   bartld --prepare from sftp://, no state (download, SHA-256, extract, syncfs, rename)
            baselines: scp HOST:BLOB FILE, or sftp's `get BLOB FILE`, then zstd -dc FILE | tar -x
            and sync -f (durable, as bartld is)
            informational: curl -o FILE sftp://HOST/BLOB, then extract alike; ssh HOST cat BLOB |
            zstd -dc | tar -x; sync -f

Peak RSS of bartld: its own VmHWM, sampled every 5 ms (bartltest.procs.run). Prints medians,
the ratios bartld / scp and bartld / sftp of the same run, MiB/s. Targets (exit 1 on a FAIL
only with --check): bartld / sftp <= 1.0 for both steps (the same protocol: libcurl's SFTP
over libssh2 against OpenSSH's sftp), peak RSS < 64 MiB; the ratios to scp (OpenSSH's SCP
over SFTP too, with deeper pipelining) are informational. --quick: 256 MiB, one run. Needs
root (sshd). Everything but the data set is removed at the end (--clean removes it too).
"""
import argparse
import os
import shutil
import subprocess
import sys

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
sys.path.insert(0, os.path.join(os.path.dirname(BENCH), "tests", "helpers"))
import bartltest as bt  # noqa: E402
from backup import bash, must, q, timed  # noqa: E402
from bartltest import MiB, human, median, parse_size, verdict  # noqa: E402
from sshtest import SshServer  # noqa: E402

TARGET_RATIO = 1.0
TARGET_RSS_MIB = 64
TAR_X = "tar --warning=no-unknown-keyword -x"


def write_config(path, ssh, state, bartl_dir, store, size=None, moved_from=None):
    hook = ["/bin/sh", "-c", f'head -c {size} /dev/urandom > "$BARTL_STAGING/data.bin"'] if size else None
    bt.write_config(path, {
        "app": {"name": "benchsftp", "version": "1.0.0"},
        "state": {"paths": [state], "bartl_dir": bartl_dir, "moved": {moved_from: state} if moved_from else None},
        **({"hooks": {"init": hook}} if hook else {}),
        "backup": {"store": ssh.url(store), "compression": "zstd:1", "interval": "24h", "keep_last": 100},
        "store": {"call_timeout": "60s"},
        "store.sftp": {"key_file": ssh.user_key, "known_hosts": ssh.known_hosts}})


def clear_store(store):
    for n in os.listdir(store):
        if n != "bartl-store.json":
            os.unlink(os.path.join(store, n))


def ensure_data(bartld, ssh, data, store, size, env, logs):
    """The state (one file of `size` random bytes) under `data`, made by bartld's init hook
    unless an earlier run left it; returns (state, bartl_dir)."""
    state, bartl_dir = os.path.join(data, "state"), os.path.join(data, "bartl")
    cfg = os.path.join(os.path.dirname(store), "init.toml")
    write_config(cfg, ssh, state, bartl_dir, store, size=size)
    must(timed([bartld, "--config", cfg, "--init-store"], logs, env), "bartld --init-store")
    if os.path.isfile(os.path.join(bartl_dir, "marker.json")) and os.path.getsize(
            os.path.join(state, "data.bin")) == size:
        print(f"data set: reusing {state}")
    else:
        shutil.rmtree(data, ignore_errors=True)
        print(f"data set: {human(size)} of random bytes via bartld init ...", flush=True)
        must(timed([bartld, "--config", cfg, "--prepare"], logs, env), "bartld --prepare (init)")
        clear_store(store)  # the fresh install's own backup, if any
    return state, bartl_dir, cfg


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bartld", help="bartld binary (default: $BARTLD, build-bench/, build/)")
    ap.add_argument("--size", default="1G", help="size of the state (random bytes), e.g. 256M, 1G (default 1G)")
    ap.add_argument("--runs", type=int, default=3, help="measured runs; medians are reported (default 3)")
    ap.add_argument("--quick", action="store_true", help="256 MiB, one run")
    ap.add_argument("--dir", default="/var/tmp/bartl-bench-sftp", help="where the data set and scratch go")
    ap.add_argument("--clean", action="store_true", help="remove the data set at the end")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target fails")
    args = ap.parse_args()
    if args.quick:
        args.size, args.runs = "256M", 1
    if os.geteuid() != 0:
        sys.exit("needs root: sshd's privilege separation")
    bartld = bt.require_bartld(("build-bench", "build"), args.bartld)
    size = parse_size(args.size)
    os.makedirs(args.dir, exist_ok=True)
    work = os.path.join(args.dir, f"work-{os.getpid()}")
    logs = os.path.join(work, "logs")
    os.makedirs(logs)
    env = bt.bartld_env("info", no_bus=os.path.join(work, "no-bus"))
    data = os.path.join(args.dir, f"data-{size}")
    ssh = SshServer(os.path.join(work, "sshd"))
    opts = " ".join(q(o) for o in ssh.client_options())
    remote = "root@127.0.0.1"
    scp = f"scp -q {opts} -P {ssh.port}"
    sftp = f"sftp -q -b - {opts} -P {ssh.port} {remote}"
    sshc = f"ssh {opts} -p {ssh.port} {remote}"
    # curl reads known_hosts from $HOME/.ssh (it has no option naming the file).
    curl_home = os.path.join(work, "curl-home")
    os.makedirs(os.path.join(curl_home, ".ssh"))
    shutil.copy(ssh.known_hosts, os.path.join(curl_home, ".ssh", "known_hosts"))
    curl = f"HOME={q(curl_home)} curl -sS --key {q(ssh.user_key)}"
    url = f"sftp://{remote}:{ssh.port}"
    steps = ("up", "up_scp", "up_sftp", "up_curl", "up_pipe", "down", "down_scp", "down_sftp", "down_curl",
             "down_pipe")
    res = {k: [] for k in steps + ("up_rss", "down_rss")}

    def base(cmd):
        return must(timed(bash(cmd), logs), cmd).elapsed

    try:
        store = os.path.join(work, "store")
        os.makedirs(store)
        state, _, cfg = ensure_data(bartld, ssh, data, store, size, env, logs)
        base(f"cat {q(os.path.join(state, 'data.bin'))} >/dev/null")  # a warm page cache for both sides
        for run in range(args.runs):
            ex = os.path.join(work, f"run{run}")
            os.makedirs(ex)
            # A new store each run: the restore below takes the store over, which fences the state.
            shutil.rmtree(store)
            os.makedirs(store)
            must(timed([bartld, "--config", cfg, "--init-store"], logs, env), "bartld --init-store")
            m = must(timed([bartld, "--config", cfg, "--backup"], logs, env), "bartld --backup")
            res["up"].append(m.elapsed)
            res["up_rss"].append(m.maxrss_kib)
            [blob] = [n for n in os.listdir(store) if n.endswith(".tar.zst")]
            blob_path = os.path.join(store, blob)
            blob_size = os.path.getsize(blob_path)
            local = os.path.join(ex, "blob")
            shutil.copy(blob_path, local)
            res["up_scp"].append(base(f"{scp} {q(local)} {remote}:{q(ex + '/up-scp')}"))
            res["up_sftp"].append(base(f"echo put {q(local)} {q(ex + '/up-sftp')} | {sftp}"))
            res["up_curl"].append(base(f"{curl} -T {q(local)} {q(url + ex + '/up-curl')}"))
            res["up_pipe"].append(base(f"tar -cf - -C {q(state)} . | zstd -1 -T0 -q | "
                                       f"{sshc} {q('cat > ' + q(ex + '/up-pipe'))}"))
            for n in ("up-scp", "up-sftp", "up-curl", "up-pipe"):
                if os.path.getsize(os.path.join(ex, n)) < blob_size * 0.99:
                    sys.exit(f"the {n} baseline moved {os.path.getsize(os.path.join(ex, n))} of {blob_size} bytes")
                os.unlink(os.path.join(ex, n))
            # Restore: bartld into a fresh place (the state moved there); the baselines alike.
            rroot = os.path.join(ex, "restore")
            cfg_b = os.path.join(ex, "b.toml")
            write_config(cfg_b, ssh, os.path.join(rroot, "state"), os.path.join(rroot, "bartl"), store,
                         moved_from=state)
            m = must(timed([bartld, "--config", cfg_b, "--prepare"], logs, env), "bartld --prepare (restore)")
            if "restoring backup" not in m.stderr:
                sys.exit(f"bartld --prepare did not restore:\n{m.stderr[-2000:]}")
            res["down"].append(m.elapsed)
            res["down_rss"].append(m.maxrss_kib)
            for key, fetch in (("down_scp", f"{scp} {remote}:{q(blob_path)} {q(ex + '/down')}"),
                               ("down_sftp", f"echo get {q(blob_path)} {q(ex + '/down')} | {sftp}"),
                               ("down_curl", f"{curl} -o {q(ex + '/down')} {q(url + blob_path)}")):
                x = os.path.join(ex, "x-" + key)
                os.makedirs(x)
                res[key].append(base(f"{fetch} && zstd -dc -q {q(ex + '/down')} | {TAR_X} -C {q(x)} && "
                                     f"sync -f {q(x)}"))
                os.unlink(ex + "/down")
            x = os.path.join(ex, "x-pipe")
            os.makedirs(x)
            res["down_pipe"].append(base(f"{sshc} cat {q(blob_path)} | zstd -dc -q | {TAR_X} -C {q(x)} && "
                                         f"sync -f {q(x)}"))
            shutil.rmtree(ex)
            print(f"  run {run + 1}/{args.runs}: upload {res['up'][-1]:.2f} s (scp {res['up_scp'][-1]:.2f} s, "
                  f"sftp {res['up_sftp'][-1]:.2f} s, curl {res['up_curl'][-1]:.2f} s), restore {res['down'][-1]:.2f} s (scp + extract "
                  f"{res['down_scp'][-1]:.2f} s, sftp + extract {res['down_sftp'][-1]:.2f} s)", flush=True)
    finally:
        ssh.stop()
        shutil.rmtree(work, ignore_errors=True)
        if args.clean:
            shutil.rmtree(data, ignore_errors=True)

    m = {k: median(v) for k, v in res.items()}
    mib = blob_size / MiB
    ratio = {k: m[k.split("_")[0]] / m[k] for k in ("up_scp", "up_sftp", "up_curl", "down_scp", "down_sftp",
                                                     "down_curl")}
    up_rss, down_rss = max(res["up_rss"]) / 1024, max(res["down_rss"]) / 1024
    print(f"\nblob {human(blob_size)} (state {human(size)}), medians of {args.runs} run(s):")
    print(f"  upload:  bartld --backup {m['up']:.2f} s ({mib / m['up']:.0f} MiB/s)   scp {m['up_scp']:.2f} s "
          f"({mib / m['up_scp']:.0f} MiB/s)   sftp put {m['up_sftp']:.2f} s ({mib / m['up_sftp']:.0f} MiB/s)   "
          f"curl -T {m['up_curl']:.2f} s ({mib / m['up_curl']:.0f} MiB/s)   tar|zstd|ssh {m['up_pipe']:.2f} s")
    print(f"           ratio to sftp {ratio['up_sftp']:.2f}, to scp {ratio['up_scp']:.2f}, to curl {ratio['up_curl']:.2f}")
    print(f"  restore: bartld --prepare {m['down']:.2f} s ({mib / m['down']:.0f} MiB/s)   scp+zstd|tar "
          f"{m['down_scp']:.2f} s   sftp get+zstd|tar {m['down_sftp']:.2f} s   curl+zstd|tar {m['down_curl']:.2f} s   "
          f"ssh cat|zstd|tar "
          f"{m['down_pipe']:.2f} s")
    print(f"           ratio to sftp {ratio['down_sftp']:.2f}, to scp {ratio['down_scp']:.2f}, "
          f"to curl {ratio['down_curl']:.2f}")
    print(f"  peak RSS (VmHWM): backup {up_rss:.1f} MiB, restore {down_rss:.1f} MiB")
    ok = [ratio["up_sftp"] <= TARGET_RATIO, ratio["down_sftp"] <= TARGET_RATIO,
          max(up_rss, down_rss) < TARGET_RSS_MIB]
    print(f"  {verdict(ok[0])} upload / sftp <= {TARGET_RATIO}; {verdict(ok[1])} restore / sftp <= {TARGET_RATIO}; "
          f"{verdict(ok[2])} peak RSS < {TARGET_RSS_MIB} MiB")
    return 1 if args.check and not all(ok) else 0


if __name__ == "__main__":
    sys.exit(main())
