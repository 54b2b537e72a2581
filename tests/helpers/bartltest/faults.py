"""The fault suite's harness (tests/faults/README.md): scratch directories, init hooks and data
sets, command-line modes, and the figures table with its verdict."""
import concurrent.futures
import fcntl
import multiprocessing
import os
import shutil
import tempfile
import time

from .fs import make_mixed_data, write_exec
from .instance import Instance
from .report import print_table


def scratch_root():
    """A fresh directory for one test; FAULTS_TMPDIR picks the filesystem (default: $TMPDIR)."""
    return tempfile.mkdtemp(prefix="bartl-faults-", dir=os.environ.get("FAULTS_TMPDIR"))


def remove_scratch(work):
    """Removes a scratch directory, or names it when FAULTS_KEEP is set."""
    if os.environ.get("FAULTS_KEEP"):
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


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
    """The mixed data set of two state paths under work/dataset (made once, by the first of
    concurrent callers while the others wait): path 0 is make_mixed_data(mib), path 1 a small
    settings file and a symlink to it."""
    src0 = os.path.join(work, "dataset", "0")
    src1 = os.path.join(work, "dataset", "1")
    with open(os.path.join(work, "dataset.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isdir(src1):  # made last
            shutil.rmtree(src0, ignore_errors=True)
            make_mixed_data(src0, mib, seed=7)
            os.makedirs(src1 + ".tmp", exist_ok=True)
            with open(os.path.join(src1 + ".tmp", "settings.ini"), "w") as f:
                f.write("[main]\nkey = value\n")
            os.symlink("settings.ini", os.path.join(src1 + ".tmp", "link.ini"))
            os.rename(src1 + ".tmp", src1)
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
    assert r.returncode == 0, r
    return inst


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


def run_each(work, named, only=None, lanes=None):
    """Runs fn() for each (name, fn) that `only` (None: all) names, printing progress with each
    one's wall time, then removes the scratch directory `work` unless FAULTS_KEEP is set.
    Returns the results in the order of `named`. lanes (lists of names): each lane runs its
    functions one after the other in a forked process of its own, the lanes at once (fn and
    its result must be picklable: a functools.partial of a module-level function, plain
    objects); names in no lane run after them, one by one. None: all one by one, here."""
    todo = [(name, fn) for name, fn in named if not only or name in only]
    try:
        if not lanes:
            return [_timed(name, fn) for name, fn in todo]
        fns = dict(todo)
        lanes = [[(n, fns.pop(n)) for n in lane if n in fns] for lane in lanes]
        lanes = [lane for lane in lanes if lane]
        done = {}
        ctx = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(max_workers=max(1, len(lanes)), mp_context=ctx) as pool:
            for f in [pool.submit(_lane, lane) for lane in lanes]:
                done.update(f.result())
        done.update((name, _timed(name, fn)) for name, fn in fns.items())
        return [done[name] for name, _ in todo]
    finally:
        remove_scratch(work)


def _lane(lane):
    return [(name, _timed(name, fn)) for name, fn in lane]


def _timed(name, fn):
    t0 = time.monotonic()
    out = fn()
    print(f"  {name}: done ({time.monotonic() - t0:.0f} s)", flush=True)
    return out


def finish(script, title, header, tallies):
    """Prints the figures table of tallies (each with row() and ok()) and SCRIPT: PASS/FAIL;
    returns the exit status."""
    print_table(title, header, [t.row() for t in tallies])
    ok = all(t.ok() for t in tallies)
    print(f"{script}: PASS" if ok else f"{script}: FAIL", flush=True)
    return 0 if ok else 1
