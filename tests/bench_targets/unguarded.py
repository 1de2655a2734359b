"""Runs work at import, outside `if __name__ == "__main__":`."""
from concurrent.futures import ProcessPoolExecutor


def work(x):
    return x * 2


with ProcessPoolExecutor(2) as pool:
    RESULTS = list(pool.map(work, range(4)))
