"""The same pool, but each task carries a large list and does little with it: pickling and
sending the arguments costs more than the work. Expected: ipc_overhead."""
import multiprocessing
import time

from _common import DURATION


def total(numbers):
    return sum(numbers)


if __name__ == "__main__":
    workers = min(multiprocessing.cpu_count(), 4)
    chunk = [float(i) for i in range(200_000)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        end = time.monotonic() + DURATION
        while time.monotonic() < end:
            pool.map(total, [chunk] * (workers * 2))
