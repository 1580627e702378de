"""crashsink: a small SMTP sink on Debian's aiosmtpd for the crash and
concurrency tests of delivery (test_crash.py).

It runs as a process of its own, so it neither competes with the test for
the GIL nor dies with a worker, and it records every message it accepts as
one line of a file:

    <Message-ID without angle brackets> TAB <recipient> TAB <unix time> LF

one line per recipient of the transaction.  The line is written and flushed
at the end of DATA, *before* the reply: like a real MTA that has queued the
message, the sink has taken responsibility for it even when the client is
killed before it reads the 250 (window W2 of docs standards 2.2).  The reply
then comes after `delay` seconds, which keeps messages in flight long enough
for a kill to land in the middle of them.

    sink = CrashSink(workdir, delay=0.02).start()
    sink.relay                      # "smtp://127.0.0.1:PORT" for --relay
    sink.count()                    # lines recorded so far
    sink.records()                  # [(message_id, recipient), ...]
    sink.stop()

As a program:  /usr/bin/python3 crashsink.py --out FILE [--delay S]
prints the port it listens on (an ephemeral one) as its first line.
"""

import argparse
import asyncio
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = "/usr/bin/python3"  # Debian's, which has python3-aiosmtpd

_MSGID_RE = re.compile(rb"^message-id:[ \t]*((?:.*)(?:\r?\n[ \t].*)*)", re.I | re.M)


def message_id_of(content):
    """The Message-ID of a raw message (bytes), without <> and folding; "" if none."""
    end = content.find(b"\r\n\r\n")
    head = content if end < 0 else content[:end + 2]
    m = _MSGID_RE.search(head)
    if not m:
        return ""
    v = re.sub(rb"\s+", b"", m.group(1)).decode("utf-8", "replace")
    return v[1:-1] if v.startswith("<") and v.endswith(">") else v


class _Handler:
    def __init__(self, out, delay):
        self.out = out
        self.delay = delay

    async def handle_DATA(self, server, session, envelope):
        mid = message_id_of(envelope.content)
        now = time.time()
        self.out.write("".join(f"{mid}\t{r}\t{now:.6f}\n" for r in envelope.rcpt_tos))
        self.out.flush()
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        return "250 2.0.0 Ok: queued as " + (mid[:12] or "x")


def _serve(out_path, delay):
    from aiosmtpd.smtp import SMTP

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    out = open(out_path, "a", encoding="utf-8")
    handler = _Handler(out, delay)
    server = loop.run_until_complete(loop.create_server(
        lambda: SMTP(handler, hostname="crashsink.test", enable_SMTPUTF8=True,
                     data_size_limit=0, timeout=600, loop=loop),
        host="127.0.0.1", port=0, backlog=512))
    port = server.sockets[0].getsockname()[1]
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    print(port, flush=True)
    try:
        loop.run_forever()
    finally:
        out.close()


def stop_process(proc, timeout=10):
    """SIGTERM to a sink process still running, SIGKILL after timeout seconds."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class CrashSink:
    """The sink process, seen from the test."""

    def __init__(self, workdir, delay=0.0, name="sink"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.delay = delay
        self.path = self.workdir / f"{name}.records"
        self.log_path = self.workdir / f"{name}.log"
        self.proc = None
        self.port = None

    def start(self, timeout=10):
        self.path.write_text("")
        with open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen(
                [PYTHON, os.path.abspath(__file__), "--out", str(self.path),
                 "--delay", str(self.delay)],
                stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + timeout
        line = ""
        # The first line is the port; readline blocks, so wait with a selector.
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        while not line.endswith("\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"crashsink did not start: {self.log_path.read_text()}")
            if sel.select(left):
                line += self.proc.stdout.readline()
        sel.close()
        self.port = int(line)
        return self

    @property
    def relay(self):
        return f"smtp://127.0.0.1:{self.port}"

    def stop(self):
        stop_process(self.proc)
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()

    def _lines(self):
        data = self.path.read_bytes()
        end = data.rfind(b"\n")
        return [] if end < 0 else data[:end].decode("utf-8").split("\n")

    def count(self):
        """Recipients accepted so far (each line is one)."""
        data = self.path.read_bytes()
        return data.count(b"\n")

    def records(self):
        """[(message_id, recipient)] of every accepted message, in order."""
        out = []
        for line in self._lines():
            mid, rcpt, _ = line.split("\t")
            out.append((mid, rcpt))
        return out


class PostfixSink:
    """Postfix's smtp-sink (C) in CrashSink's place where no delay is wanted
    and the volume is large: the four-worker test's 20,000 messages cost
    crashsink about 14 CPU seconds of Python, half of the test's CPU.  Every
    transaction is appended to one dump file, each behind a form feed
    (-D, -S): records() reads them back.  smtp-sink is one event loop that
    copies a finished transaction whole into the dump before its 250, so
    records never interleave; one that does not parse fails the read
    rather than being skipped."""

    SMTP_SINK = "/usr/sbin/smtp-sink"

    def __init__(self, workdir, name="sink"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # smtp-sink gives up root for the postfix user, who writes the dump:
        # in a directory of its own that user can reach (pytest's are root's
        # alone), removed at stop.
        self.dumpdir = Path(tempfile.mkdtemp(prefix="mc-smtp-sink-"))
        os.chmod(self.dumpdir, 0o777)
        self.path = self.dumpdir / f"{name}.dump"
        self.log_path = self.workdir / f"{name}.log"
        self.proc = None
        self.port = None

    def start(self, timeout=10):
        import socket

        for _ in range(5):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
            # The port was free a moment ago; the greeting, with a name of
            # its own, says that this smtp-sink got it and not another process.
            name = f"crashsink-{os.urandom(4).hex()}.test"
            argv = [self.SMTP_SINK, "-D", str(self.path), "-S", "\\f", "-h", name,
                    f"127.0.0.1:{self.port}", "512"]
            if os.geteuid() == 0:
                argv[1:1] = ["-u", "postfix"]
            with open(self.log_path, "ab") as err:
                self.proc = subprocess.Popen(argv, stdout=err, stderr=err,
                                             stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                        greeting = s.recv(512)
                    if name.encode() in greeting:
                        return self
                    break  # another process's port
                except OSError:
                    time.sleep(0.02)
            self.stop()  # the port was taken meanwhile (it exited), or it hung: again
        raise RuntimeError(f"smtp-sink did not start: {self.log_path.read_text()}")

    @property
    def relay(self):
        return f"smtp://127.0.0.1:{self.port}"

    def stop(self):
        stop_process(self.proc)

    def close(self):
        """Stops it and removes its dump."""
        self.stop()
        shutil.rmtree(self.dumpdir, ignore_errors=True)

    def _records(self):
        data = self.path.read_bytes() if self.path.exists() else b""
        out = []
        for rec in data.split(b"\f")[1:]:
            head, sep, _ = rec.partition(b"\n\n")
            rcpts = re.findall(rb"^X-Rcpt-Args: <([^>]*)>", head, re.M)
            assert sep and rcpts and b"X-Mail-Args:" in head, rec[:300]
            mid = message_id_of(head.replace(b"\n", b"\r\n") + b"\r\n\r\n")
            out += [(mid, r.decode()) for r in rcpts]
        return out

    def count(self):
        return len(self._records())

    def records(self):
        """[(message_id, recipient)] of every accepted message, in order."""
        return self._records()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--delay", type=float, default=0.0)
    a = ap.parse_args()
    _serve(a.out, a.delay)


if __name__ == "__main__":
    sys.exit(main())
