//! The realistic programs of `tests/programs/`: services, servers under load, library pools,
//! scripts with a setup phase, written as people write them and using PyPI libraries (joblib,
//! requests, numpy, pandas) from one venv per tested CPython (`tests/programs/venv.sh`).
//!
//! Each program states its expected verdict (`expect: KIND`, or several alternatives joined
//! by `|`) and the gilscope options it needs (`gilscope: --subprocesses`) in its docstring.
//! Each is checked both ways, as people profile: launched (`gilscope run`), and attached to
//! while it runs, after a warm-up (`gilscope attach`). A verdict that misses is retried once
//! (shared machines are noisy), never loosened. `GILSCOPE_PROGRAMS=a.py,b.py` runs only those.

mod common;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{gilscope, output_within, summary, wait_within, LIVE};
use serde_json::Value;

/// The CPythons the corpus runs on.
const VERSIONS: [&str; 3] = ["3.9", "3.12", "3.14"];
/// How long a launched program runs, and how long an attached one is sampled after its warm-up.
const RUN_SECONDS: f64 = 3.0;
const WARM_UP: Duration = Duration::from_millis(1200);
const ATTACH_SECONDS: f64 = 2.5;
/// Past this, a launch or an attach is killed with its target and counted as a failure that
/// says where each process was stuck (a hang must not become a CI run that never ends).
const TIME_LIMIT: Duration = Duration::from_secs(90);

/// A program of the corpus, with what its docstring says.
struct Program {
    path: PathBuf,
    expect: Vec<String>,
    options: Vec<String>,
}

fn corpus() -> Vec<Program> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs");
    let mut programs: Vec<Program> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            let field = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .map(|v| v.trim().to_string())
            };
            let expect = field("expect:")?;
            Some(Program {
                expect: expect.split('|').map(|k| k.trim().to_string()).collect(),
                options: field("gilscope:")
                    .map(|o| o.split_whitespace().map(String::from).collect())
                    .unwrap_or_default(),
                path,
            })
        })
        .collect();
    programs.sort_by(|a, b| a.path.cmp(&b.path));
    assert!(programs.len() >= 24, "the corpus is in tests/programs");
    if let Ok(only) = std::env::var("GILSCOPE_PROGRAMS") {
        let only: Vec<&str> = only.split(',').collect();
        programs.retain(|p| only.iter().any(|o| p.path.ends_with(o)));
    }
    programs
}

fn report(json: &Path, what: &str, stderr: &[u8]) -> Result<Value, String> {
    let text = std::fs::read_to_string(json).map_err(|_| {
        format!(
            "no report from {what}: {}",
            String::from_utf8_lossy(stderr).trim()
        )
    })?;
    serde_json::from_str(&text).map_err(|e| format!("{what}: {e}"))
}

/// `gilscope run` on the program.
fn launched(python: &Path, program: &Program) -> Result<Value, String> {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let output = output_within(
        gilscope()
            .args(["run", "-q", "--json"])
            .arg(&json)
            .args(&program.options)
            .arg("--")
            .arg(python)
            .arg(&program.path)
            .env("RUN_SECONDS", RUN_SECONDS.to_string()),
        TIME_LIMIT,
    )?;
    report(&json, "gilscope run", &output.stderr)
}

/// `gilscope attach` to the program after its warm-up; the program is stopped afterwards.
fn attached(python: &Path, program: &Program) -> Result<Value, String> {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let run_for = WARM_UP.as_secs_f64() + ATTACH_SECONDS + 0.8;
    let mut target = Command::new(python)
        .arg(&program.path)
        .env("RUN_SECONDS", run_for.to_string())
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(WARM_UP);
    let output = output_within(
        gilscope()
            .args(["attach", "-q", "--duration"])
            .arg(ATTACH_SECONDS.to_string())
            .arg("--json")
            .arg(&json)
            .args(&program.options)
            .arg(target.id().to_string()),
        TIME_LIMIT,
    );
    let status = wait_within(&mut target, TIME_LIMIT).map_err(|e| format!("the program {e}"))?;
    let report = report(&json, "gilscope attach", &output?.stderr)?;
    if !status.success() {
        return Err(format!("the program failed after the attach: {status}"));
    }
    Ok(report)
}

fn check(python: &Path, program: &Program, report: &Value) -> Result<(), String> {
    let kind = report["verdict"]["kind"].as_str().unwrap_or("");
    if program.expect.iter().any(|k| k == kind) {
        report["verdict"]["snippet"]
            .as_str()
            .map_or(Ok(()), |snippet| parses_as_python(python, snippet))
    } else {
        Err(format!(
            "verdict {kind}, expected {}: {}\n{}",
            program.expect.join(" or "),
            report["verdict"]["headline"],
            summary(report)
        ))
    }
}

/// The verdict's before-and-after code is Python the program's own interpreter can parse.
fn parses_as_python(python: &Path, snippet: &str) -> Result<(), String> {
    let output = Command::new(python)
        .args(["-c", "import ast, sys; ast.parse(sys.argv[1])", snippet])
        .output()
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "the verdict's snippet is not Python: {}\n{snippet}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// A line on the test's own stderr, past the harness's capture, so that a long corpus shows
/// where it is (and where it stopped) in CI's log.
fn progress(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Every program, launched and attached, on every version of [`VERSIONS`].
#[test]
fn every_program_gets_its_verdict_launched_and_attached() {
    let _guard = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let programs = corpus();
    let mut failures = Vec::new();
    let mut checked = 0;
    for version in VERSIONS {
        let Some(python) = common::venv_python(version) else {
            continue;
        };
        for program in &programs {
            let name = program.path.file_name().unwrap().to_string_lossy();
            type Mode = fn(&Path, &Program) -> Result<Value, String>;
            for (mode, sample) in [("run", launched as Mode), ("attach", attached as Mode)] {
                let started = Instant::now();
                let result = common::retry(2, &format!("{name} ({mode}, {version})"), || {
                    sample(&python, program).and_then(|r| check(&python, program, &r))
                });
                checked += 1;
                progress(&format!(
                    "corpus: {name} ({mode}, {version}) {} in {:.1} s",
                    if result.is_ok() { "ok" } else { "FAILED" },
                    started.elapsed().as_secs_f64()
                ));
                if let Err(last) = result {
                    failures.push(format!("{name} ({mode}, CPython {version}): {last}"));
                }
            }
        }
    }
    eprintln!("{checked} program runs checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// At the agent's low rate (20 Hz), a thread-per-request server's handlers are still read:
/// most ticks find the threads of the last listing replaced by new ones while their count
/// stayed the same, and those must be listed and read at that tick, not shown as `unknown`.
#[test]
fn request_threads_are_read_at_a_low_rate() {
    let _guard = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let program = Program {
        path: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/threading_http_server.py"),
        expect: vec!["gil_contention".into()],
        options: vec!["--rate".into(), "20".into()],
    };
    let report = launched(&common::any_python(), &program).unwrap();
    let handlers = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["start"] == "ThreadingMixIn.process_request_thread")
        .unwrap_or_else(|| panic!("no handler group:\n{}", summary(&report)));
    let threads = handlers["tids"].as_array().unwrap().len();
    let unknown = handlers["states"]["unknown"].as_f64().unwrap();
    assert!(threads >= 20, "{threads} handler threads seen");
    assert!(
        unknown < 0.05,
        "handlers {:.0}% unknown at 20 Hz\n{}",
        unknown * 100.0,
        summary(&report)
    );
}
