"""Workers with a heartbeat: three threads score documents while a fourth logs progress once a
second, and the main thread joins them.
expect: gil_contention
"""
import logging
import os
import re
import threading
import time

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))
WORD = re.compile(r"[a-z]+")
done = [0]


def score(stop):
    text = "the quick brown fox jumps over the lazy dog " * 20
    while time.monotonic() < stop:
        counts = {}
        for word in text.split():
            counts[word] = counts.get(word, 0) + 1
        done[0] += 1


def heartbeat(stop):
    log = logging.getLogger("heartbeat")
    while time.monotonic() < stop:
        time.sleep(1.0)
        log.info("scored %d documents", done[0])


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    stop = time.monotonic() + RUN_SECONDS
    threads = [threading.Thread(target=score, args=(stop,)) for _ in range(3)]
    threads.append(threading.Thread(target=heartbeat, args=(stop,), name="heartbeat"))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
