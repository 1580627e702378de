"""Fixtures for mailcast's integration tests.

- pg_url (session): the PostgreSQL server from MAILCAST_TEST_PG_URL, or a
  throwaway cluster started with tests/pgcluster.sh for this session.
- store (module, params sqlite/postgres): which database the servers use;
  every test that touches a database runs once per store.
- new_database (function): makes a fresh database of the current store and
  drops it after the test.
- server (module): one shared server per store per test module, with the
  fixed operator key and the module's SERVER_ARGS; for tests that do not
  interfere with each other (harness.module_server, which every other
  module-scoped server fixture uses too).
- solo_factory (function): servers on SQLite of the test's own, for
  behaviour no store changes (the SMTP client): run once, not per store.
- server_factory (function): starts servers of the test's own, stopped at
  teardown; for lifecycle tests (signals, restarts, generated keys).
- sink (module): a scriptable aiosmtpd relay (smtpsink.Sink) for a module's
  delivering servers.
"""

import os
import secrets
import subprocess
import tempfile
import time

import pytest

from harness import BIN, OPERATOR_KEY, REPO, PgAdmin, Server, create_database, module_server
from smtpsink import Sink


# MAILCAST_TEST_CPU=FILE: each test's CPU seconds (the test process and the
# children it reaped: servers, browsers, CLI runs; not PostgreSQL's) appended
# to FILE as JSON lines, for finding what the suite spends its two cores on.
_CPU_LOG = os.environ.get("MAILCAST_TEST_CPU")


def _cpu_seconds():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if not _CPU_LOG:
        yield
        return
    import json

    before = _cpu_seconds()
    yield
    with open(_CPU_LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps({"test": item.nodeid, "cpu_s": round(_cpu_seconds() - before, 3)})
                + "\n")


def pytest_configure(config):
    if not os.access(BIN, os.X_OK):
        raise pytest.UsageError(f"mailcast binary not found at {BIN}; build it with `make mailcast`")
    config.addinivalue_line(
        "markers", "slow(seconds): takes about that long (8 s or more); the slow run first, "
        "longest first, so that pytest-xdist's workers do not end the run waiting on one")


def pytest_collection_modifyitems(session, config, items):
    """Slow tests first, spread over the xdist workers, the rest in their order.

    pytest-xdist's load scheduling hands each worker one run of consecutive
    items to start with (a quarter of its share), then more as it finishes.
    So the slow tests are dealt out longest first to the worker with the least
    slow work so far (LPT), each at the head of that worker's first run: no
    worker starts with all of them, and none ends the run alone on one."""
    def seconds(item):
        mark = item.get_closest_marker("slow")
        return mark.args[0] if mark and mark.args else (8 if mark else 0)

    slow = sorted((it for it in items if seconds(it)), key=lambda it: -seconds(it))
    rest = [it for it in items if not seconds(it)]
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers <= 1:
        items[:] = slow + rest
        return
    chunk = max(len(items) // workers // 4, 2)  # xdist's first run per worker
    runs, load = [[] for _ in range(workers)], [0] * workers
    for it in slow:
        w = min(range(workers), key=lambda i: load[i])
        runs[w].append(it)
        load[w] += seconds(it)
    ordered, i = [], 0
    for run in runs:
        fill = max(chunk - len(run), 0)
        ordered += run + rest[i:i + fill]
        i += fill
    items[:] = ordered + rest[i:]


def pytest_runtest_setup(item):
    item.mc_started = time.monotonic()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's report carries the log tails of the servers it used:
    those still running, and those started during it (a flaky timing failure
    is diagnosed from one run's logs, or not at all)."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "teardown":
        # junitxml writes a test's captured output from its teardown report.
        rep.sections.extend(getattr(item, "mc_logs", []))
    if rep.when != "call" or not rep.failed:
        return
    since = getattr(item, "mc_started", 0)
    item.mc_logs = []
    for srv in Server.started:
        running = srv.proc is not None and srv.proc.poll() is None
        if running or srv.started_at >= since:
            item.mc_logs.append((f"Captured stderr mailcast {srv.name} ({srv.workdir})",
                                 srv.log_tail(80)))
    rep.sections.extend(item.mc_logs)


@pytest.fixture(scope="session")
def pg_url():
    url = os.environ.get("MAILCAST_TEST_PG_URL")
    if url:
        yield url
        return
    # Not under tests/run.sh: a cluster of our own.  pgcluster.sh makes the
    # directory itself (owned by the postgres user), so it must not exist yet.
    pgdir = os.path.join(tempfile.gettempdir(), "mcpg-" + secrets.token_hex(4))
    script = str(REPO / "tests" / "pgcluster.sh")
    res = subprocess.run(["bash", script, "start", pgdir], capture_output=True, text=True,
                         timeout=120)
    if res.returncode != 0:
        subprocess.run(["bash", script, "stop", pgdir], capture_output=True)
        pytest.fail(f"cannot start a PostgreSQL cluster: {res.stderr}", pytrace=False)
    try:
        yield res.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", script, "stop", pgdir], capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def pg_admin(pg_url):
    return PgAdmin(pg_url)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store(request):
    return request.param


@pytest.fixture
def new_database(request, store, tmp_path):
    """Factory: new_database() returns the URL of a fresh database of the
    store (on PostgreSQL a copy of the migrated template; empty=True: one
    with no tables at all)."""
    drops = []

    def make(empty=False):
        directory = tmp_path / f"db{len(drops)}"
        directory.mkdir()
        url, drop = create_database(request, store, directory, empty)
        drops.append(drop)
        return url

    yield make
    for drop in drops:
        drop()


@pytest.fixture(scope="module")
def server(request, store, tmp_path_factory):
    """A server shared by the tests of one module (per store), started with
    the module's SERVER_ARGS (e.g. campaignhelp.NO_DELIVERY) if it has any."""
    yield from module_server(request, store, tmp_path_factory,
                             getattr(request.module, "SERVER_ARGS", ()))


@pytest.fixture
def server_factory(new_database, tmp_path):
    """Factory: server_factory(database=None, operator_key=OPERATOR_KEY, args=(),
    start=True) returns a Server of the test's own (fresh database by default)."""
    servers = []

    def make(database=None, operator_key=OPERATOR_KEY, args=(), start=True):
        srv = Server(tmp_path / f"srv{len(servers)}", database or new_database(),
                     operator_key, args, name="server")
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture
def solo_factory(tmp_path):
    """Servers on SQLite of the test's own, for behaviour that does not depend
    on the store (the SMTP client, the worker's queue): run once, not per store."""
    servers = []

    def make(args):
        d = tmp_path / f"solo{len(servers)}"
        d.mkdir()
        srv = Server(d, f"sqlite:{d / 'mailcast.db'}", OPERATOR_KEY, args)
        servers.append(srv)
        srv.start()
        return srv

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture(scope="module")
def sink():
    """A scriptable SMTP relay on loopback for the module (see smtpsink.py)."""
    s = Sink().start()
    yield s
    s.stop()
