//! `gilscope diff` on two recordings of the same fixed work (`tests/workloads/cpu_twin.py`,
//! CPython 3.12, 2 cores): four threads, then a four-process pool. Made with
//! `gilscope record -o tests/recordings/twin_threads.gilscope -- python3.12
//! tests/workloads/cpu_twin.py threads 6000000`, and `--subprocesses` with `processes`.

mod common;

use std::path::Path;

use gilscope::diagnosis::VerdictKind;
use gilscope::diff::{compare, Fix, SpeedupNote, SCHEMA};
use gilscope::model::ThreadState;
use gilscope::report::{self, Report};
use serde_json::Value;

fn report_of(name: &str) -> Report {
    let analysis = gilscope::recording::replay(&common::recording(name)).unwrap();
    report::diagnosed(&analysis)
}

#[test]
fn threads_to_processes_shows_the_verdict_change_and_the_gain() {
    let (before, after) = (report_of("twin_threads"), report_of("twin_processes"));
    let diff = compare(&before, "before", &after, "after");
    assert_eq!(diff.schema, SCHEMA);
    let kind = |side: &gilscope::diff::Side| side.verdict.as_ref().unwrap().kind;
    assert_eq!(kind(&diff.before), VerdictKind::GilContention);
    assert_eq!(kind(&diff.after), VerdictKind::PoolParallel);
    assert_eq!(diff.before.processes, 1);
    assert!(diff.after.processes >= 5, "{}", diff.after.processes);
    assert!(
        diff.before.states[ThreadState::GilWait] > 0.4,
        "{:?}",
        diff.before.states
    );
    assert!(
        diff.after.states[ThreadState::GilWait] < 0.05,
        "{:?}",
        diff.after.states
    );
    assert!(diff.after.cpu_cores_used > diff.before.cpu_cores_used + 0.5);

    let s = &diff.speedup;
    assert_eq!(s.fix, Fix::Processes);
    let (measured, predicted) = (s.measured.unwrap(), s.predicted.unwrap());
    assert!(
        (measured - before.duration_s / after.duration_s).abs() < 1e-9,
        "{measured}"
    );
    assert!((1.3..=2.2).contains(&measured), "{measured}");
    assert!(
        (measured - predicted).abs() / measured <= 0.25,
        "the prediction {predicted} is within 25% of the measured {measured}"
    );
    assert!(s.notes.is_empty(), "{:?}", s.notes);

    let first = &diff.changes[0];
    assert_eq!(first.function, "work.<locals>.<genexpr>");
    assert!(first.waiting_s.before > 2.0, "{first:?}");
    assert!(first.waiting_s.after < 0.1, "{first:?}");
    let sizes: Vec<f64> = diff
        .changes
        .iter()
        .map(|c| c.held_s.change().abs() + c.waiting_s.change().abs())
        .collect();
    assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
}

#[test]
fn a_run_not_ended_by_its_exit_measures_no_gain() {
    let before = report_of("twin_threads");
    let mut after = report_of("twin_threads");
    after.exit = None;
    let diff = compare(&before, "before", &after, "after");
    assert_eq!(diff.speedup.measured, None);
    assert!(diff.speedup.notes.contains(&SpeedupNote::NotRunToExit));
    assert_eq!(diff.speedup.fix, Fix::Threads);
    assert!(diff.changes.is_empty(), "the same run changed nothing");
}

fn run_diff(before: &Path, after: &Path, json: &Path) -> (std::process::Output, Value) {
    let output = common::gilscope()
        .arg("diff")
        .arg(before)
        .arg(after)
        .arg("--json")
        .arg(json)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(json).unwrap();
    (output, serde_json::from_str(&text).unwrap())
}

/// From the command line, recordings and JSON reports give the same comparison.
#[test]
fn the_command_reads_recordings_and_json_reports_alike() {
    let dir = tempfile::tempdir().unwrap();
    let (before, after) = (
        common::recording("twin_threads"),
        common::recording("twin_processes"),
    );
    let (output, from_recordings) = run_diff(&before, &after, &dir.path().join("a.json"));
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("gil_contention    pool_parallel"), "{text}");
    assert!(text.contains("Speedup: measured 1."), "{text}");
    assert!(
        text.contains("for processes by the first run's verdict"),
        "{text}"
    );
    assert_eq!(from_recordings["schema"], "gilscope.diff/1");
    assert_eq!(
        from_recordings["before"]["verdict"]["kind"],
        "gil_contention"
    );
    assert_eq!(from_recordings["after"]["verdict"]["kind"], "pool_parallel");

    let mut reports = Vec::new();
    for (name, path) in [("before", &before), ("after", &after)] {
        let json = dir.path().join(format!("{name}.report.json"));
        let status = common::gilscope()
            .args(["report", "-q", "--json"])
            .arg(&json)
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
        reports.push(json);
    }
    let (_, mut from_reports) = run_diff(&reports[0], &reports[1], &dir.path().join("b.json"));
    let mut expected = from_recordings.clone();
    for side in ["before", "after"] {
        expected[side]["source"] = Value::Null;
        from_reports[side]["source"] = Value::Null;
    }
    assert_eq!(from_reports, expected);
}

#[test]
fn a_file_that_is_not_a_run_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("bench.json");
    std::fs::write(&bench, r#"{"schema": "gilscope.bench/1"}"#).unwrap();
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    for (file, says) in [
        (&readme, "neither a recording nor JSON"),
        (&bench, "a gilscope.bench/1 file, not a report"),
    ] {
        let output = common::gilscope()
            .arg("diff")
            .arg(file)
            .arg(common::recording("twin_threads"))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(says) && stderr.contains("hint:"),
            "{stderr}"
        );
    }
}
