"""Egresses and egress pools (issue 15, item 5): the operator's API, each
tenant's mail leaving only through its pool's egresses, failover when a
member cannot be reached, and connection limits per (egress, site).

Two SMTP sinks on 127.0.0.2 and 127.0.0.3 are two egresses (Linux routes
all of 127/8 to lo).  Every test runs on both stores; waits are for states
(the sinks' counts, the database), never sleeps.
"""

import time

import pytest

from campaignhelp import Tenant, db_query
from deliveryhelp import FAST, delivery_args, max_in_window, unique_domain
from harness import (OPERATOR_KEY, Server, bearer, create_database, error_of, invalid_field,
                     module_server)
from smtpsink import Sink, free_port
from tenanthelp import wait_until
from test_crash import Worker


LIMITS = ("--egress-max", "3", "--egress-pool-max", "3", "--egress-pool-members-max", "2",
          "--egress-weight-max", "10")


@pytest.fixture
def sinks():
    a = Sink(host="127.0.0.2").start()
    b = Sink(host="127.0.0.3").start()
    yield a, b
    a.stop()
    b.stop()


def start_server(request, store, tmp_path, relay, *extra):
    url, drop = create_database(request, store, tmp_path)
    srv = Server(tmp_path / "srv", url, OPERATOR_KEY, delivery_args(relay, *extra))
    request.addfinalizer(drop)
    request.addfinalizer(srv.stop)
    srv.start()
    return srv


@pytest.fixture
def mc(request, store, sinks, tmp_path):
    """A server whose --relay (the default egress) is sink a."""
    return start_server(request, store, tmp_path, sinks[0].url, *LIMITS)


@pytest.fixture(scope="module")
def refusals(request, store, tmp_path_factory):
    """One server per store for the tests whose every request is refused and
    which check that nothing changed: they can share it (a server and a
    database a case cost the suite some 70 server starts).  Its relay is
    never reached: nothing is sent."""
    yield from module_server(request, store, tmp_path_factory, name="refusals",
                             args=delivery_args("smtp://127.0.0.2:9", *LIMITS))


def make_egress(srv, name, relay, wait=False, **fields):
    """Creates an egress; wait: until the worker has its pool (it reads the
    table at each lease sweep, every 5 s)."""
    r = srv.post("/api/v1/egresses", json={"name": name, "relay": relay, **fields},
                 headers=srv.op)
    assert r.status_code == 201, r.text
    if wait:
        srv.wait_for_log(f"event=egress egress={name} ", timeout=15)
    return r.json()


def make_pool(srv, name, members):
    r = srv.post("/api/v1/egress-pools",
                 json={"name": name, "members": [{"egress": e, "weight": w} for e, w in members]},
                 headers=srv.op)
    assert r.status_code == 201, r.text
    return r.json()


def sending_tenant(srv, n, dom, pool=None):
    t = Tenant(srv)
    if pool:
        r = srv.patch(f"/api/v1/tenants/{t.id}", json={"egress_pool": pool}, headers=srv.op)
        assert r.status_code == 200 and r.json()["egress_pool"] == pool, r.text
    t.set_rate_limits(enabled=False)
    lst = t.make_list(n, domain=dom)
    c = t.create(recipient_list_id=lst["id"])
    return t, c


def wait_total(sinks, dom, n, timeout):
    """Waits until the sinks together hold n messages to dom (woken by either)."""
    # Reads the lists without the sinks' locks: wait_for holds one of them.
    total = lambda *_: sum(1 for s in sinks for m in list(s.messages)  # noqa: E731
                           if m.rcpt_tos[0].endswith("@" + dom))
    deadline = time.monotonic() + timeout
    while total() < n and time.monotonic() < deadline:
        for s in sinks:
            s.wait_for(lambda _: total() >= n, 0.1)
    return total()


def statuses(srv, cid):
    """[(status, attempts)] of the campaign's messages, once none is in flight
    (the outcomes are committed a little after the sink has the messages)."""
    def settled():
        rows = db_query(srv.database, "SELECT status, attempts FROM scheduled_messages "
                        "WHERE campaign_id = %s", (cid,))
        return sorted(rows) if all(s not in ("sending", "pending") for s, _ in rows) else None
    return wait_until(settled, 30, what="the campaign's outcomes")


# ---- the API ----


def test_default_egress_and_pool_exist(mc, sinks):
    r = mc.get("/api/v1/egresses", headers=mc.op)
    assert r.status_code == 200, r.text
    [d] = r.json()["data"]
    assert d["name"] == "default" and d["configured"] is True and d["relay"] == sinks[0].url
    r = mc.get("/api/v1/egress-pools/default", headers=mc.op)
    assert r.json()["members"] == [{"egress": "default", "weight": 1}]
    t = mc.make_tenant()
    assert t["egress_pool"] == "default"


def test_crud_and_limits(mc, sinks):
    e = make_egress(mc, "second", "smtp://user:secret@127.0.0.3:2525", ehlo_name="out2.test",
                    source_address="127.0.0.1", max_connections=3)
    assert e["relay"] == "smtp://user:***@127.0.0.3:2525"  # the password is never shown
    assert (e["ehlo_name"], e["source_address"], e["max_connections"]) == \
        ("out2.test", "127.0.0.1", 3)
    r = mc.get("/api/v1/egresses/second", headers=mc.op)
    assert r.json() == e
    r = mc.patch("/api/v1/egresses/second", json={"ehlo_name": None, "max_connections": 5},
                 headers=mc.op)
    assert r.status_code == 200 and r.json()["ehlo_name"] is None
    assert r.json()["max_connections"] == 5 and r.json()["source_address"] == "127.0.0.1"
    error_of(mc.post("/api/v1/egresses", json={"name": "second", "relay": sinks[1].url},
                     headers=mc.op), 409, "conflict")
    # egress_max 3 counts 'default': the third is the last.
    make_egress(mc, "third", sinks[1].url)
    error_of(mc.post("/api/v1/egresses", json={"name": "fourth", "relay": sinks[1].url},
                     headers=mc.op), 409, "limit_exceeded")
    # Pools: members up to egress_pool_members_max (2), weights up to egress_weight_max (10).
    p = make_pool(mc, "split", [("second", 10), ("third", 1)])
    assert p["members"] == [{"egress": "second", "weight": 10}, {"egress": "third", "weight": 1}]
    invalid_field(mc.post("/api/v1/egress-pools", json={"name": "big", "members": [
        {"egress": "default"}, {"egress": "second"}, {"egress": "third"}]}, headers=mc.op),
        "members")
    invalid_field(mc.post("/api/v1/egress-pools", json={"name": "heavy", "members": [
        {"egress": "second", "weight": 11}]}, headers=mc.op), "members[0].weight")
    make_pool(mc, "only3", [("third", 1)])
    error_of(mc.post("/api/v1/egress-pools", json={"name": "p4", "members": [
        {"egress": "third"}]}, headers=mc.op), 409, "limit_exceeded")
    r = mc.patch("/api/v1/egress-pools/only3", json={"members": [{"egress": "default"}]},
                 headers=mc.op)
    assert r.status_code == 200 and r.json()["members"] == [{"egress": "default", "weight": 1}]
    assert [x["name"] for x in mc.get("/api/v1/egress-pools", headers=mc.op).json()["data"]] \
        == ["default", "only3", "split"]
    # In use: an egress in a pool, a pool assigned to a tenant.
    error_of(mc.delete("/api/v1/egresses/second", headers=mc.op), 409, "conflict")
    t = mc.make_tenant(egress_pool="split")
    assert t["egress_pool"] == "split"
    error_of(mc.delete("/api/v1/egress-pools/split", headers=mc.op), 409, "conflict")
    r = mc.patch(f"/api/v1/tenants/{t['id']}", json={"egress_pool": "only3"}, headers=mc.op)
    assert r.status_code == 200 and r.json()["egress_pool"] == "only3"
    assert mc.delete("/api/v1/egress-pools/split", headers=mc.op).status_code == 204
    assert mc.delete("/api/v1/egresses/second", headers=mc.op).status_code == 204
    error_of(mc.get("/api/v1/egresses/second", headers=mc.op), 404, "not_found")
    error_of(mc.get("/api/v1/egress-pools/split", headers=mc.op), 404, "not_found")
    error_of(mc.delete("/api/v1/egress-pools/split", headers=mc.op), 404, "not_found")
    # 'default' is the configuration's.
    error_of(mc.delete("/api/v1/egresses/default", headers=mc.op), 409, "conflict")
    error_of(mc.patch("/api/v1/egresses/default", json={"max_connections": 2}, headers=mc.op),
             409, "conflict")
    error_of(mc.delete("/api/v1/egress-pools/default", headers=mc.op), 409, "conflict")


@pytest.mark.parametrize("body,field", [
    ({"relay": "smtp://127.0.0.3"}, "name"),
    ({"name": "Bad Name", "relay": "smtp://127.0.0.3"}, "name"),
    ({"name": "x" * 64, "relay": "smtp://127.0.0.3"}, "name"),
    ({"name": "ok"}, "relay"),
    ({"name": "ok", "relay": "http://127.0.0.3"}, "relay"),
    ({"name": "ok", "relay": "dir:/tmp/out"}, "relay"),
    ({"name": "ok", "relay": "smtp://127.0.0.3:99999"}, "relay"),
    ({"name": "ok", "relay": "smtp://127.0.0.3", "ehlo_name": "bad name"}, "ehlo_name"),
    ({"name": "ok", "relay": "smtp://127.0.0.3", "ehlo_name": "[300.1.1.1]"}, "ehlo_name"),
    ({"name": "ok", "relay": "smtp://127.0.0.3", "source_address": "host.test"},
     "source_address"),
    ({"name": "ok", "relay": "smtp://127.0.0.3", "max_connections": 0}, "max_connections"),
    ({"name": "ok", "relay": "smtp://127.0.0.3", "max_connections": 10001}, "max_connections"),
    ({"name": "ok", "relay": 5}, "relay"),
])
def test_egress_validation(refusals, body, field):
    invalid_field(refusals.post("/api/v1/egresses", json=body, headers=refusals.op), field)
    assert len(refusals.get("/api/v1/egresses", headers=refusals.op).json()["data"]) == 1


@pytest.mark.parametrize("body,field", [
    ({"members": [{"egress": "default"}]}, "name"),
    ({"name": "p"}, "members"),
    ({"name": "p", "members": []}, "members"),
    ({"name": "p", "members": [5]}, "members[0]"),
    ({"name": "p", "members": [{"egress": "nope"}]}, "members[0].egress"),
    ({"name": "p", "members": [{"egress": "default"}, {"egress": "default"}]},
     "members[1].egress"),
    ({"name": "p", "members": [{"egress": "default", "weight": 0}]}, "members[0].weight"),
    ({"name": "p", "members": [{"egress": "default", "weight": "1"}]}, "members[0].weight"),
])
def test_pool_validation(refusals, body, field):
    before = refusals.get("/api/v1/egress-pools", headers=refusals.op).json()
    invalid_field(refusals.post("/api/v1/egress-pools", json=body, headers=refusals.op), field)
    assert refusals.get("/api/v1/egress-pools", headers=refusals.op).json() == before


def test_tenant_pool_validation(mc):
    invalid_field(mc.post("/api/v1/tenants", json={"name": "x", "egress_pool": "nope"},
                          headers=mc.op), "egress_pool")
    t = mc.make_tenant()
    invalid_field(mc.patch(f"/api/v1/tenants/{t['id']}", json={"egress_pool": "Bad"},
                           headers=mc.op), "egress_pool")
    invalid_field(mc.patch(f"/api/v1/tenants/{t['id']}", json={"egress_pool": 3},
                           headers=mc.op), "egress_pool")


def test_operator_only(mc):
    t = mc.make_tenant()
    k = bearer(mc.make_key(t["id"])["key"])
    for method, path in [("GET", "/api/v1/egresses"), ("GET", "/api/v1/egresses/default"),
                         ("GET", "/api/v1/egress-pools"), ("DELETE", "/api/v1/egress-pools/x")]:
        error_of(mc.request(method, path, headers=k), 403, "forbidden")
    error_of(mc.post("/api/v1/egresses", json={"name": "x", "relay": "smtp://127.0.0.3"},
                     headers=k), 403, "forbidden")
    # A tenant cannot move itself to another pool: the tenant resource is the operator's.
    error_of(mc.patch(f"/api/v1/tenants/{t['id']}", json={"egress_pool": "default"},
                      headers=k), 403, "forbidden")


# ---- where mail leaves ----


def test_each_tenant_leaves_only_through_its_pool(mc, sinks):
    """Tenant 1 stays on default (sink a), tenant 2 gets a pool of egress b
    (sink b) with its own EHLO name and source address, tenant 3 a pool of
    both: each sink sees only the mail of the tenants whose pool has it."""
    a, b = sinks
    make_egress(mc, "b", b.url, wait=True, ehlo_name="egress-b.test",
                source_address="127.0.0.9")
    make_pool(mc, "only-b", [("b", 1)])
    make_pool(mc, "both", [("default", 1), ("b", 1)])
    d1, d2, d3 = (unique_domain(x) for x in ("pool1", "pool2", "pool3"))
    jobs = [sending_tenant(mc, 20, d1), sending_tenant(mc, 20, d2, "only-b"),
            sending_tenant(mc, 40, d3, "both")]
    for t, c in jobs:
        t.do(c["id"], "send")
    for d, n in ((d1, 20), (d2, 20), (d3, 40)):
        assert wait_total(sinks, d, n, 60) == n
    in_a = {m.rcpt_tos[0].split("@")[1] for m in a.all_messages()}
    in_b = {m.rcpt_tos[0].split("@")[1] for m in b.all_messages()}
    assert d2 not in in_a and d1 not in in_b
    assert len(b.messages_for_domain(d2)) == 20 and len(a.messages_for_domain(d1)) == 20
    # Weighted 1:1 over 40: both carry a share (a split this uneven is ~1e-7 likely).
    assert 5 <= len(a.messages_for_domain(d3)) <= 35
    assert len(a.messages_for_domain(d3)) + len(b.messages_for_domain(d3)) == 40
    assert all(m.peer[0] == "127.0.0.9" for m in b.all_messages())
    assert set(b.ehlo_names) == {"egress-b.test"}
    for _, c in jobs:
        assert {s for s, _ in statuses(mc, c["id"])} == {"sent"}
    # A test send leaves through the tenant's pool too.
    t2, c2 = jobs[1]
    r = t2.action(c2["id"], "test", {"to": [f"probe@{d2}"]})
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "sent", r.text
    assert len(b.messages_to(f"probe@{d2}")) == 1 and a.messages_to(f"probe@{d2}") == []


@pytest.mark.slow(10)
def test_a_dead_egress_fails_over_and_comes_back(mc, sinks):
    """Pool {default, dead}: the dead member's share goes to default, nothing
    fails and no attempt is lost to it; once a relay answers on its address,
    it takes its share again."""
    a, _ = sinks
    port = free_port()
    assert mc.wait_for_log("event=relay_unreachable", timeout=0.1) is None
    make_egress(mc, "dead", f"smtp://127.0.0.4:{port}", wait=True)
    make_pool(mc, "failover", [("default", 1), ("dead", 1)])
    dom = unique_domain("failover")
    t, c = sending_tenant(mc, 40, dom, "failover")
    t.do(c["id"], "send")
    assert a.wait_count(40, 60, lambda m: m.rcpt_tos[0].endswith(dom)) == 40
    rows = statuses(mc, c["id"])
    assert {s for s, _ in rows} == {"sent"}
    assert max(n for _, n in rows) == 1  # the refused connections spent no attempt
    assert mc.wait_for_log(f"event=relay_unreachable relay=127.0.0.4:{port}", timeout=1)
    # The member answers again: it gets its share back.
    late = Sink(host="127.0.0.4", port=port).start()
    try:
        # The breaker's probe (at most 5 s apart) finds it; then it is used again.
        assert mc.wait_for_log(f"event=relay_reachable relay=127.0.0.4:{port}", timeout=20)
        dom2 = unique_domain("failback")
        t2, c2 = sending_tenant(mc, 60, dom2, "failover")
        t2.do(c2["id"], "send")
        assert wait_total((a, late), dom2, 60, 60) == 60
        assert len(late.messages_for_domain(dom2)) > 0
        assert {s for s, _ in statuses(mc, c2["id"])} == {"sent"}
    finally:
        late.stop()


@pytest.mark.slow(11)
def test_connection_limit_per_egress_and_site(mc, sinks):
    """A rule for (b, slowsite) of one connection: sink b never sees two
    sessions at once, while the same site through default may use several."""
    a, b = sinks
    make_egress(mc, "b", b.url, wait=True, max_connections=8)
    make_pool(mc, "only-b", [("b", 1)])
    site = unique_domain("connsite")
    doc = mc.get("/api/v1/shaping", headers=mc.op).json()
    doc["domains"][site] = "connsite"
    doc["rules"].append({"egress": "b", "site": "connsite", "max_connections": 1,
                         "max_per_connection": 4})
    assert mc.put("/api/v1/shaping", json=doc, headers=mc.op).status_code == 200
    # The worker reads the rules at each lease sweep (every 5 s).
    assert mc.wait_for_log("event=site_rule egress=b site=connsite max_connections=1 ",
                           timeout=15)
    t, c = sending_tenant(mc, 30, site, "only-b")
    t.do(c["id"], "send")
    assert b.wait_count(30, 60) == 30
    assert b.sessions_open_max == 1
    assert b.sessions_total >= 30 // 4


# ---- several workers ----


@pytest.mark.slow(11)
def test_four_workers_hold_the_site_and_tenant_rates_together(request, store, sinks, tmp_path):
    """A server and four `mailcast worker` processes on one database: a
    tenant at 8 a second whose mail partly goes to a site at 3 a second.
    Across all five processes no 1-second window holds more than the rate
    plus the burst (the rates are counted in the database), for the tenant
    and for the site."""
    a, _ = sinks
    burst = 2
    srv = start_server(request, store, tmp_path, a.url, "--pacing-burst", str(burst))
    site, other = unique_domain("fourw-site"), unique_domain("fourw-other")
    doc = srv.get("/api/v1/shaping", headers=srv.op).json()
    doc["domains"][site] = "fourw"
    doc["rules"].append({"egress": "default", "site": "fourw", "per_second": 3})
    assert srv.put("/api/v1/shaping", json=doc, headers=srv.op).status_code == 200
    workers = []
    for i in range(4):
        w = Worker(tmp_path / f"w{i}", srv.database, a.url,
                   [*FAST, "--pacing-burst", str(burst)], name=f"w{i}")
        request.addfinalizer(w.stop)
        workers.append(w.start())
    t = Tenant(srv)
    t.set_rate_limits(per_second=8, per_minute=100000, per_hour=10000000, per_day=100000000)
    lst = t.make_list(0)
    t.import_emails(lst["id"], [f"s{i}@{site}" for i in range(18)] +
                    [f"o{i}@{other}" for i in range(30)])
    c = t.create(recipient_list_id=lst["id"])
    t.do(c["id"], "send")
    assert a.wait_count(48, 90, lambda m: m.rcpt_tos[0].split("@")[1] in (site, other)) == 48
    site_times = [m.sent for m in a.messages_for_domain(site)]
    all_times = site_times + [m.sent for m in a.messages_for_domain(other)]
    print("site max/s", max_in_window(site_times, 1.0), "tenant max/s",
          max_in_window(all_times, 1.0))
    # +1: a hand-off timer's jitter at a window's edge.
    assert max_in_window(site_times, 1.0) <= 3 + burst + 1
    assert max_in_window(all_times, 1.0) <= 8 + burst + 1
    # The workers shared the sending (not one process doing it all).
    owners = {w.name for w in workers if w.lines("event=delivery_start")}
    assert len(owners) == 4
    assert {s for s, _ in statuses(srv, c["id"])} == {"sent"}


def test_a_changed_egress_is_used_without_a_restart(mc, sinks):
    """PATCH an egress's relay: the worker retires the old pool at its next
    sweep and the tenant's next mail goes to the new relay."""
    a, b = sinks
    make_egress(mc, "moving", b.url, wait=True)
    make_pool(mc, "moving", [("moving", 1)])
    d1 = unique_domain("before")
    t, c = sending_tenant(mc, 5, d1, "moving")
    t.do(c["id"], "send")
    assert b.wait_count(5, 30, lambda m: m.rcpt_tos[0].endswith(d1)) == 5
    r = mc.patch("/api/v1/egresses/moving", json={"relay": a.url}, headers=mc.op)
    assert r.status_code == 200 and r.json()["relay"] == a.url, r.text
    wait_until(lambda: mc.stderr().count("event=egress egress=moving ") >= 2, 15,
               what="the worker's new pool for the egress")
    d2 = unique_domain("after")
    lst = t.make_list(5, domain=d2)
    c2 = t.create(recipient_list_id=lst["id"])
    t.do(c2["id"], "send")
    assert a.wait_count(5, 30, lambda m: m.rcpt_tos[0].endswith(d2)) == 5
    assert b.messages_for_domain(d2) == []
