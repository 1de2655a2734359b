//! The thread state's own status (3.13+), read at fixed offsets per release
//! (`PyThreadState.state` at 40, 44 and 48 in 3.13, 3.14 and 3.15, from the headers'
//! `offsetof`), checked against what the interpreter shows of itself: on a build with a GIL a
//! thread is attached exactly while it holds the GIL, so each thread's attached share must
//! match its GIL share; on a free-threaded build a thread running Python is attached, and the
//! collector's stop-the-world pauses suspend the others.

mod common;

use common::{ensure, run_report, share, threads};

/// The releases whose thread states have a status.
const WITH_STATUS: [&str; 3] = ["3.13", "3.14", "3.15"];

#[test]
fn a_thread_is_attached_while_it_holds_the_gil() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for version in WITH_STATUS {
        let Some(py) = common::python(version) else {
            continue;
        };
        let check = |r: &serde_json::Value| -> Result<(), String> {
            let workers = threads(r, "worker");
            ensure(workers.len() == 4, || "expected 4 workers".into())?;
            for w in workers {
                let attached = w["attached"].as_f64().ok_or("no attached share")?;
                let gil = share(w, &["gil"]);
                ensure((attached - gil).abs() <= 0.1, || {
                    format!("{}: attached {attached:.2}, gil {gil:.2}", w["name"])
                })?;
                ensure(attached >= 0.1, || {
                    format!("{}: attached {attached:.2}", w["name"])
                })?;
            }
            let main = &threads(r, "MainThread")[0];
            let attached = main["attached"].as_f64().ok_or("no attached share")?;
            ensure(attached <= 0.1, || {
                format!("MainThread (in join) attached {attached:.2}")
            })
        };
        let result = common::retry(2, &format!("cpu_threads.py on {version}"), || {
            let (_, report) = run_report(&py, "cpu_threads.py", &["2"]);
            check(&report).map_err(|e| format!("{e}\n{}", common::summary(&report)))
        });
        if let Err(last) = result {
            panic!("CPython {version}: {last}");
        }
    }
}

#[test]
fn versions_before_3_13_report_no_status() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(py) = common::python("3.12") else {
        return;
    };
    let (_, report) = run_report(&py, "cpu_threads.py", &["1"]);
    for t in report["threads"].as_array().into_iter().flatten() {
        assert!(t.get("attached").is_none(), "{t}");
    }
    assert!(report["process"].get("world_stopped").is_none());
}

#[test]
fn free_threaded_threads_running_python_are_attached_and_collections_stop_the_world() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for version in common::FREE_THREADED {
        let Some(py) = common::python(version) else {
            continue;
        };
        let (_, report) = run_report(&py, "cpu_threads.py", &["2"]);
        for w in threads(&report, "worker") {
            let attached = w["attached"].as_f64().unwrap_or(0.0);
            assert!(attached >= 0.8, "{}", common::summary(&report));
        }
        let (_, report) = run_report(&py, "gc_heavy.py", &["3"]);
        let stopped = report["process"]["world_stopped"].as_f64().unwrap_or(0.0);
        let gc = report["process"]["gc_collecting"].as_f64().unwrap_or(0.0);
        assert!(
            stopped >= 0.1 && stopped <= gc + 0.1,
            "CPython {version}: world stopped {stopped:.2}, collecting {gc:.2}"
        );
    }
}
