"""Helpers for the bounce tests (issue 10): reports written the way mail
servers write them, and the command that takes them in."""

import re
import subprocess

from campaignhelp import emails, wait_until
from deliveryhelp import mail_domain, messages, wait_terminal
from harness import BIN, child_env


def dsn(verp, final_rcpt, status="5.1.1", diag="550 5.1.1 <{r}>: Recipient address rejected: "
        "User unknown in virtual mailbox table", action="failed", original_headers=""):
    """An RFC 3464 report to the VERP address about final_rcpt, as Postfix writes it."""
    diag = diag.format(r=final_rcpt)
    return (
        "From: MAILER-DAEMON@relay.example.net (Mail Delivery System)\r\n"
        f"To: {verp}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B1\"\r\n\r\n"
        "--B1\r\nContent-Type: text/plain\r\n\r\n"
        f"<{final_rcpt}>: host mx.example.net said: {diag}\r\n\r\n"
        "--B1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; relay.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {final_rcpt}\r\nAction: {action}\r\nStatus: {status}\r\n"
        "Remote-MTA: dns; mx.example.net\r\n"
        f"Diagnostic-Code: smtp; {diag}\r\n\r\n"
        "--B1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"{original_headers}"
        "--B1--\r\n"
    ).encode()


def arf(original_headers, feedback_type="abuse"):
    """An RFC 5965 feedback report whose recipient is redacted (as most are)."""
    return (
        "From: fbl@isp.example\r\nTo: fbl@mailcast.example.test\r\nSubject: complaint\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=feedback-report; boundary=F\r\n\r\n"
        "--F\r\nContent-Type: text/plain\r\n\r\nAn abuse report.\r\n"
        "--F\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: {feedback_type}\r\nUser-Agent: isp/1\r\nVersion: 1\r\n\r\n"
        "--F\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"{original_headers}\r\n"
        "--F--\r\n"
    ).encode()


def pipe(database, message, *args, timeout=30):
    """`mailcast bounce ARGS --database DB < message`: (exit status, stderr)."""
    res = subprocess.run([BIN, "bounce", *args, "--database", database], input=message,
                         capture_output=True, env=child_env(), timeout=timeout)
    return res.returncode, res.stderr.decode(errors="replace")


def headers_of(raw):
    """The header section of a sent message (bytes) as text."""
    return raw.partition(b"\r\n\r\n")[0].decode()


def sent_campaign(mc, sink, t, n):
    """A campaign to n new addresses, sent: {address: (row, envelope sender, raw message)}."""
    domain = f"b{re.sub('[^a-z0-9]', '', t.id[:8])}.example.net"
    addrs = emails(n, domain)
    lst = t.make_list(0)
    t.import_emails(lst["id"], addrs)
    c = t.create(recipient_list_id=lst["id"], from_address=f"news@{mail_domain('from')}")
    t.do(c["id"], "send")
    assert wait_terminal(t, c["id"])["status"] == "completed"
    rows = messages(mc, c["id"])
    out = {}
    for a in addrs:
        m = wait_until(lambda: [x for x in sink.messages if a in x.rcpt_tos], 10,
                       what=f"{a} at the sink")[0]
        out[a] = (rows[a], m.mail_from, m.data)
    return c, lst, out
