"""A multiprocessing Pool mapping a CPU-bound function over small arguments: the fix for GIL
contention, working. Expected: pool_parallel, a worker busy on each core."""
import multiprocessing
import time

from _common import DURATION, burn


if __name__ == "__main__":
    workers = min(multiprocessing.cpu_count(), 4)
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        end = time.monotonic() + DURATION
        while time.monotonic() < end:
            pool.map(burn, [100_000] * (workers * 4))
