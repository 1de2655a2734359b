"""Celery's process pool library, billiard, used directly: a pool that recycles its workers
after some tasks (`maxtasksperchild`, as Celery workers run), mapping a pure-Python
tokenizer over batches of text.
expect: pool_parallel
gilscope: --subprocesses
"""
import os
import time

from billiard import Pool

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))
TEXT = " ".join("word%d" % (i % 500) for i in range(4000))


def count_words(seed):
    counts = {}
    for _ in range(8):
        for token in TEXT.split():
            key = token[::-1] + str(seed % 3)
            counts[key] = counts.get(key, 0) + 1
    return len(counts)


if __name__ == "__main__":
    stop = time.monotonic() + RUN_SECONDS
    done = 0
    with Pool(processes=os.cpu_count() or 2, maxtasksperchild=200) as pool:
        while time.monotonic() < stop:
            done += len(pool.map(count_words, range(32)))
    print("batches", done)
