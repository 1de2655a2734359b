"""A ProcessPoolExecutor resizing "images" (lists of pixels) in pure Python, one task per image.
expect: pool_parallel
gilscope: --subprocesses
"""
import os
import time
from concurrent.futures import ProcessPoolExecutor

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))


def downscale(seed):
    pixels = [(seed * 31 + i * 7) % 256 for i in range(40_000)]
    out = []
    for i in range(0, len(pixels) - 1, 2):
        out.append((pixels[i] + pixels[i + 1]) // 2)
    return sum(out)


if __name__ == "__main__":
    stop = time.monotonic() + RUN_SECONDS
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        while time.monotonic() < stop:
            list(pool.map(downscale, range(64)))
