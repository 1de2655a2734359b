"""An asyncio service that calls a slow HTTP API with requests (a blocking call) inside its
coroutines, so the event loop stops while each call waits.
expect: event_loop_blocked
"""
import asyncio
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing import Pipe, Process

import requests

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))


class SlowApi(BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(0.03)
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve(conn):
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowApi)
    conn.send(server.server_address[1])
    server.serve_forever()


async def handle(session, base, i):
    response = session.get("%s/orders/%d" % (base, i), timeout=5)
    return response.json()["ok"]


async def main(base):
    session = requests.Session()
    stop = time.monotonic() + RUN_SECONDS
    i = 0
    while time.monotonic() < stop:
        await asyncio.gather(*(handle(session, base, i + k) for k in range(10)))
        i += 10


if __name__ == "__main__":
    parent, child = Pipe()
    api = Process(target=serve, args=(child,), daemon=True)
    api.start()
    asyncio.run(main("http://127.0.0.1:%d" % parent.recv()))
    api.terminate()
