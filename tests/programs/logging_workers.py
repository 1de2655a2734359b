"""Workers that validate records in Python and log through a QueueHandler, with a
QueueListener thread writing the log: the listener is a helper, the workers contend.
expect: gil_contention
"""
import logging
import logging.handlers
import os
import queue
import threading
import time

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))


def validate(stop):
    log = logging.getLogger("validate")
    n = 0
    while time.monotonic() < stop:
        record = {"id": n, "email": "user%d@example.com" % n, "age": n % 90}
        ok = "@" in record["email"] and 0 <= record["age"] < 120 and all(c.isprintable() for c in record["email"])
        for _ in range(200):
            ok = ok and record["id"] >= 0
        if n % 500 == 0:
            log.info("validated %d records", n)
        n += 1


if __name__ == "__main__":
    log_queue = queue.Queue()
    listener = logging.handlers.QueueListener(log_queue, logging.NullHandler())
    listener.start()
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(logging.handlers.QueueHandler(log_queue))
    stop = time.monotonic() + RUN_SECONDS
    workers = [threading.Thread(target=validate, args=(stop,), name="validator-%d" % i) for i in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    listener.stop()
