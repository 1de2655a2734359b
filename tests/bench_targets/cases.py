"""Functions that go wrong in the ways `gilscope bench` must explain."""
import threading
import time

square = lambda x: x * x  # noqa: E731 - a lambda cannot be pickled


def _make():
    def inner(x):
        return x
    return inner


nested = _make()


def boom(x):
    raise ValueError("boom %r" % (x,))


def hang(x):
    time.sleep(3600)


def lock_result(x):
    return threading.Lock()


def size(data):
    return len(data)


BIG = [(b"x" * (2 << 20),) for _ in range(4)]
