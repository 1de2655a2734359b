//! Free-threaded CPython (3.13t), which py-spy cannot read: threads run Python in parallel,
//! and an extension without free-threading support turns the GIL back on.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ensure, run_report, run_report_with, share, threads};
use serde_json::Value;

/// Runs `check` on the report of `workload` (with `args`) for every free-threaded build; a
/// failed check is retried once (shared machines are noisy), never loosened.
fn for_every_free_threaded(
    workload: &str,
    args: impl Fn(&Path) -> Vec<String>,
    check: impl Fn(&Value) -> Result<(), String>,
) {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for version in common::FREE_THREADED {
        let Some(py) = common::python(version) else {
            continue;
        };
        let args = args(&py);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let result = common::retry(2, &format!("{workload} on {version}"), || {
            let (output, report) = run_report_with(&py, workload, &[], &args);
            check(&report)
                .and_then(|_| {
                    ensure(output.status.success(), || {
                        format!("exit {:?}", output.status)
                    })
                })
                .map_err(|e| format!("{e}\n{}", common::summary(&report)))
        });
        if let Err(last) = result {
            panic!("{workload} on CPython {version}: {last}");
        }
    }
}

/// The seed's Fix 6: four pure-Python threads on a free-threaded build run in parallel on
/// both cores (measured 1.9 cores), with no GIL to hold or wait for.
#[test]
fn threads_run_python_in_parallel() {
    for_every_free_threaded(
        "cpu_threads.py",
        |_| vec![],
        |r| {
            ensure(r["target"]["gil"] == "disabled", || "target.gil".into())?;
            ensure(r["target"]["gil_turned_on"].is_null(), || {
                "gil_turned_on".into()
            })?;
            ensure(r["verdict"]["kind"] == "free_threaded", || "verdict".into())?;
            let cores = r["process"]["cpu_cores_used"].as_f64().unwrap();
            let expected = 0.8 * r["process"]["cores"].as_f64().unwrap().min(4.0);
            ensure(cores >= expected, || {
                format!("cores {cores:.2} < {expected:.2}")
            })?;
            let workers = threads(r, "worker");
            ensure(workers.len() == 4, || "expected 4 workers".into())?;
            for w in workers {
                let gil = share(w, &["gil", "gil_wait"]);
                ensure(gil == 0.0, || {
                    format!("{}: gil+gil_wait {gil:.2}", w["name"])
                })?;
                let native = share(w, &["native"]);
                ensure(native >= 0.8, || {
                    format!("{}: native {native:.2} < 0.8", w["name"])
                })?;
            }
            Ok(())
        },
    );
}

/// `gil_ext` (tests/workloads/gil_ext.c), compiled for this interpreter into a fresh
/// directory.
fn compile_gil_ext(py: &Path) -> PathBuf {
    let query = |expr: &str| {
        let out = Command::new(py)
            .args(["-c", &format!("import sysconfig; print({expr})")])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let include = query("sysconfig.get_paths()['include']");
    let suffix = query("sysconfig.get_config_var('EXT_SUFFIX')");
    let dir = tempfile::tempdir().unwrap().keep();
    let status = Command::new("gcc")
        .args(["-shared", "-fPIC", "-I", &include])
        .arg(common::workload("gil_ext.c"))
        .arg("-o")
        .arg(dir.join(format!("gil_ext{suffix}")))
        .status()
        .expect("gcc");
    assert!(status.success(), "compiling gil_ext against {include}");
    dir
}

/// Halfway through, the main thread imports `gil_ext`: the report names it, says when, shows
/// the parallel phase and the contended one, and advises a free-threading build of it or
/// PYTHON_GIL=0.
#[test]
fn an_extension_that_turns_the_gil_back_on_is_named() {
    let dirs = std::sync::Mutex::new(Vec::new());
    for_every_free_threaded(
        "gil_reenabled.py",
        |py| {
            let dir = compile_gil_ext(py);
            dirs.lock().unwrap().push(dir.clone());
            vec!["4".into(), dir.display().to_string()]
        },
        |r| {
            let on = &r["target"]["gil_turned_on"];
            let modules = on["modules"].to_string();
            ensure(modules.contains("\"gil_ext\""), || {
                format!("modules {modules}")
            })?;
            let at = on["at_s"].as_f64().unwrap_or(-1.0);
            ensure((1.0..=3.5).contains(&at), || {
                format!("turned on at {at:.2} s")
            })?;
            let v = &r["verdict"];
            ensure(v["kind"] == "gil_contention", || {
                format!("verdict {}", v["kind"])
            })?;
            let headline = v["headline"].as_str().unwrap();
            ensure(headline.contains("`gil_ext`"), || headline.to_string())?;
            ensure(v["advice"].to_string().contains("PYTHON_GIL=0"), || {
                "advice".into()
            })?;
            let phases: Vec<&str> = v["phases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["kind"].as_str().unwrap())
                .collect();
            ensure(phases == ["free_threaded", "gil_contention"], || {
                format!("phases {phases:?}")
            })?;
            // After the import the workers hold or wait for the GIL.
            for w in threads(r, "worker") {
                let s = share(w, &["gil", "gil_wait"]);
                ensure(s >= 0.25, || {
                    format!("{}: gil+gil_wait {s:.2} < 0.25", w["name"])
                })?;
            }
            Ok(())
        },
    );
    for dir in dirs.into_inner().unwrap() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// With PYTHON_GIL=0 the same import leaves the GIL off: no verdict about it.
#[test]
fn python_gil_0_keeps_it_off() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for version in common::FREE_THREADED {
        let Some(py) = common::python(version) else {
            continue;
        };
        let dir = compile_gil_ext(&py);
        std::env::set_var("PYTHON_GIL", "0");
        let (_, r) = run_report(&py, "gil_reenabled.py", &["3", &dir.display().to_string()]);
        std::env::remove_var("PYTHON_GIL");
        let _ = std::fs::remove_dir_all(dir);
        assert!(r["target"]["gil_turned_on"].is_null(), "{}", r["target"]);
        assert_eq!(r["verdict"]["kind"], "free_threaded");
    }
}

/// How many passes over its log `shared_dict.py` made, from its own last line.
fn passes(output: &std::process::Output) -> Option<f64> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("passes over the log: "))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.trim().parse().ok())
}

/// Four threads counting into one shared dict take turns on the dict's lock: on 3.13.5t they
/// made 9-15 passes in 3 s where a dict per thread made 2,000-3,200. The threads' waits are
/// read from their critical sections (`object_lock`), the line is never "threads help here",
/// and the predicted gain of a dict per thread is a floor that the fixed program beats.
#[test]
fn threads_sharing_a_dict_take_turns_on_its_lock() {
    for_every_free_threaded(
        "shared_dict.py",
        |_| vec!["3".into()],
        |r| {
            ensure(r["verdict"]["kind"] == "object_lock_contention", || {
                format!("verdict {}", r["verdict"]["kind"])
            })?;
            for w in threads(r, "counter") {
                let waiting = share(w, &["object_lock"]);
                ensure(waiting >= 0.6, || {
                    format!("{}: object_lock {waiting:.2} < 0.60", w["name"])
                })?;
            }
            let line = &r["gil_by_line"][0];
            ensure(line["kind"] == "object_locked", || {
                format!("busiest line {line}")
            })?;
            ensure(
                r["hot"]["object_lock"][0]["function"] == "count_words",
                || format!("object-lock sites {}", r["hot"]["object_lock"]),
            )?;
            let evidence = r["verdict"]["evidence"].to_string();
            ensure(evidence.contains("held the lock of a `dict`"), || {
                evidence.clone()
            })?;
            let fix = r["verdict"]["predicted_speedup"]["fix"].as_f64();
            ensure(fix.is_some_and(|x| x >= 2.0), || format!("fix {fix:?}"))
        },
    );
}

/// The fix the verdict gives (a dict per thread) runs in parallel with no object-lock waits,
/// at least as much faster as predicted.
#[test]
fn a_dict_per_thread_runs_in_parallel_and_beats_the_prediction() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for version in common::FREE_THREADED {
        let Some(py) = common::python(version) else {
            continue;
        };
        let (shared_out, shared) = run_report(&py, "shared_dict.py", &["3"]);
        let (own_out, own) = run_report(&py, "shared_dict.py", &["3", "--per-thread"]);
        assert_eq!(
            own["verdict"]["kind"],
            "free_threaded",
            "{}",
            common::summary(&own)
        );
        for w in threads(&own, "counter") {
            assert!(
                share(w, &["object_lock"]) < 0.05,
                "{}",
                common::summary(&own)
            );
        }
        let measured = passes(&own_out).unwrap() / passes(&shared_out).unwrap().max(1.0);
        let predicted = shared["verdict"]["predicted_speedup"]["fix"]
            .as_f64()
            .unwrap_or(f64::INFINITY);
        assert!(
            predicted <= measured,
            "CPython {version}: predicted {predicted:.1}x, measured {measured:.1}x"
        );
    }
}

/// Attached to while it runs, the way a service is profiled: the same verdict.
#[test]
fn attach_sees_object_lock_contention_in_a_running_program() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for version in common::FREE_THREADED {
        let Some(py) = common::python(version) else {
            continue;
        };
        let mut target = Command::new(&py)
            .arg(common::workload("shared_dict.py"))
            .arg("6")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("report.json");
        let status = common::gilscope()
            .args(["attach", "-q", "--duration", "2.5", "--json"])
            .arg(&json)
            .arg(target.id().to_string())
            .status()
            .unwrap();
        let _ = target.wait();
        assert!(status.success(), "attach: {status:?}");
        let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(
            report["verdict"]["kind"],
            "object_lock_contention",
            "CPython {version}:\n{}",
            common::summary(&report)
        );
    }
}

/// The program's own `threading.Lock` is not an object's lock: it stays lock contention.
#[test]
fn a_programs_own_lock_stays_lock_contention() {
    for_every_free_threaded(
        "lock_sleep.py",
        |_| vec![],
        |r| {
            ensure(r["verdict"]["kind"] == "lock_contention", || {
                format!("verdict {}", r["verdict"]["kind"])
            })?;
            for w in threads(r, "worker") {
                let object = share(w, &["object_lock"]);
                ensure(object < 0.05, || {
                    format!("{}: object_lock {object:.2}", w["name"])
                })?;
            }
            Ok(())
        },
    );
}

/// The GIL turned on in a worker process, not in the root: the worker's entry in `processes[]`
/// names the module, and the verdict, judged on the worker (the busiest process), is its
/// threads' contention on the GIL that came back.
#[test]
fn an_extension_that_turns_the_gil_on_in_a_worker_process_is_named() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for version in common::FREE_THREADED {
        let Some(py) = common::python(version) else {
            continue;
        };
        let dir = compile_gil_ext(&py);
        let ext = dir.display().to_string();
        let checked = common::retry(2, version, || {
            let (_, r) =
                run_report_with(&py, "gil_in_worker.py", &["--subprocesses"], &["4", &ext]);
            let check = || -> Result<(), String> {
                ensure(r["target"]["gil_turned_on"].is_null(), || {
                    format!("the root's GIL came on: {}", r["target"])
                })?;
                let processes = r["processes"].as_array().ok_or("no processes")?;
                let on: Vec<&Value> = processes
                    .iter()
                    .filter(|p| !p["gil_turned_on"].is_null())
                    .collect();
                ensure(on.len() == 1, || {
                    format!("{} processes turned it on", on.len())
                })?;
                let modules = on[0]["gil_turned_on"]["modules"].to_string();
                ensure(modules.contains("\"gil_ext\""), || {
                    format!("modules {modules}")
                })?;
                ensure(on[0]["pid"] != r["target"]["pid"], || "the root".into())?;
                let v = &r["verdict"];
                ensure(v["kind"] == "gil_contention", || {
                    format!("verdict {}", v["kind"])
                })?;
                let headline = v["headline"].as_str().unwrap_or_default();
                ensure(headline.contains("`gil_ext`"), || headline.to_string())
            };
            check().map_err(|e| format!("{e}\n{}", common::summary(&r)))
        });
        let _ = std::fs::remove_dir_all(dir);
        if let Err(last) = checked {
            panic!("CPython {version}: {last}");
        }
    }
}

/// Four threads appending to one shared list take turns on the list's lock at the append.
#[test]
fn threads_appending_to_a_shared_list_take_turns_on_its_lock() {
    for_every_free_threaded(
        "shared_list.py",
        |_| vec!["3".into()],
        |r| {
            ensure(r["verdict"]["kind"] == "object_lock_contention", || {
                format!("verdict {}", r["verdict"]["kind"])
            })?;
            for w in threads(r, "parser") {
                let waiting = share(w, &["object_lock"]);
                ensure(waiting >= 0.3, || {
                    format!("{}: object_lock {waiting:.2} < 0.30", w["name"])
                })?;
            }
            let evidence = r["verdict"]["evidence"].to_string();
            ensure(evidence.contains("held the lock of a `list`"), || {
                evidence.clone()
            })?;
            let line = &r["gil_by_line"][0];
            ensure(
                line["kind"] == "object_locked"
                    && line["source"]
                        .as_str()
                        .is_some_and(|s| s.contains("append")),
                || format!("busiest line {line}"),
            )
        },
    );
}
