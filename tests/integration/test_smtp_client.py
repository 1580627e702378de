"""The SMTP client against real peers (issue 12, findings 11-15 and the
relay half of 17): QUIT on every polite close, SNI only for host names, the
real TLS verification reason, asynchronous name resolution through a named
nameserver, bounded test sends, a fully qualified default EHLO name, and a
relay outage logged once with its recovery.

These are the SMTP client's behaviour, which no store changes: they run
once, on SQLite (solo_factory), as test_delivery.py's client tests do.
"""

import datetime
import re
import time

import pytest

from campaignhelp import Tenant, emails, wait_until
from deliveryhelp import FAST, delivery_args, unique_domain, wait_terminal
from harness import free_port
from slowdns import SlowDns
from smtpsink import Sink, make_cert, slow


def campaign(t, n, dom):
    lst = t.make_list(n, domain=dom)
    return t.create(recipient_list_id=lst["id"], from_address="news@from.example.org")


def send_all(t, n, tag):
    dom = unique_domain(tag)
    c = campaign(t, n, dom)
    t.do(c["id"], "send")
    done = wait_terminal(t, c["id"], timeout=30)
    assert done["status"] == "completed", done
    return dom, c


# ---- 11: QUIT ----


def test_idle_connections_close_with_quit(solo_factory):
    """After the campaign the pooled connections sit idle; past
    smtp_idle_timeout (1 s here, the command timeout is 5 s) each says QUIT
    before closing, rather than being dropped by a timeout."""
    with Sink() as sink:
        srv = solo_factory(delivery_args(sink.url, "--smtp-idle-timeout", "1"))
        t = Tenant(srv)
        send_all(t, 6, "idle")
        assert sink.wait_for(lambda s: s.sessions_total > 0 and s.sessions_open == 0, 15), \
            (sink.sessions_open, srv.log_tail())
        assert sink.closed_sessions and all(sink.closed_sessions), sink.closed_sessions


def test_shutdown_closes_with_quit(solo_factory):
    """SIGTERM with connections open (idle timeout far away): each says QUIT."""
    with Sink() as sink:
        srv = solo_factory(delivery_args(sink.url, "--smtp-idle-timeout", "300"))
        t = Tenant(srv)
        send_all(t, 6, "stop")
        assert sink.sessions_open > 0
        assert srv.stop() == 0, srv.log_tail()
        assert sink.wait_for(lambda s: s.sessions_open == 0, 10)
        assert sink.closed_sessions and all(sink.closed_sessions), sink.closed_sessions


def test_test_send_closes_with_quit(solo_factory):
    with Sink() as sink:
        srv = solo_factory(delivery_args(sink.url))
        t = Tenant(srv)
        c = campaign(t, 1, unique_domain("tq"))
        r = t.action(c["id"], "test", {"to": ["a@test-quit.example"]})
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["status"] == "sent", r.text
        assert sink.wait_for(lambda s: s.sessions_open == 0 and s.closed_sessions, 10)
        assert sink.closed_sessions == [True]


# ---- 15: a test send's wait is bounded ----


def test_test_send_wait_is_bounded_by_test_send_timeout(solo_factory):
    """The relay takes 8 s to answer end of data (within the 600 s it may
    take); the test send answers after test_send_timeout (2 s), saying so."""
    with Sink() as sink:
        sink.script("@slow-test.example", slow(8))
        srv = solo_factory(delivery_args(sink.url, "--smtp-data-timeout", "600",
                                         "--lease-seconds", "1300", "--test-send-timeout", "2"))
        t = Tenant(srv)
        c = campaign(t, 1, unique_domain("ts"))
        t0 = time.monotonic()
        r = t.action(c["id"], "test", {"to": ["a@slow-test.example"]})
        took = time.monotonic() - t0
        assert r.status_code == 200, r.text
        res = r.json()["results"][0]
        assert res["status"] == "failed", res
        assert "test_send_timeout" in res["reply"], res
        assert 1.5 < took < 5, took


def test_test_sends_cannot_take_every_http_thread(solo_factory):
    """A test send holds an HTTP thread while the relay thinks: past
    test_send_concurrency the next is refused at once (429), and /healthz
    stays quick (an attacker review stalled it for 17 s with four)."""
    import concurrent.futures
    with Sink() as sink:
        sink.script("@slow-cap.example", slow(4))
        srv = solo_factory(delivery_args(sink.url, "--test-send-concurrency", "1",
                                         "--http-threads", "4", "--test-send-timeout", "10"))
        t = Tenant(srv)
        c = campaign(t, 1, unique_domain("cap"))
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            first = ex.submit(t.action, c["id"], "test", {"to": ["a@slow-cap.example"]})
            wait_until(lambda: sink.sessions_open > 0, 10, what="the first test send connected")
            t0 = time.monotonic()
            second = t.action(c["id"], "test", {"to": ["b@slow-cap.example"]})
            assert second.status_code == 429, second.text
            assert second.json()["error"]["code"] == "too_many_requests"
            assert srv.get("/healthz").status_code == 200
            assert time.monotonic() - t0 < 2
            assert first.result().status_code == 200
        # Once it finished, a test send goes again.
        r = t.action(c["id"], "test", {"to": ["c@fast-cap.example"]})
        assert r.status_code == 200, r.text


def test_test_send_timeout_must_stay_below_http_timeout(tmp_path):
    from harness import run_cli
    res = run_cli("config", "check", "--test-send-timeout", "60", "--http-timeout", "60")
    assert res.returncode != 0
    assert "test_send_timeout" in res.stderr, res.stderr
    res = run_cli("config", "check", "--test-send-timeout", "59", "--http-timeout", "60")
    assert res.returncode == 0, res.stderr


# ---- 16: the default EHLO name ----


def test_default_ehlo_name_is_fully_qualified(solo_factory):
    with Sink() as sink:
        args = [a for a in delivery_args(sink.url)]
        i = args.index("--helo-name")
        del args[i:i + 2]
        srv = solo_factory(args)
        send_all(Tenant(srv), 1, "ehlo")
        assert sink.ehlo_names, "an EHLO arrived"
        for name in sink.ehlo_names:
            assert "." in name.strip(".") and re.fullmatch(r"[A-Za-z0-9.-]+", name), name


# ---- 12, 13: TLS ----


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    return {"good": make_cert(d, "sink"), "other": make_cert(d, "other"),
            "elsewhere": _cert(d, "elsewhere", ["elsewhere.example"]),
            "expired": _cert(d, "expired", ["localhost"], ip="127.0.0.1", expired=True)}


def _cert(directory, name, dns_names, ip=None, expired=False):
    """A self-signed CA:TRUE certificate for dns_names (and ip), valid now or expired
    yesterday, with python3-cryptography."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = ((now - datetime.timedelta(days=10), now - datetime.timedelta(days=1))
                  if expired else (now - datetime.timedelta(days=1), now + datetime.timedelta(days=2)))
    alt = [x509.DNSName(n) for n in dns_names]
    if ip:
        alt.append(x509.IPAddress(ipaddress.ip_address(ip)))
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cpath, kpath = directory / f"{name}.crt", directory / f"{name}.key"
    cpath.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kpath.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.TraditionalOpenSSL,
                                        serialization.NoEncryption()))
    return str(cpath), str(kpath)


@pytest.mark.parametrize("host,sni", [("127.0.0.1", None), ("localhost", "localhost")])
def test_sni_only_for_host_names(solo_factory, certs, host, sni):
    """RFC 6066 3: no server name for an IP literal; the name for a host name."""
    cert, key = certs["good"]
    with Sink(tls=(cert, key), require_starttls=True) as sink:
        srv = solo_factory(delivery_args(f"smtp://{host}:{sink.port}?starttls=require",
                                         "--smtp-ca-file", cert))
        dom, _ = send_all(Tenant(srv), 2, "sni")
        assert len(sink.messages_for_domain(dom)) == 2
        assert sink.sni_names and set(sink.sni_names) == {sni}, sink.sni_names


@pytest.mark.parametrize("which,host,reason", [
    ("other", "127.0.0.1", "self-signed certificate"),
    ("elsewhere", "localhost", "hostname mismatch"),
    ("elsewhere", "127.0.0.1", "IP address mismatch"),
    ("expired", "localhost", "certificate has expired"),
])
def test_tls_failure_logs_the_verification_reason(solo_factory, certs, which, host, reason):
    """The relay's certificate is trusted (it is its own CA) but wrong in one
    way, or not trusted at all: the log names which, not only "certificate
    verify failed".  Nothing is sent."""
    # "other": the relay shows the good certificate, mailcast trusts another CA.
    cert, key = certs["good"] if which == "other" else certs[which]
    ca = certs["other"][0] if which == "other" else cert
    with Sink(tls=(cert, key), require_starttls=True) as sink:
        srv = solo_factory(delivery_args(f"smtp://{host}:{sink.port}?starttls=require",
                                         "--smtp-ca-file", ca))
        t = Tenant(srv)
        c = campaign(t, 2, unique_domain("tlsr"))
        t.do(c["id"], "send")
        line = srv.wait_for_log(r"event=relay_unreachable.*certificate verify failed: " +
                                re.escape(reason), timeout=15)
        assert line is not None, srv.log_tail()
        assert sink.all_messages() == []


# ---- 14: the relay's name through evdns ----


def test_relay_name_resolved_through_the_named_nameserver(solo_factory):
    with Sink() as sink, SlowDns({"relay.mailcast.test": "127.0.0.1"}, delay=0.3) as dns:
        srv = solo_factory(delivery_args(f"smtp://relay.mailcast.test:{sink.port}",
                                         "--smtp-dns-server", dns.address))
        dom, _ = send_all(Tenant(srv), 3, "dns")
        assert len(sink.messages_for_domain(dom)) == 3
        assert ("relay.mailcast.test", 1) in dns.queries


def test_unknown_relay_name_is_an_outage_not_a_failure(solo_factory):
    with SlowDns({}, delay=0) as dns:
        srv = solo_factory(delivery_args(f"smtp://nowhere.mailcast.test:{free_port()}",
                                         "--smtp-dns-server", dns.address))
        t = Tenant(srv)
        c = campaign(t, 2, unique_domain("nx"))
        t.do(c["id"], "send")
        assert srv.wait_for_log(r"event=relay_unreachable.*cannot resolve", timeout=10), \
            srv.log_tail()


def test_a_hanging_dns_answer_does_not_stall_the_loop(solo_factory):
    """The nameserver never answers.  With resolution on the loop thread the
    worker could not even stop; with evdns the stop is prompt."""
    with SlowDns({"relay.mailcast.test": "127.0.0.1"}, delay=None) as dns:
        srv = solo_factory(delivery_args(f"smtp://relay.mailcast.test:{free_port()}",
                                         "--smtp-dns-server", dns.address,
                                         "--smtp-connect-timeout", "30"))
        t = Tenant(srv)
        c = campaign(t, 3, unique_domain("hang"))
        t.do(c["id"], "send")
        deadline = time.monotonic() + 10
        while not dns.queries and time.monotonic() < deadline:
            time.sleep(0.05)
        assert dns.queries, "the worker asked the nameserver"
        # The loop still answers: a test send over the same relay is bounded, and
        # the campaign is readable; then SIGTERM ends the process at once.
        t0 = time.monotonic()
        rc = srv.stop()
        assert time.monotonic() - t0 < 5
        assert rc == 0, srv.log_tail()  # a clean exit (under ASan: nothing leaked)


# ---- 17: the relay outage logged once, recovery seen by a probe ----


@pytest.mark.slow(19)
def test_relay_outage_logged_once_and_recovery_found_by_a_probe(solo_factory):
    """The relay is down for 17 s: the breaker's back-off has grown to 16 s
    by then, but a probe every 5 s at most finds the recovered relay, so the
    messages go within a few seconds; the outage is one warning and one
    "reachable again" line with the failures not logged in between."""
    port = free_port()
    srv = solo_factory(delivery_args(f"smtp://127.0.0.1:{port}", "--smtp-connections", "1"))
    t = Tenant(srv)
    dom = unique_domain("probe")
    c = campaign(t, 4, dom)
    t.do(c["id"], "send")
    assert srv.wait_for_log(r"event=relay_unreachable", timeout=10)
    time.sleep(17)  # the outage itself (not a synchronisation)
    with Sink(port=port) as sink:
        up = time.monotonic()
        done = wait_terminal(t, c["id"], timeout=20)
        took = time.monotonic() - up
        assert done["status"] == "completed", done
        assert took < 8, took
        assert len(sink.messages_for_domain(dom)) == 4
    log = srv.stderr()
    assert len(re.findall(r"event=relay_unreachable ", log)) == 1, log
    m = re.search(r"event=relay_reachable .*after_s=(\d+) failures_not_logged=(\d+)", log)
    assert m and int(m.group(1)) >= 15 and int(m.group(2)) >= 3, log


# ---- 16: config check, the text alternative ----


@pytest.mark.parametrize("relay,public,warns", [
    ("smtp://127.0.0.1:25", "http://mc.example.test", True),
    ("smtps://127.0.0.1:465", "http://mc.example.test", True),
    ("smtp://127.0.0.1:25", "https://mc.example.test", False),
    ("dir:/tmp/outbox", "http://127.0.0.1:8080", False),
])
def test_config_check_warns_about_a_plain_http_public_url(relay, public, warns):
    from harness import run_cli
    res = run_cli("config", "check", "--relay", relay, "--public-url", public)
    assert res.returncode == 0, res.stderr
    assert ("warning: public_url" in res.stderr) == warns, res.stderr
    if warns:
        assert "RFC 8058" in res.stderr


def test_html_only_campaign_gets_a_text_alternative(solo_factory):
    """No text body: the message is multipart/alternative with a text part
    made from the HTML by a real parser (entities decoded, script dropped,
    the link's address kept)."""
    import email
    import email.policy

    with Sink() as sink:
        srv = solo_factory(delivery_args(sink.url))
        t = Tenant(srv)
        dom = unique_domain("h2t")
        lst = t.make_list(1, domain=dom)
        c = t.create(recipient_list_id=lst["id"], from_address="news@from.example.org",
                     text_body=None,
                     html_body="<html><head><style>p{}</style></head><body>"
                               "<p>Hello {{email}} &amp; friends</p><script>x()</script>"
                               "<ul><li>one</li><li>two</li></ul>"
                               "<a href=\"{{{unsubscribe_url}}}\">Unsubscribe</a></body></html>")
        t.do(c["id"], "send")
        assert wait_terminal(t, c["id"], timeout=30)["status"] == "completed"
        (m,) = sink.messages_for_domain(dom)
        msg = email.message_from_bytes(m.data, policy=email.policy.default)
        assert msg.get_content_type() == "multipart/alternative"
        parts = {p.get_content_type(): p.get_content() for p in msg.iter_parts()}
        text = parts["text/plain"].replace("\r\n", "\n")
        assert text.startswith(f"Hello {emails(1, dom)[0]} & friends\n\n- one\n- two\n"), text
        assert "x()" not in text and "p{}" not in text
        assert re.search(r"Unsubscribe \(https?://\S+/u/\S+\)", text), text
        assert "<p>" in parts["text/html"]


@pytest.mark.parametrize("option,low,high", [
    ("smtp-idle-timeout", 1, 3600),
    ("lease-expiry-max", 1, 1000),
    ("test-send-timeout", 1, 59),  # below the default http_timeout of 60
])
def test_new_limits_at_their_boundaries(option, low, high):
    from harness import run_cli
    name = option.replace("-", "_")
    for value, ok in ((low - 1, False), (low, True), (high, True), (high + 1, False)):
        res = run_cli("config", "check", f"--{option}", str(value))
        assert (res.returncode == 0) == ok, (option, value, res.stderr)
        if ok:
            assert f"{name} = {value}" in res.stdout
        else:
            assert name in res.stderr


# ---- a relay refusing the session, an old one, one without SMTPUTF8 ----


class RawRelay:
    """A minimal SMTP server on loopback that plays a fixed part: greeting,
    then replies by the command's verb (ehlo: the EHLO reply, or None for
    "not understood").  Records every session's command lines."""

    def __init__(self, greeting="220 raw.example ESMTP", ehlo="250 raw.example"):
        import socket
        import threading
        self.greeting, self.ehlo = greeting, ehlo
        self.sessions = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"smtp://127.0.0.1:{self.port}?starttls=off"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        import threading
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn):
        lines = []
        self.sessions.append(lines)
        f = conn.makefile("rb")
        try:
            conn.sendall(self.greeting.encode() + b"\r\n")
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line.rstrip(b"\r\n").decode("utf-8", "replace")
                lines.append(cmd)
                verb = cmd.split(" ")[0].upper()
                if verb == "QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                if verb == "EHLO":
                    conn.sendall((self.ehlo or "502 5.5.1 what").encode() + b"\r\n")
                elif verb == "DATA":
                    conn.sendall(b"354 go\r\n")
                    while f.readline() not in (b".\r\n", b""):
                        pass
                    conn.sendall(b"250 2.0.0 queued\r\n")
                else:
                    conn.sendall(b"250 ok\r\n")
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()


def test_a_refusing_greeting_gets_quit(solo_factory):
    """554 at the greeting: the server waits for QUIT (RFC 5321 §3.1), and
    the messages wait for a relay that takes them."""
    relay = RawRelay(greeting="554 5.3.2 no service here")
    try:
        srv = solo_factory(delivery_args(relay.url))
        t = Tenant(srv)
        c = campaign(t, 2, unique_domain("g554"))
        t.do(c["id"], "send")
        wait_until(lambda: any(s == ["QUIT"] for s in relay.sessions), 15,
                   what="a QUIT after the refusing greeting")
        assert srv.wait_for_log(r"greeting 554 5\.3\.2 no service here", 5), srv.log_tail()
        assert t.stats(c["id"])["failed"] == 0
    finally:
        relay.close()


def test_helo_when_ehlo_is_not_understood_and_no_smtputf8_without_it(solo_factory):
    """502 to EHLO: HELO, and no extension is used (no SIZE, BODY or
    SMTPUTF8 on MAIL); a recipient whose address is not ASCII cannot go
    through such a relay (RFC 6531 §3.2): it fails with 553 5.6.7 before its
    RCPT, and the others are sent."""
    relay = RawRelay(ehlo=None)
    try:
        srv = solo_factory(delivery_args(relay.url))
        t = Tenant(srv)
        dom = unique_domain("helo")
        lst = t.make_list(2, domain=dom)
        t.add(lst["id"], f"jörg@{dom}")
        c = t.create(recipient_list_id=lst["id"], from_address="news@from.example.org")
        t.do(c["id"], "send")
        done = wait_terminal(t, c["id"], timeout=30)
        st = t.stats(c["id"])
        assert (done["status"], st["sent"], st["failed"]) == ("completed", 2, 1), (done, st)
        cmds = [x for s in relay.sessions for x in s]
        assert any(x.startswith("HELO ") for x in cmds), cmds
        mails = [x for x in cmds if x.startswith("MAIL FROM:")]
        assert len(mails) == 2 and all(x.endswith(">") for x in mails), mails  # no parameters
        assert not any("jörg" in x or "j\ufffd" in x for x in cmds), cmds
        rows = t.server.get(f"{t.base}/campaigns/{c['id']}/messages", headers=t.h,
                            params={"status": "failed"}).json()["data"]
        assert len(rows) == 1 and "5.6.7" in (rows[0].get("last_error") or "") + str(rows[0]), rows
    finally:
        relay.close()


def test_mail_parameters_say_what_the_message_is(solo_factory):
    """BODY=8BITMIME and SMTPUTF8 only for a message whose headers carry UTF-8
    (every body is 7-bit: quoted-printable or base64); an ASCII one declares
    neither (a strict-peer review saw BODY=8BITMIME on every message)."""
    with Sink() as sink:
        srv = solo_factory(delivery_args(sink.url))
        t = Tenant(srv)
        dom = unique_domain("params")
        lst = t.make_list(1, domain=dom)
        t.add(lst["id"], f"jörg@{dom}")
        c = t.create(recipient_list_id=lst["id"], from_address="news@from.example.org")
        t.do(c["id"], "send")
        assert wait_terminal(t, c["id"], timeout=30)["status"] == "completed"
        got = {m.rcpt_tos[0]: [o.upper() for o in m.mail_options]
               for m in sink.messages_for_domain(dom)}
        assert len(got) == 2, got
        for rcpt, opts in got.items():
            utf8 = not rcpt.isascii()
            assert ("SMTPUTF8" in opts) == utf8 and ("BODY=8BITMIME" in opts) == utf8, (rcpt, opts)
            assert all(o.startswith(("SIZE=", "SMTPUTF8", "BODY=", "RET=", "ENVID=")) for o in opts)
