"""docs/openapi.yaml checked by a validating proxy nobody here wrote.

Stoplight Prism (`@stoplight/prism-cli`, pinned, installed into .tools by
scripts/deps.sh) runs as `prism proxy docs/openapi.yaml http://SERVER`;
every operation of the spec is driven through it with valid and invalid
requests, and Prism's verdict on each exchange comes back in the
`sl-violations` header.  The test fails on any violation Prism reports about
a response, and on any violation about a request that was meant to be valid
(an invalid request is expected to break the request schema; the answer to
it must still be one the spec describes).

Prism's own limits (NOTES.md): it answers 500 to HEAD, and it rewrites
bodies with duplicate JSON keys, so neither is sent through it.
"""

import functools
import json
import re
import subprocess
import time

import pytest
import requests
import yaml

from bouncehelp import dsn, pipe
from campaignhelp import NO_DELIVERY
from harness import OPERATOR_KEY, REPO, bearer, free_port

PRISM = REPO / ".tools" / "node_modules" / ".bin" / "prism"
SPEC = REPO / "docs" / "openapi.yaml"
NIL = "00000000-0000-4000-8000-000000000000"


# The shared module server (conftest.py): the API and the engine without
# delivery, so campaign states stay put while the test walks them.
SERVER_ARGS = [*NO_DELIVERY, "--webhook-allow-http", "1", "--webhook-allow-cidr", "127.0.0.1/32"]


@pytest.fixture(scope="module")
def prism(server, tmp_path_factory):
    assert PRISM.exists(), f"{PRISM} is missing: run `bash scripts/deps.sh --test`"
    log = tmp_path_factory.mktemp("prism") / "prism.log"
    for _ in range(3):
        port = free_port()
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(PRISM), "proxy", str(SPEC), server.base, "--host", "127.0.0.1",
                 "--port", str(port), "--errors", "false"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        # Wait for Prism to say it listens (it first loads and resolves the spec).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if "Prism is listening" in log.read_text(errors="replace"):
                break
            time.sleep(0.1)
        if proc.poll() is None and "Prism is listening" in log.read_text(errors="replace"):
            break
        proc.kill()
        proc.wait()
    else:
        pytest.fail("prism did not start:\n" + log.read_text(errors="replace")[-3000:])
    client = Client(f"http://127.0.0.1:{port}")
    try:
        yield client
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


class Client:
    """Sends requests through Prism and keeps what it says about each."""

    def __init__(self, base):
        self.base = base
        self.session = requests.Session()
        self.problems = []
        self.seen = set()  # (METHOD, spec path) answered without a violation

    def call(self, method, path, status, valid=True, **kw):
        kw.setdefault("timeout", 60)
        # A connection per request: Prism (Node) closes a kept-alive one
        # after 5 s idle, and a request sent on it as it closes is dropped,
        # which a loaded machine's pauses between requests made happen.
        kw["headers"] = {**kw.get("headers", {}), "Connection": "close"}
        r = self.session.request(method, self.base + path, **kw)
        raw = r.headers.get("sl-violations")
        violations = json.loads(raw) if raw else []
        bad = [v for v in violations
               if not valid and (v.get("location") or ["response"])[0] == "response"
               or valid]
        if bad:
            self.problems.append(f"{method} {path} -> {r.status_code}: "
                                 + json.dumps(bad, indent=1)[:2000])
        assert r.status_code == status, (method, path, r.status_code, r.text[:500])
        self.seen.add((method, path))
        return r


@functools.lru_cache(maxsize=1)
def spec_operations():
    spec = yaml.load(SPEC.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return {(m.upper(), p) for p, item in spec["paths"].items() for m in item
            if m in ("get", "post", "put", "patch", "delete")}


def spec_path(path):
    """The spec's template for a concrete path."""
    for method, template in spec_operations():
        rx = "^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(rx, path.split("?")[0]):
            yield method, template


# On one store, the default: Prism checks the API's shapes, which the two
# stores share (every operation's behaviour is tested on both elsewhere), and
# a second run cost the suite about 20 CPU seconds of Node and Python.
@pytest.mark.slow(13)
@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_every_operation_through_prism(server, prism):
    p = prism.call
    op = bearer(OPERATOR_KEY)
    js = {"Content-Type": "application/json"}
    csv = {"Content-Type": "text/csv"}

    p("GET", "/healthz", 200)
    p("GET", "/readyz", 200)
    p("GET", "/metrics", 401, valid=False)
    p("GET", "/metrics", 200, headers=op)

    # The web console, and who a key is
    index = p("GET", "/", 200)
    assets = re.search(r'src="(/assets/[0-9a-f]{16})/app\.js"', index.text).group(1)
    p("GET", f"{assets}/app.js", 200)
    p("GET", f"{assets}/vendor/preact.js", 200)
    p("GET", f"{assets}/vendor/LICENSE-uplot.txt", 200)
    p("GET", "/assets/0000000000000000/app.js", 404)
    p("GET", "/api/v1/whoami", 200, headers=bearer(OPERATOR_KEY))

    # Tenants and keys
    p("POST", "/api/v1/tenants", 401, valid=False, json={"name": "No key"})
    p("POST", "/api/v1/tenants", 422, valid=False, headers=op, json={"name": ""})
    t = p("POST", "/api/v1/tenants", 201, headers=op, json={"name": "Prism Tenant"}).json()
    tb = f"/api/v1/tenants/{t['id']}"
    p("GET", "/api/v1/tenants", 200, headers=op)
    p("GET", "/api/v1/tenants?limit=0", 422, valid=False, headers=op)
    p("GET", tb, 200, headers=op)
    p("GET", f"/api/v1/tenants/{NIL}", 404, headers=op)
    p("PATCH", tb, 200, headers=op, json={"plan": "pro"})
    p("PATCH", tb, 422, valid=False, headers=op, json={"status": "sleeping"})
    k = p("POST", f"{tb}/api-keys", 201, headers=op, json={"name": "k"}).json()
    p("POST", f"{tb}/api-keys", 422, valid=False, headers=op, json={"scopes": ["root"]})
    p("GET", f"{tb}/api-keys", 200, headers=op)
    k2 = p("POST", f"{tb}/api-keys", 201, headers=op, json={"name": "gone"}).json()
    p("DELETE", f"{tb}/api-keys/{k2['id']}", 204, headers=op)
    p("DELETE", f"{tb}/api-keys/{k2['id']}", 404, headers=op)
    h = bearer(k["key"])
    p("GET", "/api/v1/whoami", 200, headers=h)
    p("GET", f"{tb}/rate-limits", 200, headers=h)
    p("PUT", f"{tb}/rate-limits", 200, headers=op, json={"per_minute": 6000, "per_hour": 100000})
    p("PATCH", f"{tb}/rate-limits", 200, headers=op, json={"per_day": 1000000})
    p("PATCH", f"{tb}/rate-limits", 422, valid=False, headers=op, json={"per_day": 0})
    p("PUT", f"{tb}/rate-limits", 403, headers=h, json={"per_day": 5})

    # Lists and recipients
    lb = f"{tb}/recipient-lists"
    lst = p("POST", lb, 201, headers=h, json={"name": "Prism list"}).json()
    p("POST", lb, 422, valid=False, headers=h, json={"name": 5})
    p("GET", lb, 200, headers=h)
    lp = f"{lb}/{lst['id']}"
    p("GET", lp, 200, headers=h)
    p("GET", f"{lb}/{NIL}", 404, headers=h)
    p("PUT", lp, 200, headers=h, json={"description": "d"})
    p("PATCH", lp, 200, headers=h, json={"name": "Prism list 2"})
    p("PATCH", lp, 422, valid=False, headers=h, json={"metadata": []})
    rb = f"{lp}/recipients"
    x = p("POST", rb, 201, headers=h, json={"email": "ann@example.com", "name": "Ann"}).json()
    p("POST", rb, 422, valid=False, headers=h, json={"email": "not an address"})
    p("POST", rb, 409, headers=h, json={"email": "ANN@example.com"})
    p("GET", rb, 200, headers=h)
    p("GET", f"{rb}/{x['id']}", 200, headers=h)
    p("PUT", f"{rb}/{x['id']}", 200, headers=h, json={"name": "Ann L"})
    p("PATCH", f"{rb}/{x['id']}", 200, headers=h, json={"attributes": {"city": "Oslo"}})
    p("PATCH", f"{rb}/{x['id']}", 422, valid=False, headers=h, json={"status": "asleep"})
    p("POST", f"{rb}/import", 201, headers={**h, **csv},
      data="email,name\nbob@example.com,Bob\ncarl@example.com,Carl\nbad,Bad\n")
    p("POST", f"{rb}/import", 200, headers={**h, **js},
      json={"recipients": [{"email": "bob@example.com"}]})
    p("POST", f"{rb}/import", 422, valid=False, headers={**h, **js}, json={"rows": []})
    p("POST", f"{rb}/import", 415, valid=False, headers={**h, "Content-Type": "text/plain"},
      data="x")
    p("GET", f"{rb}/export", 200, headers=h)
    gone = p("POST", rb, 201, headers=h, json={"email": "gone@example.com"}).json()
    p("DELETE", f"{rb}/{gone['id']}", 204, headers=h)
    p("DELETE", f"{rb}/{gone['id']}", 404, headers=h)

    # Suppression list
    ub = f"{tb}/unsubscribes"
    p("POST", ub, 201, headers=h, json={"email": "sup@example.com", "reason": "asked"})
    p("POST", ub, 200, headers=h, json={"email": "SUP@example.com"})
    p("POST", ub, 422, valid=False, headers=h, json={"email": 7})
    p("GET", ub, 200, headers=h)
    p("POST", f"{ub}/import", 201, headers={**h, **csv}, data="email\nsup2@example.com\n")
    p("POST", f"{ub}/import", 200, headers={**h, **js}, json={"emails": ["sup2@example.com"]})
    p("DELETE", f"{ub}/sup2@example.com", 204, headers=h)
    p("DELETE", f"{ub}/sup2@example.com", 404, headers=h)

    # DKIM
    db = f"{tb}/dkim-keys"
    dk = p("POST", db, 201, headers=h, json={"domain": "example.com", "selector": "p1"}).json()
    p("POST", db, 422, valid=False, headers=h, json={"domain": "example.com", "selector": ""})
    p("GET", db, 200, headers=h)
    p("DELETE", f"{db}/{dk['id']}", 204, headers=h)
    p("DELETE", f"{db}/{dk['id']}", 404, headers=h)

    # Bounces
    bb = f"{tb}/bounces"
    p("GET", f"{tb}/bounce-policy", 200, headers=h)
    p("PUT", f"{tb}/bounce-policy", 200, headers=h, json={"soft_limit": 2})
    p("PUT", f"{tb}/bounce-policy", 422, valid=False, headers=h, json={"soft_limit": 0})
    bn = p("POST", bb, 201, headers=h,
           json={"email": "bounced@example.com", "type": "hard", "status": "5.1.1"}).json()
    p("POST", bb, 422, valid=False, headers=h, json={"email": "b@example.com", "type": "gone"})
    p("GET", bb, 200, headers=h)
    p("GET", f"{bb}?class=nope", 422, valid=False, headers=h)
    p("GET", f"{bb}/{bn['id']}", 200, headers=h)
    p("GET", f"{bb}/{NIL}", 404, headers=h)
    # The operator's unmatched reports: one taken in through the pipe without a reference.
    assert pipe(server.database, dsn("postmaster@x.example", "nobody@example.org"),
                "--recipient", "postmaster@x.example")[0] == 0
    un = p("GET", "/api/v1/bounces/unmatched", 200, headers=op).json()
    p("GET", "/api/v1/bounces/unmatched?since=yesterday", 422, valid=False, headers=op)
    p("GET", "/api/v1/bounces/unmatched", 403, headers=h)
    p("GET", f"/api/v1/bounces/unmatched/{un['data'][0]['id']}", 200, headers=op)
    p("GET", f"/api/v1/bounces/unmatched/{NIL}", 404, headers=op)

    # Campaigns
    cb = f"{tb}/campaigns"
    body = {"name": "Prism", "subject": "Hi {{name}}", "from_address": "news@example.com",
            "text_body": "Hello {{name}}, bye: {{unsubscribe_url}}",
            "recipient_list_id": lst["id"]}
    c = p("POST", cb, 201, headers=h, json=body).json()
    p("POST", cb, 422, valid=False, headers=h, json={**body, "subject": ""})
    p("GET", cb, 200, headers=h)
    cp = f"{cb}/{c['id']}"
    p("GET", cp, 200, headers=h)
    p("GET", f"{cb}/{NIL}", 404, headers=h)
    p("PUT", cp, 200, headers=h, json={"description": "via PUT"})
    p("PATCH", cp, 200, headers=h, json={"tags": ["p"]})
    p("PATCH", cp, 422, valid=False, headers=h, json={"rate_limit_per_minute": 0})
    pv = p("POST", f"{cp}/preview", 200, headers=h, json={"email": "t@example.com", "name": "T"})
    p("POST", f"{cp}/preview", 422, valid=False, headers=h, json={"email": 1})
    p("POST", f"{cp}/test", 200, headers=h, json={"to": ["t@example.com"]})
    p("POST", f"{cp}/test", 422, valid=False, headers=h, json={"to": []})
    p("GET", f"{cp}/stats", 200, headers=h)
    p("GET", f"{cp}/timeline", 200, headers=h)
    p("POST", f"{cp}/pause", 409, headers=h)
    p("POST", f"{cp}/schedule", 202, headers=h, json={"scheduled_at": "2099-01-01T00:00:00Z"})
    p("POST", f"{cp}/schedule", 409, headers=h, json={})
    p("POST", f"{cp}/send", 202, headers=h)
    p("POST", f"{cp}/pause", 200, headers=h)
    p("POST", f"{cp}/resume", 200, headers=h)
    p("GET", f"{cp}/timeline", 200, headers=h)
    p("GET", f"{cb}/{NIL}/timeline", 404, headers=h)
    # Events and webhooks (a loopback endpoint, allowed by SERVER_ARGS)
    p("GET", f"{tb}/events", 200, headers=h)
    p("GET", f"{tb}/events?limit=0", 422, valid=False, headers=h)
    p("GET", f"{cp}/messages", 200, headers=h)
    p("GET", f"{cb}/{NIL}/messages", 404, headers=h)
    wb = f"{tb}/webhooks"
    wh = p("POST", wb, 201, headers=h,
           json={"url": "http://127.0.0.1:9/hook", "events": ["*"]}).json()
    p("POST", wb, 422, valid=False, headers=h, json={"url": "ftp://127.0.0.1/x"})
    p("GET", wb, 200, headers=h)
    wp = f"{wb}/{wh['id']}"
    p("GET", wp, 200, headers=h)
    p("GET", f"{wb}/{NIL}", 404, headers=h)
    p("PATCH", wp, 200, headers=h, json={"description": "through Prism"})
    p("PATCH", wp, 422, valid=False, headers=h, json={"events": []})
    p("POST", f"{wp}/rotate-secret", 200, headers=h)
    p("POST", f"{wp}/test", 202, headers=h)
    p("GET", f"{wp}/deliveries", 200, headers=h)
    p("POST", f"{wp}/deliveries/{NIL}/retry", 404, headers=h)
    p("POST", f"{wp}/replay", 202, headers=h,
      json={"from": "2020-01-01T00:00:00Z", "to": "2099-01-01T00:00:00Z"})
    p("POST", f"{wp}/replay", 422, valid=False, headers=h, json={"from": "yesterday"})
    p("DELETE", wp, 204, headers=h)
    p("DELETE", wp, 404, headers=h)
    p("POST", f"{cp}/cancel", 200, headers=h)
    p("POST", f"{cp}/cancel", 409, headers=h)
    p("GET", f"{cp}/stats", 200, headers=h)
    p("DELETE", cp, 204, headers=h)
    p("DELETE", cp, 404, headers=h)
    p("DELETE", lp, 204, headers=h)

    # The public unsubscribe link (a preview's token names no real recipient).
    token_path = "/u/" + pv.json()["unsubscribe_url"].rsplit("/u/", 1)[1]
    page = p("GET", token_path, 404)
    assert page.headers["Content-Type"].startswith("text/html")
    p("GET", "/u/not-a-token", 404, valid=False)
    p("POST", token_path, 404, headers={"Content-Type": "application/x-www-form-urlencoded"},
      data="List-Unsubscribe=One-Click")

    # Shaping (operator only)
    sh = p("GET", "/api/v1/shaping", 200, headers=op).json()
    p("GET", "/api/v1/shaping", 403, headers=h)
    p("PUT", "/api/v1/shaping", 200, headers=op, json=sh)
    # Automation: every trigger form and action (issue 15, item 4).
    autos = [{"egress": "default", "site": "google",
              "match": {"code": 421, "enhanced": "4.7.28", "regex": "unusual rate"},
              "trigger": {"count": 2, "period_s": 3600},
              "action": {"type": "set_rate", "per_minute": 10}, "duration_s": 1800},
             {"egress": "default", "site": "yahoo",
              "trigger": {"deferral_ratio": 0.3, "min_attempts": 50, "period_s": 600},
              "action": {"type": "scale_rate", "factor": 0.5}, "duration_s": 600},
             {"egress": "default", "site": "microsoft", "match": {"code": 421},
              "trigger": "immediate",
              "action": {"type": "set_connections", "max_connections": 2}, "duration_s": 600}]
    p("PUT", "/api/v1/shaping", 200, headers=op, json={**sh, "automation": autos})
    p("PUT", "/api/v1/shaping", 200, headers=op, json=sh)
    p("PUT", "/api/v1/shaping", 422, valid=False, headers=op, json={"domains": {}, "rules": 5})
    p("GET", "/api/v1/shaping/state", 200, headers=op)
    p("DELETE", f"/api/v1/shaping/state/{NIL}", 404, headers=op)

    # Egresses and pools (operator only)
    p("GET", "/api/v1/egresses", 200, headers=op)
    p("GET", "/api/v1/egresses", 403, headers=h)
    p("POST", "/api/v1/egresses", 201, headers=op,
      json={"name": "prism-eg", "relay": "smtp://127.0.0.3:2525", "ehlo_name": "out.test",
            "source_address": "127.0.0.1", "max_connections": 2})
    p("POST", "/api/v1/egresses", 409, headers=op,
      json={"name": "prism-eg", "relay": "smtp://127.0.0.3:2525"})
    p("POST", "/api/v1/egresses", 422, valid=False, headers=op, json={"name": "x"})
    p("GET", "/api/v1/egresses/prism-eg", 200, headers=op)
    p("GET", "/api/v1/egresses/nope", 404, headers=op)
    p("PATCH", "/api/v1/egresses/prism-eg", 200, headers=op, json={"ehlo_name": None})
    p("PATCH", "/api/v1/egresses/default", 409, headers=op, json={"max_connections": 2})
    p("PATCH", "/api/v1/egresses/prism-eg", 422, valid=False, headers=op,
      json={"max_connections": 0})
    p("GET", "/api/v1/egress-pools", 200, headers=op)
    p("POST", "/api/v1/egress-pools", 201, headers=op,
      json={"name": "prism-pool", "members": [{"egress": "prism-eg", "weight": 2}]})
    p("POST", "/api/v1/egress-pools", 422, valid=False, headers=op,
      json={"name": "p2", "members": []})
    p("GET", "/api/v1/egress-pools/prism-pool", 200, headers=op)
    p("GET", "/api/v1/egress-pools/nope", 404, headers=op)
    p("PATCH", "/api/v1/egress-pools/prism-pool", 200, headers=op,
      json={"members": [{"egress": "prism-eg"}, {"egress": "default", "weight": 1}]})
    p("DELETE", "/api/v1/egresses/prism-eg", 409, headers=op)
    p("DELETE", "/api/v1/egress-pools/default", 409, headers=op)
    p("DELETE", "/api/v1/egress-pools/prism-pool", 204, headers=op)
    p("DELETE", "/api/v1/egress-pools/prism-pool", 404, headers=op)
    p("DELETE", "/api/v1/egresses/prism-eg", 204, headers=op)
    p("DELETE", "/api/v1/egresses/prism-eg", 404, headers=op)

    # And last, the tenant.
    p("DELETE", tb, 204, headers=op)
    p("DELETE", tb, 404, headers=op)

    assert not prism.problems, "Prism reports violations:\n" + "\n".join(prism.problems)
    covered = {op for m, path in prism.seen for op in spec_path(path) if op[0] == m}
    assert covered == spec_operations(), sorted(spec_operations() - covered)
