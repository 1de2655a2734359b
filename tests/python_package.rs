//! The Python package around the binary (`python/gilscope`): `gilscope.profile()` on its own
//! process (3.8, 3.12, 3.14, 3.15, 3.13t; as root and as a user without privileges), the
//! pytest plugin in real pytest (3.9, 3.12, 3.14 venvs), and the `%%gilscope` magic in a real
//! Jupyter kernel (3.12's venv). The programs are in tests/python_package/.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::ensure;
use serde_json::Value;

fn package_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

fn program(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python_package")
        .join(name)
}

/// `python PROGRAM ARGS` with the package on its path and this build as its binary.
fn python_with_package(python: &Path, package: &Path, binary: &Path) -> Command {
    let mut command = Command::new(python);
    command
        .env("PYTHONPATH", package)
        .env("GILSCOPE_BIN", binary)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    command
}

fn last_json_line(output: &Output) -> Result<Value, String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .ok_or_else(|| {
            format!(
                "no JSON line ({}):\n{stdout}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

/// What tests/python_package/context_manager.py must have seen on one interpreter.
fn check_context_manager(seen: &Value) -> Result<(), String> {
    let free_threaded = seen["free_threaded"] == true;
    let cpu_kind = if free_threaded {
        "free_threaded"
    } else {
        "gil_contention"
    };
    for (block, kind) in [
        ("cpu", cpu_kind),
        ("io", "io_bound"),
        ("decorated", cpu_kind),
    ] {
        let got = &seen[block];
        ensure(got["kind"] == kind, || {
            format!("{block}: verdict {} where {kind} was expected", got["kind"])
        })?;
        ensure(got["text_has_headline"] == true, || {
            format!("{block}: str(run) lacks the verdict's headline")
        })?;
        let duration = got["duration_s"].as_f64().unwrap_or(0.0);
        ensure(duration >= 0.5, || {
            format!("{block}: sampled {duration} s, under the 0.5 s a verdict needs")
        })?;
    }
    let cpu_wait = seen["cpu"]["max_gil_wait"].as_f64().unwrap_or(-1.0);
    let io_wait = seen["io"]["max_gil_wait"].as_f64().unwrap_or(-1.0);
    if free_threaded {
        ensure(cpu_wait == 0.0, || {
            format!("GIL wait {cpu_wait} with no GIL")
        })?;
    } else {
        ensure(cpu_wait >= 0.4, || {
            format!("the CPU pool's busiest waiter waited {cpu_wait} of its time for the GIL")
        })?;
    }
    ensure(io_wait <= 0.1, || {
        format!("the I/O pool waited {io_wait} for the GIL")
    })?;
    ensure(seen["decorated"]["rate_hz"] == 200.0, || {
        "@gilscope.profile(rate=200) sampled at another rate".into()
    })?;
    let gate = format!("the verdict is {cpu_kind}, listed in --fail-on");
    ensure(seen["gate"] == gate.as_str(), || {
        format!("run.gate is {}, not {gate:?}", seen["gate"])
    })?;
    ensure(
        seen["usage_error"]
            .as_str()
            .is_some_and(|e| e.contains("invalid value 'gil_contentoin'")),
        || {
            format!(
                "a misspelt kind gave {} instead of GilscopeUsageError",
                seen["usage_error"]
            )
        },
    )?;
    ensure(
        seen["html"]["bytes"].as_u64().unwrap_or(0) > 10_000
            && seen["html"]["network"] == serde_json::json!([]),
        || format!("the HTML report: {}", seen["html"]),
    )
}

#[test]
fn the_context_manager_and_the_decorator_on_every_claimed_kind_of_build() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let binary = Path::new(env!("CARGO_BIN_EXE_gilscope"));
    let mut failures = Vec::new();
    for version in ["3.8", "3.12", "3.14", "3.15", "3.13t"] {
        let Some(python) = common::python(version) else {
            continue;
        };
        // Debian's 3.14 and 3.15 name their binary python3.14 / python3.15 only.
        let python = if python.exists() {
            python
        } else {
            python.with_file_name(format!("python{}", version.trim_end_matches('t')))
        };
        let result = common::retry(2, &format!("CPython {version}"), || {
            let output = python_with_package(&python, &package_dir(), binary)
                .arg(program("context_manager.py"))
                .output()
                .unwrap();
            last_json_line(&output).and_then(|seen| check_context_manager(&seen))
        });
        if let Err(last) = result {
            failures.push(format!("CPython {version}: {last}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The package and the binary copied where any user can read them (a clone under /root is
/// not), for the tests that drop root.
fn world_readable_copy(dir: &Path) -> (PathBuf, PathBuf) {
    let package = dir.join("python");
    let target = package.join("gilscope");
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(package_dir().join("gilscope")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "py") {
            std::fs::copy(&path, target.join(path.file_name().unwrap())).unwrap();
        }
    }
    let binary = dir.join("gilscope");
    std::fs::copy(env!("CARGO_BIN_EXE_gilscope"), &binary).unwrap();
    for name in ["context_manager.py", "work.py"] {
        std::fs::copy(program(name), dir.join(name)).unwrap();
    }
    let status = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
    (package, binary)
}

fn as_nobody(python: &Path) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(python);
    command
}

/// Interpreters a user without privileges can run: pyenv's live under /root; the system's
/// python3 and the free-threaded build under /opt do not.
fn interpreters_outside_root() -> Vec<PathBuf> {
    let system = Some(PathBuf::from("/usr/bin/python3")).filter(|p| p.exists());
    let free_threaded = common::python("3.13t")
        .and_then(|p| p.canonicalize().ok())
        .filter(|p| !p.starts_with("/root"));
    system.into_iter().chain(free_threaded).collect()
}

#[test]
fn the_context_manager_as_a_user_without_privileges() {
    let is_root = unsafe { geteuid() } == 0;
    if !is_root || Command::new("setpriv").arg("--version").output().is_err() {
        common::skip("the unprivileged-user test needs root (to drop it) and setpriv");
        return;
    }
    let interpreters = interpreters_outside_root();
    if interpreters.is_empty() {
        common::skip("no interpreter outside /root for an unprivileged user to run");
        return;
    }
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (package, binary) = world_readable_copy(dir.path());
    let script = dir.path().join("context_manager.py");
    for python in interpreters {
        let as_nobody_ran = common::retry(2, &format!("{} as nobody", python.display()), || {
            let output = as_nobody(&python)
                .env("PYTHONPATH", &package)
                .env("GILSCOPE_BIN", &binary)
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .env("TMPDIR", dir.path())
                .arg(&script)
                .output()
                .unwrap();
            last_json_line(&output).and_then(|seen| check_context_manager(&seen))
        });
        if let Err(last) = as_nobody_ran {
            panic!("{} as nobody: {last}", python.display());
        }

        // A process that made itself unreadable (not dumpable, as setuid programs are): one
        // line that says why and what to do, and the block still runs.
        let refused = as_nobody(&python)
            .env("PYTHONPATH", &package)
            .env("GILSCOPE_BIN", &binary)
            .env("TMPDIR", dir.path())
            .arg("-c")
            .arg(
                "import ctypes, gilscope\n\
                 ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0\n\
                 try:\n    with gilscope.profile():\n        pass\n\
                 except gilscope.GilscopeError as e:\n    print('ERROR', e)\n",
            )
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&refused.stdout);
        let line = stdout
            .lines()
            .find(|l| l.starts_with("ERROR"))
            .unwrap_or_else(|| {
                panic!(
                    "no GilscopeError from an unreadable process: {stdout}{}",
                    String::from_utf8_lossy(&refused.stderr)
                )
            });
        assert!(
            line.contains("permission denied") && line.contains("hint:"),
            "{line}"
        );
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
    }
}

extern "C" {
    fn geteuid() -> u32;
}

/// One test's outcome in pytest's `-rA` summary: ("PASSED" | "FAILED", the line).
fn outcome<'a>(summary: &'a str, test: &str) -> Option<(&'a str, &'a str)> {
    summary.lines().find_map(|line| {
        let (word, rest) = line.split_once(' ')?;
        let node = rest.split(" - ").next()?;
        (matches!(word, "PASSED" | "FAILED") && node.ends_with(&format!("::{test}")))
            .then_some((word, line))
    })
}

/// The text pytest printed under `___ TEST ___` in its FAILURES, or "".
fn failure_section<'a>(output: &'a str, test: &str) -> &'a str {
    let header = format!(" {test} _");
    let Some(start) = output.find(&header) else {
        return "";
    };
    let rest = &output[start + header.len()..];
    let end = rest
        .find("\n____")
        .or_else(|| rest.find("\n===="))
        .unwrap_or(rest.len());
    &rest[..end]
}

fn pytest(python: &Path, binary: &Path, report_dir: &Path) -> Output {
    python_with_package(python, &package_dir(), binary)
        .args(["-m", "pytest", "-p", "gilscope.pytest_plugin", "-rA", "-q"])
        .arg("-p")
        .arg("no:cacheprovider")
        .arg("--gilscope-report")
        .arg(report_dir)
        .arg(program("test_marked.py"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn the_pytest_marker_fails_gil_bound_tests_and_passes_the_others() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let expected = [
        (
            "test_checksums_in_threads_must_not_contend",
            "FAILED",
            "gilscope: the verdict is gil_contention, listed in --fail-on",
        ),
        (
            "test_checksums_wait_little_for_the_gil",
            "FAILED",
            "of its time for the GIL, more than --max-gil-wait 0.3",
        ),
        ("test_fetches_in_threads_run_concurrently", "PASSED", ""),
        (
            "test_a_failing_assertion_is_reported_as_such",
            "FAILED",
            "the test's own failure",
        ),
        ("test_too_short_to_judge", "PASSED", ""),
        ("test_unmarked_tests_are_not_sampled", "PASSED", ""),
    ];
    let binary = Path::new(env!("CARGO_BIN_EXE_gilscope"));
    for version in ["3.9", "3.12", "3.14"] {
        let Some(python) = common::venv_python(version) else {
            continue;
        };
        let result = common::retry(2, &format!("pytest on {version}"), || {
            let reports = tempfile::tempdir().unwrap();
            let output = pytest(&python, binary, reports.path());
            let summary = String::from_utf8_lossy(&output.stdout).into_owned();
            let mut wrong = Vec::new();
            for (test, word, reason) in expected {
                // A failure's reason is in its section of pytest's FAILURES.
                let said = failure_section(&summary, test);
                match outcome(&summary, test) {
                    Some((got, _)) if got == word && said.contains(reason) => {}
                    got => wrong.push(format!("{test}: expected {word} {reason:?}, got {got:?}")),
                }
            }
            let written = std::fs::read_dir(reports.path())
                .map(|d| d.count())
                .unwrap_or(0);
            if written != 5 {
                wrong.push(format!("{written} HTML reports for the 5 marked tests"));
            }
            // A marked test too short for a verdict passes, and says it was not judged.
            if !summary.contains("GilscopeWarning: gilscope could not judge")
                || !summary.contains("test_too_short_to_judge: Not enough evidence")
            {
                wrong.push("no warning for the test too short to judge".into());
            }
            if wrong.is_empty() {
                return Ok(());
            }
            Err(format!("{}\n{summary}", wrong.join("\n")))
        });
        if let Err(last) = result {
            panic!("pytest on {version}: {last}");
        }
    }
}

#[test]
fn the_pytest_marker_only_warns_where_gilscope_cannot_sample() {
    let Some(python) = common::venv_python("3.12") else {
        return;
    };
    let reports = tempfile::tempdir().unwrap();
    let output = pytest(&python, Path::new("/nonexistent/gilscope"), reports.path());
    let summary = String::from_utf8_lossy(&output.stdout);
    // The two GIL-bound tests pass unsampled; the third fails on its own assertion.
    for test in [
        "test_checksums_in_threads_must_not_contend",
        "test_checksums_wait_little_for_the_gil",
        "test_fetches_in_threads_run_concurrently",
    ] {
        assert_eq!(
            outcome(&summary, test).map(|o| o.0),
            Some("PASSED"),
            "{test}:\n{summary}"
        );
    }
    assert!(
        summary.contains("GilscopeWarning: gilscope could not sample")
            && summary.contains("cannot run /nonexistent/gilscope"),
        "{summary}"
    );
}

#[test]
fn the_notebook_magic_in_a_real_jupyter_kernel() {
    let Some(python) = common::venv_python("3.12") else {
        return;
    };
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let binary = Path::new(env!("CARGO_BIN_EXE_gilscope"));
    let result = common::retry(2, "the notebook", || {
        let output = python_with_package(&python, &package_dir(), binary)
            .arg(program("notebook.py"))
            .output()
            .unwrap();
        last_json_line(&output).and_then(|seen| {
            ensure(seen["errors"] == serde_json::json!([]), || {
                format!("cells raised {}", seen["errors"])
            })?;
            ensure(
                seen["kinds"]
                    == serde_json::json!(["gil_contention", "io_bound", "gil_contention"]),
                || {
                    format!(
                        "verdicts {} for the CPU cell, the I/O cell and the attached service",
                        seen["kinds"]
                    )
                },
            )?;
            for frame in seen["frames"].as_array().into_iter().flatten() {
                ensure(
                    frame["iframe"] == true
                        && frame["network"] == serde_json::json!([])
                        && frame["bytes"].as_u64().unwrap_or(0) > 10_000,
                    || format!("a cell's HTML output: {frame}"),
                )?;
            }
            let text = seen["text_report"].as_str().unwrap_or("");
            ensure(
                text.contains("GIL contention") && text.contains("Heartbeat"),
                || format!("the --text cell printed: {text}"),
            )?;
            // The kernel's own threads are bystanders: they never decide the verdict.
            ensure(text.contains("bystanders"), || {
                format!("the kernel's threads were not set aside: {text}")
            })?;
            ensure(text.contains("defined in a notebook cell"), || {
                format!("no word on functions a process pool cannot import: {text}")
            })
        })
    });
    if let Err(last) = result {
        panic!("{last}");
    }
}
