"""Four pure-Python threads on a free-threaded CPython; halfway through, the main thread imports
`gil_ext` (from the directory in argv[2]), an extension without free-threading support, which
turns the GIL back on: parallel, then contended."""
import sys
import threading
import time
import warnings

from _common import DURATION, run_threads


def work(until):
    while time.monotonic() < until:
        sum(i * i for i in range(10_000))


if __name__ == "__main__":
    sys.path.insert(0, sys.argv[2])
    until = time.monotonic() + DURATION
    importer = threading.Timer(DURATION / 2, lambda: __import__("gil_ext"))
    warnings.simplefilter("ignore", RuntimeWarning)
    importer.start()
    run_threads(work, 4, args=(until,))
    print("GIL enabled at the end:", sys._is_gil_enabled())
