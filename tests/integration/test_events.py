"""The event log (issue 11): events written with the changes they record,
GET /events (cursor, filters, order, validation, isolation), a campaign's
messages (GET /campaigns/{id}/messages), and retention.

Every test runs on both stores, on one server per store that delivers to
the dir: outbox (the relay does not matter here; test_webhooks.py uses the
same log through webhooks).
"""

import secrets
import time

import pytest

from campaignhelp import Tenant, db_query, wait_until
from deliveryhelp import FAST
from harness import OPERATOR_KEY, Server, create_database, error_of, invalid_field


@pytest.fixture(scope="module")
def ev(request, store, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f"events-{store}")
    url, drop = create_database(request, store, workdir)
    srv = Server(workdir, url, OPERATOR_KEY,
                 ["--relay", f"dir:{workdir / 'outbox'}", *FAST, "--max-page-size", "200"])
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        drop()


def events(t, **params):
    r = t.server.get(f"{t.base}/events", params=params, headers=t.h)
    assert r.status_code == 200, r.text
    return r.json()


def all_events(t, **params):
    """Every event of the filter, oldest first, walking the cursor 7 at a time."""
    out, after = [], None
    while True:
        page = events(t, order="asc", limit=7, **params, **({"after": after} if after else {}))
        out += page["data"]
        if page["next_after"] is None:
            return out
        assert len(page["data"]) == 7
        after = page["next_after"]


def test_campaign_outcomes_and_transitions_are_logged(ev):
    t = Tenant(ev)
    # One a minute after the burst (5), so the pause right after the send
    # leaves messages pending whatever the claim's timing (at one a second a
    # claim could lease all twelve ahead); lifted before the resume.
    t.set_rate_limits(per_minute=1, per_hour=100000, per_day=1000000)
    lst = t.make_list(12)
    c = t.create(recipient_list_id=lst["id"])
    cid = c["id"]
    t.do(cid, "send")
    t.do(cid, "pause")
    t.wait_materialized(cid)
    # Suppressed after the messages exist, while still pending: the claim suppresses it.
    rows = db_query(ev.database, "SELECT to_address FROM scheduled_messages WHERE "
                    "campaign_id = %s AND status = 'pending' ORDER BY to_address", (cid,))
    assert rows, "every message went before the pause"
    gone = rows[0][0]
    t.suppress(gone)
    t.set_rate_limits(enabled=False)
    t.do(cid, "resume")
    t.wait_status(cid, "completed", timeout=30)

    sent = all_events(t, campaign_id=cid, type="message.sent")
    assert len(sent) == 11
    # Ids in the query are ids whatever their case (SQLite compares text exactly).
    assert len(all_events(t, campaign_id=cid.upper(), type="message.sent")) == 11
    first = events(t, campaign_id=cid, order="asc", limit=1)["data"][0]["id"]
    after_upper = events(t, campaign_id=cid, order="asc", after=first.upper())["data"]
    assert after_upper and first not in [e["id"] for e in after_upper]
    db_sent = {r[0]: r[1] for r in db_query(
        ev.database, "SELECT id, to_address FROM scheduled_messages WHERE campaign_id = %s "
        "AND status = 'sent'", (cid,))}
    assert {e["data"]["message_id"] for e in sent} == set(db_sent)
    for e in sent:
        d = e["data"]
        assert d["campaign_id"] == cid and d["email"] == db_sent[d["message_id"]]
        assert d["smtp_code"] == 250 and d["attempt"] == 1 and d["recipient_id"]
        assert d["relay_queue_id"] and d["message_id_header"]
    sup = all_events(t, campaign_id=cid, type="message.suppressed")
    assert [e["data"]["email"] for e in sup] == [gone]
    # Campaign events in the order of the transitions.
    camp = [e["type"] for e in all_events(t, campaign_id=cid) if e["type"].startswith("campaign.")]
    assert camp == ["campaign.started", "campaign.paused", "campaign.resumed",
                    "campaign.completed"]
    # The suppression: created, and the recipient it unsubscribed.
    by_email = all_events(t, email=gone.upper())
    types = [e["type"] for e in by_email]
    assert "suppression.created" in types and "recipient.unsubscribed" in types
    assert "message.suppressed" in types and "message.sent" not in types
    unsub = next(e for e in by_email if e["type"] == "recipient.unsubscribed")
    assert unsub["data"]["list_id"] == lst["id"] and unsub["data"]["source"] == "manual"
    # Deleting the suppression is an event too.
    r = ev.delete(f"{t.base}/unsubscribes/{gone}", headers=t.h)
    assert r.status_code == 204
    last = events(t, limit=1)["data"][0]
    assert last["type"] == "suppression.deleted" and last["data"]["email"] == gone


def test_cursor_order_and_filters(ev):
    t = Tenant(ev)
    _, c = t.ready(4)
    t.do(c["id"], "send")
    t.wait_status(c["id"], "completed", timeout=30)
    for i in range(9):
        t.suppress(f"s{i}@{secrets.token_hex(3)}.example.com")
    asc = all_events(t)
    assert len(asc) == 4 + 2 + 9
    ids = [e["id"] for e in asc]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    newest = events(t, limit=200)["data"]
    assert [e["id"] for e in newest] == ids[::-1]
    # desc with a cursor continues towards older events
    page = events(t, limit=5)
    more = events(t, limit=5, after=page["next_after"])
    assert [e["id"] for e in page["data"] + more["data"]] == ids[::-1][:10]
    assert len(all_events(t, type="suppression.created")) == 9
    for e in asc:
        assert set(e) == {"id", "type", "created_at", "data"}
        assert len(str(e["data"])) < 20000


@pytest.mark.parametrize("params,field", [
    ({"type": "message.nope"}, "type"), ({"after": "not-an-id"}, "after"),
    ({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"limit": "x"}, "limit"),
    ({"order": "sideways"}, "order"), ({"campaign_id": "123"}, "campaign_id"),
    ({"email": "not an address"}, "email"),
])
def test_event_list_validation(ev, params, field):
    t = Tenant(ev)
    r = ev.get(f"{t.base}/events", params=params, headers=t.h)
    invalid_field(r, field)


def test_limit_boundary(ev):
    t = Tenant(ev)
    for i in range(3):
        t.suppress(f"b{i}@{secrets.token_hex(3)}.example.com")
    assert len(events(t, limit=200)["data"]) == 3
    p = events(t, limit=2)
    assert len(p["data"]) == 2 and p["next_after"] == p["data"][1]["id"]
    assert events(t, limit=3)["next_after"] is not None  # a full page may have more
    assert events(t, limit=4)["next_after"] is None


def test_isolation(ev):
    a, b = Tenant(ev), Tenant(ev)
    _, c = a.ready(2)
    a.do(c["id"], "send")
    a.wait_status(c["id"], "completed", timeout=30)
    assert events(a)["data"]
    assert events(b)["data"] == []
    error_of(ev.get(f"{a.base}/events", headers=b.h), 404, "not_found")
    error_of(ev.get(a.camp_path(c["id"], "messages"), headers=b.h), 404, "not_found")
    # b's own path with a's campaign: not found either
    error_of(ev.get(b.camp_path(c["id"], "messages"), headers=b.h), 404, "not_found")
    assert events(b, campaign_id=c["id"])["data"] == []
    r = ev.get(f"{a.base}/events", headers=a.ro)
    assert r.status_code == 200


def test_campaign_messages(ev):
    t = Tenant(ev)
    lst = t.make_list(6)
    c = t.create(recipient_list_id=lst["id"])
    cid = c["id"]
    # One a minute after the burst (5): the last message still waits when the
    # pause lands, however loaded the machine.
    t.set_rate_limits(per_minute=1, per_hour=1000, per_day=1000)
    t.do(cid, "send")
    t.do(cid, "pause")
    t.wait_materialized(cid)
    # Paused, a pending message stays pending until the resume: suppress one.
    rows = db_query(ev.database, "SELECT to_address FROM scheduled_messages WHERE "
                    "campaign_id = %s AND status = 'pending' ORDER BY to_address", (cid,))
    assert rows, "every message went before the pause"
    first = rows[0][0]
    t.suppress(first)
    t.set_rate_limits(enabled=False)
    t.do(cid, "resume")
    t.wait_status(cid, "completed", timeout=30)
    r = ev.get(t.camp_path(cid, "messages"), params={"limit": 3}, headers=t.h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 6 and len(body["data"]) == 3 and body["limit"] == 3
    r = ev.get(t.camp_path(cid, "messages"), params={"status": "sent"}, headers=t.h)
    sent = r.json()
    assert sent["total"] == 5
    m = sent["data"][0]
    assert m["status"] == "sent" and m["attempts"] == 1 and m["last_smtp_code"] == 250
    assert m["sent_at"] and m["failed_at"] is None and m["relay_queue_id"]
    r = ev.get(t.camp_path(cid, "messages"), params={"email": first.upper()}, headers=t.h)
    one = r.json()
    assert one["total"] == 1 and one["data"][0]["status"] == "suppressed"
    assert one["data"][0]["email"] == first
    invalid_field(ev.get(t.camp_path(cid, "messages"), params={"status": "lost"}, headers=t.h),
                  "status")
    invalid_field(ev.get(t.camp_path(cid, "messages"), params={"email": "@"}, headers=t.h),
                  "email")
    error_of(ev.get(t.camp_path("00000000-0000-4000-8000-000000000000", "messages"),
                    headers=t.h), 404, "not_found")


def test_retention_prunes_old_events(ev):
    t = Tenant(ev)
    t.suppress(f"keep@{secrets.token_hex(3)}.example.com")
    # An event of 31 days ago (its id's leading 48 bits are its milliseconds).
    ms = int((time.time() - 31 * 86400) * 1000)
    h = f"{ms:012x}"
    old_id = f"{h[:8]}-{h[8:]}-7000-8000-{secrets.token_hex(6)}"
    us = ms * 1000
    if ev.database.startswith("sqlite:"):
        from harness import db_execute
        db_execute(ev.database, "INSERT INTO events (id, tenant_id, type, data, created_at) "
                   "VALUES (%s, %s, 'suppression.deleted', '{}', %s)", (old_id, t.id, us))
    else:
        from harness import db_execute
        db_execute(ev.database, "INSERT INTO events (id, tenant_id, type, data, created_at) "
                   "VALUES (%s, %s, 'suppression.deleted', '{}', to_timestamp(%s / 1e6))",
                   (old_id, t.id, us))
    wait_until(lambda: not db_query(ev.database, "SELECT 1 FROM events WHERE id = %s",
                                    (old_id,)), 10, what="the old event pruned")
    assert [e["type"] for e in events(t)["data"]] == ["suppression.created"]


def test_one_click_unsubscribe_is_logged(ev, tmp_path):
    import email
    import email.policy
    import re
    import urllib.parse

    t = Tenant(ev)
    lst = t.make_list(2)
    c = t.create(recipient_list_id=lst["id"])
    t.do(c["id"], "send")
    t.wait_status(c["id"], "completed", timeout=30)
    mid, to = db_query(ev.database, "SELECT id, to_address FROM scheduled_messages WHERE "
                       "campaign_id = %s ORDER BY to_address", (c["id"],))[0]
    outbox = ev.workdir / "outbox"
    msg = email.message_from_bytes((outbox / f"{mid}.eml").read_bytes(),
                                   policy=email.policy.default)
    link = next(x for x in re.findall(r"<([^>]+)>", str(msg["List-Unsubscribe"]))
                if x.startswith("https://"))
    path = urllib.parse.urlsplit(link).path
    r = ev.post(path, data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200, r.text
    got = {e["type"]: e["data"] for e in all_events(t, email=to)}
    assert got["recipient.unsubscribed"]["source"] == "link"
    assert got["recipient.unsubscribed"]["campaign_id"] == c["id"]
    assert got["recipient.unsubscribed"]["list_id"] == lst["id"]
    assert got["suppression.created"]["source"] == "link"
    assert got["suppression.created"]["campaign_id"] == c["id"]
