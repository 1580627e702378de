"""The public one-click unsubscribe link (RFC 8058) and campaign test sends.

Every message carries its recipient's link, public_url + /u/ + token, in
the List-Unsubscribe header and wherever the templates use
{{unsubscribe_url}}.  GET /u/{token} shows a page and changes nothing;
POST /u/{token} with List-Unsubscribe=One-Click (form-urlencoded or
multipart) suppresses the address at once, without key, cookie or
redirect, idempotently; a token that does not verify answers a 404 page
and changes nothing.  An unsubscribe in the middle of a campaign stops the
message still waiting for that address.

POST .../campaigns/{id}/test sends the rendered campaign to a few
addresses now, through the relay, outside the queue and the statistics.

The servers deliver to a dir: outbox (the module's tmp directory) and put
a public_url that is not their own address in mail (their port is chosen
at start); requests go to the server with the link's path.
"""

import base64
import email
import email.policy
import random
import re
import time
import urllib.parse

import pytest
import requests

from campaignhelp import (NIL_UUID, Tenant, db_query, decode_token, message_rows, missing_id,
                          working_link_token)
from harness import error_of, invalid_field, module_server

PUBLIC = "https://mail.example.test"
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
TEXT_BODY = "Hi {{name}} ({{attributes.plan | default:\"none\"}})\nUnsubscribe: {{unsubscribe_url}}\n"
HTML_BODY = "<p>Hi {{name}}</p><a href=\"{{{unsubscribe_url}}}\">Unsubscribe</a>"


@pytest.fixture(scope="module")
def server(request, store, tmp_path_factory):
    """One delivering server per store for the module, writing to a dir:
    outbox (in its work directory, its cwd); every test makes its own
    tenant.  Fast polling keeps waits short."""
    for srv in module_server(request, store, tmp_path_factory,
                             ["--relay", "dir:./outbox", "--public-url", PUBLIC,
                              "--engine-poll-ms", "50", "--idle-poll-max-ms", "400", "--delivery-poll-ms", "50"],
                             name="unsub"):
        srv.outbox = srv.workdir / "outbox"
        yield srv


# ---- helpers ----


def link_path(url):
    """The path of an unsubscribe link (checked to be public_url + /u/ + a token)."""
    u = urllib.parse.urlsplit(url)
    assert f"{u.scheme}://{u.netloc}" == PUBLIC, url
    assert re.fullmatch(r"/u/[A-Za-z0-9_-]{87}", u.path), url
    assert not u.query and not u.fragment, url
    return u.path


def token_of(url):
    return link_path(url)[len("/u/"):]


def public(server):
    """A fresh session with no key, no cookies: what a mail provider or a
    browser brings to the link."""
    s = requests.Session()
    s.trust_env = False
    return s


def post_link(server, path, session=None, **kw):
    kw.setdefault("timeout", 10)
    kw.setdefault("allow_redirects", False)
    return (session or public(server)).post(server.url(path), **kw)


def get_link(server, path, session=None, **kw):
    kw.setdefault("timeout", 10)
    kw.setdefault("allow_redirects", False)
    return (session or public(server)).get(server.url(path), **kw)


def is_html(resp):
    return resp.headers.get("Content-Type", "").startswith("text/html")


def unsubs(t):
    r = t.server.get(f"{t.base}/unsubscribes", headers=t.h, params={"limit": 1000})
    assert r.status_code == 200, r.text
    return r.json()["data"]


def recipient_statuses(t, list_id):
    r = t.server.get(t.rcpt_path(list_id), headers=t.h, params={"limit": 1000})
    assert r.status_code == 200, r.text
    return {x["email"]: x["status"] for x in r.json()["data"]}


def parse_eml(path):
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def part_text(msg, subtype):
    """The decoded text/SUBTYPE part, with the wire's CRLF line ends as LF."""
    for part in msg.walk():
        if part.get_content_type() == f"text/{subtype}":
            return part.get_content().replace("\r\n", "\n")
    return None


def header_link(msg):
    """The https URL of List-Unsubscribe (RFC 2369: <URI>[, <URI>])."""
    links = re.findall(r"<([^>]+)>", str(msg["List-Unsubscribe"]))
    https = [x for x in links if x.startswith(PUBLIC)]
    assert len(https) == 1, msg["List-Unsubscribe"]
    return https[0]


def delivered(server, campaign_id):
    """{to_address: parsed message} of the campaign's messages in the outbox
    (a dir: outbox names each file after its message's id)."""
    out = {}
    for mid, to in db_query(server.database,
                            "SELECT id, to_address FROM scheduled_messages "
                            "WHERE campaign_id = %s AND status = 'sent'", (campaign_id,)):
        f = server.outbox / f"{mid}.eml"
        assert f.exists(), f"the sent message {mid} is not in the outbox"
        out[to] = parse_eml(f)
    return out


def outbox_files(server):
    return {p.name for p in server.outbox.glob("*.eml")} if server.outbox.exists() else set()


def send_and_wait(t, cid, timeout=30):
    t.do(cid, "send")
    return t.wait_for(cid, lambda c: c["status"] in ("completed", "failed"), timeout,
                      "the campaign to finish")


def small_campaign(t, people, **fields):
    """A list of people [(email, name, attributes)], and a draft campaign to it."""
    lst = t.make_list()
    rcpts = {}
    for addr, name, attrs in people:
        rcpts[addr] = t.add(lst["id"], addr, name=name, attributes=attrs)
    c = t.create(recipient_list_id=lst["id"], subject="News for {{first_name}}",
                 text_body=TEXT_BODY, html_body=HTML_BODY, **fields)
    return lst, rcpts, c


# ---- the link in delivered mail ----


def test_delivered_messages_carry_the_link(server):
    t = Tenant(server)
    people = [("ann@example.org", "Ann Lee", {"plan": "pro"}),
              ("Bob@Example.NET", "Bob Stone", {}),
              ("cy@example.com", "Cy", {"plan": "free"})]
    lst, rcpts, c = small_campaign(t, people)
    done = send_and_wait(t, c["id"])
    assert done["status"] == "completed" and done["sent_count"] == 3, done

    msgs = delivered(server, c["id"])
    assert set(msgs) == {r["email"] for r in rcpts.values()}
    seen = set()
    for r in rcpts.values():
        msg = msgs[r["email"]]
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        url = header_link(msg)
        path = link_path(url)
        # {{unsubscribe_url}} in both bodies is the header's URL.
        text = part_text(msg, "plain")
        html = part_text(msg, "html")
        assert re.findall(r"Unsubscribe: (\S+)", text) == [url], text
        assert re.findall(r'href="([^"]+)"', html) == [url], html
        assert f"Hi {r['name']}" in text
        # The token names this tenant, campaign and recipient; the preview
        # shows a preview token for the same three (version 2), never the
        # working link.
        version, tid, cid, rid = decode_token(token_of(url))
        assert (version, tid, cid, rid) == (1, t.id, c["id"], r["id"])
        assert token_of(url) == working_link_token(server.database, t.id, c["id"], r["id"])
        pv = t.preview(c["id"], {"recipient_id": r["id"]})
        assert pv.status_code == 200 and pv.json()["unsubscribe_url"] != url, pv.text
        assert decode_token(token_of(pv.json()["unsubscribe_url"])) == (2, tid, cid, rid)
        seen.add(path)
    assert len(seen) == 3, "every recipient has a link of its own"


def test_get_shows_a_page_and_changes_nothing(server):
    t = Tenant(server, name="Acme <News> & Co")
    lst, rcpts, c = small_campaign(t, [("dora@example.org", "Dora", {}),
                                       ("eve@example.org", "Eve", {})])
    send_and_wait(t, c["id"])
    msgs = delivered(server, c["id"])
    path = link_path(header_link(msgs["dora@example.org"]))

    s = public(server)
    for _ in range(3):
        r = get_link(server, path, session=s)
        assert r.status_code == 200, r.text
        assert is_html(r), r.headers
        assert r.headers.get("Cache-Control") == "no-store"
        assert "Set-Cookie" not in r.headers and "Location" not in r.headers
        page = r.text
        assert "dora@example.org" in page
        assert "Acme &lt;News&gt; &amp; Co" in page, "the tenant's name, HTML-escaped"
        assert "<News>" not in page
        form = re.search(r"<form[^>]*>(.*?)</form>", page, re.S)
        assert form and re.search(r'method="post"', form.group(0), re.I), page
        assert 'name="List-Unsubscribe"' in form.group(1)
        assert 'value="One-Click"' in form.group(1)
        assert re.search(r"<button[^>]*type=\"submit\"", form.group(1)), page
    r = s.head(server.url(path), timeout=10)
    assert r.status_code == 200 and is_html(r)

    assert unsubs(t) == []
    assert recipient_statuses(t, lst["id"]) == {"dora@example.org": "active",
                                                "eve@example.org": "active"}


def test_post_one_click_unsubscribes(server):
    t = Tenant(server)
    other = Tenant(server)
    lst, rcpts, c = small_campaign(t, [("fay@example.org", "Fay", {}),
                                       ("gus@example.org", "Gus", {}),
                                       ("hal@example.org", "Hal", {})])
    # The same address in another list of the tenant (other spelling), and
    # in another tenant, which must not be touched.
    lst2 = t.make_list()
    t.add(lst2["id"], "FAY@Example.org", name="Fay again")
    olst = other.make_list()
    other.add(olst["id"], "fay@example.org")

    done = send_and_wait(t, c["id"])
    msgs = delivered(server, c["id"])
    links = {a: link_path(header_link(m)) for a, m in msgs.items()}

    # Without the one-click field: 400, nothing changes.
    for kw in [{}, {"data": b""}, {"data": {"foo": "bar"}},
               {"data": {"List-Unsubscribe": "Nope"}},
               {"json": {"List-Unsubscribe": "One-Click"}},
               {"files": {"other": (None, "One-Click")}}]:
        r = post_link(server, links["fay@example.org"], **kw)
        assert r.status_code == 400, (kw, r.status_code, r.text)
        assert is_html(r)
    assert unsubs(t) == []
    assert recipient_statuses(t, lst["id"])["fay@example.org"] == "active"

    # One click: form-urlencoded, no key, no cookie.
    s = public(server)
    r = post_link(server, links["fay@example.org"], session=s, data=ONE_CLICK)
    assert r.status_code == 200, r.text
    assert is_html(r)
    assert "Location" not in r.headers and "Set-Cookie" not in r.headers
    assert not s.cookies
    assert "fay@example.org" in r.text
    entries = unsubs(t)
    assert len(entries) == 1, entries
    e = entries[0]
    assert (e["email"], e["source"], e["campaign_id"]) == ("fay@example.org", "link", c["id"])
    first_at = e["unsubscribed_at"]
    # Every row with the address, in every list of the tenant, is unsubscribed.
    assert recipient_statuses(t, lst["id"]) == {"fay@example.org": "unsubscribed",
                                                "gus@example.org": "active",
                                                "hal@example.org": "active"}
    assert recipient_statuses(t, lst2["id"]) == {"FAY@example.org": "unsubscribed"}
    # Not another tenant's.
    assert recipient_statuses(other, olst["id"]) == {"fay@example.org": "active"}
    assert unsubs(other) == []

    # Idempotent: again 200, the entry unchanged.
    for _ in range(2):
        r = post_link(server, links["fay@example.org"], data=ONE_CLICK)
        assert r.status_code == 200, r.text
        assert "Location" not in r.headers and "Set-Cookie" not in r.headers
    entries = unsubs(t)
    assert [(x["email"], x["source"], x["unsubscribed_at"]) for x in entries] == \
        [("fay@example.org", "link", first_at)]

    # multipart/form-data, as some providers send it; a key sent along is ignored.
    r = post_link(server, links["gus@example.org"], files={"List-Unsubscribe": (None, "One-Click")},
                  headers={"Authorization": "Bearer not-a-key"})
    assert r.status_code == 200, r.text
    assert "Location" not in r.headers and "Set-Cookie" not in r.headers
    got = {x["email"]: x for x in unsubs(t)}
    assert set(got) == {"fay@example.org", "gus@example.org"}
    assert got["gus@example.org"]["source"] == "link"
    assert got["gus@example.org"]["campaign_id"] == c["id"]
    assert recipient_statuses(t, lst["id"])["gus@example.org"] == "unsubscribed"
    assert recipient_statuses(t, lst["id"])["hal@example.org"] == "active"
    # The campaign's own statistics are not touched by unsubscribes.
    assert t.get(c["id"])["sent_count"] == done["sent_count"] == 3


def test_forged_and_tampered_tokens_are_404(server, store):
    """2,000 tokens that do not verify: every one of the 63 other characters
    at the first two and last two positions of a real token (where base64url's
    padding bits and the version byte sit), four others at every other
    position, the token cut short at every length, extended by every
    character, non-canonical endings and random base64url strings of the
    right length.  Each POSTs the one-click field (the request that would
    change something) and answers the 404 page; nothing changes.  On
    PostgreSQL a tenth of them (every kind still present) keeps the module
    fast: the token is checked before the database is touched, so the store
    makes no difference to this path."""
    t = Tenant(server)
    lst, rcpts, c = small_campaign(t, [("ida@example.org", "Ida", {}),
                                       ("jo@example.org", "Jo", {})])
    send_and_wait(t, c["id"])
    msgs = delivered(server, c["id"])
    real = token_of(header_link(msgs["ida@example.org"]))
    assert decode_token(real)[3] == rcpts["ida@example.org"]["id"]
    before_unsubs = unsubs(t)
    before = recipient_statuses(t, lst["id"])

    rng = random.Random(8058)
    bad = []
    edges = {0, 1, len(real) - 2, len(real) - 1}
    for i in range(len(real)):
        others = [ch for ch in B64URL if ch != real[i]]
        for ch in (others if i in edges else rng.sample(others, 4)):
            bad.append(real[:i] + ch + real[i + 1:])
    for n in range(1, len(real)):
        bad.append(real[:n])
    for ch in B64URL:
        bad.append(real + ch)
    bad += [real + real, real + "A" * 3, "A" + real, real[1:] + "A"]
    while len(bad) < 2000:
        bad.append("".join(rng.choice(B64URL) for _ in range(87)))
    assert len(set(bad)) == len(bad) == 2000 and real not in bad
    if store != "sqlite":
        rng.shuffle(bad)
        bad = bad[:1000]

    s = public(server)
    wrong = []
    t0 = time.monotonic()
    for i, tok in enumerate(bad):
        if i % 10 == 9:
            r = s.get(server.url("/u/" + tok), timeout=10)
        else:
            r = s.post(server.url("/u/" + tok), data=ONE_CLICK, timeout=10,
                       allow_redirects=False)
        if r.status_code != 404 or not is_html(r):
            wrong.append((tok, r.status_code, r.headers.get("Content-Type")))
    elapsed = time.monotonic() - t0
    assert not wrong, f"{len(wrong)} of {len(bad)} bad tokens did not get the 404 page: {wrong[:5]}"
    assert "not valid" in r.text
    assert not s.cookies
    assert unsubs(t) == before_unsubs == []
    assert recipient_statuses(t, lst["id"]) == before
    # The real token still works (and is not blocked by all that).
    r = post_link(server, "/u/" + real, data=ONE_CLICK)
    assert r.status_code == 200, r.text
    assert [x["email"] for x in unsubs(t)] == ["ida@example.org"]
    print(f"{len(bad)} bad tokens in {elapsed:.1f}s")


def test_links_that_name_nobody_are_404(server):
    """Tokens that verify but name no recipient that can be unsubscribed:
    the nil recipient of a preview by address, a deleted recipient, a
    deleted tenant."""
    t = Tenant(server)
    lst, rcpts, c = small_campaign(t, [("kim@example.org", "Kim", {}),
                                       ("lou@example.org", "Lou", {})])
    pv = t.preview(c["id"], {"email": "kim@example.org"})
    assert pv.status_code == 200, pv.text
    adhoc = link_path(pv.json()["unsubscribe_url"])
    assert decode_token(token_of(pv.json()["unsubscribe_url"]))[3] == NIL_UUID
    assert get_link(server, adhoc).status_code == 404
    assert post_link(server, adhoc, data=ONE_CLICK).status_code == 404

    lou = rcpts["lou@example.org"]
    lou_link = "/u/" + working_link_token(server.database, t.id, c["id"], lou["id"])
    r = t.server.delete(t.rcpt_path(lst["id"], lou["id"]), headers=t.h)
    assert r.status_code == 204, r.text
    assert get_link(server, lou_link).status_code == 404
    assert post_link(server, lou_link, data=ONE_CLICK).status_code == 404
    assert unsubs(t) == []

    kim = rcpts["kim@example.org"]
    kim_link = "/u/" + working_link_token(server.database, t.id, c["id"], kim["id"])
    assert get_link(server, kim_link).status_code == 200
    r = server.delete(f"/api/v1/tenants/{t.id}", headers=server.op)
    assert r.status_code in (200, 204), r.text
    r = get_link(server, kim_link)
    assert r.status_code == 404 and is_html(r)
    assert post_link(server, kim_link, data=ONE_CLICK).status_code == 404


def test_preview_never_mints_a_working_link(server):
    """Issue 12 finding 3: a read-only key may preview a campaign for a
    recipient; the link it shows is recognised as a preview's and refused,
    on GET and on the one-click POST, and nobody is unsubscribed."""
    t = Tenant(server)
    lst, rcpts, c = small_campaign(t, [("pia@example.org", "Pia", {})])
    pia = rcpts["pia@example.org"]
    ro = {"Authorization": f"Bearer {server.make_key(t.id, scopes=['read'])['key']}"}
    pv = server.post(f"/api/v1/tenants/{t.id}/campaigns/{c['id']}/preview", headers=ro,
                     json={"recipient_id": pia["id"]})
    assert pv.status_code == 200, pv.text
    url = pv.json()["unsubscribe_url"]
    assert decode_token(token_of(url)) == (2, t.id, c["id"], pia["id"])
    r = get_link(server, link_path(url))
    assert r.status_code == 404 and "preview link" in r.text, r.text
    r = post_link(server, link_path(url), data=ONE_CLICK)
    assert r.status_code == 404 and "preview link" in r.text, r.text
    assert unsubs(t) == []
    assert recipient_statuses(t, lst["id"]) == {"pia@example.org": "active"}
    # Flipping the version byte to a link's breaks the MAC.
    raw = bytearray(base64.urlsafe_b64decode(token_of(url) + "="))
    raw[0] = 1
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert post_link(server, "/u/" + forged, data=ONE_CLICK).status_code == 404
    assert unsubs(t) == []


def test_link_outlives_its_campaign(server):
    """A message's link must keep working after its campaign is deleted
    (RFC 8058 links are acted on whenever the person presses the button):
    the address is suppressed, with no campaign to point to."""
    t = Tenant(server)
    lst, rcpts, c = small_campaign(t, [("max@example.org", "Max", {}),
                                       ("ned@example.org", "Ned", {})])
    send_and_wait(t, c["id"])
    msgs = delivered(server, c["id"])
    path = link_path(header_link(msgs["max@example.org"]))
    r = t.delete(c["id"])
    assert r.status_code == 204, r.text

    assert get_link(server, path).status_code == 200
    r = post_link(server, path, data=ONE_CLICK)
    assert r.status_code == 200, (r.status_code, r.text)
    entries = unsubs(t)
    assert [(x["email"], x["source"], x["campaign_id"]) for x in entries] == \
        [("max@example.org", "link", None)]
    assert recipient_statuses(t, lst["id"])["max@example.org"] == "unsubscribed"


# ---- an unsubscribe while the campaign is sending ----


def test_unsubscribe_mid_campaign_stops_the_pending_message(server):
    t = Tenant(server)
    # One message a minute: after the first one, the rest wait.
    t.set_rate_limits(per_minute=1)
    people = [(f"p{i}@example.org", f"P{i}", {}) for i in range(3)]
    lst, rcpts, c = small_campaign(t, people)
    cid = c["id"]
    t.do(cid, "send")
    t.wait_for(cid, lambda x: x["materialized"] and x["sent_count"] == 1, 30,
               "the first message")
    time.sleep(0.5)  # a few more polls of the worker: nothing else may go
    rows = message_rows(server, cid)
    assert sorted(s for _, _, s in rows) == ["pending", "pending", "sent"], rows
    pending = sorted(a for _, a, s in rows if s == "pending")
    victim, survivor = pending
    vid = rcpts[victim]["id"]

    # The victim's link (the one in the message it has not got yet).
    r = post_link(server, "/u/" + working_link_token(server.database, t.id, cid, vid),
                  data=ONE_CLICK)
    assert r.status_code == 200, r.text
    assert [(x["email"], x["source"], x["campaign_id"]) for x in unsubs(t)] == \
        [(victim, "link", cid)]

    # Let the rest go.
    t.set_rate_limits(per_minute=1000)
    done = t.wait_for(cid, lambda x: x["status"] in ("completed", "failed"), 30,
                      "the campaign to finish")
    assert done["status"] == "completed", done
    assert (done["sent_count"], done["suppressed_count"]) == (2, 1), done
    status = {a: s for _, a, s in message_rows(server, cid)}
    assert status == {a: "suppressed" if a == victim else "sent" for a, _, _ in people}, status
    assert sorted(delivered(server, cid)) == sorted(a for a, _, _ in people if a != victim)
    for f in server.outbox.glob("*.eml"):
        assert f"<{victim}>" not in str(parse_eml(f)["To"]), f"{victim} got {f.name}"


# ---- test sends ----


def test_campaign_test_send(server):
    t = Tenant(server)
    lst, rcpts, c = small_campaign(t, [("ola@example.org", "Ola", {})])
    cid = c["id"]
    stats_before = t.stats(cid)
    files_before = outbox_files(server)

    r = t.action(cid, "test", {"to": ["a@x.test"], "name": "Ann Lee",
                               "attributes": {"plan": "gold"}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"results"} and len(body["results"]) == 1, body
    res = body["results"][0]
    assert set(res) == {"to", "status", "reply"}, res
    assert (res["to"], res["status"]) == ("a@x.test", "sent"), res
    assert res["reply"].startswith("250 "), res

    new = outbox_files(server) - files_before
    assert len(new) == 1 and new.pop() in res["reply"], (new, res)
    name = re.search(r"(test-[0-9a-f]{16}\.eml)", res["reply"]).group(1)
    msg = parse_eml(server.outbox / name)
    assert msg["Subject"] == "News for Ann"
    assert msg["To"].addresses[0].addr_spec == "a@x.test"
    assert msg["To"].addresses[0].display_name == "Ann Lee"
    text = part_text(msg, "plain")
    assert text.startswith("Hi Ann Lee (gold)\n"), text
    assert "<p>Hi Ann Lee</p>" in part_text(msg, "html")
    # Its link names no recipient: it unsubscribes nobody.
    url = header_link(msg)
    assert re.findall(r"Unsubscribe: (\S+)", text) == [url]
    assert decode_token(token_of(url))[1:] == (t.id, cid, NIL_UUID)
    assert post_link(server, link_path(url), data=ONE_CLICK).status_code == 404

    # Several addresses at once, in order; any valid address will do, even a
    # suppressed one (it is a test).
    assert t.suppress("b@x.test").status_code == 201
    r = t.action(cid, "test", {"to": ["B@X.test", "c@x.test"]})
    assert r.status_code == 200, r.text
    assert [(x["to"], x["status"]) for x in r.json()["results"]] == \
        [("B@x.test", "sent"), ("c@x.test", "sent")]
    assert len(outbox_files(server) - files_before) == 3

    # Outside the campaign's delivery: no message, no statistic.
    assert t.stats(cid) == stats_before
    assert t.get(cid)["status"] == "draft"
    assert message_rows(server, cid) == []
    metrics = server.get("/metrics", headers=server.op).text
    assert t.id not in metrics, "test sends are not delivery outcomes"


def test_campaign_test_send_errors(server):
    t = Tenant(server)
    other = Tenant(server)
    lst, rcpts, c = small_campaign(t, [("pia@example.org", "Pia", {})])
    cid = c["id"]
    files_before = outbox_files(server)

    for body in [{}, {"to": []}, {"to": "a@x.test"}, {"to": None}, {"to": [1]},
                 {"to": ["not-an-address"]}, {"to": ["a@x.test", "b@@x.test"]},
                 {"to": [f"u{i}@x.test" for i in range(11)]}]:
        invalid_field(t.action(cid, "test", body), "to")
    invalid_field(t.action(cid, "test", {"to": ["a@x.test"], "name": "a\nb"}), "name")
    invalid_field(t.action(cid, "test", {"to": ["a@x.test"], "name": 5}), "name")
    invalid_field(t.action(cid, "test", {"to": ["a@x.test"], "attributes": [1]}), "attributes")
    error_of(t.server.post(t.camp_path(cid, "test"), headers=t.h), 400, "bad_request")

    # Another tenant: its key on our path, or our campaign id under its path.
    error_of(t.action(cid, "test", {"to": ["a@x.test"]}, headers=other.h), 404, "not_found")
    r = other.action(cid, "test", {"to": ["a@x.test"]})
    assert error_of(r, 404, "not_found")["message"] == "campaign not found"
    error_of(t.action(missing_id(), "test", {"to": ["a@x.test"]}), 404, "not_found")
    # A read-only key may not send.
    error_of(t.action(cid, "test", {"to": ["a@x.test"]}, headers=t.ro), 403,
             "insufficient_scope")
    error_of(t.server.post(t.camp_path(cid, "test"), json={"to": ["a@x.test"]}), 401,
             "unauthorized")
    assert outbox_files(server) == files_before, "no error sends anything"

    # The operator may.
    r = t.action(cid, "test", {"to": ["a@x.test"]}, headers=server.op)
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "sent", r.text
