//! The predicted speedup against reality: the CPU workload in threads under gilscope, then its
//! process-pool twin alone. They must agree within 25% (issue 3; figures in BENCHMARKS.md).

mod common;

use std::time::Instant;

#[test]
fn predicted_process_speedup_matches_the_process_pool() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let py = common::any_python();
    let work = "12000000";
    let agreed = common::retry(2, "prediction", || {
        let started = Instant::now();
        let (output, report) = common::run_report(&py, "cpu_twin.py", &["threads", work]);
        let threads_s = started.elapsed().as_secs_f64();
        assert!(output.status.success());
        let predicted = report["verdict"]["predicted_speedup"]["processes"]
            .as_f64()
            .unwrap();
        let started = Instant::now();
        let status = std::process::Command::new(&py)
            .arg(common::workload("cpu_twin.py"))
            .args(["processes", work])
            .status()
            .unwrap();
        let processes_s = started.elapsed().as_secs_f64();
        assert!(status.success());
        let measured = threads_s / processes_s;
        let error = (predicted - measured).abs() / measured;
        let told = format!(
            "predicted {predicted:.2}x, measured {measured:.2}x ({threads_s:.2} s in threads, {processes_s:.2} s in processes), off by {:.0}%",
            error * 100.0
        );
        eprintln!("{told}");
        common::ensure(error <= 0.25, || told)
    });
    if let Err(last) = agreed {
        panic!("{last}");
    }
}
