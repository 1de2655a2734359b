"""A Pool with one worker on a machine with more cores: the work runs in parallel with
nothing. Expected: pool_underused, advising one worker per core."""
import multiprocessing
import time

from _common import DURATION, burn


if __name__ == "__main__":
    with multiprocessing.get_context("fork").Pool(1) as pool:
        end = time.monotonic() + DURATION
        while time.monotonic() < end:
            pool.map(burn, [100_000] * 4)
