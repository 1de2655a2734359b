"""An asyncio echo server and its clients on one loop, for the asyncio workloads: the handler
pauses 30 ms per request, with `time.sleep` (blocking the loop) or `await asyncio.sleep`."""
import asyncio
import time

from _common import DURATION

BLOCKING = False


async def handle(reader, writer):
    while True:
        line = await reader.readline()
        if not line:
            break
        if BLOCKING:
            time.sleep(0.03)  # the bug: a blocking call inside a coroutine
        else:
            await asyncio.sleep(0.03)
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


def run(blocking):
    global BLOCKING
    BLOCKING = blocking
    asyncio.run(main())
