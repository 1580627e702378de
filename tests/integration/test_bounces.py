"""Bounces and complaints (issue 10) through the pipe command and the API,
on both stores: mailcast sends through an aiosmtpd sink with a bounce
domain, so each message leaves with a VERP envelope sender and the signed
X-Mailcast-Ref header; reports about those messages come back through
`mailcast bounce` (as from an MTA's pipe transport) and through the
provider webhook endpoint.
"""

import re

import pytest

from bouncehelp import arf, dsn, headers_of, pipe, sent_campaign
from campaignhelp import Tenant, wait_until
from deliveryhelp import delivery_args, mail_domain, messages, recipient_status, wait_terminal
from harness import OPERATOR_KEY, Server, create_database

BOUNCE_DOMAIN = "bounces.example.test"
VERP_RE = re.compile(r"^mcb-[a-z2-7]{42}@" + re.escape(BOUNCE_DOMAIN) + "$")


@pytest.fixture(scope="module")
def mc(request, store, sink, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f"bounces-{store}")
    url, drop = create_database(request, store, workdir)
    srv = Server(workdir, url, OPERATOR_KEY,
                 delivery_args(sink.url, "--bounce-domain", BOUNCE_DOMAIN))
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        drop()


def bounces(t, **params):
    r = t.server.get(f"{t.base}/bounces", headers=t.h, params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    return r.json()


def events(t, **params):
    r = t.server.get(f"{t.base}/events", headers=t.h, params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    return r.json()


def suppression_events(t, email):
    """The suppression.created events of an address: one per change of the list."""
    return [e["data"] for e in events(t, type="suppression.created")["data"]
            if e["data"]["email"].lower() == email.lower()]


def unsub(t, email):
    r = t.server.get(f"{t.base}/unsubscribes", headers=t.h, params={"q": email})
    assert r.status_code == 200, r.text
    mine = [u for u in r.json()["data"] if u["email"].lower() == email.lower()]
    return mine[0] if mine else None


def test_verp_sender_and_signed_header(mc, sink):
    t = Tenant(mc)
    _, _, sent = sent_campaign(mc, sink, t, 3)
    senders = set()
    for a, (row, mail_from, raw) in sent.items():
        assert VERP_RE.match(mail_from), mail_from
        ref = mail_from[4:46]
        head = headers_of(raw)
        assert f"\r\nX-Mailcast-Ref: {ref}\r\n" in head, head
        senders.add(mail_from)
    assert len(senders) == 3  # one address per message


def test_pipe_hard_bounce_suppresses_and_second_campaign_skips(mc, sink):
    t = Tenant(mc)
    c, lst, sent = sent_campaign(mc, sink, t, 3)
    gone, kept, _ = sorted(sent)
    row, verp, _ = sent[gone]
    # Delivered-To carries the envelope recipient, as Postfix's pipe adds it.
    msg = b"Delivered-To: " + verp.encode() + b"\r\n" + dsn("postmaster@x.example", gone)
    assert pipe(mc.database, msg)[0] == 0
    assert recipient_status(mc, row["recipient_id"]) == "bounced"
    u = unsub(t, gone)
    assert (u["cause"], u["source"], u["message_id"], u["expires_at"]) == (
        "hard_bounce", "bounce", row["id"], None), u
    assert unsub(t, kept) is None
    recs = bounces(t, email=gone)["data"]
    assert [(b["class"], b["outcome"], b["source"], b["kind"], b["status"]) for b in recs] == [
        ("hard", "suppressed", "pipe", "dsn", "5.1.1")]
    full = t.server.get(f"{t.base}/bounces/{recs[0]['id']}", headers=t.h).json()
    assert "Final-Recipient: rfc822; " + gone in full["raw"] and full["raw_truncated"] is False
    st = t.stats(c["id"])
    assert (st["bounced_hard"], st["bounced_soft"], st["complained"], st["blocked"]) == (1, 0, 0, 0)
    # The event log says so, in the intake's transaction (issue 11).
    ev = [e for e in events(t, type="message.bounced")["data"] if e["data"]["email"] == gone]
    assert len(ev) == 1 and ev[0]["data"]["message_id"] == row["id"], ev
    assert (ev[0]["data"]["bounce_type"], ev[0]["data"]["suppressed"]) == ("hard", True), ev
    # A suppression reported later is announced like one at send time.
    sup = suppression_events(t, gone)
    assert [(x["source"], x["cause"], x["campaign_id"]) for x in sup] == [
        ("bounce", "hard_bounce", c["id"])], sup
    # The same report again (an MTA retrying) changes nothing more.
    assert pipe(mc.database, msg)[0] == 0
    assert t.stats(c["id"])["bounced_hard"] == 1
    assert len(suppression_events(t, gone)) == 1
    # A second campaign to the same list skips the address.
    c2 = t.create(recipient_list_id=lst["id"], from_address=f"news@{mail_domain('from')}")
    t.do(c2["id"], "send")
    assert wait_terminal(t, c2["id"])["status"] == "completed"
    rows2 = messages(mc, c2["id"])
    assert gone not in rows2 and set(rows2) == set(sent) - {gone}, rows2


def test_forged_and_altered_reports_change_nothing(mc, sink):
    t = Tenant(mc)
    _, _, sent = sent_campaign(mc, sink, t, 2)
    a, b = sorted(sent)
    row_a, verp_a, _ = sent[a]
    # A DSN through a's address that names b: a stranger, nobody suppressed.
    assert pipe(mc.database, dsn(verp_a, b), "--recipient", verp_a)[0] == 0
    assert unsub(t, a) is None and unsub(t, b) is None
    assert [x["outcome"] for x in bounces(t, email=b)["data"]] == ["stranger"]
    # An altered reference identifies nothing: kept for the operator only.
    bad = verp_a[:10] + ("a" if verp_a[10] != "a" else "b") + verp_a[11:]
    assert pipe(mc.database, dsn(bad, a), "--recipient", bad)[0] == 0
    assert unsub(t, a) is None
    assert bounces(t, email=a)["total"] == 0
    # Not a bounce at all, and an auto-reply: nothing changes.
    assert pipe(mc.database, b"From: x@example.org\r\nSubject: hi\r\n\r\nhello\r\n",
                "--recipient", verp_a)[0] == 0
    auto = (f"From: <{a}>\r\nTo: {verp_a}\r\nSubject: Out of office\r\n"
            "Auto-Submitted: auto-replied\r\n\r\nAway.\r\n").encode()
    assert pipe(mc.database, auto)[0] == 0
    assert unsub(t, a) is None
    assert sorted((x["kind"], x["class"], x["outcome"]) for x in bounces(t, email=a)["data"]) == [
        ("auto_reply", "auto_reply", "recorded"), ("not_bounce", "undetermined", "recorded")]
    assert recipient_status(mc, row_a["recipient_id"]) == "active"


def test_complaint_by_header_reference_and_block(mc, sink):
    t = Tenant(mc)
    c, _, sent = sent_campaign(mc, sink, t, 2)
    a, b = sorted(sent)
    # A feedback report reaches a plain address; only the returned headers carry the reference.
    report = arf(headers_of(sent[a][2]))
    assert pipe(mc.database, report, "--recipient", "fbl@mailcast.example.test")[0] == 0
    assert unsub(t, a)["cause"] == "complaint"
    assert [x["cause"] for x in suppression_events(t, a)] == ["complaint"]
    ev = events(t, type="message.complained")["data"]
    assert [e["data"]["message_id"] for e in ev] == [sent[a][0]["id"]], ev
    assert recipient_status(mc, sent[a][0]["recipient_id"]) == "complained"
    # A block (policy, 5.7.1) is counted and suppresses nobody.
    block = dsn(sent[b][1], b, status="5.7.1",
                diag="554 5.7.1 Service unavailable; client host blocked using zen.spamhaus.org")
    assert pipe(mc.database, block, "--recipient", sent[b][1])[0] == 0
    assert unsub(t, b) is None and suppression_events(t, b) == []
    st = t.stats(c["id"])
    assert (st["complained"], st["blocked"], st["bounced_hard"]) == (1, 1, 0)


def test_a_delay_warning_is_recorded_and_counts_for_nothing(mc, sink):
    """Action: delayed (RFC 3464 §2.3.3) says the MTA is still trying: the
    message may yet arrive, so it is no soft bounce (a strict-peer review saw
    Postfix's delay warnings counted towards suppression)."""
    t = Tenant(mc)
    c, _, sent = sent_campaign(mc, sink, t, 1)
    (a,) = sent
    warn = dsn(sent[a][1], a, status="4.4.1", action="delayed",
               diag="connect to mx.example.net[192.0.2.1]:25: Connection timed out")
    assert pipe(mc.database, warn)[0] == 0
    recs = bounces(t, email=a)["data"]
    assert [(b["class"], b["outcome"]) for b in recs] == [("soft", "recorded")], recs
    assert t.stats(c["id"])["bounced_soft"] == 0
    assert all(e["data"]["email"] != a for e in events(t, type="message.bounced")["data"])


def test_soft_bounces_suppress_after_the_limit_for_a_while(mc, sink):
    t = Tenant(mc)
    r = t.server.put(f"{t.base}/bounce-policy", headers=t.h,
                     json={"soft_limit": 2, "soft_suppress_days": 5})
    assert r.status_code == 200 and r.json()["soft_limit"] == 2, r.text
    _, lst, sent = sent_campaign(mc, sink, t, 1)
    (a,) = sent
    full = dsn(sent[a][1], a, status="5.2.2", diag="552 5.2.2 Mailbox full")
    assert pipe(mc.database, full)[0] == 0
    assert unsub(t, a) is None
    c2 = t.create(recipient_list_id=lst["id"], from_address=f"news@{mail_domain('from')}")
    t.do(c2["id"], "send")
    assert wait_terminal(t, c2["id"])["status"] == "completed"
    verp2 = wait_until(lambda: [m.mail_from for m in sink.messages
                                if a in m.rcpt_tos and m.mail_from != sent[a][1]], 10)[0]
    assert pipe(mc.database, dsn(verp2, a, status="5.2.2", diag="552 5.2.2 Mailbox full"))[0] == 0
    u = unsub(t, a)
    assert u["cause"] == "soft_bounce" and u["expires_at"] is not None, u
    assert [x["cause"] for x in suppression_events(t, a)] == ["soft_bounce"]


def test_pipe_reports_a_database_failure_as_tempfail(tmp_path):
    db = f"sqlite:{tmp_path}/no/such/dir/mc.db"
    rc, err = pipe(db, dsn("mcb-" + "a" * 42 + "@" + BOUNCE_DOMAIN, "x@example.org"))
    assert rc == 75, err


def test_webhook_endpoint_validation_and_isolation(mc, sink):
    t, other = Tenant(mc), Tenant(mc)
    c, _, sent = sent_campaign(mc, sink, t, 2)
    a, b = sorted(sent)
    path = f"{t.base}/bounces"
    for body, field in [({"email": a}, "type"), ({"email": a, "type": "block"}, "type"),
                        ({"type": "hard"}, "email"), ({"email": "nope", "type": "hard"}, "email"),
                        ({"message_id": "x", "type": "hard"}, "message_id"),
                        ({"email": a, "type": "hard", "status": "550"}, "status"),
                        ({"email": a, "type": "hard", "diagnostic": "x" * 1001}, "diagnostic")]:
        r = mc.post(path, json=body, headers=t.h)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["code"] == "validation_error", r.text
    # Read-only keys may not report; another tenant's key sees nothing of ours.
    assert mc.post(path, json={"email": a, "type": "hard"}, headers=t.ro).status_code == 403
    assert mc.post(path, json={"email": a, "type": "hard"}, headers=other.h).status_code == 404
    r = mc.post(f"{other.base}/bounces", headers=other.h,
                json={"message_id": sent[a][0]["id"], "type": "hard"})
    assert r.status_code == 404, r.text
    assert unsub(t, a) is None
    # By message id: the message's recipient.
    r = mc.post(path, headers=t.h, json={"message_id": sent[a][0]["id"], "type": "complaint"})
    assert r.status_code == 201, r.text
    rec = r.json()
    assert (rec["email"], rec["class"], rec["outcome"], rec["source"], rec["kind"]) == (
        a, "complaint", "suppressed", "api", "api")
    assert unsub(t, a)["cause"] == "complaint"
    # By address: the tenant's address.
    r = mc.post(path, headers=t.h, json={"email": b.upper(), "type": "hard", "status": "5.1.1",
                                         "diagnostic": "550 5.1.1 no such user"})
    assert r.status_code == 201 and r.json()["outcome"] == "suppressed", r.text
    assert unsub(t, b)["cause"] == "hard_bounce"
    # Reading: the tenant's only, filtered; one record with its raw message.
    assert bounces(t, campaign_id=c["id"], **{"class": "complaint"})["total"] == 1
    assert bounces(t, **{"class": "hard"})["total"] == 1
    assert bounces(other)["total"] == 0
    assert mc.get(f"{t.base}/bounces", headers=t.h, params={"class": "x"}).status_code == 422
    assert mc.get(f"{t.base}/bounces", headers=t.h, params={"since": "x"}).status_code == 422
    assert mc.get(f"{t.base}/bounces", headers=t.h,
                  params={"since": "2999-01-01T00:00:00Z"}).json()["total"] == 0
    assert mc.get(f"{t.base}/bounces/{rec['id']}", headers=other.h).status_code == 404
    assert mc.get(f"{other.base}/bounces/{rec['id']}", headers=other.h).status_code == 404
    assert mc.get(f"{t.base}/bounces/{rec['id']}", headers=t.ro).status_code == 200


def test_bounce_policy_validation(mc):
    t = Tenant(mc)
    path = f"{t.base}/bounce-policy"
    r = mc.get(path, headers=t.ro)
    assert r.status_code == 200, r.text
    assert r.json() == {"soft_limit": 3, "soft_window_days": 30, "soft_suppress_days": 30,
                        "bounce_domain": None, "updated_at": None}
    for body, field in [({"soft_limit": 0}, "soft_limit"), ({"soft_limit": 101}, "soft_limit"),
                        ({"soft_window_days": 366}, "soft_window_days"),
                        ({"soft_suppress_days": 0}, "soft_suppress_days"),
                        ({"soft_limit": "3"}, "soft_limit"),
                        ({"bounce_domain": "not a domain"}, "bounce_domain")]:
        r = mc.put(path, json=body, headers=t.h)
        assert r.status_code == 422, (body, r.text)
    # Boundaries are accepted.
    r = mc.put(path, headers=t.h, json={"soft_limit": 100, "soft_window_days": 365,
                                        "soft_suppress_days": 3650,
                                        "bounce_domain": "Bounce.Example.ORG"})
    assert r.status_code == 200, r.text
    assert (r.json()["soft_limit"], r.json()["bounce_domain"]) == (100, "bounce.example.org")
    assert mc.put(path, json={"soft_limit": 1}, headers=t.ro).status_code == 403
    other = Tenant(mc)
    assert mc.get(path, headers=other.h).status_code == 404
    assert mc.get(f"{other.base}/bounce-policy", headers=other.h).json()["soft_limit"] == 3
    r = mc.put(path, json={"bounce_domain": None}, headers=t.h)
    assert r.status_code == 200 and r.json()["bounce_domain"] is None, r.text
