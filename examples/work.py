"""Functions for `gilscope bench`: the classic CPU-, native- and I/O-bound kinds of work.

    gilscope bench examples/work.py:cpu_work 2000000 --tasks 8
    gilscope bench examples/work.py:hash_work 64 --tasks 8
    gilscope bench examples/work.py:io_work 0.05 --tasks 16
    gilscope bench examples/work.py:count_shared 300000 --tasks 8 --scaling --python python3.13t
"""
import hashlib
import socket
import time


def cpu_work(n):
    """Pure Python arithmetic: holds the GIL the whole time."""
    return sum(i * i for i in range(n))


def hash_work(megabytes):
    """hashlib releases the GIL while it hashes large buffers."""
    data = b"\x5a" * (1 << 20)
    h = hashlib.sha256()
    for _ in range(megabytes):
        h.update(data)
    return h.hexdigest()


def io_work(seconds):
    """Waits: a socket round trip on loopback, then a sleep (a stand-in for a network call)."""
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"ping")
        b.recv(4)
    time.sleep(seconds)
    return seconds


WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta")
SHARED_COUNTS = {}


def count_shared(n):
    """Counts n words into one module-level dict that every task shares, as code written for
    the GIL does: on a free-threaded build, threads take turns on the dict's lock."""
    for i in range(n):
        word = WORDS[i % len(WORDS)]
        SHARED_COUNTS[word] = SHARED_COUNTS.get(word, 0) + 1
    return n
