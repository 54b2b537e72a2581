"""Where the checkout and the built programs are.

The environment meson sets for the tests names them: BARTL_SOURCE_ROOT (the checkout), BARTLD
and BARTLCTL (the built programs), BARTL_DBUS_POLICY (the bus policy under test). A script run
by hand from a checkout finds them without it.
"""
import os
import sys

SOURCE_ROOT = os.environ.get("BARTL_SOURCE_ROOT",
                             os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
EXAMPLES = os.path.join(SOURCE_ROOT, "examples", "notes")


def find_bartld(builds=("build",), explicit=None):
    """The bartld to test: `explicit` (a command-line option), else $BARTLD, else the first
    executable SOURCE_ROOT/BUILD/src/daemon/bartld of the build directories `builds`, else
    build/'s path (so that the error of running it names where it was looked for). A path
    given explicitly or in $BARTLD is taken as it is, never passed over for another build."""
    given = explicit or os.environ.get("BARTLD")
    if given:
        return given
    candidates = [os.path.join(SOURCE_ROOT, b, "src", "daemon", "bartld") for b in builds]
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return os.path.join(SOURCE_ROOT, "build", "src", "daemon", "bartld")


def require_bartld(builds, explicit=None):
    """find_bartld() for a program run by hand (the benchmarks): exits naming how to build it
    when that is not an executable file."""
    bartld = find_bartld(builds, explicit)
    if not (os.path.isfile(bartld) and os.access(bartld, os.X_OK)):
        sys.exit(f"bartld not found at {bartld}: build it (meson setup {builds[0]} --buildtype=release && "
                 f"ninja -C {builds[0]} src/daemon/bartld) or pass --bartld PATH")
    return bartld


def build_root(bartld):
    """The build directory a built bartld (BUILD/src/daemon/bartld) belongs to."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(bartld))))


BARTLD = find_bartld()
BUILD_ROOT = build_root(BARTLD)
BARTLCTL = os.environ.get("BARTLCTL", os.path.join(BUILD_ROOT, "src", "ctl", "bartlctl"))
DBUS_POLICY = os.environ.get("BARTL_DBUS_POLICY", os.path.join(BUILD_ROOT, "dbus", "app.bartl.Instance1.conf"))
