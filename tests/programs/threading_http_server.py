"""A ThreadingHTTPServer whose handlers render JSON, under load from client processes: a new
thread for every request.
expect: gil_contention
"""
import json
import multiprocessing
import os
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))
CLIENTS = 4


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        items = [{"id": i, "name": "item-%d" % i, "price": i * 1.25, "tags": ["x", "y"]} for i in range(1500)]
        body = json.dumps({"items": items, "total": sum(i["price"] for i in items)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def client(url, stop):
    while time.time() < stop:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                response.read()
        except OSError:
            time.sleep(0.01)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    url = "http://127.0.0.1:%d/items" % server.server_address[1]
    stop = time.time() + RUN_SECONDS
    clients = [multiprocessing.Process(target=client, args=(url, stop)) for _ in range(CLIENTS)]
    for c in clients:
        c.start()
    threading.Thread(target=server.serve_forever, name="serve_forever", daemon=True).start()
    for c in clients:
        c.join()
    server.shutdown()
