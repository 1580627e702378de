"""Fault tests (issue 12, standing proof): the relay refusing connections,
accepting and then hanging, and answering 421 to everything, each for a
while and then healthy; and PostgreSQL restarted in the middle of a
campaign.  Each ends with every message delivered, none failed, none twice
beyond the in-flight bound, and the outage logged once.

The relay faults run on both stores (server_factory); the database restart
is PostgreSQL's (SQLite has no server to lose), on a cluster of the test's
own so no other test sees it go.  Tests wait for states (connections seen,
messages delivered, log lines), never for time.
"""

import collections
import os
import re
import subprocess
import time

import pytest

from campaignhelp import Tenant, emails, wait_until
from deliveryhelp import delivery_args, messages, unique_domain, wait_terminal
from faultrelay import FaultRelay
from harness import (REPO, OPERATOR_KEY, OwnCluster, PgAdmin, Server, db_execute, free_port,
                     pg_database_url)
from smtpsink import Sink, slow

INFLIGHT = 16


def campaign(t, n, dom):
    t.set_rate_limits(enabled=False)  # the default 100 a minute would pace 300 messages
    lst = t.make_list(n, domain=dom)
    c = t.create(recipient_list_id=lst["id"], from_address="news@from.example.org")
    t.do(c["id"], "send")
    return c


def assert_all_once(srv, t, c, dom, n, sink, bound=INFLIGHT):
    try:
        done = wait_terminal(t, c["id"], timeout=90)
    except AssertionError:
        rows = messages(srv, c["id"])
        states = collections.Counter((r["status"], r["attempts"]) for r in rows.values())
        log = [x for x in srv.stderr().splitlines() if "event=http " not in x][-40:]
        raise AssertionError(f"not finished: {states}\n" + "\n".join(log)) from None
    assert done["status"] == "completed", done
    rows = messages(srv, c["id"])
    assert len(rows) == n and all(r["status"] == "sent" for r in rows.values()), rows
    got = collections.Counter(m.rcpt_tos[0].lower() for m in sink.messages_for_domain(dom))
    assert set(got) == {e.lower() for e in emails(n, dom)}
    extra = sum(v - 1 for v in got.values())
    assert extra <= bound, f"{extra} duplicates, more than the in-flight bound {bound}"


def wait_log_count(srv, pattern, n, timeout):
    """Waits until srv's log has n lines matching pattern."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(re.findall(pattern, srv.stderr())) >= n:
            return True
        time.sleep(0.05)
    return False


def relay_args(port, *extra):
    return delivery_args(f"smtp://127.0.0.1:{port}", "--smtp-connect-timeout", "1",
                         "--delivery-inflight", str(INFLIGHT), *extra)


def test_a_database_error_while_loading_the_campaign_spends_no_attempt(server_factory):
    """The worker reads a new campaign (its templates, DKIM key, bounce
    policy) when its first message is claimed; a database error there is the
    database's, not the campaign's: the messages go back unsent, no attempt
    spent, and are sent once it reads again (a chaos review found them failed
    for good).  The error here: a table the load reads is renamed away."""
    port = free_port()
    srv = server_factory(args=relay_args(port))
    t = Tenant(srv)
    dom = unique_domain("loaderr")
    db_execute(srv.database, "ALTER TABLE bounce_policies RENAME TO bounce_policies_away")
    with Sink(port=port) as sink:
        c = campaign(t, 5, dom)
        def handed_back():
            rows = messages(srv, c["id"]).values()
            return len(rows) == 5 and all("could not be read" in (r["last_error"] or "")
                                          for r in rows)

        wait_until(handed_back, 30, what="the messages handed back")
        rows = messages(srv, c["id"])
        assert all(r["status"] == "pending" and r["attempts"] == 0 for r in rows.values()), rows
        db_execute(srv.database, "ALTER TABLE bounce_policies_away RENAME TO bounce_policies")
        assert_all_once(srv, t, c, dom, 5, sink, bound=0)


@pytest.mark.parametrize("mode", ["refuse", "hang", "421"])
def test_relay_fault_then_healthy(server_factory, mode):
    port = free_port()
    fault = None if mode == "refuse" else FaultRelay(port, mode)
    srv = server_factory(args=relay_args(port, "--log-level", "debug"))
    t = Tenant(srv)
    dom = unique_domain(f"fault{mode}")
    c = campaign(t, 40, dom)
    # A while of faults: three failed tries of the worker's, then the relay is healthy.
    assert wait_log_count(srv, r"event=relay_(still_)?unreachable ", 3, 40), srv.log_tail()
    if fault:
        assert fault.connections >= 3
        fault.close()
    rows = messages(srv, c["id"])
    assert all(r["status"] in ("pending", "sending") for r in rows.values()), rows
    assert all(r["attempts"] == 0 for r in rows.values() if r["status"] == "pending"), \
        "an outage spends no attempt"
    with Sink(port=port) as sink:
        assert_all_once(srv, t, c, dom, 40, sink)
    log = srv.stderr()
    assert len(re.findall(r"event=relay_unreachable ", log)) == 1, log
    assert re.search(r"event=relay_reachable .*after_s=\d+", log), log


# ---- PostgreSQL restarted mid-campaign ----


@pytest.mark.slow(15)
def test_postgres_restart_mid_campaign(tmp_path):
    cluster = OwnCluster()
    srv = None
    try:
        admin = PgAdmin(cluster.url)
        db = admin.create()
        with Sink() as sink:
            dom = unique_domain("pgrestart")
            sink.script("@" + dom, then=slow(0.02))
            srv = Server(tmp_path / "srv", db, OPERATOR_KEY,
                         delivery_args(sink.url, "--delivery-inflight", str(INFLIGHT),
                                       "--smtp-connections", "2"))
            srv.start()
            t = Tenant(srv)
            n = 300
            c = campaign(t, n, dom)
            assert sink.wait_count(30, 30, lambda m: m.rcpt_tos[0].endswith(dom)) >= 30
            cluster.stop()
            assert srv.wait_for_log(r"event=db_unreachable", timeout=15), srv.log_tail()
            # Down for a few seconds of the workers' retries (the log must stay quiet).
            mark = len(srv.stderr().splitlines())
            time.sleep(4)  # the outage itself, not a synchronisation
            during = srv.stderr().splitlines()[mark:]
            cluster.start()
            assert srv.wait_for_log(r"event=db_reachable .*after_s=\d+", timeout=45), \
                srv.log_tail()
            assert_all_once(srv, t, c, dom, n, sink)
            log = srv.stderr()
            assert len(re.findall(r"event=db_unreachable", log)) == 1, log
            noisy = [x for x in during if "level=error" in x or "level=warn" in x]
            assert len(noisy) <= 10, f"{len(noisy)} warnings in 4 s of outage: {noisy[:12]}"
    finally:
        if srv:
            srv.stop()
        cluster.destroy()
