"""joblib's default (loky) process pool scoring parameter sets in Python, the way a
hyper-parameter search does.
expect: pool_parallel
gilscope: --subprocesses
"""
import os
import time

from joblib import Parallel, delayed

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "5"))


def evaluate(alpha, beta):
    loss = 0.0
    for i in range(60_000):
        x = (i % 100) / 100.0
        loss += (alpha * x * x + beta * x - 1.0) ** 2
    return loss


if __name__ == "__main__":
    stop = time.monotonic() + RUN_SECONDS
    grid = [(a / 10, b / 10) for a in range(8) for b in range(4)]
    with Parallel(n_jobs=4) as parallel:
        while time.monotonic() < stop:
            best = min(parallel(delayed(evaluate)(a, b) for a, b in grid))
