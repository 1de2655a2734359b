#!/usr/bin/env python3
"""Accuracy against ground truth: gilscope's state fractions on workloads that time their own
phases (bench/workloads/truth.py), on every installed CPython 3.8-3.13, as errors in
percentage points; the kernel's CPU time as a cross-check; py-spy's GIL and active shares
beside them where it has them. Medians over runs, worst case shown.

    python3 bench/accuracy.py [--runs 3] [--py-spy PATH] [--gilscope PATH] [--smoke]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from pythons import interpreters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRUTH = os.path.join(ROOT, "bench", "workloads", "truth.py")
MODES = ["duty", "shifted", "native_io"]
# gilscope states compared with each truth key; the rest of a thread's time should be ~0.
STATES = ["gil", "gil_wait", "native", "io", "sleep", "lock", "idle", "unknown"]


def gilscope_run(gilscope, python, mode, seconds):
    """(truth by thread, report) for one run."""
    with tempfile.TemporaryDirectory() as tmp:
        report_path = os.path.join(tmp, "r.json")
        out = subprocess.run([gilscope, "run", "-q", "--json", report_path, "--", python, TRUTH,
                              mode, str(seconds)], capture_output=True, text=True, check=True)
        truth = json.loads(out.stdout.strip().splitlines()[-1])
        with open(report_path) as f:
            return truth, json.load(f)


def errors(truth, report):
    """Per (thread, state): (measured, true) for every state; and the kernel CPU share."""
    rows = []
    for thread in report["threads"]:
        true = truth.get(thread["name"])
        if true is None:
            continue
        for state in STATES:
            rows.append((thread["name"], state, thread["states"][state], true.get(state, 0.0)))
        cpu_true = true.get("gil", 0.0) + true.get("native", 0.0)
        rows.append((thread["name"], "cpu (kernel)", thread["cpu_s"] / report["duration_s"], cpu_true))
    return rows


def py_spy_shares(py_spy, python, mode, seconds):
    """py-spy's share of samples holding the GIL and active, for the worker threads: three
    recordings (--idle: every sample; default: active ones; --gil: GIL holders)."""
    counts = {}
    for flag in ["--idle", None, "--gil"]:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "raw.txt")
            cmd = [py_spy, "record", "--nonblocking", "-r", "100", "-f", "raw", "-o", out]
            if flag:
                cmd.append(flag)
            subprocess.run(cmd + ["--", python, TRUTH, mode, str(seconds)], capture_output=True,
                           check=True)
            n = 0
            with open(out) as f:
                for line in f:
                    stack, _, count = line.rstrip().rpartition(" ")
                    if "duty (" in stack or "native_io (" in stack:
                        n += int(count)
            counts[flag] = n
    total = max(counts["--idle"], 1)
    return counts["--gil"] / total, counts[None] / total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gilscope", default=os.path.join(ROOT, "target", "release", "gilscope"))
    ap.add_argument("--py-spy", default=os.path.join(ROOT, "bench", ".venv", "bin", "py-spy"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--smoke", action="store_true", help="one short run on one interpreter")
    args = ap.parse_args()
    pythons = list(interpreters())
    if args.smoke:
        pythons, args.runs, args.seconds = pythons[-1:], 1, 1.0
    worst = 0.0
    print("| workload | CPython | state | true | gilscope (median) | error, pp (median / worst) |")
    print("|---|---|---|---|---|---|")
    for mode in MODES:
        for version, python in pythons:
            samples = {}
            for _ in range(args.runs):
                truth, report = gilscope_run(args.gilscope, python, mode, args.seconds)
                for thread, state, measured, true in errors(truth, report):
                    samples.setdefault((thread, state), []).append((measured, true))
            for (thread, state), values in sorted(samples.items()):
                true = statistics.median(t for _, t in values)
                measured = statistics.median(m for m, _ in values)
                errs = [abs(m - t) * 100 for m, t in values]
                if true < 0.005 and max(errs) < 0.5:
                    continue  # a state the thread never was in, and gilscope agrees
                if state != "cpu (kernel)":
                    worst = max(worst, max(errs))
                print("| %s %s | %s | %s | %.3f | %.3f | %.1f / %.1f |" % (
                    mode, thread, version, state, true, measured, statistics.median(errs), max(errs)))
    print()
    print("worst gilscope error over every state, workload and version: %.1f pp" % worst)
    if os.path.exists(args.py_spy):
        print()
        print("| workload | CPython | true GIL share | py-spy GIL | true active (on CPU) | py-spy active |")
        print("|---|---|---|---|---|---|")
        version, python = pythons[-1] if args.smoke else next(
            (p for p in pythons if p[0] == "3.12"), pythons[-1])
        for mode in MODES:
            truth, _ = gilscope_run(args.gilscope, python, mode, args.seconds)
            true = next(iter(truth.values()))
            gil, active = py_spy_shares(args.py_spy, python, mode, args.seconds)
            print("| %s | %s | %.3f | %.3f | %.3f | %.3f |" % (
                mode, version, true.get("gil", 0.0), gil,
                true.get("gil", 0.0) + true.get("native", 0.0), active))
    else:
        print("SKIPPED: py-spy not found at %s (bash bench/run installs it)" % args.py_spy,
              file=sys.stderr)


if __name__ == "__main__":
    main()
