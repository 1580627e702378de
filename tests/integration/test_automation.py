"""Automation on receivers' replies (issue 15): rules in the shaping
document match the relay's replies (code, enhanced status, regex), fire
after N matches in a period, and put an action in force for a while: a
site suspended (its held messages wait and keep their attempts) or a rate
set, halved (scale_rate, also on a deferral ratio) or a site's connections
capped (set_connections), visible at GET /api/v1/shaping/state, lifted by
the operator or expiring by itself.  Replies mailcast makes up itself
never fire a rule and are never counted as attempts.
Every test runs on both stores.
"""

import datetime
import re
import threading
import time

import pytest

from campaignhelp import Tenant, db_query, wait_until
from deliveryhelp import delivery_args, messages, unique_domain
from harness import (OPERATOR_KEY, Server, create_database, error_of, free_port, invalid_field,
                     module_server)
from smtpsink import Reply, slow

UNUSUAL = Reply("rcpt", "421 4.7.28 Our system has detected an unusual rate of unsolicited mail")


@pytest.fixture(scope="module")
def refusals(request, store, tmp_path_factory, sink):
    """One server per store for the tests whose every request is refused and
    which check that nothing changed: they can share it (a server and a
    database a case cost the suite some 70 server starts)."""
    yield from module_server(request, store, tmp_path_factory, name="refusals",
                             args=delivery_args(sink.url, "--pacing-burst", "1"))


@pytest.fixture
def factory(request, store, tmp_path):
    servers, drops = [], []

    def make(relay, *extra):
        d = tmp_path / f"srv{len(servers)}"
        url, drop = create_database(request, store, d)
        drops.append(drop)
        srv = Server(d, url, OPERATOR_KEY, delivery_args(relay, "--pacing-burst", "1", *extra))
        servers.append(srv)
        srv.start()
        return srv

    yield make
    for srv in servers:
        srv.stop()
    for drop in drops:
        drop()


def put_rules(srv, site_dom, automation, per_second=1):
    doc = srv.get("/api/v1/shaping", headers=srv.op).json()
    doc["domains"][site_dom] = "gsite"
    doc["rules"].append({"egress": "default", "site": "gsite", "per_second": per_second})
    doc["automation"] = automation
    r = srv.put("/api/v1/shaping", json=doc, headers=srv.op)
    assert r.status_code == 200, r.text
    return r.json()


SUSPEND = {"egress": "default", "site": "gsite",
           "match": {"code": 421, "enhanced": "4.7.28", "regex": "unusual rate"},
           "trigger": {"count": 2, "period_s": 3600},
           "action": {"type": "suspend_site"}}


def state(srv):
    r = srv.get("/api/v1/shaping/state", headers=srv.op)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def campaign(t, dom, n, tag):
    lst = t.make_list(0)
    t.import_emails(lst["id"], [f"{tag}{i}@{dom}" for i in range(n)])
    c = t.create(recipient_list_id=lst["id"])
    t.do(c["id"], "send")
    return c


@pytest.mark.slow(13)
def test_two_unusual_rate_replies_suspend_the_site_and_it_comes_back(factory, sink):
    gdom, odom = unique_domain("gsite"), unique_domain("other")
    sink.script("@" + gdom, UNUSUAL, UNUSUAL, then=None)
    srv = factory(sink.url)
    doc = put_rules(srv, gdom, [{**SUSPEND, "duration_s": 6}])
    assert doc["automation"][0]["trigger"] == {"count": 2, "period_s": 3600}
    t = Tenant(srv)
    t.set_rate_limits(enabled=False)
    c = campaign(t, gdom, 6, "g")
    st = wait_until(lambda: state(srv), 20, what="the suspension")
    assert len(st) == 1
    s = st[0]
    assert (s["site"], s["action"], s["egress"], s["tenant_id"], s["rule"]) == (
        "gsite", "suspend_site", "default", None, 0)
    assert "4.7.28" in s["last_reply"] and "unusual rate" in s["last_reply"]
    since = time.time()
    metrics = srv.get("/metrics", headers=srv.op).text
    assert re.search(r'^mailcast_site_deferrals_total\{site="gsite"\} [2-9]', metrics, re.M)
    assert ('mailcast_shaping_in_force{egress="default",site="gsite",action="suspend_site"} 1'
            in metrics)
    # Another site goes on meanwhile, at once.
    o = campaign(t, odom, 20, "o")
    assert sink.wait_count(20, 10, lambda m: m.rcpt_tos[0].endswith(odom)) == 20
    assert state(srv), "the other site finished while the suspension was in force"
    # Held messages wait: a pending message's attempts are exactly those that
    # reached the sink (one claimed before the suspension began may be in
    # flight, its attempt counted at its claim).
    rows = db_query(srv.database, "SELECT to_address, attempts, status FROM scheduled_messages "
                    "WHERE campaign_id = %s", (c["id"],))
    seen = {}
    for a in sink.attempts_for_domain(gdom):
        seen[a.rcpt] = seen.get(a.rcpt, 0) + 1
    for addr, attempts, status in rows:
        want = seen.get(addr.lower(), 0)
        ok = attempts == want or (status == "sending" and attempts == want + 1)
        assert ok, (addr, attempts, status, seen)
    assert sum(1 for _, attempts, status in rows if status == "pending" and attempts == 0) > 0
    # Expires by itself, then everything goes.
    wait_until(lambda: not state(srv), 20, what="the suspension to expire")
    wait_until(lambda: t.get(c["id"])["status"] == "completed", 30, what="the campaign")
    # Nothing went to the site in the heart of the suspension (what was
    # claimed before it began, at most a horizon's worth, may still go).
    quiet = [a.time for a in sink.attempts_for_domain(gdom) if since + 2.0 < a.time < since + 4]
    assert quiet == []
    assert len(sink.messages_for_domain(gdom)) == 6
    assert t.get(o["id"])["status"] == "completed"


def suspended(factory, sink, tag, n):
    """A server whose site is suspended for an hour by two unusual-rate
    replies to a campaign of n: (server, tenant, domain, campaign, state)."""
    gdom = unique_domain(tag)
    sink.script("@" + gdom, UNUSUAL, UNUSUAL, then=None)
    srv = factory(sink.url)
    put_rules(srv, gdom, [{**SUSPEND, "duration_s": 3600}])
    t = Tenant(srv)
    t.set_rate_limits(enabled=False)
    c = campaign(t, gdom, n, "g")
    return srv, t, gdom, c, wait_until(lambda: state(srv), 20, what="the suspension")[0]


def held(srv, campaign_id):
    return db_query(srv.database, "SELECT to_address, status, attempts, next_attempt_at FROM "
                    "scheduled_messages WHERE campaign_id = %s", (campaign_id,))


def test_the_operator_lifts_a_suspension(factory, sink):
    srv, t, _, c, s = suspended(factory, sink, "glift", 4)
    error_of(srv.delete(f"/api/v1/shaping/state/{s['id']}", headers=t.h), 403, "forbidden")
    error_of(srv.get("/api/v1/shaping/state", headers=t.h), 403, "forbidden")
    r = srv.delete(f"/api/v1/shaping/state/{s['id']}", headers=srv.op)
    assert r.status_code == 204, r.text
    assert state(srv) == []
    error_of(srv.delete(f"/api/v1/shaping/state/{s['id']}", headers=srv.op), 404, "not_found")
    error_of(srv.delete("/api/v1/shaping/state/not-a-uuid", headers=srv.op), 404, "not_found")
    wait_until(lambda: t.get(c["id"])["status"] == "completed", 30,
               what=lambda: f"the campaign: {held(srv, c['id'])}")


@pytest.mark.parametrize("store", ["postgres"], indirect=True)
def test_a_lift_waits_for_the_claim_that_read_the_suspension(factory, sink):
    """PostgreSQL only (on SQLite a claim and a lift are writers, one after
    the other): a claim that read the suspension, stalled here on the site's
    pace row, must not defer its messages to the suspension's end after the
    operator lifted it.  The lift waits for the claim, then brings them back."""
    import psycopg2

    srv, t, gdom, first, s = suspended(factory, sink, "grace", 2)
    # The two deferred messages come back a second later and find the site
    # suspended (held until its end), or one went before the suspension.
    # Wait for that first, or their claim could be the one stalled below,
    # holding the tenant's row while the second campaign's send waits for it.
    wait_until(lambda: db_query(
        srv.database, "SELECT COUNT(*) FROM scheduled_messages WHERE campaign_id = %s AND "
        "status <> 'sent' AND NOT (status = 'pending' AND "
        "next_attempt_at > now() + interval '30 minutes')",
        (first["id"],))[0][0] == 0, 20, what=lambda: f"the first campaign held: {held(srv, first['id'])}")
    lock = psycopg2.connect(srv.database)
    done = {}
    lifter = threading.Thread(target=lambda: done.setdefault(
        "r", srv.delete(f"/api/v1/shaping/state/{s['id']}", headers=srv.op)))
    try:
        with lock.cursor() as cur:
            cur.execute("SELECT scope_id FROM rate_pace WHERE scope_id LIKE 'site:%%gsite' "
                        "FOR UPDATE")
            assert cur.fetchall() == [("site:default/gsite",)]

        def waiting(event):
            return db_query(srv.database, "SELECT COUNT(*) FROM pg_stat_activity WHERE "
                            "wait_event_type = 'Lock' AND wait_event = %s", (event,))[0][0]
        # A claim of the second campaign reads the suspension, then waits for the row.
        second = campaign(t, gdom, 3, "b")
        wait_until(lambda: db_query(
            srv.database, "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE '%%rate_pace%%' AND pid <> %s", (lock.get_backend_pid(),))[0][0] > 0,
            20, what="a claim waiting for the site's pace row")
        lifter.start()
        wait_until(lambda: "r" in done or waiting("advisory") > 0, 20,
                   what="the lift to return or wait for the claim")
    finally:
        lock.rollback()
        lock.close()
    if lifter.ident is not None:
        lifter.join(30)
    assert not lifter.is_alive(), "the lift did not return"
    assert done["r"].status_code == 204, done["r"].text
    assert state(srv) == []
    for c in (first, second):
        wait_until(lambda: t.get(c["id"])["status"] == "completed", 20,
                   what=lambda: f"the campaign: {held(srv, c['id'])}")


def test_set_rate_slows_the_site(factory, sink):
    gdom = unique_domain("grate")
    sink.script("@" + gdom, UNUSUAL, then=None)
    srv = factory(sink.url)
    put_rules(srv, gdom, [{"egress": "default", "site": "gsite",
                           "match": {"code": 421, "enhanced": "4.7", "regex": None},
                           "trigger": "immediate",
                           "action": {"type": "set_rate", "per_minute": 30},
                           "duration_s": 600}], per_second=20)
    t = Tenant(srv)
    t.set_rate_limits(enabled=False)
    campaign(t, gdom, 12, "g")
    s = wait_until(lambda: state(srv), 20, what="the rate to be set")[0]
    assert (s["action"], s["per_minute"], s["per_second"]) == ("set_rate", 30, None)
    assert 'mailcast_shaping_rate_per_second{egress="default",site="gsite"} 0.5' in srv.get(
        "/metrics", headers=srv.op).text
    start = time.time()
    n0 = len(sink.messages_for_domain(gdom))
    # (more may come at once: those claimed before the rule fired go at the old pace)
    assert sink.wait_count(n0 + 3, 20, lambda m: m.rcpt_tos[0].endswith(gdom)) >= n0 + 3
    times = sorted(m.sent for m in sink.messages_for_domain(gdom) if m.sent > start + 1.5)
    # 30 a minute is one every 2 s: after the horizon's worth, no two within 1.5 s.
    assert all(b - a > 1.5 for a, b in zip(times, times[1:])), times


@pytest.mark.parametrize("rule", [
    {"egress": "default", "site": "*", "match": {}, "trigger": "immediate",
     "action": {"type": "suspend_site"}, "duration_s": 600},
    {"egress": "default", "site": "*",
     "trigger": {"deferral_ratio": 0.000001, "min_attempts": 1, "period_s": 60},
     "action": {"type": "set_connections", "max_connections": 1}, "duration_s": 600},
], ids=["reply", "deferral_ratio"])
def test_replies_mailcast_makes_up_never_fire(factory, rule):
    """A relay that is down answers nothing: what mailcast concludes itself
    fires no rule, and no attempt is counted for a deferral ratio."""
    dead = f"smtp://127.0.0.1:{free_port()}?starttls=off"
    srv = factory(dead)
    put_rules(srv, "dead.example.net", [rule])
    t = Tenant(srv)
    t.set_rate_limits(enabled=False)
    c = campaign(t, "dead.example.net", 3, "d")
    wait_until(lambda: db_query(srv.database, "SELECT COUNT(*) FROM scheduled_messages WHERE "
                                "campaign_id = %s AND last_error IS NOT NULL", (c["id"],))[0][0]
               == 3, 30, what="the relay to be found down")
    assert state(srv) == []
    assert db_query(srv.database, "SELECT COUNT(*) FROM shaping_attempts")[0][0] == 0


@pytest.mark.parametrize("rule,field", [
    ({"site": "x", "match": {}, "trigger": "immediate", "action": {"type": "suspend_site"},
      "duration_s": 1}, "automation[0].egress"),
    ({**SUSPEND, "match": {"code": 399}, "duration_s": 1}, "automation[0].match.code"),
    ({**SUSPEND, "match": {"enhanced": "4.7.x"}, "duration_s": 1}, "automation[0].match.enhanced"),
    ({**SUSPEND, "match": {"regex": "(("}, "duration_s": 1}, "automation[0].match.regex"),
    ({**SUSPEND, "match": {"regex": "x" * 256}, "duration_s": 1}, "automation[0].match.regex"),
    ({**SUSPEND, "trigger": "sometimes", "duration_s": 1}, "automation[0].trigger"),
    ({**SUSPEND, "trigger": {"count": 0, "period_s": 10}, "duration_s": 1},
     "automation[0].trigger"),
    ({**SUSPEND, "trigger": {"count": 2, "period_s": 86401}, "duration_s": 1},
     "automation[0].trigger"),
    ({**SUSPEND, "action": {"type": "explode"}, "duration_s": 1}, "automation[0].action"),
    ({**SUSPEND, "action": {"type": "set_rate"}, "duration_s": 1}, "automation[0].action"),
    ({**SUSPEND, "duration_s": 0}, "automation[0].duration_s"),
    ({**SUSPEND, "duration_s": 604801}, "automation[0].duration_s"),
], ids=repr)
def test_invalid_automation_changes_nothing(refusals, rule, field):
    srv = refusals
    before = srv.get("/api/v1/shaping", headers=srv.op).json()
    doc = {**before, "automation": [rule]}
    invalid_field(srv.put("/api/v1/shaping", json=doc, headers=srv.op), field)
    assert srv.get("/api/v1/shaping", headers=srv.op).json() == before


def test_automation_boundaries_round_trip(factory, sink):
    srv = factory(sink.url)
    doc = srv.get("/api/v1/shaping", headers=srv.op).json()
    rule = {"egress": "default", "site": "*",
            "match": {"code": 599, "enhanced": "5.7.1", "regex": "x" * 255},
            "trigger": {"count": 100000, "period_s": 86400},
            "action": {"type": "set_rate", "per_second": 1, "per_minute": 2147483647},
            "duration_s": 604800}
    r = srv.put("/api/v1/shaping", json={**doc, "automation": [rule]}, headers=srv.op)
    assert r.status_code == 200, r.text
    assert r.json()["automation"] == [rule]


def test_a_suspended_site_slows_no_other_site_or_tenant(factory, sink):
    """Fairness: tenant A (5 a second) mails a site that automation suspends
    at its first refusal and another site; tenant B (5 a second) mails the
    other site.  While the suspension holds, A's other mail and B's mail each
    keep at least 95 % of their rate: held messages take no slot of their
    tenant's pace."""
    gdom, odom = unique_domain("gsite"), unique_domain("free")
    sink.script("@" + gdom, UNUSUAL, then=UNUSUAL)
    srv = factory(sink.url)
    put_rules(srv, gdom, [{**SUSPEND, "trigger": "immediate",
                           "duration_s": 120}], per_second=50)
    ta, tb = Tenant(srv), Tenant(srv)
    for t in (ta, tb):
        t.set_rate_limits(per_second=5, per_minute=100000, per_hour=10000000,
                          per_day=100000000)
    campaign(ta, gdom, 30, "a")
    wait_until(lambda: state(srv), 20, what="the suspension")
    campaign(ta, odom, 30, "ao")
    campaign(tb, odom, 30, "bo")
    assert sink.wait_count(60, 60, lambda m: m.rcpt_tos[0].endswith(odom)) == 60
    assert state(srv), "the suspension ended before the other mail was sent"
    for tag in ("ao", "bo"):
        times = sorted(m.sent for m in sink.messages_for_domain(odom)
                       if m.rcpt_tos[0].startswith(tag))
        # The pace from the first to the last: the burst (1) then one each 200 ms.
        # One interval of the span is timer and scheduling jitter of the two
        # ends (a loaded machine's fresh-clone run measured 4.69 a second,
        # 6.18 s for 29 gaps, here; alone 5.0), and a loaded machine's
        # message that misses its slot gives it up for a new one (delivery.c,
        # turn_of): one such costs 4 % of this span.  A held message taking
        # its tenant's slots would cost whole seconds: under 4.15 a second.
        span = times[-1] - times[0]
        rate = (len(times) - 1) / max(span - 0.2, 0.001)
        print(tag, "rate", round(rate, 2), "span", round(span, 2))
        assert rate >= 0.86 * 5, (tag, rate, span)


def test_a_new_document_counts_its_rules_afresh(factory, sink):
    """Hits count per rule position: after a PUT (which may reorder the
    rules) a rule does not inherit hits seen under the previous document (a
    Reader review found them kept)."""
    gdom = unique_domain("afresh")
    sink.script("@" + gdom, UNUSUAL, then=None)
    srv = factory(sink.url)
    put_rules(srv, gdom, [{**SUSPEND, "duration_s": 60}])
    t = Tenant(srv)
    t.set_rate_limits(enabled=False)

    def hits():
        return db_query(srv.database, "SELECT COUNT(*) FROM shaping_hits")[0][0]

    c = campaign(t, gdom, 1, "a")
    wait_until(lambda: hits() == 1, 20, what="the first hit")
    wait_until(lambda: t.get(c["id"])["status"] == "completed", 30, what="the first campaign")
    doc = srv.get("/api/v1/shaping", headers=srv.op).json()
    assert srv.put("/api/v1/shaping", json=doc, headers=srv.op).status_code == 200
    assert hits() == 0
    sink.script("@" + gdom, UNUSUAL, then=None)
    c = campaign(t, gdom, 1, "b")
    wait_until(lambda: hits() == 1, 20, what="the second hit")
    assert state(srv) == [], "the rule fired on a hit seen under the previous document"
    wait_until(lambda: t.get(c["id"])["status"] == "completed", 30, what="the second campaign")


# ---- set_connections, the deferral ratio and scale_rate (issue 15, item 4) ----

DEFER = Reply("rcpt", "451 4.7.1 Too many messages, slow down")


def epoch(ts):
    """A time of the API (RFC 3339, UTC) as time.time() counts."""
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def spans_by_peer(sink, dom, after=0.0):
    """(first, last) message time of each connection (peer) that carried dom's mail."""
    by_peer = {}
    for m in sink.messages_for_domain(dom):
        if m.time > after:
            by_peer.setdefault(m.peer, []).append(m.time)
    return sorted((min(v), max(v)) for v in by_peer.values())


def overlapping(spans):
    return any(a1 > b0 for (a0, a1), (b0, b1) in zip(spans, spans[1:]))


@pytest.mark.slow(9)
def test_set_connections_caps_the_site_until_it_expires(factory, sink):
    """A deferral puts a cap of one connection in force for a site without a
    rule of its own: while it holds, the site's mail never travels on two
    connections at once (other workers' connections aside: one process
    here); once it expires, several connections carry the site again."""
    dom = unique_domain("capsite")
    sink.script("@" + dom, DEFER, then=None)
    srv = factory(sink.url, "--smtp-connections", "4")
    doc = srv.get("/api/v1/shaping", headers=srv.op).json()
    doc["domains"][dom] = "capsite"
    doc["automation"] = [{"egress": "default", "site": "capsite",
                          "match": {"code": 451, "enhanced": None, "regex": "slow down"},
                          "trigger": "immediate",
                          "action": {"type": "set_connections", "max_connections": 1},
                          "duration_s": 8}]
    r = srv.put("/api/v1/shaping", json=doc, headers=srv.op)
    assert r.status_code == 200, r.text
    assert r.json()["automation"][0]["action"] == {"type": "set_connections",
                                                   "max_connections": 1}
    t = Tenant(srv)
    t.set_rate_limits(enabled=False)
    first = campaign(t, dom, 1, "first")
    s = wait_until(lambda: state(srv), 20, what="the cap")[0]
    assert (s["action"], s["max_connections"], s["site"], s["attempts"]) == (
        "set_connections", 1, "capsite", None)
    assert s["last_reply"].startswith("451 4.7.1") and "slow down" in s["last_reply"]
    assert "per_minute" not in s
    # Each message then takes the sink 30 ms: one connection cannot carry
    # the 40 before others would open (a fast sink would let one connection
    # carry them all, capped or not, and neither check below would mean much).
    sink.script("@" + dom, then=slow(0.03))
    start = time.time()
    capped = campaign(t, dom, 40, "capped")
    wait_until(lambda: t.get(capped["id"])["status"] == "completed", 30, what="the campaign")
    assert state(srv), "the cap expired before the campaign was sent"
    spans = spans_by_peer(sink, dom, after=start)
    assert sum(1 for m in sink.messages_for_domain(dom) if m.time > start) >= 40
    assert not overlapping(spans), ("two connections carried the site at once", spans)
    # A cap holds no message back: each went at its first attempt.
    assert {r["attempts"] for r in messages(srv, capped["id"]).values()} == {1}
    # Expired: the site's mail spreads over the worker's connections again.
    wait_until(lambda: not state(srv), 20, what="the cap to expire")
    after = time.time()
    free = campaign(t, dom, 40, "free")
    wait_until(lambda: t.get(free["id"])["status"] == "completed", 30, what="the campaign")
    assert overlapping(spans_by_peer(sink, dom, after=after))
    assert t.get(first["id"])["status"] == "completed"


@pytest.mark.slow(11)
def test_a_deferral_ratio_halves_the_rate_until_it_expires(factory, sink):
    """More than 30 % of at least 20 attempts deferred within 30 s halve the
    site's rate (its rule's 20 a second: 600 a minute) for 5 s: the site goes
    at about 10 a second meanwhile, another site keeps its own 10 a second, and
    afterwards the site is back at 20 a second.  Only deferred messages
    spend more than one attempt."""
    rdom, odom = unique_domain("rsite"), unique_domain("osite")
    sink.script("@" + rdom, *([DEFER] * 10), then=None)
    srv = factory(sink.url)
    doc = srv.get("/api/v1/shaping", headers=srv.op).json()
    doc["domains"][rdom] = "rsite"
    doc["domains"][odom] = "osite"
    doc["rules"] += [{"egress": "default", "site": "rsite", "per_second": 20},
                     {"egress": "default", "site": "osite", "per_second": 10}]
    rule = {"egress": "default", "site": "rsite",
            "match": {"code": None, "enhanced": None, "regex": None},
            "trigger": {"deferral_ratio": 0.3, "min_attempts": 20, "period_s": 30},
            "action": {"type": "scale_rate", "factor": 0.5}, "duration_s": 5}
    doc["automation"] = [rule]
    r = srv.put("/api/v1/shaping", json=doc, headers=srv.op)
    assert r.status_code == 200, r.text
    assert r.json()["automation"] == [rule]
    t = Tenant(srv)
    t.set_rate_limits(enabled=False)
    rc = campaign(t, rdom, 160, "r")
    s = wait_until(lambda: state(srv), 20, what="the rate to be halved")[0]
    assert (s["action"], s["site"], s["per_minute"], s["per_second"]) == (
        "scale_rate", "rsite", 600, None)
    assert s["attempts"] >= 20 and s["deferrals"] * 10 > 3 * s["attempts"], s
    assert 'mailcast_shaping_rate_per_second{egress="default",site="rsite"} 10' in srv.get(
        "/metrics", headers=srv.op).text
    oc = campaign(t, odom, 40, "o")
    since, until = epoch(s["since"]), epoch(s["until"])
    # Messages claimed before the firing (a horizon's worth) go at the old pace.
    lo, hi = since + 1.0, until - 0.2
    # (wait_for holds the sink's lock: the predicate reads its records directly)
    assert sink.wait_for(lambda k: any(m.sent > hi and m.rcpt_tos[0].endswith(rdom)
                                       for m in k.messages), 20)
    during = [m.sent for m in sink.messages_for_domain(rdom) if lo <= m.sent <= hi]
    rate = (len(during) - 1) / (max(during) - min(during))
    print("halved rate", round(rate, 2), len(during))
    assert 7 <= rate <= 11, (rate, during)
    # The other site kept its own rate meanwhile.
    assert sink.wait_count(40, 20, lambda m: m.rcpt_tos[0].endswith(odom)) == 40
    other = sorted(m.sent for m in sink.messages_for_domain(odom))
    orate = (len(other) - 1) / (other[-1] - other[0])
    print("other rate", round(orate, 2))
    # Well above the halved rate: on a loaded machine a message that misses
    # its slot gives it up for a new one (delivery.c, turn_of), which costs
    # the span a little (9.41 measured with 8 test workers on two cores);
    # bench/delivery measures utilisation on a quiet machine.
    assert orate >= 0.9 * 10, orate
    # Expired by itself: back at 20 a second.
    wait_until(lambda: not state(srv), 20, what="the halved rate to expire")
    wait_until(lambda: t.get(rc["id"])["status"] == "completed", 30, what="the campaign")
    back = sorted(m.sent for m in sink.messages_for_domain(rdom) if m.sent > until + 0.5)
    assert len(back) >= 20, back
    brate = (len(back) - 1) / (back[-1] - back[0])
    print("rate after", round(brate, 2), len(back))
    assert brate >= 0.8 * 20, brate  # twice the halved rate's 10, with the same allowance
    # Only the ten deferred messages spent a second attempt.
    attempts = sorted(r["attempts"] for r in messages(srv, rc["id"]).values())
    assert attempts == [1] * 150 + [2] * 10, attempts
    assert t.get(oc["id"])["status"] == "completed"


RATIO = {"egress": "default", "site": "gsite",
         "trigger": {"deferral_ratio": 0.3, "min_attempts": 50, "period_s": 600},
         "action": {"type": "scale_rate", "factor": 0.5}, "duration_s": 60}


@pytest.mark.parametrize("rule,field", [
    ({**RATIO, "trigger": {"deferral_ratio": 0, "min_attempts": 50, "period_s": 600}},
     "automation[0].trigger"),
    ({**RATIO, "trigger": {"deferral_ratio": 1, "min_attempts": 50, "period_s": 600}},
     "automation[0].trigger"),
    ({**RATIO, "trigger": {"deferral_ratio": 0.0000004, "min_attempts": 50, "period_s": 600}},
     "automation[0].trigger"),
    ({**RATIO, "trigger": {"deferral_ratio": "0.3", "min_attempts": 50, "period_s": 600}},
     "automation[0].trigger"),
    ({**RATIO, "trigger": {"deferral_ratio": 0.3, "min_attempts": 0, "period_s": 600}},
     "automation[0].trigger"),
    ({**RATIO, "trigger": {"deferral_ratio": 0.3, "min_attempts": 100001, "period_s": 600}},
     "automation[0].trigger"),
    ({**RATIO, "trigger": {"deferral_ratio": 0.3, "min_attempts": 50, "period_s": 3601}},
     "automation[0].trigger"),
    ({**RATIO, "trigger": {"deferral_ratio": 0.3, "min_attempts": 50}},
     "automation[0].trigger"),
    ({**RATIO, "trigger": {"deferral_ratio": 0.3, "period_s": 600}}, "automation[0].trigger"),
    ({**RATIO, "trigger": {"deferral_ratio": 0.3, "count": 2, "min_attempts": 50,
                           "period_s": 600}}, "automation[0].trigger"),
    ({**RATIO, "match": {"code": 421}}, "automation[0].match"),
    ({**RATIO, "match": "421"}, "automation[0].match"),
    ({**RATIO, "action": {"type": "suspend_tenant"}}, "automation[0].action"),
    ({**RATIO, "action": {"type": "scale_rate"}}, "automation[0].action.factor"),
    ({**RATIO, "action": {"type": "scale_rate", "factor": 0}}, "automation[0].action.factor"),
    ({**RATIO, "action": {"type": "scale_rate", "factor": 1}}, "automation[0].action.factor"),
    ({**RATIO, "action": {"type": "scale_rate", "factor": 1.5}}, "automation[0].action.factor"),
    ({**RATIO, "action": {"type": "scale_rate", "factor": -0.5}},
     "automation[0].action.factor"),
    ({**RATIO, "action": {"type": "scale_rate", "factor": "0.5"}},
     "automation[0].action.factor"),
    ({**RATIO, "action": {"type": "set_connections"}}, "automation[0].action.max_connections"),
    ({**RATIO, "action": {"type": "set_connections", "max_connections": 0}},
     "automation[0].action.max_connections"),
    ({**RATIO, "action": {"type": "set_connections", "max_connections": 2147483648}},
     "automation[0].action.max_connections"),
    ({**RATIO, "action": {"type": "set_connections", "max_connections": 1.5}},
     "automation[0].action.max_connections"),
], ids=repr)
def test_invalid_ratio_and_new_actions_change_nothing(refusals, rule, field):
    srv = refusals
    before = srv.get("/api/v1/shaping", headers=srv.op).json()
    invalid_field(srv.put("/api/v1/shaping", json={**before, "automation": [rule]},
                          headers=srv.op), field)
    assert srv.get("/api/v1/shaping", headers=srv.op).json() == before


def test_ratio_and_new_actions_round_trip_at_their_limits(factory, sink):
    srv = factory(sink.url)
    doc = srv.get("/api/v1/shaping", headers=srv.op).json()
    empty = {"code": None, "enhanced": None, "regex": None}
    rules = [
        {"egress": "default", "site": "*", "match": empty,
         "trigger": {"deferral_ratio": 0.000001, "min_attempts": 1, "period_s": 1},
         "action": {"type": "scale_rate", "factor": 0.000001}, "duration_s": 1},
        {"egress": "default", "site": "google", "match": empty,
         "trigger": {"deferral_ratio": 0.999999, "min_attempts": 100000, "period_s": 3600},
         "action": {"type": "set_connections", "max_connections": 2147483647},
         "duration_s": 604800},
        {"egress": "default", "site": "yahoo", "match": {"code": 421, "enhanced": None,
                                                         "regex": None},
         "trigger": "immediate",
         "action": {"type": "scale_rate", "factor": 0.999999}, "duration_s": 60},
        {"egress": "default", "site": "yahoo", "match": empty, "trigger": "immediate",
         "action": {"type": "set_connections", "max_connections": 1}, "duration_s": 60},
    ]
    r = srv.put("/api/v1/shaping", json={**doc, "automation": rules}, headers=srv.op)
    assert r.status_code == 200, r.text
    assert r.json()["automation"] == rules
    # A ratio rule may leave match out.
    short = {k: v for k, v in rules[0].items() if k != "match"}
    r = srv.put("/api/v1/shaping", json={**doc, "automation": [short]}, headers=srv.op)
    assert r.status_code == 200, r.text
    assert r.json()["automation"] == [rules[0]]


def test_metrics_name_each_site_once_when_several_states_share_it(factory, sink):
    """Two tenants suspended on one site are one series counting 2, not two
    series with the same labels (a scrape that repeats a label set is
    refused); no series of /metrics repeats."""
    doms = [unique_domain("shared-a"), unique_domain("shared-b")]
    for d in doms:
        sink.script("@" + d, UNUSUAL, then=None)
    srv = factory(sink.url)
    doc = srv.get("/api/v1/shaping", headers=srv.op).json()
    for d in doms:
        doc["domains"][d] = "gsite"
    doc["rules"].append({"egress": "default", "site": "gsite", "per_second": 5})
    doc["automation"] = [{"egress": "default", "site": "gsite",
                          "match": {"code": 421, "enhanced": "4.7.28", "regex": None},
                          "trigger": "immediate", "action": {"type": "suspend_tenant"},
                          "duration_s": 60}]
    r = srv.put("/api/v1/shaping", json=doc, headers=srv.op)
    assert r.status_code == 200, r.text
    for i, d in enumerate(doms):
        t = Tenant(srv)
        t.set_rate_limits(enabled=False)
        campaign(t, d, 2, f"s{i}")
    wait_until(lambda: len(state(srv)) == 2, 20, what="both tenants suspended on the site")
    metrics = srv.get("/metrics", headers=srv.op).text
    series = [ln.rsplit(" ", 1)[0] for ln in metrics.splitlines() if ln and ln[0] != "#"]
    assert len(series) == len(set(series)), [s for s in series if series.count(s) > 1]
    assert ('mailcast_shaping_in_force{egress="default",site="gsite",action="suspend_tenant"} 2'
            in metrics.splitlines()), metrics
