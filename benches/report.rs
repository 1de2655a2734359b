//! The stages after the sampler on a long recording: one million samples of four threads
//! (`common::write_recording`, written once before timing), replayed, diagnosed, and rendered
//! to the terminal and JSON. The goal: under a second.
//!
//! `cargo bench --bench report`: 10 timed runs after one warm-up, median and range printed.
//! `GILSCOPE_BENCH_SAMPLES` and `GILSCOPE_BENCH_THREADS` change the recording. (Plain timing
//! rather than criterion: its build dependencies broke the release build's rustc probe on the
//! CI machine.)

mod common;

fn main() {
    let samples = common::setting("GILSCOPE_BENCH_SAMPLES", 1_000_000);
    let threads = common::setting("GILSCOPE_BENCH_THREADS", 4) as u32;
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("long.gilscope");
    common::write_recording(&path, samples, threads).expect("write the recording");
    let once = || {
        let started = std::time::Instant::now();
        let analysis = gilscope::app::replay(&path).expect("replay");
        let verdict = gilscope::diagnosis::diagnose(&analysis);
        let report = gilscope::report::build(&analysis, Some(verdict));
        let mut out = Vec::new();
        gilscope::render::terminal::render(
            &report,
            gilscope::render::terminal::Style { color: false },
            &mut out,
        )
        .expect("terminal");
        gilscope::render::json(&report, &mut out).expect("json");
        assert_eq!(report.samples, samples);
        started.elapsed().as_secs_f64() * 1000.0
    };
    once();
    let mut times: Vec<f64> = (0..10).map(|_| once()).collect();
    times.sort_by(f64::total_cmp);
    println!(
        "report of {samples} samples of {threads} threads (replay, diagnose, terminal, JSON): \
         median {:.0} ms, range {:.0}-{:.0} ms over {} runs",
        (times[4] + times[5]) / 2.0,
        times[0],
        times[9],
        times.len()
    );
}
