#!/usr/bin/env python3
"""What `gilscope.profile()` costs the block it samples: a GIL-bound block (4 Python threads)
timed alone, inside `with gilscope.profile()`, and while `gilscope attach` samples it from
outside (both at 100 Hz). Interleaved rounds, each in a fresh interpreter; medians of the
block's wall time and their ratios, and the fixed cost of entering (the sampler's start, up to
its first sample) and leaving (its report) the `with` block.

    python3 bench/python_api.py --gilscope target/release/gilscope [--runs 5] [--smoke]
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BLOCK = os.path.join(HERE, "workloads", "profiled_block.py")


def run_block(python, gilscope, mode, n):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"), GILSCOPE_BIN=gilscope)
    if mode != "attach":
        out = subprocess.run([python, BLOCK, mode, str(n)], env=env, check=True,
                             stdout=subprocess.PIPE).stdout
        return json.loads(out.decode().splitlines()[-1])
    target = subprocess.Popen([python, BLOCK, mode, str(n)], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    target.stdout.readline()  # "ready"
    with tempfile.TemporaryDirectory() as tmp:
        ready = os.path.join(tmp, "ready")
        sampler = subprocess.Popen([gilscope, "attach", str(target.pid), "-q",
                                    "--ready-file", ready], stdout=subprocess.DEVNULL)
        while not os.path.exists(ready):
            time.sleep(0.002)
        target.stdin.write(b"go\n")
        target.stdin.flush()
        line = target.stdout.readline()
        sampler.send_signal(signal.SIGINT)
        sampler.wait()
        target.wait()
    return json.loads(line)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gilscope", default=os.path.join(ROOT, "target/release/gilscope"))
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="one short round")
    opts = parser.parse_args()
    runs, n = (1, 1_000_000) if opts.smoke else (opts.runs, 3_000_000)
    modes = ["alone", "profile", "attach"]
    seen = {mode: [] for mode in modes}
    for _ in range(runs):
        for mode in modes:
            seen[mode].append(run_block(opts.python, os.path.abspath(opts.gilscope), mode, n))
    block = {mode: statistics.median(r["block_s"] for r in seen[mode]) for mode in modes}
    enter = statistics.median(r["enter_s"] for r in seen["profile"])
    leave = statistics.median(r["exit_s"] for r in seen["profile"])
    version = subprocess.run([opts.python, "-c", "import sys; print(sys.version.split()[0])"],
                             stdout=subprocess.PIPE).stdout.decode().strip()
    print("CPython %s, 4 threads x %d iterations, %d round(s), medians" % (version, n, runs))
    print()
    print("| the block | wall s | vs alone |")
    print("|---|---|---|")
    for mode, label in [("alone", "alone"), ("profile", "inside `gilscope.profile()`"),
                        ("attach", "under `gilscope attach`")]:
        print("| %s | %.3f | %.3fx |" % (label, block[mode], block[mode] / block["alone"]))
    print()
    print("profile() / attach on the block: %.3fx; entering the block (start, first sample) "
          "%.3f s, leaving it (the report) %.3f s" % (block["profile"] / block["attach"], enter,
                                                      leave))
    kinds = sorted(set(r["kind"] for r in seen["profile"]))
    print("verdicts inside profile(): %s" % ", ".join(str(k) for k in kinds))


if __name__ == "__main__":
    main()
