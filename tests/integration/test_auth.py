"""Authentication and tenant isolation: the operator key, tenant keys in
both headers, scopes, revoked, expired and suspended cases, and one
tenant's key against another tenant."""

import datetime
import time

import pytest

from harness import OPERATOR_KEY, bearer, error_of

MISSING_ID = "00000000-0000-4000-8000-000000000000"


def rl(tid):
    return f"/api/v1/tenants/{tid}/rate-limits"


@pytest.fixture(scope="module")
def two(server):
    """Two tenants, A and B, each with a read-write and a read-only key."""
    a = server.make_tenant("Isolation A")
    b = server.make_tenant("Isolation B")
    return {
        "a": a, "b": b,
        "a_rw": server.make_key(a["id"])["key"],
        "a_ro": server.make_key(a["id"], scopes=["read"])["key"],
        "b_rw": server.make_key(b["id"])["key"],
    }


def operator_routes(tid):
    """Every operator-only route, with a body where one is needed."""
    return [
        ("POST", "/api/v1/tenants", {"name": "Nope"}),
        ("GET", "/api/v1/tenants", None),
        ("GET", f"/api/v1/tenants/{tid}", None),
        ("PATCH", f"/api/v1/tenants/{tid}", {"name": "Hijacked"}),
        ("DELETE", f"/api/v1/tenants/{tid}", None),
        ("POST", f"/api/v1/tenants/{tid}/api-keys", {}),
        ("GET", f"/api/v1/tenants/{tid}/api-keys", None),
        ("DELETE", f"/api/v1/tenants/{tid}/api-keys/{MISSING_ID}", None),
        ("PUT", rl(tid), {"per_minute": 1}),
    ]


# ---- no key, bad keys ----

def test_missing_key_is_401_everywhere(server, two):
    tid = two["a"]["id"]
    for method, path, body in operator_routes(tid) + [("GET", rl(tid), None)]:
        r = server.request(method, path, json=body)
        err = error_of(r, 401, "unauthorized")
        assert "key" in err["message"].lower()


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer "},
    {"Authorization": "Bearer wrong-operator-key-0123456789abcdef"},
    {"Authorization": f"Basic {OPERATOR_KEY}"},
    {"Authorization": OPERATOR_KEY},
    {"X-API-Key": ""},
    {"X-API-Key": "wrong"},
    {"X-API-Key": OPERATOR_KEY[:-1]},
    {"X-API-Key": OPERATOR_KEY + "x"},
    {"X-API-Key": "mck_000000000000_" + "0" * 64},
])
def test_bad_keys_are_401(server, headers):
    error_of(server.get("/api/v1/tenants", headers=headers), 401, "unauthorized")


def test_tenant_key_with_a_wrong_secret_is_401(server, two):
    key = two["a_rw"]
    forged = key[:-1] + ("0" if key[-1] != "0" else "1")
    error_of(server.get(rl(two["a"]["id"]), headers=bearer(forged)), 401, "unauthorized")
    truncated = key[:-1]
    error_of(server.get(rl(two["a"]["id"]), headers=bearer(truncated)), 401, "unauthorized")


# ---- the operator key ----

def test_operator_key_in_either_header(server):
    assert server.get("/api/v1/tenants", headers=bearer(OPERATOR_KEY)).status_code == 200
    assert server.get("/api/v1/tenants",
                      headers={"Authorization": f"bearer {OPERATOR_KEY}"}).status_code == 200
    assert server.get("/api/v1/tenants", headers={"X-API-Key": OPERATOR_KEY}).status_code == 200


def test_operator_reads_any_tenant_rate_limits(server, two):
    for t in (two["a"], two["b"]):
        r = server.get(rl(t["id"]), headers=server.op)
        assert r.status_code == 200 and r.json()["per_minute"] >= 1


def test_operator_on_a_missing_tenant_is_404(server):
    for tid in [MISSING_ID, "not-a-uuid", "1"]:
        for method, path, body in operator_routes(tid)[2:] + [("GET", rl(tid), None)]:
            r = server.request(method, path, json=body, headers=server.op)
            error_of(r, 404, "not_found")


def test_uppercase_tenant_id_in_path_is_the_same_tenant(server, two):
    a = two["a"]
    r = server.get(f"/api/v1/tenants/{a['id'].upper()}", headers=server.op)
    assert r.status_code == 200 and r.json()["id"] == a["id"]
    r = server.get(rl(a["id"].upper()), headers=bearer(two["a_rw"]))
    assert r.status_code == 200


# ---- tenant keys ----

def test_tenant_key_reads_its_own_rate_limits(server, two):
    tid = two["a"]["id"]
    for headers in (bearer(two["a_rw"]), {"X-API-Key": two["a_rw"]},
                    bearer(two["a_ro"]), {"X-API-Key": two["a_ro"]}):
        r = server.get(rl(tid), headers=headers)
        assert r.status_code == 200, r.text
        assert set(r.json()) >= {"per_minute", "per_hour", "per_day", "enabled"}


def test_authorization_header_wins_over_x_api_key(server, two):
    tid = two["a"]["id"]
    r = server.get(rl(tid), headers={"Authorization": "Bearer nonsense", "X-API-Key": two["a_rw"]})
    error_of(r, 401, "unauthorized")
    r = server.get(rl(tid), headers={"Authorization": f"Bearer {two['a_rw']}",
                                     "X-API-Key": "nonsense"})
    assert r.status_code == 200


@pytest.mark.parametrize("which", ["a_rw", "a_ro"])
def test_tenant_key_on_operator_routes_is_403(server, two, which):
    key = two[which]
    for tid in (two["a"]["id"], two["b"]["id"]):
        for method, path, body in operator_routes(tid):
            r = server.request(method, path, json=body, headers=bearer(key))
            err = error_of(r, 403, "forbidden")
            assert "operator" in err["message"]
    # Nothing changed.
    t = server.get(f"/api/v1/tenants/{two['a']['id']}", headers=server.op).json()
    assert t["name"] == "Isolation A" and t["status"] == "active"
    assert server.get(rl(two["a"]["id"]), headers=server.op).json()["per_minute"] != 1


def test_tenant_key_cannot_see_another_tenant(server, two):
    # B's data does not exist for A's key, and A's for B's key.
    for key, other in [(two["a_rw"], two["b"]["id"]), (two["a_ro"], two["b"]["id"]),
                       (two["b_rw"], two["a"]["id"])]:
        err = error_of(server.get(rl(other), headers=bearer(key)), 404, "not_found")
        assert "tenant" in err["message"]
    # Nor does a tenant that does not exist at all: same answer.
    error_of(server.get(rl(MISSING_ID), headers=bearer(two["a_rw"])), 404, "not_found")
    error_of(server.get(rl("garbage"), headers=bearer(two["a_rw"])), 404, "not_found")


def test_cross_tenant_answers_do_not_leak_data(server, two):
    server.put(rl(two["b"]["id"]), json={"per_minute": 4242}, headers=server.op)
    r = server.get(rl(two["b"]["id"]), headers=bearer(two["a_rw"]))
    assert r.status_code == 404
    assert "4242" not in r.text


def test_key_use_records_last_used_at(server):
    t = server.make_tenant()
    k = server.make_key(t["id"])
    assert k["last_used_at"] is None
    assert server.get(rl(t["id"]), headers=bearer(k["key"])).status_code == 200
    keys = server.get(f"/api/v1/tenants/{t['id']}/api-keys", headers=server.op).json()["data"]
    (row,) = [x for x in keys if x["id"] == k["id"]]
    assert row["last_used_at"] is not None


# ---- revoked, expired, suspended, deleted ----

def test_revoked_key_is_401_and_others_keep_working(server):
    t = server.make_tenant()
    k1 = server.make_key(t["id"])
    k2 = server.make_key(t["id"])
    assert server.get(rl(t["id"]), headers=bearer(k1["key"])).status_code == 200
    r = server.delete(f"/api/v1/tenants/{t['id']}/api-keys/{k1['id']}", headers=server.op)
    assert r.status_code == 204
    err = error_of(server.get(rl(t["id"]), headers=bearer(k1["key"])), 401, "unauthorized")
    assert "revoked" in err["message"]
    error_of(server.get(rl(t["id"]), headers={"X-API-Key": k1["key"]}), 401, "unauthorized")
    assert server.get(rl(t["id"]), headers=bearer(k2["key"])).status_code == 200


def test_expired_key_is_401(server):
    t = server.make_tenant()
    soon = (datetime.datetime.now(datetime.timezone.utc)
            + datetime.timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    k = server.make_key(t["id"], expires_at=soon)
    assert k["expires_at"] is not None and k["status"] == "active"
    assert server.get(rl(t["id"]), headers=bearer(k["key"])).status_code == 200
    time.sleep(max(0.0, datetime.datetime.strptime(soon, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp() - time.time()) + 0.3)
    err = error_of(server.get(rl(t["id"]), headers=bearer(k["key"])), 401, "unauthorized")
    assert "expired" in err["message"]
    keys = server.get(f"/api/v1/tenants/{t['id']}/api-keys", headers=server.op).json()["data"]
    assert [x["status"] for x in keys if x["id"] == k["id"]] == ["expired"]


def test_suspended_tenant_key_is_403_until_reactivated(server):
    t = server.make_tenant()
    k = server.make_key(t["id"])
    ro = server.make_key(t["id"], scopes=["read"])
    path = f"/api/v1/tenants/{t['id']}"
    r = server.patch(path, json={"status": "suspended"}, headers=server.op)
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    for key in (k["key"], ro["key"]):
        error_of(server.get(rl(t["id"]), headers=bearer(key)), 403, "tenant_suspended")
    # The operator still reaches the suspended tenant.
    assert server.get(rl(t["id"]), headers=server.op).status_code == 200
    r = server.patch(path, json={"status": "active"}, headers=server.op)
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert server.get(rl(t["id"]), headers=bearer(k["key"])).status_code == 200


def test_suspended_tenant_key_on_another_tenant_is_404(server, two):
    t = server.make_tenant()
    k = server.make_key(t["id"])
    server.patch(f"/api/v1/tenants/{t['id']}", json={"status": "suspended"}, headers=server.op)
    error_of(server.get(rl(two["a"]["id"]), headers=bearer(k["key"])), 404, "not_found")


def test_deleted_tenant_keys_are_401(server):
    t = server.make_tenant()
    k = server.make_key(t["id"])
    ro = server.make_key(t["id"], scopes=["read"])
    assert server.get(rl(t["id"]), headers=bearer(k["key"])).status_code == 200
    r = server.delete(f"/api/v1/tenants/{t['id']}", headers=server.op)
    assert r.status_code == 204
    for key in (k["key"], ro["key"]):
        error_of(server.get(rl(t["id"]), headers=bearer(key)), 401, "unauthorized")
