"""Workloads whose true state fractions are measured by the workload itself, for
bench/accuracy.py. Each worker thread times its own phases with perf_counter and, at exit,
the truth is printed as JSON on stdout: {thread name: {state: fraction}}.

    python truth.py duty|shifted|native_io [SECONDS]

duty       one thread: 30 ms of pure-Python busy loop (holds the GIL), then 70 ms of sleep.
shifted    two such threads, the second 50 ms behind: they never overlap, so never wait.
native_io  one thread: 50 ms of hashlib on 1 MiB blocks (the GIL released), then a recv of
           50 ms on a socket pair (a helper thread answers after 50 ms).
"""
import hashlib
import json
import socket
import sys
import threading
import time

MODE = sys.argv[1]
DURATION = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
truth = {}


def duty(name, delay):
    time.sleep(delay)
    spent = {"gil": 0.0, "sleep": 0.0}
    start = time.perf_counter()
    end = start + DURATION
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.030:
            pass
        t1 = time.perf_counter()
        time.sleep(0.070)
        t2 = time.perf_counter()
        spent["gil"] += t1 - t0
        spent["sleep"] += t2 - t1
    total = time.perf_counter() - start + delay
    spent["sleep"] += delay  # the initial delay is a sleep too
    truth[name] = {k: v / total for k, v in spent.items()}


def native_io(name):
    here, there = socket.socketpair()
    block = b"x" * (1 << 20)

    def answer():
        while True:
            request = there.recv(1)
            if not request or request == b"q":
                return
            time.sleep(0.050)
            there.send(b"a")

    helper = threading.Thread(target=answer, name="helper")
    helper.start()
    spent = {"native": 0.0, "io": 0.0}
    start = time.perf_counter()
    end = start + DURATION
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        h = hashlib.sha256()
        while time.perf_counter() - t0 < 0.050:
            h.update(block)
        t1 = time.perf_counter()
        here.send(b"r")
        here.recv(1)
        t2 = time.perf_counter()
        spent["native"] += t1 - t0
        spent["io"] += t2 - t1
    here.send(b"q")
    helper.join()
    total = time.perf_counter() - start
    truth[name] = {k: v / total for k, v in spent.items()}


if MODE == "duty":
    workers = [threading.Thread(target=duty, args=("worker-0", 0.0), name="worker-0")]
elif MODE == "shifted":
    workers = [threading.Thread(target=duty, args=("worker-%d" % i, 0.050 * i), name="worker-%d" % i)
               for i in range(2)]
elif MODE == "native_io":
    workers = [threading.Thread(target=native_io, args=("worker-0",), name="worker-0")]
else:
    sys.exit("unknown mode %r" % MODE)
for w in workers:
    w.start()
for w in workers:
    w.join()
print(json.dumps(truth))
