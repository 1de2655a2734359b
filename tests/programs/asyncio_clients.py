"""An asyncio client keeping 50 connections busy against a local echo server (its own process):
the loop waits for the network nearly all the time.
expect: io_bound
"""
import asyncio
import os
import socket
import time
from multiprocessing import Process

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))


def echo_server(sock):
    async def echo(reader, writer):
        while data := await reader.read(1024):
            await asyncio.sleep(0.01)
            writer.write(data)
            await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(echo, sock=sock)
        await server.serve_forever()

    asyncio.run(main())


async def client(port, stop):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while time.monotonic() < stop:
        writer.write(b"ping\n")
        await writer.drain()
        await reader.readline()
    writer.close()


async def main(port):
    stop = time.monotonic() + RUN_SECONDS
    await asyncio.gather(*(client(port, stop) for _ in range(50)))


if __name__ == "__main__":
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(100)
    server = Process(target=echo_server, args=(sock,), daemon=True)
    server.start()
    asyncio.run(main(sock.getsockname()[1]))
    server.terminate()
