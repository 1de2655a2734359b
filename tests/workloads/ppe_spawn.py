"""ProcessPoolExecutor with the spawn start method, CPU-bound tasks with small arguments.
Expected: pool_parallel, with spawned workers found and sampled."""
import concurrent.futures
import multiprocessing
import time

from _common import DURATION, burn


if __name__ == "__main__":
    workers = min(multiprocessing.cpu_count(), 4)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        end = time.monotonic() + DURATION
        while time.monotonic() < end:
            list(pool.map(burn, [100_000] * (workers * 4)))
