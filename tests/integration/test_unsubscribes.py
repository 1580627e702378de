"""The tenant's suppression list: add (manual), list (paginated, filtered,
searched), remove, bulk import (CSV and JSON), its effect on recipients in
every list of the tenant and never another tenant's, isolation and scopes."""

import threading

import pytest
import requests

from harness import TIME_RE, UUID_RE, error_of, invalid_field, parse_time
from listhelp import UNSUB_FIELDS, Tenant, report_of


def unsub_import(t, body, ctype="text/csv", headers=None):
    h = {**(headers or t.h), "Content-Type": ctype}
    return t.server.post(f"{t.unsub_path}/import", data=body, headers=h, timeout=60)


def import_report(resp):
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert {"total", "imported", "skipped_duplicates", "invalid", "errors"} <= set(body), body
    for e in body["errors"]:
        assert set(e) == {"line", "email", "reason"}, e
    assert body["total"] == body["imported"] + body["skipped_duplicates"] + body["invalid"], body
    assert len(body["errors"]) == min(100, body["invalid"]), body
    return body


def test_add(server):
    t = Tenant(server)
    r = t.suppress("Someone@Example.COM", reason="asked by phone")
    assert r.status_code == 201, r.text
    u = r.json()
    assert set(u) == UNSUB_FIELDS
    assert UUID_RE.match(u["id"])
    assert u["email"] == "Someone@example.com"
    assert u["source"] == "manual"
    assert u["campaign_id"] is None
    assert u["reason"] == "asked by phone"
    assert TIME_RE.match(u["unsubscribed_at"])
    body = t.unsubs()
    assert body["total"] == 1 and body["data"] == [u]


def test_add_without_reason(server):
    t = Tenant(server)
    u = t.suppress("noreason@example.com").json()
    assert u["reason"] is None and u["source"] == "manual"


def test_adding_again_is_200_case_insensitive(server):
    t = Tenant(server)
    first = t.suppress("again@example.com").json()
    for variant in ("again@example.com", "AGAIN@Example.com", "Again@EXAMPLE.COM"):
        r = t.suppress(variant)
        assert r.status_code == 200, r.text
        assert r.json()["id"] == first["id"]
        assert r.json()["email"] == "again@example.com"
        assert r.json()["unsubscribed_at"] == first["unsubscribed_at"]
    assert t.unsubs()["total"] == 1


def test_adding_again_replaces_a_given_reason_only(server):
    t = Tenant(server)
    first = t.suppress("why@example.com", reason="first").json()
    r = t.suppress("WHY@example.com", reason="second")
    assert r.status_code == 200 and r.json()["reason"] == "second"
    r = t.suppress("why@example.com")
    assert r.status_code == 200 and r.json()["reason"] == "second"
    assert r.json()["id"] == first["id"] and r.json()["source"] == "manual"


@pytest.mark.parametrize("body,field", [
    ({}, "email"),
    ({"email": None}, "email"),
    ({"email": 7}, "email"),
    ({"email": ""}, "email"),
    ({"email": "nobody"}, "email"),
    ({"email": "a b@example.com"}, "email"),
    ({"email": "ok@example.com", "reason": 5}, "reason"),
    ({"email": "ok@example.com", "reason": "r" * 1001}, "reason"),
])
def test_add_validation(server, body, field):
    t = Tenant(server)
    invalid_field(server.post(t.unsub_path, json=body, headers=t.h), field)
    assert t.unsubs()["total"] == 0


def test_list_pagination_search_and_source(server):
    t = Tenant(server)
    manual = ["m1@example.com", "m2@example.org", "Upper@Example.org", "a%b@example.net",
              "a_b@example.net"]
    for e in manual:
        assert t.suppress(e).status_code == 201
    rep = import_report(unsub_import(t, "email\ni1@example.com\ni2@example.org\ni3@sample.io\n"))
    assert rep["imported"] == 3

    body = t.unsubs()
    assert set(body) == {"data", "total", "limit", "offset"}
    assert (body["total"], body["limit"], body["offset"]) == (8, 50, 0)
    for u in body["data"]:
        assert set(u) == UNSUB_FIELDS

    seen = []
    for offset in range(0, 8, 3):
        page = t.unsubs(limit=3, offset=offset)
        assert (page["total"], page["limit"], page["offset"]) == (8, 3, offset)
        seen += [u["id"] for u in page["data"]]
    assert len(seen) == 8 and len(set(seen)) == 8

    # Newest first.
    assert [u["email"] for u in t.unsubs(source="manual")["data"]] == [
        "a_b@example.net", "a%b@example.net", "Upper@example.org", "m2@example.org",
        "m1@example.com"]

    def emails(**params):
        body = t.unsubs(**params)
        assert body["total"] == len(body["data"])
        return sorted(u["email"] for u in body["data"])

    assert emails(source="manual") == sorted(e.replace("Example.org", "example.org")
                                             for e in manual)
    assert emails(source="import") == ["i1@example.com", "i2@example.org", "i3@sample.io"]
    assert emails(source="link") == []
    assert emails(q="EXAMPLE.ORG") == ["Upper@example.org", "i2@example.org", "m2@example.org"]
    assert emails(q="upper@") == ["Upper@example.org"]
    assert emails(q="%") == ["a%b@example.net"]
    assert emails(q="_") == ["a_b@example.net"]
    assert emails(q="example.com", source="import") == ["i1@example.com"]
    for query, field in [("source=bogus", "source"), ("source=MANUAL", "source"),
                         ("limit=0", "limit"), ("limit=1001", "limit"), ("offset=-1", "offset")]:
        invalid_field(server.get(f"{t.unsub_path}?{query}", headers=t.h), field)


# ---- effect on recipients ----


def test_adding_marks_recipients_in_every_list_of_the_tenant_only(server):
    a, b = Tenant(server), Tenant(server)
    l1, l2, l3, l4 = (a.make_list()["id"] for _ in range(4))
    r1 = a.add(l1, "Shared@Example.com")
    r2 = a.add(l2, "shared@example.com")
    r3 = a.add(l3, "SHARED@example.com")
    a.put_recipient(l3, r3["id"], status="bounced")
    a.add(l1, "bystander@example.com")
    a.add(l4, "bystander@example.com")
    bl = b.make_list()["id"]
    rb = b.add(bl, "shared@example.com")
    before = {lid: a.counts(lid) for lid in (l1, l2, l3, l4)}
    assert before == {l1: (2, 2), l2: (1, 1), l3: (1, 0), l4: (1, 1)}

    u = a.suppress("sHaReD@example.COM", reason="complaint by mail")
    assert u.status_code == 201, u.text

    for lid, rid in ((l1, r1["id"]), (l2, r2["id"])):
        x = a.get_recipient(lid, rid)
        assert x["status"] == "unsubscribed", x
        assert TIME_RE.match(x["unsubscribed_at"] or ""), x
        assert parse_time(x["unsubscribed_at"]) >= parse_time(r1["created_at"])
    assert a.get_recipient(l3, r3["id"])["status"] != "active"
    assert {lid: a.counts(lid) for lid in (l1, l2, l3, l4)} == {
        l1: (2, 1), l2: (1, 0), l3: (1, 0), l4: (1, 1)}
    for x in a.recipients(l1) + a.recipients(l4):
        if x["email"] == "bystander@example.com":
            assert x["status"] == "active"

    # The other tenant's recipient with the same address is untouched.
    assert b.get_recipient(bl, rb["id"]) == rb
    assert b.counts(bl) == (1, 1)
    assert b.unsubs()["total"] == 0


def test_removing_allows_sending_again_but_changes_no_recipient(server):
    t = Tenant(server)
    lid = t.make_list()["id"]
    x = t.add(lid, "back@example.com")
    assert t.suppress("back@example.com").status_code == 201
    marked = t.get_recipient(lid, x["id"])
    assert marked["status"] == "unsubscribed"

    r = server.delete(f"{t.unsub_path}/Back@Example.com", headers=t.h)
    assert r.status_code == 204 and r.content == b""
    assert t.unsubs()["total"] == 0
    # The recipient row stays as it is until changed.
    assert t.get_recipient(lid, x["id"]) == marked
    assert t.counts(lid) == (1, 0)
    # Now it may be made active again, and added anew elsewhere as active.
    r = t.put_recipient(lid, x["id"], status="active")
    assert r.status_code == 200 and r.json()["status"] == "active"
    other = t.make_list()["id"]
    assert t.add(other, "back@example.com")["status"] == "active"
    rep = t.import_csv(t.make_list()["id"], "email\nback@example.com\n")
    assert rep.status_code == 201 and rep.json()["imported"] == 1
    assert rep.json()["skipped_suppressed"] == 0


def test_remove_absent_address_is_404(server):
    t = Tenant(server)
    error_of(server.delete(f"{t.unsub_path}/never@example.com", headers=t.h), 404, "not_found")
    error_of(server.delete(f"{t.unsub_path}/not-an-address", headers=t.h), 404, "not_found")
    assert t.suppress("once@example.com").status_code == 201
    assert server.delete(f"{t.unsub_path}/once@example.com", headers=t.h).status_code == 204
    error_of(server.delete(f"{t.unsub_path}/once@example.com", headers=t.h), 404, "not_found")


@pytest.mark.parametrize("stored,path", [
    ("plus+tag@example.com", "plus+tag@example.com"),
    ("plus+tag@example.com", "plus%2Btag%40example.com"),
    ("pct%sign@example.com", "pct%25sign@example.com"),
    ("q?mark@example.com", "q%3Fmark@example.com"),
    ("hash#tag@example.com", "hash%23tag@example.com"),
    ("slash/part@example.com", "slash%2Fpart%40example.com"),
    ("slash/part@example.com", "slash/part@example.com"),
    ("idn@bücher.de", "idn@xn--bcher-kva.de"),
    ("idn@bücher.de", "IDN@B%C3%BCcher.de"),
])
def test_remove_addresses_with_special_characters(server, stored, path):
    t = Tenant(server)
    assert t.suppress(stored).status_code == 201
    r = server.delete(f"{t.unsub_path}/{path}", headers=t.h)
    assert r.status_code == 204, r.text
    assert t.unsubs()["total"] == 0


# ---- import ----


def test_import_csv(server):
    t = Tenant(server)
    lid = t.make_list()["id"]
    t.add(lid, "listed@example.com")
    t.add(lid, "untouched@example.com")
    assert t.suppress("already@example.com", reason="first").status_code == 201
    body = ("\ufeffEmail,Reason,ignored\r\n"
            "one@example.com,bounced hard,x\r\n"
            "LISTED@example.com,,y\r\n"
            "bad-address,oops,\r\n"
            "One@Example.com,again,\r\n"
            "already@EXAMPLE.com,second,\r\n"
            "\r\n"
            "two@example.org,\"reason, with comma\",z\r\n")
    rep = import_report(unsub_import(t, body.encode()))
    assert (rep["total"], rep["imported"], rep["skipped_duplicates"], rep["invalid"]) == (
        6, 3, 2, 1)
    assert [(e["line"], e["email"]) for e in rep["errors"]] == [(4, "bad-address")]
    entries = {u["email"]: u for u in t.unsubs()["data"]}
    assert set(entries) == {"one@example.com", "LISTED@example.com", "already@example.com",
                            "two@example.org"}
    assert entries["one@example.com"]["source"] == "import"
    assert entries["one@example.com"]["reason"] == "bounced hard"
    assert entries["LISTED@example.com"]["reason"] is None
    assert entries["two@example.org"]["reason"] == "reason, with comma"
    assert entries["already@example.com"]["source"] == "manual"
    got = t.by_email(lid)
    assert got["listed@example.com"]["status"] == "unsubscribed"
    assert got["listed@example.com"]["unsubscribed_at"] is not None
    assert got["untouched@example.com"]["status"] == "active"
    assert t.counts(lid) == (2, 1)


def test_import_csv_with_only_an_email_column(server):
    t = Tenant(server)
    rep = import_report(unsub_import(t, "email\nsolo@example.com\n"))
    assert (rep["total"], rep["imported"]) == (1, 1)
    (u,) = t.unsubs()["data"]
    assert (u["email"], u["source"], u["reason"]) == ("solo@example.com", "import", None)


def test_import_json(server):
    t = Tenant(server)
    lid = t.make_list()["id"]
    t.add(lid, "j2@example.com")
    doc = {"emails": ["j1@example.com", {"email": "J2@example.com", "reason": "r2"}, 5,
                      "not-an-address", "J1@EXAMPLE.com", {"reason": "no email"},
                      {"email": "j3@example.com", "reason": 3}]}
    rep = import_report(server.post(f"{t.unsub_path}/import", json=doc, headers=t.h))
    assert (rep["total"], rep["imported"], rep["skipped_duplicates"], rep["invalid"]) == (
        7, 2, 1, 4)
    assert [e["line"] for e in rep["errors"]] == [3, 4, 6, 7]
    entries = {u["email"]: u for u in t.unsubs()["data"]}
    assert set(entries) == {"j1@example.com", "J2@example.com"}
    assert entries["J2@example.com"]["reason"] == "r2"
    assert t.counts(lid) == (1, 0)
    # "unsubscribes" is the other name of the array.
    rep = import_report(server.post(f"{t.unsub_path}/import", headers=t.h,
                                    json={"unsubscribes": [{"email": "j4@example.com"}]}))
    assert rep["imported"] == 1
    assert "j4@example.com" in t.unsub_emails()


def test_import_request_errors(server):
    t = Tenant(server)
    error_of(unsub_import(t, "email\nx@example.com\n", ctype="text/plain"),
             415, "unsupported_media_type")
    error_of(unsub_import(t, "{oops", ctype="application/json"), 400, "malformed_json")
    # field names "emails" when it is there but not an array, else the other name.
    for doc, field in (('{}', "unsubscribes"), ('[]', "unsubscribes"),
                       ('{"emails": "x@example.com"}', "emails"),
                       ('{"emails": {"email": "x@example.com"}}', "emails")):
        invalid_field(unsub_import(t, doc, ctype="application/json"), field)
    for body in ("", "reason\nno email column\n"):
        r = unsub_import(t, body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "bad_request"
    r = unsub_import(t, "email\nfine@example.com\n\"broken@example.com,x\n")
    assert r.status_code == 400, r.text
    assert "line 3" in r.json()["error"]["message"]
    assert r.json()["imported"] == 1
    assert [u["email"] for u in t.unsubs()["data"]] == ["fine@example.com"]


def test_import_never_touches_another_tenant(server):
    a, b = Tenant(server), Tenant(server)
    la, lb = a.make_list()["id"], b.make_list()["id"]
    a.add(la, "both@example.com")
    xb = b.add(lb, "both@example.com")
    rep = import_report(unsub_import(a, "email\nBOTH@example.com\n"))
    assert rep["imported"] == 1
    assert a.counts(la) == (1, 0)
    assert b.get_recipient(lb, xb["id"]) == xb
    assert b.counts(lb) == (1, 1)
    assert b.unsubs()["total"] == 0


def test_concurrent_import_and_suppression_leave_no_suppressed_address_active(server_factory):
    """A recipient import racing a suppression import of the same addresses:
    whichever commits first, no address may end up both suppressed and active."""
    srv = server_factory(args=["--import-batch-size", "50"])
    t = Tenant(srv)
    for rnd in range(4):
        lid = t.make_list()["id"]
        body = "email\n" + "".join(f"r{rnd}n{i}@race.example\n" for i in range(3000))
        results = {}

        def post(name, path):
            results[name] = requests.post(srv.url(path), data=body, timeout=120,
                                          headers={**t.h, "Content-Type": "text/csv"})

        threads = [threading.Thread(target=post, args=("recipients", t.import_path(lid))),
                   threading.Thread(target=post, args=("unsubscribes",
                                                       f"{t.unsub_path}/import"))]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        rep = report_of(results["recipients"])
        assert rep["imported"] + rep["skipped_suppressed"] == 3000, rep
        assert import_report(results["unsubscribes"])["imported"] == 3000
        # Every one of these addresses is suppressed now.
        active = srv.get(t.rcpt_path(lid), params={"status": "active", "limit": 5},
                         headers=t.h).json()
        assert active["total"] == 0, (
            f"round {rnd}: {active['total']} suppressed addresses are active, e.g. "
            f"{[x['email'] for x in active['data']]}; import report {rep}")
        assert t.counts(lid) == (rep["imported"], 0)


# ---- isolation and scopes ----


def test_tenants_never_see_or_change_each_others_entries(server):
    a, b = Tenant(server), Tenant(server)
    assert a.suppress("private@example.com").status_code == 201
    # B's own list is empty, and searching it finds nothing of A's.
    assert b.unsubs()["total"] == 0
    assert b.unsubs(q="private")["total"] == 0
    # B cannot remove A's entry, through either path.
    error_of(server.delete(f"{b.unsub_path}/private@example.com", headers=b.h),
             404, "not_found")
    error_of(server.delete(f"{a.unsub_path}/private@example.com", headers=b.h),
             404, "not_found")
    # B's key on A's paths.
    error_of(server.get(a.unsub_path, headers=b.h), 404, "not_found")
    error_of(server.post(a.unsub_path, json={"email": "planted@example.com"}, headers=b.h),
             404, "not_found")
    error_of(unsub_import(a, "email\nplanted@example.com\n", headers=b.h), 404, "not_found")
    assert a.unsub_emails() == ["private@example.com"]
    # B suppressing the same address makes an entry of its own.
    assert b.suppress("private@example.com").status_code == 201
    assert server.delete(f"{b.unsub_path}/private@example.com", headers=b.h).status_code == 204
    assert a.unsub_emails() == ["private@example.com"]


def test_read_only_key(server):
    t = Tenant(server)
    assert t.suppress("kept@example.com").status_code == 201
    r = server.get(t.unsub_path, headers=t.ro)
    assert r.status_code == 200 and r.json()["total"] == 1
    error_of(server.post(t.unsub_path, json={"email": "x@example.com"}, headers=t.ro),
             403, "insufficient_scope")
    error_of(server.delete(f"{t.unsub_path}/kept@example.com", headers=t.ro),
             403, "insufficient_scope")
    error_of(unsub_import(t, "email\nx@example.com\n", headers=t.ro), 403, "insufficient_scope")
    error_of(server.post(f"{t.unsub_path}/import", json={"emails": ["x@example.com"]},
                         headers=t.ro), 403, "insufficient_scope")
    assert t.unsub_emails() == ["kept@example.com"]
