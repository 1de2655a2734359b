"""(e) Four threads serialised by a threading.Lock held across a sleep: lock contention."""
import threading
import time
from _common import deadline, run_threads

lock = threading.Lock()


def work(until):
    while time.monotonic() < until:
        with lock:
            time.sleep(0.02)


if __name__ == "__main__":
    run_threads(work, 4, args=(deadline(),))
