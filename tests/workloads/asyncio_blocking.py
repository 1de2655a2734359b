"""An asyncio server whose handler calls time.sleep: every request stalls the whole loop,
clients included. Expected: event_loop_blocked, naming `handle`."""
import asyncio
import time

from _common import DURATION


async def handle(reader, writer):
    while True:
        line = await reader.readline()
        if not line:
            break
        time.sleep(0.03)  # the bug: a blocking call inside a coroutine
        writer.write(line)
        await writer.drain()
    writer.close()


async def client(port, end):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while time.monotonic() < end:
        writer.write(b"ping\n")
        await writer.drain()
        await reader.readline()
    writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    end = time.monotonic() + DURATION
    await asyncio.gather(*(client(port, end) for _ in range(4)))
    server.close()


asyncio.run(main())
