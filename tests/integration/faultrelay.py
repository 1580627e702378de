"""A relay that misbehaves on purpose, for the fault tests (issue 12).

FaultRelay(port, mode) listens on a loopback port and counts connections:

    "hang"    accepts and never says a word (no greeting)
    "421"     greets with 220, then answers every command with
              421 4.3.2 and closes (a relay shedding load)

"refuse" needs no server at all: nothing listens on the port.  Stop the
fault (close()) and start a Sink on the same port for the healthy relay.
"""

import socket
import threading


class FaultRelay:
    def __init__(self, port, mode):
        assert mode in ("hang", "421")
        self.port, self.mode = port, mode
        self.connections = 0
        self._cond = threading.Condition()
        self._held = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(64)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._cond:
                self.connections += 1
                self._held.append(conn)
                self._cond.notify_all()
            if self.mode == "421":
                threading.Thread(target=self._shed, args=(conn,), daemon=True).start()

    def _shed(self, conn):
        try:
            conn.sendall(b"220 fault.test ESMTP\r\n")
            f = conn.makefile("rb")
            while f.readline():
                conn.sendall(b"421 4.3.2 System overloaded, try again later\r\n")
                break
            conn.close()
        except OSError:
            pass

    def wait_connections(self, n, timeout):
        with self._cond:
            return self._cond.wait_for(lambda: self.connections >= n, timeout)

    def close(self):
        # shutdown() wakes the accept() blocked in the thread; close() alone would
        # leave the port bound until it returned.
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(5)
        with self._cond:
            for c in self._held:
                try:
                    c.close()
                except OSError:
                    pass
