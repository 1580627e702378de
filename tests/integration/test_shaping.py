"""Destination sites and shaping rules (issue 15): the operator's table
(GET/PUT /api/v1/shaping, `--shaping FILE`), the site each message gets when
it is created, and a site's rate shared by every tenant sending to it.
Every test runs on both stores.
"""

import json

import pytest

from campaignhelp import Tenant, db_query
from deliveryhelp import delivery_args, max_in_window, unique_domain
from harness import (OPERATOR_KEY, Server, ServerError, bearer, create_database, error_of,
                     invalid_field, module_server)

BURST = 2


@pytest.fixture(scope="module")
def refusals(request, store, tmp_path_factory, sink):
    """One server per store for the tests whose every request is refused and
    which check that nothing changed: they can share it (a server and a
    database a case cost the suite some 70 server starts)."""
    yield from module_server(request, store, tmp_path_factory, name="refusals",
                             args=delivery_args(sink.url, "--pacing-burst", str(BURST)))


@pytest.fixture
def mc(request, store, sink, tmp_path):
    url, drop = create_database(request, store, tmp_path)
    srv = Server(tmp_path / "srv", url, OPERATOR_KEY,
                 delivery_args(sink.url, "--pacing-burst", str(BURST)))
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        drop()


def shaping(srv):
    r = srv.get("/api/v1/shaping", headers=srv.op)
    assert r.status_code == 200, r.text
    return r.json()


def test_built_in_table(mc):
    sh = shaping(mc)
    d = sh["domains"]
    assert d["gmail.com"] == d["googlemail.com"] == "google"
    assert d["yahoo.com"] == d["aol.com"] == "yahoo"
    assert {d[x] for x in ("outlook.com", "hotmail.com", "live.com", "msn.com")} == {"microsoft"}
    assert {d[x] for x in ("icloud.com", "me.com", "mac.com")} == {"apple"}
    google = [x for x in sh["rules"] if x["site"] == "google"][0]
    assert google["egress"] == "default" and google["per_second"] > 0
    assert set(google) == {"egress", "site", "max_connections", "max_per_connection",
                           "per_second", "per_minute"}


def test_put_replaces_the_table_and_get_reads_it_back(mc):
    doc = {"domains": {"gmail.test": "google", "yahoo.test": "yahoo"},
           "rules": [{"egress": "default", "site": "google", "max_connections": 2,
                      "max_per_connection": 5, "per_second": 3, "per_minute": None},
                     {"egress": "default", "site": "*", "per_minute": 6000}]}
    r = mc.put("/api/v1/shaping", json=doc, headers=mc.op)
    assert r.status_code == 200, r.text
    got = shaping(mc)
    assert got == r.json()
    assert got["domains"] == doc["domains"]
    assert got["rules"] == [
        {"egress": "default", "site": "*", "max_connections": None, "max_per_connection": None,
         "per_second": None, "per_minute": 6000},
        {"egress": "default", "site": "google", "max_connections": 2, "max_per_connection": 5,
         "per_second": 3, "per_minute": None}]


@pytest.mark.parametrize("doc,field", [
    ({"rules": []}, "domains"),
    ({"domains": {}}, "rules"),
    ({"domains": [], "rules": []}, "domains"),
    ({"domains": {"Gmail.com": "google"}, "rules": []}, "domains.Gmail.com"),
    ({"domains": {"a..b": "x"}, "rules": []}, "domains.a..b"),
    ({"domains": {"x" * 254: "x"}, "rules": []}, "domains." + "x" * 254),
    ({"domains": {"ok.test": "Bad Site"}, "rules": []}, "domains.ok.test"),
    ({"domains": {"ok.test": "s" * 64}, "rules": []}, "domains.ok.test"),
    ({"domains": {"ok.test": 5}, "rules": []}, "domains.ok.test"),
    ({"domains": {}, "rules": [5]}, "rules[0]"),
    ({"domains": {}, "rules": [{"site": "x"}]}, "rules[0].egress"),
    ({"domains": {}, "rules": [{"egress": "default"}]}, "rules[0].site"),
    ({"domains": {}, "rules": [{"egress": "default", "site": "x", "per_second": 0}]},
     "rules[0].per_second"),
    ({"domains": {}, "rules": [{"egress": "default", "site": "x", "per_minute": 2147483648}]},
     "rules[0].per_minute"),
    ({"domains": {}, "rules": [{"egress": "default", "site": "x", "max_connections": "2"}]},
     "rules[0].max_connections"),
    ({"domains": {}, "rules": [{"egress": "default", "site": "x"},
                               {"egress": "default", "site": "x"}]}, "rules[1].site"),
], ids=repr)
def test_put_invalid_changes_nothing(refusals, doc, field):
    before = shaping(refusals)
    invalid_field(refusals.put("/api/v1/shaping", json=doc, headers=refusals.op), field)
    assert shaping(refusals) == before


def test_boundaries_are_accepted(mc):
    doc = {"domains": {"x" * 63 + "." + "y" * 63: "s" * 63},
           "rules": [{"egress": "e" * 63, "site": "s" * 63, "per_second": 2147483647,
                      "per_minute": 1, "max_connections": 1, "max_per_connection": 1}]}
    r = mc.put("/api/v1/shaping", json=doc, headers=mc.op)
    assert r.status_code == 200, r.text


def test_operator_only(mc):
    t = mc.make_tenant()
    k = mc.make_key(t["id"])
    error_of(mc.get("/api/v1/shaping", headers=bearer(k["key"])), 403, "forbidden")
    error_of(mc.put("/api/v1/shaping", json={"domains": {}, "rules": []},
                    headers=bearer(k["key"])), 403, "forbidden")
    error_of(mc.get("/api/v1/shaping"), 401, "unauthorized")


def sites(srv, cid):
    rows = db_query(srv.database, "SELECT to_address, site FROM scheduled_messages "
                    "WHERE campaign_id = %s", (cid,))
    return {r[0]: r[1] for r in rows}


def test_each_message_gets_its_site_when_created(mc):
    doc = shaping(mc)
    doc["domains"]["corp.test"] = "corp"
    assert mc.put("/api/v1/shaping", json=doc, headers=mc.op).status_code == 200
    t = Tenant(mc)
    lst = t.make_list(0)
    addrs = ["a@gmail.com", "b@GoogleMail.com", "c@mx.corp.test", "d@corp.test",
             "e@hotmail.com", "f@elsewhere.example"]
    for a in addrs:
        t.add(lst["id"], a)
    c = t.create(recipient_list_id=lst["id"])
    t.do(c["id"], "schedule", {"scheduled_at": "2099-01-01T00:00:00Z"})
    t.wait_materialized(c["id"])
    got = {a.lower(): s for a, s in sites(mc, c["id"]).items()}
    assert got == {"a@gmail.com": "google", "b@googlemail.com": "google",
                   "c@mx.corp.test": "corp", "d@corp.test": "corp",
                   "e@hotmail.com": "microsoft", "f@elsewhere.example": "elsewhere.example"}


def test_a_sites_rate_is_shared_by_tenants_and_spares_other_sites(mc, sink):
    """A site at 4 a second: two tenants' mail to it together keeps the pace,
    while another domain's mail from the same campaigns is not held back."""
    slow, fast = unique_domain("slowsite"), unique_domain("fastsite")
    doc = shaping(mc)
    doc["domains"][slow] = "slowsite"
    doc["rules"].append({"egress": "default", "site": "slowsite", "per_second": 4})
    assert mc.put("/api/v1/shaping", json=doc, headers=mc.op).status_code == 200
    ts = []
    for _ in range(2):
        t = Tenant(mc)
        t.set_rate_limits(enabled=False)
        lst = t.make_list(0)
        t.import_emails(lst["id"], [f"s{i}-{len(ts)}@{slow}" for i in range(12)] +
                        [f"f{i}-{len(ts)}@{fast}" for i in range(40)])
        ts.append((t, t.create(recipient_list_id=lst["id"])))
    for t, c in ts:
        t.do(c["id"], "send")
    assert sink.wait_count(80, 60, lambda m: m.rcpt_tos[0].endswith(fast)) == 80
    slow_now = len(sink.messages_for_domain(slow))
    assert slow_now < 24  # the fast site finished first: the slow one never held it
    assert sink.wait_count(24, 60, lambda m: m.rcpt_tos[0].endswith(slow)) == 24
    times = sorted(m.sent for m in sink.messages_for_domain(slow))
    assert max_in_window(times, 1.0) <= 4 + BURST + 2
    assert times[-1] - times[0] >= (24 - BURST - 1) / 4 * 0.9
    rows = db_query(mc.database, "SELECT attempts FROM scheduled_messages WHERE site = %s",
                    ("slowsite",))
    assert sorted(r[0] for r in rows) == [1] * 24  # waiting spent no attempt


def test_shaping_file_at_start(request, store, sink, tmp_path):
    f = tmp_path / "shaping.json"
    f.write_text(json.dumps({"domains": {"filed.test": "filed"},
                             "rules": [{"egress": "default", "site": "filed",
                                        "per_second": 7}]}))
    url, drop = create_database(request, store, tmp_path)
    srv = Server(tmp_path / "srv", url, OPERATOR_KEY,
                 delivery_args(sink.url, "--shaping", str(f)))
    try:
        srv.start()
        assert shaping(srv) == {"domains": {"filed.test": "filed"},
                                "rules": [{"egress": "default", "site": "filed",
                                           "max_connections": None,
                                           "max_per_connection": None, "per_second": 7,
                                           "per_minute": None}],
                                "automation": []}
    finally:
        srv.stop()
    f.write_text('{"domains": {"x.test": "x"}, "rules": [{"egress": "default"}]}')
    bad = Server(tmp_path / "bad", url, OPERATOR_KEY,
                 delivery_args(sink.url, "--shaping", str(f)))
    with pytest.raises(ServerError):
        bad.start(timeout=5)
    assert "rules[0].site" in bad.stderr_path.read_text()
    drop()


def test_connection_limits_per_site(request, store, sink, tmp_path):
    """A site limited to one connection of three messages: its mail never
    travels on two connections at once, never more than three a connection,
    while another domain uses the worker's other connections."""
    site, other = unique_domain("connsite"), unique_domain("connother")
    f = tmp_path / "shaping.json"
    f.write_text(json.dumps({"domains": {site: "connsite"},
                             "rules": [{"egress": "default", "site": "connsite",
                                        "max_connections": 1, "max_per_connection": 3}]}))
    url, drop = create_database(request, store, tmp_path)
    srv = Server(tmp_path / "srv", url, OPERATOR_KEY,
                 delivery_args(sink.url, "--shaping", str(f), "--smtp-connections", "4"))
    try:
        srv.start()
        t = Tenant(srv)
        t.set_rate_limits(enabled=False)
        lst = t.make_list(0)
        t.import_emails(lst["id"], [f"c{i}@{site}" for i in range(15)] +
                        [f"o{i}@{other}" for i in range(30)])
        c = t.create(recipient_list_id=lst["id"])
        t.do(c["id"], "send")
        assert sink.wait_count(15, 60, lambda m: m.rcpt_tos[0].endswith(site)) == 15
        assert sink.wait_count(30, 60, lambda m: m.rcpt_tos[0].endswith(other)) == 30
        by_peer = {}
        for m in sink.messages_for_domain(site):
            by_peer.setdefault(m.peer, []).append(m.time)
        assert max(len(v) for v in by_peer.values()) <= 3, by_peer
        assert len(by_peer) >= 5
        spans = sorted((min(v), max(v)) for v in by_peer.values())
        for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
            assert a1 <= b0, ("two connections carried the site at once", spans)
        # The other domain's mail is not confined to the site's connection.
        assert not ({m.peer for m in sink.messages_for_domain(other)} & set(by_peer))
    finally:
        srv.stop()
        drop()
