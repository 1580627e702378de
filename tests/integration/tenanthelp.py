"""One tenant of a running server and its endpoints, for every test module.

Tenant(server) makes a fresh tenant with a read-write key (and, on demand, a
read-only key) and wraps the endpoints under it: lists, recipients, imports
and exports, the suppression list, rate limits and campaigns.  Every test
makes its own tenant, so tests sharing a module's server never see each
other's data.  campaignhelp and listhelp re-export it under their old names.
"""

import csv
import datetime
import io
import secrets
import time
import uuid

from harness import bearer, pg_run

CSV = {"Content-Type": "text/csv"}

# One name per count (recipient_count, <status>_count) on campaigns and stats;
# total_recipients (both) and sent/bounced/failed (stats) are the seed API's
# names, kept for its clients.  No delivered/opened/clicked: nothing feeds them.
COUNT_FIELDS = ["pending_count", "sending_count", "sent_count", "bounced_count",
                "failed_count", "cancelled_count", "suppressed_count", "bounced_hard_count",
                "bounced_soft_count", "complained_count", "blocked_count"]
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
    "bounced_hard", "bounced_soft", "complained", "blocked",
    "effective_rate_per_minute", "estimated_completion_at", "started_at", "completed_at",
}
# The 202 answer of send and schedule.
ACCEPTED_FIELDS = {"campaign_id", "status", "scheduled_at", "next", "campaign_url", "stats_url"}


def missing_id():
    """A well-formed id that names nothing."""
    return str(uuid.uuid4())


def parse_csv(text):
    """(header, rows) of a CSV document, rows as lists of strings."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows, "an export always has a header row"
    return rows[0], rows[1:]


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(dt):
    """An aware datetime as the RFC 3339 text the API takes."""
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def future(seconds=3600):
    return iso(utcnow() + datetime.timedelta(seconds=seconds))


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate() until it returns something truthy; returns that value.
    what names the condition in the error (a callable: called then, to show state)."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for "
                                 f"{what() if callable(what) else what}")
        time.sleep(interval)


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
    return pg_run(database, sql, params, fetch=True)


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

    def import_path(self, list_id, mode=None):
        p = f"{self.rcpt_path(list_id)}/import"
        return p if mode is None else f"{p}?mode={mode}"

    def export_path(self, list_id):
        return f"{self.rcpt_path(list_id)}/export"

    @property
    def unsub_path(self):
        return f"{self.base}/unsubscribes"

    def camp_path(self, cid=None, action=None):
        p = f"{self.base}/campaigns"
        if cid is not None:
            p += f"/{cid}"
        if action is not None:
            p += f"/{action}"
        return p

    # -- lists and recipients --

    def make_list(self, n=0, domain=None, name=None, **fields):
        """A new list (fields: description, metadata) with n active
        recipients imported as CSV; returns its JSON.  A string first
        argument is the name (make_list("Weekly")), as the list tests spell it."""
        if isinstance(n, str):
            name, n = n, 0
        body = {"name": name or f"List {secrets.token_hex(3)}", **fields}
        r = self.server.post(self.lists_path(), json=body, headers=self.h)
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

    def suppress(self, email, reason=None):
        """Adds email to the suppression list; returns the response."""
        body = {"email": email}
        if reason is not None:
            body["reason"] = reason
        return self.server.post(self.unsub_path, json=body, headers=self.h)

    def set_rate_limits(self, **limits):
        r = self.server.put(f"{self.base}/rate-limits", json=limits, headers=self.server.op)
        assert r.status_code == 200, r.text
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

    def unsubs(self, **params):
        r = self.server.get(self.unsub_path, headers=self.h, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def unsub_emails(self):
        return sorted(u["email"] for u in self.unsubs(limit=1000)["data"])

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
        from campaignhelp import deliver  # campaignhelp imports this module

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


