"""The SMTP listener for bounces and complaints (issue 10), on both stores:
it takes mail only for valid signed VERP addresses and the feedback-loop
address, answers 250 only after the report is committed (451 4.3.0 when
the database fails), and garbage, long lines, oversized messages, idle
clients and too many connections cannot take it down.
"""

import smtplib
import socket
import ssl

import pytest

from bouncehelp import arf, dsn, headers_of, sent_campaign
from campaignhelp import Tenant, wait_until
from deliveryhelp import delivery_args, recipient_status
from harness import OPERATOR_KEY, Server, create_database, db_execute, free_port
from smtpsink import make_cert

BOUNCE_DOMAIN = "bounces.example.test"
FBL = "fbl@mailcast.example.test"
MAX_MESSAGE = 64 * 1024


@pytest.fixture(scope="module")
def lmc(request, store, sink, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f"listener-{store}")
    cert, key = make_cert(workdir / "tls", "listener")
    url, drop = create_database(request, store, workdir)
    port = free_port()
    srv = Server(workdir, url, OPERATOR_KEY, delivery_args(
        sink.url, "--bounce-domain", BOUNCE_DOMAIN, "--bounce-listen", f"127.0.0.1:{port}",
        "--bounce-feedback-address", FBL, "--bounce-max-message", str(MAX_MESSAGE),
        "--bounce-max-connections", "4", "--bounce-command-timeout", "2",
        "--bounce-tls-cert", cert, "--bounce-tls-key", key))
    srv.bounce_port = port
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        drop()


def smtp(lmc):
    s = smtplib.SMTP("127.0.0.1", lmc.bounce_port, timeout=10)
    s.ehlo("tester.example")
    return s


def unsub_cause(t, email):
    r = t.server.get(f"{t.base}/unsubscribes", headers=t.h, params={"q": email})
    mine = [u for u in r.json()["data"] if u["email"].lower() == email.lower()]
    return mine[0]["cause"] if mine else None


def test_ehlo_and_refused_recipients(lmc, sink):
    t = Tenant(lmc)
    _, _, sent = sent_campaign(lmc, sink, t, 1)
    (a,) = sent
    verp = sent[a][1]
    s = smtp(lmc)
    for ext in ("pipelining", "size", "8bitmime", "smtputf8", "starttls"):
        assert s.has_extn(ext), ext
    assert int(s.esmtp_features["size"]) == MAX_MESSAGE
    assert s.mail("") == (250, b"2.1.0 Ok")
    bad = verp[:9] + ("a" if verp[9] != "a" else "b") + verp[10:]
    for rcpt in ("postmaster@other.example", "someone@example.org", bad,
                 verp.split("@")[0] + "@other-domain.example", "mcb-short@" + BOUNCE_DOMAIN):
        code, msg = s.rcpt(rcpt)
        assert (code, msg[:5]) == (550, b"5.1.1"), (rcpt, code, msg)
    assert s.docmd("DATA")[0] == 554  # no valid recipient
    assert s.rcpt(verp.upper())[0] == 250  # MTAs may change the case
    assert s.rcpt(FBL)[0] == 250
    # RFC 5321 §4.5.1: postmaster is taken (its mail is a report like any other).
    assert s.rcpt("postmaster")[0] == 250
    assert s.rcpt("Postmaster@" + BOUNCE_DOMAIN)[0] == 250
    # No DSN extension is advertised, so its parameters are refused (§4.1.1.11).
    assert s.rcpt(verp, ["NOTIFY=NEVER"])[0] == 555
    s.rset()
    assert s.rcpt(verp)[0] == 503  # MAIL first
    assert s.mail("x@example.org", ["SIZE=%d" % (MAX_MESSAGE + 1)])[0] == 552
    s.quit()


def test_dsn_through_the_listener_commits_before_250(lmc, sink):
    t = Tenant(lmc)
    c, _, sent = sent_campaign(lmc, sink, t, 2)
    a, b = sorted(sent)
    s = smtp(lmc)
    # Pipelined: MAIL, RCPT, DATA in one go (smtplib sends them in turn; the
    # listener answers in order either way).
    refused = s.sendmail("", [sent[a][1]], dsn(sent[a][1], a))
    assert refused == {}
    # The 250 came after the commit: the suppression is there now, without waiting.
    assert unsub_cause(t, a) == "hard_bounce"
    assert recipient_status(lmc, sent[a][0]["recipient_id"]) == "bounced"
    # A complaint to the feedback-loop address, the reference in the returned headers.
    assert s.sendmail("fbl@isp.example", [FBL], arf(headers_of(sent[b][2]))) == {}
    assert unsub_cause(t, b) == "complaint"
    s.quit()
    st = t.stats(c["id"])
    assert (st["bounced_hard"], st["complained"]) == (1, 1)
    recs = t.server.get(f"{t.base}/bounces", headers=t.h).json()["data"]
    assert {r["source"] for r in recs} == {"smtp"}


def test_oversized_message_is_refused_and_the_session_goes_on(lmc, sink):
    t = Tenant(lmc)
    _, _, sent = sent_campaign(lmc, sink, t, 1)
    (a,) = sent
    s = smtp(lmc)
    big = dsn(sent[a][1], a) + b"X" * (MAX_MESSAGE + 10) + b"\r\n"
    # Without SIZE in MAIL, the listener learns the size only by reading.
    assert s.mail("")[0] == 250 and s.rcpt(sent[a][1])[0] == 250
    assert s.data(big)[0] == 552
    assert unsub_cause(t, a) is None
    # At the limit exactly is fine.
    msg = dsn(sent[a][1], a)
    msg += b"Y" * (MAX_MESSAGE - len(msg) - 2)
    assert s.sendmail("", [sent[a][1]], msg) == {}
    assert unsub_cause(t, a) == "hard_bounce"
    s.quit()


def test_database_failure_answers_451_and_loses_nothing(lmc, sink):
    t = Tenant(lmc)
    _, _, sent = sent_campaign(lmc, sink, t, 1)
    (a,) = sent
    db_execute(lmc.database, "ALTER TABLE bounces RENAME TO bounces_away")
    try:
        s = smtp(lmc)
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("", [sent[a][1]], dsn(sent[a][1], a))
        assert (e.value.smtp_code, e.value.smtp_error[:5]) == (451, b"4.3.0")
        s.quit()
    finally:
        db_execute(lmc.database, "ALTER TABLE bounces_away RENAME TO bounces")
    assert unsub_cause(t, a) is None  # nothing half-done
    # The sender retries: now it is taken.
    s = smtp(lmc)
    assert s.sendmail("", [sent[a][1]], dsn(sent[a][1], a)) == {}
    s.quit()
    assert unsub_cause(t, a) == "hard_bounce"


def test_starttls(lmc, sink):
    t = Tenant(lmc)
    _, _, sent = sent_campaign(lmc, sink, t, 1)
    (a,) = sent
    s = smtp(lmc)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    assert s.starttls(context=ctx)[0] == 220
    s.ehlo("tester.example")
    assert not s.has_extn("starttls")
    assert s.sendmail("", [sent[a][1]], dsn(sent[a][1], a)) == {}
    s.quit()
    assert unsub_cause(t, a) == "hard_bounce"


def raw_session(lmc):
    c = socket.create_connection(("127.0.0.1", lmc.bounce_port), timeout=10)
    f = c.makefile("rb")
    assert f.readline().startswith(b"220 ")
    return c, f


def test_garbage_long_lines_and_errors_end_the_session_not_the_server(lmc):
    c, f = raw_session(lmc)
    c.sendall(b"X" * 5000 + b"\r\n")
    assert f.readline().startswith(b"500 5.5.2")
    c.sendall(b"\x00\xff garbage\r\n")
    assert f.readline()[:3] in (b"500", b"501")
    c.sendall(b"BOGUS\r\n" * 18)  # pipelined: the 18th is the 20th error
    lines = []
    while len(lines) < 30 and not (lines and lines[-1][:3] in (b"421", b"")):
        lines.append(f.readline())
    # The 20th error (the long line and the garbage were the first two) is answered, then 421.
    assert len(lines) == 19 and lines[-1].startswith(b"421 4.7.0"), lines[-3:]
    assert f.readline() == b""  # closed
    c.close()
    s = smtp(lmc)  # the server goes on
    assert s.noop()[0] == 250
    s.quit()


def test_only_crlf_dot_crlf_ends_the_data(lmc, sink):
    """A bare LF is no line end in DATA (RFC 5321 §2.3.8): "<LF>.<LF>" and
    "<CR><LF>.<LF>" do not end the message, so nothing can be smuggled after
    them as a second transaction."""
    t = Tenant(lmc)
    _, _, sent = sent_campaign(lmc, sink, t, 1)
    (a,) = sent
    verp = sent[a][1]
    c, f = raw_session(lmc)
    c.sendall(b"EHLO tester.example\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    c.sendall(f"MAIL FROM:<>\r\nRCPT TO:<{verp}>\r\nDATA\r\n".encode())
    assert [f.readline()[:3] for _ in range(3)] == [b"250", b"250", b"354"]
    c.sendall(b"From: probe@example.org\r\nSubject: x\r\n\r\nhello\nx\n.\n"
              b"MAIL FROM:<>\r\nRCPT TO:<smuggled@" + BOUNCE_DOMAIN.encode() +
              b">\r\nDATA\r\nstill data\r\n.\n\r\n.\r\n")
    # One message: everything up to CRLF.CRLF; one reply.
    assert f.readline().startswith(b"250 2.0.0")
    c.sendall(b"NOOP\r\n")
    assert f.readline().startswith(b"250 2.0.0 Ok")  # the next reply is NOOP's: no extra ones
    c.close()


def test_the_rest_of_a_long_command_line_gets_no_second_reply(lmc):
    c, f = raw_session(lmc)
    c.sendall(b"NOOP " + b"x" * 5000)  # no line end yet: answered once it is too long
    assert f.readline().startswith(b"500 5.5.2")
    c.sendall(b"QUIT\r\nNOOP\r\n")  # the same line's tail, then a command
    assert f.readline().startswith(b"250 2.0.0 Ok")  # NOOP, not a 221 for the tail's QUIT
    c.sendall(b"MAIL FROM:<j\xc3\xb6rg@example.org>\r\n")  # EHLO first
    assert f.readline()[:3] == b"503"
    c.sendall(b"EHLO x\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    c.sendall(b"MAIL FROM:<j\xc3\xb6rg@example.org>\r\n")  # UTF-8 without SMTPUTF8
    assert f.readline().startswith(b"553 5.6.7")
    c.sendall(b"MAIL FROM:<> RET=HDRS\r\n")
    assert f.readline().startswith(b"555 5.5.4")
    c.close()


def test_idle_clients_time_out_and_the_connection_limit_holds(lmc):
    c, f = raw_session(lmc)
    # --bounce-command-timeout 2: an idle client is told and dropped.
    assert f.readline().startswith(b"421 4.4.2")
    assert f.readline() == b""
    c.close()
    # --bounce-max-connections 4: the fifth is refused while four are open.
    held = [raw_session(lmc) for _ in range(4)]
    extra = socket.create_connection(("127.0.0.1", lmc.bounce_port), timeout=10)
    assert extra.makefile("rb").readline().startswith(b"421 4.7.0")
    extra.close()
    for c, _ in held:
        c.close()
    wait_until(lambda: _connects(lmc), 10, what="a session after the others closed")


def _connects(lmc):
    try:
        c = socket.create_connection(("127.0.0.1", lmc.bounce_port), timeout=5)
        line = c.makefile("rb").readline()
        c.sendall(b"QUIT\r\n")
        c.close()
        return line.startswith(b"220 ")
    except OSError:
        return False


class DatabaseHeld:
    """Holds the bounces table's write lock from outside, so the listener's
    intake waits inside its transaction (SQLite: an exclusive transaction;
    PostgreSQL: LOCK TABLE)."""

    def __init__(self, database):
        self.database = database

    def __enter__(self):
        if self.database.startswith("sqlite:"):
            import sqlite3
            self.conn = sqlite3.connect(self.database[len("sqlite:"):], timeout=10,
                                        isolation_level=None)
            self.conn.execute("BEGIN EXCLUSIVE")
        else:
            import psycopg2
            self.conn = psycopg2.connect(self.database)
            self.conn.cursor().execute("LOCK TABLE bounces IN ACCESS EXCLUSIVE MODE")
        return self

    def __exit__(self, *exc):
        if self.database.startswith("sqlite:"):
            self.conn.execute("ROLLBACK")
        else:
            self.conn.rollback()
        self.conn.close()


def test_kill_9_between_data_and_250_loses_nothing_accepted(request, store, sink,
                                                            tmp_path):
    """The sender is told 250 only after the commit: a kill -9 while the intake
    waits on the database leaves the sender without an answer (so it retries)
    and the database without a half-written report; the retry is taken."""
    url, drop = create_database(request, store, tmp_path / "db")
    request.addfinalizer(drop)
    port = free_port()
    args = delivery_args(sink.url, "--bounce-domain", BOUNCE_DOMAIN, "--bounce-listen",
                         f"127.0.0.1:{port}", "--db-busy-timeout-ms", "60000")
    srv = Server(tmp_path / "srv", url, OPERATOR_KEY, args)
    srv.bounce_port = port
    srv.start()
    request.addfinalizer(srv.kill)
    t = Tenant(srv)
    _, _, sent = sent_campaign(srv, sink, t, 1)
    (a,) = sent
    verp = sent[a][1]
    s = smtp(srv)
    assert s.mail("")[0] == 250 and s.rcpt(verp)[0] == 250
    assert s.docmd("DATA")[0] == 354
    with DatabaseHeld(url):
        s.send(dsn(verp, a) + b".\r\n")
        # The listener now waits on the lock, inside its transaction: no answer yet.
        s.sock.settimeout(1)
        with pytest.raises(OSError):
            s.sock.recv(1)
        srv.kill()
    s.sock.settimeout(10)
    assert s.sock.recv(100) == b""  # the connection died without a 250
    srv.start()
    assert unsub_cause(t, a) is None
    assert t.server.get(f"{t.base}/bounces", headers=t.h).json()["total"] == 0
    # The sender retries: taken once.
    s = smtp(srv)
    assert s.sendmail("", [verp], dsn(verp, a)) == {}
    s.quit()
    assert unsub_cause(t, a) == "hard_bounce"
    assert t.server.get(f"{t.base}/bounces", headers=t.h).json()["total"] == 1


def test_shutdown_tells_open_sessions_421(request, store, sink, tmp_path):
    """SIGTERM: every open session hears 421 (RFC 5321 §3.8) before the
    connection closes, and the server exits cleanly."""
    url, drop = create_database(request, store, tmp_path / "db")
    request.addfinalizer(drop)
    port = free_port()
    srv = Server(tmp_path / "srv", url, OPERATOR_KEY, delivery_args(
        sink.url, "--bounce-domain", BOUNCE_DOMAIN, "--bounce-listen", f"127.0.0.1:{port}"))
    srv.bounce_port = port
    srv.start()
    request.addfinalizer(srv.kill)
    c, f = raw_session(srv)
    c.sendall(b"EHLO tester.example\r\nMAIL FROM:<>\r\n")
    while not f.readline().startswith(b"250 2.1.0"):
        pass
    assert srv.stop() == 0
    assert f.readline().startswith(b"421 4.3.2"), "no 421 before the close"
    assert f.readline() == b""
    c.close()


def test_one_address_cannot_take_every_session(request, store, sink, tmp_path):
    """Past bounce_max_connections_per_ip sessions from one address, another
    from it is refused with 421, while another address is served (an
    attacker review held all 100 sessions from one address)."""
    url, drop = create_database(request, store, tmp_path / "db")
    request.addfinalizer(drop)
    port = free_port()
    srv = Server(tmp_path / "srv", url, OPERATOR_KEY, delivery_args(
        sink.url, "--bounce-domain", BOUNCE_DOMAIN, "--bounce-listen", f"127.0.0.1:{port}",
        "--bounce-max-connections-per-ip", "2"))
    srv.bounce_port = port
    srv.start()
    request.addfinalizer(srv.stop)
    held = [raw_session(srv) for _ in range(2)]
    extra = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert extra.makefile("rb").readline().startswith(b"421 4.7.0 Too many connections from")
    extra.close()
    other = socket.create_connection(("127.0.0.1", port), timeout=10,
                                     source_address=("127.0.0.2", 0))
    assert other.makefile("rb").readline().startswith(b"220 ")
    other.close()
    for c, _ in held:
        c.close()
