//! Free-threaded CPython (3.13t), which py-spy cannot read: threads run Python in parallel,
//! and an extension without free-threading support turns the GIL back on.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ensure, run_report, run_report_with, share, threads};
use serde_json::Value;

/// Runs `check` on the report of `workload` (with `args`) for every free-threaded build; a
/// failed check is retried once (shared machines are noisy), never loosened.
fn for_every_free_threaded(
    workload: &str,
    args: impl Fn(&Path) -> Vec<String>,
    check: impl Fn(&Value) -> Result<(), String>,
) {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for version in common::FREE_THREADED {
        let Some(py) = common::python(version) else {
            continue;
        };
        let args = args(&py);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut last = String::new();
        let passed = (0..2).any(|attempt| {
            let (output, report) = run_report_with(&py, workload, &[], &args);
            match check(&report).and_then(|_| {
                ensure(output.status.success(), || {
                    format!("exit {:?}", output.status)
                })
            }) {
                Ok(()) => true,
                Err(e) => {
                    last = format!("{e}\n{}", common::summary(&report));
                    eprintln!("{workload} on {version}, attempt {}: {last}", attempt + 1);
                    false
                }
            }
        });
        assert!(passed, "{workload} on CPython {version}: {last}");
    }
}

/// The seed's Fix 6: four pure-Python threads on a free-threaded build run in parallel on
/// both cores (measured 1.9 cores), with no GIL to hold or wait for.
#[test]
fn threads_run_python_in_parallel() {
    for_every_free_threaded(
        "cpu_threads.py",
        |_| vec![],
        |r| {
            ensure(r["target"]["gil"] == "disabled", || "target.gil".into())?;
            ensure(r["target"]["gil_turned_on"].is_null(), || {
                "gil_turned_on".into()
            })?;
            ensure(r["verdict"]["kind"] == "free_threaded", || "verdict".into())?;
            let cores = r["process"]["cpu_cores_used"].as_f64().unwrap();
            let expected = 0.8 * r["process"]["cores"].as_f64().unwrap().min(4.0);
            ensure(cores >= expected, || {
                format!("cores {cores:.2} < {expected:.2}")
            })?;
            let workers = threads(r, "worker");
            ensure(workers.len() == 4, || "expected 4 workers".into())?;
            for w in workers {
                let gil = share(w, &["gil", "gil_wait"]);
                ensure(gil == 0.0, || {
                    format!("{}: gil+gil_wait {gil:.2}", w["name"])
                })?;
                let native = share(w, &["native"]);
                ensure(native >= 0.8, || {
                    format!("{}: native {native:.2} < 0.8", w["name"])
                })?;
            }
            Ok(())
        },
    );
}

/// `gil_ext` (tests/workloads/gil_ext.c), compiled for this interpreter into a fresh
/// directory.
fn compile_gil_ext(py: &Path) -> PathBuf {
    let query = |expr: &str| {
        let out = Command::new(py)
            .args(["-c", &format!("import sysconfig; print({expr})")])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let include = query("sysconfig.get_paths()['include']");
    let suffix = query("sysconfig.get_config_var('EXT_SUFFIX')");
    let dir = tempfile::tempdir().unwrap().keep();
    let status = Command::new("gcc")
        .args(["-shared", "-fPIC", "-I", &include])
        .arg(common::workload("gil_ext.c"))
        .arg("-o")
        .arg(dir.join(format!("gil_ext{suffix}")))
        .status()
        .expect("gcc");
    assert!(status.success(), "compiling gil_ext against {include}");
    dir
}

/// Halfway through, the main thread imports `gil_ext`: the report names it, says when, shows
/// the parallel phase and the contended one, and advises a free-threading build of it or
/// PYTHON_GIL=0.
#[test]
fn an_extension_that_turns_the_gil_back_on_is_named() {
    let dirs = std::sync::Mutex::new(Vec::new());
    for_every_free_threaded(
        "gil_reenabled.py",
        |py| {
            let dir = compile_gil_ext(py);
            dirs.lock().unwrap().push(dir.clone());
            vec!["4".into(), dir.display().to_string()]
        },
        |r| {
            let on = &r["target"]["gil_turned_on"];
            let modules = on["modules"].to_string();
            ensure(modules.contains("\"gil_ext\""), || {
                format!("modules {modules}")
            })?;
            let at = on["at_s"].as_f64().unwrap_or(-1.0);
            ensure((1.0..=3.5).contains(&at), || {
                format!("turned on at {at:.2} s")
            })?;
            let v = &r["verdict"];
            ensure(v["kind"] == "gil_contention", || {
                format!("verdict {}", v["kind"])
            })?;
            let headline = v["headline"].as_str().unwrap();
            ensure(headline.contains("`gil_ext`"), || headline.to_string())?;
            ensure(v["advice"].to_string().contains("PYTHON_GIL=0"), || {
                "advice".into()
            })?;
            let phases: Vec<&str> = v["phases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["kind"].as_str().unwrap())
                .collect();
            ensure(phases == ["free_threaded", "gil_contention"], || {
                format!("phases {phases:?}")
            })?;
            // After the import the workers hold or wait for the GIL.
            for w in threads(r, "worker") {
                let s = share(w, &["gil", "gil_wait"]);
                ensure(s >= 0.25, || {
                    format!("{}: gil+gil_wait {s:.2} < 0.25", w["name"])
                })?;
            }
            Ok(())
        },
    );
    for dir in dirs.into_inner().unwrap() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// With PYTHON_GIL=0 the same import leaves the GIL off: no verdict about it.
#[test]
fn python_gil_0_keeps_it_off() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for version in common::FREE_THREADED {
        let Some(py) = common::python(version) else {
            continue;
        };
        let dir = compile_gil_ext(&py);
        std::env::set_var("PYTHON_GIL", "0");
        let (_, r) = run_report(&py, "gil_reenabled.py", &["3", &dir.display().to_string()]);
        std::env::remove_var("PYTHON_GIL");
        let _ = std::fs::remove_dir_all(dir);
        assert!(r["target"]["gil_turned_on"].is_null(), "{}", r["target"]);
        assert_eq!(r["verdict"]["kind"], "free_threaded");
    }
}
