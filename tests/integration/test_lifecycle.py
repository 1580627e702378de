"""The server process: signals and graceful stop, restarts keeping their
data, the operator key generated on first start, schema versions, and the
port it listens on."""

import json
import signal
import socket
import subprocess
import time

import pytest
import requests

from harness import (REPO, BIN, GENERATED_OPERATOR_KEY_RE, OPERATOR_KEY, bearer, child_env,
                     db_execute, error_of, free_port, run_cli)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_exits_zero(server_factory, sig):
    srv = server_factory()
    assert srv.get("/healthz").status_code == 200
    assert srv.stop(sig) == 0, srv.log_tail()
    assert "event=stopped" in srv.stderr()


def read_response(sock, timeout=10):
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head.decode(), body


def test_request_in_flight_at_sigterm_completes(server_factory):
    srv = server_factory()
    body = json.dumps({"name": "In Flight Ltd", "settings": {"x": "y" * 200}}).encode()
    head = (f"POST /api/v1/tenants HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {OPERATOR_KEY}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        sock.sendall(head + body[:10])
        time.sleep(0.3)  # the server has the headers: the request is in flight
        srv.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert srv.proc.poll() is None, "the server exited with a request in flight"
        # It no longer accepts new connections meanwhile.
        with pytest.raises(requests.ConnectionError):
            requests.get(srv.url("/healthz"), timeout=2)
        sock.sendall(body[10:])
        status, head_text, resp = read_response(sock)
    finally:
        sock.close()
    assert status == 201, (head_text, resp)
    created = json.loads(resp)
    assert created["name"] == "In Flight Ltd"
    assert srv.wait(timeout=10) == 0, srv.log_tail()

    # The work it finished is stored.
    srv.start()
    r = srv.get(f"/api/v1/tenants/{created['id']}", headers=srv.op)
    assert r.status_code == 200 and r.json()["name"] == "In Flight Ltd"


def test_idle_keep_alive_connection_does_not_delay_stop(server_factory):
    srv = server_factory()
    idle = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert idle.recv(65536).startswith(b"HTTP/1.1 200")
        # The connection stays open and idle (http_timeout is 60 s).
        started = time.monotonic()
        srv.send_signal(signal.SIGTERM)
        assert srv.wait(timeout=10) == 0, srv.log_tail()
        assert time.monotonic() - started < 5
    finally:
        idle.close()


def test_stop_waits_at_most_shutdown_timeout(server_factory):
    srv = server_factory(args=["--shutdown-timeout", "1"])
    stuck = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        # Headers and a fraction of the body: this request never completes.
        stuck.sendall((f"POST /api/v1/tenants HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       f"Authorization: Bearer {OPERATOR_KEY}\r\n"
                       f"Content-Type: application/json\r\nContent-Length: 100\r\n"
                       f"X-Request-Id: stuck-request\r\n\r\n{{\"na").encode())
        time.sleep(0.3)
        started = time.monotonic()
        srv.send_signal(signal.SIGTERM)
        assert srv.wait(timeout=10) == 0, srv.log_tail()
        elapsed = time.monotonic() - started
        assert 0.8 <= elapsed < 5, elapsed
    finally:
        stuck.close()
    log = srv.stderr()
    assert "still in flight" in log
    line = srv.wait_for_log(r"request_id=stuck-request")
    assert line is not None and "aborted=1" in line
    # Nothing half-made was stored.
    srv.start()
    assert srv.get("/api/v1/tenants", headers=srv.op).json()["total"] == 0


def test_second_start_keeps_its_data(server_factory):
    srv = server_factory()
    op = srv.op
    t = srv.make_tenant("Persistent", slug="persistent", plan="gold", settings={"k": [1, 2]})
    rw = srv.make_key(t["id"], name="rw")
    ro = srv.make_key(t["id"], scopes=["read"], name="ro")
    gone = srv.make_key(t["id"], name="gone")
    assert srv.delete(f"/api/v1/tenants/{t['id']}/api-keys/{gone['id']}",
                      headers=op).status_code == 204
    assert srv.put(f"/api/v1/tenants/{t['id']}/rate-limits",
                   json={"per_minute": 12, "per_day": 345, "enabled": False},
                   headers=op).status_code == 200
    limits = srv.get(f"/api/v1/tenants/{t['id']}/rate-limits", headers=op).json()
    sus = srv.make_tenant("Sleeping")
    sus_key = srv.make_key(sus["id"])
    srv.patch(f"/api/v1/tenants/{sus['id']}", json={"status": "suspended"}, headers=op)
    dead = srv.make_tenant("Dead")
    dead_key = srv.make_key(dead["id"])
    assert srv.delete(f"/api/v1/tenants/{dead['id']}", headers=op).status_code == 204
    before = srv.get("/api/v1/tenants", headers=op).json()
    keys_before = srv.get(f"/api/v1/tenants/{t['id']}/api-keys", headers=op).json()

    srv.restart()

    assert srv.get("/api/v1/tenants", headers=op).json() == before
    assert srv.get(f"/api/v1/tenants/{t['id']}", headers=op).json() == t
    keys_after = srv.get(f"/api/v1/tenants/{t['id']}/api-keys", headers=op).json()
    strip = lambda page: [{k: v for k, v in row.items() if k != "last_used_at"}
                          for row in page["data"]]
    assert strip(keys_after) == strip(keys_before)
    assert srv.get(f"/api/v1/tenants/{t['id']}/rate-limits", headers=op).json() == limits
    rl = f"/api/v1/tenants/{t['id']}/rate-limits"
    assert srv.get(rl, headers=bearer(rw["key"])).json() == limits
    assert srv.get(rl, headers=bearer(ro["key"])).status_code == 200
    error_of(srv.get(rl, headers=bearer(gone["key"])), 401, "unauthorized")
    error_of(srv.get(f"/api/v1/tenants/{sus['id']}/rate-limits", headers=bearer(sus_key["key"])),
             403, "tenant_suspended")
    error_of(srv.get(f"/api/v1/tenants/{dead['id']}", headers=op), 404, "not_found")
    error_of(srv.get(f"/api/v1/tenants/{dead['id']}/rate-limits",
                     headers=bearer(dead_key["key"])), 401, "unauthorized")
    # The explicit slug is still taken.
    error_of(srv.post("/api/v1/tenants", json={"name": "Again", "slug": "persistent"},
                      headers=op), 409, "conflict")
    assert srv.stop() == 0


def generated_keys(text):
    return GENERATED_OPERATOR_KEY_RE.findall(text)


def test_operator_key_generated_once(server_factory, new_database):
    db = new_database()
    srv = server_factory(database=db, operator_key=None)
    keys = generated_keys(srv.stdout())
    assert len(set(keys)) == 1, srv.stdout()
    key = keys[0]
    assert len(key) == 4 + 64
    assert key not in srv.stderr()
    assert srv.get("/api/v1/tenants", headers=bearer(key)).status_code == 200
    assert srv.get("/api/v1/tenants", headers={"X-API-Key": key}).status_code == 200
    other = "mco_" + ("0" * 64 if not key.endswith("0" * 64) else "1" * 64)
    error_of(srv.get("/api/v1/tenants", headers=bearer(other)), 401, "unauthorized")
    t = srv.make_tenant("Made With Generated", headers=bearer(key))
    assert srv.stop() == 0

    # Second start on the same database: no new key; the first still works.
    srv.start()
    assert generated_keys(srv.stdout()) == [], srv.stdout()
    assert "mco_" not in srv.stdout()
    r = srv.get(f"/api/v1/tenants/{t['id']}", headers=bearer(key))
    assert r.status_code == 200 and r.json()["name"] == "Made With Generated"
    assert srv.stop() == 0

    # A configured key replaces the stored one while it is configured.
    configured = server_factory(database=db, operator_key=OPERATOR_KEY)
    assert "mco_" not in configured.stdout()
    assert configured.get("/api/v1/tenants", headers=configured.op).status_code == 200
    error_of(configured.get("/api/v1/tenants", headers=bearer(key)), 401, "unauthorized")
    assert configured.stop() == 0

    # And without it the generated one is back.
    srv.start()
    assert generated_keys(srv.stdout()) == []
    assert srv.get("/api/v1/tenants", headers=bearer(key)).status_code == 200
    error_of(srv.get("/api/v1/tenants", headers=bearer(OPERATOR_KEY)), 401, "unauthorized")


# The newest schema version this tree ships: the highest migration number
# (numbers are reserved per branch, so there may be gaps).
LATEST = max(int(p.name[:4]) for p in (REPO / "migrations" / "sqlite").glob("*.sql"))


def test_database_newer_than_the_binary_is_refused(new_database, tmp_path):
    db = new_database()
    res = run_cli("migrate", database=db)
    assert res.returncode == 0, res.stderr
    assert f"schema version {LATEST}" in res.stdout
    db_execute(db, "INSERT INTO schema_migrations (version, name, applied_at) "
               "VALUES (%s, %s, %s)", (9999, "from_the_future", 0))

    port = free_port()
    res = run_cli("serve", "--listen", f"127.0.0.1:{port}", database=db,
                  env=child_env(OPERATOR_KEY), timeout=20, cwd=tmp_path)
    assert res.returncode != 0
    assert "9999" in res.stderr and "schema version" in res.stderr, res.stderr
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)

    # The administrative commands refuse too.
    res = run_cli("tenant", "list", database=db)
    assert res.returncode != 0
    assert "9999" in res.stderr, res.stderr


def test_two_starts_migrate_once(new_database, server_factory):
    db = new_database()
    for _ in range(2):
        res = run_cli("migrate", database=db)
        assert res.returncode == 0, res.stderr
        assert f"schema version {LATEST} (this mailcast knows up to {LATEST})" in res.stdout
    srv = server_factory(database=db)
    assert "event=migrate" not in srv.stderr()
    assert srv.get("/readyz").status_code == 200


def test_port_already_in_use_is_refused(server_factory, tmp_path):
    """A second server on a port that is in use must fail, not share it."""
    first = server_factory()
    second = server_factory(start=False)
    proc = subprocess.Popen(
        [BIN, "serve", "--listen", f"127.0.0.1:{first.port}", "--database", second.database],
        env=child_env(OPERATOR_KEY), cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        rc = proc.wait(timeout=3)
        out, err = proc.communicate()
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"a second server started on port {first.port}, already used by the "
                    f"first one, instead of failing:\n{out}\n{err}")
    assert rc != 0
    assert "cannot listen" in err, err
    assert first.get("/healthz").status_code == 200
