"""A crawler: eight threads fetch pages with requests from a slow local server (its own
process), and parse a little of each.
expect: io_bound
"""
import os
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing import Pipe, Process

import requests

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))


class SlowHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(0.05)
        body = b"<html>" + b"<p>hello</p>" * 50 + b"</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve(conn):
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    conn.send(server.server_address[1])
    server.serve_forever()


def fetch(session, url):
    response = session.get(url, timeout=5)
    return response.text.count("<p>")


if __name__ == "__main__":
    parent, child = Pipe()
    server = Process(target=serve, args=(child,), daemon=True)
    server.start()
    base = "http://127.0.0.1:%d" % parent.recv()
    session = requests.Session()
    stop = time.monotonic() + RUN_SECONDS
    with ThreadPoolExecutor(max_workers=8) as pool:
        while time.monotonic() < stop:
            list(pool.map(lambda i: fetch(session, "%s/page/%d" % (base, i)), range(32)))
    server.terminate()
