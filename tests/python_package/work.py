"""The work the package's test programs sample: pure Python that holds the GIL, and a wait
that releases it."""
import time


def checksum(n):
    total = 0
    for i in range(n):
        total = (total * 31 + i) % 1000003
    return total


def fetch(i):
    time.sleep(0.05)  # a remote call's latency
    return i
