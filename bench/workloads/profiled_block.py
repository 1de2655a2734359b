"""The block whose cost under gilscope is measured by bench/python_api.py: four threads of pure
Python, timed alone (`alone`), inside `with gilscope.profile()` (`profile`), or while an outside
`gilscope attach` samples (`attach`: it waits for a line on stdin, sent once the sampler is
ready). Prints one JSON line: the block's wall time, and for `profile` the time to enter the
block (the sampler's start) and to leave it (its report)."""
import json
import sys
import threading
import time

mode, n = sys.argv[1], int(sys.argv[2])


def work():
    total = 0
    for i in range(n):
        total = (total * 31 + i) % 1000003


def block():
    threads = [threading.Thread(target=work) for _ in range(4)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


result = {}
if mode == "profile":
    import gilscope

    before = time.perf_counter()
    sampling = gilscope.profile()
    run = sampling.__enter__()
    result["enter_s"] = time.perf_counter() - before
    result["block_s"] = block()
    after = time.perf_counter()
    sampling.__exit__(None, None, None)
    result["exit_s"] = time.perf_counter() - after
    result["kind"] = run.verdict.kind if run.verdict else None
else:
    if mode == "attach":
        print("ready", flush=True)
        sys.stdin.readline()
    result["block_s"] = block()
print(json.dumps(result), flush=True)
