#!/usr/bin/env python3
"""What `--pyroscope` costs: one GIL-bound target (4 Python threads) is attached to for 3 s at
100 Hz by `gilscope attach`, by `gilscope attach --pyroscope` to a server that accepts every
push (a capture server on 127.0.0.1 in this script, one push a second), to a port where nothing
listens, and to a server that never answers, and by `py-spy record` as the peer. Interleaved
rounds; medians and ratios of the profiler's own CPU (its rusage: the target is not its child),
its wall time (the end waits up to 5 s for the last push), and the share of samples it took
late.

    python3 bench/push.py --gilscope target/release/gilscope --py-spy bench/.venv/bin/py-spy
"""
import argparse
import http.server
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from measure import children_cpu, late_share

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class Accepting(http.server.BaseHTTPRequestHandler):
    pushes = 0

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Accepting.pushes += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


class Silent(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        threading.Event().wait(30)  # never answers within the client's timeout

    def log_message(self, *_):
        pass


def serve(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, "http://127.0.0.1:%d" % server.server_address[1]


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "http://127.0.0.1:%d" % port


def timed(cmd, report):
    before = children_cpu()
    started = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - started
    cpu = children_cpu() - before
    if out.returncode != 0:
        sys.exit("failed: %s\n%s%s" % (" ".join(cmd), out.stdout[-500:], out.stderr[-2000:]))
    late = None
    if report:
        with open(report) as f:
            r = json.load(f)
        late, taken = late_share(r)
        late /= max(1, taken)
        os.remove(report)
    return wall, cpu, late


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gilscope", required=True)
    ap.add_argument("--py-spy", required=True)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--smoke", action="store_true", help="one short round")
    args = ap.parse_args()
    if args.smoke:
        args.rounds, args.seconds = 1, 1.0
    _, accepting = serve(Accepting)
    _, silent = serve(Silent)
    target = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tests/workloads/cpu_threads.py"), "3600"],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)  # the threads start
        pid = str(target.pid)
        scratch = tempfile.mkdtemp()
        report = os.path.join(scratch, "report.json")
        attach = [args.gilscope, "attach", "-q", "--duration", str(args.seconds), "--json", report]
        push = ["--push-interval", "1", "--pyroscope"]
        modes = [
            ("gilscope attach", attach + [pid], report),
            ("... --pyroscope, accepting server", attach + push + [accepting, pid], report),
            ("... --pyroscope, nothing listening", attach + push + [closed_port(), pid], report),
            ("... --pyroscope, server never answers", attach + push + [silent, pid], report),
            ("py-spy record --nonblocking", [args.py_spy, "record", "--nonblocking", "-r", "100", "-d", str(int(args.seconds)),
                                             "-f", "raw", "-o", os.path.join(scratch, "raw"), "-p", pid], None),
        ]
        results = {name: ([], [], []) for name, _, _ in modes}
        for _ in range(args.rounds):
            for name, cmd, rep in modes:
                wall, cpu, late = timed(cmd, rep)
                results[name][0].append(wall)
                results[name][1].append(cpu)
                if late is not None:
                    results[name][2].append(late)
    finally:
        target.kill()
        target.wait()
    plain = statistics.median(results["gilscope attach"][1])
    print("4 Python threads, %g s at 100 Hz, %d rounds, interleaved; %d pushes accepted in all\n" % (args.seconds, args.rounds, Accepting.pushes))
    print("| profiler | median wall s | median CPU s | CPU vs gilscope without push | late samples |")
    print("|---|---|---|---|---|")
    for name, _, _ in modes:
        walls, cpus, lates = results[name]
        cpu = statistics.median(cpus)
        late = "%.1f%%" % (statistics.median(lates) * 100) if lates else "-"
        print("| %s | %.2f | %.3f | %.2f | %s |" % (name, statistics.median(walls), cpu, cpu / plain if plain > 0 else float("nan"), late))


if __name__ == "__main__":
    main()
