#!/usr/bin/env python3
"""The speedup gilscope predicts for the corpus's GIL-bound programs, against the speedup
`gilscope bench` measures for the same function over the same tasks, threads against processes.

For each program of `tests/programs/` whose work is one function mapped over a list (a thread
pool from concurrent.futures, multiprocessing or joblib): `gilscope run` on the program as it
is (its verdict and `predicted_speedup.processes`), then `gilscope bench FILE:FUNCTION` with
the program's own task list in threads and in processes (as many workers as the program's
pool, the medians of 5 runs); for the joblib program, the fix its verdict gives (joblib's
default backend, loky, in place of backend="threading"), timed on the program's own calls.
The issue's bar is 25%.

    python3 bench/corpus_predictions.py [--gilscope PATH] [--venvs DIR] [--only 3.12] [--runs 5]
                                        [--smoke]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = os.path.join(ROOT, "tests", "programs")
# (program, function, workers, the program's task list as Python source, repeats): the
# programs map their list again and again for their run; the bench maps it as many times as
# make about 2 s of sequential work (measured on 3.12), so that the pool's start-up weighs on
# the measured speedup as little as on the program.
# How the speedup is measured: "bench" is `gilscope bench` (threads against processes);
# "joblib" is the verdict's own fix for a joblib program: the program as written (one
# `Parallel` call with backend="threading" per pass over the task list, `repeats` passes)
# against joblib's default backend, loky (processes), called once over all the passes' tasks.
CASES = [
    ("executor_render.py", "render", 4, "list(range(200))", 60, "bench"),
    ("mp_threadpool.py", "checksum", 4, "[(bytes(range(256)) * 40,) for _ in range(64)]", 32,
     "bench"),
    ("joblib_threading.py", "tokenize", 4,
     '[("The quick brown fox, the lazy dog; and the end. " * 200,) for _ in range(64)]', 130,
     "joblib"),
]
JOBLIB_PROBE = r"""
import importlib, sys, time
from joblib import Parallel, delayed

if __name__ == "__main__":
    programs, module, function, tasks, repeats, workers, backend = sys.argv[1:]
    sys.path.insert(0, programs)
    work = getattr(importlib.import_module(module), function)
    tasks, repeats = eval(tasks), int(repeats)
    start = time.perf_counter()
    if backend == "threading":
        with Parallel(n_jobs=int(workers), backend="threading") as parallel:
            for _ in range(repeats):
                parallel(delayed(work)(*args) for args in tasks)
    else:
        Parallel(n_jobs=int(workers))(delayed(work)(*args) for args in tasks * repeats)
    print(time.perf_counter() - start)
"""
BAR = 0.25


def predicted(gilscope, python, program):
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "r.json")
        subprocess.run([gilscope, "run", "-q", "--json", report, "--", python,
                        os.path.join(PROGRAMS, program)], check=True, cwd=PROGRAMS,
                       env=dict(os.environ, RUN_SECONDS="4"), stdout=subprocess.DEVNULL)
        with open(report) as f:
            verdict = json.load(f)["verdict"]
    return verdict["kind"], (verdict.get("predicted_speedup") or {}).get("processes")


def measured(gilscope, python, program, function, workers, tasks, runs):
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "tasks.py"), "w") as f:
            f.write(tasks + "\n")
        out = os.path.join(tmp, "b.json")
        subprocess.run([gilscope, "bench", "--python", python, "--modes", "threads,processes",
                        "--workers", str(workers), "--runs", str(runs), "--tasks-from",
                        os.path.join(tmp, "tasks.py") + ":TASKS", "--export-json", out,
                        os.path.join(PROGRAMS, program) + ":" + function],
                       check=True, cwd=PROGRAMS, stdout=subprocess.DEVNULL)
        with open(out) as f:
            results = {r["mode"]: r["median_s"] for r in json.load(f)["results"]}
    return results["threads"] / results["processes"]


def measured_joblib(python, program, function, workers, tasks, repeats, runs):
    """Median seconds of the program's calls with backend="threading" over one loky call, each
    run in a fresh interpreter, the two alternating."""
    times = {"threading": [], "loky": []}
    with tempfile.TemporaryDirectory() as tmp:
        probe = os.path.join(tmp, "joblib_probe.py")
        with open(probe, "w") as f:
            f.write(JOBLIB_PROBE)
        for _ in range(runs):
            for backend in times:
                out = subprocess.run([python, probe, PROGRAMS, program[:-3], function, tasks,
                                      str(repeats), str(workers), backend], check=True,
                                     capture_output=True, text=True, cwd=tmp).stdout
                times[backend].append(float(out.split()[-1]))
    return statistics.median(times["threading"]) / statistics.median(times["loky"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gilscope", default=os.path.join(ROOT, "target/release/gilscope"))
    parser.add_argument("--venvs", default=os.environ.get(
        "GILSCOPE_VENVS", os.path.join(os.environ.get("TMPDIR", "/tmp"), "gilscope-venvs")))
    parser.add_argument("--only", default="3.9,3.12,3.14")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="one program on 3.12, one run")
    opts = parser.parse_args()
    # The runs happen in the programs' directory: a relative path would not be found there.
    opts.gilscope = os.path.abspath(opts.gilscope)
    # Bytecode caches are written, as on any installed CPython: where the environment forbids
    # it (PYTHONDONTWRITEBYTECODE) and the stdlib ships none (this machine's 3.14), every
    # worker a forkserver or spawn starts compiles what it imports, about 0.25 s each, which a
    # user's installation does not pay.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    cases = CASES[:1] if opts.smoke else CASES
    if opts.smoke:
        opts.only, opts.runs = "3.12", 1
    print("| CPython | program | verdict | predicted (processes) | measured by bench | off by |")
    print("|---|---|---|---|---|---|")
    misses = 0
    for version in opts.only.split(","):
        python = os.path.join(opts.venvs, version, "bin", "python")
        if not os.path.exists(python):
            print(f"*** SKIP: no venv for {version} at {python} "
                  "(bash tests/programs/venv.sh builds it) ***", file=sys.stderr)
            continue
        for program, function, workers, tasks, repeats, how in cases:
            kind, prediction = predicted(opts.gilscope, python, program)
            if how == "joblib":
                speedup = measured_joblib(python, program, function, workers, tasks, repeats,
                                          opts.runs)
            else:
                speedup = measured(opts.gilscope, python, program, function, workers,
                                   f"TASKS = {tasks} * {repeats}", opts.runs)
            if prediction is None:
                print(f"| {version} | {program} | {kind} | none | {speedup:.2f}x | - |")
                misses += 1
                continue
            error = abs(prediction - speedup) / speedup
            misses += error > BAR
            print(f"| {version} | {program} | {kind} | {prediction:.2f}x | {speedup:.2f}x | "
                  f"{error * 100:.0f}% |")
    print(f"\n{misses} outside {BAR:.0%}", file=sys.stderr)


if __name__ == "__main__":
    main()
