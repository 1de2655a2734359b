"""A hand-rolled pool: the parent starts one `python -c` worker per core with subprocess and
hands each a stream of numbers over its stdin; the workers compute in Python and answer.
expect: pool_parallel
gilscope: --subprocesses
"""
import os
import subprocess
import sys
import time

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))
WORKER = """
import sys
for line in sys.stdin:
    n = int(line)
    total = 0
    for i in range(n):
        total += i * i
    print(total, flush=True)
"""


if __name__ == "__main__":
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(os.cpu_count() or 2)
    ]
    stop = time.monotonic() + RUN_SECONDS
    while time.monotonic() < stop:
        for w in workers:
            w.stdin.write("300000\n")
            w.stdin.flush()
        for w in workers:
            w.stdout.readline()
    for w in workers:
        w.stdin.close()
        w.wait()
