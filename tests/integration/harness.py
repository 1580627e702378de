"""Harness for mailcast's integration tests: databases, the server process,
the command line and small HTTP helpers.

Everything here talks to the real binary (MAILCAST_BIN) over loopback and to
real databases: a SQLite file or a fresh PostgreSQL database per server.
conftest.py turns these helpers into fixtures; tests may import them too.
"""

import os
import re
import secrets
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("MAILCAST_BIN") or str(REPO / "mailcast")

# A fixed operator key for servers started with MAILCAST_OPERATOR_KEY.
OPERATOR_KEY = "integration-operator-key-0123456789abcde"
assert len(OPERATOR_KEY) == 40

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
TENANT_KEY_RE = re.compile(r"^mck_[0-9a-f]{12}_[0-9a-f]{64}$")
GENERATED_OPERATOR_KEY_RE = re.compile(r"mco_[0-9a-f]{64}")

HTTP_TIMEOUT = 10


def parse_time(s):
    """An API timestamp ("2026-11-29T11:13:53.123456Z") as an aware datetime."""
    import datetime

    assert TIME_RE.match(s), s
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if "." in s else "%Y-%m-%dT%H:%M:%SZ"
    return datetime.datetime.strptime(s, fmt).replace(tzinfo=datetime.timezone.utc)


def child_env(operator_key=None, **extra):
    """The environment of a mailcast process: ours without any MAILCAST_*
    variable (so nothing leaks into its configuration), plus what is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCAST_")}
    if operator_key is not None:
        env["MAILCAST_OPERATOR_KEY"] = operator_key
    env.update(extra)
    return env


def run_cli(*args, database=None, env=None, timeout=30, cwd=None):
    """Runs `mailcast ARGS [--database URL]` to completion."""
    argv = [BIN, *args]
    if database is not None:
        argv += ["--database", database]
    return subprocess.run(
        argv,
        env=env if env is not None else child_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- databases ----


def pg_database_url(server_url, dbname):
    """server_url with its database (the URL path) replaced by dbname."""
    u = urllib.parse.urlsplit(server_url)
    # Not urlunsplit: it drops the "//" of an empty authority ("postgresql:///db?host=...").
    return f"{u.scheme}://{u.netloc}/{dbname}" + (f"?{u.query}" if u.query else "")


class PgAdmin:
    """Creates and drops databases on the test PostgreSQL server.

    A test's database is a copy of a template that the binary under test
    migrated once for this cluster, this binary and this set of migrations
    (its name is their digest): an empty database migrated from scratch cost PostgreSQL
    about 0.3 CPU seconds, a file copy of the template about 0.05, and the
    suite makes hundreds.  The binary's migration of a fresh database is
    still exercised, by the template itself and by the store unit tests."""

    def __init__(self, server_url):
        self.server_url = server_url
        self._template = None

    def template(self):
        """The template's name, made (under an advisory lock, so concurrent
        xdist workers make it once) when this cluster lacks it."""
        import hashlib

        import psycopg2

        if self._template:
            return self._template
        # The binary too (path and build time): one older than the tree's
        # migrations must not be handed a schema it refuses.
        st = os.stat(BIN)
        digest = hashlib.sha256(f"{BIN}\0{st.st_mtime_ns}\0{st.st_size}\0".encode())
        for f in sorted((REPO / "migrations" / "pg").glob("*.sql")):
            digest.update(f.name.encode() + b"\0" + f.read_bytes())
        name = "mc_template_" + digest.hexdigest()[:16]
        conn = psycopg2.connect(self.server_url)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(8058)")
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    # Built under another name and renamed once migrated: a
                    # failed migration leaves no template behind.
                    building = "mc_building_" + secrets.token_hex(6)
                    cur.execute(f"CREATE DATABASE {building}")
                    res = subprocess.run(
                        [BIN, "migrate", "--database", pg_database_url(self.server_url, building)],
                        capture_output=True, text=True, timeout=120)
                    if res.returncode != 0:
                        cur.execute(f"DROP DATABASE {building} WITH (FORCE)")
                        raise AssertionError(f"migrating the template: {res.stderr}")
                    cur.execute(f"ALTER DATABASE {building} RENAME TO {name}")
                cur.execute("SELECT pg_advisory_unlock(8058)")
        finally:
            conn.close()
        self._template = name
        return name

    def _exec(self, sql):
        pg_run(self.server_url, sql)

    def create(self, empty=False):
        name = "mc_" + secrets.token_hex(6)
        if empty:
            self._exec(f"CREATE DATABASE {name}")
        else:
            self._exec(f"CREATE DATABASE {name} TEMPLATE {self.template()} STRATEGY = FILE_COPY")
        return pg_database_url(self.server_url, name)

    def drop(self, url):
        name = urllib.parse.urlsplit(url).path.lstrip("/")
        assert re.fullmatch(r"mc_[0-9a-f]+", name), name
        pg_forget(url)
        self._exec(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def create_database(request, store, directory, empty=False):
    """A fresh database URL of store ("sqlite" or "postgres") and the function
    that drops it.  request is a pytest fixture request (for pg_admin).  A
    PostgreSQL one is a copy of the migrated template unless empty."""
    if store == "sqlite":
        return f"sqlite:{Path(directory) / 'mailcast.db'}", lambda: None
    admin = request.getfixturevalue("pg_admin")
    url = admin.create(empty)
    return url, lambda: admin.drop(url)


def module_server(request, store, tmp_path_factory, args=(), name="server", **attrs):
    """Generator behind every module-scoped server fixture: one `mailcast
    serve` per store for a test module, on a fresh database of its own and a
    free port (so pytest-xdist workers never share either), started with
    args and given attrs (e.g. outbox=...); stopped and dropped at the end."""
    workdir = tmp_path_factory.mktemp(f"{name}-{store}")
    url, drop = create_database(request, store, workdir)
    srv = Server(workdir, url, OPERATOR_KEY, list(args), name=name)
    for k, v in attrs.items():
        setattr(srv, k, v)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        drop()


# PostgreSQL connections kept per thread and URL (autocommit): a new backend
# costs the cluster about 40 ms of CPU on these machines (a fork of the
# postmaster and its caches), and the tests query thousands of times, often
# in wait loops.  A kept connection the server has closed meanwhile (the
# database dropped WITH (FORCE), the cluster restarted) has input waiting
# while idle, and is replaced before it is used.
_pg_local = threading.local()


def _readable(fd):
    p = select.poll()
    p.register(fd, select.POLLIN)
    return bool(p.poll(0))


def pg_conn(url):
    """This thread's open autocommit connection to url."""
    import psycopg2

    conns = getattr(_pg_local, "conns", None)
    if conns is None:
        conns = _pg_local.conns = {}
    conn = conns.get(url)
    if conn is not None and (conn.closed or _readable(conn.fileno())):
        conn.close()
        conn = None
    if conn is None:
        conn = psycopg2.connect(url)
        conn.autocommit = True
        conns[url] = conn
    return conn


def pg_forget(url):
    """Closes this thread's kept connection to url (before its database is
    dropped), or, given a cluster's socket directory, every one to that
    cluster (before the cluster goes)."""
    conns = getattr(_pg_local, "conns", {})
    for u in [u for u in conns if u == url or f"host={url}&" in u]:
        conns.pop(u).close()


def pg_run(url, sql, params=(), fetch=False):
    """Runs one statement on this thread's kept connection to url; its rows if fetch.
    An error closes the connection (a failed one is not kept)."""
    conn = pg_conn(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if fetch else None
    except BaseException:
        pg_forget(url)
        raise


def db_execute(database, sql, params=()):
    """Runs one statement directly against a mailcast database URL."""
    if database.startswith("sqlite:"):
        import sqlite3

        conn = sqlite3.connect(database[len("sqlite:"):], timeout=10)
        try:
            conn.execute(sql.replace("%s", "?"), params)
            conn.commit()
        finally:
            conn.close()
    else:
        pg_run(database, sql, params)


# ---- the server ----


class ServerError(Exception):
    pass


class Server:
    """One `mailcast serve` process on a free loopback port.

    operator_key: put in MAILCAST_OPERATOR_KEY, or None to let the server
    use (or generate) the key stored in the database.
    """

    # Every server started in this pytest process, newest last: a failing
    # test's report carries the logs of those it used (conftest.py).
    started = []

    def __init__(self, workdir, database, operator_key=OPERATOR_KEY, args=(), name="server"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.database = database
        self.operator_key = operator_key
        self.args = list(args)
        self.name = name
        self.proc = None
        self.port = None
        self.returncode = None
        self.session = None
        self.runs = 0
        self.stdout_path = None
        self.stderr_path = None

    # -- process --

    def start(self, timeout=10):
        for attempt in range(3):
            self.runs += 1
            self.port = free_port()
            self.stdout_path = self.workdir / f"{self.name}.{self.runs}.stdout"
            self.stderr_path = self.workdir / f"{self.name}.{self.runs}.stderr"
            argv = [BIN, "serve", "--listen", f"127.0.0.1:{self.port}", *self.args]
            if self.database is not None:  # None: the default, ./var/mailcast.db
                argv[4:4] = ["--database", self.database]
            with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
                self.proc = subprocess.Popen(
                    argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                    env=child_env(self.operator_key), cwd=self.workdir,
                )
            self.returncode = None
            self.started_at = time.monotonic()
            if self not in Server.started:
                Server.started.append(self)
                del Server.started[:-50]
            self.session = requests.Session()
            try:
                self._wait_healthy(timeout)
                return self
            except ServerError:
                # Another process may have taken the port between our probe and its bind.
                if attempt < 2 and "cannot listen" in self.stderr():
                    continue
                raise
        raise AssertionError("unreachable")

    def _wait_healthy(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                raise ServerError(
                    f"mailcast serve exited with {rc} before it was healthy\n{self.log_tail()}")
            try:
                r = requests.get(self.url("/healthz"), timeout=1)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.kill()
        raise ServerError(f"mailcast serve not healthy after {timeout}s\n{self.log_tail()}")

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=10):
        """Waits for the process to exit; returns its exit status."""
        self.returncode = self.proc.wait(timeout=timeout)
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signals the server and waits; kill -9 after timeout.  Returns the
        exit status, or None when it had to be killed."""
        if self.session is not None:
            self.session.close()
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self.returncode = self.proc.returncode
            return self.returncode
        self.proc.send_signal(sig)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self):
        rc = self.stop()
        assert rc == 0, f"exit status {rc}\n{self.log_tail()}"
        return self.start()

    def stdout(self):
        return self.stdout_path.read_text(errors="replace") if self.stdout_path else ""

    def stderr(self):
        return self.stderr_path.read_text(errors="replace") if self.stderr_path else ""

    def log_tail(self, n=30):
        lines = self.stderr().splitlines()[-n:]
        return ("stdout:\n" + self.stdout()[-2000:] + "\nstderr (tail):\n" + "\n".join(lines))

    def wait_for_log(self, pattern, timeout=3):
        """The stderr log line matching pattern (a regex), waiting for it:
        the access log is written after the response leaves."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.stderr().splitlines():
                if rx.search(line):
                    return line
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def engine_rounds(self):
        """Rounds this server's campaign engine has finished (/metrics)."""
        text = self.get("/metrics", headers=self.op).text  # metrics take the operator key
        return int(re.search(r"^mailcast_engine_rounds_total (\d+)$", text, re.M).group(1))

    def wait_engine_rounds(self, n=2, timeout=15):
        """Waits until the campaign engine has finished n more rounds, so
        whatever it would do to the current state it has done: the wait for
        "nothing else happens" that a sleep only guesses at."""
        target = self.engine_rounds() + n
        deadline = time.monotonic() + timeout
        while self.engine_rounds() < target:
            assert time.monotonic() < deadline, f"the engine did not finish {n} rounds"
            time.sleep(0.02)

    # -- HTTP --

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def url(self, path):
        return self.base + path

    @property
    def op(self):
        """Headers carrying the operator key."""
        assert self.operator_key, "this server has no configured operator key"
        return {"Authorization": f"Bearer {self.operator_key}"}

    def request(self, method, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT)
        if hasattr(kw.get("data"), "__next__"):
            # A streamed (chunked) body: requests sends it on a pooled
            # connection whose socket keeps the timeout of the request
            # before, ignoring this one's; a connection of its own keeps it.
            with requests.Session() as s:
                return s.request(method, self.url(path), **kw)
        return self.session.request(method, self.url(path), **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def make_tenant(self, name=None, headers=None, **fields):
        """Creates a tenant as the operator; returns its JSON."""
        body = {"name": name or f"Tenant {secrets.token_hex(4)}", **fields}
        r = self.post("/api/v1/tenants", json=body, headers=headers or self.op)
        assert r.status_code == 201, r.text
        return r.json()

    def make_key(self, tenant_id, scopes=None, headers=None, **fields):
        """Creates a tenant API key as the operator; returns its JSON (with "key")."""
        body = dict(fields)
        if scopes is not None:
            body["scopes"] = scopes
        r = self.post(f"/api/v1/tenants/{tenant_id}/api-keys", json=body,
                      headers=headers or self.op)
        assert r.status_code == 201, r.text
        return r.json()


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def error_of(resp, status, code):
    """Asserts resp is the standard JSON error with status and code; returns the error object."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers.get("Content-Type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert err["code"] == code, body
    assert isinstance(err["message"], str) and err["message"], body
    return err


def invalid_field(resp, field):
    """Asserts resp is a 422 validation error naming field; returns the error object."""
    err = error_of(resp, 422, "validation_error")
    assert err.get("field") == field, err
    return err


class OwnCluster:
    """A PostgreSQL cluster of the test's own (tests/pgcluster.sh), restartable:
    for a test that takes the database server away or fills its disk, which
    the session's shared cluster must not see (a full tablespace there made
    other tests' CREATE DATABASE fail its checkpoint)."""

    def __init__(self):
        self.dir = os.path.join(tempfile.gettempdir(), "mcpgf-" + secrets.token_hex(4))
        self.script = str(REPO / "tests" / "pgcluster.sh")
        res = subprocess.run(["bash", self.script, "start", self.dir], capture_output=True,
                             text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        self.url = res.stdout.strip().splitlines()[-1]
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.url).query)
        self.port = q["port"][0]
        self.bindir = sorted(os.listdir("/usr/lib/postgresql"))[-1]

    def _pg_ctl(self, *args):
        cmd = [f"/usr/lib/postgresql/{self.bindir}/bin/pg_ctl", "-D", f"{self.dir}/data", *args]
        if os.getuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def stop(self):
        self._pg_ctl("-m", "fast", "-w", "stop")

    def start(self):
        self._pg_ctl("-l", f"{self.dir}/server.log", "-w", "-t", "60", "-o",
                     f"-p {self.port} -k {self.dir} -c listen_addresses='' -c fsync=off "
                     "-c max_connections=200", "start")

    def destroy(self):
        pg_forget(self.dir)
        subprocess.run(["bash", self.script, "stop", self.dir], capture_output=True, timeout=120)
