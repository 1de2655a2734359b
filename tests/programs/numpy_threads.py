"""Image-like arrays filtered in a ThreadPoolExecutor with numpy: the heavy calls release the
GIL.
expect: native_parallel | cpu_saturated
"""
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))


def blur(image):
    out = image.copy()
    for _ in range(4):
        out[1:-1, 1:-1] = (out[:-2, 1:-1] + out[2:, 1:-1] + out[1:-1, :-2] + out[1:-1, 2:]) * 0.25
    return float(np.sqrt((out * out).sum()))


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    images = [rng.random((1200, 1200)) for _ in range(4)]
    stop = time.monotonic() + RUN_SECONDS
    with ThreadPoolExecutor(max_workers=2) as pool:
        while time.monotonic() < stop:
            list(pool.map(blur, images))
