"""Tenant API keys: create (secret shown once), list, revoke."""

import datetime

import pytest

from harness import TENANT_KEY_RE, TIME_RE, UUID_RE, bearer, error_of, invalid_field, parse_time

KEY_FIELDS = {"id", "tenant_id", "name", "prefix", "scopes", "status", "expires_at",
              "last_used_at", "revoked_at", "created_at"}


def keys_path(tid):
    return f"/api/v1/tenants/{tid}/api-keys"


def future(seconds=3600):
    return (datetime.datetime.now(datetime.timezone.utc)
            + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_create_without_body(server):
    t = server.make_tenant()
    r = server.post(keys_path(t["id"]), headers=server.op)
    assert r.status_code == 201, r.text
    k = r.json()
    assert set(k) == KEY_FIELDS | {"key"}
    assert TENANT_KEY_RE.match(k["key"]), k["key"]
    assert k["prefix"] == k["key"][:16]
    assert UUID_RE.match(k["id"]) and k["tenant_id"] == t["id"]
    assert k["name"] == "default"
    assert k["scopes"] == ["read", "write"]
    assert k["status"] == "active"
    assert k["expires_at"] is None and k["revoked_at"] is None and k["last_used_at"] is None
    assert TIME_RE.match(k["created_at"])
    # It works.
    assert server.get(f"/api/v1/tenants/{t['id']}/rate-limits",
                      headers=bearer(k["key"])).status_code == 200


def test_create_with_fields(server):
    t = server.make_tenant()
    exp = future()
    k = server.make_key(t["id"], scopes=["read"], name="reporting", expires_at=exp)
    assert k["name"] == "reporting"
    assert k["scopes"] == ["read"]
    assert parse_time(k["expires_at"]) == parse_time(exp)
    assert k["status"] == "active"


@pytest.mark.parametrize("scopes,want", [
    (["read"], ["read"]),
    (["write"], ["read", "write"]),
    (["read", "write"], ["read", "write"]),
    (["write", "read", "read"], ["read", "write"]),
])
def test_scopes(server, scopes, want):
    t = server.make_tenant()
    assert server.make_key(t["id"], scopes=scopes)["scopes"] == want


def test_expires_at_may_be_null_or_offset(server):
    t = server.make_tenant()
    assert server.make_key(t["id"], expires_at=None)["expires_at"] is None
    later = (datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=2)))
             + datetime.timedelta(days=1)).replace(microsecond=0)
    k = server.make_key(t["id"], expires_at=later.isoformat())
    assert parse_time(k["expires_at"]) == later


@pytest.mark.parametrize("body,field", [
    ({"scopes": []}, "scopes"),
    ({"scopes": ["admin"]}, "scopes"),
    ({"scopes": ["read", "admin"]}, "scopes"),
    ({"scopes": "read"}, "scopes"),
    ({"scopes": [1]}, "scopes"),
    ({"scopes": None}, "scopes"),
    ({"scopes": ["READ"]}, "scopes"),
    ({"name": ""}, "name"),
    ({"name": 5}, "name"),
    ({"name": "a\nb"}, "name"),
    ({"name": "n" * 256}, "name"),
    ({"expires_at": "tomorrow"}, "expires_at"),
    ({"expires_at": "2030-13-01T00:00:00Z"}, "expires_at"),
    ({"expires_at": "2030-01-01"}, "expires_at"),
    ({"expires_at": 1893456000}, "expires_at"),
    ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
])
def test_create_validation(server, body, field):
    t = server.make_tenant()
    r = server.post(keys_path(t["id"]), json=body, headers=server.op)
    invalid_field(r, field)
    # No key was made.
    assert server.get(keys_path(t["id"]), headers=server.op).json()["total"] == 0


def test_expires_at_in_the_past_message(server):
    t = server.make_tenant()
    past = (datetime.datetime.now(datetime.timezone.utc)
            - datetime.timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    err = invalid_field(server.post(keys_path(t["id"]), json={"expires_at": past},
                                    headers=server.op), "expires_at")
    assert "future" in err["message"]


def test_list_never_shows_the_secret(server):
    t = server.make_tenant()
    other = server.make_tenant()
    made = [server.make_key(t["id"], name=f"k{i}") for i in range(3)]
    server.make_key(other["id"])
    r = server.get(keys_path(t["id"]), headers=server.op)
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 3 and body["limit"] == 50 and body["offset"] == 0
    assert {k["id"] for k in body["data"]} == {k["id"] for k in made}
    for row in body["data"]:
        assert set(row) == KEY_FIELDS, row
        assert row["tenant_id"] == t["id"]
    for k in made:
        assert k["key"] not in r.text
        assert k["key"][17:] not in r.text
    by_id = {row["id"]: row for row in body["data"]}
    for k in made:
        assert by_id[k["id"]]["prefix"] == k["prefix"]
        assert by_id[k["id"]]["name"] == k["name"]

    page = server.get(keys_path(t["id"]) + "?limit=2&offset=1", headers=server.op).json()
    assert (page["total"], page["limit"], page["offset"], len(page["data"])) == (3, 2, 1, 2)
    invalid_field(server.get(keys_path(t["id"]) + "?limit=0", headers=server.op), "limit")


def test_revoke(server):
    t = server.make_tenant()
    k = server.make_key(t["id"])
    path = f"{keys_path(t['id'])}/{k['id']}"
    r = server.delete(path, headers=server.op)
    assert r.status_code == 204 and r.content == b""
    error_of(server.get(f"/api/v1/tenants/{t['id']}/rate-limits", headers=bearer(k["key"])),
             401, "unauthorized")
    rows = server.get(keys_path(t["id"]), headers=server.op).json()["data"]
    (row,) = [x for x in rows if x["id"] == k["id"]]
    assert row["status"] == "revoked" and TIME_RE.match(row["revoked_at"])
    # Revoking again is a 404, as a second DELETE is everywhere, and keeps
    # the first revocation time.
    error_of(server.delete(path, headers=server.op), 404, "not_found")
    rows = server.get(keys_path(t["id"]), headers=server.op).json()["data"]
    assert [x["revoked_at"] for x in rows if x["id"] == k["id"]] == [row["revoked_at"]]


def test_revoke_missing_key_is_404(server):
    t = server.make_tenant()
    for kid in ["00000000-0000-4000-8000-000000000000", "nope"]:
        error_of(server.delete(f"{keys_path(t['id'])}/{kid}", headers=server.op),
                 404, "not_found")


def test_revoke_through_another_tenant_is_404_and_key_survives(server):
    a = server.make_tenant()
    b = server.make_tenant()
    ka = server.make_key(a["id"])
    r = server.delete(f"{keys_path(b['id'])}/{ka['id']}", headers=server.op)
    error_of(r, 404, "not_found")
    assert server.get(f"/api/v1/tenants/{a['id']}/rate-limits",
                      headers=bearer(ka["key"])).status_code == 200
    rows = server.get(keys_path(a["id"]), headers=server.op).json()["data"]
    assert [x["status"] for x in rows if x["id"] == ka["id"]] == ["active"]


def test_keys_of_a_missing_tenant_are_404(server):
    tid = "00000000-0000-4000-8000-000000000000"
    error_of(server.post(keys_path(tid), json={}, headers=server.op), 404, "not_found")
    error_of(server.get(keys_path(tid), headers=server.op), 404, "not_found")


def test_each_key_is_unique(server):
    t = server.make_tenant()
    keys = [server.make_key(t["id"]) for _ in range(5)]
    assert len({k["key"] for k in keys}) == 5
    assert len({k["prefix"] for k in keys}) == 5
    assert len({k["id"] for k in keys}) == 5
