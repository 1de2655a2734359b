"""Shared helpers: every workload runs for DURATION seconds (argv[1], default 2.5)."""
import sys
import threading
import time

DURATION = float(sys.argv[1]) if len(sys.argv) > 1 else 2.5


def deadline():
    return time.monotonic() + DURATION


def run_threads(target, n, prefix="worker", args=()):
    threads = [threading.Thread(target=target, args=args, name="%s-%d" % (prefix, i)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def burn(n):
    """Pure-Python CPU work: holds the GIL for about n / 10**7 seconds."""
    total = 0
    for i in range(n):
        total += i * i
    return total
