"""A web worker as a node runs dozens of: eight handler threads waiting on a queue, one
acceptor handing them a small JSON request every 50 ms, a heartbeat, and a main thread asleep.
Ten threads, almost always idle."""
import json
import queue
import threading
import time

requests = queue.Queue()


def handle():
    while True:
        payload = requests.get()
        json.loads(json.dumps({"id": payload, "items": list(range(50))}))


def accept():
    n = 0
    while True:
        time.sleep(0.05)
        n += 1
        requests.put(n)


def heartbeat():
    while True:
        time.sleep(1)


for i in range(8):
    threading.Thread(target=handle, daemon=True, name="handler-%d" % i).start()
threading.Thread(target=accept, daemon=True, name="acceptor").start()
threading.Thread(target=heartbeat, daemon=True, name="heartbeat").start()
print("ready", flush=True)
time.sleep(3600)
