"""Fixed work, four tasks, run in threads or in a process pool: the prediction's ground truth.

    python cpu_twin.py threads|processes N
"""
import sys
import threading
from multiprocessing import Pool


def work(n):
    return sum(i * i for i in range(n))


if __name__ == "__main__":
    mode, n = sys.argv[1], int(sys.argv[2])
    if mode == "threads":
        threads = [threading.Thread(target=work, args=(n,), name="worker-%d" % i) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        with Pool(4) as pool:
            pool.map(work, [n] * 4)
