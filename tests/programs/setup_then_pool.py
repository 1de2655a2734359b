"""A script that prepares its data on the main thread for a few seconds, then maps it over a
multiprocessing pool with one worker per core.
expect: pool_parallel
gilscope: --subprocesses
"""
import multiprocessing
import os
import time

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "6"))


def prepare(n):
    return [[(i * j) % 97 for j in range(50)] for i in range(n)]


def analyse(row):
    total = 0
    for _ in range(400):
        for v in row:
            total += v * v
    return total


if __name__ == "__main__":
    setup_until = time.monotonic() + RUN_SECONDS / 3
    rows = []
    while time.monotonic() < setup_until:
        rows.extend(prepare(200))
    stop = time.monotonic() + RUN_SECONDS * 2 / 3
    with multiprocessing.Pool(os.cpu_count()) as pool:
        while time.monotonic() < stop:
            pool.map(analyse, rows[:400], chunksize=20)
