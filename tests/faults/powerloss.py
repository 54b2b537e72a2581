#!/usr/bin/env python3
"""Power loss anywhere: bartld runs under the crashsim LD_PRELOAD shim (crashsim.c), which
numbers every call that changes a file under the instance's var/ and store (bartld's and its
hooks') and, right before call N, undoes everything that is not durable yet and kills the
whole session. The disk is then what a power loss at that moment could leave behind under a
pessimistic model: file data, size and mode survive only after fsync/fdatasync of the file
(or syncfs/sync), a directory entry change (create, mkdir, rename, unlink, symlink, link)
only after an fsync of its directory (or syncfs/sync).

For each operation: a counting run under the shim (the number of calls, and a power loss
right after the run ended: the "end" point), then a crash before every call (--long) or a
stratified sample of them (CI: at most 32 per operation, seeded), each from the same
starting point, followed by `bartld --prepare` without the shim, as the next boot would:

  recovered   that start exits 0 with a marker at the expected version and origin
  identical   the state paths hash equal to an undisturbed run (backup: to the state
              before it; restore-from: to the pinned backup, or to the newest while the pin
              had not reached the disk yet)
  data lost   anything else that loses or hides data: foreign (66), a fresh init where a
              backup exists, a different state, staging left behind, a listable backup that
              does not match its sidecar or fails `bartld --verify ID`, a backup gone that
              retention may not remove yet. Must be 0.

Operations: init (two state paths, one an empty directory the staging replaces; a hook
writing with shell redirections, stdio, a symlink and chmod), restore (1 MiB mixed data, a
post_restore hook), migrate (two steps, backup before migrating), backup (`bartld --backup`
with keep_last = 2 over two backups: the oldest is retired), and restore-from (the marker,
pin and intent writes: `--restore-from` an older backup over a lost state, so the marker is
retired, the pin written, the restore committed, the pin cleared).

Usage: powerloss.py [--long] [--seed N] [--only init,restore,migrate,backup,restore-from]
                    [--points N]
Environment: BARTL_CRASHSIM (the shim; default crashsim.so in the build directory of BARTLD).
Exit status 0 when every row has data lost 0 and recovered == identical == crash points.
"""
import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import bartltest as bt  # noqa: E402

# A migration step in the usual shapes: derived files written to a temporary name and
# renamed (a stdio writer, tr), a file rewritten in place by a truncating redirection, and an
# append. Idempotent: a re-run starts the derived directory over.
MIGRATION = r"""#!/bin/sh
set -eu
d="$(echo "$BARTL_STATE_PATHS" | cut -d: -f1)"
out="$d/v$BARTL_MIGRATION_VERSION"
rm -rf "$out"
mkdir "$out"
for f in "$d"/data/*.txt; do
  tr '0-9' 'a-j' < "$f" > "$out/${f##*/}.tmp"
  mv "$out/${f##*/}.tmp" "$out/${f##*/}"
done
echo "$BARTL_MIGRATION_VERSION" > "$d/schema"
grep -q "^$BARTL_MIGRATION_VERSION$" "$d/history" 2>/dev/null || echo "$BARTL_MIGRATION_VERSION" >> "$d/history"
"""

# post_restore: a file written by a truncating redirection and an append to a restored file.
POST_RESTORE = r"""#!/bin/sh
set -eu
d="$(echo "$BARTL_STATE_PATHS" | cut -d: -f1)"
echo "$BARTL_BACKUP_ID" > "$d/restored-from"
echo "restored from $BARTL_BACKUP_ID" >> "$d/journal.log"
"""

STEPS = ["1.1.0", "1.2.0"]
DATA_CALLS = {"write", "pwrite", "writev", "copy_file_range", "sendfile"}
BARRIER_CALLS = {"fsync", "fdatasync", "syncfs", "sync", "rename"}


def find_crashsim():
    """The shim: BARTL_CRASHSIM (set by tests/faults/meson.build), else crashsim.so in the
    build directory BARTLD belongs to, else in build-faults/ or build/."""
    if os.environ.get("BARTL_CRASHSIM"):
        return os.environ["BARTL_CRASHSIM"]
    for b in (bt.build_root(bt.Instance.bartld), os.path.join(bt.SOURCE_ROOT, "build-faults"), os.path.join(bt.SOURCE_ROOT, "build")):
        p = os.path.join(b, "tests", "faults", "crashsim.so")
        if os.path.exists(p):
            return p
    raise SystemExit("powerloss: crashsim.so not found: build it (ninja tests/faults/crashsim.so) "
                     "or set BARTL_CRASHSIM")


class Op:
    def __init__(self, n, call, paths):
        self.n, self.call, self.paths = n, call, paths


class Sim:
    """The shim's view of one scratch directory: the tracked trees, their saved starting
    point, the shim's journal directory and log."""

    def __init__(self, root, trees, shim):
        self.shim = shim
        self.dir = os.path.join(root, "crashsim")
        self.log = os.path.join(root, "crashsim.log")
        self.trees = trees
        self.saved = os.path.join(root, "start")
        for t in self.trees:
            os.makedirs(t, exist_ok=True)

    def env(self, at=None, poweroff=False):
        """The environment of a process under the shim (crashing before call `at`)."""
        e = {"LD_PRELOAD": self.shim, "CRASHSIM_ROOT": ":".join(os.path.realpath(t) for t in self.trees),
             "CRASHSIM_DIR": self.dir, "CRASHSIM_LOG": self.log}
        if at:
            e["CRASHSIM_AT"] = str(at)
        if poweroff:
            e["CRASHSIM_POWEROFF"] = "1"
        return e

    def save_start(self):
        """The present trees become the starting point of every run (cp -a keeps hard links)."""
        shutil.rmtree(self.saved, ignore_errors=True)
        os.makedirs(self.saved)
        for i, t in enumerate(self.trees):
            subprocess.run(["cp", "-a", t, os.path.join(self.saved, str(i))], check=True)

    def reset(self):
        """Back to the starting point, with an empty journal."""
        self.clear()
        for i, t in enumerate(self.trees):
            shutil.rmtree(t, ignore_errors=True)
            subprocess.run(["cp", "-a", os.path.join(self.saved, str(i)), t], check=True)

    def clear(self):
        """Drops the journal and the stash (files whose removal had reached the disk)."""
        shutil.rmtree(self.dir, ignore_errors=True)
        try:
            os.unlink(self.log)
        except FileNotFoundError:
            pass

    def poweroff(self):
        """A power loss now: undoes what the journal holds that is not durable."""
        subprocess.run(["/bin/true"], env=dict(os.environ, **self.env(poweroff=True)), check=True)

    def read_log(self):
        """(calls in order, the crash call number or None, changes undone)."""
        ops, crash, undone = [], None, 0
        try:
            with open(self.log) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            f = line.split("\t")
            if f[0] == "crash":
                crash = int(f[1])
            elif f[0] == "undone":
                undone += 1
            elif f[0].isdigit():
                ops.append(Op(int(f[0]), f[2], f[3:]))
        return ops, crash, undone


SELFTEST = r"""
cd "$1"
echo kept > kept
mkdir dir
sync
echo more >> kept
echo lost > lost
rmdir dir
"""


def selftest(shim):
    """The shim at work on a shell script (so that a shim doing nothing cannot pass the whole
    table): after a crash before call 6 and after a power-off at the end, what `sync` made
    durable is there (kept, dir/) and nothing after it (the append, lost, the rmdir)."""
    root = bt.scratch_root()
    try:
        sim = Sim(root, [os.path.join(root, "t")], shim)
        sim.save_start()
        t = sim.trees[0]
        for at in (6, None):
            sim.reset()
            p = subprocess.run(["sh", "-c", SELFTEST, "sh", t], env=dict(os.environ, **sim.env(at)),
                               start_new_session=True)
            if at is None:
                sim.poweroff()
            with open(os.path.join(t, "kept")) as f:
                kept = f.read()
            _, crash, undone = sim.read_log()
            if (p.returncode != (-signal.SIGKILL if at else 0) or crash != at or kept != "kept\n" or not undone
                    or not os.path.isdir(os.path.join(t, "dir")) or os.path.exists(os.path.join(t, "lost"))):
                log = open(sim.log).read() if os.path.exists(sim.log) else "(none: is the shim loaded?)"
                raise SystemExit(f"powerloss: the crashsim self-test failed (crash at {at}: exit {p.returncode}, "
                                 f"kept {kept!r}, {sorted(os.listdir(t))}); log:\n{log}")
    finally:
        bt.remove_scratch(root)


class Tally:
    def __init__(self, op):
        self.op = op
        self.calls = self.points = self.recovered = self.identical = self.lost = self.undone = 0
        self.outcomes = {}
        self.seconds = 0.0

    def row(self):
        outcome = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        return [self.op, self.calls, self.points, self.recovered, self.identical, self.lost,
                f"{self.undone / max(1, self.points):.1f}", f"{self.seconds:.1f}", outcome]

    def ok(self):
        return self.lost == 0 and self.recovered == self.points == self.identical

    def fail(self, where, msg, *results):
        self.lost += 1
        print(f"  FAIL [{self.op} {where}] {msg}", file=sys.stderr)
        for r in results:
            print(f"    {r!r}"[:6000], file=sys.stderr)


class Scenario:
    """An operation run under the shim from a saved starting point, and what a start after a
    power loss in it must give."""

    def __init__(self, name, inst, args, version, outcomes, shim):
        self.name, self.inst, self.args, self.version = name, inst, args, version
        self.sim = Sim(inst.root, [os.path.join(inst.root, "var"), inst.store], shim)
        # label -> (origin prefix, state hash); see expected()
        self.outcomes = outcomes
        self.start_backups = {}
        self.verified = set()
        self.retiring = set()  # blobs retention may delete once a newer backup is listable

    def save_start(self):
        """The present state and store become the starting point of every run."""
        self.start_backups = {b: m for b, m in self.inst.sidecars().items() if m}
        self.sim.save_start()
        return self

    def with_reference(self, label, origin):
        """Saves the starting point, runs the operation undisturbed (without the shim) for the
        state it must give, `label` with a marker origin starting with `origin`, and goes back
        to the start."""
        self.save_start()
        r = self.inst.run(*self.args)
        assert r.returncode == 0, r
        self.outcomes = {label: (origin, self.inst.state_hash())}
        self.sim.reset()
        return self

    def run(self, at=None):
        """The operation under the shim, crashing before call `at` if given. Result.killed:
        the power loss happened (bartld died of SIGKILL)."""
        r = self.inst.run_session(*self.args, env=self.sim.env(at))
        r.killed = r.returncode == -signal.SIGKILL
        return r

    def expected(self, ops, at):
        """The acceptable outcomes of a power loss before call `at` (None: after the end)."""
        return self.outcomes

    def check(self, t, where, at, crashed):
        ops, _, undone = self.sim.read_log()
        t.undone += undone
        if not self.check_store(t, where, crashed):
            return
        r = self.inst.run("--prepare")
        m = self.inst.marker()
        if r.returncode == bt.EXIT_FOREIGN:
            return t.fail(where, "the next start refused the state as foreign", crashed, r)
        if r.returncode != 0 or m is None or m["version"] != self.version:
            return t.fail(where, f"the next start did not converge (exit {r.returncode}, marker {m and m.get('version')})",
                          crashed, r)
        t.recovered += 1
        h = self.inst.state_hash()
        match = [label for label, (origin, ref) in self.expected(ops, at).items()
                 if m["origin"].startswith(origin) and h == ref]
        if not match:
            return t.fail(where, f"state differs from every acceptable outcome (origin {m['origin']})", crashed, r)
        left = [bt.staging_of(p) for p in self.inst.paths if os.path.lexists(bt.staging_of(p))]
        if left:
            return t.fail(where, f"staging left behind: {left}", r)
        if not self.check_store(t, where, r):
            return
        t.identical += 1
        t.outcomes[match[0]] = t.outcomes.get(match[0], 0) + 1

    def check_store(self, t, where, result):
        """Listable backups whole and verified; no backup of the starting point gone unless
        retention may retire it (a newer backup is listable)."""
        _, _, problems = bt.check_store(self.inst, set(self.start_backups), verified=self.verified)
        for msg, r in problems:
            t.fail(where, msg, *([r] if r else []), result)
            return False
        now = self.inst.sidecars()
        gone = set(self.start_backups) - set(now)
        newer = set(now) - set(self.start_backups)
        if gone and (not newer or not gone <= self.retiring):
            t.fail(where, f"backups gone: {sorted(gone)}", result)
            return False
        return True


class RestoreFrom(Scenario):
    """`--restore-from OLDER` over a lost state: until the pin is on disk (renamed and its
    directory synced) the request may be lost, and then the newest backup is restored."""

    def __init__(self, *a, newest=None, **kw):
        super().__init__(*a, **kw)
        self.newest = newest

    def expected(self, ops, at):
        pin = os.path.join(os.path.realpath(self.inst.bartl_dir), "restore-from")
        renamed = None
        for o in ops:
            if o.call == "rename" and len(o.paths) > 1 and o.paths[1] == pin:
                renamed = o.n
            elif renamed and o.call == "fsync" and o.paths and o.paths[0] == os.path.dirname(pin):
                if at is None or o.n < at:
                    return self.outcomes
                break
        return dict(self.outcomes, **self.newest)


def crash_points(ops, budget, rng):
    """Every call number, or (budget) a seeded sample: first the points right after a
    durability barrier (fsync, syncfs, rename: where ordering bugs show), then the other
    calls, each group stratified over the run; a run of data writes to one file counts by its
    first and last call only."""
    if not ops:
        return []
    if budget is None:
        return list(range(1, ops[-1].n + 1))

    def same_write(a, b):
        return a.call in DATA_CALLS and b.call in DATA_CALLS and a.paths == b.paths

    def sample(cand, k):
        if len(cand) <= k:
            return list(cand)
        return [rng.choice(cand[i * len(cand) // k:(i + 1) * len(cand) // k]) for i in range(k)]

    after_barrier = [o.n + 1 for o in ops[:-1] if o.call in BARRIER_CALLS]
    rest = [o.n for i, o in enumerate(ops)
            if o.n not in after_barrier
            and not (0 < i < len(ops) - 1 and same_write(ops[i - 1], o) and same_write(o, ops[i + 1]))]
    first = sample(after_barrier, budget)
    return sorted(first + sample(rest, budget - len(first)))


def run_scenario(build, budget, rng):
    """Sets the scenario up (build()), then a counting run (+ the power loss after its end),
    then one crash per chosen point."""
    started = time.monotonic()
    sc = build()
    t = Tally(sc.name)
    sc.sim.reset()
    r = sc.run()
    ops, _, _ = sc.sim.read_log()
    if r.returncode != 0 or not ops:
        raise SystemExit(f"powerloss: undisturbed {sc.name} run under the shim failed or logged no call: {r!r}")
    t.calls = len(ops)
    sc.sim.poweroff()
    t.points += 1
    sc.check(t, "end", None, r)
    sc.sim.clear()
    for at in crash_points(ops, budget, rng):
        sc.sim.reset()
        k = sc.run(at)
        if not k.killed:
            if k.returncode != 0:
                t.fail(f"@{at}", f"run under the shim exited {k.returncode} without crashing", k)
                continue
            sc.sim.poweroff()  # the run took fewer calls this time: a power loss after its end
        t.points += 1
        sc.check(t, f"@{at}", at if k.killed else None, k)
        sc.sim.clear()
    t.seconds = time.monotonic() - started
    return t


def write_state(inst, text, blob):
    """Changes the state in place (between backups of the scenarios)."""
    with open(os.path.join(inst.paths[0], "generation"), "w") as f:
        f.write(text)
    with open(os.path.join(inst.paths[0], "blob.bin"), "wb") as f:
        f.write(blob)


def scenarios(work, shim, mib, rng):
    """[(name, builder)]: each builder sets one scenario up, at its starting point."""
    def init():
        root = os.path.join(work, "init")
        inst = bt.Instance(root, n_paths=2, init_hook=bt.init_hook(root))
        os.makedirs(inst.paths[1])  # empty, as systemd's StateDirectory= leaves it: replaced by rename
        return Scenario("init", inst, ["--prepare"], "1.0.0", {}, shim).with_reference("init", "init")

    def restore():
        hook = bt.write_exec(os.path.join(work, "restore", "hooks", "post_restore"), POST_RESTORE)
        inst = bt.dataset_instance(work, mib, "restore", hooks={"post_restore": [hook]})
        assert inst.run("--backup").returncode == 0
        bid = inst.backup_ids()[0]
        inst.wipe_state()
        return Scenario("restore", inst, ["--prepare"], "1.0.0", {}, shim).with_reference("restored", f"restore:{bid}")

    def migrate():
        root = os.path.join(work, "migrate")
        mig = os.path.join(root, "migrations")
        for s in STEPS:
            bt.write_exec(os.path.join(mig, f"{s}-derive"), MIGRATION)
        inst = bt.Instance(root, n_paths=1, before_migrate=True, init_hook=bt.init_hook(root))
        assert inst.run("--prepare").returncode == 0
        inst.write_config(version=STEPS[-1], migrations=mig)
        return Scenario("migrate", inst, ["--prepare"], STEPS[-1], {}, shim).with_reference("migrated", "init")

    def backup():
        inst = bt.dataset_instance(work, mib, "backup", keep_last=2)
        for g in range(2):
            write_state(inst, f"generation {g}\n", rng.randbytes(50_000))
            assert inst.run("--backup").returncode == 0
            time.sleep(1.1)  # retention removes only what is older (in seconds) than the newest
        ref = inst.state_hash()
        sc = Scenario("backup", inst, ["--backup"], "1.0.0", {"unchanged": ("init", ref)}, shim)
        sc.retiring = {min(inst.sidecars(), key=lambda b: inst.sidecars()[b]["created"])}
        return sc.save_start()

    def restore_from():
        inst = bt.dataset_instance(work, mib, "restore-from")
        hashes = []
        for g in range(2):
            write_state(inst, f"generation {g}\n", rng.randbytes(50_000))
            assert inst.run("--backup").returncode == 0
            hashes.append(inst.state_hash())
        newest, older = inst.backup_ids()[:2]
        for p in inst.paths:  # the state is lost, its marker stays behind
            shutil.rmtree(p)
        sc = RestoreFrom("restore-from", inst, ["--prepare", "--restore-from", older], "1.0.0",
                         {"pinned": (f"restore:{older}", hashes[0])}, shim,
                         newest={"pin lost": (f"restore:{newest}", hashes[1])})
        return sc.save_start()

    return [("init", init), ("restore", restore), ("migrate", migrate), ("backup", backup),
            ("restore-from", restore_from)]


def main(argv):
    long, seed = bt.mode_from_argv(argv)
    budget = None if long else 32
    if "--points" in argv:
        budget = int(argv[argv.index("--points") + 1])
    mib = 1
    rng = random.Random(seed)
    shim = find_crashsim()
    print(f"powerloss: {'every call' if budget is None else f'at most {budget} crash points'} per operation, "
          f"seed {seed}, bartld {bt.Instance.bartld}, shim {shim}", flush=True)
    selftest(shim)
    work = bt.scratch_root()
    tallies = bt.run_each(work, [(name, lambda build=build: run_scenario(build, budget, rng))
                                 for name, build in scenarios(work, shim, mib, rng)], bt.only_from_argv(argv))
    return bt.finish("powerloss",
                     f"Power loss anywhere (crashsim: a crash before call N, non-durable changes undone; seed {seed})",
                     ["operation", "calls", "crash points", "recovered", "identical", "data lost", "undone/crash",
                      "s", "outcomes"], tallies)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
