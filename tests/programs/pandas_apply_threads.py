"""Feature engineering with pandas in a ThreadPoolExecutor: each thread scores a DataFrame with
a row-wise `apply` of a Python function, the common way to turn rows into features.
expect: gil_contention
"""
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))


def risk(row):
    score = row["amount"] * 0.01
    if row["country"] == "FR":
        score += 1.5
    return score + len(row["merchant"]) * 0.1


def score_frame(frame):
    return frame.apply(risk, axis=1).sum()


if __name__ == "__main__":
    n = 2000
    frames = [
        pd.DataFrame(
            {
                "amount": [(i * 37 + k) % 500 for i in range(n)],
                "country": ["FR" if i % 3 else "DE" for i in range(n)],
                "merchant": ["shop-%d" % (i % 50) for i in range(n)],
            }
        )
        for k in range(4)
    ]
    stop = time.monotonic() + RUN_SECONDS
    with ThreadPoolExecutor(max_workers=4) as pool:
        while time.monotonic() < stop:
            list(pool.map(score_frame, frames))
