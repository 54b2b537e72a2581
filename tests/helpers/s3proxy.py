#!/usr/bin/env python3
"""A test proxy in front of s3rver: verifies every request's AWS Signature Version 4 with
botocore's own signer, injects faults on demand, and counts requests.

s3rver accepts a wrong secret (it checks the access key ID only), so without this proxy a
signing mistake would go unnoticed. Every request is checked against the one key pair the
proxy knows: the canonical request is rebuilt from what arrived (method, raw path and query,
the headers named in SignedHeaders, x-amz-content-sha256) and signed with
botocore.auth.S3SigV4Auth; a different signature is answered 403 SignatureDoesNotMatch, as S3
answers, and never reaches s3rver. A payload hash that does not match the body is 400
XAmzContentSHA256Mismatch.

s3rver 3 implements neither ListMultipartUploads nor AbortMultipartUpload. The proxy serves
those two from s3rver's own record of uploads in progress (DATA/BUCKET/._S3rver_uploads/ID/,
the key in ID/key, the initiation time the directory's mtime), in S3's wire format, after the
same signature check. Everything else goes to s3rver unchanged.

Control (unsigned, on the same port, never forwarded): POST /__proxy/faults with a JSON list
of rules appends them; POST /__proxy/reset clears rules and counters; GET /__proxy/stats
returns the counters and the requests seen. A rule:

  {"op": "GetObject", "method": "GET", "query": "list-type", "key": "notes-",   # what it matches
   "count": 2, "action": "status", "status": 503}                              # what it does

matches requests of operation `op` (the names of the counters: GetObject, PutObject,
UploadPart, ListObjectsV2, ...), whose method equals `method`, whose raw query holds `query`,
whose object key holds `key` and ends with `key_suffix` (each optional); `count` (default 1)
is how many requests it hits before it is spent. Actions: "status" (answer with that status and an S3 error body: 503 SlowDown, 500
InternalError, 429 SlowDown, 412 PreconditionFailed...), "reset" (forward, then cut the
connection with a TCP reset after `after` bytes of the response body), "drop" (close the
connection without an answer, after reading the request), "slow" (wait `delay` seconds before
forwarding), "trickle" (forward the body in `chunk`-byte pieces with `delay` seconds between).

Usage: s3proxy.py --port PORT --upstream PORT --data DIR [--access-key S3RVER --secret S3RVER
--region us-east-1]; prints "listening PORT" when ready.
"""
import argparse
import datetime
import hashlib
import http.client
import http.server
import json
import os
import shutil
import socket
import struct
import sys
import threading
import time
import urllib.parse
from email.utils import formatdate

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

UNSIGNED = "UNSIGNED-PAYLOAD"
ERROR_CODES = {400: "BadRequest", 403: "AccessDenied", 404: "NoSuchKey", 412: "PreconditionFailed",
               429: "SlowDown", 500: "InternalError", 501: "NotImplemented", 503: "SlowDown"}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


def xml_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def error_body(code, message, resource=""):
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{xml_escape(message)}'
            f'</Message><Resource>{xml_escape(resource)}</Resource><RequestId>bartl-test-proxy</RequestId>'
            f'</Error>').encode()


class State:
    """Rules, counters and the log of requests, shared by the handler threads."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.rules = []
        self.reset()

    def reset(self):
        with self.lock:
            self.rules = []
            self.counts = {}
            self.requests = []
            self.rejected = []
            self.in_flight = {}
            self.max_in_flight = {}

    def count(self, kind):
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1

    def enter(self, kind):
        """Counts a request of `kind` in progress; the most at once is kept in max_in_flight."""
        with self.lock:
            n = self.in_flight.get(kind, 0) + 1
            self.in_flight[kind] = n
            self.max_in_flight[kind] = max(n, self.max_in_flight.get(kind, 0))

    def leave(self, kind):
        with self.lock:
            if self.in_flight.get(kind):  # a reset may have cleared it meanwhile
                self.in_flight[kind] -= 1

    def take_rule(self, method, query, key, op):
        with self.lock:
            for r in self.rules:
                if r.get("left", 1) <= 0:
                    continue
                if r.get("op") and r["op"] != op:
                    continue
                if r.get("method") and r["method"] != method:
                    continue
                if r.get("query") and r["query"] not in query:
                    continue
                if r.get("key") and r["key"] not in key:
                    continue
                if r.get("key_suffix") and not key.endswith(r["key_suffix"]):
                    continue
                r["left"] = r.get("left", 1) - 1
                r["hits"] = r.get("hits", 0) + 1
                return dict(r)
        return None


def classify(method, path, query):
    """The S3 operation a request is, for the counters."""
    q = urllib.parse.parse_qs(query, keep_blank_values=True)
    parts = path.lstrip("/").split("/", 1)
    has_key = len(parts) == 2 and parts[1] != ""
    if not has_key:
        if method == "GET" and "uploads" in q:
            return "ListMultipartUploads"
        if method == "GET":
            return "ListObjectsV2" if q.get("list-type") == ["2"] else "ListObjects"
        if method == "POST" and "delete" in q:
            return "DeleteObjects"
        return method + "Bucket"
    if method == "POST" and "uploads" in q:
        return "CreateMultipartUpload"
    if method == "POST" and "uploadId" in q:
        return "CompleteMultipartUpload"
    if method == "PUT" and "uploadId" in q:
        return "UploadPart"
    if method == "DELETE" and "uploadId" in q:
        return "AbortMultipartUpload"
    return {"GET": "GetObject", "HEAD": "HeadObject", "PUT": "PutObject", "DELETE": "DeleteObject"}.get(method, method)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bartl-s3-test-proxy"

    def log_message(self, fmt, *args):  # quiet: the tests read the counters instead
        pass

    # --- plumbing -------------------------------------------------------------------------

    @property
    def state(self):
        return self.server.state

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        chunks = []
        while n > 0:
            c = self.rfile.read(min(n, 1 << 20))
            if not c:
                break
            chunks.append(c)
            n -= len(c)
        return b"".join(chunks)

    def reply(self, status, body=b"", headers=None, content_type="application/xml"):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body or status not in (204, 304):
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def reply_error(self, status, code=None, message="", resource=""):
        self.reply(status, error_body(code or ERROR_CODES.get(status, "Error"), message or code or "", resource))

    def reset_connection(self):
        """Closes the client socket with a TCP reset (SO_LINGER 0)."""
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close_connection = True
        self.connection.close()

    # --- signature ------------------------------------------------------------------------

    def check_signature(self, body):
        """None when the request is signed by the proxy's key pair, else (status, code, message)."""
        args = self.state.args
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return 403, "AccessDenied", "the request is not signed with AWS Signature Version 4"
        fields = {}
        for item in auth[len("AWS4-HMAC-SHA256 "):].split(","):
            k, _, v = item.strip().partition("=")
            fields[k] = v
        try:
            access_key, date, region, service, terminal = fields["Credential"].split("/")
            signed = fields["SignedHeaders"].split(";")
            signature = fields["Signature"]
        except (KeyError, ValueError):
            return 400, "AuthorizationHeaderMalformed", "malformed Authorization header"
        if access_key != args.access_key:
            return 403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."
        if region != args.region or service != "s3" or terminal != "aws4_request":
            return 400, "AuthorizationHeaderMalformed", f"credential scope {region}/{service} is not {args.region}/s3"
        amz_date = self.headers.get("X-Amz-Date", "")
        if "host" not in signed or "x-amz-date" not in signed or not amz_date.startswith(date):
            return 403, "AccessDenied", "host and x-amz-date must be signed"
        if "x-amz-content-sha256" not in signed:
            return 403, "AccessDenied", "x-amz-content-sha256 must be signed"
        try:
            when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            return 403, "AccessDenied", "bad x-amz-date"
        if abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) > 900:
            return 403, "RequestTimeTooSkewed", "x-amz-date is more than 15 minutes off"
        declared = self.headers.get("X-Amz-Content-SHA256", "")
        if declared != UNSIGNED and declared != hashlib.sha256(body).hexdigest():
            return 400, "XAmzContentSHA256Mismatch", "x-amz-content-sha256 does not match the body"
        headers = {}
        for name in signed:
            values = self.headers.get_all(name)
            if values is None:
                return 403, "AccessDenied", f"signed header {name} is missing"
            headers[name] = ",".join(values)
        request = AWSRequest(method=self.command, url=f"http://{self.headers.get('Host')}{self.path}",
                             headers=headers, data=body)
        request.context["timestamp"] = amz_date
        signer = S3SigV4Auth(Credentials(args.access_key, args.secret), "s3", args.region)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if expected != signature:
            return 403, "SignatureDoesNotMatch", ("The request signature we calculated does not match the "
                                                  "signature you provided. Check your key and signing method.")
        return None

    # --- the requests ---------------------------------------------------------------------

    def do_GET(self):
        self.handle_any()

    def do_HEAD(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_DELETE(self):
        self.handle_any()

    def handle_any(self):
        path, _, query = self.path.partition("?")
        body = self.read_body()
        if path.startswith("/__proxy/"):
            return self.control(path, body)
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        if host.endswith(".s3.localhost"):  # virtual-hosted: BUCKET.s3.localhost
            vpath = "/" + host[:-len(".s3.localhost")] + path
        else:
            vpath = path
        kind = classify(self.command, vpath, query)
        bucket, _, key = urllib.parse.unquote(vpath.lstrip("/")).partition("/")
        with self.state.lock:
            self.state.requests.append({
                "op": kind, "method": self.command, "key": key, "bucket": bucket, "query": query, "host": host,
                "range": self.headers.get("Range", ""), "storage_class": self.headers.get("x-amz-storage-class", ""),
                "token": self.headers.get("x-amz-security-token", ""),
                "if_match": self.headers.get("If-Match", ""), "if_none_match": self.headers.get("If-None-Match", ""),
                "payload": self.headers.get("x-amz-content-sha256", ""), "time": time.time()})
        self.state.count(kind)
        self.state.enter(kind)
        try:
            self.handle_request(kind, path, query, bucket, key, body)
        finally:
            self.state.leave(kind)

    def handle_request(self, kind, path, query, bucket, key, body):
        bad = self.check_signature(body)
        if bad:
            with self.state.lock:
                self.state.rejected.append({"op": kind, "code": bad[1]})
            return self.reply_error(bad[0], bad[1], bad[2], path)
        rule = self.state.take_rule(self.command, query, key, kind)
        action = rule.get("action") if rule else None
        if action == "status":
            status = int(rule.get("status", 503))
            return self.reply_error(status, rule.get("code"), rule.get("message", "injected by the test proxy"), path)
        if action == "drop":
            return self.reset_connection()
        if action == "slow":
            time.sleep(float(rule.get("delay", 1)))
        if kind == "ListMultipartUploads":
            return self.list_uploads(bucket, query)
        if kind == "AbortMultipartUpload":
            return self.abort_upload(bucket, key, query)
        self.forward(body, rule)

    def forward(self, body, rule):
        args = self.state.args
        up = http.client.HTTPConnection("127.0.0.1", args.upstream, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "expect"}
        headers["Content-Length"] = str(len(body))
        try:
            up.request(self.command, self.path, body=body, headers=headers)
            resp = up.getresponse()
        except OSError as e:
            up.close()
            return self.reply_error(502, "BadGateway", f"s3rver: {e}")
        self.send_response(resp.status, resp.reason)
        length = None
        for k, v in resp.getheaders():
            if k.lower() in HOP_BY_HOP or k.lower() == "content-length":
                if k.lower() == "content-length":
                    length = int(v)
                continue
            self.send_header(k, v)
        action = rule.get("action") if rule else None
        if length is None and self.command != "HEAD" and resp.status not in (204, 304):
            data = resp.read()  # s3rver's XML answers come without a length at times
            length = len(data)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(data)
            up.close()
            return
        self.send_header("Content-Length", str(length or 0))
        self.end_headers()
        if self.command == "HEAD":
            up.close()
            return
        sent = 0
        cut = int(rule.get("after", 0)) if action == "reset" else None
        chunk = int(rule.get("chunk", 65536)) if action == "trickle" else 256 * 1024
        try:
            while True:
                want = chunk if cut is None else min(chunk, cut - sent)
                if want <= 0:
                    up.close()
                    return self.reset_connection()
                data = resp.read(want)
                if not data:
                    break
                self.wfile.write(data)
                sent += len(data)
                if action == "trickle":
                    self.wfile.flush()
                    time.sleep(float(rule.get("delay", 0.5)))
        except OSError:
            self.close_connection = True
        finally:
            up.close()

    # --- what s3rver lacks ----------------------------------------------------------------

    def uploads_dir(self, bucket):
        return os.path.join(self.state.args.data, bucket, "._S3rver_uploads")

    def list_uploads(self, bucket, query):
        q = urllib.parse.parse_qs(query, keep_blank_values=True)
        prefix = q.get("prefix", [""])[0]
        if not os.path.isdir(os.path.join(self.state.args.data, bucket)):
            return self.reply_error(404, "NoSuchBucket", "The specified bucket does not exist", bucket)
        entries = []
        d = self.uploads_dir(bucket)
        for upload_id in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            try:
                with open(os.path.join(d, upload_id, "key")) as f:
                    key = f.read()
                initiated = os.stat(os.path.join(d, upload_id)).st_mtime
            except OSError:
                continue
            if key.startswith(prefix):
                entries.append((key, upload_id, initiated))
        entries.sort()
        items = "".join(
            f"<Upload><Key>{xml_escape(k)}</Key><UploadId>{u}</UploadId><Initiated>"
            f"{datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.000Z')}"
            f"</Initiated><StorageClass>STANDARD</StorageClass></Upload>" for k, u, t in entries)
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult '
                f'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>{xml_escape(bucket)}</Bucket>'
                f'<Prefix>{xml_escape(prefix)}</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false'
                f'</IsTruncated>{items}</ListMultipartUploadsResult>').encode()
        self.reply(200, body)

    def abort_upload(self, bucket, key, query):
        upload_id = urllib.parse.parse_qs(query).get("uploadId", [""])[0]
        d = os.path.join(self.uploads_dir(bucket), os.path.basename(upload_id))
        try:
            with open(os.path.join(d, "key")) as f:
                if f.read() != key:
                    raise FileNotFoundError
        except OSError:
            return self.reply_error(404, "NoSuchUpload", "The specified upload does not exist", key)
        shutil.rmtree(d, ignore_errors=True)
        self.reply(204, headers={"Date": formatdate(usegmt=True)})

    # --- control --------------------------------------------------------------------------

    def control(self, path, body):
        if path == "/__proxy/faults" and self.command == "POST":
            rules = json.loads(body or b"[]")
            with self.state.lock:
                for r in rules:
                    r["left"] = int(r.get("count", 1))
                    self.state.rules.append(r)
            return self.reply(200, b"{}", content_type="application/json")
        if path == "/__proxy/reset" and self.command == "POST":
            self.state.reset()
            return self.reply(200, b"{}", content_type="application/json")
        if path == "/__proxy/stats":
            with self.state.lock:
                out = {"counts": dict(self.state.counts), "requests": list(self.state.requests),
                       "max_in_flight": dict(self.state.max_in_flight),
                       "rejected": list(self.state.rejected),
                       "rules": [{k: v for k, v in r.items()} for r in self.state.rules]}
            return self.reply(200, json.dumps(out).encode(), content_type="application/json")
        self.reply(404, b"{}", content_type="application/json")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", type=int, required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--access-key", default="S3RVER")
    p.add_argument("--secret", default="S3RVER")
    p.add_argument("--region", default="us-east-1")
    args = p.parse_args()
    server = Server(("127.0.0.1", args.port), Handler)
    server.state = State(args)
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
