"""Helpers shared by the tests of campaigns, their lifecycle and their
templates (issue 4).

Tenant (tenanthelp.py, re-exported here with the other shared helpers)
makes a fresh tenant with its keys and wraps its endpoints.

There is no delivery yet: messages stay 'pending' while a campaign is
'sending'.  deliver() plays the part of the future delivery workers by
writing message statuses straight into the database (the count triggers
then update the campaign), which is how tests reach 'completed' and 'failed'.
"""

import base64
import datetime
import time
import uuid

from harness import db_execute, module_server, parse_time
# The shared helpers, under the names these tests have always imported.
from tenanthelp import (ACCEPTED_FIELDS, CAMPAIGN_FIELDS, COUNT_FIELDS, CSV,  # noqa: F401
                        STATS_FIELDS, Tenant, accepted_of, campaign_body, db_query, emails,
                        future, is_sqlite, iso, missing_id, utcnow, wait_until)
PREVIEW_FIELDS = {"to", "unsubscribe_url", "subject", "html", "text"}
STATUSES = ["draft", "scheduled", "sending", "paused", "completed", "cancelled", "failed"]

NIL_UUID = "00000000-0000-0000-0000-000000000000"

# These tests pin down campaigns before delivery: a server that also
# delivered would move messages on under them.  "--deliver 0" runs the API
# and the campaign engine only.
NO_DELIVERY = ["--deliver", "0"]


def campaign_server(request, store, tmp_path_factory):
    """Generator for a module-scoped `server` fixture started with
    NO_DELIVERY (kept for the modules that import it; new modules set
    SERVER_ARGS = NO_DELIVERY and use conftest's `server`)."""
    yield from module_server(request, store, tmp_path_factory, NO_DELIVERY)


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


def close_to(a, b, seconds):
    """Whether two API timestamps (or datetimes) lie within seconds of each other."""
    a = parse_time(a) if isinstance(a, str) else a
    b = parse_time(b) if isinstance(b, str) else b
    return abs((a - b).total_seconds()) <= seconds
