#!/usr/bin/env python3
"""A local S3 for the tests: npm's s3rver on a loopback port, fronted by s3proxy.py (SigV4
verified with botocore, faults on demand, requests counted).

As a module: S3Servers() starts both (installing s3rver with npm into a cache directory the
first time) and raises Unavailable when that cannot be done here (no npm, no registry, no
botocore); .endpoint is the proxy's URL, .direct the s3rver URL, .fault()/.stats()/.reset()
talk to the proxy, .close() stops both.

As a program (a meson test wrapper): s3servers.py run -- COMMAND ARGS... starts the servers,
runs COMMAND with BARTL_TEST_S3_ENDPOINT (the proxy), BARTL_TEST_S3_VHOST_ENDPOINT (the proxy
as http://s3.localhost:PORT, for virtual-hosted addressing), BARTL_TEST_S3_DIRECT (s3rver),
BARTL_TEST_S3_BUCKET and BARTL_TEST_S3_DATA (s3rver's directory) set, stops them and exits with
COMMAND's status; when the servers cannot be had it prints a SKIP line naming why and exits
77 (meson's "skipped").
"""
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
NPM_CACHE = os.environ.get("BARTL_TEST_NPM_DIR", "/var/cache/bartl-test/npm")
S3RVER_SPEC = "s3rver@3"
ACCESS_KEY = SECRET = "S3RVER"  # s3rver's built-in account
REGION = "us-east-1"
BUCKET = "bartl-test"


class Unavailable(Exception):
    """The local S3 cannot run on this machine (the reason is the message)."""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def botocore_python():
    """A Python interpreter that can import botocore (Debian's python3-botocore, or this one)."""
    for exe in (sys.executable, "/usr/bin/python3"):
        if exe and os.path.exists(exe) and subprocess.run([exe, "-c", "import botocore.auth"],
                                                          capture_output=True).returncode == 0:
            return exe
    raise Unavailable("botocore is not installed (Debian: apt-get install python3-botocore)")


def aws_cli():
    """Debian's awscli (the independent client of the interop tests), else one on PATH."""
    for exe in ("/usr/bin/aws", shutil.which("aws")):
        if exe and os.path.exists(exe):
            return exe
    return None


def s3rver_bin():
    """The s3rver program, installed with npm into NPM_CACHE on first use."""
    exe = os.path.join(NPM_CACHE, "node_modules", ".bin", "s3rver")
    if os.path.exists(exe):
        return exe
    npm = shutil.which("npm")
    if not npm or not shutil.which("node"):
        raise Unavailable("npm/node are not installed (Debian: apt-get install nodejs npm)")
    os.makedirs(NPM_CACHE, exist_ok=True)
    # One install at a time: on a new machine unit-store-s3 and integration-s3 start together,
    # and two npm installs into one prefix made the loser fail, so its tests were skipped
    # (the pristine Debian 12 run found it). The second waits and finds it installed.
    with open(os.path.join(NPM_CACHE, ".install.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(exe):
            return exe
        r = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", NPM_CACHE, S3RVER_SPEC],
                           capture_output=True, text=True, timeout=300)
    if r.returncode != 0 or not os.path.exists(exe):
        raise Unavailable(f"npm install {S3RVER_SPEC} failed: {(r.stderr or r.stdout).strip()[-400:]}")
    return exe


def _wait_http(url, proc, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Unavailable(f"{what} exited with status {proc.returncode} before it answered")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers (403 for an unsigned request)
        except OSError:
            time.sleep(0.1)
    raise Unavailable(f"{what} did not answer on {url} within {timeout} s")


class S3Servers:
    """s3rver + the verifying proxy, on free loopback ports, with bucket BUCKET (and any in
    `buckets`)."""

    def __init__(self, buckets=(), data=None):
        exe = s3rver_bin()
        python = botocore_python()
        self.own_data = data is None
        self.data = data or tempfile.mkdtemp(prefix="bartl-s3rver-")
        self.buckets = [BUCKET, *buckets]
        self.s3_port, self.proxy_port = _free_port(), _free_port()
        self.s3rver = self.proxy = None
        # BUCKET.s3.localhost is a virtual-hosted bucket (curl resolves *.localhost to loopback).
        cmd = [exe, "-d", self.data, "-p", str(self.s3_port), "-a", "127.0.0.1", "--service-endpoint", "localhost",
               "--silent"]
        for b in self.buckets:
            cmd += ["--configure-bucket", b]
        try:
            # s3rver's continuation tokens use DES, which OpenSSL 3 keeps in its legacy provider:
            # without it every truncated listing (more than 1,000 keys) is a 500 InternalError.
            env = dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider")
            self.s3rver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           start_new_session=True, env=env)
            _wait_http(f"http://127.0.0.1:{self.s3_port}/", self.s3rver, "s3rver")
            self.proxy = subprocess.Popen([python, os.path.join(HERE, "s3proxy.py"), "--port", str(self.proxy_port),
                                           "--upstream", str(self.s3_port), "--data", self.data,
                                           "--access-key", ACCESS_KEY, "--secret", SECRET, "--region", REGION],
                                          stdout=subprocess.PIPE, text=True, start_new_session=True)
            line = self.proxy.stdout.readline()
            if not line.startswith("listening"):
                raise Unavailable(f"the S3 test proxy did not start: {line!r}")
        except BaseException:
            self.close()
            raise
        self.endpoint = f"http://127.0.0.1:{self.proxy_port}"
        self.direct = f"http://127.0.0.1:{self.s3_port}"
        self.vhost_endpoint = f"http://s3.localhost:{self.proxy_port}"  # for virtual-hosted addressing

    # --- the proxy's control endpoint -----------------------------------------------------

    def _control(self, path, payload=None):
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(self.endpoint + path, data=data, method="POST" if data is not None else "GET")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def fault(self, *rules):
        """Adds fault rules (s3proxy.py's docstring)."""
        self._control("/__proxy/faults", list(rules))

    def stats(self):
        """{"counts": {op: n}, "requests": [...], "rejected": [...], "rules": [...]}."""
        return self._control("/__proxy/stats")

    def reset(self):
        """Clears the fault rules and the counters."""
        self._control("/__proxy/reset", {})

    def uploads_in_progress(self, bucket=BUCKET):
        """Upload IDs of multipart uploads s3rver holds in progress (its own directory)."""
        d = os.path.join(self.data, bucket, "._S3rver_uploads")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def env(self, secret=SECRET, access_key=ACCESS_KEY):
        """The environment a client of these servers uses."""
        return {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": REGION,
                "AWS_EC2_METADATA_DISABLED": "true"}

    def aws(self, *args, direct=False, env=None, timeout=600):
        """Runs `aws --endpoint-url ENDPOINT ARGS` (Debian's awscli); CompletedProcess (text)."""
        exe = aws_cli()
        if not exe:
            raise Unavailable("awscli is not installed (Debian: apt-get install awscli)")
        e = dict(os.environ)
        e.pop("AWS_PROFILE", None)
        e.update(self.env())
        e["AWS_CONFIG_FILE"] = e["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        e.update(env or {})
        return subprocess.run([exe, "--endpoint-url", self.direct if direct else self.endpoint, *args],
                              capture_output=True, text=True, env=e, timeout=timeout)

    def close(self):
        for p in (self.proxy, self.s3rver):
            if p and p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
            if p:
                for f in (p.stdout, p.stderr):
                    if f:
                        f.close()
        self.proxy = self.s3rver = None
        if self.own_data:
            shutil.rmtree(self.data, ignore_errors=True)


def main(argv):
    if len(argv) < 3 or argv[1] != "run" or "--" not in argv:
        sys.stderr.write("usage: s3servers.py run -- COMMAND ARGS...\n")
        return 64
    cmd = argv[argv.index("--") + 1:]
    try:
        servers = S3Servers()
    except Unavailable as e:
        print(f"SKIP: no local S3 server: {e}")
        return 77
    try:
        env = dict(os.environ, BARTL_TEST_S3_ENDPOINT=servers.endpoint, BARTL_TEST_S3_DIRECT=servers.direct,
                   BARTL_TEST_S3_BUCKET=BUCKET, BARTL_TEST_S3_DATA=servers.data,
                   BARTL_TEST_S3_VHOST_ENDPOINT=servers.vhost_endpoint)
        return subprocess.run(cmd, env=env).returncode
    finally:
        servers.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
