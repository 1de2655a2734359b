"""A multiprocessing pool handed large lists of numbers as arguments for a cheap computation:
pickling and moving the data costs more than the work.
expect: ipc_overhead | pool_underused
gilscope: --subprocesses
"""
import multiprocessing
import os
import time

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))


def total(values):
    return sum(values[::100])


if __name__ == "__main__":
    chunks = [list(range(200_000)) for _ in range(8)]
    stop = time.monotonic() + RUN_SECONDS
    with multiprocessing.Pool(2) as pool:
        while time.monotonic() < stop:
            pool.map(total, chunks)
