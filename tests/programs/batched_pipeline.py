"""The queue pipeline with its items batched: the producer hands each consumer lists of 500
items, and the consumers compute on them in Python.
expect: gil_contention
"""
import os
import queue
import threading
import time

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))


def consume(q):
    while True:
        batch = q.get()
        if batch is None:
            return
        for item in batch:
            total = 0
            for i in range(item):
                total += i


if __name__ == "__main__":
    q = queue.Queue(maxsize=8)
    consumers = [threading.Thread(target=consume, args=(q,), name="consumer-%d" % i) for i in range(4)]
    for c in consumers:
        c.start()
    stop = time.monotonic() + RUN_SECONDS
    while time.monotonic() < stop:
        q.put([200] * 500)
    for _ in consumers:
        q.put(None)
    for c in consumers:
        c.join()
