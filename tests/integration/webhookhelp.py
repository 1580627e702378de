"""A webhook receiver for the tests of issue 11: a small threaded HTTP server
on loopback that verifies every request's Standard Webhooks signature and
records what arrived.

verify(secret, headers, body) is the Standard Webhooks algorithm written
from the specification (HMAC-SHA256, keyed with the base64-decoded secret
after "whsec_", over "id.timestamp.body"; the header holds space-separated
"v1,<base64>" signatures, any of which may match), checked against the
specification's published example in test_webhooks.py.

Receiver(secrets) answers 200 by default; behaviour is set per receiver:
fail_first=N answers 500 to the first N attempts of each webhook-id;
status=410 (or any) answers that always; delay=seconds sleeps first;
retry_after=value adds a Retry-After header to non-2xx answers.  Every
request is kept as a Hit (id, timestamp, signature, JSON body, whether the
signature verified, the status answered, the arrival time).  max_busy is
the most requests it held at once (received, not yet answered).
"""

import base64
import collections
import dataclasses
import hashlib
import hmac
import http.server
import json
import threading
import time

HTTP_ARGS = ["--webhook-allow-http", "1", "--webhook-allow-cidr", "127.0.0.1/32",
             "--webhook-retry-schedule", "1,1,1,1", "--webhook-poll-ms", "50", "--idle-poll-max-ms", "400"]


def sign(secret, msg_id, timestamp, body):
    key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(secrets_, headers, body, tolerance=300):
    """True when one of the header's signatures matches one of the secrets
    and the timestamp is within tolerance seconds of now."""
    msg_id = headers.get("webhook-id")
    ts = headers.get("webhook-timestamp")
    sigs = (headers.get("webhook-signature") or "").split(" ")
    if not msg_id or not ts or not ts.isdigit() or abs(time.time() - int(ts)) > tolerance:
        return False
    for secret in secrets_:
        want = sign(secret, msg_id, ts, body)
        if any(hmac.compare_digest(want, s) for s in sigs):
            return True
    return False


@dataclasses.dataclass
class Hit:
    id: str
    timestamp: str
    signature: str
    body: dict
    raw: bytes
    verified: bool
    status: int
    at: float


class Receiver:
    def __init__(self, secrets_=(), fail_first=0, status=200, delay=0.0, retry_after=None):
        self.secrets = list(secrets_)
        self.fail_first = fail_first
        self.status = status
        self.delay = delay
        self.retry_after = retry_after
        self.hits = []
        self.lock = threading.Lock()
        self.attempts = collections.Counter()
        self.busy = 0          # requests being handled, not yet answered
        self.max_busy = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                receiver._handle(self, raw)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def _handle(self, h, raw):
        with self.lock:
            self.busy += 1
            self.max_busy = max(self.max_busy, self.busy)
        if self.delay:
            time.sleep(self.delay)
        headers = {k.lower(): v for k, v in h.headers.items()}
        msg_id = headers.get("webhook-id", "")
        with self.lock:
            self.attempts[msg_id] += 1
            nth = self.attempts[msg_id]
            secrets_ = list(self.secrets)
        status = self.status
        if status < 300 and nth <= self.fail_first:
            status = 500
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        hit = Hit(msg_id, headers.get("webhook-timestamp", ""),
                  headers.get("webhook-signature", ""), body, raw,
                  verify(secrets_, headers, raw), status, time.time())
        with self.lock:
            self.hits.append(hit)
            # Counted out before the answer: the sender can start the next request only after it.
            self.busy -= 1
        h.send_response(status)
        if status >= 300 and self.retry_after is not None:
            h.send_header("Retry-After", str(self.retry_after))
        h.send_header("Content-Length", "2")
        h.end_headers()
        h.wfile.write(b"ok")

    def ok_hits(self):
        with self.lock:
            return [x for x in self.hits if x.status < 300]

    def all_hits(self):
        with self.lock:
            return list(self.hits)

    def types(self):
        return collections.Counter(x.body["type"] for x in self.ok_hits())
