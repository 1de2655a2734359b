"""A batch job that scores records in a multiprocessing pool started from a forkserver (the
default on Linux from 3.14; chosen here on every version, as code that must not fork a
threaded parent does): the workers are the forkserver's children, not the script's.
expect: pool_parallel
gilscope: --subprocesses
"""
import multiprocessing
import os
import time

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))


def score(record):
    name, values = record
    total = 0.0
    for _ in range(60):
        for v in values:
            total += (v * 1.0001) ** 2 % 7.0
    return name, total


def records(n):
    return [("r%d" % i, [(i * j) % 101 for j in range(300)]) for i in range(n)]


if __name__ == "__main__":
    context = multiprocessing.get_context("forkserver")
    stop = time.monotonic() + RUN_SECONDS
    best = None
    with context.Pool(os.cpu_count() or 2) as pool:
        while time.monotonic() < stop:
            for name, total in pool.imap_unordered(score, records(64), chunksize=4):
                if best is None or total > best[1]:
                    best = (name, total)
    print("best", best)
