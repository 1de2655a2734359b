"""(c) Four threads hashing large buffers with hashlib, which releases the GIL."""
import hashlib
import time
from _common import deadline, run_threads

BUFFER = b"\x5a" * (4 << 20)


def work(until):
    while time.monotonic() < until:
        hashlib.sha256(BUFFER).digest()


if __name__ == "__main__":
    run_threads(work, 4, args=(deadline(),))
