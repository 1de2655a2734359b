#!/usr/bin/env python3
"""The measured state fractions of the workloads with known answers (tests/workloads), on every
installed CPython 3.8-3.15: ranges over versions and threads, for BENCHMARKS.md. The "CPU share"
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


def report_of(gilscope, python, name):
    out = subprocess.run([gilscope, "run", "--json", "-", "-q", "--", python,
                          os.path.join(ROOT, "tests", "workloads", name)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def held_and_released(gilscope, pythons):
    """held_and_released.py: the share of each spinner's GIL waits in which the other spinner
    held the GIL, and the share of each line's running time with the GIL released."""
    held_by, hashing, spinning, hash_waits = [], [], [], []
    for _, python in pythons:
        report = report_of(gilscope, python, "held_and_released.py")
        for waiter, holder in [("spin_one", "spin-two"), ("spin_two", "spin-one")]:
            for h in report["hot"]["gil_wait"]:
                if h["function"] == waiter:
                    held_by.append(sum(g["fraction"] for g in h["held_by"] if g["thread"] == holder))
        for line in report["gil_by_line"]:
            if line["function"] == "hash_work":
                hashing.append(line["released_running"])
                hash_waits.append(line["waiting"])
            elif line["function"] in ("spin_one", "spin_two") and line["seconds"] >= 0.2:
                spinning.append(line["released_running"])
    print("\nheld_and_released.py: spinner waits held by the other spinner %s; the hashing line "
          "released %s of its running time (waited %s of its time); the spinning lines released %s"
          % (span(held_by), span(hashing), span(hash_waits), span(spinning)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gilscope", default=os.path.join(ROOT, "target", "release", "gilscope"))
    args = ap.parse_args()
    pythons = list(interpreters())
    rows = {}
    for name, prefixes in WORKLOADS.items():
        for version, python in pythons:
            report = report_of(args.gilscope, python, name)
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
    held_and_released(args.gilscope, pythons)


if __name__ == "__main__":
    main()
