"""The administrative commands (tenant, key, migrate) on both stores, and
their agreement with the API on the same database."""

import datetime
import json
import re

import pytest

from harness import TENANT_KEY_RE, UUID_RE, bearer, error_of, run_cli

SLUG_RULE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def cli_json(*args, database):
    res = run_cli(*args, database=database)
    assert res.returncode == 0, (args, res.returncode, res.stdout, res.stderr)
    return json.loads(res.stdout)


def test_tenant_create_list_show(new_database):
    db = new_database()
    t = cli_json("tenant", "create", "Cli Tenant", database=db)
    assert UUID_RE.match(t["id"])
    assert (t["name"], t["slug"], t["status"], t["plan"], t["settings"]) == (
        "Cli Tenant", "cli-tenant", "active", "free", {})
    u = cli_json("tenant", "create", "Other", "--slug", "other-slug", database=db)
    assert u["slug"] == "other-slug"

    listed = cli_json("tenant", "list", database=db)
    assert [x["id"] for x in listed] == [u["id"], t["id"]]
    assert cli_json("tenant", "show", t["id"], database=db) == t


def test_tenant_show_missing(new_database):
    db = new_database()
    res = run_cli("tenant", "show", "00000000-0000-4000-8000-000000000000", database=db)
    assert res.returncode == 1
    assert res.stderr.splitlines()[-1] == "mailcast tenant show: tenant not found"
    assert res.stdout == ""


def test_cli_errors_carry_the_apis_words(server_factory, new_database):
    """The CLI says what the API says for the same failure, not the error's code."""
    db = new_database()
    cli_json("tenant", "create", "Taken", "--slug", "taken", database=db)
    res = run_cli("tenant", "create", "Again", "--slug", "taken", database=db)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.splitlines()[-1] == (
        'mailcast tenant create: a tenant with slug "taken" already exists')
    srv = server_factory(database=db)
    r = srv.post("/api/v1/tenants", json={"name": "Again", "slug": "taken"}, headers=srv.op)
    assert error_of(r, 409, "conflict")["message"] in res.stderr

    # A derived slug that is taken gets a suffix, as in the API.
    first = cli_json("tenant", "create", "Same Name", database=db)
    second = cli_json("tenant", "create", "Same Name", database=db)
    assert first["slug"] == "same-name" and second["slug"].startswith("same-name-")

    missing = "00000000-0000-4000-8000-000000000000"
    res = run_cli("key", "revoke", first["id"], missing, database=db)
    api = srv.delete(f"/api/v1/tenants/{first['id']}/api-keys/{missing}", headers=srv.op)
    assert error_of(api, 404, "not_found")["message"] == "API key not found"
    assert res.stderr.splitlines()[-1] == "mailcast key revoke: API key not found"


def test_tenant_create_transliterates_latin_letters(new_database):
    db = new_database()
    t = cli_json("tenant", "create", "Crème Brûlée Łódź", database=db)
    assert t["slug"] == "creme-brulee-lodz"
    assert t["name"] == "Crème Brûlée Łódź"


def test_tenant_create_derives_a_valid_slug(new_database):
    """The CLI must not store a slug the API would reject (`[a-z0-9-]`)."""
    db = new_database()
    t = cli_json("tenant", "create", "Acme Corp!", database=db)
    assert SLUG_RULE.match(t["slug"]), t["slug"]


def test_tenant_create_rejects_or_fixes_an_invalid_slug(new_database):
    db = new_database()
    res = run_cli("tenant", "create", "Weird", "--slug", "under_score!", database=db)
    if res.returncode == 0:
        assert SLUG_RULE.match(json.loads(res.stdout)["slug"]), res.stdout
    else:
        assert "slug" in res.stderr
        assert cli_json("tenant", "list", database=db) == []


def test_key_create_list_revoke(new_database):
    db = new_database()
    t = cli_json("tenant", "create", "Keyed", database=db)
    k = cli_json("key", "create", t["id"], "--name", "deploy", database=db)
    assert TENANT_KEY_RE.match(k["key"])
    assert (k["tenant_id"], k["name"], k["scopes"], k["status"]) == (
        t["id"], "deploy", ["read", "write"], "active")
    assert k["prefix"] == k["key"][:16]
    ro = cli_json("key", "create", t["id"], "--read-only", database=db)
    assert ro["scopes"] == ["read"] and ro["name"] == "default"

    res = run_cli("key", "list", t["id"], database=db)
    assert res.returncode == 0
    listed = json.loads(res.stdout)
    assert {x["id"] for x in listed} == {k["id"], ro["id"]}
    assert all("key" not in x for x in listed)
    assert k["key"] not in res.stdout and ro["key"] not in res.stdout

    res = run_cli("key", "revoke", t["id"], k["id"], database=db)
    assert res.returncode == 0 and "revoked" in res.stdout
    listed = cli_json("key", "list", t["id"], database=db)
    assert {x["id"]: x["status"] for x in listed} == {k["id"]: "revoked", ro["id"]: "active"}


def test_key_create_with_expiry(new_database):
    db = new_database()
    t = cli_json("tenant", "create", "Expiring", database=db)
    exp = (datetime.datetime.now(datetime.timezone.utc)
           + datetime.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    k = cli_json("key", "create", t["id"], "--expires", exp, database=db)
    assert k["expires_at"] == exp
    for bad in ["2001-01-01T00:00:00Z", "soon"]:
        res = run_cli("key", "create", t["id"], "--expires", bad, database=db)
        assert res.returncode == 2 and "--expires" in res.stderr
    assert len(cli_json("key", "list", t["id"], database=db)) == 1


def test_key_create_for_a_missing_tenant_fails(new_database):
    db = new_database()
    res = run_cli("key", "create", "00000000-0000-4000-8000-000000000000", database=db)
    assert res.returncode == 1
    assert "not found" in res.stderr
    assert "mck_" not in res.stdout


def test_key_revoke_missing_fails(new_database):
    db = new_database()
    t = cli_json("tenant", "create", "Revoker", database=db)
    res = run_cli("key", "revoke", t["id"], "00000000-0000-4000-8000-000000000000", database=db)
    assert res.returncode == 1 and "not found" in res.stderr


@pytest.mark.parametrize("args", [
    ["tenant", "create"],
    ["tenant", "create", "--slug", "x"],
    ["tenant", "show"],
    ["key", "create"],
    ["key", "list"],
    ["key", "revoke", "only-one"],
])
def test_usage_errors(new_database, args):
    db = new_database()
    res = run_cli(*args, database=db)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "usage" in res.stderr


def test_cli_and_api_share_the_database(server_factory, new_database):
    db = new_database()
    t = cli_json("tenant", "create", "Shared", database=db)
    rw = cli_json("key", "create", t["id"], database=db)
    ro = cli_json("key", "create", t["id"], "--read-only", database=db)

    srv = server_factory(database=db)
    rl = f"/api/v1/tenants/{t['id']}/rate-limits"
    assert srv.get(rl, headers=bearer(rw["key"])).status_code == 200
    assert srv.get(rl, headers={"X-API-Key": ro["key"]}).status_code == 200
    error_of(srv.put(rl, json={"per_minute": 3}, headers=bearer(rw["key"])), 403, "forbidden")
    assert srv.get(f"/api/v1/tenants/{t['id']}", headers=srv.op).json() == t

    # What the API makes, the CLI sees.
    api_t = srv.make_tenant("From Api")
    api_k = srv.make_key(api_t["id"])
    assert api_t["id"] in [x["id"] for x in cli_json("tenant", "list", database=db)]
    listed = cli_json("key", "list", api_t["id"], database=db)
    assert [x["id"] for x in listed] == [api_k["id"]]

    # A revocation by the CLI takes effect on the running server at once.
    res = run_cli("key", "revoke", t["id"], rw["id"], database=db)
    assert res.returncode == 0, res.stderr
    error_of(srv.get(rl, headers=bearer(rw["key"])), 401, "unauthorized")
    assert srv.get(rl, headers=bearer(ro["key"])).status_code == 200

    # A suspension through the API is what the CLI shows.
    srv.patch(f"/api/v1/tenants/{t['id']}", json={"status": "suspended"}, headers=srv.op)
    assert cli_json("tenant", "show", t["id"], database=db)["status"] == "suspended"
    error_of(srv.get(rl, headers=bearer(ro["key"])), 403, "tenant_suspended")
