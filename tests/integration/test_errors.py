"""The JSON error cases every endpoint shares: routing, methods, bodies,
media types, size limits and field validation."""

import json
import re

import pytest

from harness import error_of, invalid_field, module_server

JSON = {"Content-Type": "application/json"}


def allowed(resp):
    return {m.strip() for m in resp.headers.get("Allow", "").split(",") if m.strip()}


# ---- routing ----

@pytest.mark.parametrize("path", [
    "/",
    "/nope",
    "/api/v1",
    "/api/v1/tenant",
    "/api/v2/tenants",
    "/api/v1/tenants/x/y/z",
    "/api/v1/tenants/00000000-0000-4000-8000-000000000000/nothing",
])
def test_unknown_route_is_404_json(server, path):
    err = error_of(server.get(path, headers=server.op), 404, "not_found")
    assert path in err["message"]


@pytest.mark.parametrize("method,path,allow", [
    ("DELETE", "/healthz", {"GET"}),
    ("POST", "/readyz", {"GET"}),
    ("PUT", "/api/v1/tenants", {"GET", "POST"}),
    ("DELETE", "/api/v1/tenants", {"GET", "POST"}),
    ("POST", "/api/v1/tenants/00000000-0000-4000-8000-000000000000",
     {"GET", "PATCH", "DELETE"}),
    ("PUT", "/api/v1/tenants/00000000-0000-4000-8000-000000000000/api-keys", {"GET", "POST"}),
    ("GET", "/api/v1/tenants/00000000-0000-4000-8000-000000000000/api-keys/k1", {"DELETE"}),
    ("POST", "/api/v1/tenants/00000000-0000-4000-8000-000000000000/rate-limits",
     {"GET", "PUT", "PATCH"}),
    ("POST", "/api/v1/tenants/00000000-0000-4000-8000-000000000000/campaigns/c1",
     {"GET", "PUT", "PATCH", "DELETE"}),
])
def test_wrong_method_is_405_with_allow(server, method, path, allow):
    # The method is checked before the key: no key is sent here.
    r = server.request(method, path)
    err = error_of(r, 405, "method_not_allowed")
    assert allowed(r) == allow, r.headers.get("Allow")
    assert method in err["message"]


# ---- bodies ----

def test_malformed_json_reports_line_and_column(server):
    body = b'{"name": "Acme",\n  "plan": oops}'
    r = server.post("/api/v1/tenants", data=body, headers={**server.op, **JSON})
    err = error_of(r, 400, "malformed_json")
    m = re.search(r"line (\d+), column (\d+)", err["message"])
    assert m, err
    assert m.group(1) == "2"
    assert int(m.group(2)) > 0


@pytest.mark.parametrize("body", [b"{", b'{"name": "x",}', b"{'name': 'x'}", b"nul",
                                  b'{"name": "x"} trailing', b"\xff\xfe",
                                  b'{"name": "nul\\u0000byte"}', b'{"name": "\xc3\x28"}'])
def test_malformed_json_variants(server, body):
    r = server.post("/api/v1/tenants", data=body, headers={**server.op, **JSON})
    error_of(r, 400, "malformed_json")


def test_duplicate_keys_are_rejected(server):
    r = server.post("/api/v1/tenants", data=b'{"name": "a", "name": "b"}',
                    headers={**server.op, **JSON})
    error_of(r, 400, "malformed_json")


@pytest.mark.parametrize("body", [b"[]", b'[{"name": "x"}]', b'"Acme"', b"42", b"null", b"true"])
def test_body_that_is_not_an_object_is_400(server, body):
    r = server.post("/api/v1/tenants", data=body, headers={**server.op, **JSON})
    error_of(r, 400, "malformed_json")


def test_array_body_message_says_object(server):
    r = server.post("/api/v1/tenants", data=b"[1, 2]", headers={**server.op, **JSON})
    err = error_of(r, 400, "malformed_json")
    assert "object" in err["message"]


def test_not_an_object_on_optional_body_route(server):
    t = server.make_tenant()
    r = server.post(f"/api/v1/tenants/{t['id']}/api-keys", data=b"[]",
                    headers={**server.op, **JSON})
    error_of(r, 400, "malformed_json")


def test_missing_body_is_400(server):
    t = server.make_tenant()
    for method, path in [
        ("POST", "/api/v1/tenants"),
        ("PATCH", f"/api/v1/tenants/{t['id']}"),
        ("PUT", f"/api/v1/tenants/{t['id']}/rate-limits"),
    ]:
        r = server.request(method, path, headers={**server.op, **JSON})
        err = error_of(r, 400, "bad_request")
        assert "body" in err["message"]


def test_optional_body_may_be_absent(server):
    t = server.make_tenant()
    r = server.post(f"/api/v1/tenants/{t['id']}/api-keys", headers=server.op)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded",
                                   "application/jsonx", "text/json"])
def test_wrong_content_type_is_415(server, ctype):
    headers = dict(server.op)
    if ctype:
        headers["Content-Type"] = ctype
    r = server.post("/api/v1/tenants", data=b'{"name": "Typed"}', headers=headers)
    error_of(r, 415, "unsupported_media_type")
    # Nothing was created.
    names = [t["name"] for t in server.get("/api/v1/tenants?limit=1000",
                                           headers=server.op).json()["data"]]
    assert "Typed" not in names


@pytest.mark.parametrize("ctype", ["application/json; charset=utf-8", "Application/JSON",
                                   "application/json;charset=UTF-8"])
def test_json_content_type_with_parameters_is_accepted(server, ctype):
    r = server.post("/api/v1/tenants", data=b'{"name": "Typed ok"}',
                    headers={**server.op, "Content-Type": ctype})
    assert r.status_code == 201, r.text


def test_415_on_optional_body_route(server):
    t = server.make_tenant()
    r = server.post(f"/api/v1/tenants/{t['id']}/api-keys", data=b"{}",
                    headers={**server.op, "Content-Type": "text/plain"})
    error_of(r, 415, "unsupported_media_type")


def test_error_precedence_auth_before_body(server):
    # A request that fails authentication gets 401 whatever its body.
    r = server.post("/api/v1/tenants", data=b"not json", headers=JSON)
    error_of(r, 401, "unauthorized")
    r = server.post("/api/v1/tenants", data=b"x" * 5000, headers={"Content-Type": "text/plain"})
    error_of(r, 401, "unauthorized")


# ---- field validation (422) ----

@pytest.mark.parametrize("body,field", [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": None}, "name"),
    ({"name": 42}, "name"),
    ({"name": ["a"]}, "name"),
    ({"name": "two\nlines"}, "name"),
    ({"name": "x" * 256}, "name"),
    ({"name": "Ok", "slug": "Upper"}, "slug"),
    ({"name": "Ok", "slug": "has space"}, "slug"),
    ({"name": "Ok", "slug": "under_score"}, "slug"),
    ({"name": "Ok", "slug": "-lead"}, "slug"),
    ({"name": "Ok", "slug": "trail-"}, "slug"),
    ({"name": "Ok", "slug": ""}, "slug"),
    ({"name": "Ok", "slug": "a" * 64}, "slug"),
    ({"name": "Ok", "slug": 7}, "slug"),
    ({"name": "Ok", "plan": ""}, "plan"),
    ({"name": "Ok", "plan": 3}, "plan"),
    ({"name": "Ok", "plan": "p" * 51}, "plan"),
    ({"name": "Ok", "settings": []}, "settings"),
    ({"name": "Ok", "settings": "{}"}, "settings"),
    ({"name": "Ok", "settings": 1}, "settings"),
    ({"name": "Ok", "settings": None}, "settings"),
])
def test_tenant_create_validation(server, body, field):
    r = server.post("/api/v1/tenants", json=body, headers=server.op)
    err = invalid_field(r, field)
    assert field in err["message"]


def test_tenant_create_boundaries_are_accepted(server):
    t = server.make_tenant("n" * 255, slug="a" * 63, plan="p" * 50)
    assert len(t["name"]) == 255 and t["slug"] == "a" * 63 and t["plan"] == "p" * 50


# ---- body size limit ----

@pytest.fixture(scope="module")
def small_server(request, store, tmp_path_factory):
    """A server whose body limit is the smallest allowed, 1024 bytes."""
    yield from module_server(request, store, tmp_path_factory, ["--http-max-body", "1024"],
                             name="small")


def body_of_size(n, name="Sized"):
    """A valid tenant JSON body of exactly n bytes."""
    base = json.dumps({"name": name, "settings": {"pad": ""}}).encode()
    pad = n - len(base)
    assert pad >= 0
    return json.dumps({"name": name, "settings": {"pad": "x" * pad}}).encode()


def test_body_at_the_limit_is_accepted(small_server):
    body = body_of_size(1024, "At limit")
    assert len(body) == 1024
    r = small_server.post("/api/v1/tenants", data=body,
                          headers={**small_server.op, **JSON})
    assert r.status_code == 201, r.text
    assert r.json()["settings"] == json.loads(body)["settings"]


def test_body_over_the_limit_is_413(small_server):
    body = body_of_size(1025, "Over limit")
    r = small_server.post("/api/v1/tenants", data=body, headers={**small_server.op, **JSON})
    err = error_of(r, 413, "payload_too_large")
    assert "1024" in err["message"]
    names = [t["name"] for t in small_server.get("/api/v1/tenants?limit=1000",
                                                 headers=small_server.op).json()["data"]]
    assert "Over limit" not in names


def test_chunked_body_over_the_limit_is_413(small_server):
    body = body_of_size(4000, "Chunked over")

    def chunks():
        for i in range(0, len(body), 500):
            yield body[i:i + 500]

    r = small_server.post("/api/v1/tenants", data=chunks(), headers={**small_server.op, **JSON})
    error_of(r, 413, "payload_too_large")


def test_chunked_body_under_the_limit_is_accepted(small_server):
    body = body_of_size(900, "Chunked ok")

    def chunks():
        for i in range(0, len(body), 100):
            yield body[i:i + 100]

    r = small_server.post("/api/v1/tenants", data=chunks(), headers={**small_server.op, **JSON})
    assert r.status_code == 201, r.text


def test_big_body_limit_applies_to_every_body_route(small_server):
    t = small_server.make_tenant()
    big = json.dumps({"name": "k" * 2000}).encode()
    for method, path in [("PATCH", f"/api/v1/tenants/{t['id']}"),
                         ("POST", f"/api/v1/tenants/{t['id']}/api-keys"),
                         ("PUT", f"/api/v1/tenants/{t['id']}/rate-limits")]:
        r = small_server.request(method, path, data=big, headers={**small_server.op, **JSON})
        error_of(r, 413, "payload_too_large")
    # The server is still fine afterwards.
    assert small_server.get("/healthz").status_code == 200
