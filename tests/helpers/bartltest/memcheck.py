"""Memory checkers: sanitizers and BARTL_TEST_WRAPPER (README.md, Tests).

BARTL_TEST_WRAPPER (e.g. "valgrind --leak-check=full ...") runs every bartld and bartlctl the
tests start under that command, with deadlines stretched by BARTL_TEST_TIMEOUT_FACTOR (default
10 with a wrapper, else 1). Valgrind logs and ASan/LSan/UBSan reports go to a private
directory, and a test during which any process reported an error fails with the report
(CheckedTest); one reported outside a test fails the program at exit. Importing this module
sets that up (the sanitizers' log_path in the environment every child inherits).
"""
import atexit
import os
import re
import shlex
import shutil
import sys
import tempfile
import unittest

WRAPPER = shlex.split(os.environ.get("BARTL_TEST_WRAPPER", ""))
TIME_FACTOR = float(os.environ.get("BARTL_TEST_TIMEOUT_FACTOR") or (10 if WRAPPER else 1))

# Reports land here, never in the stderr a test reads. World-writable (sticky) because some
# tests run bartlctl as nobody.
REPORT_DIR = tempfile.mkdtemp(prefix="bartl-reports-")
os.chmod(REPORT_DIR, 0o1777)
# A sanitizer that cannot read its suppressions file aborts the program at start. Tests that
# run bartld or bartlctl as nobody would meet a checkout in a 0700 home, or files cloned under
# umask 077: they read world-readable copies here instead.
SUPPRESSIONS_DIR = tempfile.mkdtemp(prefix="bartl-suppressions-")
os.chmod(SUPPRESSIONS_DIR, 0o755)
for _var in ("ASAN_OPTIONS", "LSAN_OPTIONS"):
    _opts = []
    for _opt in os.environ.get(_var, "").split(":"):
        _key, _, _path = _opt.partition("=")
        if _key == "suppressions" and os.path.isfile(_path):
            _copy = os.path.join(SUPPRESSIONS_DIR, _var.split("_")[0].lower() + "-" + os.path.basename(_path))
            shutil.copyfile(_path, _copy)
            os.chmod(_copy, 0o644)
            _opt = "suppressions=" + _copy
        _opts.append(_opt)
    if _var in os.environ:
        os.environ[_var] = ":".join(_opts)
for _var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
    # The last log_path wins; the sanitizer appends ".PID". No effect on binaries built
    # without sanitizers.
    _opts = os.environ.get(_var, "")
    os.environ[_var] = (_opts + ":" if _opts else "") + "log_path=" + os.path.join(REPORT_DIR, _var.split("_")[0].lower())
if WRAPPER and os.path.basename(WRAPPER[0]) == "valgrind" and not any(a.startswith("--log-") for a in WRAPPER):
    WRAPPER.insert(1, "--log-file=" + os.path.join(REPORT_DIR, "valgrind.%p"))

# Lines of a memcheck error, for logs of processes that died without their ERROR SUMMARY.
_VALGRIND_ERROR = re.compile(r"^==\d+== (Invalid |Conditional jump|Use of uninitialised|Syscall param|Mismatched free|"
                             r"Source and destination overlap|Argument .* of function|Process terminating)", re.M)


def command(program, *args):
    """The argv that runs PROGRAM ARGS under BARTL_TEST_WRAPPER, if one is set. For bartld and
    bartlctl only: tools the tests merely use are not ours to check."""
    return [*WRAPPER, program, *args]


def scaled(seconds):
    """A deadline of `seconds` stretched by TIME_FACTOR for slow memory checkers. Only for
    upper bounds (timeouts, deadlines): a lower bound a test asserts stays as it is."""
    return seconds * TIME_FACTOR


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


# An LSan log holding nothing but the "Suppressions used" table of suppressed leaks.
_SUPPRESSIONS_ONLY = re.compile(r"\s*-+\s*Suppressions used:\s*\n\s*count\s+bytes\s+template\s*\n"
                                r"(?:\s*\d+\s+\d+\s+\S+\s*\n)+\s*-+\s*", re.S)


def memory_reports():
    """Sanitizer and valgrind error reports written since the last call, as one text ("" for
    none). Every finished report is consumed; clean valgrind logs are dropped, and logs of
    processes still running are left for the next call."""
    out = []
    for name in sorted(os.listdir(REPORT_DIR)):
        path = os.path.join(REPORT_DIR, name)
        with open(path, errors="replace") as f:
            text = f.read()
        if name.startswith("valgrind."):
            summary = re.search(r"ERROR SUMMARY: (\d+) errors", text)
            if summary is None and _alive(int(name.split(".")[-1])):
                continue
            failed = int(summary.group(1)) > 0 if summary else _VALGRIND_ERROR.search(text) is not None
        else:
            # A sanitizer writes a log to report an error, or (LSan with print_suppressions)
            # only the statistics of suppressed leaks, which is no error.
            failed = _SUPPRESSIONS_ONLY.fullmatch(text) is None
        os.remove(path)
        if failed:
            out.append(f"--- {path} ---\n{text}")
    return "\n".join(out)


_outside_tests = []  # reports found when a test began: from module code, setUpClass, ...


@atexit.register
def _reports_at_exit():
    reports = "\n".join(r for r in _outside_tests + [memory_reports()] if r)
    if reports:
        sys.stderr.write(f"memory errors reported outside any test (setUpClass, helpers):\n{reports}\n")
        sys.stderr.flush()
        sys.stdout.flush()
        shutil.rmtree(REPORT_DIR, ignore_errors=True)
        shutil.rmtree(SUPPRESSIONS_DIR, ignore_errors=True)
        os._exit(1)
    shutil.rmtree(REPORT_DIR, ignore_errors=True)
    shutil.rmtree(SUPPRESSIONS_DIR, ignore_errors=True)


class CheckedTest(unittest.TestCase):
    """Base class: a test fails when a process it started reported a memory error (a sanitizer
    report or a valgrind error); one that failed already gets the report on stderr."""

    def setUp(self):
        _outside_tests.append(memory_reports())

    def tearDown(self):
        reports = memory_reports()
        if not reports:
            return
        result = getattr(getattr(self, "_outcome", None), "result", None)
        failed = [t for t, _ in getattr(result, "failures", []) + getattr(result, "errors", [])]
        if any(t is self or getattr(t, "test_case", None) is self for t in failed):
            # Counted once: the test failed already (likely of this very error).
            sys.stderr.write(f"memory errors reported during {self.id()}:\n{reports}\n")
            return
        self.fail(f"memory errors reported:\n{reports}")
