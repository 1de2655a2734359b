"""A GUI-style program: one background thread builds an index while the main thread waits on an
event, waking every 100 ms to update a progress line.
expect: single_thread_cpu
"""
import os
import threading
import time

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))
done = threading.Event()
progress = [0]


def build_index(stop):
    index = {}
    while time.monotonic() < stop:
        for i in range(10_000):
            index.setdefault(i % 997, []).append(i)
        index.clear()
        progress[0] += 1
    done.set()


if __name__ == "__main__":
    threading.Thread(target=build_index, args=(time.monotonic() + RUN_SECONDS,), name="indexer").start()
    while not done.wait(0.1):
        status = "indexed %d batches" % progress[0]
