"""A cache shared by eight worker threads, guarded by one lock that is held while a missing entry
is fetched from a slow backend: the threads queue on the program's own lock.
expect: lock_contention
"""
import os
import threading
import time

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))
cache = {}
cache_lock = threading.Lock()


def slow_backend(key):
    time.sleep(0.02)
    return key * 2


def lookup(key):
    with cache_lock:
        if key not in cache:
            cache[key] = slow_backend(key)
        return cache[key]


def serve(worker, stop):
    n = 0
    while time.monotonic() < stop:
        lookup((worker * 1_000_003 + n) % 100_000)
        n += 1


if __name__ == "__main__":
    stop = time.monotonic() + RUN_SECONDS
    workers = [threading.Thread(target=serve, args=(i, stop), name="handler-%d" % i) for i in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
