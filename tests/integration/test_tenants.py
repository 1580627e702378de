"""Tenants: create, list (paging and filter), get, patch, delete."""

import re

import pytest

from harness import TIME_RE, UUID_RE, error_of, invalid_field, parse_time

TENANT_FIELDS = {"id", "name", "slug", "status", "plan", "settings", "egress_pool", "created_at",
                 "updated_at"}


def test_create_minimal(server):
    r = server.post("/api/v1/tenants", json={"name": "Acme Mail Co"}, headers=server.op)
    assert r.status_code == 201, r.text
    t = r.json()
    assert set(t) == TENANT_FIELDS
    assert UUID_RE.match(t["id"])
    assert t["name"] == "Acme Mail Co"
    assert t["slug"] == "acme-mail-co"
    assert t["status"] == "active"
    assert t["plan"] == "free"
    assert t["settings"] == {}
    assert TIME_RE.match(t["created_at"]) and t["created_at"] == t["updated_at"]


def test_create_full_and_get(server):
    settings = {"from": "news@example.org", "nested": {"a": [1, 2, {"b": None}]}, "n": 1.5}
    t = server.make_tenant("Full Tenant", slug="full-1", plan="pro", settings=settings)
    assert (t["slug"], t["plan"], t["settings"]) == ("full-1", "pro", settings)
    r = server.get(f"/api/v1/tenants/{t['id']}", headers=server.op)
    assert r.status_code == 200
    assert r.json() == t


def test_unicode_round_trip(server):
    name = "Café Ünïcode 日本 \U0001F4E7"
    settings = {"greeting": "Grüß Gott", "emoji": "\U0001F680", "esc": "tab\tquote\"nl\n"}
    t = server.make_tenant(name, settings=settings)
    assert (t["name"], t["settings"]) == (name, settings)
    got = server.get(f"/api/v1/tenants/{t['id']}", headers=server.op).json()
    assert (got["name"], got["settings"]) == (name, settings)


def test_derived_slug(server):
    cases = [("Hello,   World!", "hello-world"), ("  Trim me  ", "trim-me"),
             ("***", "tenant"), ("ÜBER Café 9", "uber-cafe-9"),
             ("Łódź Œuvre Straße", "lodz-oeuvre-strasse"), ("Smørrebrød Ærø", "smorrebrod-aero"),
             ("Ünïcödé → 東京 ok", "unicode-ok"), ("東京", "tenant")]
    for name, slug in cases:
        t = server.make_tenant(name)
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", t["slug"]), t
        assert t["slug"] == slug or t["slug"].startswith(slug + "-"), (name, t["slug"])


def test_duplicate_explicit_slug_is_409(server):
    server.make_tenant("First", slug="taken-slug")
    r = server.post("/api/v1/tenants", json={"name": "Second", "slug": "taken-slug"},
                    headers=server.op)
    err = error_of(r, 409, "conflict")
    assert "taken-slug" in err["message"]


def test_duplicate_derived_slug_gets_a_suffix(server):
    a = server.make_tenant("Same Name Inc")
    b = server.make_tenant("Same Name Inc")
    assert a["slug"] == "same-name-inc"
    assert re.fullmatch(r"same-name-inc-[0-9a-f]{6}", b["slug"]), b["slug"]
    assert a["id"] != b["id"]


def test_get_missing_is_404(server):
    for tid in ["00000000-0000-4000-8000-000000000000", "nope"]:
        err = error_of(server.get(f"/api/v1/tenants/{tid}", headers=server.op), 404, "not_found")
        assert "tenant" in err["message"]


# ---- patch ----

def test_patch_each_field_and_persist(server):
    t = server.make_tenant("Patch Me", plan="free", settings={"a": 1})
    path = f"/api/v1/tenants/{t['id']}"

    r = server.patch(path, json={"name": "Patched"}, headers=server.op)
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["name"] == "Patched"
    assert (p["slug"], p["plan"], p["settings"], p["status"]) == (
        t["slug"], "free", {"a": 1}, "active")
    assert p["created_at"] == t["created_at"]
    assert parse_time(p["updated_at"]) > parse_time(t["updated_at"])

    r = server.patch(path, json={"plan": "enterprise", "settings": {"b": [2]}}, headers=server.op)
    assert r.status_code == 200
    assert (r.json()["plan"], r.json()["settings"], r.json()["name"]) == (
        "enterprise", {"b": [2]}, "Patched")

    r = server.patch(path, json={"status": "suspended"}, headers=server.op)
    assert r.status_code == 200 and r.json()["status"] == "suspended"

    got = server.get(path, headers=server.op).json()
    assert (got["name"], got["plan"], got["settings"], got["status"]) == (
        "Patched", "enterprise", {"b": [2]}, "suspended")

    r = server.patch(path, json={"status": "active"}, headers=server.op)
    assert r.status_code == 200 and r.json()["status"] == "active"


@pytest.mark.parametrize("body,field", [
    ({"name": ""}, "name"),
    ({"name": None}, "name"),
    ({"name": 1}, "name"),
    ({"name": "a\rb"}, "name"),
    ({"plan": ""}, "plan"),
    ({"status": "deleted"}, "status"),
    ({"status": "bogus"}, "status"),
    ({"status": "ACTIVE"}, "status"),
    ({"status": None}, "status"),
    ({"status": 1}, "status"),
    ({"settings": [1]}, "settings"),
    ({"settings": None}, "settings"),
])
def test_patch_validation(server, body, field):
    t = server.make_tenant("Patch Invalid")
    r = server.patch(f"/api/v1/tenants/{t['id']}", json=body, headers=server.op)
    invalid_field(r, field)
    got = server.get(f"/api/v1/tenants/{t['id']}", headers=server.op).json()
    assert got == t


def test_patch_missing_is_404(server):
    r = server.patch("/api/v1/tenants/00000000-0000-4000-8000-000000000000",
                     json={"name": "x"}, headers=server.op)
    error_of(r, 404, "not_found")


# ---- delete ----

def test_delete(server):
    t = server.make_tenant("Delete Me")
    path = f"/api/v1/tenants/{t['id']}"
    r = server.delete(path, headers=server.op)
    assert r.status_code == 204
    assert r.content == b""
    error_of(server.get(path, headers=server.op), 404, "not_found")
    error_of(server.delete(path, headers=server.op), 404, "not_found")
    error_of(server.patch(path, json={"name": "Back"}, headers=server.op), 404, "not_found")
    error_of(server.post(path + "/api-keys", json={}, headers=server.op), 404, "not_found")
    error_of(server.get(path + "/api-keys", headers=server.op), 404, "not_found")
    error_of(server.get(path + "/rate-limits", headers=server.op), 404, "not_found")
    error_of(server.put(path + "/rate-limits", json={"per_minute": 5}, headers=server.op),
             404, "not_found")
    ids = [x["id"] for x in server.get("/api/v1/tenants?limit=1000",
                                       headers=server.op).json()["data"]]
    assert t["id"] not in ids


def test_deleted_tenant_slug_stays_reserved_or_reusable_consistently(server):
    # Deletion is soft; creating a tenant with the same explicit slug must
    # answer cleanly (201 or 409), never a server error.
    t = server.make_tenant("Slug Holder", slug="slug-holder")
    assert server.delete(f"/api/v1/tenants/{t['id']}", headers=server.op).status_code == 204
    r = server.post("/api/v1/tenants", json={"name": "New Holder", "slug": "slug-holder"},
                    headers=server.op)
    assert r.status_code in (201, 409), r.text


# ---- list: a server of its own, so the counts are exact ----

def test_list_paging_and_filter(server_factory):
    srv = server_factory()
    op = srv.op

    r = srv.get("/api/v1/tenants", headers=op)
    assert r.status_code == 200
    assert r.json() == {"data": [], "total": 0, "limit": 50, "offset": 0}

    made = [srv.make_tenant(f"List {i}") for i in range(5)]
    r = srv.get("/api/v1/tenants", headers=op).json()
    assert r["total"] == 5 and r["limit"] == 50 and r["offset"] == 0
    # Newest first.
    assert [t["id"] for t in r["data"]] == [t["id"] for t in reversed(made)]
    assert all(set(t) == TENANT_FIELDS for t in r["data"])

    p1 = srv.get("/api/v1/tenants?limit=2", headers=op).json()
    p2 = srv.get("/api/v1/tenants?limit=2&offset=2", headers=op).json()
    p3 = srv.get("/api/v1/tenants?limit=2&offset=4", headers=op).json()
    p4 = srv.get("/api/v1/tenants?limit=2&offset=6", headers=op).json()
    assert (p1["limit"], p1["offset"], p1["total"]) == (2, 0, 5)
    assert (p2["limit"], p2["offset"], p2["total"]) == (2, 2, 5)
    assert [len(p["data"]) for p in (p1, p2, p3, p4)] == [2, 2, 1, 0]
    assert p4["total"] == 5
    paged = [t["id"] for p in (p1, p2, p3) for t in p["data"]]
    assert paged == [t["id"] for t in reversed(made)]

    assert srv.get("/api/v1/tenants?limit=1000", headers=op).json()["limit"] == 1000
    assert len(srv.get("/api/v1/tenants?limit=1", headers=op).json()["data"]) == 1

    # Filter by status; deleted tenants are never listed.
    srv.patch(f"/api/v1/tenants/{made[1]['id']}", json={"status": "suspended"}, headers=op)
    srv.patch(f"/api/v1/tenants/{made[3]['id']}", json={"status": "suspended"}, headers=op)
    srv.delete(f"/api/v1/tenants/{made[0]['id']}", headers=op)
    s = srv.get("/api/v1/tenants?status=suspended", headers=op).json()
    assert s["total"] == 2
    assert {t["id"] for t in s["data"]} == {made[1]["id"], made[3]["id"]}
    a = srv.get("/api/v1/tenants?status=active", headers=op).json()
    assert a["total"] == 2
    assert {t["id"] for t in a["data"]} == {made[2]["id"], made[4]["id"]}
    assert srv.get("/api/v1/tenants", headers=op).json()["total"] == 4
    s1 = srv.get("/api/v1/tenants?status=suspended&limit=1&offset=1", headers=op).json()
    assert s1["total"] == 2 and len(s1["data"]) == 1


@pytest.mark.parametrize("query,field", [
    ("limit=0", "limit"),
    ("limit=-1", "limit"),
    ("limit=1001", "limit"),
    ("limit=abc", "limit"),
    ("limit=1.5", "limit"),
    ("limit=", "limit"),
    ("limit=%2010", "limit"),
    ("offset=-1", "offset"),
    ("offset=x", "offset"),
    ("offset=", "offset"),
    ("status=deleted", "status"),
    ("status=bogus", "status"),
    ("status=", "status"),
])
def test_list_bad_query_is_422(server, query, field):
    invalid_field(server.get(f"/api/v1/tenants?{query}", headers=server.op), field)


def test_list_trailing_slash(server):
    r = server.get("/api/v1/tenants/", headers=server.op)
    assert r.status_code == 200 and "data" in r.json()


def test_max_page_size_bounds_limit(server_factory):
    srv = server_factory(args=["--max-page-size", "3"])
    for i in range(4):
        srv.make_tenant(f"Paged {i}")
    r = srv.get("/api/v1/tenants", headers=srv.op).json()
    assert (r["limit"], len(r["data"]), r["total"]) == (3, 3, 4)
    assert len(srv.get("/api/v1/tenants?limit=3", headers=srv.op).json()["data"]) == 3
    err = invalid_field(srv.get("/api/v1/tenants?limit=4", headers=srv.op), "limit")
    assert "3" in err["message"]
