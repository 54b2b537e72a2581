"""Real AF_UNIX datagram sockets standing in for systemd's: NOTIFY_SOCKET (sd_notify(3)) and
the like, each datagram recorded with its arrival time."""
import os
import select
import socket
import threading
import time

from .memcheck import scaled


class Datagrams:
    """An AF_UNIX datagram socket bound at `path` (chmod `mode` if given) that records every
    datagram as (arrival time, parse(data)) in `messages` (under `lock`). The time is
    time.monotonic(), which on Linux is time.perf_counter()'s clock too. With `background`
    a thread of its own receives; without, nothing is received but while a caller waits in
    receive() or wait_for(), which gives the most precise arrival times (no thread switch)."""

    def __init__(self, path, background=True, mode=None):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        if mode is not None:
            os.chmod(path, mode)
        self.sock.setblocking(False)
        self.messages = []
        self.lock = threading.Lock()
        self.stopped = False
        self.background = background
        if background:
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()

    def parse(self, data):
        """A received datagram as recorded (bytes here; subclasses decode it)."""
        return data

    def receive(self, timeout):
        """Waits up to `timeout` seconds for one datagram, records it and returns (time,
        message); None when none came."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return None
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return None
        entry = (time.monotonic(), self.parse(data))
        with self.lock:
            self.messages.append(entry)
        return entry

    def _run(self):
        while not self.stopped:
            try:
                self.receive(0.2)
            except (OSError, ValueError):  # closed
                return

    def clear(self):
        """Forgets what was received; without a thread, drops what waits in the socket too."""
        if not self.background:
            while True:
                try:
                    self.sock.recv(1 << 20)
                except BlockingIOError:
                    break
        with self.lock:
            self.messages.clear()

    def close(self):
        self.stopped = True
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class NotifyListener(Datagrams):
    """A real NOTIFY_SOCKET (DIRECTORY/notify.sock): messages are (time, text), the text's
    lines being sd_notify's "KEY=value" assignments."""

    def __init__(self, directory, background=True):
        super().__init__(os.path.join(directory, "notify.sock"), background)

    def parse(self, data):
        return data.decode(errors="replace")

    def texts(self):
        with self.lock:
            return [m for _, m in self.messages]

    def first_time(self, line):
        """Arrival time of the first message holding `line` (e.g. "READY=1"), or None."""
        with self.lock:
            for t, m in self.messages:
                if line in m.split("\n"):
                    return t
        return None

    def statuses(self):
        """The STATUS= texts, in order."""
        out = []
        for m in self.texts():
            for line in m.split("\n"):
                if line.startswith("STATUS="):
                    out.append(line[len("STATUS="):])
        return out

    def wait_for(self, line, timeout=30, alive=None):
        """Arrival time of the first message holding `line`, waiting up to `timeout` seconds
        (scaled) while alive() (default: always) holds; None when it did not come."""
        deadline = time.monotonic() + scaled(timeout)
        while True:
            t = self.first_time(line)
            if t is not None:
                return t
            left = deadline - time.monotonic()
            if left <= 0 or (alive is not None and not alive()):
                return None
            if self.background:
                time.sleep(min(left, 0.02))
            else:
                self.receive(min(left, 0.05))
