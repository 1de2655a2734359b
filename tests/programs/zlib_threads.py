"""Log archiving: a ThreadPoolExecutor compresses chunks with zlib, which releases the GIL.
expect: native_parallel | cpu_saturated
"""
import os
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))


def compress(chunk):
    return len(zlib.compress(chunk, 9))


if __name__ == "__main__":
    line = b"2026-12-06T22:00:00 INFO request served path=/api/items status=200 ms=12\n"
    chunks = [line * 20_000 for _ in range(8)]
    stop = time.monotonic() + RUN_SECONDS
    with ThreadPoolExecutor(max_workers=2) as pool:
        while time.monotonic() < stop:
            list(pool.map(compress, chunks))
