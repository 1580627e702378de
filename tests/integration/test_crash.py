"""Crash safety and concurrency of delivery (issue 5), end to end.

Real `mailcast worker` processes deliver real campaigns to crashsink (an
aiosmtpd sink in a process of its own that records every accepted message
with its recipient and Message-ID) while the tests kill, stop and signal
them.  The campaign is made through a `mailcast serve --deliver 0` process
(API and campaign engine only), so only the workers under test deliver.

What is proved (docs/reference/standards.md 2.2-2.3):
- kill -9 of a worker mid-campaign, three times: nothing lost, and at most
  --delivery-inflight duplicates per kill (at-least-once with a bound),
  also with --delivery-inflight 1 (at most one duplicate per kill);
- four workers on one PostgreSQL database: nothing lost, nothing twice;
- a slow relay without any crash: leases do not expire while messages wait
  in their worker's queue, so nothing is sent twice;
- SIGTERM: the worker exits 0 within the shutdown timeout and leaves no
  message 'sending'; what it held is sent or handed back, and a new worker
  finishes the campaign;
- the lease fence: a worker frozen (SIGSTOP) past its lease, whose messages
  another worker took over and sent, cannot overwrite them with its late
  results when it thaws.

The workers run with short leases and SMTP timeouts (lease 6 s > data 2 s +
2 x command 1 s) so that expired leases come back in seconds.  Every test
but the four-worker one runs on both stores (on SQLite all processes share
the file); that one takes PostgreSQL directly (pg_admin), as a skipped test
counts as a failure in tests/run.sh.
"""

import collections
import signal
import subprocess
import time
from pathlib import Path

import pytest

from campaignhelp import NO_DELIVERY, Tenant, db_query, emails, message_status_counts, wait_until
from crashsink import CrashSink, PostfixSink
from harness import BIN, OPERATOR_KEY, Server, child_env

LEASE = 6
FAST = ["--lease-seconds", str(LEASE), "--smtp-data-timeout", "2",
        "--smtp-command-timeout", "1", "--smtp-connect-timeout", "2",
        "--delivery-poll-ms", "50", "--engine-poll-ms", "100", "--idle-poll-max-ms", "400",
        "--retry-base", "1", "--retry-cap", "2", "--log-level", "info"]


# ---- processes ----


class Worker:
    """One `mailcast worker` process with its own log file."""

    def __init__(self, workdir, database, relay, args=(), name="worker"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.database = database
        self.relay = relay
        self.args = list(args)
        self.name = name
        self.proc = None
        self.log_path = self.workdir / f"{name}.log"
        self.owner = None
        self.returncode = None

    def start(self, timeout=10):
        argv = [BIN, "worker", "--database", self.database, "--relay", self.relay, *self.args]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=child_env(),
                                         cwd=self.workdir)
        line = wait_until(lambda: self._line_or_exit("event=delivery_start"), timeout,
                          what=f"{self.name} to start")
        self.owner = line.split("owner=")[1].split()[0]
        return self

    def _line_or_exit(self, needle):
        for line in self.log().splitlines():
            if needle in line:
                return line
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n"
                                 f"{self.log()[-3000:]}")
        return None

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.returncode = self.proc.wait(timeout=10)
        return self.returncode

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        self.returncode = self.proc.wait(timeout=timeout)
        return self.returncode

    def stop(self):
        """Teardown: SIGTERM (and SIGCONT, should it be frozen), kill after 30 s."""
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def lines(self, needle):
        return [ln for ln in self.log().splitlines() if needle in ln]


@pytest.fixture
def procs(tmp_path):
    """Factories for sinks and workers, all stopped at teardown."""
    made = []

    class P:
        @staticmethod
        def sink(delay=0.0, name="sink"):
            s = CrashSink(tmp_path / "sink", delay=delay, name=name)
            made.append(s)
            return s.start()

        @staticmethod
        def postfix_sink(name="sink"):
            s = PostfixSink(tmp_path / "sink", name=name)
            made.append(s)
            return s.start()

        @staticmethod
        def worker(database, relay, args=(), name=None, start=True):
            w = Worker(tmp_path / "workers", database, relay, [*FAST, *args],
                       name or f"worker{sum(isinstance(x, Worker) for x in made)}")
            made.append(w)
            return w.start() if start else w

    yield P
    for x in reversed(made):
        getattr(x, "close", x.stop)()


def api_server(server_factory):
    """The API (and campaign engine) without delivery."""
    return server_factory(args=[*NO_DELIVERY, "--engine-poll-ms", "100"])


def launch(api, n):
    """A tenant without rate limits, a list of n recipients and a campaign to
    them that is sending and fully materialised.  Returns (tenant, campaign
    id, addresses)."""
    t = Tenant(api)
    r = api.put(f"/api/v1/tenants/{t.id}/rate-limits", json={"enabled": False}, headers=api.op)
    assert r.status_code == 200, r.text
    domain = f"crash-{t.id[:8]}.example.com"
    lst = t.make_list(n, domain)
    c = t.create(recipient_list_id=lst["id"])
    t.do(c["id"], "send")
    c = t.wait_materialized(c["id"], timeout=120)
    assert c["total_recipients"] == n, c
    return t, c["id"], emails(n, domain)


# ---- what the database and the sink say ----


def sending_rows(database, campaign_id, owner=None):
    """(id, to_address, lease_owner, attempts) of the campaign's messages in
    status 'sending' (of one lease owner, if given)."""
    sql = "SELECT id, to_address, lease_owner, attempts FROM scheduled_messages " \
          "WHERE campaign_id = %s AND status = 'sending'"
    params = (campaign_id,)
    if owner is not None:
        sql += " AND lease_owner = %s"
        params += (owner,)
    return db_query(database, sql, params)


def db_messages(database, campaign_id):
    """{to_address: (status, attempts, message_id)} of the campaign's messages."""
    rows = db_query(database,
                    "SELECT to_address, status, attempts, message_id FROM scheduled_messages "
                    "WHERE campaign_id = %s", (campaign_id,))
    return {a: (s, n, m) for a, s, n, m in rows}


def strip_brackets(mid):
    return mid[1:-1] if mid and mid.startswith("<") and mid.endswith(">") else mid


def wait_completed(tenant, cid, timeout):
    return tenant.wait_for(cid, lambda c: c["status"] in ("completed", "failed"), timeout,
                           "the campaign to end")


class Delivered:
    """The sink's records of one campaign, checked against its recipients."""

    def __init__(self, sink, addresses):
        self.records = sink.records()
        self.by_rcpt = collections.Counter(r for _, r in self.records)
        self.by_mid = collections.Counter(m for m, _ in self.records)
        self.expected = set(addresses)

    @property
    def lost(self):
        return sorted(self.expected - set(self.by_rcpt))

    @property
    def strangers(self):
        return sorted(set(self.by_rcpt) - self.expected)

    @property
    def duplicates(self):
        """Extra copies: sum over recipients of (copies - 1)."""
        return sum(n - 1 for n in self.by_rcpt.values() if n > 1)

    def check_message_ids(self, database, campaign_id):
        """Every copy of a recipient's message carries the same Message-ID
        (RFC 5322 3.6.4: a resend of the same content is the same message),
        the one the database recorded, and no two recipients share one."""
        ids = collections.defaultdict(set)
        for mid, rcpt in self.records:
            assert mid, f"a message to {rcpt} came without a Message-ID"
            ids[rcpt].add(mid)
        several = {r: m for r, m in ids.items() if len(m) > 1}
        assert not several, f"resends changed the Message-ID: {list(several.items())[:5]}"
        owners = collections.Counter(next(iter(m)) for m in ids.values())
        shared = [m for m, n in owners.items() if n > 1]
        assert not shared, f"Message-IDs shared between recipients: {shared[:5]}"
        db = db_messages(database, campaign_id)
        wrong = [(r, next(iter(m)), db[r][2]) for r, m in ids.items()
                 if strip_brackets(db[r][2]) != next(iter(m))]
        assert not wrong, f"sink and database disagree on Message-IDs: {wrong[:5]}"


def diagnose(api, cid, sink=None, workers=()):
    """What to show when a campaign does not end: its messages by status and
    attempts, the sink's count, and each worker's warnings by kind."""
    rows = db_query(api.database, "SELECT status, attempts, COUNT(*) FROM scheduled_messages "
                                  "WHERE campaign_id = %s GROUP BY status, attempts "
                                  "ORDER BY 1, 2", (cid,))
    out = [f"messages (status, attempts, n): {rows}"]
    if sink is not None:
        got = sink_copies(sink)
        out.append(f"sink: {sum(got.values())} accepted, {len(got)} recipients, "
                   f"{sum(v - 1 for v in got.values())} duplicates")
    for w in workers:
        kinds = collections.Counter()
        for ln in w.log().splitlines():
            if "level=warn" in ln or "level=error" in ln:
                ev = ln.split("event=")[1].split()[0] if "event=" in ln else "?"
                if "sqlstate=" in ln:
                    ev += " sqlstate=" + ln.split("sqlstate=")[1].split()[0]
                kinds[ev] += 1
        out.append(f"{w.name}: alive={w.alive()} warnings={dict(kinds)}")
    return "\n".join(out)


def assert_complete(tenant, cid, n, timeout, sink=None, workers=()):
    try:
        c = wait_completed(tenant, cid, timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{diagnose(tenant.server, cid, sink, workers)}") from None
    counts = message_status_counts(tenant.server, cid)
    assert c["status"] == "completed", (c, counts)
    assert c["sent_count"] == n == c["total_recipients"], c
    assert counts == {"sent": n}, counts
    return c


def sink_copies(sink):
    return collections.Counter(r for _, r in sink.records())


# ---- kill -9 ----


def kill_cycles(api, cid, sink, procs, args, kills, per_kill):
    """Starts a worker, lets the sink accept per_kill more messages, kills
    the worker with SIGKILL; kills times.  Returns one dict per kill:
      held      messages the victim had claimed ('sending' under its lease)
                when it died; at most --delivery-inflight if the bound holds;
      dups      those of them the sink had already accepted from the victim:
                each will be sent again once the lease expires, so this is
                exactly the number of duplicates the kill causes;
      max_held  the most messages the victim was seen holding at once.
    No other worker runs meanwhile, so every copy that reaches the sink
    during a victim's life comes from the victim."""
    report = []
    for k in range(kills):
        before = sink_copies(sink)
        w = procs.worker(api.database, sink.relay, args, name=f"victim{k}")
        target = sum(before.values()) + per_kill
        max_held = 0
        deadline = time.monotonic() + 60
        while sink.count() < target:
            assert time.monotonic() < deadline, f"victim{k} delivers nothing\n{w.log()[-2000:]}"
            max_held = max(max_held, len(sending_rows(api.database, cid, w.owner)))
            time.sleep(0.002)
        w.kill9()
        # A final dot already on its way still reaches the sink: let it land.
        time.sleep(0.5)
        held = {a for _, a, _, _ in sending_rows(api.database, cid, w.owner)}
        after = sink_copies(sink)
        dups = {a for a in held if after[a] > before[a]}
        report.append({"held": len(held), "dups": len(dups), "max_held": max(max_held, len(held))})
    return report


@pytest.mark.slow(23)
def test_kill9_three_times_loses_nothing_and_bounds_duplicates(server_factory, procs):
    """2,000 recipients; a worker (--delivery-inflight 20, 4 connections, a
    relay taking 30 ms per message) is killed with SIGKILL after each 300
    more accepted messages, three times, then a survivor finishes.  Nothing
    is lost, and the duplicates stay within the in-flight bound at every
    kill."""
    n = 2000
    inflight = 20
    api = api_server(server_factory)
    tenant, cid, addresses = launch(api, n)
    sink = procs.sink(delay=0.03)
    args = ["--delivery-inflight", str(inflight), "--delivery-batch", "10",
            "--smtp-connections", "4"]
    t0 = time.monotonic()
    kills = kill_cycles(api, cid, sink, procs, args, kills=3, per_kill=300)
    survivor = procs.worker(api.database, sink.relay, args, name="survivor")
    assert_complete(tenant, cid, n, timeout=120, sink=sink, workers=[survivor])
    elapsed = time.monotonic() - t0

    got = Delivered(sink, addresses)
    print(f"\nkill -9 x3 (inflight {inflight}): {kills}; {len(got.records)} accepted, "
          f"{got.duplicates} duplicates, {elapsed:.1f}s")
    assert not got.lost, f"{len(got.lost)} recipients never got the message: {got.lost[:5]}"
    assert not got.strangers, got.strangers[:5]
    # Each kill landed mid-flight: the victim held claimed messages.
    assert all(k["held"] > 0 for k in kills), kills
    # Each kill duplicates at most what the victim had in flight, and every
    # duplicate comes from a kill.
    assert all(k["dups"] <= inflight for k in kills), kills
    assert got.duplicates <= 3 * inflight, (got.duplicates, kills)
    assert got.duplicates <= sum(k["dups"] for k in kills), (got.duplicates, kills)
    got.check_message_ids(api.database, cid)
    assert survivor.alive()
    # The survivor took the victims' messages back when their leases expired.
    assert survivor.lines("event=lease_expired"), survivor.log()[-2000:]


@pytest.mark.slow(17)
def test_kill9_duplicates_at_most_delivery_inflight_per_kill(server_factory, procs):
    """--delivery-inflight is documented as "messages a worker holds claimed
    at once (bounds duplicates after a crash)"; standards 2.3.9: with
    max_inflight=1 a kill duplicates at most 1 message.  With a fast relay,
    a worker of --delivery-inflight 1 is killed three times: it must never
    hold more than one message and no kill may duplicate more than one."""
    n = 600
    api = api_server(server_factory)
    tenant, cid, addresses = launch(api, n)
    sink = procs.sink(delay=0)
    args = ["--delivery-inflight", "1", "--delivery-batch", "1", "--smtp-connections", "1",
            "--delivery-poll-ms", "10"]
    kills = kill_cycles(api, cid, sink, procs, args, kills=3, per_kill=60)
    survivor = procs.worker(api.database, sink.relay, args, name="survivor")
    assert_complete(tenant, cid, n, timeout=120, sink=sink, workers=[survivor])
    got = Delivered(sink, addresses)
    print(f"\nkill -9 x3 (inflight 1): {kills}; {got.duplicates} duplicates")
    assert not got.lost, got.lost[:5]
    assert all(k["dups"] <= 1 for k in kills), (
        f"a kill of a worker with --delivery-inflight 1 duplicated more than 1 message; "
        f"it held up to max_held messages claimed at once: {kills}")
    assert all(k["max_held"] <= 1 for k in kills), kills
    assert got.duplicates <= 3, (got.duplicates, kills)
    assert got.duplicates <= sum(k["dups"] for k in kills), (got.duplicates, kills)


# ---- four workers, one PostgreSQL database ----


@pytest.mark.slow(73)
def test_four_workers_on_postgres_deliver_each_message_exactly_once(pg_admin, tmp_path, procs):
    """20,000 messages, four `mailcast worker` processes sharing one
    PostgreSQL database (SKIP LOCKED claims): nothing lost, nothing twice
    (by recipient and by Message-ID at the sink), one attempt per message,
    campaign completed with sent == 20,000.  The sink is Postfix's
    smtp-sink (crashsink's Python cost half the test's CPU)."""
    n = 20000
    url = pg_admin.create()
    api = Server(tmp_path / "api", url, OPERATOR_KEY, [*NO_DELIVERY, "--engine-poll-ms", "100"])
    try:
        api.start()
        tenant, cid, addresses = launch(api, n)
        sink = procs.postfix_sink()
        # No crash here: ordinary timeouts, so a busy machine cannot turn
        # a slow reply into a retry.
        args = ["--delivery-inflight", "100", "--delivery-batch", "100",
                "--smtp-connections", "4", "--lease-seconds", "120",
                "--smtp-data-timeout", "60", "--smtp-command-timeout", "20"]
        t0 = time.monotonic()
        workers = [procs.worker(url, sink.relay, args, name=f"pgworker{i}") for i in range(4)]
        assert_complete(tenant, cid, n, timeout=240, sink=sink, workers=workers)
        elapsed = time.monotonic() - t0
        got = Delivered(sink, addresses)
        print(f"\n4 workers, {n} messages: {elapsed:.1f}s ({n / elapsed:.0f}/s), "
              f"{len(got.records)} accepted")
        assert not got.lost, f"{len(got.lost)} lost: {got.lost[:5]}"
        assert not got.strangers, got.strangers[:5]
        assert got.duplicates == 0, [r for r, c in got.by_rcpt.items() if c > 1][:10]
        assert len(got.by_mid) == n and max(got.by_mid.values()) == 1
        got.check_message_ids(url, cid)
        # Each message was claimed once: no lease expired, nothing fenced out.
        rows = db_query(url, "SELECT attempts, COUNT(*) FROM scheduled_messages "
                             "WHERE campaign_id = %s GROUP BY attempts", (cid,))
        assert dict(rows) == {1: n}, rows
        for w in workers:
            assert w.alive(), w.log()[-2000:]
            assert not w.lines("event=fenced_out"), w.lines("event=fenced_out")[:5]
            assert not w.lines("event=lease_expired")
            assert not w.lines("level=error"), w.lines("level=error")[:5]
            assert not w.lines("event=record_failed"), w.lines("event=record_failed")[:5]
        for w in workers:
            w.signal(signal.SIGTERM)
        for w in workers:
            assert w.wait(30) == 0, w.log()[-2000:]
    finally:
        api.stop()
        pg_admin.drop(url)


# ---- a slow relay, no crash ----


@pytest.mark.slow(18)
def test_slow_relay_leases_do_not_expire_while_messages_wait_in_the_worker(server_factory,
                                                                           procs):
    """No crash at all: one worker, a relay that takes 0.5 s to accept each
    message (a quarter of --smtp-data-timeout 2), 40 messages held and 2
    connections.  The configuration is valid (lease 6 s > data 2 s + 2 x
    command 1 s, the check that exists "or a slow relay would see
    duplicates"), so every message must go out once, at its first attempt,
    and no lease may expire: a message waiting in the worker's own queue is
    still the worker's: the 40th of the first claim waits 10 s for its turn,
    longer than the lease."""
    n = 60
    connections = 2
    api = api_server(server_factory)
    tenant, cid, addresses = launch(api, n)
    sink = procs.sink(delay=0.5)
    w = procs.worker(api.database, sink.relay,
                     ["--delivery-inflight", "40", "--delivery-batch", "40",
                      "--smtp-connections", str(connections)], name="slow")
    # 60 messages, 2 at a time, 0.5 s each: 15 s; four times that is plenty.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if tenant.get(cid)["status"] != "sending":
            break
        copies = sink_copies(sink)
        if copies and max(copies.values()) > 1:
            break  # a duplicate already: no need to wait for the rest
        time.sleep(0.2)
    got = Delivered(sink, addresses)
    expired = w.lines("event=lease_expired")
    fenced = w.lines("event=fenced_out")
    print(f"\nslow relay: {len(got.records)} accepted, {got.duplicates} duplicates, "
          f"{len(expired)} lease expiries, {len(fenced)} results fenced out")
    assert got.duplicates == 0, (
        f"{got.duplicates} duplicates without any crash; {expired[:2]} {fenced[:2]}\n"
        + diagnose(api, cid, sink, [w]))
    assert not expired, expired[:3]
    assert_complete(tenant, cid, n, timeout=60, sink=sink, workers=[w])
    assert not got.lost, got.lost[:5]
    rows = db_query(api.database, "SELECT attempts, COUNT(*) FROM scheduled_messages "
                                  "WHERE campaign_id = %s GROUP BY attempts", (cid,))
    assert dict(rows) == {1: n}, rows


# ---- SIGTERM ----


@pytest.mark.slow(15)
def test_sigterm_drains_in_flight_messages(server_factory, procs):
    """SIGTERM mid-campaign with time enough to drain: the worker stops
    claiming, finishes what it holds, records it and exits 0; nothing is
    left 'sending', nothing was sent twice, and a new worker completes the
    campaign."""
    n = 1000
    api = api_server(server_factory)
    tenant, cid, addresses = launch(api, n)
    sink = procs.sink(delay=0.05)
    args = ["--delivery-inflight", "20", "--smtp-connections", "4", "--shutdown-timeout", "10"]
    w = procs.worker(api.database, sink.relay, args, name="terminated")
    wait_until(lambda: sink.count() >= 200, 60, interval=0.01, what="200 accepted messages")
    held = len(sending_rows(api.database, cid, w.owner))
    t = time.monotonic()
    w.signal(signal.SIGTERM)
    rc = w.wait(timeout=10 + 5)
    took = time.monotonic() - t
    assert rc == 0, w.log()[-3000:]
    assert took <= 10 + 3, took
    assert w.lines("event=stopped"), w.log()[-2000:]
    assert not w.lines("handed back"), w.lines("handed back")
    assert held > 0
    left = sending_rows(api.database, cid)
    assert left == [], f"{len(left)} messages left 'sending' after a clean stop: {left[:5]}"
    mid = Delivered(sink, addresses)
    assert mid.duplicates == 0
    sent_now = message_status_counts(api, cid).get("sent", 0)
    assert sent_now == len(mid.by_rcpt), (sent_now, len(mid.by_rcpt))

    f = procs.worker(api.database, sink.relay, args, name="finisher")
    assert_complete(tenant, cid, n, timeout=60, sink=sink, workers=[f])
    got = Delivered(sink, addresses)
    print(f"\nSIGTERM (drain): held {held}, exit after {took:.2f}s")
    assert not got.lost, got.lost[:5]
    assert got.duplicates == 0, got.duplicates
    got.check_message_ids(api.database, cid)


@pytest.mark.slow(14)
def test_sigterm_past_the_shutdown_timeout_hands_messages_back(server_factory, procs):
    """SIGTERM with more held than the shutdown timeout lets it finish: the
    worker exits 0 in time; what it never handed to the relay goes back to
    'pending' without using an attempt, what was on the wire is retried;
    nothing stays 'sending' and a new worker completes the campaign.  Only a
    message whose end of data was already sent can be duplicated."""
    n = 60
    connections = 2
    api = api_server(server_factory)
    tenant, cid, addresses = launch(api, n)
    # 12 held, 2 at a time, 0.4 s each: 2.4 s of queue, well inside the
    # 6 s lease, but far more than the 1 s the stop may take.
    sink = procs.sink(delay=0.4)
    args = ["--delivery-inflight", "12", "--delivery-batch", "12",
            "--smtp-connections", str(connections), "--shutdown-timeout", "1"]
    w = procs.worker(api.database, sink.relay, args, name="terminated")
    wait_until(lambda: sink.count() >= 6, 60, interval=0.01, what="6 accepted messages")
    held = len(sending_rows(api.database, cid, w.owner))
    t = time.monotonic()
    w.signal(signal.SIGTERM)
    rc = w.wait(timeout=1 + 10)
    took = time.monotonic() - t
    assert rc == 0, w.log()[-3000:]
    assert took <= 1 + 3, took
    assert w.lines("event=stopped"), w.log()[-2000:]
    # Messages still queued go back at the stop itself; what is on the wire
    # finishes or, past the timeout, is handed back ("delivery_stop in_flight=").
    left = sending_rows(api.database, cid)
    assert left == [], f"{len(left)} messages left 'sending' after SIGTERM: {left[:5]}"
    counts = message_status_counts(api, cid)
    assert set(counts) <= {"sent", "pending"}, counts
    assert held > connections, held  # the stop really had queued messages to hand back
    # Handed back unsent: the attempt is given back; on the wire: one used.
    attempts = dict(db_query(api.database,
                             "SELECT attempts, COUNT(*) FROM scheduled_messages WHERE "
                             "campaign_id = %s AND status = 'pending' GROUP BY attempts",
                             (cid,)))
    assert set(attempts) <= {0, 1}, attempts
    assert attempts.get(1, 0) <= connections, attempts

    f = procs.worker(api.database, sink.relay, [*args[:-2], "--shutdown-timeout", "10"],
                     name="finisher")
    assert_complete(tenant, cid, n, timeout=60, sink=sink, workers=[f])
    got = Delivered(sink, addresses)
    print(f"\nSIGTERM (deadline): held {held}, exit after {took:.2f}s, pending by attempts "
          f"{attempts}, {got.duplicates} duplicates")
    assert not got.lost, got.lost[:5]
    assert got.duplicates <= connections, got.duplicates
    got.check_message_ids(api.database, cid)


# ---- the lease fence ----


def _frozen_outside_a_transaction(database):
    """Whether no connection to database is inside a write transaction
    (the frozen worker must not hold a lock the others wait for)."""
    if database.startswith("sqlite:"):
        import sqlite3

        conn = sqlite3.connect(database[len("sqlite:"):], timeout=0.2, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            conn.close()
    rows = db_query(database, "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = "
                              "current_database() AND state LIKE 'idle in transaction%%' "
                              "AND pid <> pg_backend_pid()")
    return rows[0][0] == 0


@pytest.mark.slow(13)
def test_lease_fence_late_results_of_a_frozen_worker_change_nothing(server_factory, procs):
    """Worker A claims 5 messages and is frozen (SIGSTOP) with one of them
    awaiting the relay's reply.  Its leases expire; worker B takes the
    messages over and sends them; the campaign completes.  When A thaws, its
    late results (a 250 for the message it had sent, and whatever it does
    with the rest) are fenced out by lease owner and attempt: the rows stay
    as B recorded them, and the campaign's counts do not move."""
    n = 30
    api = api_server(server_factory)
    tenant, cid, addresses = launch(api, n)
    sink = procs.sink(delay=0.3)
    a = procs.worker(api.database, sink.relay,
                     ["--delivery-inflight", "5", "--delivery-batch", "5",
                      "--smtp-connections", "1"], name="zombie")
    for _ in range(20):
        seen = sink.count()
        wait_until(lambda: sink.count() > seen, 30, interval=0.002, what="a message from A")
        a.signal(signal.SIGSTOP)
        time.sleep(0.1)
        if _frozen_outside_a_transaction(api.database):
            break
        a.signal(signal.SIGCONT)
    else:
        pytest.fail("could not freeze worker A outside a transaction")
    held = sending_rows(api.database, cid, a.owner)
    # At most --delivery-inflight claimed; how many depends on where it froze.
    assert 1 <= len(held) <= 5 and all(r[3] == 1 for r in held), held
    held_ids = sorted(str(r[0]) for r in held)
    accepted_from_a = sink.count()

    b = procs.worker(api.database, sink.relay,
                     ["--delivery-inflight", "20", "--smtp-connections", "2"], name="taker")
    assert_complete(tenant, cid, n, timeout=60, sink=sink, workers=[b])
    cols = ("SELECT id, status, attempts, lease_owner, sent_at, relay_queue_id, message_id, "
            "last_error FROM scheduled_messages WHERE campaign_id = %s ORDER BY id")
    before = db_query(api.database, cols, (cid,))
    taken = [r for r in before if str(r[0]) in held_ids]
    assert [r[1:4] for r in taken] == [("sent", 2, None)] * len(held), taken
    assert b.lines("event=lease_expired")

    a.signal(signal.SIGCONT)
    fenced = wait_until(lambda: (lambda x: x if len(x) >= len(held) else None)(
        a.lines("event=fenced_out")), 30, what="A's late results to be fenced out")
    time.sleep(0.5)  # and anything else it might still record
    fenced = a.lines("event=fenced_out")
    assert sorted(ln.split("msg=")[1].split()[0] for ln in fenced) == held_ids, fenced
    assert all("attempt=1 " in ln and f"owner={a.owner}" in ln for ln in fenced), fenced

    after = db_query(api.database, cols, (cid,))
    assert after == before, [(x, y) for x, y in zip(before, after) if x != y][:5]
    c = tenant.get(cid)
    assert (c["status"], c["sent_count"], c["sending_count"], c["pending_count"]) == (
        "completed", n, 0, 0), c
    got = Delivered(sink, addresses)
    print(f"\nfence: A held {len(held)}, {accepted_from_a} accepted before the freeze, "
          f"{got.duplicates} duplicates in all")
    assert not got.lost, got.lost[:5]
    # A's copy of the message it had sent, plus whatever it sends on thawing
    # before it learns nothing is its own any more: at most what it held.
    assert got.duplicates <= len(held), got.duplicates
    got.check_message_ids(api.database, cid)
    assert a.alive() and b.alive()
