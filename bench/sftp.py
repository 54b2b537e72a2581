#!/usr/bin/env python3
"""sftp:// store speed and memory (issue 12): bartld backing up to and restoring from an SSH
server, against OpenSSH's scp moving the same bytes, in the same run.

A private sshd (Debian's openssh-server, tests/helpers/sshtest.py) on a loopback port serves a
store directory on this machine. The state is one file of --size (default 1G) random bytes
(incompressible: the blob is as large as the data, so the transfer dominates), made once by
bartld's init hook. Then, --runs times, after an untimed `sync` each:

  upload    bartld --backup to sftp://           (tar, zstd -1, SHA-256, upload, rename, sidecar)
            baseline: scp of that blob to the server
            pipeline: tar -cf - | zstd -1 -T0 | ssh HOST 'cat > FILE'   (informational)
  download  bartld --prepare from sftp://, no state (download, verify, extract, sync, rename)
            baseline: scp of the blob from the server, then zstd -dc | tar -x
            pipeline: ssh HOST cat BLOB | zstd -dc | tar -x          (informational)

Peak RSS of bartld from wait4(2). Prints medians, ratios bartld/baseline and MiB/s; targets
(informational unless --check): ratios <= 1.5 (libssh2, which libcurl uses, moves SFTP data
slower than OpenSSH's own client), peak RSS < 64 MiB. Needs root (sshd). Everything but the
data set is removed at the end (--clean removes it too).
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
sys.path.insert(0, os.path.join(os.path.dirname(BENCH), "tests", "helpers"))
from common import MiB, find_bartld, human, median, parse_size, verdict  # noqa: E402
from sshtest import SshServer  # noqa: E402

TARGET_RATIO = 1.5
TARGET_RSS_KIB = 64 * 1024


def timed(command):
    """Wall time of a bash command line run after an untimed sync; exits when it fails."""
    subprocess.run(["sync"], check=True)
    t0 = time.perf_counter()
    r = subprocess.run(command, shell=True, executable="/bin/bash", capture_output=True)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"`{command}` failed ({r.returncode}):\n{r.stderr.decode(errors='replace')[-4000:]}")
    return seconds


def run_bartld(argv, env):
    """Runs bartld to completion: (seconds, peak RSS KiB, stdout, stderr)."""
    subprocess.run(["sync"], check=True)
    r, w = os.pipe()
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=[(os.POSIX_SPAWN_DUP2, w, 2),
                                                          (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0)])
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - t0
    err = b"".join(chunks).decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{err[-4000:]}")
    return seconds, usage.ru_maxrss, err


def q(s):
    return "'" + s.replace("'", "'\\''") + "'"


def toml_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path, ssh, state, bartl_dir, store, size=None, moved_from=None):
    lines = ["[app]", 'name = "benchsftp"', 'version = "1.0.0"', "", "[state]", f"paths = [{toml_str(state)}]",
             f"bartl_dir = {toml_str(bartl_dir)}"]
    if moved_from:
        lines.append(f"moved = {{ {toml_str(moved_from)} = {toml_str(state)} }}")
    if size:
        hook = f'head -c {size} /dev/urandom > "$BARTL_STAGING/data.bin"'
        lines += ["", "[hooks]", f"init = [\"/bin/sh\", \"-c\", {toml_str(hook)}]"]
    lines += ["", "[backup]", f"store = {toml_str(ssh.url(store))}", 'compression = "zstd:1"', 'interval = "24h"',
              "keep_last = 100", "", "[store.sftp]", f"key_file = {toml_str(ssh.user_key)}",
              f"known_hosts = {toml_str(ssh.known_hosts)}"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bartld", help="bartld binary (default: $BARTLD, build-bench/, build/)")
    ap.add_argument("--size", default="1G", help="size of the state (random bytes), e.g. 256M, 1G (default 1G)")
    ap.add_argument("--runs", type=int, default=3, help="measured runs; medians are reported (default 3)")
    ap.add_argument("--dir", default="/var/tmp/bartl-bench-sftp", help="where the data set and scratch go")
    ap.add_argument("--clean", action="store_true", help="remove the data set at the end")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target fails")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root: sshd's privilege separation")
    bartld = find_bartld(args.bartld)
    size = parse_size(args.size)
    env = dict(os.environ, BARTL_LOG_LEVEL="info")
    env.pop("NOTIFY_SOCKET", None)
    env["DBUS_SYSTEM_BUS_ADDRESS"] = "unix:path=/nonexistent"
    os.makedirs(args.dir, exist_ok=True)
    work = os.path.join(args.dir, f"work-{os.getpid()}")
    data = os.path.join(args.dir, f"data-{size}")
    ssh = SshServer(os.path.join(work, "sshd"))
    opts = " ".join(q(o) for o in ssh.client_options())
    remote = "root@127.0.0.1"
    scp = f"scp -q {opts} -P {ssh.port}"
    sshc = f"ssh {opts} -p {ssh.port} {remote}"
    res = {k: [] for k in ("up", "up_scp", "up_pipe", "down", "down_scp", "down_pipe", "up_rss", "down_rss")}
    try:
        store = os.path.join(work, "store")
        os.makedirs(store)
        state, bartl_dir = os.path.join(data, "state"), os.path.join(data, "bartl")
        cfg = os.path.join(work, "a.toml")
        write_config(cfg, ssh, state, bartl_dir, store, size=size)
        run_bartld([bartld, "--config", cfg, "--init-store"], env)
        if not os.path.exists(os.path.join(bartl_dir, "marker.json")):
            shutil.rmtree(data, ignore_errors=True)
            print(f"data set: {human(size)} of random bytes via bartld init ...", flush=True)
            run_bartld([bartld, "--config", cfg, "--prepare"], env)
            for n in os.listdir(store):  # the fresh install's own backup, if any
                if n != "bartl-store.json":
                    os.unlink(os.path.join(store, n))
        subprocess.run(f"cat {q(os.path.join(state, 'data.bin'))} >/dev/null", shell=True, check=True)  # warm
        for run in range(args.runs):
            ex = os.path.join(work, f"run{run}")
            os.makedirs(ex)
            s, rss, _ = run_bartld([bartld, "--config", cfg, "--backup"], env)
            res["up"].append(s)
            res["up_rss"].append(rss)
            [blob] = [n for n in os.listdir(store) if n.endswith(".tar.zst")]
            blob_path = os.path.join(store, blob)
            blob_size = os.path.getsize(blob_path)
            local = os.path.join(ex, "blob")
            shutil.copy(blob_path, local)
            res["up_scp"].append(timed(f"{scp} {q(local)} {remote}:{q(os.path.join(ex, 'up-scp'))}"))
            res["up_pipe"].append(timed(f"set -o pipefail; tar -cf - -C {q(state)} . | zstd -1 -T0 -q | "
                                        f"{sshc} {q('cat > ' + q(os.path.join(ex, 'up-pipe')))}"))
            for n in ("up-scp", "up-pipe"):
                os.unlink(os.path.join(ex, n))
            # Download: bartld restores into a fresh place; the baselines extract alike.
            rroot = os.path.join(ex, "restore")
            cfg_b = os.path.join(ex, "b.toml")
            write_config(cfg_b, ssh, os.path.join(rroot, "state"), os.path.join(rroot, "bartl"), store,
                         moved_from=state)
            s, rss, err = run_bartld([bartld, "--config", cfg_b, "--prepare"], env)
            if "restoring backup" not in err:
                sys.exit(f"bartld --prepare did not restore:\n{err[-2000:]}")
            res["down"].append(s)
            res["down_rss"].append(rss)
            x = os.path.join(ex, "x-scp")
            os.makedirs(x)
            tar_x = "tar --warning=no-unknown-keyword -x"
            res["down_scp"].append(timed(f"set -o pipefail; {scp} {remote}:{q(blob_path)} {q(ex + '/down')} && "
                                         f"zstd -dc -q {q(ex + '/down')} | {tar_x} -C {q(x)} && sync -f {q(x)}"))
            x = os.path.join(ex, "x-pipe")
            os.makedirs(x)
            res["down_pipe"].append(timed(f"set -o pipefail; {sshc} cat {q(blob_path)} | zstd -dc -q | "
                                          f"{tar_x} -C {q(x)} && sync -f {q(x)}"))
            for n in os.listdir(store):
                if n != "bartl-store.json":
                    os.unlink(os.path.join(store, n))
            shutil.rmtree(ex)
            print(f"  run {run + 1}/{args.runs}: upload {res['up'][-1]:.2f} s (scp {res['up_scp'][-1]:.2f} s), "
                  f"download {res['down'][-1]:.2f} s (scp + extract {res['down_scp'][-1]:.2f} s)", flush=True)
    finally:
        ssh.stop()
        shutil.rmtree(work, ignore_errors=True)
        if args.clean:
            shutil.rmtree(data, ignore_errors=True)

    m = {k: median(v) for k, v in res.items()}
    mib = blob_size / MiB
    up_ratio, down_ratio = m["up"] / m["up_scp"], m["down"] / m["down_scp"]
    rss = max(max(res["up_rss"]), max(res["down_rss"]))
    print(f"\nblob {human(blob_size)}, medians of {args.runs} run(s):")
    print(f"  upload:   bartld --backup {m['up']:.2f} s ({mib / m['up']:.0f} MiB/s)   scp {m['up_scp']:.2f} s "
          f"({mib / m['up_scp']:.0f} MiB/s)   tar|zstd|ssh {m['up_pipe']:.2f} s   ratio {up_ratio:.2f}")
    print(f"  download: bartld --prepare {m['down']:.2f} s ({mib / m['down']:.0f} MiB/s)   scp+zstd|tar "
          f"{m['down_scp']:.2f} s   ssh cat|zstd|tar {m['down_pipe']:.2f} s   ratio {down_ratio:.2f}")
    print(f"  peak RSS: backup {max(res['up_rss']) / 1024:.1f} MiB, restore {max(res['down_rss']) / 1024:.1f} MiB")
    ok = [up_ratio <= TARGET_RATIO, down_ratio <= TARGET_RATIO, rss < TARGET_RSS_KIB]
    print(f"  {verdict(ok[0])} upload ratio <= {TARGET_RATIO}; {verdict(ok[1])} download ratio <= {TARGET_RATIO}; "
          f"{verdict(ok[2])} peak RSS < {TARGET_RSS_KIB // 1024} MiB")
    return 1 if args.check and not all(ok) else 0


if __name__ == "__main__":
    sys.exit(main())
