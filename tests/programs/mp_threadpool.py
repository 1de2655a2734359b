"""multiprocessing.pool.ThreadPool mapping a checksum written in Python over chunks of data
(the pool's own handler threads sit beside the workers).
expect: gil_contention
"""
import os
import time
from multiprocessing.pool import ThreadPool

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))


def checksum(chunk):
    a, b = 1, 0
    for byte in chunk:
        a = (a + byte) % 65521
        b = (b + a) % 65521
    return (b << 16) | a


if __name__ == "__main__":
    data = [bytes(range(256)) * 40 for _ in range(64)]
    stop = time.monotonic() + RUN_SECONDS
    with ThreadPool(4) as pool:
        while time.monotonic() < stop:
            pool.map(checksum, data)
