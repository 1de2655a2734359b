#!/usr/bin/env python3
"""Process pools and asyncio loops under `gilscope run --subprocesses`: the verdict and the
figures behind it for each workload of tests/workloads with a known answer, on every
installed CPython 3.8-3.13, as ranges over versions and runs, for BENCHMARKS.md.

    python3 bench/pools.py [--runs 1] [--smoke] [--gilscope target/release/gilscope]
"""
import argparse
import json
import os
import re
import subprocess
import tempfile
from collections import Counter

from pythons import interpreters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKLOADS = ["pool_good.py", "pool_pickle.py", "ppe_spawn.py", "pool_underused.py",
             "asyncio_blocking.py", "asyncio_healthy.py"]


def report_of(gilscope, python, workload):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "r.json")
        subprocess.run([gilscope, "run", "--subprocesses", "-q", "--json", path, "--", python,
                        os.path.join(ROOT, "tests", "workloads", workload)],
                       check=True, capture_output=True)
        with open(path) as f:
            return json.load(f)


def figures(report):
    """The numbers the verdict rests on, from the report (the pool figures are in its
    evidence text: the JSON has no field for them)."""
    text = " ".join([report["verdict"]["headline"]] + report["verdict"]["evidence"])
    out = {"cores": report["process"]["cpu_cores_used"], "late": report["late_samples"],
           "processes": len(report["processes"])}
    ipc = re.search(r"(\d+)% of the (?:on-CPU samples|on-CPU time|CPU time)", text)
    if ipc:
        out["ipc %"] = int(ipc.group(1))
    busy = re.search(r"([\d.]+) of them busy on a CPU", text)
    if busy:
        out["busy workers"] = float(busy.group(1))
    for lp in report["event_loops"][:1]:
        out["loop busy"] = lp["busy"]
        out["loop blocked"] = lp["blocked"]
    return out


def span(values, fmt):
    lo, hi = min(values), max(values)
    return fmt % lo if fmt % lo == fmt % hi else (fmt + "-" + fmt) % (lo, hi)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gilscope", default=os.path.join(ROOT, "target", "release", "gilscope"))
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="one interpreter, two workloads")
    args = ap.parse_args()
    pythons = list(interpreters())
    workloads = WORKLOADS
    if args.smoke:
        pythons, workloads = pythons[-1:], WORKLOADS[:1] + WORKLOADS[-2:-1]
    print("| workload | verdicts | processes | tree cores | figures | late samples |")
    print("|---|---|---|---|---|---|")
    for workload in workloads:
        verdicts, rows = Counter(), []
        for _ in range(args.runs):
            for _, python in pythons:
                report = report_of(args.gilscope, python, workload)
                verdicts[report["verdict"]["kind"]] += 1
                rows.append(figures(report))
        keys = [k for k in ["busy workers", "ipc %", "loop busy", "loop blocked"]
                if all(k in r for r in rows)]
        fmt = {"ipc %": "%d", "busy workers": "%.1f"}
        print("| %s | %s | %s | %s | %s | %s |" % (
            workload,
            ", ".join("%s %d/%d" % (k, n, len(rows)) for k, n in verdicts.most_common()),
            span([r["processes"] for r in rows], "%d"),
            span([r["cores"] for r in rows], "%.2f"),
            "; ".join("%s %s" % (k, span([r[k] for r in rows], fmt.get(k, "%.2f")))
                      for k in keys),
            span([r["late"] for r in rows], "%d")))


if __name__ == "__main__":
    main()
