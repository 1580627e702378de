"""Shared pieces of mailcast's benchmark scripts (bench/import, bench/materialise,
bench/delivery).  Standard library only; run with /usr/bin/python3.

- Server: one `mailcast serve` on a free loopback port, its HTTP API, its peak RSS.
- PgCluster: a throwaway PostgreSQL cluster (tests/pgcluster.sh) and fresh databases in it.
- make_csv: the benchmark's recipient CSV (email,name,city,plan,score).
- a tiny `key: value` result printer and the median/ratio arithmetic.

Benchmarks print a ratio against a baseline measured in the same run; they
are never tests and assert nothing about speed.
"""

import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OPERATOR_KEY = "bench-operator-key-0123456789abcdef0123"
CITIES = ["Lisbon", "Berlin", "Paris", "Madrid", "Rome", "Oslo", "Vienna", "Prague", "Dublin",
          "Zurich", "Athens", "Warsaw"]
PLANS = ["free", "pro", "team", "enterprise"]


def log(msg):
    print(f"# {msg}", file=sys.stderr, flush=True)


def binary():
    """The mailcast binary to measure: $MAILCAST_BIN, else build/mailcast."""
    b = os.environ.get("MAILCAST_BIN") or str(REPO / "build" / "mailcast")
    if not os.access(b, os.X_OK):
        sys.exit(f"bench: {b} not found; run `make` first (or set MAILCAST_BIN)")
    return os.path.abspath(b)


def bench_bin(name):
    """A C benchmark program built by `make bench-build`: $BENCH_BIN_DIR/name."""
    d = os.environ.get("BENCH_BIN_DIR") or str(REPO / "build" / "bench")
    p = os.path.join(d, name)
    if not os.access(p, os.X_OK):
        sys.exit(f"bench: {p} not found; run `make bench-build` (or set BENCH_BIN_DIR)")
    return os.path.abspath(p)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine():
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = "unknown CPU"
    return f"{os.cpu_count()} cores, {model}"


def loadavg():
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def peak_rss_mb(pid):
    """VmHWM of a live process, in MB (1e6 bytes)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


def cpu_seconds(pid):
    """User + system CPU seconds of a live process (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def emit(key, value):
    """One result line on stdout: `key: value`."""
    if isinstance(value, float):
        value = f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
    print(f"{key}: {value}", flush=True)


# ---- data ----


def make_csv(path, n, seed=1):
    """n recipients, distinct addresses, mixed-case local parts (so email_lc
    differs from email), with three attribute columns."""
    rnd = random.Random(seed)
    with open(path, "w", newline="") as f:
        f.write("email,name,city,plan,score\n")
        rows = []
        for i in range(n):
            rows.append(f"User.{i}@Example{i % 97}.com,Ada Lovelace {i},"
                        f"{CITIES[i % len(CITIES)]},{PLANS[i % len(PLANS)]},"
                        f"{rnd.randrange(1000)}\n")
            if len(rows) == 10000:
                f.write("".join(rows))
                rows = []
        f.write("".join(rows))
    return path


def db_one(database, sql):
    """The first row of sql's answer (a tuple) on a mailcast database URL (sqlite: or postgres)."""
    if database.startswith("sqlite:"):
        import sqlite3
        with sqlite3.connect(database[7:], timeout=30) as c:
            return c.execute(sql).fetchone()
    import psycopg2
    c = psycopg2.connect(database)
    try:
        cur = c.cursor()
        cur.execute(sql)
        return cur.fetchone()
    finally:
        c.close()


# ---- PostgreSQL ----


class PgCluster:
    """tests/pgcluster.sh start/stop around a temp dir; databases made with psql."""

    def __init__(self):
        self.dir = os.path.join(tempfile.gettempdir(), f"mcbench-pg-{os.getpid()}")
        self.url = None

    def __enter__(self):
        res = subprocess.run(["bash", str(REPO / "tests" / "pgcluster.sh"), "start", self.dir],
                             capture_output=True, text=True, timeout=180)
        if res.returncode != 0:
            self.__exit__()
            sys.exit(f"bench: cannot start PostgreSQL: {res.stderr}")
        self.url = res.stdout.strip().splitlines()[-1]
        return self

    def __exit__(self, *exc):
        subprocess.run(["bash", str(REPO / "tests" / "pgcluster.sh"), "stop", self.dir],
                       capture_output=True, timeout=180)

    def pids(self):
        """The cluster's postmaster and its children (backends, background workers)."""
        try:
            with open(os.path.join(self.dir, "data", "postmaster.pid")) as f:
                master = int(f.readline())
        except (OSError, ValueError):
            return []
        pids = [master]
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == master:
                            pids.append(int(d))
                except (OSError, ValueError, IndexError):
                    pass
        return pids

    def cpu_seconds(self):
        """CPU seconds used so far by the cluster's live processes."""
        return sum(cpu_seconds(p) for p in self.pids())

    def psql(self, sql, url=None):
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", url or self.url, "-c", sql],
                       check=True, capture_output=True, text=True)

    def create_db(self):
        name = f"mcb_{os.getpid()}_{random.randrange(1 << 30):x}"
        self.psql(f"CREATE DATABASE {name}")
        u = urllib.parse.urlsplit(self.url)
        return f"{u.scheme}://{u.netloc}/{name}" + (f"?{u.query}" if u.query else "")

    def drop_db(self, url):
        name = urllib.parse.urlsplit(url).path.lstrip("/")
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# ---- the server ----


class ApiError(Exception):
    pass


class Server:
    """One `mailcast serve` process; args are extra flags (e.g. --deliver 0)."""

    def __init__(self, workdir, database, args=()):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.database = database
        self.args = list(args)
        self.proc = None
        self.port = None

    def start(self, timeout=60):
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCAST_")}
        env["MAILCAST_OPERATOR_KEY"] = OPERATOR_KEY
        argv = [binary(), "serve", "--listen", f"127.0.0.1:{self.port}",
                "--database", self.database, "--log-level", "warn", *self.args]
        self.log = open(self.workdir / "server.log", "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL, env=env, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ApiError(f"mailcast exited with {self.proc.returncode}; see "
                               f"{self.workdir / 'server.log'}")
            try:
                with urllib.request.urlopen(self.url("/healthz"), timeout=2):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self, timeout=120):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.log.close()

    def peak_rss_mb(self):
        return peak_rss_mb(self.proc.pid)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def call(self, method, path, body=None, key=None, timeout=60):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url(path), data=data, method=method)
        req.add_header("Authorization", f"Bearer {key or OPERATOR_KEY}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raise ApiError(f"{method} {path}: {e.code} {e.read()[:500]!r}") from None
        return json.loads(raw) if raw else None

    # -- the objects a benchmark needs --

    def setup_tenant(self):
        """A tenant with a read-write key and unlimited sending; returns (tenant_id, key)."""
        t = self.call("POST", "/api/v1/tenants", {"name": f"bench {random.randrange(1 << 30)}"})
        k = self.call("POST", f"/api/v1/tenants/{t['id']}/api-keys",
                      {"name": "bench", "scopes": ["read", "write"]})
        big = 2147483647
        self.call("PUT", f"/api/v1/tenants/{t['id']}/rate-limits",
                  {"per_minute": big, "per_hour": big, "per_day": big})
        return t["id"], k["key"]

    def create_list(self, tenant, key):
        lst = self.call("POST", f"/api/v1/tenants/{tenant}/recipient-lists",
                        {"name": "bench list"}, key=key)
        return lst["id"]

    def import_csv(self, tenant, key, list_id, csv_path):
        """Streams csv_path with curl; returns (seconds, report)."""
        url = self.url(f"/api/v1/tenants/{tenant}/recipient-lists/{list_id}/recipients/import")
        t0 = time.monotonic()
        res = subprocess.run(["curl", "-sS", "--fail-with-body", "-X", "POST",
                              "-H", f"Authorization: Bearer {key}",
                              "-H", "Content-Type: text/csv", "-H", "Expect:",
                              "--data-binary", f"@{csv_path}", url],
                             capture_output=True, text=True)
        dt = time.monotonic() - t0
        if res.returncode != 0:
            raise ApiError(f"import failed ({res.returncode}): {res.stdout[:500]} "
                           f"{res.stderr[:500]}")
        return dt, json.loads(res.stdout)

    def create_campaign(self, tenant, key, list_id, body):
        body = dict(body, recipient_list_id=list_id)
        return self.call("POST", f"/api/v1/tenants/{tenant}/campaigns", body, key=key)["id"]

    def campaign(self, tenant, key, cid):
        return self.call("GET", f"/api/v1/tenants/{tenant}/campaigns/{cid}", key=key)

    def campaign_action(self, tenant, key, cid, action):
        return self.call("POST", f"/api/v1/tenants/{tenant}/campaigns/{cid}/{action}", key=key)


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def workdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("BENCH_TMP") or None)
    return d


def rmtree(d):
    shutil.rmtree(d, ignore_errors=True)
