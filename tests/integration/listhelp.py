"""Helpers shared by the tests of recipient lists, recipients, imports,
exports and the suppression list (issue 3).

Tenant(server) makes a fresh tenant with a read-write key (and, on demand, a
read-only key) and wraps the endpoints under it.  Every test makes its own
tenant, so tests sharing the module's server never see each other's data.
"""

import csv
import io
import secrets
import time
import uuid
import urllib.parse

from harness import bearer

LIST_FIELDS = {"id", "name", "description", "metadata", "recipient_count", "active_count",
               "created_at", "updated_at"}
RECIPIENT_FIELDS = {"id", "recipient_list_id", "email", "name", "first_name", "last_name",
                    "status", "attributes", "subscribed_at", "unsubscribed_at", "created_at",
                    "updated_at"}
UNSUB_FIELDS = {"id", "email", "source", "campaign_id", "reason", "unsubscribed_at"}
IMPORT_REPORT_FIELDS = {"total", "imported", "updated", "skipped_duplicates",
                        "skipped_suppressed", "invalid", "errors"}
EXPORT_FIXED = ["email", "name", "first_name", "last_name"]

CSV = {"Content-Type": "text/csv"}
JSON = {"Content-Type": "application/json"}


def missing_id():
    """A well-formed id that names nothing."""
    return str(uuid.uuid4())


def domain_of_length(n):
    """A valid host name of exactly n octets (labels of at most 63, ending in .com)."""
    assert n >= 5
    body = n - len(".com")
    labels = []
    while body > 0:
        take = min(63, body)
        if body - take == 1:  # never leave a lone dot with an empty label
            take -= 2
        labels.append("d" * take)
        body -= take
        if body > 0:
            body -= 1  # the dot before the next label
    d = ".".join(labels) + ".com"
    assert len(d) == n, (len(d), n)
    return d


def parse_csv(text):
    """(header, rows) of a CSV document, rows as lists of strings."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows, "an export always has a header row"
    return rows[0], rows[1:]


# ---- direct database access (campaigns have no API yet) ----


def is_sqlite(server):
    return server.database.startswith("sqlite:")


def db_query(database, sql, params=()):
    """Runs one query directly against a mailcast database URL; returns the rows."""
    if database.startswith("sqlite:"):
        import sqlite3

        conn = sqlite3.connect(database[len("sqlite:"):], timeout=10)
        try:
            return conn.execute(sql.replace("%s", "?"), params).fetchall()
        finally:
            conn.close()
    import psycopg2

    conn = psycopg2.connect(database)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def insert_campaign(server, tenant_id, list_id, status):
    """Writes a campaign row using list_id, straight into the database; returns its id."""
    from harness import db_execute

    cid = str(uuid.uuid4())
    cols = ("id, tenant_id, name, subject, from_address, recipient_list_id, status, "
            "created_at, updated_at")
    if is_sqlite(server):
        now = int(time.time() * 1_000_000)
        db_execute(server.database,
                   f"INSERT INTO campaigns ({cols}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                   (cid, tenant_id, "Campaign", "Subject", "news@example.com", list_id, status,
                    now, now))
    else:
        db_execute(server.database,
                   f"INSERT INTO campaigns ({cols}) "
                   "VALUES (%s, %s, %s, %s, %s, %s, %s, now(), now())",
                   (cid, tenant_id, "Campaign", "Subject", "news@example.com", list_id, status))
    return cid


def set_campaign_status(server, campaign_id, status):
    from harness import db_execute

    db_execute(server.database, "UPDATE campaigns SET status = %s WHERE id = %s",
               (status, campaign_id))


def campaign_list_id(server, campaign_id):
    rows = db_query(server.database, "SELECT recipient_list_id FROM campaigns WHERE id = %s",
                    (campaign_id,))
    assert len(rows) == 1
    return None if rows[0][0] is None else str(rows[0][0])


def recipient_rows_in_db(server, list_id):
    return db_query(server.database,
                    "SELECT COUNT(*) FROM recipients WHERE recipient_list_id = %s",
                    (list_id,))[0][0]


# ---- one tenant and its endpoints ----


class Tenant:
    def __init__(self, server, name=None):
        self.server = server
        self.id = server.make_tenant(name=name)["id"]
        self.key = server.make_key(self.id)["key"]
        self.h = bearer(self.key)
        self._ro = None

    @property
    def ro(self):
        """Headers with a read-only key of this tenant."""
        if self._ro is None:
            self._ro = bearer(self.server.make_key(self.id, scopes=["read"])["key"])
        return self._ro

    # -- paths --

    @property
    def base(self):
        return f"/api/v1/tenants/{self.id}"

    def lists_path(self, list_id=None):
        p = f"{self.base}/recipient-lists"
        return p if list_id is None else f"{p}/{list_id}"

    def rcpt_path(self, list_id, rid=None):
        p = f"{self.lists_path(list_id)}/recipients"
        return p if rid is None else f"{p}/{rid}"

    def import_path(self, list_id, mode=None):
        p = f"{self.rcpt_path(list_id)}/import"
        return p if mode is None else f"{p}?mode={mode}"

    def export_path(self, list_id):
        return f"{self.rcpt_path(list_id)}/export"

    @property
    def unsub_path(self):
        return f"{self.base}/unsubscribes"

    # -- lists --

    def make_list(self, name=None, **fields):
        body = {"name": name or f"List {secrets.token_hex(3)}", **fields}
        r = self.server.post(self.lists_path(), json=body, headers=self.h)
        assert r.status_code == 201, r.text
        return r.json()

    def get_list(self, list_id):
        r = self.server.get(self.lists_path(list_id), headers=self.h)
        assert r.status_code == 200, r.text
        return r.json()

    def counts(self, list_id):
        """(recipient_count, active_count) of the list."""
        lst = self.get_list(list_id)
        return lst["recipient_count"], lst["active_count"]

    # -- recipients --

    def add(self, list_id, email, **fields):
        r = self.server.post(self.rcpt_path(list_id), json={"email": email, **fields},
                             headers=self.h)
        assert r.status_code == 201, r.text
        return r.json()

    def get_recipient(self, list_id, rid):
        r = self.server.get(self.rcpt_path(list_id, rid), headers=self.h)
        assert r.status_code == 200, r.text
        return r.json()

    def put_recipient(self, list_id, rid, **fields):
        return self.server.put(self.rcpt_path(list_id, rid), json=fields, headers=self.h)

    def recipients(self, list_id, **params):
        """Every recipient of the list matching params, through all pages."""
        out, offset = [], 0
        while True:
            r = self.server.get(self.rcpt_path(list_id), headers=self.h,
                                params={**params, "limit": 1000, "offset": offset})
            assert r.status_code == 200, r.text
            body = r.json()
            out += body["data"]
            offset += len(body["data"])
            if not body["data"] or offset >= body["total"]:
                assert len(out) == body["total"], (len(out), body["total"])
                return out

    def by_email(self, list_id):
        return {x["email"]: x for x in self.recipients(list_id)}

    # -- import / export --

    def import_csv(self, list_id, body, mode=None, headers=None, **kw):
        kw.setdefault("timeout", 120)
        return self.server.post(self.import_path(list_id, mode), data=body,
                                headers={**self.h, **CSV, **(headers or {})}, **kw)

    def import_json(self, list_id, rows, mode=None, **kw):
        kw.setdefault("timeout", 120)
        return self.server.post(self.import_path(list_id, mode), json={"recipients": rows},
                                headers=self.h, **kw)

    def export(self, list_id, headers=None, **params):
        return self.server.get(self.export_path(list_id), headers=headers or self.h,
                               params=params, timeout=120)

    def export_table(self, list_id, **params):
        r = self.export(list_id, **params)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/csv"), r.headers
        return parse_csv(r.content.decode("utf-8"))

    # -- suppression list --

    def suppress(self, email, reason=None):
        body = {"email": email}
        if reason is not None:
            body["reason"] = reason
        return self.server.post(self.unsub_path, json=body, headers=self.h)

    def unsubs(self, **params):
        r = self.server.get(self.unsub_path, headers=self.h, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def unsub_emails(self):
        return sorted(u["email"] for u in self.unsubs(limit=1000)["data"])


def report_of(resp, status=None):
    """Asserts resp is an import report with status; returns it.  status None:
    a complete import, 201 with the collection as Location when it created
    anything, else 200 (an import that created nothing is not a 201)."""
    body = resp.json()
    if status is None:
        status = 201 if body.get("imported") else 200
        if status == 201:
            assert resp.headers["Location"] == urllib.parse.urlsplit(
                resp.url).path.removesuffix("/import"), resp.headers
        else:
            assert "Location" not in resp.headers
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert IMPORT_REPORT_FIELDS <= set(body), body
    for k in IMPORT_REPORT_FIELDS - {"errors"}:
        assert isinstance(body[k], int), body
    assert isinstance(body["errors"], list) and len(body["errors"]) <= 100
    if status in (200, 201):  # a complete import puts every row in exactly one count
        assert body["total"] == sum(body[k] for k in (
            "imported", "updated", "skipped_duplicates", "skipped_suppressed", "invalid")), body
        assert len(body["errors"]) == min(100, body["invalid"]), body
    for e in body["errors"]:
        assert set(e) == {"line", "email", "reason"}, e
        assert isinstance(e["line"], int) and e["line"] >= 1, e
        assert isinstance(e["reason"], str) and e["reason"], e
    return body


def counts_of(report):
    return {k: report[k] for k in ("total", "imported", "updated", "skipped_duplicates",
                                   "skipped_suppressed", "invalid")}
