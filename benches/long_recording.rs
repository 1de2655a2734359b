//! Memory over a long run: a one-hour recording at 100 Hz of 100 threads (36 million
//! thread-samples, `common::write_recording`), reported by `gilscope report`, whose peak RSS
//! is printed. The aggregation that bounds a live run's memory is the same code; the live
//! sampler adds a constant per thread.
//!
//! `cargo bench --bench long_recording` (needs `cargo build --release` first).
//! `GILSCOPE_BENCH_SECONDS` and `GILSCOPE_BENCH_THREADS` change the run.

mod common;

use std::process::Command;

fn main() -> std::io::Result<()> {
    let seconds = common::setting("GILSCOPE_BENCH_SECONDS", 3600);
    let threads = common::setting("GILSCOPE_BENCH_THREADS", 100) as u32;
    let gilscope = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/gilscope");
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("hour.gilscope");
    let samples = seconds * 1_000_000_000 / common::INTERVAL_NS;
    common::write_recording(&path, samples, threads)?;
    let size = std::fs::metadata(&path)?.len();
    let started = std::time::Instant::now();
    let child = Command::new(&gilscope)
        .args(["report", "-q", "--json", "/dev/null"])
        .arg(&path)
        .spawn()?;
    let mut status = 0;
    // SAFETY: rusage is plain data; zeroed is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to locals; the child is ours, and reaped here.
    let waited = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(waited, child.id() as libc::pid_t, "wait4 failed");
    assert_eq!(status, 0, "gilscope report failed");
    println!(
        "{seconds} s at 100 Hz, {threads} threads: {samples} samples, {} thread-samples, \
         recording {:.0} MB; gilscope report: peak RSS {:.1} MB, {:.1} s",
        samples * threads as u64,
        size as f64 / 1e6,
        usage.ru_maxrss as f64 / 1024.0,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
