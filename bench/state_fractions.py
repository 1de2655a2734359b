#!/usr/bin/env python3
"""The measured state fractions of the workloads with known answers (tests/workloads), on every
installed CPython 3.8-3.13: ranges over versions and threads, for BENCHMARKS.md. The "CPU share"
is each thread's kernel CPU time over the run (cpu_s / duration_s), the truth for a thread that
runs without the GIL.

    python3 bench/state_fractions.py [--gilscope target/release/gilscope]
"""
import argparse
import json
import os
import subprocess

from pythons import interpreters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# workload: (threads to summarise by name prefix, states to show)
WORKLOADS = {
    "cpu_threads.py": ["worker"],
    "io_threads.py": ["worker"],
    "native_threads.py": ["worker"],
    "one_busy.py": ["busy", "waiter"],
    "lock_sleep.py": ["worker"],
    "mixed_cpu_native.py": ["python", "hash"],
}
SHOW = [("gil", ["gil"]), ("wait", ["gil_wait"]), ("native", ["native"]),
        ("io+sleep", ["io", "sleep"]), ("lock", ["lock"])]


def span(values):
    lo, hi = min(values), max(values)
    return "%.2f" % lo if abs(hi - lo) < 0.005 else "%.2f-%.2f" % (lo, hi)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gilscope", default=os.path.join(ROOT, "target", "release", "gilscope"))
    args = ap.parse_args()
    pythons = list(interpreters())
    rows = {}
    for name, prefixes in WORKLOADS.items():
        for version, python in pythons:
            out = subprocess.run([args.gilscope, "run", "--json", "-", "-q", "--", python,
                                  os.path.join(ROOT, "tests", "workloads", name)],
                                 capture_output=True, text=True, check=True).stdout
            report = json.loads(out)
            for prefix in prefixes:
                row = rows.setdefault((name, prefix), {"held": [], "switches": [], "verdicts": set(),
                                                       "cpu": [], **{k: [] for k, _ in SHOW}})
                row["held"].append(report["process"]["gil_held"])
                row["switches"].append(report["process"]["gil_switches_per_s"] or 0)
                row["verdicts"].add(report["verdict"]["kind"])
                for t in report["threads"]:
                    if not t["name"].startswith(prefix):
                        continue
                    for label, states in SHOW:
                        row[label].append(sum(t["states"][s] for s in states))
                    row["cpu"].append(t["cpu_s"] / report["duration_s"])
    print("CPython %s; ranges over versions and threads.\n" % ", ".join(v for v, _ in pythons))
    print("| workload | threads | " + " | ".join(k for k, _ in SHOW) + " | CPU share | GIL held | hand-offs/s | verdict |")
    print("|---|---|" + "---|" * (len(SHOW) + 4))
    for (name, prefix), r in rows.items():
        print("| %s | %s | %s | %s | %s | %s | %s |" % (
            name, prefix, " | ".join(span(r[k]) for k, _ in SHOW), span(r["cpu"]), span(r["held"]),
            "%.0f-%.0f" % (min(r["switches"]), max(r["switches"])), ", ".join(sorted(r["verdicts"]))))


if __name__ == "__main__":
    main()
