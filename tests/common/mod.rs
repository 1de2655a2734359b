//! Helpers for tests that run gilscope against real CPython interpreters.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The versions gilscope must read, tested on every machine (the GIL builds).
pub const REQUIRED: [&str; 8] = ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14", "3.15"];
/// The free-threaded builds gilscope must read (a `t` names them, as pyenv does).
pub const FREE_THREADED: [&str; 1] = ["3.13t"];

/// Live tests share two cores: one at a time, so they do not skew each other's fractions.
pub static LIVE: Mutex<()> = Mutex::new(());

pub fn gilscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gilscope"))
}

pub fn workload(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/workloads")
        .join(name)
}

/// The interpreter for `version` ("3.12", or "3.13t" for the free-threaded build) under
/// pyenv, or `None` with a loud message. Under `GILSCOPE_REQUIRE_ALL` (which `.ci/run` sets),
/// a missing required or free-threaded version fails the test instead, naming it.
pub fn python(version: &str) -> Option<PathBuf> {
    let root = std::env::var("PYENV_ROOT").unwrap_or_else(|_| "/root/.pyenv".into());
    let (release, suffix) = match version.strip_suffix('t') {
        Some(release) => (release, "t"),
        None => (version, ""),
    };
    let found = std::fs::read_dir(Path::new(&root).join("versions"))
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            name.strip_prefix(release)
                .and_then(|rest| rest.strip_prefix('.'))
                .and_then(|rest| rest.strip_suffix(suffix))
                .is_some_and(|patch| !patch.is_empty() && patch.chars().all(|c| c.is_ascii_digit()))
        })
        .max_by_key(|name| {
            name.trim_end_matches('t')
                .rsplit('.')
                .next()
                .and_then(|p| p.parse::<u32>().ok())
        })
        .map(|name| {
            Path::new(&root)
                .join("versions")
                .join(name)
                .join("bin/python")
        });
    if found.is_none() {
        let message = format!(
            "CPython {version} not found under {root}/versions: not tested (bash ../shared/pythons/install.sh installs 3.14, 3.15 and 3.13t)"
        );
        if REQUIRED.contains(&version) || FREE_THREADED.contains(&version) {
            skip(&message);
        } else {
            eprintln!("\n*** SKIP: {message} ***\n");
        }
    }
    found
}

/// A test that cannot run here for want of `what` (a required interpreter, a tool, a
/// privilege) says so loudly and returns; under `GILSCOPE_REQUIRE_ALL` (which `.ci/run` sets)
/// it fails instead, naming what was missing.
pub fn skip(what: &str) {
    if std::env::var_os("GILSCOPE_REQUIRE_ALL").is_some() {
        panic!("{what}; GILSCOPE_REQUIRE_ALL is set");
    }
    eprintln!("\n*** SKIP: {what} ***\n");
}

/// Compares `actual` with the file at `path` (a golden file, or a file the wheel ships), or
/// rewrites it under `GILSCOPE_BLESS=1`; a difference leaves the actual output beside it.
pub fn golden(path: &Path, actual: &[u8]) {
    if std::env::var_os("GILSCOPE_BLESS").is_some() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read(path)
        .unwrap_or_else(|_| panic!("missing {}: run with GILSCOPE_BLESS=1", path.display()));
    if expected != actual {
        let got = path.with_extension("actual");
        std::fs::write(&got, actual).unwrap();
        panic!(
            "{} differs from what this build prints; see {} (GILSCOPE_BLESS=1 accepts it)",
            path.display(),
            got.display()
        );
    }
}

/// [`golden`] for a JSON output written on one line (a Chrome trace, a speedscope file): the
/// golden holds it pretty-printed (keys sorted), so that a change reads as a diff of lines.
pub fn golden_json(path: &Path, actual: &[u8]) {
    let value: Value = serde_json::from_slice(actual)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    let mut pretty = serde_json::to_vec_pretty(&value).unwrap();
    pretty.push(b'\n');
    golden(path, &pretty);
}

/// The python of the venv `tests/programs/venv.sh` built for `version` (the realistic
/// programs' libraries, pytest, and for 3.12 Jupyter's), or `None` through [`skip`].
pub fn venv_python(version: &str) -> Option<PathBuf> {
    let root = std::env::var_os("GILSCOPE_VENVS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("gilscope-venvs"));
    let python = root.join(version).join("bin/python");
    if python.exists() {
        return Some(python);
    }
    skip(&format!(
        "no venv for CPython {version} at {}: build it with `bash tests/programs/venv.sh`",
        python.display()
    ));
    None
}

/// The bundled recording `tests/recordings/NAME.gilscope`.
pub fn recording(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/recordings")
        .join(format!("{name}.gilscope"))
}

/// One interpreter for tests that need just one: 3.12, else 3.11.
pub fn any_python() -> PathBuf {
    python("3.12")
        .or_else(|| python("3.11"))
        .expect("CPython 3.12 or 3.11 under pyenv")
}

/// Runs `gilscope run --json FILE -q -- PYTHON WORKLOAD ARGS` and returns the report.
pub fn run_report(python: &Path, workload_name: &str, args: &[&str]) -> (Output, Value) {
    run_report_with(python, workload_name, &[], args)
}

/// [`run_report`] with more gilscope options (before the `--`).
pub fn run_report_with(
    python: &Path,
    workload_name: &str,
    options: &[&str],
    args: &[&str],
) -> (Output, Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let output = gilscope()
        .arg("run")
        .arg("--json")
        .arg(&json)
        .arg("-q")
        .args(options)
        .arg("--")
        .arg(python)
        .arg(workload(workload_name))
        .args(args)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&json).unwrap_or_else(|_| {
        panic!(
            "no report for {workload_name} on {}: {}",
            python.display(),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, serde_json::from_str(&text).unwrap())
}

pub fn state(thread: &Value, name: &str) -> f64 {
    thread["states"][name].as_f64().unwrap()
}

pub fn share(thread: &Value, names: &[&str]) -> f64 {
    names.iter().map(|n| state(thread, n)).sum()
}

/// Threads whose name starts with `prefix`.
pub fn threads<'a>(report: &'a Value, prefix: &str) -> Vec<&'a Value> {
    report["threads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"].as_str().unwrap_or("").starts_with(prefix))
        .collect()
}

/// Runs `check` on the report of `workload_name` for every required version; a failed check
/// is retried once (shared machines are noisy), never loosened.
pub fn for_every_version(workload_name: &str, check: impl Fn(&Value) -> Result<(), String>) {
    for_every_version_with(workload_name, &[], check)
}

/// [`for_every_version`] with more gilscope options.
pub fn for_every_version_with(
    workload_name: &str,
    options: &[&str],
    check: impl Fn(&Value) -> Result<(), String>,
) {
    let _guard = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut failures = Vec::new();
    for version in REQUIRED {
        let Some(py) = python(version) else { continue };
        let what = format!("{workload_name} on {version}");
        let result = retry(2, &what, || {
            let (output, report) = run_report_with(&py, workload_name, options, &[]);
            check(&report)
                .and_then(|_| {
                    output
                        .status
                        .success()
                        .then_some(())
                        .ok_or_else(|| format!("exit status {:?}", output.status))
                })
                .map_err(|e| format!("{e}\n{}", summary(&report)))
        });
        if let Err(last) = result {
            failures.push(format!("CPython {version}: {last}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{workload_name}:\n{}",
        failures.join("\n")
    );
}

/// Runs a live check up to `attempts` times: shared machines are noisy, so a failed check is
/// retried, never loosened. Each failure is printed with `what` and its attempt; the last one
/// is returned when every attempt failed.
pub fn retry(
    attempts: u32,
    what: &str,
    mut check: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 1..=attempts {
        match check() {
            Ok(()) => return Ok(()),
            Err(e) => {
                eprintln!("{what}, attempt {attempt}: {e}");
                last = e;
            }
        }
    }
    Err(last)
}

/// A compact view of a report for failure messages.
pub fn summary(report: &Value) -> String {
    let mut out = format!(
        "verdict={} gil_held={} cores={}\n",
        report["verdict"]["kind"],
        report["process"]["gil_held"],
        report["process"]["cpu_cores_used"]
    );
    for t in report["threads"].as_array().into_iter().flatten() {
        out.push_str(&format!("  {} {}\n", t["name"], t["states"]));
    }
    out
}

pub fn ensure(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

/// The target of a synthetic run (recorded by no sampler): `python` with its GIL mode, on
/// `cores`, sampled at 100 Hz.
pub fn synthetic_target(
    python: &str,
    gil: gilscope::model::GilMode,
    cores: u32,
) -> gilscope::model::TargetInfo {
    gilscope::model::TargetInfo {
        pid: gilscope::model::Pid(1),
        command: vec!["python3".into(), "app.py".into()],
        python: python.into(),
        gil,
        gil_wait_visible: gil == gilscope::model::GilMode::Enabled,
        notes: vec![],
        rate_hz: 100.0,
        arch: "x86_64".into(),
        cores,
        started_unix_s: 0.0,
    }
}

/// Runs `command` in its own process group and returns its output, or, when it has not ended
/// within `limit`, kills the whole group (gilscope, its target and the target's workers) and
/// says what each of them was doing: a hang becomes a failure that names where it stuck, not
/// a CI run that never ends.
pub fn output_within(command: &mut Command, limit: Duration) -> Result<Output, String> {
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;

    let mut child = command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = match wait_within(&mut child, limit) {
        Ok(status) => status,
        Err(stuck) => {
            let stderr = stderr.join().unwrap_or_default();
            return Err(format!(
                "{command:?}: {stuck}\nstderr: {}",
                String::from_utf8_lossy(&stderr).trim()
            ));
        }
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Reads a child's pipe to its end on a thread of its own (both pipes at once: a child that
/// fills one while the other is not read would block).
fn drain<R: std::io::Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// Waits for `child`, the leader of its own process group, for at most `limit`, then kills
/// what is left of the group; past the limit, returns what each of its processes was doing.
pub fn wait_within(child: &mut Child, limit: Duration) -> Result<ExitStatus, String> {
    let group = child.id() as libc::pid_t;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            // Whatever it left behind in its group (a pool's worker) goes with it.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let stuck = describe_group(group);
            unsafe { libc::kill(-group, libc::SIGKILL) };
            let _ = child.wait();
            return Err(format!(
                "had not ended after {limit:?}; killed. Its processes were:\n{stuck}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One line per live process of a process group: pid, state, kernel wait channel, command.
fn describe_group(group: libc::pid_t) -> String {
    let mut lines = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return "(no /proc)".into();
    };
    for pid in entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        // Fields after the command's closing parenthesis: state ppid pgrp ...
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2).and_then(|g| g.parse::<libc::pid_t>().ok()) != Some(group) {
            continue;
        }
        let wchan = std::fs::read_to_string(dir.join("wchan")).unwrap_or_default();
        let command = std::fs::read(dir.join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_default();
        let threads = std::fs::read_dir(dir.join("task"))
            .map(|t| {
                t.filter_map(|e| {
                    let tid = e.ok()?.file_name();
                    let task = dir.join("task").join(&tid);
                    let wchan = std::fs::read_to_string(task.join("wchan")).ok()?;
                    let comm = std::fs::read_to_string(task.join("comm")).ok()?;
                    Some(format!("{}:{}@{wchan}", tid.to_string_lossy(), comm.trim()))
                })
                .collect::<Vec<_>>()
                .join(" ")
            })
            .unwrap_or_default();
        lines.push(format!(
            "  {pid} ppid {} {} wchan {wchan}: {} [threads {threads}]",
            fields.get(1).unwrap_or(&"?"),
            fields.first().unwrap_or(&"?"),
            command.trim()
        ));
    }
    lines.join("\n")
}

/// The host PID of `parent`'s first child (e.g. `unshare --fork`'s) once it has Python
/// mapped: a process that `exec`s Python keeps its pid.
pub fn python_child(parent: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .unwrap_or_default();
        if let Some(pid) = children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
        {
            let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
            if maps.contains("python") {
                return pid;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no Python process under {parent}");
}
