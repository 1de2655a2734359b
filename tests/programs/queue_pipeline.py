"""A producer feeding four consumers through queue.Queue, one item at a time: the consumers
compute on each item in Python.
expect: gil_contention
"""
import os
import queue
import threading
import time

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))


def consume(q):
    while True:
        item = q.get()
        if item is None:
            return
        total = 0
        for i in range(item):
            total += i
        q.task_done()


if __name__ == "__main__":
    q = queue.Queue(maxsize=100)
    consumers = [threading.Thread(target=consume, args=(q,), name="consumer-%d" % i) for i in range(4)]
    for c in consumers:
        c.start()
    stop = time.monotonic() + RUN_SECONDS
    while time.monotonic() < stop:
        for _ in range(1000):
            q.put(200)
    for _ in consumers:
        q.put(None)
    for c in consumers:
        c.join()
