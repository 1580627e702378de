"""Liveness, readiness, metrics, request ids and the access log."""

import re

from harness import OPERATOR_KEY, bearer, error_of
from tenanthelp import wait_until


def test_healthz(server):
    r = server.get("/healthz")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"status": "ok"}


def test_healthz_needs_no_key_and_ignores_a_bad_one(server):
    r = server.get("/healthz", headers=bearer("not-a-key"))
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_readyz_names_the_store(server, store):
    r = server.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "database": store}


def test_trailing_slash_is_the_same_route(server):
    r = server.get("/healthz/")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


# ---- metrics ----

# A sample with or without labels (the text format allows both).
SAMPLE_RE = re.compile(r"^([a-z_]+)(?:\{([^}]*)\})? (\S+)$")


def samples(server):
    """{(name, frozenset(labels)): value} from GET /metrics."""
    r = server.get("/metrics", headers=server.op)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    out = {}
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"not a Prometheus sample: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def counter(s, method, route, status):
    key = ("mailcast_http_requests_total",
           frozenset({("method", method), ("route", route), ("status", str(status))}))
    return s.get(key, 0.0)


def test_metrics_count_requests_by_route_and_status(server):
    before = samples(server)
    for _ in range(3):
        assert server.get("/readyz").status_code == 200
    assert server.get("/api/v1/tenants").status_code == 401
    assert server.get("/api/v1/tenants", headers=server.op).status_code == 200
    assert server.get("/no/such/thing").status_code == 404
    # A request is counted when the server has finished with it, after its
    # response went out; a 404 closes its connection, so the next request
    # comes on another one and may be answered first (seen under ASan).
    after = wait_until(lambda: (lambda s: s if unmatched(s) > unmatched(before) else None)(
        samples(server)), 10, what="the 404 counted")

    assert counter(after, "GET", "/readyz", 200) - counter(before, "GET", "/readyz", 200) == 3
    assert (counter(after, "GET", "/api/v1/tenants", 401)
            - counter(before, "GET", "/api/v1/tenants", 401)) == 1
    assert (counter(after, "GET", "/api/v1/tenants", 200)
            - counter(before, "GET", "/api/v1/tenants", 200)) == 1
    assert unmatched(after) - unmatched(before) == 1


def unmatched(samples_):
    return sum(v for (n, l), v in samples_.items()
               if n == "mailcast_http_requests_total" and ("route", "unmatched") in l
               and ("status", "404") in l)


def test_metrics_latency_histogram(server):
    before = samples(server)
    for _ in range(4):
        assert server.get("/healthz").status_code == 200
    after = samples(server)
    lab = {("method", "GET"), ("route", "/healthz")}
    count = ("mailcast_http_request_duration_seconds_count", frozenset(lab))
    total = ("mailcast_http_request_duration_seconds_sum", frozenset(lab))
    assert after[count] - before.get(count, 0) == 4
    assert after[total] >= before.get(total, 0) and after[total] > 0

    buckets = sorted(
        ((float("inf") if dict(l)["le"] == "+Inf" else float(dict(l)["le"])), v)
        for (n, l), v in after.items()
        if n == "mailcast_http_request_duration_seconds_bucket" and lab <= set(l))
    assert len(buckets) >= 2 and buckets[-1][0] == float("inf")
    values = [v for _, v in buckets]
    assert values == sorted(values), "histogram buckets must be cumulative"
    assert buckets[-1][1] == after[count]


# ---- request ids and the access log ----

GENERATED_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def test_request_id_is_generated(server):
    a = server.get("/healthz").headers.get("X-Request-Id")
    b = server.get("/healthz").headers.get("X-Request-Id")
    assert a and GENERATED_ID_RE.match(a)
    assert b and GENERATED_ID_RE.match(b)
    assert a != b


def test_valid_request_id_is_echoed(server):
    for rid in ["abc-123_X.y", "x", "A" * 64]:
        r = server.get("/healthz", headers={"X-Request-Id": rid})
        assert r.headers["X-Request-Id"] == rid


def test_invalid_request_id_is_replaced(server):
    for rid in ["A" * 65, "has space", "semi;colon", "slash/es", "quote\"d"]:
        r = server.get("/healthz", headers={"X-Request-Id": rid})
        got = r.headers["X-Request-Id"]
        assert got != rid
        assert GENERATED_ID_RE.match(got), got


def test_request_id_on_error_responses(server):
    rid = "err-req-1"
    for method, path, headers in [
        ("GET", "/nope", {}),
        ("DELETE", "/healthz", {}),
        ("GET", "/api/v1/tenants", {}),
        ("POST", "/api/v1/tenants", server.op),
    ]:
        r = server.request(method, path, headers={**headers, "X-Request-Id": rid})
        assert r.status_code >= 400
        assert r.headers["X-Request-Id"] == rid


def test_access_log_line_per_request(server):
    rid = "access-log-check.1"
    r = server.get("/api/v1/tenants", headers={**server.op, "X-Request-Id": rid})
    assert r.status_code == 200
    line = server.wait_for_log(rf"request_id={re.escape(rid)}(\s|$)")
    assert line is not None, server.log_tail()
    assert "status=200" in line
    assert "method=GET" in line
    assert 'path="/api/v1/tenants"' in line

    # A generated id is logged too, exactly once.
    gen = server.get("/nope").headers["X-Request-Id"]
    line = server.wait_for_log(rf"request_id={re.escape(gen)}(\s|$)")
    assert line is not None and "status=404" in line
    assert sum(f"request_id={gen}" in x for x in server.stderr().splitlines()) == 1


def test_secrets_never_reach_the_log(server):
    t = server.make_tenant()
    k = server.make_key(t["id"])
    assert server.get(f"/api/v1/tenants/{t['id']}/rate-limits",
                      headers=bearer(k["key"])).status_code == 200
    assert server.get(f"/api/v1/tenants/{t['id']}/rate-limits",
                      headers={"X-API-Key": k["key"]}).status_code == 200
    server.wait_for_log(r"route=\"/api/v1/tenants/\{tenant_id\}/rate-limits\"")
    log = server.stderr() + server.stdout()
    assert k["key"] not in log
    assert k["key"][17:] not in log  # not even the secret part
    assert OPERATOR_KEY not in log


def test_error_body_shape(server):
    err = error_of(server.get("/definitely/not/here"), 404, "not_found")
    assert "/definitely/not/here" in err["message"]
    assert "field" not in err
