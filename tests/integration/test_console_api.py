"""The two endpoints the web console added, on both stores, as a client sees
them: GET /api/v1/whoami (who a key is) and GET .../campaigns/{id}/timeline
(messages sent per bucket over the campaign's life, at most
timeline_max_points buckets)."""

import pytest

from campaignhelp import (NO_DELIVERY, Tenant, campaign_server, deliver, is_sqlite, missing_id,
                          wait_until)
from harness import OPERATOR_KEY, ServerError, bearer, db_execute, error_of, parse_time


@pytest.fixture(scope="module")
def server(request, store, tmp_path_factory):
    yield from campaign_server(request, store, tmp_path_factory)


def test_whoami(server):
    r = server.get("/api/v1/whoami", headers=bearer(OPERATOR_KEY))
    assert r.status_code == 200, r.text
    assert r.json() == {"role": "operator", "scopes": ["read", "write"]}

    t = Tenant(server, name="Who & Co")
    r = server.get("/api/v1/whoami", headers=t.h)
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["role"] == "tenant" and me["tenant_id"] == t.id, me
    assert me["tenant_name"] == "Who & Co" and me["scopes"] == ["read", "write"], me
    assert server.get("/api/v1/whoami", headers=t.ro).json()["scopes"] == ["read"]

    error_of(server.get("/api/v1/whoami"), 401, "unauthorized")
    error_of(server.get("/api/v1/whoami", headers=bearer("mck_000000000000_" + "0" * 64)), 401,
             "unauthorized")
    # A suspended tenant's key says so.
    r = server.patch(f"/api/v1/tenants/{t.id}", json={"status": "suspended"}, headers=server.op)
    assert r.status_code == 200, r.text
    error_of(server.get("/api/v1/whoami", headers=t.h), 403, "tenant_suspended")
    assert server.patch(f"/api/v1/tenants/{t.id}", json={"status": "active"},
                        headers=server.op).status_code == 200
    assert server.get("/api/v1/whoami", headers=t.h).status_code == 200
    # The route takes no tenant: another tenant's path is still refused.
    other = Tenant(server)
    error_of(server.get(f"/api/v1/tenants/{other.id}/campaigns", headers=t.h), 404, "not_found")


def started_campaign(server, t, n):
    lst = t.make_list(n=n)
    c = t.create(recipient_list_id=lst["id"])
    t.do(c["id"], "send")
    wait_until(lambda: t.get(c["id"])["materialized"], 15, what="the messages to be created")
    return t.get(c["id"])


def test_timeline(server):
    t = Tenant(server)
    c = t.create()
    r = server.get(t.camp_path(c["id"], "timeline"), headers=t.ro)
    assert r.status_code == 200, r.text
    tl = r.json()
    assert tl == {"campaign_id": c["id"], "status": "draft", "bucket_seconds": 60,
                  "start": None, "end": None, "points": []}, tl

    c = started_campaign(server, t, 10)
    # Six of the ten messages sent now.
    assert deliver(server, c["id"], limit=6) == 6
    r = server.get(t.camp_path(c["id"], "timeline"), headers=t.h)
    tl = r.json()
    assert tl["bucket_seconds"] == 60 and tl["status"] == "sending", tl
    assert parse_time(tl["start"]) == parse_time(c["started_at"]), tl
    assert sum(p["sent"] for p in tl["points"]) == 6, tl
    assert tl["points"][0]["at"] == tl["start"]
    assert 1 <= len(tl["points"]) <= 2, tl

    # Other tenants and unknown campaigns are not found.
    other = Tenant(server)
    error_of(server.get(f"{other.base}/campaigns/{c['id']}/timeline", headers=other.h), 404,
             "not_found")
    error_of(server.get(t.camp_path(missing_id(), "timeline"), headers=t.h), 404, "not_found")


def test_timeline_buckets_widen_past_the_limit(server_factory, store):
    """timeline_max_points at its boundary: a life of 5 minutes in at most 2
    points has buckets of 3 minutes; at 5 points, one minute each."""
    srv = server_factory(args=NO_DELIVERY + ["--timeline-max-points", "2"])
    t = Tenant(srv)
    c = started_campaign(srv, t, 6)
    # The campaign's start and its messages, moved 4.5 minutes back.
    shift_start(srv, c["id"], 270)
    assert deliver(srv, c["id"], limit=2, sent_ago=260) == 2
    assert deliver(srv, c["id"], limit=3) == 3
    tl = srv.get(t.camp_path(c["id"], "timeline"), headers=t.h).json()
    assert tl["bucket_seconds"] == 180 and len(tl["points"]) == 2, tl
    assert [p["sent"] for p in tl["points"]] == [2, 3], tl

    srv5 = server_factory(database=srv.database, args=NO_DELIVERY + ["--timeline-max-points", "5"])
    tl = srv5.get(t.camp_path(c["id"], "timeline"), headers=t.h).json()
    assert tl["bucket_seconds"] == 60 and len(tl["points"]) == 5, tl
    assert sum(p["sent"] for p in tl["points"]) == 5 and tl["points"][0]["sent"] == 2, tl
    assert tl["points"][-1]["sent"] == 3, tl

    # Below the option's minimum the server refuses to start.
    bad = server_factory(database=srv.database, args=["--timeline-max-points", "1"], start=False)
    with pytest.raises(ServerError):
        bad.start(timeout=5)
    assert "timeline_max_points" in bad.stderr(), bad.stderr()


def shift_start(server, cid, seconds):
    if is_sqlite(server):
        db_execute(server.database, "UPDATE campaigns SET started_at = started_at - %s "
                   "WHERE id = %s", (int(seconds * 1_000_000), cid))
    else:
        db_execute(server.database, "UPDATE campaigns SET started_at = started_at - "
                   "make_interval(secs => %s) WHERE id = %s", (seconds, cid))
