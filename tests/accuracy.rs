//! Accuracy against ground truth, live on every required CPython: workloads that time their
//! own phases (bench/workloads/truth.py) against gilscope's fractions for the same thread.
//! Measured errors are at most 2-3 percentage points (bench/accuracy.py, BENCHMARKS.md); the
//! tests allow 5 for a loaded shared machine.

mod common;

use std::process::Command;

use common::{ensure, gilscope, python, REQUIRED};
use serde_json::Value;

const TOLERANCE: f64 = 0.05;

fn truth_script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/workloads/truth.py")
}

/// Runs one truth workload under gilscope: (truth by thread name, report).
fn run(py: &std::path::Path, mode: &str) -> (Value, Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let output = gilscope()
        .args(["run", "-q", "--json"])
        .arg(&json)
        .arg("--")
        .arg(py)
        .arg(truth_script())
        .args([mode, "2"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let truth = serde_json::from_str(stdout.lines().last().unwrap_or("{}")).unwrap();
    let report = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    (truth, report)
}

/// Every state of every timed thread within [`TOLERANCE`] of the truth (absent states: 0).
fn check(truth: &Value, report: &Value) -> Result<(), String> {
    let truth = truth.as_object().ok_or("no truth printed")?;
    ensure(!truth.is_empty(), || "no truth printed".into())?;
    for (name, true_states) in truth {
        let thread = report["threads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name.as_str())
            .ok_or_else(|| format!("thread {name} not in the report"))?;
        for (state, measured) in thread["states"].as_object().unwrap() {
            let measured = measured.as_f64().unwrap();
            let expected = true_states[state].as_f64().unwrap_or(0.0);
            ensure((measured - expected).abs() <= TOLERANCE, || {
                format!("{name} {state}: measured {measured:.3}, true {expected:.3}")
            })?;
        }
    }
    Ok(())
}

fn on_every_version(mode: &str) {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut failures = Vec::new();
    for version in REQUIRED {
        let Some(py) = python(version) else { continue };
        // One retry on a noisy machine, never a looser bound.
        let checked = common::retry(2, &format!("{mode} on {version}"), || {
            let (truth, report) = run(&py, mode);
            check(&truth, &report)
        });
        if let Err(last) = checked {
            failures.push(format!("CPython {version}: {last}"));
        }
    }
    assert!(failures.is_empty(), "{mode}:\n{}", failures.join("\n"));
}

/// 30 ms holding the GIL in a busy loop, 70 ms asleep.
#[test]
fn duty_cycle_matches_the_truth() {
    on_every_version("duty");
}

/// Two duty cycles 50 ms apart: they never overlap, so neither waits for the GIL.
#[test]
fn phase_shifted_threads_match_the_truth() {
    on_every_version("shifted");
}

/// 50 ms of hashlib (GIL released), 50 ms blocked in recv.
#[test]
fn native_and_io_match_the_truth() {
    on_every_version("native_io");
}

/// The truth script itself runs (a broken workload would make the tests above vacuous).
#[test]
fn truth_script_prints_fractions_that_sum_to_one() {
    let py = common::any_python();
    let out = Command::new(py)
        .arg(truth_script())
        .args(["duty", "0.3"])
        .output()
        .unwrap();
    let truth: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sum: f64 = truth["worker-0"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 0.02, "{truth}");
}
