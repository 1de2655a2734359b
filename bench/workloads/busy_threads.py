"""argv[1] threads running Python without end (handing the GIL around), for the per-sample cost
of a profiler when every thread runs and the highest rate it keeps up with."""
import sys
import threading
import time


def spin():
    x = 0
    while True:
        x += 1


for _ in range(int(sys.argv[1])):
    threading.Thread(target=spin, daemon=True).start()
print("ready", flush=True)
time.sleep(3600)
