#!/usr/bin/python3
"""bench/webhook_sink.py PORT COUNT_FILE - the benchmark's webhook receiver:
answers every HTTP request on 127.0.0.1:PORT with 204 over kept-alive
connections, as cheaply as Python can (asyncio, no parsing beyond the
headers and Content-Length), and on SIGTERM writes how many requests it
answered to COUNT_FILE.  It verifies nothing: the integration tests do.
"""

import asyncio
import signal
import sys

count = 0


async def serve(reader, writer):
    global count
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            n = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    n = int(line[15:])
            if n:
                await reader.readexactly(n)
            count += 1
            writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port, path):
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    async with server:
        await stop.wait()
    with open(path, "w") as f:
        f.write(str(count))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
