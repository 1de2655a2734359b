#!/usr/bin/env python3
"""Target slowdown under gilscope: workload (a) alone and under `gilscope run` at 100 Hz and
1000 Hz, interleaved, ROUNDS times each. Prints medians and ratios, never single times.

    python3 bench/overhead.py [--rounds 5] [--work 3000000] [--gilscope target/release/gilscope]

The time is the one the workload measures itself (from its first thread start to its last
join), so gilscope's own start-up and attach are not counted against the target.
"""
import argparse
import os
import re
import resource
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKLOAD = os.path.join(ROOT, "examples", "threads_cpu.py")


def cpu_of_children():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(cmd):
    """Returns (the workload's own time, CPU seconds of the whole command tree)."""
    before = cpu_of_children()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    cpu = cpu_of_children() - before
    match = re.search(r"took ([0-9.]+) s", out)
    if not match:
        sys.exit("unexpected workload output: %r" % out)
    return float(match.group(1)), cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--work", type=int, default=3_000_000)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--gilscope", default=os.path.join(ROOT, "target", "release", "gilscope"))
    args = ap.parse_args()

    target = [args.python, WORKLOAD, str(args.work)]
    modes = {
        "alone": target,
        "gilscope 100 Hz": [args.gilscope, "run", "-q", "--rate", "100", "--"] + target,
        "gilscope 1000 Hz": [args.gilscope, "run", "-q", "--rate", "1000", "--"] + target,
    }
    times = {name: [] for name in modes}
    cpus = {name: [] for name in modes}
    for _ in range(args.rounds):
        for name, cmd in modes.items():  # interleaved: noise hits every mode alike
            wall, cpu = run(cmd)
            times[name].append(wall)
            cpus[name].append(cpu)

    base = statistics.median(times["alone"])
    base_cpu = statistics.median(cpus["alone"])
    print("workload (a): 4 threads x work(%d), %d rounds, %s, %d cores"
          % (args.work, args.rounds, os.path.basename(args.python), os.cpu_count()))
    print("| mode | median s | min s | max s | ratio vs alone | gilscope CPU s (median) |")
    print("|---|---|---|---|---|---|")
    for name, ts in times.items():
        med = statistics.median(ts)
        own = "-" if name == "alone" else "%.2f" % (statistics.median(cpus[name]) - base_cpu)
        print("| %s | %.3f | %.3f | %.3f | %.3f | %s |" % (name, med, min(ts), max(ts), med / base, own))


if __name__ == "__main__":
    main()
