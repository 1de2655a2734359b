//! `gilscope record` then `gilscope report` reproduces the live report exactly.

mod common;

use serde_json::Value;

/// Records `workload` (1.5 s) with `options`, reports the recording, and returns both JSONs.
fn live_and_replayed(workload: &str, options: &[&str]) -> (Value, Value) {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("run.gilscope");
    let live = dir.path().join("live.json");
    let replayed = dir.path().join("replayed.json");
    let status = common::gilscope()
        .args(["record", "-q", "-o"])
        .arg(&recording)
        .arg("--json")
        .arg(&live)
        .args(options)
        .arg("--")
        .arg(common::any_python())
        .arg(common::workload(workload))
        .arg("1.5")
        .status()
        .unwrap();
    assert!(status.success());
    let status = common::gilscope()
        .args(["report", "-q", "--json"])
        .arg(&replayed)
        .arg(&recording)
        .status()
        .unwrap();
    assert!(status.success());
    let read = |path| serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    (read(&live), read(&replayed))
}

#[test]
fn replay_reproduces_the_live_report() {
    let (live, replayed) = live_and_replayed("mixed_cpu_native.py", &[]);
    assert!(live["samples"].as_u64().unwrap() > 50);
    assert_eq!(live, replayed);
}

/// The same for a process tree: every process's records replay into the same report.
#[test]
fn replay_reproduces_a_process_tree() {
    let (live, replayed) = live_and_replayed("pool_good.py", &["--subprocesses"]);
    assert!(
        live["processes"].as_array().unwrap().len() >= 3,
        "{}",
        live["processes"]
    );
    assert_eq!(live, replayed);
}
