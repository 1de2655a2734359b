#!/usr/bin/env python3
"""gilscope against py-spy on the same workloads, interleaved, in one run. Prints medians and
ratios, never single times. Run through `bench/run`, which installs py-spy in bench/.venv.

Part 1, target slowdown: each workload alone, under gilscope, and under py-spy --nonblocking and
py-spy blocking (its default), at 100 Hz and 1000 Hz. The time is the one the workload measures
itself; "profiler CPU" is the CPU of the whole command minus the target's own (median alone).

Part 2, cost per sample: a target with N threads waiting on an Event, then one with N threads
running Python, is sampled at 100 Hz by each profiler for 1 s and for a few seconds; the
difference in CPU time over the difference in samples is the marginal cost of one sample
(start-up cancels out).

Part 3, the highest rate: gilscope attached to 100 running threads at rising rates; the share
of samples it took late (more than half an interval behind) says where it stops keeping up.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from measure import children_cpu, late_share

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def timed(cmd):
    before = children_cpu()
    out = subprocess.run(cmd, capture_output=True, text=True)
    cpu = children_cpu() - before
    m = re.search(r"took ([0-9.]+) s", out.stdout)
    if out.returncode != 0 or not m:
        sys.exit("failed: %s\n%s%s" % (" ".join(cmd), out.stdout[-500:], out.stderr[-2000:]))
    return float(m.group(1)), cpu


def part1(args, scratch):
    py = sys.executable
    workloads = {
        "4 Python threads (one core left free)": [py, os.path.join(ROOT, "examples/threads_cpu.py"), str(args.cpu_work)],
        "4 hashlib threads (both cores busy)": [py, os.path.join(HERE, "workloads/hash_threads.py"), str(args.hash_mb)],
        "100 mixed threads": [py, os.path.join(HERE, "workloads/mixed100.py"), str(args.mixed_rounds)],
        "thread churn (thousands of threads a second)": [py, os.path.join(HERE, "workloads/churn.py"), str(args.churn_batches)],
    }
    raw = os.path.join(scratch, "py-spy.raw")
    for title, target in workloads.items():
        modes = [("alone", None, target)]
        for rate in args.rates:
            modes.append(("gilscope", rate, [args.gilscope, "run", "-q", "--rate", str(rate), "--"] + target))
            modes.append(("py-spy --nonblocking", rate, [args.py_spy, "record", "--nonblocking", "-r", str(rate), "-f", "raw", "-o", raw, "--"] + target))
            modes.append(("py-spy (blocking)", rate, [args.py_spy, "record", "-r", str(rate), "-f", "raw", "-o", raw, "--"] + target))
        times = {i: [] for i in range(len(modes))}
        cpus = {i: [] for i in range(len(modes))}
        for _ in range(args.rounds):
            for i, (_, _, cmd) in enumerate(modes):
                wall, cpu = timed(cmd)
                times[i].append(wall)
                cpus[i].append(cpu)
        base = statistics.median(times[0])
        base_cpu = statistics.median(cpus[0])
        print("\n### %s\n" % title)
        print("| profiler | rate | median s | ratio vs alone | slowdown | profiler CPU s |")
        print("|---|---|---|---|---|---|")
        for i, (name, rate, _) in enumerate(modes):
            med = statistics.median(times[i])
            own = "-" if rate is None else "%.2f" % (statistics.median(cpus[i]) - base_cpu)
            print("| %s | %s | %.3f | %.3f | %+.1f%% | %s |" % (
                name, "-" if rate is None else "%d Hz" % rate, med, med / base, (med / base - 1) * 100, own))


def cpu_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_target(workload, n):
    target = subprocess.Popen([sys.executable, os.path.join(HERE, "workloads", workload), str(n)],
                              stdout=subprocess.PIPE, text=True)
    assert target.stdout.readline().strip() == "ready"
    return target


def gilscope_attach(args, pid, rate, seconds):
    return [args.gilscope, "attach", "-q", "--json", "-", "--rate", str(rate),
            "--duration", str(seconds), str(pid)]


def part2(args, scratch, workload, what):
    print("\n### Marginal cost per sample, 100 Hz (CPU at 1 s and %g s attached, difference over the extra samples), N threads %s\n" % (args.attach_s, what))
    print("| threads | gilscope µs/sample | py-spy --nonblocking µs/sample | ratio | gilscope late samples |")
    print("|---|---|---|---|---|")
    raw = os.path.join(scratch, "attach.raw")
    for n in args.thread_counts:
        target = start_target(workload, n)
        try:
            # The marginal cost: CPU at two durations, the difference over the extra samples
            # (so start-up, which both pay once, cancels out). Medians over the rounds.
            costs = {"gilscope": [], "py-spy": []}
            late = "-"
            short, long_ = 1.0, args.attach_s
            for _ in range(args.cost_rounds):
                for name in ["gilscope", "py-spy"]:
                    cpu = {}
                    for seconds in (short, long_):
                        if name == "gilscope":
                            cmd = gilscope_attach(args, target.pid, 100, seconds)
                        else:
                            cmd = [args.py_spy, "record", "--nonblocking", "-r", "100", "-d", str(int(seconds)),
                                   "-f", "raw", "-o", raw, "-p", str(target.pid)]
                        before = children_cpu()
                        out = subprocess.run(cmd, capture_output=True, text=True)
                        cpu[seconds] = children_cpu() - before
                        if name == "gilscope" and seconds == long_ and out.returncode == 0:
                            late = "%d of %d" % late_share(json.loads(out.stdout))
                    costs[name].append(max(cpu[long_] - cpu[short], 0.0) / ((long_ - short) * 100) * 1e6)
            ours, theirs = statistics.median(costs["gilscope"]), statistics.median(costs["py-spy"])
            ratio = ours / theirs if theirs > 0 else float("nan")
            print("| %d | %.0f | %.0f | %.2f | %s |" % (n, ours, theirs, ratio, late))
        finally:
            target.kill()
            target.wait()


def part3(args):
    n = args.busy_for_rate
    print("\n### The highest rate: gilscope attached %g s to %d running threads\n" % (args.attach_s, n))
    print("| rate | samples taken | late (median of %d) | late share | gilscope CPU s per s |" % args.cost_rounds)
    print("|---|---|---|---|---|")
    target = start_target("busy_threads.py", n)
    try:
        for rate in args.rate_steps:
            late, taken, cpu = [], [], []
            for _ in range(args.cost_rounds):
                before = children_cpu()
                out = subprocess.run(gilscope_attach(args, target.pid, rate, args.attach_s),
                                     capture_output=True, text=True)
                cpu.append((children_cpu() - before) / args.attach_s)
                l, t = late_share(json.loads(out.stdout))
                late.append(l)
                taken.append(t)
            l, t = statistics.median(late), statistics.median(taken)
            print("| %d Hz | %d | %d | %.1f%% | %.2f |" % (rate, t, l, 100.0 * l / max(t, 1), statistics.median(cpu)))
    finally:
        target.kill()
        target.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gilscope", required=True)
    ap.add_argument("--py-spy", required=True)
    ap.add_argument("--smoke", action="store_true", help="one small round of everything")
    args = ap.parse_args()
    if args.smoke:
        args.rounds, args.rates, args.cpu_work, args.hash_mb, args.mixed_rounds = 1, [100], 200_000, 16, 5
        args.churn_batches, args.thread_counts, args.busy_counts, args.attach_s = 150, [8], [8], 2.0
        args.cost_rounds, args.busy_for_rate, args.rate_steps = 1, 8, [1000]
    else:
        args.rounds, args.rates, args.cpu_work, args.hash_mb, args.mixed_rounds = 5, [100, 1000], 4_000_000, 300, 150
        args.churn_batches, args.thread_counts, args.busy_counts, args.attach_s = 300, [8, 100, 1000], [4, 8, 100], 5.0
        args.cost_rounds, args.busy_for_rate, args.rate_steps = 3, 100, [100, 250, 500, 1000]
    print("## gilscope vs py-spy: %s, %d cores, %s, %d rounds, interleaved" % (
        time.strftime("%Y-%m-%d"), os.cpu_count(), "CPython %d.%d.%d" % sys.version_info[:3], args.rounds))
    with tempfile.TemporaryDirectory() as scratch:
        part1(args, scratch)
        part2(args, scratch, "idle_threads.py", "waiting on an Event")
        counts, args.thread_counts = args.thread_counts, args.busy_counts
        part2(args, scratch, "busy_threads.py", "running Python (handing the GIL around)")
        args.thread_counts = counts
        part3(args)


if __name__ == "__main__":
    main()
