//! `gilscope record` then `gilscope report` reproduces the live report exactly.

mod common;

#[test]
fn replay_reproduces_the_live_report() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let py = common::any_python();
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("run.gilscope");
    let live = dir.path().join("live.json");
    let replayed = dir.path().join("replayed.json");
    let status = common::gilscope()
        .arg("record")
        .arg("-o")
        .arg(&recording)
        .arg("--json")
        .arg(&live)
        .arg("-q")
        .arg("--")
        .arg(&py)
        .arg(common::workload("mixed_cpu_native.py"))
        .arg("1.5")
        .status()
        .unwrap();
    assert!(status.success());
    let status = common::gilscope()
        .arg("report")
        .arg(&recording)
        .arg("--json")
        .arg(&replayed)
        .arg("-q")
        .status()
        .unwrap();
    assert!(status.success());
    let live: serde_json::Value = serde_json::from_slice(&std::fs::read(&live).unwrap()).unwrap();
    let replayed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&replayed).unwrap()).unwrap();
    assert!(live["samples"].as_u64().unwrap() > 50);
    assert_eq!(live, replayed);
}

/// The same for a process tree: every process's records replay into the same report.
#[test]
fn replay_reproduces_a_process_tree() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let py = common::any_python();
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("tree.gilscope");
    let live = dir.path().join("live.json");
    let replayed = dir.path().join("replayed.json");
    let status = common::gilscope()
        .args(["record", "--subprocesses", "-q", "-o"])
        .arg(&recording)
        .arg("--json")
        .arg(&live)
        .arg("--")
        .arg(&py)
        .arg(common::workload("pool_good.py"))
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
    let live: serde_json::Value = serde_json::from_slice(&std::fs::read(&live).unwrap()).unwrap();
    let replayed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&replayed).unwrap()).unwrap();
    assert!(
        live["processes"].as_array().unwrap().len() >= 3,
        "{}",
        live["processes"]
    );
    assert_eq!(live, replayed);
}
