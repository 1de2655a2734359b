"""(f) Two pure-Python threads plus two hashlib threads."""
import hashlib
import threading
import time
from _common import deadline

BUFFER = b"\x5a" * (4 << 20)


def python_work(until):
    while time.monotonic() < until:
        sum(i * i for i in range(10_000))


def native_work(until):
    while time.monotonic() < until:
        hashlib.sha256(BUFFER).digest()


if __name__ == "__main__":
    until = deadline()
    threads = [threading.Thread(target=python_work, args=(until,), name="python-%d" % i) for i in range(2)]
    threads += [threading.Thread(target=native_work, args=(until,), name="hash-%d" % i) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
