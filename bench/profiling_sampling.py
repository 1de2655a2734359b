#!/usr/bin/env python3
"""gilscope beside CPython 3.15's own sampling profiler (`python3.15 -m profiling.sampling`),
on the same workloads, in one run. Prints medians and ratios, never single times.

Part 1, agreement: profiling.sampling runs a workload (`run -a --mode gil --collapsed`, 1 kHz)
while gilscope attaches to the same process (1 kHz, 3 s): each thread's share of samples
holding the GIL, by both, side by side. profiling.sampling's share is the thread's samples in
gil mode over its successful sampling rounds (rounds less its reported error rate).

Part 2, slowdown: `examples/threads_cpu.py` (four GIL-bound threads, it times itself) alone,
under `gilscope run` at 1 kHz, and under `profiling.sampling run -a` at 1 kHz in gil and wall
mode, interleaved; the target's own time and the whole command's wall time, medians.

    python3 bench/profiling_sampling.py --gilscope target/release/gilscope [--smoke]
"""
import argparse
import collections
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKLOADS = os.path.join(ROOT, "tests", "workloads")


def python315():
    found = sorted(glob.glob("/root/.pyenv/versions/3.15.*/bin/python"))
    if not found:
        print("SKIPPED: no CPython 3.15 under /root/.pyenv/versions (bash ../shared/pythons/install.sh)")
        sys.exit(0)
    return found[-1]


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def runs_workload(pid, script):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return script.encode() in f.read()
    except OSError:
        return False


def wait_for_target(profiler, script, timeout=10.0):
    """The process profiling.sampling started for `script` (itself or a descendant)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        todo = [profiler.pid]
        while todo:
            pid = todo.pop()
            kids = children(pid)
            for kid in kids:
                if runs_workload(kid, script):
                    return kid
            todo.extend(kids)
        time.sleep(0.02)
    sys.exit("profiling.sampling started no process for %s" % script)


def parse_profiler_output(text):
    rounds = int(re.search(r"Captured (\d+) samples", text).group(1))
    error = re.search(r"Error rate: ([0-9.]+)", text)
    error_rate = float(error.group(1)) / 100 if error else 0.0
    return rounds * (1 - error_rate), error_rate


def agreement(args, py, scratch):
    rows = []
    for workload, duration in [("cpu_threads.py", 4), ("mixed_cpu_native.py", 4), ("one_busy.py", 4)]:
        script = os.path.join(WORKLOADS, workload)
        collapsed = os.path.join(scratch, "stacks.txt")
        report = os.path.join(scratch, "report.json")
        profiler = subprocess.Popen(
            [py, "-m", "profiling.sampling", "run", "-a", "--mode", "gil", "-r", "1khz",
             "--collapsed", "-o", collapsed, script, str(duration)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=WORKLOADS)
        target = wait_for_target(profiler, script)
        time.sleep(0.3)
        subprocess.run([args.gilscope, "attach", "-q", "--rate", "1000", "--duration",
                        str(duration - 1.5), "--json", report, str(target)], check=True)
        out, _ = profiler.communicate(timeout=60)
        good_rounds, error_rate = parse_profiler_output(out)
        held = collections.Counter()
        with open(collapsed) as f:
            for line in f:
                stack, count = line.rsplit(" ", 1)
                held[int(stack.split(";", 1)[0][len("tid:"):])] += int(count)
        with open(report) as f:
            ours = json.load(f)
        for t in ours["threads"]:
            theirs = held.get(t["tid"], 0) / good_rounds
            rows.append((workload, t["name"], t["states"]["gil"], theirs, error_rate))
    print("### Per-thread share of samples holding the GIL, same process, both at 1 kHz")
    print()
    print("| workload | thread | gilscope `gil` | profiling.sampling `--mode gil` | difference |")
    print("|---|---|---:|---:|---:|")
    worst = 0.0
    for workload, name, ours, theirs, _ in rows:
        worst = max(worst, abs(ours - theirs))
        print("| %s | %s | %.1f%% | %.1f%% | %+.1f pp |" % (workload, name, 100 * ours, 100 * theirs, 100 * (ours - theirs)))
    print()
    errors = sorted({round(100 * r[4], 1) for r in rows})
    print("Largest difference: %.1f points. profiling.sampling's reported error rate: %s%%." % (100 * worst, ", ".join("%.1f" % e for e in errors)))
    print()


def timed(cmd):
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    m = re.search(r"took ([0-9.]+) s", out.stdout + out.stderr)
    if out.returncode != 0 or not m:
        sys.exit("failed: %s\n%s%s" % (" ".join(cmd), out.stdout[-500:], out.stderr[-1500:]))
    return float(m.group(1)), wall


def slowdown(args, py, scratch):
    target = [py, os.path.join(ROOT, "examples", "threads_cpu.py"), str(args.work)]
    out = os.path.join(scratch, "out")
    modes = [
        ("alone", target),
        ("gilscope run, 1 kHz", [args.gilscope, "run", "-q", "--rate", "1000", "--"] + target),
        ("profiling.sampling run -a --mode gil, 1 kHz",
         [py, "-m", "profiling.sampling", "run", "-a", "--mode", "gil", "-r", "1khz", "--collapsed", "-o", out] + target[1:]),
        ("profiling.sampling run -a --mode wall, 1 kHz",
         [py, "-m", "profiling.sampling", "run", "-a", "--mode", "wall", "-r", "1khz", "--collapsed", "-o", out] + target[1:]),
    ]
    own = collections.defaultdict(list)
    wall = collections.defaultdict(list)
    for _ in range(args.rounds):
        for name, cmd in modes:
            t, w = timed(cmd)
            own[name].append(t)
            wall[name].append(w)
    base_own = statistics.median(own["alone"])
    base_wall = statistics.median(wall["alone"])
    print("### Slowdown of four GIL-bound threads (examples/threads_cpu.py %d), %d interleaved rounds" % (args.work, args.rounds))
    print()
    print("| mode | target's own time (median) | vs alone | whole command (median) | vs alone |")
    print("|---|---:|---:|---:|---:|")
    for name, _ in modes:
        o, w = statistics.median(own[name]), statistics.median(wall[name])
        print("| %s | %.2f s | %.3fx | %.2f s | %+.2f s |" % (name, o, o / base_own, w, w - base_wall))
    print()
    g = statistics.median(own["gilscope run, 1 kHz"]) / base_own
    p = statistics.median(own["profiling.sampling run -a --mode gil, 1 kHz"]) / base_own
    print("Target slowdown at 1 kHz: gilscope %+.1f%%, profiling.sampling (gil mode) %+.1f%%." % (100 * (g - 1), 100 * (p - 1)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gilscope", required=True)
    parser.add_argument("--smoke", action="store_true", help="one small round: checks that it runs")
    args = parser.parse_args()
    args.rounds = 1 if args.smoke else 7
    args.work = 2_000_000 if args.smoke else 10_000_000
    py = python315()
    with tempfile.TemporaryDirectory() as scratch:
        agreement(args, py, scratch)
        slowdown(args, py, scratch)


if __name__ == "__main__":
    main()
