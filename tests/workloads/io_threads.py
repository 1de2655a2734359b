"""(b) Eight threads doing local socket round trips and short sleeps: I/O-bound."""
import socket
import threading
import time
from _common import deadline, run_threads


def echo(conn):
    with conn:
        while True:
            data = conn.recv(4096)
            if not data:
                return
            conn.sendall(data)


def serve(listener):
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=echo, args=(conn,), name="echo", daemon=True).start()


def client(port, until):
    with socket.create_connection(("127.0.0.1", port)) as s:
        while time.monotonic() < until:
            s.sendall(b"x" * 512)
            s.recv(4096)
            time.sleep(0.005)


if __name__ == "__main__":
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    threading.Thread(target=serve, args=(listener,), name="server", daemon=True).start()
    run_threads(client, 8, args=(listener.getsockname()[1], deadline()))
    listener.close()
