"""Webhooks (issue 11): endpoints (CRUD, validation, the per-tenant limit,
isolation), the SSRF guard (on save and at every connection), delivery
following Standard Webhooks to a real receiver that verifies every
signature (webhookhelp.Receiver), retries, 410, Retry-After, secret
rotation, retry and replay, a slow receiver, and a worker killed with -9.

Every test that touches a database runs on both stores.  The shared server
per store delivers mail to the dir: outbox and may reach 127.0.0.1 over
http (--webhook-allow-http, --webhook-allow-cidr 127.0.0.1/32), with a
retry schedule of 1 s steps.
"""

import collections
import os
import signal
import subprocess
import time

import pytest

from campaignhelp import Tenant, db_query, iso, utcnow, wait_until
from deliveryhelp import FAST
from harness import BIN, OPERATOR_KEY, Server, child_env, create_database, error_of, invalid_field
from webhookhelp import HTTP_ARGS, Receiver, sign, verify

MAX_ENDPOINTS = 3


@pytest.fixture(scope="module")
def wh(request, store, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f"webhooks-{store}")
    url, drop = create_database(request, store, workdir)
    srv = Server(workdir, url, OPERATOR_KEY,
                 ["--relay", f"dir:{workdir / 'outbox'}", *FAST, *HTTP_ARGS,
                  "--webhook-max-endpoints", str(MAX_ENDPOINTS), "--webhook-timeout", "3"])
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        drop()


@pytest.fixture
def receiver():
    made = []

    def make(**kw):
        r = Receiver(**kw).start()
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


def hooks(t):
    return f"{t.base}/webhooks"


def add_hook(t, rc, events=("*",), **fields):
    r = t.server.post(hooks(t), json={"url": rc.url, "events": list(events), **fields},
                      headers=t.h)
    assert r.status_code == 201, r.text
    w = r.json()
    rc.secrets.append(w["secret"])
    return w


def deliveries(t, wid, **params):
    r = t.server.get(f"{hooks(t)}/{wid}/deliveries", params={"limit": 200, **params},
                     headers=t.h)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def run_campaign(t, n):
    big = 2 ** 31 - 1
    t.set_rate_limits(per_minute=big, per_hour=big, per_day=big)
    lst = t.make_list(n)
    c = t.create(recipient_list_id=lst["id"])
    t.do(c["id"], "send")
    return c["id"]


def test_the_published_example_verifies():
    # The specification's test vector, through the receiver's own algorithm.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body) == want
    headers = {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
               "webhook-signature": want}
    assert verify([secret], headers, body, tolerance=10 ** 10)
    assert not verify([secret], headers, body + b" ", tolerance=10 ** 10)


def test_crud_and_validation(wh, receiver):
    t = Tenant(wh)
    rc = receiver()
    w = add_hook(t, rc, events=["message.sent", "campaign.completed"], description="crm")
    assert w["secret"].startswith("whsec_") and len(w["secret"]) == 38
    assert w["events"] == ["message.sent", "campaign.completed"] and w["enabled"] is True
    assert w["description"] == "crm" and w["disabled_reason"] is None
    got = wh.get(f"{hooks(t)}/{w['id']}", headers=t.h).json()
    assert "secret" not in got and got["url"] == rc.url
    lst = wh.get(hooks(t), headers=t.h).json()
    assert lst["total"] == 1 and "secret" not in lst["data"][0]
    r = wh.patch(f"{hooks(t)}/{w['id']}", json={"events": ["*"], "enabled": False,
                                                 "description": None}, headers=t.h)
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["events"] == ["*"] and p["enabled"] is False and p["description"] is None
    for body, field in [({}, "url"), ({"url": ""}, "url"), ({"url": 5}, "url"),
                        ({"url": rc.url, "events": []}, "events"),
                        ({"url": rc.url, "events": ["message.nope"]}, "events"),
                        ({"url": rc.url, "events": ["*", "message.sent"]}, "events"),
                        ({"url": rc.url, "events": ["webhook.test"]}, "events"),
                        ({"url": rc.url, "events": "*"}, "events"),
                        ({"url": rc.url, "enabled": "yes"}, "enabled"),
                        ({"url": rc.url, "description": "x" * 1001}, "description"),
                        ({"url": "ftp://127.0.0.1/x"}, "url"),
                        ({"url": "http://u:p@127.0.0.1/x"}, "url"),
                        ({"url": "127.0.0.1/x"}, "url"),
                        ({"url": "http://127.0.0.1/" + "a" * 2048}, "url")]:
        invalid_field(wh.post(hooks(t), json=body, headers=t.h), field)
    invalid_field(wh.patch(f"{hooks(t)}/{w['id']}", json={"url": "http://10.0.0.1/"},
                           headers=t.h), "url")
    r = wh.delete(f"{hooks(t)}/{w['id']}", headers=t.h)
    assert r.status_code == 204
    error_of(wh.get(f"{hooks(t)}/{w['id']}", headers=t.h), 404, "not_found")
    error_of(wh.delete(f"{hooks(t)}/{w['id']}", headers=t.h), 404, "not_found")


def test_endpoint_limit_boundary(wh, receiver):
    t = Tenant(wh)
    rc = receiver()
    made = [add_hook(t, rc) for _ in range(MAX_ENDPOINTS)]
    error_of(wh.post(hooks(t), json={"url": rc.url}, headers=t.h), 409, "limit_exceeded")
    assert wh.delete(f"{hooks(t)}/{made[0]['id']}", headers=t.h).status_code == 204
    add_hook(t, rc)
    # Another tenant has a limit of its own.
    add_hook(Tenant(wh), rc)


def test_isolation(wh, receiver):
    a, b = Tenant(wh), Tenant(wh)
    rc = receiver()
    w = add_hook(a, rc)
    base = f"{hooks(a)}/{w['id']}"
    for method, path, kw in [("GET", base, {}), ("PATCH", base, {"json": {"enabled": False}}),
                             ("DELETE", base, {}), ("POST", base + "/test", {}),
                             ("POST", base + "/rotate-secret", {}),
                             ("GET", base + "/deliveries", {}),
                             ("POST", base + "/replay", {"json": {"from": iso(utcnow())}}),
                             ("GET", hooks(a), {})]:
        error_of(wh.request(method, path, headers=b.h, **kw), 404, "not_found")
        # b's own path with a's webhook id: not found either
        error_of(wh.request(method, path.replace(a.id, b.id), headers=b.h, **kw)
                 if path != hooks(a) else wh.get(f"{hooks(b)}/{w['id']}", headers=b.h),
                 404, "not_found")
    error_of(wh.post(hooks(a), json={"url": rc.url}, headers=a.ro), 403, "insufficient_scope")


def test_ssrf_refused_without_the_allow_list(server_factory):
    srv = server_factory(args=["--deliver", "0", "--webhook-allow-http", "1"])
    t = Tenant(srv)
    for url in ["http://localhost:9/x", "http://127.0.0.1/x", "http://127.1.2.3/x",
                "http://[::1]/x", "http://[::ffff:127.0.0.1]/x", "http://10.0.0.1/x",
                "http://192.168.1.1/x", "http://172.16.0.1/x", "http://169.254.169.254/x",
                "http://100.64.0.1/x", "http://0.0.0.0/x", "http://[fe80::1]/x",
                "http://[fd00::1]/x", "http://224.0.0.1/x", "http://240.0.0.1/x",
                "https://localhost/x"]:
        invalid_field(srv.post(hooks(t), json={"url": url}, headers=t.h), "url")
    # https only unless the operator allows http.
    srv2 = server_factory(args=["--deliver", "0", "--webhook-allow-cidr", "127.0.0.1/32"])
    t2 = Tenant(srv2)
    err = invalid_field(srv2.post(hooks(t2), json={"url": "http://127.0.0.1:9/x"},
                                  headers=t2.h), "url")
    assert "https" in err["message"]


def test_address_checked_at_every_attempt(request, store, tmp_path, receiver):
    """Saved while 127.0.0.1 was allowed; a sender without the allow list
    refuses the connection at the socket (what a DNS rebinding would meet)."""
    url, drop = create_database(request, store, tmp_path)
    api = Server(tmp_path / "api", url, OPERATOR_KEY, ["--deliver", "0", *HTTP_ARGS])
    sender = Server(tmp_path / "sender", url, OPERATOR_KEY,
                    ["--relay", f"dir:{tmp_path / 'out'}", *FAST, "--webhook-allow-http", "1",
                     "--webhook-retry-schedule", "1", "--webhook-poll-ms", "50", "--idle-poll-max-ms", "400"])
    try:
        api.start()
        sender.start()
        t = Tenant(api)
        rc = receiver()
        w = add_hook(t, rc)
        r = api.post(f"{hooks(t)}/{w['id']}/test", headers=t.h)
        assert r.status_code == 202, r.text
        d = wait_until(lambda: (lambda x: x if x and x[0]["status"] == "failed" else None)(
            deliveries(t, w["id"])), 15, what="the delivery failed")
        assert d[0]["last_error_class"] == "blocked_address" and d[0]["attempts"] == 2
        assert d[0]["last_status_code"] is None
        assert rc.all_hits() == []
    finally:
        sender.stop()
        api.stop()
        drop()


def test_campaign_delivered_once_per_message_and_in_order(wh, receiver):
    t = Tenant(wh)
    rc = receiver()
    w = add_hook(t, rc)
    # 1,000 by default; MAILCAST_WEBHOOK_CAMPAIGN=10000 for the full size.
    n = int(os.environ.get("MAILCAST_WEBHOOK_CAMPAIGN", "1000"))
    cid = run_campaign(t, n)
    t.wait_status(cid, "completed", timeout=120 + n // 50)
    want = n + 2  # one message.sent per message, campaign.started, campaign.completed
    wait_until(lambda: len({h.id for h in rc.ok_hits()}) >= want, 120 + n // 50,
               what="every webhook received")
    hits = rc.all_hits()
    assert all(h.verified for h in hits), [h for h in hits if not h.verified][:1]
    ok = rc.ok_hits()
    sent = [h for h in ok if h.body["type"] == "message.sent"]
    db_sent = {r[0] for r in db_query(wh.database, "SELECT id FROM scheduled_messages WHERE "
                                      "campaign_id = %s AND status = 'sent'", (cid,))}
    assert len(db_sent) == n
    assert {h.body["data"]["message_id"] for h in sent} == db_sent
    # At least once, and no more than the attempts explain.
    attempts = {str(r[0]): r[1] for r in db_query(
        wh.database, "SELECT event_id, attempts FROM webhook_deliveries WHERE endpoint_id = %s",
        (w["id"],))}
    per_id = {}
    for h in hits:
        per_id[h.id] = per_id.get(h.id, 0) + 1
    assert all(per_id[i] <= attempts.get(i, 1) for i in per_id), per_id
    for h in ok:
        assert set(h.body) == {"type", "timestamp", "data"}
        assert len(h.raw) < 20000
    # Campaign events, ordered by their (time-ordered) ids as the log has them.
    camp = sorted((h.id, h.body["type"]) for h in ok if h.body["type"].startswith("campaign."))
    assert [x[1] for x in camp] == ["campaign.started", "campaign.completed"]
    w2 = wh.get(f"{hooks(t)}/{w['id']}", headers=t.h).json()
    assert w2["last_success_at"] and w2["failing_since"] is None


def test_failing_three_times_then_success(wh, receiver):
    t = Tenant(wh)
    rc = receiver(fail_first=3)
    w = add_hook(t, rc)
    r = wh.post(f"{hooks(t)}/{w['id']}/test", headers=t.h)
    assert r.status_code == 202, r.text
    event_id = r.json()["event_id"]
    d = wait_until(lambda: (lambda x: x if x and x[0]["status"] == "succeeded" else None)(
        deliveries(t, w["id"])), 30, what="the delivery succeeded")
    assert d[0]["attempts"] == 4 and d[0]["event_id"] == event_id
    assert d[0]["last_status_code"] == 200 and d[0]["event_type"] == "webhook.test"
    assert isinstance(d[0]["last_latency_ms"], int)
    assert "body" not in d[0] and "response" not in str(d[0])
    hits = rc.all_hits()
    assert [h.status for h in hits] == [500, 500, 500, 200]
    assert {h.id for h in hits} == {event_id}  # webhook-id the same on every attempt
    assert all(h.verified for h in hits)
    assert hits[0].body["data"]["webhook_id"] == w["id"]


def test_gone_disables_the_endpoint(wh, receiver):
    t = Tenant(wh)
    rc = receiver(status=410)
    w = add_hook(t, rc)
    assert wh.post(f"{hooks(t)}/{w['id']}/test", headers=t.h).status_code == 202
    got = wait_until(lambda: (lambda x: x if not x["enabled"] else None)(
        wh.get(f"{hooks(t)}/{w['id']}", headers=t.h).json()), 15, what="disabled")
    assert "410" in got["disabled_reason"]
    assert len(rc.all_hits()) == 1
    d = deliveries(t, w["id"])[0]
    assert d["status"] == "failed" and d["last_status_code"] == 410
    error_of(wh.post(f"{hooks(t)}/{w['id']}/test", headers=t.h), 409, "invalid_state")
    # Re-enabled by the tenant, it receives again.
    rc.status = 200
    r = wh.patch(f"{hooks(t)}/{w['id']}", json={"enabled": True}, headers=t.h)
    assert r.json()["enabled"] and r.json()["disabled_reason"] is None
    assert wh.post(f"{hooks(t)}/{w['id']}/test", headers=t.h).status_code == 202
    wait_until(lambda: rc.ok_hits(), 15, what="received after re-enabling")


def test_retry_after_is_honoured(wh, receiver):
    t = Tenant(wh)
    rc = receiver(status=503, retry_after=3600)
    w = add_hook(t, rc)
    assert wh.post(f"{hooks(t)}/{w['id']}/test", headers=t.h).status_code == 202
    d = wait_until(lambda: (lambda x: x if x and x[0]["attempts"] == 1 and x[0]["status"] ==
                            "pending" and x[0]["last_status_code"] else None)(
        deliveries(t, w["id"])), 15, what="the first attempt recorded")
    from harness import parse_time
    wait = (parse_time(d[0]["next_attempt_at"]) - utcnow()).total_seconds()
    assert 3500 < wait <= 3600, d  # not the 1 s step of the schedule
    w2 = wh.get(f"{hooks(t)}/{w['id']}", headers=t.h).json()
    assert w2["failing_since"] and w2["enabled"]


def test_rotation_signs_with_both_secrets(wh, receiver):
    t = Tenant(wh)
    rc = receiver()
    w = add_hook(t, rc)
    old = rc.secrets[0]
    r = wh.post(f"{hooks(t)}/{w['id']}/rotate-secret", headers=t.h)
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new != old and new.startswith("whsec_") and r.json()["previous_secret_expires_at"]
    rc.secrets = [new]  # a receiver that already switched
    assert wh.post(f"{hooks(t)}/{w['id']}/test", headers=t.h).status_code == 202
    h = wait_until(lambda: rc.ok_hits(), 15, what="received")[0]
    assert h.verified and len(h.signature.split(" ")) == 2
    assert verify([old], {"webhook-id": h.id, "webhook-timestamp": h.timestamp,
                          "webhook-signature": h.signature}, h.raw)
    # Without a grace period the old secret stops signing at once.
    r = wh.post(f"{hooks(t)}/{w['id']}/rotate-secret", json={"grace_seconds": 0}, headers=t.h)
    newer = r.json()["secret"]
    rc.secrets = [newer]
    assert wh.post(f"{hooks(t)}/{w['id']}/test", headers=t.h).status_code == 202
    wait_until(lambda: len(rc.ok_hits()) == 2, 15, what="received")
    h2 = rc.ok_hits()[1]
    assert h2.verified and len(h2.signature.split(" ")) == 1
    invalid_field(wh.post(f"{hooks(t)}/{w['id']}/rotate-secret", json={"grace_seconds": -1},
                          headers=t.h), "grace_seconds")


def test_retry_one_and_replay_a_range(wh, receiver):
    t = Tenant(wh)
    rc = receiver()
    w = add_hook(t, rc, events=["suppression.created"])
    t0 = utcnow()
    for i in range(3):
        t.suppress(f"r{i}@example.com")
    d = wait_until(lambda: (lambda x: x if len(x) == 3 and all(
        y["status"] == "succeeded" for y in x) else None)(deliveries(t, w["id"])), 15,
        what="three delivered")
    assert len(rc.ok_hits()) == 3
    error_of(wh.post(f"{hooks(t)}/{w['id']}/deliveries/{d[0]['id']}/retry", headers=Tenant(wh).h),
             404, "not_found")
    r = wh.post(f"{hooks(t)}/{w['id']}/deliveries/{d[0]['id']}/retry", headers=t.h)
    assert r.status_code == 202, r.text
    wait_until(lambda: len(rc.ok_hits()) == 4, 15, what="the retry received")
    assert rc.ok_hits()[3].id == d[0]["event_id"]
    # Its result recorded (a replay leaves out what still waits for the endpoint).
    wait_until(lambda: all(y["status"] == "succeeded" for y in deliveries(t, w["id"])), 15,
               what="the retry recorded")
    r = wh.post(f"{hooks(t)}/{w['id']}/replay", json={"from": iso(t0)}, headers=t.h)
    assert r.status_code == 202 and r.json()["queued"] == 3, r.text
    wait_until(lambda: len(rc.ok_hits()) == 7, 15, what="the replay received")
    assert {h.id for h in rc.ok_hits()[4:]} == {x["event_id"] for x in d}
    invalid_field(wh.post(f"{hooks(t)}/{w['id']}/replay", json={"from": "yesterday"},
                          headers=t.h), "from")
    invalid_field(wh.post(f"{hooks(t)}/{w['id']}/replay",
                          json={"from": iso(utcnow()), "to": iso(t0)}, headers=t.h), "to")
    error_of(wh.post(f"{hooks(t)}/{w['id']}/deliveries/00000000-0000-4000-8000-000000000000/"
                     "retry", headers=t.h), 404, "not_found")


def test_replays_and_tests_cannot_pile_up(wh, receiver):
    """What still waits for an endpoint is not queued again: a replay of the
    same range queues nothing new, and past five waiting tests another is
    refused (an attacker review queued 620 deliveries with 20 replays)."""
    t = Tenant(wh)
    rc = receiver(status=503, retry_after=3600)  # everything stays pending
    w = add_hook(t, rc, events=["suppression.created"])
    t0 = utcnow()
    for i in range(3):
        t.suppress(f"p{i}@example.com")
    wait_until(lambda: len(deliveries(t, w["id"])) == 3, 15, what="three queued")
    r = wh.post(f"{hooks(t)}/{w['id']}/replay", json={"from": iso(t0)}, headers=t.h)
    assert r.status_code == 202 and r.json()["queued"] == 0, r.text
    for _ in range(5):
        assert wh.post(f"{hooks(t)}/{w['id']}/test", headers=t.h).status_code == 202
    error_of(wh.post(f"{hooks(t)}/{w['id']}/test", headers=t.h), 409, "limit_exceeded")
    assert len(deliveries(t, w["id"])) == 3 + 5


def test_slow_receiver_does_not_slow_mail(wh, receiver):
    t = Tenant(wh)
    rc = receiver(delay=10)
    add_hook(t, rc)
    t0 = time.monotonic()
    cid = run_campaign(t, 300)
    t.wait_status(cid, "completed", timeout=30)
    took = time.monotonic() - t0
    # The mail went out before the first webhook answer came back.
    assert took < 9, took
    assert rc.ok_hits() == []


def start_worker(database, workdir, args):
    out = open(workdir / "worker.log", "ab")
    return subprocess.Popen([BIN, "worker", "--database", database, *args], stdout=out,
                            stderr=out, stdin=subprocess.DEVNULL, env=child_env(OPERATOR_KEY),
                            cwd=workdir)


@pytest.mark.slow(18)
def test_worker_killed_mid_flight_loses_no_event(request, store, tmp_path, receiver):
    url, drop = create_database(request, store, tmp_path)
    api = Server(tmp_path / "api", url, OPERATOR_KEY, ["--deliver", "0", *HTTP_ARGS])
    worker_args = ["--relay", f"dir:{tmp_path / 'out'}", *FAST, *HTTP_ARGS,
                   "--lease-seconds", "4", "--smtp-data-timeout", "1", "--smtp-command-timeout", "1",
                   "--webhook-timeout", "2", "--webhook-endpoint-concurrency", "16"]
    workers = []
    try:
        api.start()
        t = Tenant(api)
        rc = receiver(delay=0.2)
        w = add_hook(t, rc)
        n = 1000
        cid = run_campaign(t, n)
        workers.append(start_worker(url, tmp_path, worker_args))
        wait_until(lambda: len(rc.all_hits()) >= 50, 60, what="webhooks in flight")
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        workers.append(start_worker(url, tmp_path, worker_args))
        t.wait_status(cid, "completed", timeout=120)
        wait_until(lambda: not db_query(url, "SELECT 1 FROM webhook_deliveries WHERE "
                                        "status <> 'succeeded'"), 120,
                   what="every delivery succeeded")
        # The log equals the changes: one message.sent per sent message, none other.
        sent_msgs = {r[0] for r in db_query(url, "SELECT id FROM scheduled_messages WHERE "
                                            "campaign_id = %s AND status = 'sent'", (cid,))}
        ev_msgs = [r[0] for r in db_query(url, "SELECT message_id FROM events WHERE "
                                          "type = 'message.sent' AND campaign_id = %s", (cid,))]
        assert len(sent_msgs) == n and sorted(ev_msgs) == sorted(sent_msgs)
        # Every event arrived, at least once, and no more often than attempted.
        ev_ids = {r[0] for r in db_query(url, "SELECT id FROM events WHERE tenant_id = %s",
                                         (t.id,))}
        got = {}
        for h in rc.all_hits():
            assert h.verified
            got[h.id] = got.get(h.id, 0) + 1
        ok_ids = {h.id for h in rc.ok_hits()}
        assert ev_ids <= ok_ids, len(ev_ids - ok_ids)
        attempts = {str(r[0]): r[1] for r in db_query(
            url, "SELECT event_id, attempts FROM webhook_deliveries WHERE endpoint_id = %s",
            (w["id"],))}
        assert all(got[i] <= attempts[i] for i in got)
        # The kill caught requests in flight: their leases expired and they went again.
        assert max(attempts.values()) >= 2
    finally:
        for p in workers:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        api.stop()
        drop()


def test_one_endpoints_backlog_does_not_hold_back_another(request, store, tmp_path,
                                                           receiver):
    """Tenant A's slow endpoint has a backlog older and deeper than the
    sender's whole concurrency; tenant B's test event, made after it, is
    claimed and answered at once, while most of A's backlog still waits (a
    claim of the oldest due deliveries overall held nothing but A's)."""
    url, drop = create_database(request, store, tmp_path)
    api = Server(tmp_path / "api", url, OPERATOR_KEY, ["--deliver", "0", *HTTP_ARGS])
    sender = Server(tmp_path / "sender", url, OPERATOR_KEY,
                    ["--relay", f"dir:{tmp_path / 'out'}", *FAST, *HTTP_ARGS,
                     "--webhook-concurrency", "8", "--webhook-endpoint-concurrency", "2",
                     "--webhook-timeout", "5"])
    n = 40
    try:
        api.start()
        a, b = Tenant(api), Tenant(api)
        slow_rc, fast_rc = receiver(delay=1.0), receiver()
        add_hook(a, slow_rc, events=["message.sent"])
        wb = add_hook(b, fast_rc, events=["message.sent"])
        cid = run_campaign(a, n)
        sender.start()
        a.wait_status(cid, "completed", timeout=30)
        wait_until(lambda: slow_rc.all_hits(), 10, what="A's endpoint busy")
        r = api.post(f"{hooks(b)}/{wb['id']}/test", headers=b.h)
        assert r.status_code in (200, 201, 202), r.text
        wait_until(lambda: fast_rc.ok_hits(), 10, what="B's test event")
        # Two at a time, a second each: most of A's 40 still wait.
        assert len(slow_rc.all_hits()) < n // 2, len(slow_rc.all_hits())
        assert slow_rc.max_busy <= 2
    finally:
        sender.stop()
        api.stop()
        drop()


@pytest.mark.slow(10)
def test_claims_beyond_the_endpoint_cap_keep_the_cap_and_go_back_on_stop(request, store,
                                                                          tmp_path, receiver):
    """The sender claims up to twice an endpoint's cap and queues what the cap
    does not let start: never more than the cap in flight to the endpoint; on
    stop the queued deliveries go back to pending at once, their claim not
    counted as an attempt; a new sender then delivers everything."""
    url, drop = create_database(request, store, tmp_path)
    api = Server(tmp_path / "api", url, OPERATOR_KEY, ["--deliver", "0", *HTTP_ARGS])
    args = ["--relay", f"dir:{tmp_path / 'out'}", *FAST, *HTTP_ARGS,
            "--webhook-endpoint-concurrency", "2", "--webhook-poll-ms", "50", "--idle-poll-max-ms", "400"]
    sender = Server(tmp_path / "sender", url, OPERATOR_KEY, args)
    n = 60
    try:
        api.start()
        sender.start()
        t = Tenant(api)
        rc = receiver(delay=0.1)
        w = add_hook(t, rc, events=["message.sent"])
        cid = run_campaign(t, n)
        t.wait_status(cid, "completed", timeout=30)

        def held():
            return db_query(url, "SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = %s "
                            "AND status = 'sending'", (w["id"],))[0][0]
        # More claimed (leased) than the cap lets run ...
        wait_until(lambda: held() > 2, 20, interval=0.01, what="a claim beyond the cap")
        wait_until(lambda: len(rc.ok_hits()) >= 10, 20, what="some webhooks answered")
        sender.stop()
        # ... yet never more than the cap in flight to the endpoint.
        assert rc.max_busy == 2, rc.max_busy
        # On stop nothing is left leased, and no delivery counts an attempt it never made.
        assert held() == 0
        rows = db_query(url, "SELECT event_id, attempts, status FROM webhook_deliveries "
                        "WHERE endpoint_id = %s", (w["id"],))
        hits = collections.Counter(h.id for h in rc.all_hits())
        assert len(rows) == n
        assert all(a == hits[str(e)] for e, a, _ in rows), [
            (str(e), a, hits[str(e)]) for e, a, _ in rows if a != hits[str(e)]]
        assert any(s == "pending" for _, _, s in rows)
        # A new sender delivers the rest.
        sender = Server(tmp_path / "sender2", url, OPERATOR_KEY, args)
        sender.start()
        wait_until(lambda: not db_query(url, "SELECT 1 FROM webhook_deliveries WHERE "
                                        "endpoint_id = %s AND status <> 'succeeded'",
                                        (w["id"],)), 60, what="every delivery succeeded")
        assert {h.id for h in rc.ok_hits()} == {str(e) for e, _, _ in rows}
        assert rc.max_busy == 2, rc.max_busy
    finally:
        sender.stop()
        api.stop()
        drop()
