"""A full disk (issue 12 finding 18): the database on a small tmpfs
(SQLite's file; PostgreSQL's tablespace), filled by imports.  Writes answer
507 insufficient_storage (not 503 "try again"), /readyz reports the store
cannot write, reads and the server go on, and once space is freed writes
work again; the database checks clean afterwards."""

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from campaignhelp import CSV, Tenant
from harness import (OPERATOR_KEY, OwnCluster, PgAdmin, Server, error_of, pg_database_url,
                     pg_forget)

MIB = 1024 * 1024


@pytest.fixture
def small_disk():
    """A 12 MiB tmpfs (under /tmp, where the postgres user can reach it);
    unmounted at the end."""
    mnt = Path(tempfile.mkdtemp(prefix="mailcast-small-", dir="/tmp"))
    mnt.chmod(0o755)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m,mode=0755", "tmpfs", str(mnt)],
                   check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        shutil.rmtree(mnt, ignore_errors=True)


@pytest.fixture
def full_db(request, store, small_disk):
    """(database URL, a directory on the small disk for ballast, checker)."""
    if store == "sqlite":
        path = small_disk / "mailcast.db"

        def check():
            import sqlite3
            conn = sqlite3.connect(str(path))
            try:
                return conn.execute("PRAGMA integrity_check").fetchall()
            finally:
                conn.close()
        yield f"sqlite:{path}", small_disk, check
        return
    # PostgreSQL: the database's tablespace on the small disk (WAL stays on
    # the cluster's own disk, as a real deployment with a full data volume),
    # in a cluster of the test's own: a full tablespace fails the cluster's
    # checkpoints, and with them other tests' CREATE and DROP DATABASE.
    cluster = OwnCluster()
    request.addfinalizer(cluster.destroy)
    admin = PgAdmin(cluster.url)
    space = small_disk / "pg"
    space.mkdir()
    pg = pwd.getpwnam("postgres")
    os.chown(space, pg.pw_uid, pg.pw_gid)
    name = "mc_" + secrets.token_hex(6)
    ts = "ts_" + name
    admin._exec(f"CREATE TABLESPACE {ts} LOCATION '{space}'")
    admin._exec(f"CREATE DATABASE {name} TABLESPACE {ts}")
    url = pg_database_url(admin.server_url, name)

    def check():
        """amcheck: every heap page of every table and every B-tree index."""
        import psycopg2
        conn = psycopg2.connect(url)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
                cur.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON "
                            "n.oid = c.relnamespace, verify_heapam(c.oid) WHERE "
                            "n.nspname = 'public' AND c.relkind = 'r'")
                heap_problems = cur.fetchone()[0]
                cur.execute("SELECT count(bt_index_check(c.oid)) FROM pg_class c JOIN pg_am a "
                            "ON a.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE a.amname = 'btree' AND n.nspname = 'public' "
                            "AND c.relkind = 'i'")
                return [("ok",)] if heap_problems == 0 else [("heap problems", heap_problems)]
        finally:
            conn.close()
    try:
        yield url, small_disk, check
    finally:
        pg_forget(url)
        admin._exec(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin._exec(f"DROP TABLESPACE IF EXISTS {ts}")


def fill(path, nbytes):
    with open(path, "wb") as f:
        f.write(b"\0" * nbytes)


def test_full_disk_answers_507_and_recovers(full_db, tmp_path):
    url, disk, check = full_db
    ballast = disk / "ballast"
    fill(ballast, 3 * MIB)
    srv = Server(tmp_path / "srv", url, OPERATOR_KEY, args=["--deliver", "0"])
    srv.start()
    try:
        t = Tenant(srv)
        lst = srv.post(f"/api/v1/tenants/{t.id}/recipient-lists", headers=t.h,
                       json={"name": "big"}).json()
        imp = f"/api/v1/tenants/{t.id}/recipient-lists/{lst['id']}/recipients/import"
        assert srv.get("/readyz").status_code == 200
        # Fill the rest of the disk with imports until one is refused.
        statuses = []
        for batch in range(200):
            body = "email,name\n" + "".join(
                f"r{batch}-{i}@example.com,{'Name ' * 8}{i}\n" for i in range(5000))
            r = srv.post(imp, data=body.encode(), headers={**t.h, **CSV}, timeout=120)
            statuses.append(r.status_code)
            if r.status_code != 201:
                break
        assert statuses[-1] == 507, (statuses, r.text)
        assert r.json()["error"]["code"] == "insufficient_storage", r.text
        # The failed batch's space is reused by small writes; take that too.
        # Writes are refused with 507, not 503 "try again".
        for i in range(5000):
            r = srv.post(f"/api/v1/tenants/{t.id}/recipient-lists", headers=t.h,
                         json={"name": f"small {i}", "description": "x" * 2000})
            if r.status_code != 201:
                break
        error_of(r, 507, "insufficient_storage")
        # The server keeps running: health, reads, and readiness that says why.
        assert srv.get("/healthz").status_code == 200
        assert srv.get(f"/api/v1/tenants/{t.id}/recipient-lists", headers=t.h).status_code == 200
        r = srv.get("/readyz")
        assert r.status_code == 503, r.text
        assert r.json()["writable"] is False
        assert r.json()["error"]["code"] == "insufficient_storage"

        # Space freed: ready again, and writes work.
        ballast.unlink()
        deadline = time.monotonic() + 10
        while srv.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, srv.get("/readyz").text
            time.sleep(0.1)
        r = srv.post(f"/api/v1/tenants/{t.id}/recipient-lists", headers=t.h,
                     json={"name": "after"})
        assert r.status_code == 201, r.text
        body = "email\n" + "".join(f"after-{i}@example.com\n" for i in range(100))
        r = srv.post(imp, data=body.encode(), headers={**t.h, **CSV}, timeout=60)
        assert r.status_code == 201 and r.json()["imported"] == 100, r.text
        assert srv.proc.poll() is None
    finally:
        assert srv.stop() == 0, srv.log_tail()
    assert check() == [("ok",)]
