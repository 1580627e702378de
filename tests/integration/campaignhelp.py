"""Helpers shared by the tests of campaigns, their lifecycle and their
templates (issue 4).

Tenant(server) makes a fresh tenant with a read-write key (and, on demand, a
read-only key) and wraps the campaign endpoints under it, plus just enough of
the list endpoints to give campaigns someone to send to.  Every test makes
its own tenant, so tests sharing the module's server never see each other's
data.

There is no delivery yet: messages stay 'pending' while a campaign is
'sending'.  deliver() plays the part of the future delivery workers by
writing message statuses straight into the database (the count triggers
then update the campaign), which is how tests reach 'completed' and 'failed'.
"""

import base64
import datetime
import secrets
import time
import uuid

from harness import OPERATOR_KEY, Server, bearer, create_database, db_execute, parse_time

# One name per count (recipient_count, <status>_count) on campaigns and stats;
# total_recipients (both) and sent/bounced/failed (stats) are the seed API's
# names, kept for its clients.  No delivered/opened/clicked: nothing feeds them.
COUNT_FIELDS = ["pending_count", "sending_count", "sent_count", "bounced_count",
                "failed_count", "cancelled_count", "suppressed_count"]
CAMPAIGN_FIELDS = {
    "id", "name", "description", "subject", "from_address", "from_name", "reply_to",
    "html_body", "text_body", "recipient_list_id", "scheduled_at", "rate_limit_per_minute",
    "rate_limit_per_hour", "tags", "metadata", "status", "recipient_count", "total_recipients",
    *COUNT_FIELDS, "progress_percentage", "materialized", "created_at", "updated_at",
    "started_at", "completed_at",
}
STATS_FIELDS = {
    "campaign_id", "status", "recipient_count", "total_recipients", "materialized",
    *COUNT_FIELDS, "sent", "bounced", "failed", "progress_percentage", "sent_last_minute",
    "effective_rate_per_minute", "estimated_completion_at", "started_at", "completed_at",
}
# The 202 answer of send and schedule.
ACCEPTED_FIELDS = {"campaign_id", "status", "scheduled_at", "next", "campaign_url", "stats_url"}
PREVIEW_FIELDS = {"to", "unsubscribe_url", "subject", "html", "text"}
STATUSES = ["draft", "scheduled", "sending", "paused", "completed", "cancelled", "failed"]

NIL_UUID = "00000000-0000-0000-0000-000000000000"

CSV = {"Content-Type": "text/csv"}

# These tests pin down campaigns before delivery: a server that also
# delivered would move messages on under them.  "--deliver 0" runs the API
# and the campaign engine only.
NO_DELIVERY = ["--deliver", "0"]


def campaign_server(request, store, tmp_path_factory):
    """Generator for a module-scoped `server` fixture: the shared server of
    conftest.py, started with NO_DELIVERY."""
    workdir = tmp_path_factory.mktemp(f"server-{store}")
    url, drop = create_database(request, store, workdir)
    srv = Server(workdir, url, OPERATOR_KEY, NO_DELIVERY)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        drop()


def missing_id():
    """A well-formed id that names nothing."""
    return str(uuid.uuid4())


# ---- time ----


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(dt):
    """An aware datetime as the RFC 3339 text the API takes."""
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def future(seconds=3600):
    return iso(utcnow() + datetime.timedelta(seconds=seconds))


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate() until it returns something truthy; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ---- direct database access ----


def is_sqlite(server):
    return server.database.startswith("sqlite:")


def db_query(database, sql, params=()):
    """Runs one query directly against a mailcast database URL; returns the rows."""
    if database.startswith("sqlite:"):
        import sqlite3

        conn = sqlite3.connect(database[len("sqlite:"):], timeout=30)
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


def message_rows(server, campaign_id):
    """(recipient_id, to_address, status) of every message of the campaign."""
    rows = db_query(server.database,
                    "SELECT recipient_id, to_address, status FROM scheduled_messages "
                    "WHERE campaign_id = %s", (campaign_id,))
    return [(None if r is None else str(r), a, s) for r, a, s in rows]


def message_count(server, campaign_id, status=None):
    if status is None:
        return db_query(server.database,
                        "SELECT COUNT(*) FROM scheduled_messages WHERE campaign_id = %s",
                        (campaign_id,))[0][0]
    return db_query(server.database,
                    "SELECT COUNT(*) FROM scheduled_messages WHERE campaign_id = %s "
                    "AND status = %s", (campaign_id, status))[0][0]


def message_status_counts(server, campaign_id):
    rows = db_query(server.database,
                    "SELECT status, COUNT(*) FROM scheduled_messages WHERE campaign_id = %s "
                    "GROUP BY status", (campaign_id,))
    return {s: n for s, n in rows}


def deliver(server, campaign_id, status="sent", limit=None, sent_ago=0.0):
    """Moves pending messages of the campaign to status, as a delivery worker
    would (with sent_at = now - sent_ago seconds for sent/delivered); limit
    bounds how many.  Returns how many messages it moved."""
    before = message_count(server, campaign_id, status)
    with_time = status in ("sent", "delivered")
    sel = "SELECT id FROM scheduled_messages WHERE campaign_id = %s AND status = 'pending'"
    if limit is not None:
        sel += f" LIMIT {int(limit)}"
    if is_sqlite(server):
        now = int((time.time() - sent_ago) * 1_000_000)
        sets = "status = %s, updated_at = %s" + (", sent_at = %s" if with_time else "")
        params = (status, now) + ((now,) if with_time else ()) + (campaign_id,)
    else:
        ts = utcnow() - datetime.timedelta(seconds=sent_ago)
        sets = "status = %s, updated_at = %s" + (", sent_at = %s" if with_time else "")
        params = (status, ts) + ((ts,) if with_time else ()) + (campaign_id,)
    db_execute(server.database,
               f"UPDATE scheduled_messages SET {sets} WHERE id IN ({sel})", params)
    return message_count(server, campaign_id, status) - before


def force_recipient_active(server, recipient_id):
    """Makes a recipient active behind the API's back (as if it had been
    added before its address reached the suppression list)."""
    db_execute(server.database, "UPDATE recipients SET status = 'active' WHERE id = %s",
               (recipient_id,))


def set_campaign_scheduled_at(server, campaign_id, dt):
    if is_sqlite(server):
        db_execute(server.database, "UPDATE campaigns SET scheduled_at = %s WHERE id = %s",
                   (int(dt.timestamp() * 1_000_000), campaign_id))
    else:
        db_execute(server.database, "UPDATE campaigns SET scheduled_at = %s WHERE id = %s",
                   (dt, campaign_id))


# ---- unsubscribe tokens ----


def decode_token(token):
    """(version, tenant_id, campaign_id, recipient_id) carried by an
    unsubscribe token (base64url, no padding, 87 characters)."""
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert len(raw) == 65, len(raw)
    ids = [str(uuid.UUID(bytes=raw[1 + 16 * i:17 + 16 * i])) for i in range(3)]
    return raw[0], ids[0], ids[1], ids[2]


# ---- one tenant and its endpoints ----


def campaign_body(**overrides):
    """A valid campaign body; overrides replace (or, as None-valued
    "DROP", remove) its fields."""
    body = {
        "name": f"Campaign {secrets.token_hex(3)}",
        "subject": "Hello {{first_name | default:\"friend\"}}",
        "from_address": "news@example.com",
        "html_body": "<p>Hi {{name}}</p><a href=\"{{unsubscribe_url}}\">unsubscribe</a>",
        "text_body": "Hi {{name}}\nUnsubscribe: {{unsubscribe_url}}",
    }
    for k, v in overrides.items():
        if v == "DROP":
            body.pop(k, None)
        else:
            body[k] = v
    return body


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

    def camp_path(self, cid=None, action=None):
        p = f"{self.base}/campaigns"
        if cid is not None:
            p += f"/{cid}"
        if action is not None:
            p += f"/{action}"
        return p

    # -- lists and recipients --

    def make_list(self, n=0, domain=None, name=None):
        """A new list with n active recipients (imported as CSV); returns its JSON."""
        r = self.server.post(self.lists_path(),
                             json={"name": name or f"List {secrets.token_hex(3)}"},
                             headers=self.h)
        assert r.status_code == 201, r.text
        lst = r.json()
        if n:
            self.import_emails(lst["id"], emails(n, domain))
        return lst

    def import_emails(self, list_id, addresses):
        body = "email\n" + "".join(f"{a}\n" for a in addresses)
        r = self.server.post(self.rcpt_path(list_id) + "/import", data=body.encode(),
                             headers={**self.h, **CSV}, timeout=300)
        assert r.status_code == 201, r.text
        assert r.json()["imported"] == len(addresses), r.text
        return r.json()

    def add(self, list_id, email, **fields):
        r = self.server.post(self.rcpt_path(list_id), json={"email": email, **fields},
                             headers=self.h)
        assert r.status_code == 201, r.text
        return r.json()

    def set_recipient_status(self, list_id, rid, status):
        r = self.server.put(self.rcpt_path(list_id, rid), json={"status": status},
                            headers=self.h)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == status

    def suppress(self, email):
        r = self.server.post(f"{self.base}/unsubscribes", json={"email": email},
                             headers=self.h)
        assert r.status_code == 201, r.text

    def set_rate_limits(self, **limits):
        r = self.server.put(f"{self.base}/rate-limits", json=limits, headers=self.server.op)
        assert r.status_code == 200, r.text
        return r.json()

    # -- campaigns --

    def post_campaign(self, body, headers=None):
        return self.server.post(self.camp_path(), json=body, headers=headers or self.h)

    def create(self, **overrides):
        r = self.post_campaign(campaign_body(**overrides))
        assert r.status_code == 201, r.text
        return r.json()

    def get(self, cid):
        r = self.server.get(self.camp_path(cid), headers=self.h)
        assert r.status_code == 200, r.text
        return r.json()

    def put(self, cid, body, headers=None):
        return self.server.put(self.camp_path(cid), json=body, headers=headers or self.h)

    def delete(self, cid, headers=None):
        return self.server.delete(self.camp_path(cid), headers=headers or self.h)

    def action(self, cid, action, body=None, headers=None):
        kw = {"json": body} if body is not None else {}
        return self.server.post(self.camp_path(cid, action), headers=headers or self.h, **kw)

    def do(self, cid, action, body=None):
        """An action that must succeed; returns the campaign it answers (for
        send and schedule, which answer 202 and what happens next, the
        campaign read after them)."""
        r = self.action(cid, action, body)
        if action in ("send", "schedule"):
            accepted_of(r, self.camp_path(cid))
            return self.get(cid)
        assert r.status_code == 200, (action, r.status_code, r.text)
        return r.json()

    def stats(self, cid, headers=None):
        r = self.server.get(self.camp_path(cid, "stats"), headers=headers or self.h)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == STATS_FIELDS, body
        return body

    def preview(self, cid, body, headers=None):
        return self.server.post(self.camp_path(cid, "preview"), json=body,
                                headers=headers or self.h)

    def listing(self, **params):
        r = self.server.get(self.camp_path(), headers=self.h, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    # -- waiting for the engine --

    def wait_for(self, cid, predicate, timeout=15, what="campaign condition"):
        return wait_until(lambda: (lambda c: c if predicate(c) else None)(self.get(cid)),
                          timeout, interval=0.05, what=what)

    def wait_materialized(self, cid, timeout=60):
        return self.wait_for(cid, lambda c: c["materialized"], timeout, "materialisation")

    def wait_status(self, cid, status, timeout=15):
        return self.wait_for(cid, lambda c: c["status"] == status, timeout,
                             f"status {status}")

    # -- campaigns in a given state --

    def ready(self, n=3, **overrides):
        """(list, draft campaign) with n active recipients on the list."""
        lst = self.make_list(n)
        c = self.create(recipient_list_id=lst["id"], **overrides)
        return lst, c

    def campaign_in(self, status, n=3):
        """A campaign brought to status through the API (and, for completed
        and failed, simulated delivery); returns it once it is there."""
        _, c = self.ready(n)
        cid = c["id"]
        if status == "draft":
            return self.get(cid)
        if status == "scheduled":
            self.do(cid, "schedule", {"scheduled_at": future(3600)})
            return self.get(cid)
        self.do(cid, "send")
        if status == "sending":
            return self.get(cid)
        if status == "paused":
            self.do(cid, "pause")
            return self.get(cid)
        if status == "cancelled":
            self.wait_materialized(cid)
            self.do(cid, "cancel")
            return self.get(cid)
        assert status in ("completed", "failed"), status
        self.wait_materialized(cid)
        assert deliver(self.server, cid, "sent" if status == "completed" else "failed") == n
        return self.wait_status(cid, status)


def accepted_of(r, campaign_path):
    """Asserts r is send's or schedule's 202 and returns its body."""
    assert r.status_code == 202, (r.status_code, r.text)
    body = r.json()
    assert set(body) == ACCEPTED_FIELDS, body
    assert body["campaign_url"] == campaign_path
    assert body["stats_url"] == campaign_path + "/stats" == r.headers["Location"]
    assert body["status"] in ("sending", "scheduled") and body["next"], body
    return body


def emails(n, domain=None):
    domain = domain or f"d{secrets.token_hex(3)}.example.com"
    return [f"user{i:06d}@{domain}" for i in range(n)]


def close_to(a, b, seconds):
    """Whether two API timestamps (or datetimes) lie within seconds of each other."""
    a = parse_time(a) if isinstance(a, str) else a
    b = parse_time(b) if isinstance(b, str) else b
    return abs((a - b).total_seconds()) <= seconds
