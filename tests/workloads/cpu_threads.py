"""(a) Four threads of pure-Python arithmetic: GIL contention."""
import time
from _common import deadline, run_threads


def work(until):
    while time.monotonic() < until:
        sum(i * i for i in range(10_000))


if __name__ == "__main__":
    run_threads(work, 4, args=(deadline(),))
