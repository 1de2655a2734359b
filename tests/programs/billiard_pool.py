"""Celery's process pool library, billiard, used directly as Celery's prefork workers use it:
one task per message (`apply_async`), the workers kept for the whole run (Celery's default).
The task is a pure-Python tokenizer over a batch of text. (A billiard worker leaves only once
the parent has counted its results, waiting up to 30 s in 0.1 s sleeps; billiard 4.2 does not
count `map`'s results, so a `map` pool on CPython 3.9 took 30 s to close now and then, and
`maxtasksperchild` puts that wait on every recycled worker.)
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
    with Pool(processes=os.cpu_count() or 2) as pool:
        while time.monotonic() < stop:
            # One task per message, as Celery sends them.
            pending = [pool.apply_async(count_words, (seed,)) for seed in range(32)]
            done += len([result.get() for result in pending])
    print("batches", done)
