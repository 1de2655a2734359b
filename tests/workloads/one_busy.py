"""(d) One busy Python thread while three others wait on an Event."""
import threading
import time
from _common import deadline, run_threads

done = threading.Event()


def busy(until):
    while time.monotonic() < until:
        sum(i * i for i in range(10_000))
    done.set()


def waiter():
    done.wait()


if __name__ == "__main__":
    waiters = [threading.Thread(target=waiter, name="waiter-%d" % i) for i in range(3)]
    for t in waiters:
        t.start()
    run_threads(busy, 1, prefix="busy", args=(deadline(),))
    for t in waiters:
        t.join()
