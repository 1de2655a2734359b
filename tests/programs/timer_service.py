"""A monitoring agent: twelve threads each poll a (simulated) device every 50 ms, parse a small
reading and sleep again.
expect: io_bound
"""
import json
import os
import threading
import time

RUN_SECONDS = float(os.environ.get("RUN_SECONDS", "4"))


def poll(device, stop):
    while time.monotonic() < stop:
        reading = json.loads('{"device": %d, "temp": 21.5, "ok": true}' % device)
        if not reading["ok"]:
            break
        time.sleep(0.05)


if __name__ == "__main__":
    stop = time.monotonic() + RUN_SECONDS
    pollers = [threading.Thread(target=poll, args=(i, stop), name="poller-%d" % i) for i in range(12)]
    for p in pollers:
        p.start()
    for p in pollers:
        p.join()
