//! `run --fail-on` and `--max-gil-wait`: the report as usual, then the gate's exit status (3)
//! when it trips, the target's own otherwise.

mod common;

use std::process::Output;

fn run_gated(options: &[&str]) -> (Output, serde_json::Value) {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let py = common::any_python();
    common::run_report_with(&py, "cpu_threads.py", options, &["1.5"])
}

#[test]
fn fail_on_trips_on_its_verdict_only() {
    let (output, report) = run_gated(&["--fail-on", "io_bound,gil_contention"]);
    assert_eq!(report["verdict"]["kind"], "gil_contention");
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("gate: the verdict is gil_contention"),
        "{stderr}"
    );

    let (output, report) = run_gated(&["--fail-on", "io_bound"]);
    assert_eq!(report["verdict"]["kind"], "gil_contention");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
}

#[test]
fn max_gil_wait_trips_above_its_share() {
    // Four GIL-bound threads each wait about 70% of their time (live_workloads.rs).
    let (output, _) = run_gated(&["--max-gil-wait", "0.2"]);
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("more than --max-gil-wait 0.2"));
    let (output, _) = run_gated(&["--max-gil-wait", "1"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
}

#[test]
fn a_bad_gate_is_refused_before_anything_runs() {
    for (option, value) in [("--fail-on", "gil"), ("--max-gil-wait", "1.5")] {
        let output = common::gilscope()
            .args(["run", option, value, "--", "python3", "-c", "pass"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{option} {value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("expected"), "{stderr}");
    }
}

#[test]
fn the_gate_reads_a_recording_the_same_way() {
    let gated = |options: &[&str]| {
        common::gilscope()
            .arg("report")
            .arg(common::recording("cpu_threads"))
            .arg("-q")
            .args(options)
            .output()
            .unwrap()
    };
    let tripped = gated(&["--fail-on", "gil_contention"]);
    assert_eq!(tripped.status.code(), Some(3), "{tripped:?}");
    assert!(String::from_utf8_lossy(&tripped.stderr)
        .contains("gate: the verdict is gil_contention, listed in --fail-on"));
    let passed = gated(&["--fail-on", "io_bound"]);
    assert_eq!(passed.status.code(), Some(0), "{passed:?}");
}

#[test]
fn attach_creates_the_ready_file_once_it_samples() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut target = std::process::Command::new(common::any_python())
        .args(["-c", "import time; time.sleep(20)"])
        .spawn()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let json = dir.path().join("report.json");
    let mut sampler = common::gilscope()
        .args(["attach", "-q", "--duration", "1.5", "--ready-file"])
        .arg(&ready)
        .arg("--json")
        .arg(&json)
        .arg(target.id().to_string())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ready.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Sampling has begun and goes on: the file comes before the report.
    let ready_before_report = ready.exists() && !json.exists();
    let status = sampler.wait().unwrap();
    target.kill().unwrap();
    target.wait().unwrap();
    assert!(status.success());
    assert!(
        ready_before_report,
        "the ready file did not come before the report"
    );
}
