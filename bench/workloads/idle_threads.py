"""argv[1] threads waiting on an Event, for the per-sample cost of a profiler."""
import sys
import threading
import time

n = int(sys.argv[1])
ev = threading.Event()
for _ in range(n):
    threading.Thread(target=ev.wait, daemon=True).start()
print("ready", flush=True)
time.sleep(3600)
