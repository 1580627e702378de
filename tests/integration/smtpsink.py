"""A scriptable SMTP sink for mailcast's delivery tests, on Debian's aiosmtpd.

Sink() runs an aiosmtpd server in a thread of its own on a loopback port and
records what it sees:

- every accepted message (Message: envelope, raw bytes, time, TLS, AUTH user);
- every attempt per recipient (Attempt: the time its RCPT TO arrived, the
  reply it got and, when the DATA phase was reached, the raw bytes sent).

Times: `time` is when this process handled the command (time.time()), late
when the test process is short of CPU; `sent` is when the kernel received
the bytes that carried the transaction's MAIL command (SO_TIMESTAMPNS),
i.e. when the client started it, which no stall of this process moves (a
client without pipelining sends RCPT only after MAIL's reply, so RCPT's
arrival would move with the sink).  Rate assertions (pacing) use `sent`:
under a loaded test suite the sink's thread can stall for a second and then
handle a second's messages at once.

Replies are scripted per recipient (an exact address) or per domain
("@domain"): script(key, *actions, then=ACCEPT) answers the key's first
attempts with actions, one each, then always `then`.  An action is a Reply:

    ACCEPT          250 after DATA
    TEMP_421        421 4.4.2 at RCPT, then the connection is closed
    TEMP_451        451 4.3.0 at RCPT
    TEMP_451_DATA   451 4.3.0 after DATA (the whole message was transferred)
    BOUNCE_550      550 5.1.1 at RCPT (no such user)
    REJECT_554      554 5.7.1 after DATA (content refused)
    DISCONNECT      the message is read to its final dot, then the connection
                    is dropped without a reply
    slow(seconds)   250 after DATA, seconds late

Options: tls=(cert, key) offers STARTTLS (require_starttls=True refuses
everything but EHLO/NOOP/QUIT before it); auth=(user, password) offers AUTH
PLAIN and LOGIN (auth_mechanisms narrows them) and, with auth_required,
refuses mail from unauthenticated sessions; pipelining=True advertises
PIPELINING.  port=N binds that port (for a
relay that appears later); the default is a free one.

host= binds another loopback address (Linux routes all of 127/8 to lo), for
a second egress.  Sessions are counted: sessions_total, sessions_open (and
sessions_open_max, the most open at once), and closed_sessions
(one bool per closed connection that said EHLO: whether it said QUIT first);
sni_names lists the server name each TLS handshake carried (None: no SNI).
wait_for(predicate) waits on any of these.  freeze(seconds) stops the sink
answering for that long.

make_cert(directory, name) writes a self-signed certificate (CA:TRUE, SAN
DNS:localhost and IP:127.0.0.1) with the openssl command line tool.
"""

import asyncio
import dataclasses
import logging
import socket
import ssl
import struct
import subprocess
import threading
import time
import warnings
from pathlib import Path
from typing import List, Optional

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

# aiosmtpd logs every command at INFO and warns about AUTH without TLS.
logging.getLogger("mail.log").setLevel(logging.ERROR)


# ---- scripted replies ----


@dataclasses.dataclass(frozen=True)
class Reply:
    phase: str              # "rcpt" or "data": when the reply is given
    text: str = "250 2.0.0 Ok: queued"
    close: bool = False     # close the connection after the reply
    drop: bool = False      # drop the connection instead of replying
    delay: float = 0.0      # seconds before the reply

    @property
    def label(self):
        if self.drop:
            return "disconnect"
        return self.text.split()[0] + ("-slow" if self.delay else "")


ACCEPT = Reply("data")
TEMP_421 = Reply("rcpt", "421 4.4.2 Service shutting down, closing channel", close=True)
TEMP_451 = Reply("rcpt", "451 4.3.0 Temporary failure, try again later")
TEMP_451_DATA = Reply("data", "451 4.3.0 Temporary failure after data, try again later")
BOUNCE_550 = Reply("rcpt", "550 5.1.1 No such user here")
REJECT_554 = Reply("data", "554 5.7.1 Message refused by policy")
DISCONNECT = Reply("data", drop=True)


def slow(seconds):
    return Reply("data", delay=float(seconds))


# ---- records ----


@dataclasses.dataclass
class Attempt:
    rcpt: str                       # the address as given in RCPT TO, lower-cased
    mail_from: str
    time: float                     # time.time() when RCPT TO arrived
    reply: Reply
    sent: float = 0.0               # kernel receive time of its MAIL command's bytes
    data: Optional[bytes] = None    # the message, when the DATA phase was reached
    done_time: Optional[float] = None
    tls: bool = False


@dataclasses.dataclass
class Message:
    mail_from: str
    rcpt_tos: List[str]
    data: bytes                     # raw, dot-stuffing undone, CRLF as sent
    time: float                     # time.time() when the final reply was given
    tls: bool
    auth_user: Optional[str]
    mail_options: List[str]
    rcpt_options: List[str]
    peer: tuple
    sent: float = 0.0               # kernel receive time of its MAIL command's bytes


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_cert(directory, name="sink"):
    """(cert path, key path) of a new self-signed certificate for 127.0.0.1/localhost."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN=127.0.0.1/O=mailcast test {name}",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign"],
        check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


# ---- the server ----


class _Handler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        # aiosmtpd's own behaviour, plus when the command's bytes arrived.
        stamp = getattr(server, "_mc_stamp", None)
        envelope._mc_sent = stamp.last if stamp is not None and stamp.last else time.time()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        sink = self.sink
        reply = sink._next_reply(address)
        now = time.time()
        att = Attempt(rcpt=address.lower(), mail_from=envelope.mail_from or "",
                      time=now, reply=reply, tls=session.ssl is not None,
                      sent=getattr(envelope, "_mc_sent", now))
        with sink._lock:
            sink.attempts.append(att)
        if reply.phase == "rcpt":
            att.done_time = time.time()
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if reply.close:
                # After the reply is written (push() writes before it yields).
                server.loop.call_soon(_close, server)
            return reply.text
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        # The attempts waiting for the DATA phase, in RCPT order.
        pending = getattr(envelope, "_mc_attempts", None)
        if pending is None:
            pending = envelope._mc_attempts = []
        pending.append(att)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        sink = self.sink
        atts = getattr(envelope, "_mc_attempts", [])
        data = bytes(envelope.original_content or b"")
        for a in atts:
            a.data = data
        # mailcast sends one recipient per transaction; with several, the first
        # scripted refusal answers for the transaction.
        reply = next((a.reply for a in atts if a.reply != ACCEPT), ACCEPT)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        now = time.time()
        for a in atts:
            a.done_time = now
        if reply.drop:
            # No reply at all: the client cannot know whether the message was taken.
            server.transport.abort()
            await asyncio.sleep(3600)  # cancelled by connection_lost()
            return "451 unreachable"
        if reply.text.startswith("2"):
            msg = Message(mail_from=envelope.mail_from or "", rcpt_tos=list(envelope.rcpt_tos),
                          data=data, time=now, tls=session.ssl is not None,
                          auth_user=_auth_user(session), mail_options=list(envelope.mail_options),
                          rcpt_options=list(envelope.rcpt_options), peer=session.peer,
                          sent=atts[0].sent if atts else now)
            with sink._lock:
                sink.messages.append(msg)
                sink._cond.notify_all()
        if reply.close:
            server.loop.call_soon(_close, server)
        return reply.text

    async def handle_QUIT(self, server, session, envelope):
        server._mc_quit = True
        with self.sink._cond:
            self.sink.quits += 1
            self.sink._cond.notify_all()
        return "221 2.0.0 Bye"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        server._mc_ehlo = True
        with self.sink._lock:
            self.sink.ehlo_names.append(hostname)
        if self.sink.pipelining:
            # aiosmtpd reads one command line at a time, so pipelined commands
            # simply wait in its buffer: advertising RFC 2920 is enough.
            responses = responses[:-1] + ["250-PIPELINING"] + responses[-1:]
        return responses


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; Python 3.11 lacks the name


class _StampedSocket:
    """The transport's socket, read with recvmsg() (recvmsg_into() once TLS
    reads into buffers) to keep the kernel's receive time of the latest bytes
    (SO_TIMESTAMPNS); everything else is the socket's own."""

    def __init__(self, sock):
        self._mc_sock = sock
        self.last = 0.0
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)

    def _stamp(self, anc):
        for level, kind, raw in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
                sec, nsec = struct.unpack("qq", raw[:16])
                self.last = sec + nsec / 1e9

    def recv(self, n, flags=0):
        data, anc, _, _ = self._mc_sock.recvmsg(n, socket.CMSG_SPACE(16), flags)
        self._stamp(anc)
        return data

    def recv_into(self, buf, nbytes=0, flags=0):
        # After STARTTLS asyncio's SSL protocol is a buffered one: it reads here.
        view = memoryview(buf)
        n, anc, _, _ = self._mc_sock.recvmsg_into([view[:nbytes] if nbytes else view],
                                                  socket.CMSG_SPACE(16), flags)
        self._stamp(anc)
        return n

    def __getattr__(self, name):
        return getattr(self._mc_sock, name)


def _close(server):
    if server.transport is not None:
        server.transport.close()


def _auth_user(session):
    data = getattr(session, "auth_data", None)
    if isinstance(data, LoginPassword):
        return data.login.decode("utf-8", "replace")
    if isinstance(data, (bytes, str)):
        return data.decode() if isinstance(data, bytes) else data
    return None


class _Controller(Controller):
    def factory(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # AUTH without TLS is what the tests want
            smtp = super().factory()
        sink = self.handler.sink
        made, lost = smtp.connection_made, smtp.connection_lost

        def connection_made(transport):
            first = smtp.transport is None  # STARTTLS calls it again for the same session
            if first and isinstance(getattr(transport, "_sock", None), socket.socket):
                smtp._mc_stamp = transport._sock = _StampedSocket(transport._sock)
            made(transport)
            if first:
                with sink._cond:
                    sink.sessions_total += 1
                    sink.sessions_open += 1
                    sink.sessions_open_max = max(sink.sessions_open_max, sink.sessions_open)
                    sink._cond.notify_all()

        def connection_lost(error):
            with sink._cond:
                sink.sessions_open -= 1
                if getattr(smtp, "_mc_ehlo", False):  # not the controller's bare connect
                    sink.closed_sessions.append(bool(getattr(smtp, "_mc_quit", False)))
                sink._cond.notify_all()
            lost(error)

        smtp.connection_made, smtp.connection_lost = connection_made, connection_lost
        return smtp

    def _create_server(self):
        # Port 0 (the default): the kernel picks a free port at the bind, in
        # this thread before start() reads self.port; a port probed earlier
        # may have been taken by another test's process in between.
        family = socket.AF_INET6 if ":" in self.hostname else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.hostname, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        return self.loop.create_server(self._factory_invoker, sock=sock, ssl=self.ssl_context)

    def _trigger_server(self):
        # The stock trigger speaks to the server (and, with TLS options, may fail
        # before the test even starts); a bare connect is all it needs.
        with socket.create_connection((self.hostname, self.port), timeout=5):
            pass


class Sink:
    def __init__(self, port=None, tls=None, require_starttls=False, auth=None,
                 auth_required=None, auth_mechanisms=("PLAIN", "LOGIN"), pipelining=False,
                 host="127.0.0.1"):
        self._port = port or 0  # 0: the kernel's pick at start()
        self.pipelining = pipelining
        self.host = host
        self.attempts: List[Attempt] = []
        self.messages: List[Message] = []
        self.ehlo_names: List[str] = []
        self.auth_failures = 0
        self.quits = 0
        self.sessions_total = 0
        self.sessions_open = 0
        self.sessions_open_max = 0
        self.closed_sessions: List[bool] = []
        self.sni_names: List[Optional[str]] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._scripts = {}
        self.default = ACCEPT
        self._auth = auth
        kw = {"server_hostname": "sink.test", "enable_SMTPUTF8": True, "decode_data": False,
              "data_size_limit": 64 * 1024 * 1024, "timeout": 60}
        if tls:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(*tls)

            def sni(sslobj, name, context):
                with self._lock:
                    self.sni_names.append(name)

            ctx.sni_callback = sni
            kw["tls_context"] = ctx
            kw["require_starttls"] = require_starttls
        if auth:
            kw["authenticator"] = self._authenticate
            kw["auth_required"] = True if auth_required is None else auth_required
            kw["auth_require_tls"] = False
            kw["auth_exclude_mechanism"] = [m for m in ("PLAIN", "LOGIN", "CRAM-MD5")
                                            if m not in auth_mechanisms]
        self._controller = _Controller(_Handler(self), hostname=self.host, port=self._port, **kw)
        self.running = False

    @property
    def port(self):
        """The listening port (known once started, unless given)."""
        assert self._controller.port, "the sink's port is known once it is started"
        return self._controller.port

    # -- life --

    def start(self):
        self._controller.start()
        self.running = True
        return self

    def stop(self):
        if self.running:
            self.running = False
            self._controller.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def freeze(self, seconds):
        """Stops answering anyone for seconds (the sink's loop sleeps), as a
        relay whose disk or CPU stalls: the kernel still accepts connections
        and bytes meanwhile."""
        self._controller.loop.call_soon_threadsafe(time.sleep, seconds)

    @property
    def url(self):
        return f"smtp://{self.host}:{self.port}"

    # -- scripting --

    def script(self, key, *actions, then=None):
        """Replies for an address (or "@domain"): actions one per attempt, then `then`
        (default: the sink's default, ACCEPT)."""
        with self._lock:
            self._scripts[key.lower()] = [list(actions), then]

    def _next_reply(self, address):
        a = address.lower()
        with self._lock:
            for key in (a, "@" + a.rpartition("@")[2]):
                s = self._scripts.get(key)
                if s is not None:
                    if s[0]:
                        return s[0].pop(0)
                    return s[1] or self.default
            return self.default

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        user, password = self._auth
        if (isinstance(auth_data, LoginPassword) and auth_data.login == user.encode()
                and auth_data.password == password.encode()):
            return AuthResult(success=True, auth_data=auth_data)
        with self._lock:
            self.auth_failures += 1
        return AuthResult(success=False, handled=False)

    # -- reading the records --

    def all_messages(self):
        with self._lock:
            return list(self.messages)

    def all_attempts(self):
        with self._lock:
            return list(self.attempts)

    def messages_to(self, address):
        a = address.lower()
        return [m for m in self.all_messages() if a in (r.lower() for r in m.rcpt_tos)]

    def messages_for_domain(self, domain):
        d = "@" + domain.lower()
        return [m for m in self.all_messages() if any(r.lower().endswith(d) for r in m.rcpt_tos)]

    def attempts_for(self, address):
        a = address.lower()
        return [x for x in self.all_attempts() if x.rcpt == a]

    def attempts_for_domain(self, domain):
        d = "@" + domain.lower()
        return [x for x in self.all_attempts() if x.rcpt.endswith(d)]

    def count(self):
        with self._lock:
            return len(self.messages)

    def wait_for(self, predicate, timeout):
        """Waits until predicate(self) holds (checked whenever a record changes);
        returns its last value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                ok = predicate(self)
                left = deadline - time.monotonic()
                if ok or left <= 0:
                    return ok
                self._cond.wait(min(left, 0.2))

    def wait_count(self, n, timeout, predicate=None):
        """Waits until at least n accepted messages (matching predicate) were seen;
        returns how many there are."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = sum(1 for m in self.messages if predicate is None or predicate(m))
                left = deadline - time.monotonic()
                if got >= n or left <= 0:
                    return got
                self._cond.wait(min(left, 0.2))
