"""A tenant's rate-limit configuration: defaults, updates, validation."""

import pytest

from harness import TIME_RE, bearer, error_of, invalid_field

DEFAULTS = {"per_second": None, "per_minute": 100, "per_hour": 5000, "per_day": 50000, "enabled": True,
            "updated_at": None}
INT32_MAX = 2147483647


def rl(tid):
    return f"/api/v1/tenants/{tid}/rate-limits"


def limits(server, tid):
    r = server.get(rl(tid), headers=server.op)
    assert r.status_code == 200, r.text
    return r.json()


def test_defaults(server):
    t = server.make_tenant()
    assert limits(server, t["id"]) == DEFAULTS
    k = server.make_key(t["id"], scopes=["read"])
    r = server.get(rl(t["id"]), headers=bearer(k["key"]))
    assert r.status_code == 200 and r.json() == DEFAULTS


def test_put_subset_keeps_the_rest(server):
    t = server.make_tenant()
    r = server.put(rl(t["id"]), json={"per_minute": 10}, headers=server.op)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {k: body[k] for k in ("per_minute", "per_hour", "per_day", "enabled")} == {
        "per_minute": 10, "per_hour": 5000, "per_day": 50000, "enabled": True}
    assert TIME_RE.match(body["updated_at"])
    assert limits(server, t["id"]) == body

    r = server.put(rl(t["id"]), json={"enabled": False}, headers=server.op)
    assert r.status_code == 200
    assert (r.json()["per_minute"], r.json()["enabled"]) == (10, False)

    r = server.put(rl(t["id"]), json={"per_hour": 600, "per_day": 7000}, headers=server.op)
    got = limits(server, t["id"])
    assert (got["per_minute"], got["per_hour"], got["per_day"], got["enabled"]) == (
        10, 600, 7000, False)
    assert r.json() == got

    # The tenant's own key sees the same.
    k = server.make_key(t["id"])
    assert server.get(rl(t["id"]), headers=bearer(k["key"])).json() == got


def test_put_all_fields_and_bounds(server):
    t = server.make_tenant()
    body = {"per_minute": 1, "per_hour": INT32_MAX, "per_day": INT32_MAX, "enabled": True}
    r = server.put(rl(t["id"]), json=body, headers=server.op)
    assert r.status_code == 200, r.text
    got = limits(server, t["id"])
    assert {k: got[k] for k in body} == body


def test_per_second_set_and_removed(server):
    t = server.make_tenant()
    r = server.put(rl(t["id"]), json={"per_second": 14}, headers=server.op)
    assert r.status_code == 200, r.text
    assert r.json()["per_second"] == 14 and r.json()["per_minute"] == 100
    assert limits(server, t["id"])["per_second"] == 14
    r = server.put(rl(t["id"]), json={"per_minute": 50}, headers=server.op)
    assert (r.json()["per_second"], r.json()["per_minute"]) == (14, 50)
    for edge in (1, INT32_MAX):
        r = server.put(rl(t["id"]), json={"per_second": edge}, headers=server.op)
        assert r.status_code == 200 and r.json()["per_second"] == edge
    r = server.put(rl(t["id"]), json={"per_second": None}, headers=server.op)
    assert r.status_code == 200 and r.json()["per_second"] is None
    assert limits(server, t["id"])["per_second"] is None


def test_limits_are_per_tenant(server):
    a = server.make_tenant()
    b = server.make_tenant()
    assert server.put(rl(a["id"]), json={"per_minute": 7}, headers=server.op).status_code == 200
    assert limits(server, a["id"])["per_minute"] == 7
    assert limits(server, b["id"]) == DEFAULTS


BAD_INTS = [0, -1, -2147483648, 2147483648, 9223372036854775807, 1.5, 10.0, "10", True,
            False, None, [], {}]


# null is valid for per_second: it removes the limit (test_per_second_set_and_removed).
@pytest.mark.parametrize("field,value", [
    (f, v) for f in ("per_second", "per_minute", "per_hour", "per_day") for v in BAD_INTS
    if not (f == "per_second" and v is None)], ids=repr)
def test_put_invalid_int(server, field, value):
    t = server.make_tenant()
    r = server.put(rl(t["id"]), json={field: value}, headers=server.op)
    err = invalid_field(r, field)
    assert field in err["message"]
    assert limits(server, t["id"]) == DEFAULTS


@pytest.mark.parametrize("value", ["true", 1, 0, None, [], "yes"], ids=repr)
def test_put_invalid_enabled(server, value):
    t = server.make_tenant()
    invalid_field(server.put(rl(t["id"]), json={"enabled": value}, headers=server.op), "enabled")
    assert limits(server, t["id"]) == DEFAULTS


def test_one_bad_field_rejects_the_whole_update(server):
    t = server.make_tenant()
    r = server.put(rl(t["id"]), json={"per_minute": 5, "per_day": 0}, headers=server.op)
    invalid_field(r, "per_day")
    assert limits(server, t["id"]) == DEFAULTS


@pytest.mark.parametrize("body", [{}, {"unknown": 5}, {"perMinute": 5}])
def test_put_nothing_is_422(server, body):
    t = server.make_tenant()
    r = server.put(rl(t["id"]), json=body, headers=server.op)
    err = error_of(r, 422, "validation_error")
    assert "field" in err
    assert limits(server, t["id"]) == DEFAULTS


def test_put_needs_the_operator(server):
    t = server.make_tenant()
    k = server.make_key(t["id"])
    error_of(server.put(rl(t["id"]), json={"per_minute": 1}, headers=bearer(k["key"])),
             403, "forbidden")
    assert limits(server, t["id"]) == DEFAULTS


def test_put_missing_tenant_is_404(server):
    error_of(server.put(rl("00000000-0000-4000-8000-000000000000"), json={"per_minute": 1},
                        headers=server.op), 404, "not_found")
