#!/usr/bin/env python3
"""What a process pool's start costs, by start method: the source of the start-up figures the
verdict's predicted speedup assumes (`WORKER_STARTUP` in src/diagnosis/prediction.rs).

For each CPython and start method: a fresh interpreter creates a `ProcessPoolExecutor` of N
workers and maps a trivial function once (cold: the pool's first start in that interpreter;
under forkserver that includes starting the server), then does it again (warm: a second pool).
Medians over fresh interpreters.

    python3 bench/pool_startup.py [--pythons 3.12,3.14] [--runs 5] [--smoke]
"""
import argparse
import os
import statistics
import subprocess
import tempfile

from pythons import interpreters

PROBE = r"""
import multiprocessing, sys, time
from concurrent.futures import ProcessPoolExecutor

def nothing(x):
    return x

if __name__ == "__main__":
    context = multiprocessing.get_context(sys.argv[1])
    workers = int(sys.argv[2])
    for _ in range(2):
        start = time.perf_counter()
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            list(pool.map(nothing, range(workers)))
        print(time.perf_counter() - start)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pythons", default="3.12,3.14")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="3.12, fork, one run")
    opts = parser.parse_args()
    # Bytecode caches written, as on an installed CPython (see bench/corpus_predictions.py).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    methods = ["fork", "forkserver", "spawn"]
    if opts.smoke:
        opts.pythons, opts.runs, methods = "3.12", 1, ["fork"]
    print("| CPython | start method | workers | cold pool (median) | warm pool (median) |")
    print("|---|---|---|---|---|")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(PROBE)
        probe = f.name
    try:
        wanted = opts.pythons.split(",")
        for version, python in interpreters():
            if version not in wanted:
                continue
            for method in methods:
                for workers in (2, 4):
                    cold, warm = [], []
                    for _ in range(opts.runs):
                        out = subprocess.run([python, probe, method, str(workers)], check=True,
                                             capture_output=True, text=True).stdout.split()
                        cold.append(float(out[0]))
                        warm.append(float(out[1]))
                    print(f"| {version} | {method} | {workers} | {statistics.median(cold):.3f} s | "
                          f"{statistics.median(warm):.3f} s |")
    finally:
        os.unlink(probe)


if __name__ == "__main__":
    main()
