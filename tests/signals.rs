//! Signals and the target's safety: Ctrl-C during `attach` ends sampling, prints the report and
//! leaves the target running; `--blocking` never leaves the target paused, even when gilscope
//! is killed.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Python target that counts forever and prints its count when asked (SIGUSR1).
const COUNTER: &str = r#"
import signal, sys, threading
count = 0
def report(*_):
    print(count, flush=True)
signal.signal(signal.SIGUSR1, report)
def spin():
    global count
    while True:
        count += 1
t = threading.Thread(target=spin, daemon=True, name="spinner")
t.start()
print("ready", flush=True)
while True:
    t.join(1)
"#;

struct Target(Child);

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_target() -> Target {
    let py = common::any_python();
    let mut child = Command::new(py)
        .args(["-c", COUNTER])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    Target(child)
}

/// The target's state letter from /proc (R, S, T for stopped, t for traced...).
fn run_state(pid: u32) -> Vec<char> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.ok()?.path().join("stat")).ok()?;
            stat.rsplit(')').next()?.trim().chars().next()
        })
        .collect()
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn signal(pid: u32, sig: i32) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn ctrl_c_during_attach_reports_and_leaves_the_target_running() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let target = start_target();
    let pid = target.0.id();
    let gilscope = common::gilscope()
        .args(["attach", "--json", "-", &pid.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    signal(gilscope.id(), 2); // SIGINT, as Ctrl-C sends
    let output = gilscope.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["ending"], "sampling was interrupted");
    assert!(report["samples"].as_u64().unwrap() > 50);
    let spinner = report["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "spinner")
        .expect("the spinner thread");
    assert!(
        spinner["states"]["gil"].as_f64().unwrap() > 0.8,
        "{spinner}"
    );
    // Still running, and not stopped.
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(300));
    assert!(cpu_ticks(pid) > before, "the target stopped running");
    assert!(!run_state(pid).iter().any(|s| *s == 'T' || *s == 't'));
}

#[test]
fn killed_in_blocking_mode_never_leaves_the_target_paused() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let target = start_target();
    let pid = target.0.id();
    for _ in 0..3 {
        let mut gilscope = common::gilscope()
            .args([
                "attach",
                "--blocking",
                "--rate",
                "1000",
                "-q",
                &pid.to_string(),
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(700));
        gilscope.kill().unwrap(); // SIGKILL: no chance to clean up
        gilscope.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        let before = cpu_ticks(pid);
        while cpu_ticks(pid) == before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            cpu_ticks(pid) > before,
            "the target stays paused after gilscope died"
        );
        assert!(
            !run_state(pid).iter().any(|s| *s == 'T' || *s == 't'),
            "{:?}",
            run_state(pid)
        );
    }
}

#[test]
fn blocking_mode_samples() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let target = start_target();
    let output = common::gilscope()
        .args([
            "attach",
            "--blocking",
            "--duration",
            "1",
            "--json",
            "-",
            "-q",
        ])
        .arg(target.0.id().to_string())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(report["samples"].as_u64().unwrap() > 50);
    assert!(report["process"]["gil_held"].as_f64().unwrap() > 0.8);
}

#[test]
fn run_passes_a_python_exit_status_and_signal_through() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let py = common::any_python();
    let status = common::gilscope()
        .args(["run", "-q", "--"])
        .arg(&py)
        .args(["-c", "import time, sys; time.sleep(0.8); sys.exit(3)"])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3));
    let output = common::gilscope()
        .args(["run", "--json", "-", "-q", "--"])
        .arg(&py)
        .args([
            "-c",
            "import os, time; time.sleep(0.8); os.kill(os.getpid(), 9)",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(128 + 9));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["exit"]["signal"], 9);
    assert_eq!(report["ending"], "the target was killed by signal 9");
}
