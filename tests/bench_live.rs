//! `gilscope bench` on real interpreters: the answers every article gives, measured, and each
//! real-life failure as a one-line error with its hint.

mod common;

use std::path::Path;
use std::process::Output;

use serde_json::Value;

fn bench(python: &Path, args: &[&str]) -> (Output, Option<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let output = common::gilscope()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("bench")
        .args(args)
        .arg("--python")
        .arg(python)
        .arg("--export-json")
        .arg(&json)
        .output()
        .unwrap();
    let report = std::fs::read(&json)
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap());
    (output, report)
}

fn row<'a>(report: &'a Value, mode: &str) -> &'a Value {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["mode"] == mode)
        .unwrap()
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

/// How `ProcessPoolExecutor` starts its workers by default on CPython `version`: `fork` up to
/// 3.13, `forkserver` from 3.14, which starts each worker as a fresh interpreter, on demand
/// (measured here: 0.3-0.4 s a worker on the Debian 3.14 and 3.15 builds, which ship no
/// bytecode caches, where the environment sets `PYTHONDONTWRITEBYTECODE`; see BENCHMARKS.md).
fn forkserver_default(version: &str) -> bool {
    let minor: u32 = version[2..].trim_end_matches('t').parse().unwrap_or(0);
    minor >= 14
}

/// Runs `check` on every required interpreter, with its version; a failed check is retried,
/// up to three attempts in all (the machine is shared: a CI run here once measured processes at
/// 1.09x sequential while using 1.94 cores, a host that was not giving both cores), never
/// loosened.
fn on_every_version(args: &[&str], check: impl Fn(&str, &Value) -> Result<(), String>) {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut failures = Vec::new();
    for version in common::REQUIRED {
        let Some(py) = common::python(version) else {
            continue;
        };
        let checked = common::retry(3, version, || {
            let (output, report) = bench(&py, args);
            let result = match (&report, output.status.success()) {
                (Some(r), true) => check(version, r),
                _ => Err(String::from_utf8_lossy(&output.stderr).into_owned()),
            };
            result.map_err(|e| format!("{e}\n{}", String::from_utf8_lossy(&output.stdout)))
        });
        if let Err(last) = checked {
            failures.push(format!("CPython {version}: {last}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The classic pure-Python function: processes beat threads by at least 1.5x (measured about
/// 1.8x on 2 cores), and threads do not run in parallel.
#[test]
fn cpu_bound_function_needs_processes() {
    on_every_version(
        &[
            "examples/work.py:cpu_work",
            "1500000",
            "--tasks",
            "8",
            "--runs",
            "3",
        ],
        |version, r| {
            let (seq, thr, pro) = (row(r, "sequential"), row(r, "threads"), row(r, "processes"));
            let ratio = f(thr, "median_s") / f(pro, "median_s");
            // Under forkserver the workers' start-up (measured 0.3-0.4 s each) eats this 0.7 s
            // of work: processes measured 0.8-0.97x threads on 3.14 and 3.15. The bench must
            // say why, and subinterpreters (3.14+) must show the parallel win instead (measured
            // 1.2-1.5x sequential).
            if forkserver_default(version) {
                let warned = r["warnings"].to_string().contains("forkserver");
                common::ensure(warned, || "no forkserver warning".into())?;
                let interpreters = f(row(r, "interpreters"), "median_s");
                let ratio = f(thr, "median_s") / interpreters;
                common::ensure(ratio >= 1.1, || {
                    format!("interpreters only {ratio:.2}x faster than threads")
                })?;
            } else {
                common::ensure(ratio >= 1.5, || {
                    format!("processes only {ratio:.2}x faster than threads")
                })?;
            }
            // Threads do not run in parallel: one core's worth of CPU, and no parallel gain.
            // The time alone does not tell it on 3.9, whose two threads can run these loops
            // up to 1.2x faster than its main thread does, with or without gilscope (CI:
            // 1.19x in three runs out of three while the threads used 1.00 cores).
            let threads_cores = f(thr, "cores_used");
            common::ensure(threads_cores <= 1.15, || {
                format!("threads used {threads_cores:.2} cores")
            })?;
            let threads_speedup = f(thr, "speedup");
            common::ensure(threads_speedup <= 1.3, || {
                format!("threads {threads_speedup:.2}x faster than sequential")
            })?;
            common::ensure(f(thr, "gil_held") >= 0.8, || "threads: GIL held".into())?;
            common::ensure([seq, thr, pro].iter().all(|x| x["correct"] == true), || {
                "correctness".into()
            })?;
            // From 3.14, subinterpreters run in parallel too.
            let recommended = &r["recommendation"]["mode"];
            common::ensure(
                recommended == "processes" || recommended == "interpreters",
                || format!("recommendation {recommended}"),
            )?;
            common::ensure(
                r["recommendation"]["threads_verdict"]
                    .as_str()
                    .unwrap_or("")
                    .contains("gil_contention"),
                || "the threaded run's verdict".into(),
            )
        },
    );
}

/// hashlib releases the GIL: threads and processes are both faster than sequential (measured
/// about 1.9x each) and close to each other.
#[test]
fn native_function_threads_already_work() {
    on_every_version(
        &[
            "examples/work.py:hash_work",
            "48",
            "--tasks",
            "8",
            "--runs",
            "3",
        ],
        |version, r| {
            let (thr, pro) = (row(r, "threads"), row(r, "processes"));
            let (ts, ps) = (f(thr, "speedup"), f(pro, "speedup"));
            common::ensure(ts >= 1.4, || format!("threads {ts:.2}x"))?;
            if forkserver_default(version) {
                // 0.3 s of hashing cannot pay for forkserver's start-up: threads must win.
                return common::ensure(ts > ps, || format!("threads {ts:.2}x, processes {ps:.2}x"));
            }
            common::ensure(ps >= 1.4, || format!("processes {ps:.2}x"))?;
            let ratio = ts / ps;
            common::ensure((0.75..=1.33).contains(&ratio), || {
                format!("threads/processes {ratio:.2}")
            })
        },
    );
}

/// Waiting: with 8 workers, threads beat sequential by at least 3x (ideal 8x).
#[test]
fn io_function_threads_win() {
    on_every_version(
        &[
            "examples/work.py:io_work",
            "0.05",
            "--tasks",
            "16",
            "--workers",
            "8",
            "--runs",
            "3",
            "--modes",
            "sequential,threads",
        ],
        |_, r| {
            let s = f(row(r, "threads"), "speedup");
            common::ensure(s >= 3.0, || {
                format!("threads only {s:.2}x faster than sequential")
            })
        },
    );
}

fn one_error_line(output: &Output, needle: &str, hint: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(
        lines[0].starts_with("gilscope: error: ") && lines[0].contains(needle),
        "{needle:?} not in {stderr}"
    );
    assert!(lines[0].contains(hint), "{hint:?} not in {stderr}");
    assert!(!stderr.contains("Traceback"));
}

fn failure(args: &[&str]) -> (Output, Option<Value>) {
    // One live run at a time, as everywhere: timings must not compete for the two cores.
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let py = common::any_python();
    let mut all = args.to_vec();
    all.extend(["--runs", "1", "--warmup", "0", "--no-evidence"]);
    if !args.contains(&"--tasks-from") && !args.contains(&"--tasks") {
        all.extend(["--tasks", "2"]);
    }
    bench(&py, &all)
}

#[test]
fn unpicklable_functions() {
    for target in [
        "tests/bench_targets/cases.py:square",
        "tests/bench_targets/cases.py:nested",
    ] {
        let (output, report) = failure(&[target, "3"]);
        one_error_line(
            &output,
            "cannot be sent to worker processes",
            "top level of a module",
        );
        let report = report.unwrap();
        assert_eq!(
            row(&report, "threads")["correct"],
            true,
            "the other modes still ran"
        );
    }
}

#[test]
fn function_that_raises() {
    let (output, _) = failure(&["tests/bench_targets/cases.py:boom", "3"]);
    one_error_line(
        &output,
        "the function raised ValueError: boom 3",
        "fix the function",
    );
}

#[test]
fn task_that_hangs() {
    let (output, _) = failure(&["tests/bench_targets/cases.py:hang", "1", "--timeout", "2"]);
    one_error_line(&output, "took longer than --timeout 2 s", "raise --timeout");
}

#[test]
fn results_that_cannot_be_pickled_back() {
    let (output, _) = failure(&["tests/bench_targets/cases.py:lock_result", "1"]);
    one_error_line(
        &output,
        "results cannot be pickled back",
        "return plain data",
    );
}

#[test]
fn large_arguments_are_measured() {
    let (output, _) = failure(&[
        "tests/bench_targets/cases.py:size",
        "--tasks-from",
        "tests/bench_targets/cases.py:BIG",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("each task's arguments pickle to 2.1 MB"),
        "{stdout}"
    );
    assert!(stdout.contains("shared_memory"), "{stdout}");
}

#[test]
fn missing_main_guard_is_pointed_out() {
    // Its import deadlocks (a fork pool started mid-import): the run times out, and the
    // warning, read from the file without importing it, names the line.
    let (output, _) = failure(&[
        "tests/bench_targets/unguarded.py:work",
        "3",
        "--timeout",
        "10",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("unguarded.py runs code at import (line 9)"),
        "{stdout}"
    );
    assert!(stdout.contains(r#"if __name__ == "__main__":"#), "{stdout}");
}

#[test]
fn bad_target_spec() {
    let output = common::gilscope()
        .args(["bench", "work.py", "3"])
        .output()
        .unwrap();
    one_error_line(&output, "FILE.py:FUNCTION", "gilscope --help");
}

/// `asyncio.to_thread`, asked for: as fast as threads on waiting work.
#[test]
fn asyncio_mode_when_asked() {
    let (output, report) = failure(&[
        "examples/work.py:io_work",
        "0.1",
        "--modes",
        "sequential,asyncio",
        "--workers",
        "8",
        "--tasks",
        "8",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = report.unwrap();
    let asyncio = row(&report, "asyncio");
    assert_eq!(asyncio["correct"], true);
    assert!(f(asyncio, "speedup") >= 3.0, "{asyncio}");
}

/// A free-threaded build runs the pure-Python function in threads in parallel: threads beat
/// sequential (measured 1.8x on 2 cores), and the rows say the build is free-threaded.
#[test]
fn free_threaded_threads_scale() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for version in common::FREE_THREADED {
        let Some(py) = common::python(version) else {
            continue;
        };
        let args = [
            "examples/work.py:cpu_work",
            "1500000",
            "--tasks",
            "8",
            "--runs",
            "3",
            "--modes",
            "sequential,threads",
        ];
        let checked = common::retry(3, version, || {
            let (output, report) = bench(&py, &args);
            let Some(r) = report else {
                return Err(String::from_utf8_lossy(&output.stderr).into_owned());
            };
            let speedup = f(row(&r, "threads"), "speedup");
            let labelled = r["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|row| row["free_threaded"] == true);
            let stdout = String::from_utf8_lossy(&output.stdout);
            common::ensure(
                speedup >= 1.4 && labelled && stdout.contains("free-threaded"),
                || format!("threads {speedup:.2}x, labelled {labelled}\n{stdout}"),
            )
        });
        if let Err(last) = checked {
            panic!("CPython {version}: {last}");
        }
    }
}

/// `--scaling` on a free-threaded build: pure-Python tasks scale from 1 to 2 threads, and tasks
/// that share one dict do not, with gilscope's reading of each threaded run beside it.
#[test]
fn free_threaded_scaling_says_where_threads_stop() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for version in common::FREE_THREADED {
        let Some(py) = common::python(version) else {
            continue;
        };
        let threads_at = |r: &Value, workers: u64| -> Value {
            r["results"]
                .as_array()
                .unwrap()
                .iter()
                .find(|row| row["mode"] == "threads" && row["workers"] == workers)
                .cloned()
                .unwrap_or_else(|| panic!("no threads row with {workers} workers in {r}"))
        };
        let scaling = [
            "--tasks",
            "8",
            "--scaling",
            "--workers",
            "2",
            "--runs",
            "2",
            "--modes",
            "sequential,threads",
        ];
        let checked = common::retry(3, version, || {
            let args = [&["examples/work.py:cpu_work", "1500000"][..], &scaling].concat();
            let (output, report) = bench(&py, &args);
            let Some(r) = report else {
                return Err(String::from_utf8_lossy(&output.stderr).into_owned());
            };
            let two = threads_at(&r, 2);
            let stdout = String::from_utf8_lossy(&output.stdout);
            common::ensure(
                r["scaling"] == true
                    && threads_at(&r, 1)["verdict"] == "free_threaded"
                    && two["verdict"] == "free_threaded"
                    && f(&two, "speedup") >= 1.4
                    && stdout.contains("per worker"),
                || stdout.into_owned(),
            )
        });
        if let Err(last) = checked {
            panic!("cpu_work on CPython {version}:\n{last}");
        }

        let args = [
            &["examples/work.py:count_shared", "30000"][..],
            &scaling[..5],
            &["--runs", "1", "--modes", "sequential,threads"],
        ]
        .concat();
        let (output, report) = bench(&py, &args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let r = report.unwrap_or_else(|| panic!("no report: {stdout}"));
        let two = threads_at(&r, 2);
        assert_eq!(two["verdict"], "object_lock_contention", "{stdout}");
        assert!(f(&two, "speedup") < 0.5, "{stdout}");
        let text = r["recommendation"]["text"].as_str().unwrap_or_default();
        assert!(
            text.contains("take turns on the lock of an object"),
            "{text}"
        );
    }
}
