"""Four threads waiting on I/O while two threads run pure Python: mixed."""
import time
import threading
from _common import deadline


def fetch(until):
    while time.monotonic() < until:
        time.sleep(0.01)


def compute(until):
    while time.monotonic() < until:
        sum(i * i for i in range(10_000))


if __name__ == "__main__":
    until = deadline()
    threads = [threading.Thread(target=fetch, args=(until,), name="fetch-%d" % i) for i in range(4)]
    threads += [threading.Thread(target=compute, args=(until,), name="compute-%d" % i) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
