"""Helpers for the delivery tests (issue 5): server options, the database
view of a campaign's messages, and checks of a delivered message's bytes.
"""

import datetime
import email
import email.policy
import re
import secrets

from campaignhelp import db_query

PUBLIC_URL = "https://mc.example.test"
RETURN_PATH = "bounces@return.example.test"
HELO = "mailcast.helo.test"

# Short timeouts and polls so that a test never waits on the defaults; the
# lease must exceed smtp_data_timeout + 2 * smtp_command_timeout.
FAST = ["--delivery-poll-ms", "50", "--engine-poll-ms", "50", "--idle-poll-max-ms", "400",
        "--retry-base", "1", "--retry-cap", "8",
        "--smtp-connect-timeout", "5", "--smtp-command-timeout", "5",
        "--smtp-data-timeout", "5", "--lease-seconds", "30",
        "--public-url", PUBLIC_URL, "--helo-name", HELO,
        # A burst larger than any test's campaign: tests that are not about
        # pacing (test_pacing.py sets its own) see the windows alone, and a
        # retry's backoff is not stretched by its tenant's default 100/min.
        "--pacing-burst", "100"]

HEADER_NAMES = {"date", "from", "to", "reply-to", "subject", "message-id", "mime-version",
                "list-unsubscribe", "list-unsubscribe-post", "x-mailcast-ref", "content-type",
                "content-transfer-encoding"}


def delivery_args(relay, *extra):
    return ["--relay", relay, *FAST, *extra]


def unique_domain(tag):
    return f"{tag}-{secrets.token_hex(3)}.example.net"


def mail_domain(tag):
    """A From domain of its own (Message-IDs end with it)."""
    return f"{tag}-{secrets.token_hex(3)}.example.org"


# ---- the database view ----


def messages(server, campaign_id):
    """{to_address: row} with status, attempts, message_id, last_reply_code,
    relay_queue_id, last_error, id of every message of the campaign."""
    rows = db_query(server.database,
                    "SELECT to_address, status, attempts, message_id, last_reply_code, "
                    "relay_queue_id, last_error, id, recipient_id FROM scheduled_messages "
                    "WHERE campaign_id = %s", (campaign_id,))
    out = {}
    for r in rows:
        out[r[0]] = {"status": r[1], "attempts": r[2], "message_id": r[3],
                     "last_reply_code": r[4], "relay_queue_id": r[5], "last_error": r[6],
                     "id": str(r[7]), "recipient_id": None if r[8] is None else str(r[8])}
    return out


def statuses(server, campaign_id):
    rows = db_query(server.database,
                    "SELECT status, COUNT(*) FROM scheduled_messages WHERE campaign_id = %s "
                    "GROUP BY status", (campaign_id,))
    return {s: n for s, n in rows}


def pending_in_claim_order(server, campaign_id):
    """to_address of the pending messages, in the order the workers claim them:
    the due index's, whose ties (a campaign's messages share next_attempt_at)
    fall in the order rows were stored (PostgreSQL's heap position, SQLite's
    rowid), not in id order (time-ordered ids made in one millisecond by
    PostgreSQL's mc_uuid7() are in no particular order)."""
    tie = "rowid" if server.database.startswith("sqlite:") else "ctid"
    rows = db_query(server.database,
                    "SELECT to_address FROM scheduled_messages WHERE campaign_id = %s "
                    f"AND status = 'pending' ORDER BY next_attempt_at, {tie}", (campaign_id,))
    return [r[0] for r in rows]


def recipient_status(server, recipient_id):
    return db_query(server.database, "SELECT status FROM recipients WHERE id = %s",
                    (recipient_id,))[0][0]


def wait_terminal(t, cid, timeout=30, statuses_ok=("completed", "failed", "cancelled")):
    return t.wait_for(cid, lambda c: c["status"] in statuses_ok, timeout,
                      f"campaign {cid} to finish")


# ---- one delivered message ----


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def check_wire_format(raw):
    """CRLF line ends only, no line over 998 octets, folded headers within 78
    (but for List-Unsubscribe, whose URI cannot be split), quoted-printable
    lines within 76, 7-bit headers."""
    assert raw.endswith(b"\r\n"), raw[-20:]
    assert b"\r\n" in raw
    bare_lf = len(re.findall(rb"(?<!\r)\n", raw))
    bare_cr = len(re.findall(rb"\r(?!\n)", raw))
    assert bare_lf == 0 and bare_cr == 0, (bare_lf, bare_cr)
    lines = raw.split(b"\r\n")
    for line in lines:
        assert len(line) <= 998, len(line)
    head, sep, _ = raw.partition(b"\r\n\r\n")
    assert sep, "no empty line ends the header section"
    assert max(head) < 0x80, "8-bit octets in the header section"
    current = None
    for line in head.split(b"\r\n"):
        if line[:1] not in (b" ", b"\t"):
            current = line.split(b":", 1)[0].lower()
        if current != b"list-unsubscribe":
            assert len(line) <= 78, line
    return lines


def qp_lines_ok(raw):
    """Every line of the body (after the headers) within 76 octets, as
    quoted-printable requires; boundaries are shorter."""
    body = raw.partition(b"\r\n\r\n")[2]
    for line in body.split(b"\r\n"):
        assert len(line) <= 76, line


def crlf_to_lf(s):
    """Line breaks as LF: on the wire every line break of a body is CRLF."""
    return s.replace("\r\n", "\n").replace("\r", "\n")


def clean_header_value(s):
    """What a rendered value becomes in a header: every control character
    (CR and LF included), DEL, U+0085, U+2028 and U+2029 a space; trimmed."""
    return re.sub("[\x00-\x1f\x7f\u0085\u2028\u2029]", " ", s).strip(" ")


def raw_header(raw, name):
    """The unfolded raw value of the header name in the message bytes raw."""
    m = re.search(rb"(?:^|\r\n)" + re.escape(name.encode()) + rb":(.*?)\r\n(?![ \t])",
                  raw.partition(b"\r\n\r\n")[0] + b"\r\n", re.S | re.I)
    assert m, name
    return re.sub(rb"\r\n([ \t])", rb"\1", m.group(1)).decode("ascii").strip()


def rfc2047_decode(value):
    """A header value with its encoded-words decoded as RFC 2047 6.2 says: the
    white space between two adjacent encoded-words is not part of the text.
    (email.headerregistry keeps that space inside a phrase, so a display name
    too long for one encoded-word cannot come back intact through it.)"""
    import email.header

    return str(email.header.make_header(email.header.decode_header(value)))


def msgid_of(msg):
    mid = str(msg["Message-ID"]).strip()
    assert mid.startswith("<") and mid.endswith(">"), mid
    return mid[1:-1]


def date_ok(msg):
    d = msg["Date"].datetime
    assert d.tzinfo is not None
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - d).total_seconds()) < 600, d
    return d


def max_in_window(times, width):
    """The largest number of times in any half-open window [t, t + width)."""
    ts = sorted(times)
    best, j = 0, 0
    for i in range(len(ts)):
        while j < len(ts) and ts[j] < ts[i] + width:
            j += 1
        best = max(best, j - i)
    return best
