//! The garbage collector, on every build: gilscope's reading of the collector's `collecting`
//! flag against the program's own account of its collections (`gc.callbacks`), and the
//! verdict when collections take most of the run.

mod common;

use common::{python, run_report, summary, FREE_THREADED, LIVE, REQUIRED};
use serde_json::Value;

/// `tests/workloads/gc_heavy.py` builds cyclic garbage beside a large live heap; it times its
/// own collections. The share of the run gilscope saw the collector collecting agrees with it
/// within 10 points, and the verdict is `gc_pauses`.
#[test]
fn the_collectors_share_agrees_with_gc_callbacks() {
    let _guard = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut failures = Vec::new();
    for version in REQUIRED.iter().chain(FREE_THREADED.iter()) {
        let Some(py) = python(version) else { continue };
        let result = common::retry(2, &format!("gc_heavy.py on {version}"), || {
            let (output, report) = run_report(&py, "gc_heavy.py", &["3"]);
            check(&output.stdout, &report).map_err(|e| format!("{e}\n{}", summary(&report)))
        });
        if let Err(last) = result {
            failures.push(format!("CPython {version}: {last}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn check(stdout: &[u8], report: &Value) -> Result<(), String> {
    let text = String::from_utf8_lossy(stdout);
    let own: Value = text
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .ok_or_else(|| format!("no gc account from the program: {text}"))?;
    let collecting_s =
        own["gc_share"].as_f64().unwrap_or(0.0) * own["working_s"].as_f64().unwrap_or(0.0);
    let duration = report["duration_s"].as_f64().unwrap_or(0.0);
    let expected = collecting_s / duration.max(1e-9);
    let measured = report["process"]["gc_collecting"]
        .as_f64()
        .ok_or("the collector's flag was not read")?;
    if (measured - expected).abs() > 0.10 {
        return Err(format!(
            "gilscope saw the collector in {measured:.2} of the run, the program's callbacks {expected:.2}"
        ));
    }
    let kind = report["verdict"]["kind"].as_str().unwrap_or("");
    if kind != "gc_pauses" {
        return Err(format!("verdict {kind}"));
    }
    Ok(())
}
