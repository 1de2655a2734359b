"""An I/O phase (threads sleeping) then a CPU phase (threads contending for the GIL)."""
import time
from _common import DURATION, run_threads


def io_phase(until):
    while time.monotonic() < until:
        time.sleep(0.01)


def cpu_phase(until):
    while time.monotonic() < until:
        sum(i * i for i in range(10_000))


if __name__ == "__main__":
    half = DURATION / 2
    run_threads(io_phase, 4, prefix="fetch", args=(time.monotonic() + half,))
    run_threads(cpu_phase, 4, prefix="compute", args=(time.monotonic() + half,))
