"""A private OpenSSH server for the sftp:// tests and benchmarks: Debian's /usr/sbin/sshd on a
loopback port with a host key and a user key of its own, serving internal-sftp to root, started
and stopped by the caller (no system configuration). Needs root (sshd's privilege separation)
and openssh-server/openssh-client (tools/install-deps)."""
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time

from bartltest import free_port

SSHD = "/usr/sbin/sshd"
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """In the child before exec: SIGKILL when the test process dies, however it dies."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def keygen(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bartl-test", "-f", path], check=True)


class SshServer:
    """sshd -D on 127.0.0.1:port serving internal-sftp to root with user_key, until stop()."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.port = free_port()
        self.host_key = os.path.join(directory, "hostkey")
        self.user_key = os.path.join(directory, "userkey")
        self.known_hosts = os.path.join(directory, "known_hosts")
        self.log = os.path.join(directory, "sshd.log")
        keygen(self.host_key)
        keygen(self.user_key)
        shutil.copy(self.user_key + ".pub", os.path.join(directory, "authorized_keys"))
        with open(self.known_hosts, "w") as f:
            f.write(self.known_hosts_line(self.host_key))
        self.config = os.path.join(directory, "sshd_config")
        with open(self.config, "w") as f:
            f.write(f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
                    f"AuthorizedKeysFile {directory}/authorized_keys\nPasswordAuthentication no\n"
                    "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\n"
                    f"UsePAM no\nPidFile {directory}/sshd.pid\nLogLevel VERBOSE\nSubsystem sftp internal-sftp\n")
        os.makedirs("/run/sshd", exist_ok=True)
        self.proc = None
        self.start()

    def known_hosts_line(self, key):
        with open(key + ".pub") as f:
            kind, blob = f.read().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {blob}\n"

    def start(self):
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", self.config], stderr=log,
                                         preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.proc.poll() is not None:
                raise AssertionError(f"sshd exited {self.proc.returncode}: {open(self.log).read()}")
            time.sleep(0.02)
        raise AssertionError("sshd does not accept connections")

    def sessions(self):
        """PIDs of the processes serving connections (below the listener)."""
        if not self.proc:
            return []
        parents, out, grew = {self.proc.pid}, [], True
        table = []
        for n in os.listdir("/proc"):
            if n.isdigit():
                try:
                    with open(f"/proc/{n}/stat") as f:
                        stat = f.read()
                except OSError:
                    continue
                table.append((int(n), int(stat[stat.rindex(")") + 2:].split()[1])))
        while grew:
            grew = False
            for pid, ppid in table:
                if ppid in parents and pid not in parents:
                    parents.add(pid)
                    out.append(pid)
                    grew = True
        return out

    def stop(self):
        """The host goes down: the listener and every session."""
        if not self.proc:
            return
        sessions = self.sessions()
        self.proc.kill()
        for pid in sessions:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        self.proc = None

    def url(self, directory, user="root"):
        return f"sftp://{user}@127.0.0.1:{self.port}{directory}"

    def client_options(self):
        return ["-i", self.user_key, "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                "-o", "BatchMode=yes"]

    def sftp(self, *commands):
        """Runs OpenSSH's sftp(1) with `commands` as its batch; returns its stdout."""
        r = subprocess.run(["sftp", "-q", "-b", "-", *self.client_options(), "-P", str(self.port), "root@127.0.0.1"],
                           input="\n".join(commands) + "\n", capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError(f"sftp failed ({r.returncode}): {r.stderr}")
        return r.stdout

    def scp(self, src, dst):
        r = subprocess.run(["scp", "-q", *self.client_options(), "-P", str(self.port), src, dst], capture_output=True,
                           text=True, timeout=600)
        if r.returncode != 0:
            raise AssertionError(f"scp {src} {dst} failed ({r.returncode}): {r.stderr}")
