"""The test library of every integration test, fault script and benchmark: real processes,
real sockets, real files, no mocks. Python 3 standard library only.

    paths     where the checkout and the built bartld and bartlctl are
    memcheck  sanitizer and valgrind reports of every bartld and bartlctl a test starts
    procs     child processes: exit, elapsed time and peak RSS; sessions killed whole
    notify    real NOTIFY_SOCKET listeners
    config    bartl.toml(5) files written from Python values or edited
    store     a file:// store's backups read from their sidecars
    fs        scripts, tree digests and hashes, generated data
    bus       a private system-type dbus-daemon; bartlctl and busctl on it
    instance  what every instance has (InstanceBase); the fault suite's generic app (Instance)
    stack     the example notes app (Stack, StackTest) on this host or another (HostView)
    faults    the fault suite's harness: scratch directories, hooks, data sets, its table
    report    figures: percentiles, sizes, tables, PASS/FAIL

Everything public is importable from the package itself (`from bartltest import StackTest`).
Paths come from the environment meson sets (paths); a script run by hand from a checkout puts
tests/helpers on sys.path. Importing it sets up the memory checkers (memcheck).
"""
from .paths import (BARTLCTL, BARTLD, BUILD_ROOT, DBUS_POLICY, EXAMPLES, SOURCE_ROOT, build_root, find_bartld,
                    require_bartld)
from .memcheck import TIME_FACTOR, WRAPPER, CheckedTest, command, memory_reports, scaled
from .procs import (EXIT_CONFIG, EXIT_DOWNGRADE, EXIT_FOREIGN, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, Process, Result,
                    SYSTEMD_VARIABLES, bartld_env, cpu_seconds, exited, kill_session, proc_status, session_members,
                    spawn)
from .notify import Datagrams, NotifyListener
from .config import edit_config, position_of, toml_key, toml_value, write_config
from .store import STORE_BOOKKEEPING, check_store, newest_first, sidecars, store_objects, temporaries
from .fs import (content_hash, make_mixed_data, sha256_file, staging_of, tree_digest, tree_entries, tree_hash,
                 write_exec, write_file)
from .bus import PrivateBus, bartlctl, busctl, system_bus_config
from .instance import Instance, InstanceBase, init_store
from .stack import HostView, Stack, StackTest, free_port
from .faults import (build_dataset, dataset_instance, finish, init_hook, mode_from_argv, only_from_argv,
                     remove_scratch, run_each, scratch_root)
from .report import GiB, MiB, human, median, parse_size, pct, print_table, verdict
