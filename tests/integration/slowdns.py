"""A tiny DNS server on a loopback UDP port for the resolver tests (issue 12).

SlowDns(names, delay) answers A queries for the names given (name -> IPv4
address) after `delay` seconds, each query in a thread of its own so one
slow answer does not hold back the next; any other name gets NXDOMAIN;
delay=None never answers.  queries lists the names asked for.  Only the
parts of RFC 1035 a stub resolver's question needs are read.
"""

import socket
import struct
import threading
import time


def _qname(packet, off):
    labels = []
    while True:
        n = packet[off]
        off += 1
        if n == 0:
            return ".".join(labels), off
        labels.append(packet[off:off + n].decode("ascii", "replace"))
        off += n


class SlowDns:
    def __init__(self, names, delay=0.0):
        self.names = {k.lower(): v for k, v in names.items()}
        self.delay = delay
        self.queries = []
        self._lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self.sock.close()

    def _serve(self):
        while not self._stop:
            try:
                packet, peer = self.sock.recvfrom(512)
            except OSError:
                return
            threading.Thread(target=self._answer, args=(packet, peer), daemon=True).start()

    def _answer(self, packet, peer):
        if len(packet) < 12:
            return
        qid, _flags, qd = struct.unpack("!HHH", packet[:6])
        name, off = _qname(packet, 12)
        qtype, _qclass = struct.unpack("!HH", packet[off:off + 4])
        with self._lock:
            self.queries.append((name.lower(), qtype))
        if self.delay is None:
            return
        time.sleep(self.delay)
        question = packet[12:off + 4]
        addr = self.names.get(name.lower())
        if addr is None:
            head = struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0)  # NXDOMAIN
            body = question
        elif qtype == 1:
            head = struct.pack("!HHHHHH", qid, 0x8580, 1, 1, 0, 0)
            body = question + struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(addr)
        else:  # AAAA and the rest: the name exists, no such record
            head = struct.pack("!HHHHHH", qid, 0x8580, 1, 0, 0, 0)
            body = question
        try:
            self.sock.sendto(head + body, peer)
        except OSError:
            pass
