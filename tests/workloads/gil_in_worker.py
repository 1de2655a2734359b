"""A free-threaded program that hands its work to a worker process: the worker imports
`gil_ext` (from the directory in argv[2]), an extension without free-threading support, which
turns the worker's GIL on, and then runs four threads of pure Python that take turns on it."""
import multiprocessing
import sys
import threading
import time
import warnings

from _common import DURATION, run_threads


def work(until):
    while time.monotonic() < until:
        sum(i * i for i in range(10_000))


def worker(ext_dir, until):
    sys.path.insert(0, ext_dir)
    warnings.simplefilter("ignore", RuntimeWarning)
    time.sleep(0.3)
    __import__("gil_ext")
    run_threads(work, 4, args=(until,))


if __name__ == "__main__":
    until = time.monotonic() + DURATION
    child = multiprocessing.get_context("fork").Process(
        target=worker, args=(sys.argv[2], until), name="crunch"
    )
    child.start()
    child.join()
    print("worker exit code:", child.exitcode)
