"""REST conventions every resource keeps (issue 14): Location on every 201,
WWW-Authenticate on 401, PATCH as the partial update beside the seed's PUT,
the same answer to a second DELETE everywhere, 202 for work done later, no
201 for an import that created nothing, and the key headers rule."""

import pytest

from campaignhelp import Tenant, accepted_of
from harness import bearer, error_of

CSV = {"Content-Type": "text/csv"}


def test_every_201_has_a_location_that_names_what_was_created(server):
    t = Tenant(server)
    lst_r = server.post(t.lists_path(), json={"name": "L"}, headers=t.h)
    lst = lst_r.json()
    created = {
        "tenant": server.post("/api/v1/tenants", json={"name": "Located"}, headers=server.op),
        "api key": server.post(f"{t.base}/api-keys", json={"name": "k"}, headers=server.op),
        "list": lst_r,
        "recipient": server.post(t.rcpt_path(lst["id"]), json={"email": "a@example.com"},
                                 headers=t.h),
        "campaign": t.post_campaign({"name": "c", "subject": "s", "from_address": "f@example.com",
                                     "text_body": "x", "recipient_list_id": lst["id"]}),
        "dkim key": server.post(f"{t.base}/dkim-keys",
                                json={"domain": "example.com", "selector": "loc"}, headers=t.h),
        "unsubscribe": server.post(f"{t.base}/unsubscribes", json={"email": "u+x@example.com"},
                                   headers=t.h),
        "import": server.post(t.rcpt_path(lst["id"]) + "/import",
                              data="email\nb@example.com\n", headers={**t.h, **CSV}),
        "unsubscribe import": server.post(f"{t.base}/unsubscribes/import",
                                          data="email\nv@example.com\n", headers={**t.h, **CSV}),
    }
    for what, r in created.items():
        assert r.status_code == 201, (what, r.text)
        loc = r.headers.get("Location")
        assert loc and loc.startswith("/api/v1/tenants/"), (what, r.headers)
    for what in ("tenant", "list", "recipient", "campaign"):
        r = created[what]
        assert created[what].headers["Location"].endswith("/" + r.json()["id"])
        got = server.get(r.headers["Location"], headers=server.op)
        assert got.status_code == 200 and got.json()["id"] == r.json()["id"], what
    for what in ("api key", "dkim key"):
        assert created[what].headers["Location"].endswith("/" + created[what].json()["id"])
    assert created["unsubscribe"].headers["Location"] == f"{t.base}/unsubscribes/u+x@example.com"
    assert created["import"].headers["Location"] == t.rcpt_path(lst["id"])
    assert created["unsubscribe import"].headers["Location"] == f"{t.base}/unsubscribes"


def test_an_import_that_created_nothing_is_200(server):
    t = Tenant(server)
    lst = server.post(t.lists_path(), json={"name": "L"}, headers=t.h).json()
    path = t.rcpt_path(lst["id"]) + "/import"
    body = "email\nsame@example.com\n"
    assert server.post(path, data=body, headers={**t.h, **CSV}).status_code == 201
    again = server.post(path, data=body, headers={**t.h, **CSV})
    assert again.status_code == 200, again.text
    assert again.json()["imported"] == 0 and again.json()["skipped_duplicates"] == 1
    assert "Location" not in again.headers
    up = server.post(path + "?mode=upsert", data="email,name\nsame@example.com,Sam\n",
                     headers={**t.h, **CSV})
    assert up.status_code == 200 and up.json()["updated"] == 1, up.text
    none = server.post(path, json={"recipients": [{"email": "bad"}]}, headers=t.h)
    assert none.status_code == 200 and none.json()["invalid"] == 1, none.text
    u = f"{t.base}/unsubscribes/import"
    assert server.post(u, data="email\nw@example.com\n", headers={**t.h, **CSV}).status_code == 201
    assert server.post(u, data="email\nw@example.com\n", headers={**t.h, **CSV}).status_code == 200


def test_import_json_with_a_repeated_key_is_refused(server):
    """The server refuses a repeated key in an import body as in every JSON
    body (the spec said the last one wins; it now says what happens)."""
    t = Tenant(server)
    lst = server.post(t.lists_path(), json={"name": "L"}, headers=t.h).json()
    raw = '{"recipients":[{"email":"one@example.com","email":"two@example.com"}]}'
    r = server.post(t.rcpt_path(lst["id"]) + "/import", data=raw,
                    headers={**t.h, "Content-Type": "application/json"})
    error_of(r, 400, "malformed_json")
    raw = '{"emails":["x@example.com"],"emails":["y@example.com"]}'
    r = server.post(f"{t.base}/unsubscribes/import", data=raw,
                    headers={**t.h, "Content-Type": "application/json"})
    error_of(r, 400, "malformed_json")
    assert server.get(t.rcpt_path(lst["id"]), headers=t.h).json()["total"] == 0


def test_401_names_the_bearer_scheme(server):
    t = Tenant(server)
    for headers in ({}, bearer("mck_000000000000_" + "0" * 64), {"X-API-Key": "nope"}):
        r = server.get(f"{t.base}/rate-limits", headers=headers)
        error_of(r, 401, "unauthorized")
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="mailcast"'
    assert "WWW-Authenticate" not in server.get(f"{t.base}/rate-limits", headers=t.h).headers


def test_a_proxys_basic_authorization_does_not_hide_x_api_key(server):
    t = Tenant(server)
    basic = {"Authorization": "Basic dXNlcjpwYXNz"}
    r = server.get(f"{t.base}/rate-limits", headers={**basic, "X-API-Key": t.key})
    assert r.status_code == 200, r.text
    error_of(server.get(f"{t.base}/rate-limits", headers=basic), 401, "unauthorized")
    # A Bearer credential comes first: a wrong one is not rescued by X-API-Key.
    r = server.get(f"{t.base}/rate-limits",
                   headers={**bearer("wrong-key-000000000000000"), "X-API-Key": t.key})
    error_of(r, 401, "unauthorized")


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_patch_is_the_partial_update_put_is(server, method):
    t = Tenant(server)
    lst = server.post(t.lists_path(), json={"name": "L", "description": "d"}, headers=t.h).json()
    r = server.request(method, t.lists_path(lst["id"]), json={"name": "L2"}, headers=t.h)
    assert r.status_code == 200 and (r.json()["name"], r.json()["description"]) == ("L2", "d")

    x = server.post(t.rcpt_path(lst["id"]), json={"email": "p@example.com", "name": "P"},
                    headers=t.h).json()
    r = server.request(method, t.rcpt_path(lst["id"], x["id"]), json={"status": "unsubscribed"},
                       headers=t.h)
    assert r.status_code == 200 and (r.json()["status"], r.json()["name"]) == (
        "unsubscribed", "P")

    c = t.create()
    r = server.request(method, t.camp_path(c["id"]), json={"subject": "New"}, headers=t.h)
    assert r.status_code == 200 and (r.json()["subject"], r.json()["name"]) == ("New", c["name"])

    r = server.request(method, f"{t.base}/rate-limits", json={"per_hour": 1234},
                       headers=server.op)
    assert r.status_code == 200 and r.json()["per_hour"] == 1234
    assert r.json()["per_minute"] == 100  # untouched
    # The same validation either way.
    r = server.request(method, f"{t.base}/rate-limits", json={"per_hour": 0}, headers=server.op)
    assert error_of(r, 422, "validation_error")["field"] == "per_hour"
    # A read-only key may do neither.
    error_of(server.request(method, t.lists_path(lst["id"]), json={"name": "x"}, headers=t.ro),
             403, "insufficient_scope")


def test_a_second_delete_is_404_on_every_resource(server):
    t = Tenant(server)
    lst = t.make_list(1)
    x = server.post(t.rcpt_path(lst["id"]), json={"email": "d@example.com"}, headers=t.h).json()
    c = t.create(recipient_list_id=lst["id"])
    dk = server.post(f"{t.base}/dkim-keys", json={"domain": "example.com", "selector": "del"},
                     headers=t.h).json()
    assert t.suppress("gone@example.com").status_code == 201
    k = server.make_key(t.id)
    other = server.make_tenant()
    targets = [
        (t.camp_path(c["id"]), t.h), (t.rcpt_path(lst["id"], x["id"]), t.h),
        (f"{t.base}/dkim-keys/{dk['id']}", t.h), (f"{t.base}/unsubscribes/gone@example.com", t.h),
        (f"{t.base}/api-keys/{k['id']}", server.op), (t.lists_path(lst["id"]), t.h),
        (f"/api/v1/tenants/{other['id']}", server.op),
    ]
    for path, headers in targets:
        first = server.delete(path, headers=headers)
        assert first.status_code == 204 and first.content == b"", (path, first.text)
        error_of(server.delete(path, headers=headers), 404, "not_found")


def test_send_and_schedule_are_202_and_say_what_happens_next(server):
    t = Tenant(server)
    _, c = t.ready(2)
    r = t.action(c["id"], "send")
    body = accepted_of(r, t.camp_path(c["id"]))
    assert body["status"] == "sending" and "stats_url" in body["next"]
    stats = server.get(r.headers["Location"], headers=t.h)
    assert stats.status_code == 200 and stats.json()["campaign_id"] == c["id"]
    _, d = t.ready(1)
    body = accepted_of(t.action(d["id"], "schedule", {"scheduled_at": "2099-01-01T00:00:00Z"}),
                       t.camp_path(d["id"]))
    assert (body["status"], body["scheduled_at"]) == ("scheduled", "2099-01-01T00:00:00Z")
