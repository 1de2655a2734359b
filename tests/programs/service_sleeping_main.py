"""A background service: four daemon workers crunch records while the main thread keeps the
process alive with a sleep loop, as most services do.
expect: gil_contention
"""
import json
import os
import threading
import time

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))


def crunch(worker_id):
    records = [{"id": i, "name": "item-%d" % i, "tags": ["a", "b"], "score": i * 0.5} for i in range(200)]
    while True:
        text = json.dumps(records)
        parsed = json.loads(text)
        sum(r["score"] for r in parsed)


def main():
    for i in range(4):
        threading.Thread(target=crunch, args=(i,), daemon=True, name="crunch-%d" % i).start()
    stop = time.monotonic() + RUN_SECONDS
    while time.monotonic() < stop:
        time.sleep(0.5)


if __name__ == "__main__":
    main()
