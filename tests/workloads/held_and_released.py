"""(k) Who holds the GIL, which lines release it: two pure-Python threads in two functions
take turns on the GIL (each waits while the other holds it), and one thread hashes 4 MB
buffers with the GIL released."""
import hashlib
import threading
import time
from _common import deadline

BUFFER = b"\x5a" * (4 << 20)


def spin_one(until):
    n = 0
    while time.monotonic() < until:
        n += 1


def spin_two(until):
    n = 0
    while time.monotonic() < until:
        n += 1


def hash_work(until):
    while time.monotonic() < until:
        hashlib.sha256(BUFFER).digest()


if __name__ == "__main__":
    until = deadline()
    threads = [
        threading.Thread(target=spin_one, args=(until,), name="spin-one"),
        threading.Thread(target=spin_two, args=(until,), name="spin-two"),
        threading.Thread(target=hash_work, args=(until,), name="hasher"),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
