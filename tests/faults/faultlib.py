"""Shared helpers of the fault suite: real bartld processes, real files, real kills.

Nothing here mocks bartl: an instance is a TOML file under a private root directory, bartld
is the built binary (env BARTLD, default build-faults/ then build/), and every check reads
the files bartl left behind. Python 3 standard library only.
"""
import hashlib
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("BARTL_SOURCE_ROOT", os.path.abspath(os.path.join(HERE, "..", "..")))


def _default_bartld():
    for b in ("build-faults", "build"):
        p = os.path.join(SOURCE_ROOT, b, "src", "daemon", "bartld")
        if os.access(p, os.X_OK):
            return p
    return os.path.join(SOURCE_ROOT, "build", "src", "daemon", "bartld")


BARTLD = os.environ.get("BARTLD") or _default_bartld()
EXIT_OK, EXIT_RUNTIME, EXIT_FOREIGN = 0, 1, 66


def scratch_root():
    """A fresh directory for one test; FAULTS_TMPDIR picks the filesystem (default: $TMPDIR)."""
    return tempfile.mkdtemp(prefix="bartl-faults-", dir=os.environ.get("FAULTS_TMPDIR"))


def toml_str(s):
    return json.dumps(s)  # JSON strings are valid TOML basic strings for the paths we use


def toml_list(v):
    return "[" + ", ".join(toml_str(x) for x in v) + "]"


class Result:
    def __init__(self, rc, out, err, elapsed, maxrss_kib, killed=False):
        self.rc, self.out, self.err, self.elapsed, self.maxrss_kib, self.killed = rc, out, err, elapsed, maxrss_kib, killed

    def __repr__(self):
        return f"Result(rc={self.rc}, elapsed={self.elapsed:.2f}s, killed={self.killed})\n--- stdout\n{self.out}\n--- stderr\n{self.err[-4000:]}"


class Instance:
    """One bartl instance under `root`: config, state paths, bartl_dir, file:// store."""

    def __init__(self, root, name="fapp", version="1.0.0", n_paths=1, init_hook=None, migrations=None,
                 store=True, store_dir=None, before_migrate=False, keep_last=0, extra=None, state_dir=None,
                 hooks=None, moved=None):
        self.root = root
        self.name = name
        self.version = version
        base = state_dir or os.path.join(root, "var", "lib")
        self.paths = [os.path.join(base, f"{name}{i if i else ''}") for i in range(n_paths)]
        self.bartl_dir = os.path.join(root, "var", "lib", "bartl", name)
        self.store = store_dir or os.path.join(root, "backups")
        self.init_hook = init_hook
        self.migrations = migrations
        self.use_store = store
        self.before_migrate = before_migrate
        self.keep_last = keep_last
        self.extra = extra or []
        self.hooks = hooks or {}  # more [hooks] keys: {"post_restore": [argv...]}
        self.moved = moved or {}  # [state] moved: {old path: declared path}
        self.config = os.path.join(root, "etc", f"{name}.toml")
        self.log_dir = os.path.join(root, "logs")
        os.makedirs(self.log_dir, exist_ok=True)
        if store:
            os.makedirs(self.store, exist_ok=True)
        self.write_config()
        if store:
            self.init_store()

    def init_store(self):
        """The one-time `bartld --init-store` an operator runs for a new store."""
        r = self.run("--init-store", timeout=60)
        if r.rc != 0:
            raise AssertionError(f"--init-store failed ({r.rc}): {r.err}")

    def write_config(self, **changes):
        for k, v in changes.items():
            setattr(self, k, v)
        lines = ["[app]", f"name = {toml_str(self.name)}", f"version = {toml_str(self.version)}", "",
                 "[state]", f"paths = {toml_list(self.paths)}", f"bartl_dir = {toml_str(self.bartl_dir)}"]
        if self.moved:
            lines.append("moved = { " + ", ".join(f"{toml_str(k)} = {toml_str(v)}" for k, v in self.moved.items())
                         + " }")
        lines += ["", "[hooks]"]
        if self.init_hook:
            lines.append(f"init = {toml_list(self.init_hook)}")
        if self.migrations:
            lines.append(f"migrations = {toml_str(self.migrations)}")
        lines += [f"{k} = {toml_list(v)}" for k, v in self.hooks.items()]
        if self.use_store:
            lines += ["", "[backup]", f"store = {toml_str('file://' + self.store)}",
                      f"before_migrate = {'true' if self.before_migrate else 'false'}",
                      f"keep_last = {self.keep_last}", 'compression = "zstd:3"']
            if not self.keep_last:  # retention off: every backup stays
                lines += ["keep_daily = 0", "keep_weekly = 0", "keep_monthly = 0"]
        lines += self.extra
        os.makedirs(os.path.dirname(self.config), exist_ok=True)
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")

    # Processes -----------------------------------------------------------------------------
    def _spawn(self, args, env_extra=None):
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("JOURNAL_STREAM", None)
        env["BARTL_LOG_LEVEL"] = "debug"
        env.update(env_extra or {})
        tag = f"{time.monotonic_ns()}"
        out = open(os.path.join(self.log_dir, f"{tag}.out"), "w+")
        err = open(os.path.join(self.log_dir, f"{tag}.err"), "w+")
        # Its own session: the kill reaches bartld and every hook it started (as systemd's
        # KillMode=control-group would).
        p = subprocess.Popen([BARTLD, "--config", self.config, *args], stdout=out, stderr=err, env=env,
                             start_new_session=True)
        return p, out, err

    @staticmethod
    def _collect(p, out, err, t0, killed=False):
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        r = Result(p.returncode, out.read(), err.read(), elapsed, ru.ru_maxrss, killed)
        out.close()
        err.close()
        return r

    def run(self, *args, timeout=600, env=None):
        """Runs bartld to completion; Result with exit code, output, wall time and ru_maxrss."""
        t0 = time.monotonic()
        p, out, err = self._spawn(args, env)
        deadline = t0 + timeout
        hwm = 0
        while True:
            # VmHWM of bartld's own address space (ru_maxrss from wait4 would include the RSS
            # of the forked python process that exec'd it).
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            hwm = max(hwm, int(line.split()[1]))
            except (OSError, ValueError):
                pass
            if os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                break
            if time.monotonic() > deadline:
                os.killpg(p.pid, signal.SIGKILL)
                break
            time.sleep(0.005)
        r = self._collect(p, out, err, t0)
        r.maxrss_kib = hwm
        return r

    def run_session(self, *args, env=None):
        """Runs bartld to completion like run(), then waits until nothing of its session is
        left, SIGKILLing stragglers: a process that kills the session from inside (the
        crashsim power loss) may still be dying, holding the instance lock, when bartld is."""
        t0 = time.monotonic()
        p, out, err = self._spawn(args, env)
        r = self._collect(p, out, err, t0)
        kill_session(p.pid)
        return r

    def start(self, *args, env=None):
        t0 = time.monotonic()
        p, out, err = self._spawn(args, env)
        return p, out, err, t0

    def run_killed(self, delay, *args, env=None):
        """Starts bartld, SIGKILLs its process group after `delay` seconds. Result.killed is
        False when it had already exited by then (the kill then missed the operation)."""
        t0 = time.monotonic()
        p, out, err = self._spawn(args, env)
        while time.monotonic() - t0 < delay:
            if os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return self._collect(p, out, err, t0, killed=False)
            time.sleep(min(0.002, max(0.0, delay - (time.monotonic() - t0))))
        killed = os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        kill_session(p.pid)
        return self._collect(p, out, err, t0, killed=killed)

    # Files ---------------------------------------------------------------------------------
    def marker(self):
        try:
            with open(os.path.join(self.bartl_dir, "marker.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def state_hash(self):
        return tree_hash(self.paths)

    def wipe_state(self):
        """Disaster: every state path, its staging leftovers and the bartl dir are gone."""
        for p in self.paths:
            shutil.rmtree(p, ignore_errors=True)
            shutil.rmtree(staging_of(p), ignore_errors=True)
        shutil.rmtree(self.bartl_dir, ignore_errors=True)

    def snapshot(self, dest):
        """Copies state paths and bartl_dir (cp -a) to dest."""
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(dest)
        for i, p in enumerate(self.paths + [self.bartl_dir]):
            if os.path.lexists(p):
                subprocess.run(["cp", "-a", p, os.path.join(dest, str(i))], check=True)

    def restore_snapshot(self, src):
        self.wipe_state()
        for i, p in enumerate(self.paths + [self.bartl_dir]):
            s = os.path.join(src, str(i))
            if os.path.lexists(s):
                os.makedirs(os.path.dirname(p), exist_ok=True)
                subprocess.run(["cp", "-a", s, p], check=True)

    def sidecars(self):
        """{blob name: sidecar dict} for every visible sidecar that parses."""
        out = {}
        if not os.path.isdir(self.store):
            return out
        for n in os.listdir(self.store):
            if n.startswith(".") or not n.endswith(".json") or n == "bartl-store.json":
                continue
            try:
                with open(os.path.join(self.store, n)) as f:
                    out[n[:-5]] = json.load(f)
            except (OSError, ValueError):
                out[n[:-5]] = None
        return out

    def backup_ids_newest_first(self):
        sc = [m for m in self.sidecars().values() if m]
        sc.sort(key=lambda m: (m["created"], m["blob"]["name"]), reverse=True)
        return [m["id"] for m in sc]


def session_members(sid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields after "comm)": state ppid pgrp session ...
        if fields[0] != "Z" and int(fields[3]) == sid:
            out.append((int(d), int(fields[2])))
    return out


def kill_session(sid):
    """SIGKILL every process of session `sid` (bartld runs as a session leader, as under
    systemd): bartld, and the hooks it started in their own process groups. This is what
    systemd's KillMode=control-group does to a service whose main process is killed."""
    for _ in range(1000):
        try:
            os.killpg(sid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        members = session_members(sid)
        members = [m for m in members if m[0] != sid]
        if not members:
            return
        for _, pgid in members:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)
    raise RuntimeError(f"session {sid} does not die")


def staging_of(p):
    p = p.rstrip("/")
    return os.path.join(os.path.dirname(p), "." + os.path.basename(p) + ".bartl-staging")


def content_hash(path):
    """tree_hash of one tree, independent of where it lives."""
    return tree_hash([path], with_roots=False)


def tree_hash(paths, with_roots=True):
    """SHA-256 over each path's tree: relative names, types, permission bits, file contents,
    symlink targets, hard-link grouping. A missing path hashes as "missing"."""
    h = hashlib.sha256()
    for root in paths:
        h.update(b"\0ROOT\0" + (root.encode() if with_roots else b""))
        if not os.path.lexists(root):
            h.update(b"missing")
            continue
        inodes = {}
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for n in sorted(dirnames + filenames):
                p = os.path.join(dirpath, n)
                rel = os.path.relpath(p, root)
                st = os.lstat(p)
                h.update(b"\0" + rel.encode(errors="surrogateescape") + b"\0")
                h.update(f"{stat.S_IFMT(st.st_mode)}:{st.st_mode & 0o7777:o}".encode())
                if stat.S_ISLNK(st.st_mode):
                    h.update(os.readlink(p).encode())
                elif stat.S_ISREG(st.st_mode):
                    if st.st_nlink > 1:
                        first = inodes.setdefault((st.st_dev, st.st_ino), rel)
                        h.update(b"link:" + first.encode())
                    with open(p, "rb") as f:
                        while True:
                            b = f.read(1 << 20)
                            if not b:
                                break
                            h.update(b)
    return h.hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


def write_exec(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)
    return path


def make_mixed_data(dest, mib, seed=1):
    """Deterministic mixed data of about `mib` MiB under dest: large incompressible files,
    compressible text, many small files, a symlink, a hard link, an empty dir, odd modes."""
    rng = random.Random(seed)
    os.makedirs(dest, exist_ok=True)
    total = mib << 20
    big = total * 6 // 10
    text = total * 3 // 10
    small = total - big - text
    os.makedirs(os.path.join(dest, "blobs"), exist_ok=True)
    n_big = 4
    for i in range(n_big):
        with open(os.path.join(dest, "blobs", f"b{i}.bin"), "wb") as f:
            left = big // n_big
            while left > 0:
                n = min(left, 1 << 20)
                f.write(rng.randbytes(n))
                left -= n
    words = [rng.randbytes(6).hex() for _ in range(2000)]
    with open(os.path.join(dest, "journal.log"), "w") as f:
        written = 0
        while written < text:
            line = " ".join(rng.choice(words) for _ in range(12)) + "\n"
            f.write(line)
            written += len(line)
    sd = os.path.join(dest, "small")
    os.makedirs(sd, exist_ok=True)
    n_small = max(1, small // 4096)
    for i in range(n_small):
        d = os.path.join(sd, f"d{i % 37:02d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
            f.write(rng.randbytes(rng.randint(0, 8192)))
    os.makedirs(os.path.join(dest, "empty-dir"), exist_ok=True)
    os.symlink("journal.log", os.path.join(dest, "current.log"))
    os.link(os.path.join(dest, "blobs", "b0.bin"), os.path.join(dest, "blobs", "b0.hardlink"))
    with open(os.path.join(dest, "secret.conf"), "w") as f:
        f.write("password = hunter2\n")
    os.chmod(os.path.join(dest, "secret.conf"), 0o600)


INIT_HOOK = r"""#!/bin/sh
# Fills every staging path with a few files, deterministically, pausing {pause} s after each of
# the six parts.
set -eu
IFS=:
for s in $BARTL_STAGING_PATHS; do
  mkdir -p "$s/conf" "$s/data"
  printf 'engine=%s\n' "$BARTL_ENGINE_VERSION" > "$s/conf/engine"
  i=0
  while [ $i -lt 6 ]; do
    seq 1 $((i * 1000 + 1)) > "$s/data/part$i.txt"
    sleep {pause}
    i=$((i + 1))
  done
  ln -s data/part0.txt "$s/first"
  chmod 0640 "$s/conf/engine"
done
"""


def init_hook(root, pause=0.0):
    """Writes root/hooks/init (INIT_HOOK: a few directories and files per staging path, a
    symlink, a chmod; `pause` seconds after each of six parts) and returns its argv."""
    return [write_exec(os.path.join(root, "hooks", "init"), INIT_HOOK.format(pause=pause))]


COPY_HOOK = r"""#!/bin/sh
# Init for the data-set instances: copies the generated data set into staging.
set -eu
cp -a "{src0}/." "$(echo "$BARTL_STAGING_PATHS" | cut -d: -f1)/"
cp -a "{src1}/." "$(echo "$BARTL_STAGING_PATHS" | cut -d: -f2)/"
"""


def build_dataset(work, mib):
    """The mixed data set of two state paths under work/dataset (made once): path 0 is
    make_mixed_data(mib), path 1 a small settings file and a symlink to it."""
    src0 = os.path.join(work, "dataset", "0")
    src1 = os.path.join(work, "dataset", "1")
    if not os.path.isdir(src0):
        make_mixed_data(src0, mib, seed=7)
        os.makedirs(src1)
        with open(os.path.join(src1, "settings.ini"), "w") as f:
            f.write("[main]\nkey = value\n")
        os.symlink("settings.ini", os.path.join(src1, "link.ini"))
    return src0, src1


def dataset_instance(work, mib, name, **kw):
    """An instance under work/name with two state paths initialised (--prepare) from the data
    set; keyword arguments go to Instance (default keep_last=0: every backup stays)."""
    src0, src1 = build_dataset(work, mib)
    root = os.path.join(work, name)
    hook = write_exec(os.path.join(root, "hooks", "init"), COPY_HOOK.format(src0=src0, src1=src1))
    kw.setdefault("keep_last", 0)
    inst = Instance(root, n_paths=2, init_hook=[hook], **kw)
    r = inst.run("--prepare")
    assert r.rc == 0, r
    return inst


def check_store(inst, before_blobs, verify_new=True, verified=None):
    """Every listable backup is whole: its blob exists and matches the sidecar's size and
    SHA-256, and (verify_new) `bartld --verify ID` passes for those not in before_blobs.
    `verified` (a set of (blob, sha256)) skips blobs already verified and collects new ones.
    Returns (orphan blobs, hidden temporaries, problems: [(message, Result or None)])."""
    sc = inst.sidecars()
    names = os.listdir(inst.store)
    hidden = [n for n in names if n.startswith(".")]
    blobs = [n for n in names if not n.startswith(".") and not n.endswith(".json")]
    orphans = [b for b in blobs if b not in sc]
    problems = []
    for blob, m in sc.items():
        if m is None:
            problems.append((f"sidecar {blob}.json does not parse", None))
            continue
        p = os.path.join(inst.store, blob)
        if not os.path.exists(p) or os.path.getsize(p) != m["blob"]["size"] or sha256_file(p) != m["blob"]["sha256"]:
            problems.append((f"listable backup {m['id']}: blob missing or not matching its sidecar", None))
            continue
        key = (blob, m["blob"]["sha256"])
        if verify_new and blob not in before_blobs and (verified is None or key not in verified):
            r = inst.run("--verify", m["id"])
            if r.rc != 0:
                problems.append((f"bartld --verify {m['id']} failed", r))
            elif verified is not None:
                verified.add(key)
    return orphans, hidden, problems


def print_table(title, header, rows, file=None):
    file = file or sys.stdout
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}", file=file)
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)), file=file)
    print(line, file=file)
    for r in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)), file=file)
    file.flush()


def mode_from_argv(argv):
    """--long / --ci (default) and optional --seed N; returns (long, seed)."""
    long = "--long" in argv
    seed = int(os.environ.get("FAULTS_SEED", "0")) or None
    if "--seed" in argv:
        seed = int(argv[argv.index("--seed") + 1])
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "big")
    return long, seed


def only_from_argv(argv):
    """The names given with --only a,b,c, or None (all)."""
    return set(argv[argv.index("--only") + 1].split(",")) if "--only" in argv else None


def run_each(work, named, only=None):
    """Runs fn() for each (name, fn) that `only` (None: all) names, printing progress, then
    removes the scratch directory `work` unless FAULTS_KEEP is set. Returns the results."""
    out = []
    try:
        for name, fn in named:
            if only and name not in only:
                continue
            out.append(fn())
            print(f"  {name}: done", flush=True)
    finally:
        remove_scratch(work)
    return out


def remove_scratch(work):
    """Removes a scratch directory, or names it when FAULTS_KEEP is set."""
    if os.environ.get("FAULTS_KEEP"):
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def finish(script, title, header, tallies):
    """Prints the figures table of tallies (each with row() and ok()) and SCRIPT: PASS/FAIL;
    returns the exit status."""
    print_table(title, header, [t.row() for t in tallies])
    ok = all(t.ok() for t in tallies)
    print(f"{script}: PASS" if ok else f"{script}: FAIL", flush=True)
    return 0 if ok else 1
