#!/usr/bin/env python3
"""GIL holding, waiting and hand-off against the kernel's own account: uprobes on CPython's
`take_gil` and `drop_gil` (local symbols that pyenv's builds keep) traced with bpftrace beside
`gilscope attach` on the same running workload, per thread, in percentage points.

For every thread the uprobes give: waiting, from `take_gil`'s entry to its return; holding,
from that return to the next `drop_gil`'s entry; handing off, inside `drop_gil` (the forced
switch waits there for the next holder). Each is a share of the trace's own length; gilscope's
`gil`, `gil_wait` and `handoff` are shares of the thread's sampled time. The workloads are
stationary, so the two windows (started within a few hundred milliseconds of each other)
measure the same thing.

    python3 bench/gil_truth.py [--runs 3] [--seconds 5] [--gilscope PATH] [--smoke]

Needs root, bpftrace (Debian's package) and tracefs (mounted here when missing).
"""
import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from pythons import interpreters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (name, script, arguments): contended workloads of the test suite and the corpus.
WORKLOADS = [
    ("4 Python threads", "tests/workloads/cpu_threads.py", []),
    ("2 Python + 2 hashlib threads", "tests/workloads/mixed_cpu_native.py", []),
    ("queue ping-pong", "tests/programs/queue_pipeline.py", []),
    ("I/O threads beside CPU threads", "tests/workloads/io_and_cpu.py", []),
]
STATES = [("gil", "hold"), ("gil_wait", "wait"), ("handoff", "drop")]
PROGRAM = """
BEGIN { @start = nsecs; printf("tracing\\n"); }
uprobe:LIB:take_gil { @t0[tid] = nsecs; }
uretprobe:LIB:take_gil /@t0[tid]/ { @wait[tid] += nsecs - @t0[tid]; delete(@t0[tid]); @h0[tid] = nsecs; }
uprobe:LIB:drop_gil /@h0[tid]/ { @hold[tid] += nsecs - @h0[tid]; delete(@h0[tid]); }
uprobe:LIB:drop_gil { @d0[tid] = nsecs; }
uretprobe:LIB:drop_gil /@d0[tid]/ { @drop[tid] += nsecs - @d0[tid]; delete(@d0[tid]); }
END { @elapsed = nsecs - @start; clear(@t0); clear(@h0); clear(@d0); clear(@start); }
"""


def libpython(python):
    """The shared library that holds take_gil, or None."""
    out = subprocess.run(["ldd", os.path.realpath(python)], capture_output=True, text=True).stdout
    for line in out.splitlines():
        m = re.search(r"(libpython\S+) => (\S+)", line)
        if m:
            return m.group(2)
    return None


def has_symbols(lib):
    out = subprocess.run(["nm", lib], capture_output=True, text=True).stdout
    return " take_gil\n" in out and " drop_gil\n" in out


def ensure_tracefs():
    if not os.path.exists("/sys/kernel/tracing/uprobe_events"):
        subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"],
                       capture_output=True)


def parse_bpftrace(text):
    """{tid: {"wait"|"hold"|"drop": ns}}, elapsed ns."""
    totals, elapsed = {}, None
    for line in text.splitlines():
        m = re.match(r"@(wait|hold|drop)\[(\d+)\]: (\d+)", line)
        if m:
            totals.setdefault(int(m.group(2)), {})[m.group(1)] = int(m.group(3))
        m = re.match(r"@elapsed: (\d+)", line)
        if m:
            elapsed = int(m.group(1))
    return totals, elapsed


def one_run(gilscope, python, lib, script, args, seconds):
    """[(thread name, state, gilscope share, uprobe share)] for one run."""
    env = dict(os.environ, RUN_SECONDS=str(seconds + 6))
    target = subprocess.Popen([python, os.path.join(ROOT, script)] + args
                              + ([str(seconds + 6)] if script.startswith("tests/workloads") else []),
                              env=env, cwd=os.path.dirname(os.path.join(ROOT, script)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        with tempfile.TemporaryDirectory() as tmp:
            program = os.path.join(tmp, "gil.bt")
            with open(program, "w") as f:
                f.write(PROGRAM.replace("LIB", lib))
            trace = subprocess.Popen(["bpftrace", "-p", str(target.pid), program],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            line = trace.stdout.readline()
            if "tracing" not in line and "Attaching" in line:
                line = trace.stdout.readline()
            if "tracing" not in line:
                trace.kill()
                raise RuntimeError("bpftrace did not start: " + trace.stderr.read().strip()[:300])
            report_path = os.path.join(tmp, "r.json")
            subprocess.run([gilscope, "attach", "-q", "--duration", str(seconds), "--json",
                            report_path, str(target.pid)], check=True, capture_output=True)
            trace.send_signal(signal.SIGINT)
            out, _ = trace.communicate(timeout=30)
            import json
            with open(report_path) as f:
                report = json.load(f)
    finally:
        target.kill()
        target.wait()
    totals, elapsed = parse_bpftrace(line + out)
    if not elapsed:
        raise RuntimeError("bpftrace printed no totals")
    rows = []
    for thread in report["threads"]:
        truth = totals.get(thread["tid"], {})
        if not truth or thread["samples"] < 0.8 * report["samples"]:
            continue
        for state, key in STATES:
            rows.append((thread["name"], state, thread["states"].get(state, 0.0),
                         truth.get(key, 0) / elapsed))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gilscope", default=os.path.join(ROOT, "target/release/gilscope"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--smoke", action="store_true", help="one short run of one workload")
    parser.add_argument("--details", action="store_true",
                        help="also print each thread's shares, gilscope's beside the uprobes'")
    parser.add_argument("--only", help="only the CPython versions given, e.g. 3.9,3.12")
    parser.add_argument("--workload", help="only the workloads whose name contains this")
    opts = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("gil_truth.py: uprobes need root (run as root)")
    if subprocess.run(["which", "bpftrace"], capture_output=True).returncode != 0:
        sys.exit("gil_truth.py: bpftrace not found (hint: apt-get install bpftrace)")
    ensure_tracefs()
    workloads = WORKLOADS[:1] if opts.smoke else WORKLOADS
    if opts.workload:
        workloads = [w for w in workloads if opts.workload in w[0]]
    runs, seconds = (1, 2.0) if opts.smoke else (opts.runs, opts.seconds)
    print("| CPython | workload | state | threads | median error (points) | worst (points) |")
    print("|---|---|---|---|---|---|")
    for version, python in interpreters():
        lib = libpython(python)
        if not lib or not has_symbols(lib):
            print(f"*** SKIP: CPython {version}: no take_gil/drop_gil symbols to trace ***",
                  file=sys.stderr)
            continue
        if opts.smoke and version not in ("3.12",):
            continue
        if opts.only and version not in opts.only.split(","):
            continue
        for name, script, args in workloads:
            errors = {state: [] for state, _ in STATES}
            for _ in range(runs):
                for thread, state, measured, true in one_run(opts.gilscope, python, lib, script,
                                                             args, seconds):
                    errors[state].append(abs(measured - true) * 100)
                    if opts.details:
                        print(f"  {version} {name} {thread} {state}: gilscope {measured:.3f} "
                              f"uprobes {true:.3f}", file=sys.stderr)
            for state, _ in STATES:
                e = errors[state]
                if e:
                    print(f"| {version} | {name} | {state} | {len(e) // runs} | "
                          f"{statistics.median(e):.1f} | {max(e):.1f} |")


if __name__ == "__main__":
    main()
