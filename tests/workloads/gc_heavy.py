"""Two threads build and drop trees whose nodes point back at their parents (cyclic garbage)
beside a large live heap loaded at start: each full collection walks the whole heap, and the
cycles make them frequent. Times its own collections with gc.callbacks, loading included, and
prints, last, the share of its run they took (JSON).
Expected: gc_pauses."""
import gc
import json
import os
import threading
import time
from _common import DURATION


class Node:
    def __init__(self, parent):
        self.parent = parent
        self.children = []


def churn(until):
    while time.monotonic() < until:
        root = Node(None)
        level = [root]
        for _ in range(3):
            nxt = []
            for node in level:
                for _ in range(25):
                    child = Node(node)
                    node.children.append(child)
                    nxt.append(child)
            level = nxt


collecting = [0.0, None]


def on_gc(phase, info):
    if phase == "start":
        collecting[1] = time.perf_counter()
    elif collecting[1] is not None:
        collecting[0] += time.perf_counter() - collecting[1]
        collecting[1] = None


if __name__ == "__main__":
    gc.callbacks.append(on_gc)
    begin = time.perf_counter()
    cache = [{"id": i, "tags": [i, str(i)]} for i in range(400_000)]
    until = time.monotonic() + DURATION
    workers = [threading.Thread(target=churn, args=(until,), name="builder-%d" % i) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - begin
    print(json.dumps({"gc_share": collecting[0] / elapsed, "working_s": elapsed}), flush=True)
    # The interpreter's own final collection over the heap would come after the account.
    os._exit(0)
