"""The console's pages for bounces, events and webhooks, and a campaign's
messages (issue 13, after issues 10 and 11 landed), in Debian's Chromium
(the Browser of test_console.py), on PostgreSQL (test_console.py's pages
run on SQLite: see there).

A campaign is sent (into a dir: outbox); one of its messages is reported
hard-bounced through the API, another soft-bounced by a real DSN taken in by
`mailcast bounce` (its diagnostic and raw text carry markup, which the pages
must show as text); a second, paced campaign is cancelled part way.  The
tenant then sees: the cancelled campaign's bar showing what was sent of the
total (not 100 %); the bounce classes among a campaign's counts; its
messages filtered by status and address; the bounces with their filters and
one with its raw report; the bounce policy, refused with the API's message
at its field, then changed; the events, newest first, filtered, paged by
cursor, in the browser's time zone.  A webhook endpoint is created in the
page (its secret shown once), tested, a delivery retried, changed, disabled
and enabled, its secret rotated, a range replayed, and deleted; a loopback
receiver gets the signed requests.  A read-only key sees none of the write
controls.  Every page is screenshotted at desktop width and at 375 px, no
page logs a console error, and no request leaves the server's origin.

Screenshots go to $MAILCAST_SCREENSHOTS/pages-<store>/ (default
/tmp/mailcast-console-screenshots).
"""

import math

import pytest

from bouncehelp import dsn, headers_of, pipe
from campaignhelp import Tenant, wait_until
from harness import bearer
from test_console import PROGRESS, ZONE, open_browser, sign_in, sign_out
from webhookhelp import HTTP_ARGS, Receiver

SENT = 60          # more events than the events page shows at once (50)
WRITE_CONTROLS = ("Save policy", "Create endpoint", "Send test", "Rotate secret",
                  "Delete endpoint", "Retry", "Replay", "Save changes")


@pytest.fixture
def receiver():
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def server(server_factory, tmp_path):
    outbox = tmp_path / "outbox"
    srv = server_factory(args=["--relay", f"dir:{outbox}", "--engine-poll-ms", "50", "--idle-poll-max-ms", "400",
                               "--delivery-poll-ms", "50", "--bounce-domain",
                               "bounces.example.test", *HTTP_ARGS])
    srv.outbox = outbox
    return srv


@pytest.fixture
def browser(tmp_path, store):
    yield from open_browser(tmp_path, store, f"pages-{store}")


def rows(b, scope="main"):
    return [tr.text for tr in b.css(f"{scope} .table-wrap tbody tr")]


def set_local_time(b, sel, value):
    """A datetime-local field's value, as the browser's picker would set it."""
    b.d.execute_script("""const e = document.querySelector(arguments[0]);
        e.value = arguments[1];
        e.dispatchEvent(new Event('input', {bubbles: true}));""", sel, value)


def outbox_message(server, email):
    """The raw message mailcast wrote for email."""
    def find():
        for p in server.outbox.glob("*.eml"):
            raw = p.read_bytes()
            if email in headers_of(raw):
                return raw
        return None
    return wait_until(find, 10, what=f"the message to {email}")


@pytest.mark.slow(75)
@pytest.mark.parametrize("store", ["postgres"], indirect=True)
def test_console_bounces_events_webhooks(server, browser, receiver, tmp_path, store):
    from selenium.webdriver.common.keys import Keys   # (selenium is imported once it is known there)
    from selenium.webdriver.support.ui import Select
    b = browser
    b.base = server.base
    t = Tenant(server, name="Acme Mail")
    ro_key = server.make_key(t.id, scopes=["read"], name="viewer")["key"]
    t.set_rate_limits(per_minute=10000, per_hour=100000, per_day=1000000)

    # ---- the data: a sent campaign, two bounces, a cancelled campaign ----
    lst = t.make_list(n=SENT)
    winter = t.create(name="Winter sale", recipient_list_id=lst["id"])
    t.do(winter["id"], "send")
    t.wait_for(winter["id"], lambda c: c["status"] == "completed", 60, "the campaign to complete")
    msgs = server.get(t.camp_path(winter["id"], "messages"), params={"limit": 100},
                      headers=t.h).json()["data"]
    assert len(msgs) == SENT
    hard, soft = sorted(msgs, key=lambda m: m["email"])[:2]
    r = server.post(f"{t.base}/bounces", headers=t.h, json={
        "message_id": hard["id"], "type": "hard", "status": "5.1.1",
        "diagnostic": "550 5.1.1 <b>no such user</b>"})
    assert r.status_code == 201, r.text
    head = headers_of(outbox_message(server, soft["email"]))
    report = dsn("postmaster@bounces.example.test", soft["email"], status="4.2.2",
                 diag="452 4.2.2 <{r}>: <script>alert(1)</script> mailbox full",
                 original_headers=head + "\r\n")
    assert pipe(server.database, report)[0] == 0
    recs = server.get(f"{t.base}/bounces", headers=t.h).json()["data"]
    by_email = {x["email"]: x for x in recs}
    assert set(by_email) == {hard["email"], soft["email"]}, recs
    soft_class = by_email[soft["email"]]["class"]
    assert soft_class in ("soft", "undetermined"), recs

    slow = t.create(name="Slow digest", recipient_list_id=t.make_list(n=40)["id"],
                    rate_limit_per_minute=60)
    t.do(slow["id"], "send")
    t.wait_for(slow["id"], lambda c: c["sent_count"] >= 2, 30, "two messages sent")
    t.do(slow["id"], "cancel")
    t.wait_for(slow["id"], lambda c: c["status"] == "cancelled", 10, "the cancel")
    # The API's progress says "all settled" once the message in flight is.
    wait_until(lambda: t.stats(slow["id"])["progress_percentage"] == 100, 15, what="all settled")
    slow_sent = t.get(slow["id"])["sent_count"]
    assert 2 <= slow_sent < 40

    sign_in(b, t.key)

    # ---- a cancelled campaign shows what was sent, not 100 % ----
    b.go("campaigns", "Campaigns")
    row = [tr for tr in b.css("main tbody tr") if "Slow digest" in tr.text][0]
    bar = row.find_element("css selector", PROGRESS)
    assert f"{slow_sent} of 40 sent" in row.text and "cancelled" in row.text, row.text
    # JavaScript's Math.round: halves up (Python's round takes 12.5 to 12).
    assert int(bar.get_attribute("aria-valuenow")) == math.floor(100 * slow_sent / 40 + 0.5)
    b.page("30-campaigns-with-cancelled")
    b.go(f"campaigns/{slow['id']}", "Slow digest")
    assert int(b.one(PROGRESS).get_attribute("aria-valuenow")) < 100
    assert f"{slow_sent} of 40 messages were sent; the other {40 - slow_sent} never will be" \
        in b.text("main"), b.text("main")
    b.page("31-campaign-cancelled")

    # ---- a campaign's counts and messages ----
    b.go(f"campaigns/{winter['id']}", "Winter sale")
    counts = b.text("main section")
    assert "Hard bounces\n1" in counts and "Soft bounces\n1" in counts, counts
    b.wait(lambda: len(rows(b, "section[aria-labelledby=messages-h]")) == 50, "the messages")
    Select(b.one("#mf-status")).select_by_visible_text("failed")
    b.wait(lambda: "No message matches." in b.text("section[aria-labelledby=messages-h]"),
           "no failed message")
    Select(b.one("#mf-status")).select_by_visible_text("any")
    b.fill("#mf-email", hard["email"])
    b.button("Find").click()
    b.wait(lambda: len(rows(b, "section[aria-labelledby=messages-h]")) == 1, "one message")
    found = rows(b, "section[aria-labelledby=messages-h]")[0]
    assert hard["email"] in found and "sent hard bounce reported" in found, found
    b.d.execute_script("arguments[0].scrollIntoView()", b.one("#messages-h"))
    b.page("32-campaign-messages")

    # ---- bounces: the list, its filters, one with its raw report ----
    b.go("bounces", "Bounces")
    got = rows(b)
    assert len(got) == 2 and soft["email"] in got[0] and hard["email"] in got[1], got  # newest first
    assert "<b>no such user</b>" in got[1]                  # markup shown as text
    assert not b.css("main td b") and not b.css("main td script")
    assert "EST" in got[0] or "EDT" in got[0], got   # the browser's zone
    b.page("33-bounces")
    Select(b.one("#bf-class")).select_by_value("hard")
    b.wait(lambda: len(rows(b)) == 1 and hard["email"] in rows(b)[0], "the hard bounce")
    Select(b.one("#bf-class")).select_by_value("")
    Select(b.one("#bf-campaign")).select_by_visible_text("Slow digest")
    b.wait(lambda: "No bounce matches these filters." in b.text("main"), "no bounce of the other")
    Select(b.one("#bf-campaign")).select_by_visible_text("Winter sale")
    b.wait(lambda: len(rows(b)) == 2, "both bounces of the campaign")
    b.fill("#bf-email", soft["email"]).send_keys(Keys.ENTER)   # by keyboard
    b.wait(lambda: len(rows(b)) == 1 and soft["email"] in rows(b)[0], "the soft bounce")
    set_local_time(b, "#bf-since", "2099-01-01T00:00")
    b.button("Apply").click()
    b.wait(lambda: "No bounce matches these filters." in b.text("main"), "nothing since 2099")
    b.go(f"bounces?campaign_id={winter['id']}", "Bounces")   # the campaign page's link
    b.wait(lambda: len(rows(b)) == 2, "the campaign's bounces")
    b.css("main tbody tr a")[0].click()
    b.wait(lambda: soft["email"] in b.h1(), "the bounce's page")
    raw = b.one("pre.raw")
    assert "Final-Recipient: rfc822; " + soft["email"] in raw.text
    assert "<script>alert(1)</script>" in raw.text and not b.css("pre.raw *"), raw.text[:300]
    assert "Winter sale" in b.text("main .details")
    b.page("34-bounce-detail")

    # ---- the bounce policy: the API's refusal at the field, then a change ----
    b.go("bounce-policy", "Bounce policy")
    assert "once 3 of them fall within 30 days" in b.text("main"), b.text("main")
    refused = server.put(f"{t.base}/bounce-policy", json={"soft_limit": 0}, headers=t.h).json()
    b.fill("#soft_limit", "0")
    b.button("Save policy").click()
    err = b.wait(lambda: b.css(".field.invalid .field-error"), "the error at the field")[0]
    assert refused["error"]["message"] in err.text, (err.text, refused)
    assert err.find_element("xpath", "..").find_element("tag name", "input") \
        .get_attribute("id") == "soft_limit"
    assert b.one("#soft_limit").get_attribute("aria-invalid") == "true"
    assert "soft_limit-error" in b.one("#soft_limit").get_attribute("aria-describedby")
    b.page("35-bounce-policy-error", allow=("status of 422",))
    b.fill("#soft_limit", "5")
    b.fill("#bounce_domain", "bounces.acme.example")
    b.button("Save policy").click()
    b.wait(lambda: "Saved." in b.text("main"), "the saved policy")
    pol = server.get(f"{t.base}/bounce-policy", headers=t.h).json()
    assert (pol["soft_limit"], pol["bounce_domain"]) == (5, "bounces.acme.example"), pol
    b.wait(lambda: "once 5 of them" in b.text("main"), "the new policy's words")
    b.page("36-bounce-policy")

    # ---- events: newest first, filters, cursor paging ----
    api_first = server.get(f"{t.base}/events", params={"limit": 50}, headers=t.h).json()
    assert api_first["next_after"]
    b.go("events", "Events")
    assert f"Time ({ZONE})" in b.text("main thead")

    def shown():
        # One script, not two WebDriver round trips a row.
        return [tuple(r) for r in b.d.execute_script(
            "return [...document.querySelectorAll('main tbody tr')].map(tr => "
            "[tr.cells[1].innerText.trim(), tr.cells[2].innerText.trim()])")]

    def expected(page):
        return [(e["type"], e["data"].get("email") or "") for e in page["data"]]

    b.wait(lambda: shown() == expected(api_first), "the newest events")
    assert "EST" in rows(b)[0] or "EDT" in rows(b)[0]
    b.page("37-events")
    b.button("Older").click()
    api_second = server.get(f"{t.base}/events", params={"limit": 50, "after": api_first["next_after"]},
                            headers=t.h).json()
    b.wait(lambda: shown() == expected(api_second), "the older events")
    b.button("Newer").click()
    b.wait(lambda: shown() == expected(api_first), "the newest events again")
    b.button("Older").click()
    b.wait(lambda: shown() == expected(api_second), "the older events again")
    b.button("Show the newest").click()
    b.wait(lambda: shown() == expected(api_first), "the newest events from the button")
    def api_events(**q):
        return server.get(f"{t.base}/events", params=q, headers=t.h).json()

    Select(b.one("#ef-type")).select_by_visible_text("message.bounced")
    want = expected(api_events(type="message.bounced"))
    assert sorted(e for _, e in want) == sorted([hard["email"], soft["email"]]), want
    b.wait(lambda: shown() == want, "the two bounce events")
    assert "<b>no such user</b>" in b.text("main table") and not b.css("main td b")
    Select(b.one("#ef-type")).select_by_visible_text("any")
    b.fill("#ef-email", hard["email"])
    b.button("Apply").click()
    want = expected(api_events(email=hard["email"]))
    assert {"message.sent", "message.bounced"} <= {x for x, _ in want}, want
    b.wait(lambda: shown() == want, "the address's log")
    b.page("38-events-filtered")
    b.go(f"events?campaign_id={slow['id']}", "Events")
    want = expected(api_events(campaign_id=slow["id"]))
    assert "campaign.cancelled" in [x for x, _ in want], want
    b.wait(lambda: shown() == want, "the cancelled campaign's events")

    # ---- webhooks: create (the secret once), test, retry, change, rotate, replay, delete ----
    b.go("webhooks", "Webhooks")
    assert "No endpoints" in b.text("main")
    b.fill("#url", receiver.url)
    b.fill("#description", "CRM sync")
    b.one("#wh-all").send_keys(Keys.SPACE)   # the checkboxes by keyboard
    for ev in ("message.sent", "message.bounced"):
        [c for c in b.css("fieldset.picker .checks label") if c.text.strip() == ev][0] \
            .find_element("css selector", "input").send_keys(Keys.SPACE)
    b.button("Create endpoint").click()
    secret = b.wait(lambda: b.text("#new-secret"), "the new endpoint's secret")
    assert secret.startswith("whsec_") and "shown only once" in b.text(".secret")
    receiver.secrets.append(secret)
    hooks = server.get(f"{t.base}/webhooks", headers=t.h).json()["data"]
    assert len(hooks) == 1 and hooks[0]["events"] == ["message.sent", "message.bounced"], hooks
    assert hooks[0]["description"] == "CRM sync" and "secret" not in hooks[0]
    wid = hooks[0]["id"]
    b.button("Copy secret").click()
    b.wait(lambda: "Copied" in b.buttons(), "the copy confirmation")
    b.page("39-webhook-created")
    b.button("I have copied it").click()
    b.wait(lambda: not b.css("#new-secret"), "the secret to be gone")
    assert "whsec_" not in b.text("body") and "CRM sync" in b.text("main table")
    b.page("40-webhooks")
    b.go(f"webhooks/{wid}", receiver.url)
    assert "whsec_" not in b.text("body")
    assert "message.sent, message.bounced" in b.text("main .details")
    b.button("Send test").click()
    b.wait(lambda: [h for h in receiver.ok_hits() if h.body["type"] == "webhook.test"],
           "the test at the receiver")
    b.wait(lambda: rows(b) and "succeeded" in rows(b)[0], "the test's delivery")
    assert receiver.ok_hits()[0].verified
    b.button("Retry").click()
    b.wait(lambda: len([h for h in receiver.ok_hits() if h.body["type"] == "webhook.test"]) == 2,
           "the retried test")
    tests = [h for h in receiver.ok_hits() if h.body["type"] == "webhook.test"]
    assert tests[0].id == tests[1].id   # the same webhook-id
    b.wait(lambda: rows(b) and "succeeded" in rows(b)[0], "the retry's row")
    b.page("41-webhook-deliveries")
    # A URL the API refuses: its message at the field.
    b.one("main details.card summary").click()
    refused = server.patch(f"{t.base}/webhooks/{wid}", json={"url": "ftp://hooks.example.com/x"},
                           headers=t.h).json()
    b.fill("#url", "ftp://hooks.example.com/x")
    b.button("Save changes").click()
    err = b.wait(lambda: b.css(".field.invalid .field-error"), "the refused URL")[0]
    assert refused["error"]["message"] in err.text, (err.text, refused)
    b.page("42-webhook-url-refused", allow=("status of 422",))
    b.fill("#url", receiver.url)
    b.fill("#description", "CRM sync v2")
    b.one("#wh-enabled").click()
    b.button("Save changes").click()
    b.wait(lambda: "disabled" in b.h1(), "the disabled endpoint")
    got = server.get(f"{t.base}/webhooks/{wid}", headers=t.h).json()
    assert (got["enabled"], got["description"]) == (False, "CRM sync v2"), got
    assert "Send test" not in [x.text for x in b.css("main button") if x.is_enabled()]
    if not b.css("main details.card[open]"):
        b.one("main details.card summary").click()
    b.one("#wh-enabled").click()
    b.button("Save changes").click()
    b.wait(lambda: "enabled" in b.h1(), "the enabled endpoint")
    b.button("Rotate secret").click()
    b.confirm()
    rotated = b.wait(lambda: b.text("#new-secret"), "the rotated secret")
    assert rotated.startswith("whsec_") and rotated != secret
    b.wait(lambda: "Old secret signs until" in b.text("main .details"), "the grace period")
    receiver.secrets.append(rotated)
    b.page("43-webhook-rotated")
    b.button("I have copied it").click()
    before = server.get(f"{t.base}/webhooks/{wid}/deliveries", headers=t.h).json()["total"]
    set_local_time(b, "#replay-from", "2020-01-01T00:00")
    b.button("Replay").click()
    done = b.wait(lambda: b.text("main p.ok"), "the replay's answer")
    queued = int(done.split()[0].replace(",", ""))
    want = SENT + t.get(slow["id"])["sent_count"] + 2   # every message.sent, the two bounces
    assert queued == want, (done, want)
    b.wait(lambda: server.get(f"{t.base}/webhooks/{wid}/deliveries", headers=t.h).json()[
        "total"] == before + queued, "the replayed deliveries")
    b.d.execute_script("arguments[0].scrollIntoView()", b.one("#replay-h"))
    b.page("44-webhook-replayed")

    # ---- 375 px wide ----
    b.narrow((("bounces", "Bounces", "50-narrow-bounces"),
              (f"bounces/{by_email[soft['email']]['id']}", soft["email"], "51-narrow-bounce"),
              ("bounce-policy", "Bounce policy", "52-narrow-policy"),
              ("events", "Events", "53-narrow-events"),
              ("webhooks", "Webhooks", "54-narrow-webhooks"),
              (f"webhooks/{wid}", receiver.url, "55-narrow-webhook"),
              (f"campaigns/{winter['id']}", "Winter sale", "56-narrow-campaign-messages", "#messages-h"),
              (f"campaigns/{slow['id']}", "Slow digest", "57-narrow-cancelled")))
    sign_out(b)

    # ---- a read-only key sees no write controls ----
    sign_in(b, ro_key)
    for route, heading in (("bounces", "Bounces"), (f"bounces/{by_email[hard['email']]['id']}", hard["email"]),
                           ("bounce-policy", "Bounce policy"), ("events", "Events"),
                           ("webhooks", "Webhooks"), (f"webhooks/{wid}", receiver.url),
                           (f"campaigns/{winter['id']}", "Winter sale")):
        b.go(route, heading)
        shown_buttons = set(b.buttons())
        for write in WRITE_CONTROLS:
            assert write not in shown_buttons, (route, write, shown_buttons)
        assert not b.css("main details.card") and not b.css("#soft_limit") and not b.css("#url"), route
        b.page("60-read-only-" + route.replace("/", "-")[:30])
    r = server.post(f"{t.base}/webhooks/{wid}/test", headers=bearer(ro_key))
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    sign_out(b)

    # ---- delete the endpoint (as the writer) ----
    sign_in(b, t.key)
    b.go(f"webhooks/{wid}", receiver.url)
    b.button("Delete endpoint").click()
    b.confirm()
    b.wait(lambda: "No endpoints" in b.text("main"), "the empty webhooks page")
    assert server.get(f"{t.base}/webhooks/{wid}", headers=t.h).status_code == 404
    sign_out(b)
    b.check_logs("signed out")

    # ---- no page logged an error, and nothing left the origin ----
    assert not b.errors, b.errors
    ours = b.same_origin(server.base)
    assert any("/events" in u for u in ours) and any("/bounces" in u for u in ours)
