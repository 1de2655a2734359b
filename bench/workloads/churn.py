"""Thread churn: argv[1] batches of 20 threads, each started for one tiny task and joined, a few
thousand threads a second. Fixed work; prints its own time."""
import sys
import threading
import time

BATCHES = int(sys.argv[1]) if len(sys.argv) > 1 else 200


def tiny(out, i):
    out[i] = sum(range(50))


start = time.perf_counter()
for _ in range(BATCHES):
    out = [0] * 20
    threads = [threading.Thread(target=tiny, args=(out, i)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
elapsed = time.perf_counter() - start
print("took %.3f s (%.0f threads/s)" % (elapsed, BATCHES * 20 / elapsed))
