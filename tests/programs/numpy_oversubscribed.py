"""Six threads multiplying matrices with numpy on a machine with fewer cores: the threads run
in parallel, every core is busy, and more threads would not help.
expect: cpu_saturated | native_parallel
"""
import os
import threading
import time

import numpy as np

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))


def multiply(seed, stop):
    rng = np.random.default_rng(seed)
    a = rng.random((300, 300))
    while time.monotonic() < stop:
        a = np.tanh(a @ a.T / 300.0)


if __name__ == "__main__":
    stop = time.monotonic() + RUN_SECONDS
    threads = [threading.Thread(target=multiply, args=(i, stop), name="matmul-%d" % i) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
