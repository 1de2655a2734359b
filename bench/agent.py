#!/usr/bin/env python3
"""What `gilscope agent` costs on a node of web workers: N Python processes of 10 threads
each, almost always idle (bench/workloads/web_worker.py), and B busy ones (4 threads handing
the GIL around), watched at 20 Hz for S seconds:

- the agent with no budget (--max-cpu 100): its CPU over the whole run (attaching to every
  process included) and over its last 5 s window (its own account: steady state), per watched
  process and per thread, and the samples it dropped (due but not taken in time);
- the agent with its default budget (--max-cpu 0.05): its CPU, and the rate it settled at;
- py-spy, the peer, as one would watch the same node with it: one `py-spy record --rate 20
  --nonblocking` per process, all at once.

Interleaved rounds; medians and ratios of the profilers' own CPU (their rusage).

    python3 bench/agent.py --gilscope target/release/gilscope --py-spy bench/.venv/bin/py-spy
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
import urllib.request

from measure import children_cpu

HERE = os.path.dirname(os.path.abspath(__file__))
RATE = 20
EXIT_LINE = re.compile(
    r"watched (\d+) processes, used ([\d.]+) s of CPU \(([\d.]+) cores\), dropped (\d+) samples; "
    r"last rate ([\d.]+) Hz, idle processes every (\d+) ticks"
)


def start_fleet(python, workers, busy):
    procs = []
    for _ in range(workers):
        procs.append(subprocess.Popen([python, os.path.join(HERE, "workloads", "web_worker.py")],
                                      stdout=subprocess.PIPE, text=True))
    for _ in range(busy):
        procs.append(subprocess.Popen([python, os.path.join(HERE, "workloads", "busy_threads.py"), "4"],
                                      stdout=subprocess.PIPE, text=True))
    for p in procs:
        p.stdout.readline()  # "ready"
    return procs


def run_agent(gilscope, seconds, max_cpu):
    """The agent's CPU over the whole run (attaching included), its own account of its last
    window (steady state), and its exit line's tally."""
    cmd = [gilscope, "agent", "--listen", "127.0.0.1:0", "--rate", str(RATE), "--max-cpu", str(max_cpu),
           "--window", "5", "--match", r"bench/workloads/(web_worker|busy_threads)\.py",
           "--duration", str(seconds)]
    before = children_cpu()
    agent = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    address = re.search(r"http://([\d.:]+)/metrics", agent.stderr.readline()).group(1)
    time.sleep(seconds - 1.5)
    with urllib.request.urlopen("http://%s/processes" % address) as answer:
        steady = json.load(answer)["agent"]["cpu_cores"]
    with open("/proc/%d/status" % agent.pid) as status:
        rss_mb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024
    rest = agent.stderr.read()
    agent.wait()
    cpu = children_cpu() - before
    found = EXIT_LINE.search(rest)
    if agent.returncode != 0 or not found:
        sys.exit("agent failed: %s\n%s" % (" ".join(cmd), rest[-2000:]))
    watched, _, _, dropped, rate, idle_every = found.groups()
    return {"cpu": cpu, "steady": steady, "rss_mb": rss_mb, "watched": int(watched), "dropped": int(dropped),
            "rate": float(rate), "idle_every": int(idle_every)}


def run_py_spy(py_spy, pids, seconds):
    before = children_cpu()
    with tempfile.TemporaryDirectory() as tmp:
        spies = [subprocess.Popen([py_spy, "record", "--rate", str(RATE), "--nonblocking", "--duration",
                                   str(seconds), "--pid", str(pid), "--format", "raw",
                                   "-o", os.path.join(tmp, "%d.txt" % pid)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for pid in pids]
        failed = sum(1 for s in spies if s.wait() != 0)
    return {"cpu": children_cpu() - before, "failed": failed}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gilscope", required=True)
    parser.add_argument("--py-spy", required=True)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--workers", type=int, help="web workers (default 50; 8 with --smoke)")
    parser.add_argument("--busy", type=int, help="busy processes (default 3; 1 with --smoke)")
    parser.add_argument("--rounds", type=int, help="rounds (default 3; 1 with --smoke)")
    parser.add_argument("--no-peer", action="store_true", help="leave py-spy out (a large node)")
    args = parser.parse_args()
    workers, busy, seconds, rounds = (8, 1, 12, 1) if args.smoke else (50, 3, 30, 3)
    workers = args.workers or workers
    busy = busy if args.busy is None else args.busy
    rounds = args.rounds or rounds
    processes = workers + busy
    threads = workers * 11 + busy * 5
    fleet = start_fleet(args.python, workers, busy)
    try:
        free, budgeted, spy = [], [], []
        for _ in range(rounds):
            free.append(run_agent(args.gilscope, seconds, 100))
            budgeted.append(run_agent(args.gilscope, seconds, 0.05))
            if not args.no_peer:
                spy.append(run_py_spy(args.py_spy, [p.pid for p in fleet], seconds))
    finally:
        for p in fleet:
            p.kill()
            p.wait()
    for run in free + budgeted:
        if run["watched"] != processes:
            sys.exit("the agent watched %d processes of %d" % (run["watched"], processes))
    median = lambda runs, key: statistics.median(r[key] for r in runs)
    free_cores = median(free, "cpu") / seconds
    due = RATE * seconds * processes
    print("%d processes (%d web workers of 10 threads, %d busy of 4), %d threads, %d Hz, %d s, "
          "median of %d rounds" % (processes, workers, busy, threads, RATE, seconds, rounds))
    print()
    spy_cores = median(spy, "cpu") / seconds if spy else None
    versus = lambda cores: "%.2fx" % (cores / spy_cores) if spy_cores else "-"
    print("| watcher | CPU, whole run (cores) | steady, last window (cores) | per process, steady (ms/s) "
          "| per thread, steady (ms/s) | dropped | RSS (MB) | vs py-spy (whole run) |")
    print("|---|---|---|---|---|---|---|---|")
    steady = median(free, "steady")
    print("| gilscope agent, no budget | %.3f | %.3f | %.2f | %.3f | %.2f%% | %.0f | %s |" % (
        free_cores, steady, 1000 * steady / processes, 1000 * steady / threads,
        100 * median(free, "dropped") / due, median(free, "rss_mb"), versus(free_cores)))
    budget_cores = median(budgeted, "cpu") / seconds
    steady = median(budgeted, "steady")
    print("| gilscope agent, --max-cpu 0.05 | %.3f | %.3f | %.2f | %.3f | %d samples (settled at %.1f Hz, idle every %d) | %.0f | %s |" % (
        budget_cores, steady, 1000 * steady / processes, 1000 * steady / threads,
        median(budgeted, "dropped"), median(budgeted, "rate"), median(budgeted, "idle_every"),
        median(budgeted, "rss_mb"), versus(budget_cores)))
    if spy:
        print("| py-spy record x%d | %.3f | | %.2f | %.3f | (%d failed) | | 1.00x |" % (
            processes, spy_cores, 1000 * spy_cores / processes, 1000 * spy_cores / threads,
            max(r["failed"] for r in spy)))

if __name__ == "__main__":
    main()
