"""100 threads: 10 pure-Python, 10 hashing, 40 doing socket round trips, 40 waiting on an
Event. Fixed work: argv[1] rounds per worker."""
import hashlib
import socket
import sys
import threading
import time

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 200
done = threading.Event()


def python_work():
    for _ in range(ROUNDS):
        sum(i * i for i in range(2000))


def hash_work():
    buf = b"\x5a" * (256 << 10)
    for _ in range(ROUNDS):
        hashlib.sha256(buf).digest()


def io_work():
    a, b = socket.socketpair()
    with a, b:
        for _ in range(ROUNDS):
            a.sendall(b"x" * 64)
            b.recv(64)
            time.sleep(0.001)


start = time.perf_counter()
waiters = [threading.Thread(target=done.wait) for _ in range(40)]
workers = [threading.Thread(target=f) for f in [python_work] * 10 + [hash_work] * 10 + [io_work] * 40]
for t in waiters + workers:
    t.start()
for t in workers:
    t.join()
done.set()
for t in waiters:
    t.join()
print("took %.3f s" % (time.perf_counter() - start))
