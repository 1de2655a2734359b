//! The stages after the sampler on a long recording: one million samples of four threads
//! (`common::write_recording`, written once before measuring), replayed, diagnosed, and
//! rendered to the terminal and JSON. The goal: under a second.
//!
//! `cargo bench --bench report`; `GILSCOPE_BENCH_SAMPLES` and `GILSCOPE_BENCH_THREADS` change
//! the recording.

mod common;

use criterion::{criterion_group, criterion_main, Criterion};

fn report_of_a_million_samples(c: &mut Criterion) {
    let samples = common::setting("GILSCOPE_BENCH_SAMPLES", 1_000_000);
    let threads = common::setting("GILSCOPE_BENCH_THREADS", 4) as u32;
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("long.gilscope");
    common::write_recording(&path, samples, threads).expect("write the recording");
    let mut group = c.benchmark_group("report");
    group.sample_size(10);
    group.bench_function(
        format!("{samples} samples of {threads} threads: replay, diagnose, render"),
        |b| {
            b.iter(|| {
                let analysis = gilscope::recording::replay(&path).expect("replay");
                let verdict = gilscope::diagnosis::diagnose(&analysis);
                let report = gilscope::report::build(&analysis, Some(verdict));
                let mut out = Vec::new();
                gilscope::render::terminal::render(
                    &report,
                    gilscope::render::terminal::Style {
                        color: false,
                        threads: false,
                    },
                    &mut out,
                )
                .expect("terminal");
                gilscope::render::json(&report, &mut out).expect("json");
                assert_eq!(report.samples, samples);
                out.len()
            })
        },
    );
    group.finish();
}

criterion_group!(benches, report_of_a_million_samples);
criterion_main!(benches);
