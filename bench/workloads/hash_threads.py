"""Four threads hashing with hashlib (GIL released): saturates both cores of a 2-core machine,
so a profiler competes with the target for CPU. Fixed work: argv[1] MB per thread."""
import hashlib
import sys
import threading
import time

MB = int(sys.argv[1]) if len(sys.argv) > 1 else 400
BUF = b"\x5a" * (1 << 20)


def work():
    h = hashlib.sha256()
    for _ in range(MB):
        h.update(BUF)


start = time.perf_counter()
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("took %.3f s" % (time.perf_counter() - start))
