"""Four threads count the words of log lines into one shared dict, as a program written for
the GIL does: on a free-threaded build they take turns on the dict's lock (object-lock
contention), where a dict per thread merged at the end runs in parallel. `shared_dict.py
SECONDS --per-thread` runs that fix."""
import sys
import threading
import time
from collections import Counter

from _common import deadline

LINES = [
    "GET /api/items/%d 200 %dms user=%d region=eu-%d" % (i, i % 97, i % 13, i % 4)
    for i in range(2000)
]


def count_words(counts, until):
    passes = 0
    while time.monotonic() < until:
        for line in LINES:
            for word in line.split():
                counts[word] = counts.get(word, 0) + 1
        passes += 1
    return passes


def count_shared(counts, passes, until):
    passes.append(count_words(counts, until))


def count_own(results, passes, until):
    counts = {}
    passes.append(count_words(counts, until))
    results.append(counts)


def main():
    until = deadline()
    per_thread = "--per-thread" in sys.argv[2:]
    shared, results, passes = {}, [], []
    threads = [
        threading.Thread(
            target=count_own if per_thread else count_shared,
            args=(results if per_thread else shared, passes, until),
            name="counter-%d" % i,
        )
        for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = Counter()
    for counts in results or [shared]:
        total.update(counts)
    print("passes over the log: %d, distinct words: %d" % (sum(passes), len(total)))


if __name__ == "__main__":
    main()
