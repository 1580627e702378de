"""The campaign lifecycle: draft -> scheduled -> sending <-> paused ->
cancelled (and completed/failed once every message is done), the 409 for
every transition that is not allowed, materialisation of one message per
active, unsuppressed recipient in the background (in batches, exactly once,
also under concurrent requests, also for 100,000 recipients), cancellation of
pending messages, and the statistics endpoint.

There is no delivery yet: messages stay pending while a campaign is
'sending'; campaignhelp.deliver() plays the delivery worker where a test
needs finished messages."""

import datetime
import threading
import time

import pytest
import requests

from campaignhelp import (CAMPAIGN_FIELDS, accepted_of, NO_DELIVERY, Tenant, close_to,
                          db_query, deliver, emails, force_recipient_active, future, iso,
                          message_count, message_rows, message_status_counts,
                          is_sqlite, set_campaign_scheduled_at, utcnow, wait_until)
from harness import error_of, invalid_field, parse_time


# The shared module server (conftest.py), without delivery.
SERVER_ARGS = NO_DELIVERY

ALLOWED = {
    "schedule": {"draft": "scheduled"},
    "send": {"draft": "sending", "scheduled": "sending"},
    "pause": {"sending": "paused"},
    "resume": {"paused": "sending"},
    "cancel": {"scheduled": "cancelled", "sending": "cancelled", "paused": "cancelled"},
}
STATES = ["draft", "scheduled", "sending", "paused", "cancelled", "completed", "failed"]


def action_body(action):
    return {"scheduled_at": future(3600)} if action == "schedule" else None


# ---- the state machine ----


@pytest.mark.parametrize("state", STATES)
def test_transition_matrix(server, state):
    t = Tenant(server)
    c = t.campaign_in(state)
    assert c["status"] == state
    for action, moves in ALLOWED.items():
        if state in moves:
            continue
        r = t.action(c["id"], action, action_body(action))
        err = error_of(r, 409, "invalid_state")
        assert err["status"] == state, (action, err)
        assert action in err["message"] and state in err["message"], err
    after = t.get(c["id"])
    for k in ("status", "scheduled_at", "started_at", "completed_at", "name"):
        assert after[k] == c[k], k

    for action, moves in ALLOWED.items():
        if state not in moves:
            continue
        fresh = t.campaign_in(state)
        r = t.action(fresh["id"], action, action_body(action))
        got = r.json()
        if action in ("send", "schedule"):  # 202: the work happens later
            got = accepted_of(r, t.camp_path(fresh["id"]))
            assert got["campaign_id"] == fresh["id"]
        else:
            assert r.status_code == 200, (action, r.text)
            assert set(got) == CAMPAIGN_FIELDS
            assert got["id"] == fresh["id"]
        assert got["status"] == moves[state], (state, action, got["status"])
        now = t.get(fresh["id"])
        assert now["status"] == moves[state]
        # A second identical request is refused with the new status.
        if moves[state] != state:
            err = error_of(t.action(fresh["id"], action, action_body(action)), 409,
                           "invalid_state")
            assert err["status"] == moves[state]


def test_lifecycle_actions_on_unknown_campaign(server):
    t = Tenant(server)
    for action in ALLOWED:
        error_of(t.action("00000000-0000-4000-8000-000000000000", action,
                          action_body(action)), 404, "not_found")
        error_of(t.action("nope", action, action_body(action)), 404, "not_found")


def test_full_lifecycle_timestamps(server):
    t = Tenant(server)
    _, c = t.ready(4)
    when = utcnow() + datetime.timedelta(hours=1)
    s = t.do(c["id"], "schedule", {"scheduled_at": iso(when)})
    assert s["status"] == "scheduled"
    assert parse_time(s["scheduled_at"]) == when
    assert s["started_at"] is None and s["completed_at"] is None

    before = utcnow()
    x = t.do(c["id"], "send")
    assert x["status"] == "sending"
    started = x["started_at"]
    assert started is not None and close_to(started, before, 5)
    assert close_to(x["scheduled_at"], before, 5)  # send means now

    time.sleep(0.05)
    p = t.do(c["id"], "pause")
    assert p["status"] == "paused" and p["started_at"] == started
    time.sleep(0.05)
    r = t.do(c["id"], "resume")
    assert r["status"] == "sending"
    assert r["started_at"] == started  # not overwritten on resume
    p = t.do(c["id"], "pause")
    r = t.do(c["id"], "resume")
    assert r["started_at"] == started
    t.wait_materialized(c["id"])
    k = t.do(c["id"], "cancel")
    assert k["status"] == "cancelled"
    assert k["started_at"] == started
    assert k["completed_at"] is not None
    assert parse_time(k["completed_at"]) >= parse_time(started)
    assert t.get(c["id"]) == k


# ---- scheduling ----


def test_schedule_then_materialise(server):
    """One message per active recipient of the list, none for unsubscribed,
    bounced, complained or suppressed recipients; total_recipients counts
    after suppression."""
    t = Tenant(server)
    other_tenant = Tenant(server)
    lst = t.make_list()
    good = emails(5, "good.example.com")
    t.import_emails(lst["id"], good)
    for status in ("unsubscribed", "bounced", "complained"):
        x = t.add(lst["id"], f"{status}@skip.example.com")
        t.set_recipient_status(lst["id"], x["id"], status)
    t.add(lst["id"], "suppressed@skip.example.com")
    assert t.suppress("suppressed@skip.example.com").status_code == 201
    # Active in the list but on the suppression list (added behind the API's back).
    forced = t.add(lst["id"], "forced@skip.example.com")
    assert t.suppress("forced@skip.example.com").status_code == 201
    force_recipient_active(server, forced["id"])
    # Another list of the same tenant, and another tenant's suppression list: no effect.
    t.make_list(3)
    assert other_tenant.suppress(good[0]).status_code == 201

    c = t.create(recipient_list_id=lst["id"])
    when = future(3600)
    r = t.action(c["id"], "schedule", {"scheduled_at": when})
    s = accepted_of(r, t.camp_path(c["id"]))
    assert s["status"] == "scheduled" and parse_time(s["scheduled_at"]) == parse_time(when)
    assert "scheduled_at" in s["next"]

    m = t.wait_materialized(c["id"])
    assert m["status"] == "scheduled"  # materialised ahead of time, not started
    assert m["total_recipients"] == 5
    assert m["pending_count"] == 5
    for k in ("sending_count", "sent_count", "cancelled_count", "suppressed_count"):
        assert m[k] == 0, k
    rows = message_rows(server, c["id"])
    assert sorted(a for _, a, _ in rows) == sorted(good)
    assert {s for _, _, s in rows} == {"pending"}
    members = {x["email"]: x["id"] for x in
               server.get(t.rcpt_path(lst["id"]), params={"limit": 100},
                          headers=t.h).json()["data"]}
    assert sorted(rid for rid, _, _ in rows) == sorted(members[e] for e in good)
    st = t.stats(c["id"])
    assert (st["total_recipients"], st["pending_count"], st["materialized"]) == (5, 5, True)
    assert st["started_at"] is None


def test_scheduled_campaign_starts_when_due(server):
    t = Tenant(server)
    _, c = t.ready(3)
    when = utcnow() + datetime.timedelta(seconds=2)
    s = t.do(c["id"], "schedule", {"scheduled_at": iso(when)})
    assert s["status"] == "scheduled"
    assert parse_time(s["scheduled_at"]) == when
    # Not before its time.
    time.sleep(max(0.0, (when - utcnow()).total_seconds() - 0.6))
    early = t.get(c["id"])
    assert early["status"] == "scheduled", early
    assert early["started_at"] is None
    # And within a few seconds of it.
    x = wait_until(lambda: (lambda g: g if g["status"] == "sending" else None)(t.get(c["id"])),
                   timeout=(when - utcnow()).total_seconds() + 4, what="the start")
    started = parse_time(x["started_at"])
    assert started >= when, (x["started_at"], iso(when))
    assert (started - when).total_seconds() < 4
    assert x["scheduled_at"] == s["scheduled_at"]
    assert t.wait_materialized(c["id"])["pending_count"] == 3


def test_schedule_defaults_to_the_campaigns_time(server):
    t = Tenant(server)
    when = future(5400)
    _, c = t.ready(2, scheduled_at=when)
    s = t.do(c["id"], "schedule")
    assert parse_time(s["scheduled_at"]) == parse_time(when)
    _, c2 = t.ready(2, scheduled_at=when)
    s2 = t.do(c2["id"], "schedule", {"scheduled_at": None})
    assert parse_time(s2["scheduled_at"]) == parse_time(when)
    _, c3 = t.ready(2, scheduled_at=when)
    s3 = t.do(c3["id"], "schedule", {})
    assert parse_time(s3["scheduled_at"]) == parse_time(when)


def test_schedule_time_in_the_body_wins(server):
    t = Tenant(server)
    _, c = t.ready(2, scheduled_at=future(5400))
    when = future(9000)
    s = t.do(c["id"], "schedule", {"scheduled_at": when})
    assert parse_time(s["scheduled_at"]) == parse_time(when)
    assert parse_time(t.get(c["id"])["scheduled_at"]) == parse_time(when)


def test_schedule_without_any_time_means_now(server):
    t = Tenant(server)
    _, c = t.ready(2)
    before = utcnow()
    s = t.do(c["id"], "schedule")
    assert s["status"] in ("scheduled", "sending")
    assert close_to(s["scheduled_at"], before, 5)
    x = t.wait_status(c["id"], "sending", timeout=5)
    assert close_to(x["started_at"], before, 5)


def test_schedule_when_the_campaigns_time_has_passed(server):
    t = Tenant(server)
    _, c = t.ready(2, scheduled_at=future(60))
    set_campaign_scheduled_at(server, c["id"], utcnow() - datetime.timedelta(minutes=5))
    invalid_field(t.action(c["id"], "schedule"), "scheduled_at")
    assert t.get(c["id"])["status"] == "draft"
    s = t.do(c["id"], "schedule", {"scheduled_at": future(600)})
    assert s["status"] == "scheduled"


@pytest.mark.parametrize("value", ["2020-01-01T00:00:00Z", "next week", "2030-13-01T00:00:00Z",
                                   12345, ["2030-01-01T00:00:00Z"]], ids=repr)
def test_schedule_bad_time(server, value):
    t = Tenant(server)
    _, c = t.ready(2)
    invalid_field(t.action(c["id"], "schedule", {"scheduled_at": value}), "scheduled_at")
    after = t.get(c["id"])
    assert after["status"] == "draft" and after["scheduled_at"] is None


def test_leaving_draft_needs_active_recipients(server):
    t = Tenant(server)
    no_list = t.create()
    empty = t.make_list()
    c_empty = t.create(recipient_list_id=empty["id"])
    inactive = t.make_list()
    for i, status in enumerate(("unsubscribed", "bounced", "complained")):
        x = t.add(inactive["id"], f"in{i}@example.com")
        t.set_recipient_status(inactive["id"], x["id"], status)
    t.add(inactive["id"], "sup@example.com")
    assert t.suppress("sup@example.com").status_code == 201
    c_inactive = t.create(recipient_list_id=inactive["id"])
    for c in (no_list, c_empty, c_inactive):
        for action in ("schedule", "send"):
            invalid_field(t.action(c["id"], action, action_body(action)), "recipient_list_id")
        after = t.get(c["id"])
        assert after["status"] == "draft" and after["materialized"] is False
        assert message_count(server, c["id"]) == 0


def test_schedule_and_send_return_at_once(server):
    t = Tenant(server)
    _, c = t.ready(3)
    t0 = time.monotonic()
    r = t.action(c["id"], "send")
    assert r.status_code == 202 and time.monotonic() - t0 < 2
    t.wait_materialized(c["id"])


# ---- send, pause, resume, cancel ----


def test_send_overrides_a_future_time(server):
    t = Tenant(server)
    _, c = t.ready(2, scheduled_at=future(7200))
    before = utcnow()
    x = t.do(c["id"], "send")
    assert x["status"] == "sending"
    assert close_to(x["scheduled_at"], before, 5) and close_to(x["started_at"], before, 5)


def test_send_a_scheduled_campaign_keeps_one_set_of_messages(server):
    t = Tenant(server)
    _, c = t.ready(6)
    t.do(c["id"], "schedule", {"scheduled_at": future(3600)})
    t.wait_materialized(c["id"])
    x = t.do(c["id"], "send")
    assert x["status"] == "sending" and x["started_at"] is not None
    server.wait_engine_rounds(2)  # the engine has looked again
    got = t.get(c["id"])
    assert got["total_recipients"] == 6 and got["pending_count"] == 6
    assert message_count(server, c["id"]) == 6


def test_pause_and_resume_keep_messages(server):
    t = Tenant(server)
    _, c = t.ready(5)
    t.do(c["id"], "send")
    m = t.wait_materialized(c["id"])
    assert m["pending_count"] == 5
    p = t.do(c["id"], "pause")
    assert p["pending_count"] == 5 and p["total_recipients"] == 5
    server.wait_engine_rounds(2)  # the engine has looked again
    assert t.get(c["id"])["status"] == "paused"  # the engine leaves it alone
    r = t.do(c["id"], "resume")
    assert r["started_at"] == m["started_at"]
    server.wait_engine_rounds(2)  # the engine has looked again
    got = t.get(c["id"])
    assert got["status"] == "sending" and got["total_recipients"] == 5
    assert message_count(server, c["id"]) == 5
    assert message_status_counts(server, c["id"]) == {"pending": 5}


@pytest.mark.parametrize("state", ["scheduled", "sending", "paused"])
def test_cancel_cancels_every_pending_message(server, state):
    t = Tenant(server)
    n = 7
    _, c = t.ready(n)
    if state == "scheduled":
        t.do(c["id"], "schedule", {"scheduled_at": future(3600)})
    else:
        t.do(c["id"], "send")
    m = t.wait_materialized(c["id"])
    assert m["pending_count"] == n
    if state == "paused":
        t.do(c["id"], "pause")
    k = t.do(c["id"], "cancel")
    assert k["status"] == "cancelled"
    assert k["cancelled_count"] == k["total_recipients"] == n
    assert k["pending_count"] == 0
    assert k["progress_percentage"] == 100
    assert k["completed_at"] is not None
    assert message_status_counts(server, c["id"]) == {"cancelled": n}
    st = t.stats(c["id"])
    assert (st["cancelled_count"], st["pending_count"], st["total_recipients"]) == (n, 0, n)
    assert st["estimated_completion_at"] is None
    assert st["completed_at"] == k["completed_at"]
    server.wait_engine_rounds(2)  # the engine has looked again
    assert t.get(c["id"])["status"] == "cancelled"


def test_cancel_leaves_finished_messages_alone(server):
    t = Tenant(server)
    _, c = t.ready(6)
    t.do(c["id"], "send")
    t.wait_materialized(c["id"])
    assert deliver(server, c["id"], "sent", limit=2) == 2
    assert deliver(server, c["id"], "failed", limit=1) == 1
    k = t.do(c["id"], "cancel")
    assert (k["sent_count"], k["failed_count"], k["cancelled_count"], k["pending_count"]) == (
        2, 1, 3, 0)
    assert message_status_counts(server, c["id"]) == {"sent": 2, "failed": 1, "cancelled": 3}


def test_cancel_during_materialisation_leaves_nothing_pending(server_factory):
    # Small batches, so the cancel most likely lands between two of them.
    srv = server_factory(args=NO_DELIVERY + ["--materialize-batch", "500"])
    t = Tenant(srv)
    n = 20000
    _, c = t.ready(n)
    t.do(c["id"], "send")
    wait_until(lambda: t.get(c["id"])["total_recipients"] > 0, timeout=30,
               what="the first batch")
    k = t.do(c["id"], "cancel")
    assert k["status"] == "cancelled"
    assert k["pending_count"] == 0 and k["cancelled_count"] == k["total_recipients"]

    def settled():
        a = t.get(c["id"])
        srv.wait_engine_rounds(2)  # the engine has looked again
        b = t.get(c["id"])
        return b if a == b else None

    got = wait_until(settled, timeout=30, what="the engine to leave the campaign alone")
    assert got["status"] == "cancelled"
    assert got["pending_count"] == 0
    assert 0 < got["cancelled_count"] == got["total_recipients"] <= n
    assert message_count(srv, c["id"], "pending") == 0
    assert message_count(srv, c["id"]) == got["total_recipients"]


def test_completed_when_every_message_is_done(server):
    t = Tenant(server)
    _, c = t.ready(4)
    t.do(c["id"], "send")
    t.wait_materialized(c["id"])
    deliver(server, c["id"], "bounced", limit=1)
    deliver(server, c["id"], "sent")
    done = t.wait_status(c["id"], "completed")
    assert done["completed_at"] is not None
    assert parse_time(done["completed_at"]) >= parse_time(done["started_at"])
    assert done["progress_percentage"] == 100
    assert (done["sent_count"], done["bounced_count"]) == (3, 1)
    assert done["recipient_count"] == done["total_recipients"] == 4
    # No field that cannot move: nothing tells delivered from sent, nothing tracks opens.
    assert not {"delivered_count", "opened_count", "clicked_count"} & set(done)
    st = t.stats(c["id"])
    assert st["status"] == "completed" and st["completed_at"] == done["completed_at"]
    assert st["estimated_completion_at"] is None
    assert st["progress_percentage"] == 100


def test_an_idle_server_backs_off_and_a_send_still_goes_out(server_factory, tmp_path):
    """Idle, the engine's rounds space out from --engine-poll-ms (20) to
    --idle-poll-max-ms (800): gaps of half a second appear, where the poll
    alone makes them 20 ms.  A send then wakes the engine, whose messages
    wake the delivery worker: the campaign goes out and completes."""
    srv = server_factory(args=["--relay", f"dir:{tmp_path / 'outbox'}", "--engine-poll-ms", "20",
                               "--delivery-poll-ms", "20", "--idle-poll-max-ms", "800"])
    seen = {"n": srv.engine_rounds(), "at": time.monotonic(), "gaps": []}

    def spaced():
        n, now = srv.engine_rounds(), time.monotonic()
        if n != seen["n"]:
            seen["gaps"].append(now - seen["at"])
            seen["n"], seen["at"] = n, now
        return any(g >= 0.5 for g in seen["gaps"])
    wait_until(spaced, 15, what=lambda: f"an idle gap between rounds: {seen['gaps'][-5:]}")
    t = Tenant(srv)
    _, c = t.ready(3)
    t.do(c["id"], "send")
    t.wait_status(c["id"], "completed")
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 3


def test_failed_when_every_message_failed(server):
    t = Tenant(server)
    c = t.campaign_in("failed", n=3)
    assert c["failed_count"] == 3 and c["completed_at"] is not None
    assert c["progress_percentage"] == 100


# ---- concurrency ----


def race(server, t, cid, action, body, n=8):
    barrier = threading.Barrier(n)
    results = [None] * n

    def go(i):
        with requests.Session() as s:
            barrier.wait()
            kw = {"json": body} if body is not None else {}
            results[i] = s.post(server.url(t.camp_path(cid, action)), headers=t.h, timeout=60,
                                **kw)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return results


@pytest.mark.parametrize("action,status", [("schedule", "scheduled"), ("send", "sending")])
def test_concurrent_requests_make_one_set_of_messages(server, action, status):
    t = Tenant(server)
    n = 40
    _, c = t.ready(n)
    results = race(server, t, c["id"], action, action_body(action))
    codes = sorted(r.status_code for r in results)
    assert codes == [202] + [409] * (len(results) - 1), [r.text for r in results]
    for r in results:
        if r.status_code == 409:
            assert error_of(r, 409, "invalid_state")["status"] == status
        else:
            assert r.json()["status"] == status
    m = t.wait_materialized(c["id"])
    assert m["status"] == status
    server.wait_engine_rounds(2)  # the engine has looked again
    st = t.stats(c["id"])
    assert st["total_recipients"] == n and st["pending_count"] == n
    assert message_count(server, c["id"]) == n
    distinct = db_query(server.database,
                        "SELECT COUNT(DISTINCT recipient_id) FROM scheduled_messages "
                        "WHERE campaign_id = %s", (c["id"],))[0][0]
    assert distinct == n


def test_concurrent_pause_resume_cancel(server):
    t = Tenant(server)
    _, c = t.ready(5)
    t.do(c["id"], "send")
    t.wait_materialized(c["id"])
    results = race(server, t, c["id"], "pause", None)
    assert sorted(r.status_code for r in results) == [200] + [409] * 7
    results = race(server, t, c["id"], "cancel", None)
    assert sorted(r.status_code for r in results) == [200] + [409] * 7
    for r in results:
        if r.status_code == 409:
            assert r.json()["error"]["status"] == "cancelled"
    got = t.get(c["id"])
    assert got["status"] == "cancelled" and got["cancelled_count"] == 5


# ---- materialisation in batches ----


@pytest.mark.parametrize("batch", [1, 7])
def test_materialise_in_small_batches(server_factory, batch):
    srv = server_factory(
        args=NO_DELIVERY + ["--materialize-batch", str(batch), "--engine-poll-ms", "50"])
    t = Tenant(srv)
    lst = t.make_list()
    addrs = emails(53, "batch.example.com")
    t.import_emails(lst["id"], addrs)
    members = {x["email"]: x["id"] for x in
               srv.get(t.rcpt_path(lst["id"]), params={"limit": 100}, headers=t.h).json()["data"]}
    excluded = set(addrs[::5])
    for i, a in enumerate(sorted(excluded)):
        if i % 2:
            t.set_recipient_status(lst["id"], members[a], "bounced")
        else:
            assert t.suppress(a).status_code == 201
    c = t.create(recipient_list_id=lst["id"])
    t.do(c["id"], "send")
    m = t.wait_materialized(c["id"], timeout=60)
    expected = sorted(a for a in addrs if a not in excluded)
    assert m["total_recipients"] == len(expected) == m["pending_count"]
    rows = message_rows(srv, c["id"])
    assert sorted(a for _, a, _ in rows) == expected
    assert sorted(r for r, _, _ in rows) == sorted(members[a] for a in expected)
    assert "event=materialized" in srv.stderr()


def materialized_at(srv, campaign_id):
    """When the engine finished the campaign's messages (Unix seconds)."""
    if is_sqlite(srv):
        return db_query(srv.database, "SELECT materialized_at FROM campaigns WHERE id = %s",
                        (campaign_id,))[0][0] / 1e6
    return float(db_query(srv.database, "SELECT EXTRACT(EPOCH FROM materialized_at) FROM "
                          "campaigns WHERE id = %s", (campaign_id,))[0][0])


@pytest.mark.slow(12)
def test_materialise_100000_recipients(server_factory):
    srv = server_factory(args=NO_DELIVERY)
    t = Tenant(srv)
    lst = t.make_list()
    n = 100000

    def rows():
        yield b"email,name\n"
        chunk = []
        for i in range(n):
            chunk.append(f"member{i:06d}@big.example.com,Member {i}\n")
            if len(chunk) == 5000:
                yield "".join(chunk).encode()
                chunk = []
        if chunk:
            yield "".join(chunk).encode()

    r = srv.post(t.rcpt_path(lst["id"]) + "/import", data=rows(),
                 headers={**t.h, "Content-Type": "text/csv"}, timeout=300)
    assert r.status_code == 201, r.text
    assert r.json()["imported"] == n
    c = t.create(recipient_list_id=lst["id"])
    r = t.action(c["id"], "send")
    answered = time.time()
    assert accepted_of(r, t.camp_path(c["id"]))["status"] == "sending"
    # The API stays responsive while the engine works.
    assert t.stats(c["id"])["status"] == "sending"
    m = t.wait_materialized(c["id"], timeout=180)
    # The send did not wait for the messages: they were all made after its
    # answer (the server's clock is this machine's; about 2 s of work here,
    # so no request's timing can make this pass or fail by itself).
    assert materialized_at(srv, c["id"]) > answered
    assert m["total_recipients"] == n and m["pending_count"] == n
    st = t.stats(c["id"])
    assert (st["total_recipients"], st["pending_count"], st["materialized"]) == (n, n, True)
    assert message_count(srv, c["id"]) == n
    distinct = db_query(srv.database,
                        "SELECT COUNT(DISTINCT recipient_id), COUNT(DISTINCT to_address) "
                        "FROM scheduled_messages WHERE campaign_id = %s", (c["id"],))[0]
    assert tuple(distinct) == (n, n)


# ---- statistics ----


def test_stats_of_a_draft(server):
    t = Tenant(server)
    c = t.create()
    st = t.stats(c["id"])
    assert st["campaign_id"] == c["id"] and st["status"] == "draft"
    assert st["total_recipients"] == 0 and st["materialized"] is False
    assert st["recipient_count"] == 0
    for k in ("pending_count", "sending_count", "sent_count", "bounced_count", "failed_count",
              "cancelled_count", "suppressed_count", "sent", "bounced", "failed",
              "sent_last_minute"):
        assert st[k] == 0, k
    assert st["progress_percentage"] == 0
    assert st["estimated_completion_at"] is None
    assert st["started_at"] is None and st["completed_at"] is None
    # The tenant's default limits (100/min, 5000/h, 50000/day): the day is tightest.
    assert st["effective_rate_per_minute"] == pytest.approx(34.72)


BIG = {"per_minute": 1000000, "per_hour": 100000000, "per_day": 1000000000}


@pytest.mark.parametrize("tenant,campaign,expected", [
    ({}, {}, 34.72),
    ({}, {"rate_limit_per_minute": 10}, 10.0),
    ({}, {"rate_limit_per_hour": 600}, 10.0),
    ({}, {"rate_limit_per_minute": 100, "rate_limit_per_hour": 1200}, 20.0),
    ({}, {"rate_limit_per_minute": 30, "rate_limit_per_hour": 6000}, 30.0),
    ({**BIG, "per_minute": 5}, {"rate_limit_per_minute": 10}, 5.0),
    ({**BIG, "per_hour": 120}, {"rate_limit_per_minute": 10}, 2.0),
    ({**BIG, "per_day": 1440}, {"rate_limit_per_hour": 6000}, 1.0),
    ({"per_minute": 1000, "per_hour": 6000, "per_day": 1000000}, {}, 100.0),
    (BIG, {"rate_limit_per_minute": 500}, 500.0),
    (BIG, {}, 694444.44),
    ({"enabled": False}, {}, None),
    ({"enabled": False}, {"rate_limit_per_hour": 90}, 1.5),
    ({"enabled": False, "per_minute": 1}, {"rate_limit_per_minute": 50}, 50.0),
], ids=lambda x: repr(x)[:40])
def test_effective_rate_is_the_tightest_limit(server, tenant, campaign, expected):
    t = Tenant(server)
    if tenant:
        t.set_rate_limits(**tenant)
    c = t.create(**campaign)
    rate = t.stats(c["id"])["effective_rate_per_minute"]
    if expected is None:
        assert rate is None
    else:
        assert rate == pytest.approx(expected, abs=0.006)


def test_estimated_completion_of_a_scheduled_campaign(server):
    t = Tenant(server)
    t.set_rate_limits(enabled=False)
    _, c = t.ready(3, rate_limit_per_minute=60)
    when = utcnow() + datetime.timedelta(hours=2)
    t.do(c["id"], "schedule", {"scheduled_at": iso(when)})
    t.wait_materialized(c["id"])
    st = t.stats(c["id"])
    assert st["effective_rate_per_minute"] == 60
    # Three messages at one a second, starting at the scheduled time.
    assert parse_time(st["estimated_completion_at"]) == when + datetime.timedelta(seconds=3)


def test_estimated_completion_while_sending(server):
    t = Tenant(server)
    t.set_rate_limits(enabled=False)
    _, c = t.ready(10, rate_limit_per_hour=60)  # one a minute
    t.do(c["id"], "send")
    t.wait_materialized(c["id"])
    before = utcnow()
    st = t.stats(c["id"])
    eta = parse_time(st["estimated_completion_at"])
    assert before + datetime.timedelta(minutes=10) <= eta + datetime.timedelta(seconds=1)
    assert eta <= utcnow() + datetime.timedelta(minutes=10, seconds=1)
    deliver(server, c["id"], "sent", limit=4)
    st = t.stats(c["id"])
    assert st["pending_count"] == 6
    assert close_to(st["estimated_completion_at"], utcnow() + datetime.timedelta(minutes=6), 2)


def test_estimated_completion_is_null_without_a_rate(server):
    t = Tenant(server)
    t.set_rate_limits(enabled=False)
    _, c = t.ready(3)
    t.do(c["id"], "send")
    t.wait_materialized(c["id"])
    st = t.stats(c["id"])
    assert st["effective_rate_per_minute"] is None
    assert st["estimated_completion_at"] is None


def test_progress_and_sent_last_minute(server):
    t = Tenant(server)
    _, c = t.ready(8)
    t.do(c["id"], "send")
    t.wait_materialized(c["id"])
    assert deliver(server, c["id"], "sent", limit=2) == 2
    assert deliver(server, c["id"], "sent", limit=1, sent_ago=120) == 1
    assert deliver(server, c["id"], "sent", limit=1) == 1
    assert deliver(server, c["id"], "failed", limit=1) == 1
    st = t.stats(c["id"])
    assert st["status"] == "sending"
    assert (st["pending_count"], st["sent_count"], st["failed_count"], st["bounced_count"]) == (
        3, 4, 1, 0)
    # The seed's names say the same as the canonical ones.
    assert (st["sent"], st["failed"], st["bounced"]) == (4, 1, 0)
    assert st["total_recipients"] == st["recipient_count"] == 8
    assert st["sent_last_minute"] == 3  # three sent now; not the old one
    assert st["progress_percentage"] == pytest.approx(62.5)
    got = t.get(c["id"])
    assert got["progress_percentage"] == pytest.approx(62.5)
    assert (got["pending_count"], got["sent_count"], got["failed_count"]) == (3, 4, 1)
    assert st["started_at"] == got["started_at"] and st["completed_at"] is None
    eta = parse_time(st["estimated_completion_at"])
    rate = st["effective_rate_per_minute"]
    assert close_to(eta, utcnow() + datetime.timedelta(minutes=3 / rate), 3)


def test_progress_is_rounded_to_hundredths(server):
    t = Tenant(server)
    _, c = t.ready(3)
    t.do(c["id"], "send")
    t.wait_materialized(c["id"])
    deliver(server, c["id"], "sent", limit=1)
    assert t.stats(c["id"])["progress_percentage"] == pytest.approx(33.33)
    deliver(server, c["id"], "sent", limit=1)
    assert t.stats(c["id"])["progress_percentage"] == pytest.approx(66.67)
