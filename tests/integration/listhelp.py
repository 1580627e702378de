"""Helpers shared by the tests of recipient lists, recipients, imports,
exports and the suppression list (issue 3).

Tenant(server) makes a fresh tenant with a read-write key (and, on demand, a
read-only key) and wraps the endpoints under it.  Every test makes its own
tenant, so tests sharing the module's server never see each other's data.
"""

import time
import uuid
import urllib.parse

# The shared helpers, under the names these tests have always imported.
from tenanthelp import Tenant, db_query, is_sqlite, missing_id, parse_csv  # noqa: F401

LIST_FIELDS = {"id", "name", "description", "metadata", "recipient_count", "active_count",
               "created_at", "updated_at"}
RECIPIENT_FIELDS = {"id", "recipient_list_id", "email", "name", "first_name", "last_name",
                    "status", "attributes", "subscribed_at", "unsubscribed_at", "created_at",
                    "updated_at"}
UNSUB_FIELDS = {"id", "email", "source", "campaign_id", "reason", "unsubscribed_at", "cause",
                "message_id", "expires_at"}
IMPORT_REPORT_FIELDS = {"total", "imported", "updated", "skipped_duplicates",
                        "skipped_suppressed", "invalid", "errors"}
EXPORT_FIXED = ["email", "name", "first_name", "last_name"]

CSV = {"Content-Type": "text/csv"}
JSON = {"Content-Type": "application/json"}


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


# ---- direct database access (campaigns have no API yet) ----


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
