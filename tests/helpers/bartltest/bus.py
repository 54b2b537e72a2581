"""D-Bus (issue 4): a private system-type bus, and bartlctl and busctl on it."""
import os
import shutil
import subprocess
import tempfile

from .memcheck import command, scaled
from .paths import BARTLCTL, DBUS_POLICY

# The default policy of Debian's /usr/share/dbus-1/system.conf: deny owning names and method
# calls unless a policy file punches a hole; replies, signals and the bus driver are allowed.
_SYSTEM_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>{address}</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  {includes}
</busconfig>
"""


def system_bus_config(address, policy=DBUS_POLICY):
    """The dbus-daemon configuration of a system-type bus listening on `address`, with the
    bus policy file `policy` (None: none) included."""
    return _SYSTEM_BUS_CONFIG.format(address=address, includes=f"<include>{policy}</include>" if policy else "")


class PrivateBus:
    """A real dbus-daemon configured like the system bus (deny by default) with the bartl bus
    policy under test included. Its directory is world-traversable so unprivileged callers
    (setpriv) can connect. env() gives DBUS_SYSTEM_BUS_ADDRESS for bartld and bartlctl."""

    def __init__(self, policy=DBUS_POLICY):
        self.dir = tempfile.mkdtemp(prefix="bartl-bus-")
        os.chmod(self.dir, 0o755)
        self.address = "unix:path=" + os.path.join(self.dir, "system_bus_socket")
        self.config = os.path.join(self.dir, "system.conf")
        with open(self.config, "w") as f:
            f.write(system_bus_config(self.address, policy))
        self.proc = subprocess.Popen(["dbus-daemon", "--config-file", self.config, "--nofork", "--print-address"],
                                     stdout=subprocess.PIPE, text=True)
        # The address is printed once the socket listens.
        line = self.proc.stdout.readline()
        if not line.startswith("unix:"):
            self.close()
            raise AssertionError(f"dbus-daemon did not start: {line!r}")

    def env(self):
        return {"DBUS_SYSTEM_BUS_ADDRESS": self.address}

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _as_nobody(argv):
    """ARGV run as uid/gid 65534 without supplementary groups (setpriv)."""
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]


def bartlctl(*args, bus=None, env=None, as_nobody=False, timeout=60):
    """Runs bartlctl ARGS (against `bus` when given); returns CompletedProcess (text). With
    as_nobody it runs as uid/gid 65534 without supplementary groups (setpriv)."""
    e = dict(os.environ)
    if bus:
        e.update(bus.env())
    e.update(env or {})
    argv = command(BARTLCTL, *args)
    return subprocess.run(_as_nobody(argv) if as_nobody else argv, capture_output=True, text=True, errors="replace",
                          timeout=scaled(timeout), env=e)


def busctl(*args, bus, as_nobody=False, timeout=30):
    """Runs busctl --system ARGS against `bus`; returns CompletedProcess (text)."""
    argv = ["busctl", "--system", *args]
    return subprocess.run(_as_nobody(argv) if as_nobody else argv, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **bus.env()})
