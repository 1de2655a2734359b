//! The stages after the sampler on a long recording: one million samples of four threads
//! contending for the GIL (a recorded file, written once before measuring), replayed,
//! diagnosed, and rendered to the terminal and JSON. The goal: under a second.
//!
//! `cargo bench --bench report`: 10 timed runs after one warm-up, median and range printed.
//! `GILSCOPE_BENCH_SAMPLES=N` changes the length. (Plain timing rather than criterion: its
//! build dependencies broke the release build's rustc probe on the CI machine.)

use std::io::BufWriter;
use std::path::Path;

use gilscope::model::{Frame, GilReading, Record, Sample, Syscall, TargetInfo, ThreadSample};
use gilscope::recording::RecordingWriter;
use gilscope::sampler::RecordSink;

const THREADS: u32 = 4;
const GIL: u64 = 0x7f00_0000_1000;
const INTERVAL_NS: u64 = 10_000_000;

/// A run like `tests/workloads/cpu_threads.py`: the GIL changes hands every 7 samples, the
/// others wait on it; stacks vary over a few functions.
fn write_recording(path: &Path, samples: u64) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut w = RecordingWriter::new(BufWriter::new(file))?;
    w.record(&Record::Target(TargetInfo {
        pid: 1000,
        command: vec!["python3".into(), "app.py".into()],
        python: "3.12.1".into(),
        gil: "enabled".into(),
        gil_wait_visible: true,
        notes: vec![],
        rate_hz: 100.0,
        arch: "x86_64".into(),
        cores: 2,
        started_unix_s: 0.0,
    }))?;
    w.record(&Record::GilRanges(vec![(GIL, GIL + 208)]))?;
    for id in 0..4u32 {
        w.record(&Record::Frame {
            id,
            frame: Frame {
                function: format!("work_{id}"),
                file: "/app/app.py".into(),
                line: 10 + id as i32,
            },
        })?;
    }
    w.record(&Record::Frame {
        id: 4,
        frame: Frame {
            function: "run".into(),
            file: "/usr/lib/python3.12/threading.py".into(),
            line: 1010,
        },
    })?;
    for id in 0..4u32 {
        w.record(&Record::Stack {
            id,
            frames: vec![id, 4],
        })?;
    }
    for t in 0..THREADS {
        w.record(&Record::ThreadName {
            tid: 1001 + t,
            name: format!("worker-{t}"),
        })?;
    }
    let mut cpu = [0u64; THREADS as usize];
    for i in 0..samples {
        let holder = 1001 + ((i / 7) % THREADS as u64) as u32;
        let threads = (0..THREADS)
            .map(|t| {
                let tid = 1001 + t;
                let holds = tid == holder;
                if holds {
                    cpu[t as usize] += INTERVAL_NS;
                }
                ThreadSample {
                    tid,
                    syscall: Some(if holds {
                        Syscall::Running
                    } else {
                        Syscall::Blocked {
                            nr: 202,
                            args: [GIL + 72, 0x189, 0],
                        }
                    }),
                    cpu_ns: Some(cpu[t as usize]),
                    stack: Some(((i / 13 + t as u64) % 4) as u32),
                    python: true,
                }
            })
            .collect();
        w.record(&Record::Sample(Sample {
            t_ns: i * INTERVAL_NS,
            process_cpu_ns: Some(cpu.iter().sum()),
            gil: Some(GilReading {
                locked: true,
                holder_tid: Some(holder),
                switch_number: Some(i / 7),
                enabled: None,
            }),
            threads,
        }))?;
    }
    w.record(&Record::End {
        ending: gilscope::model::Ending::Exited(0),
        duration_s: samples as f64 * INTERVAL_NS as f64 / 1e9,
    })?;
    w.finish()?;
    Ok(())
}

fn main() {
    let samples: u64 = std::env::var("GILSCOPE_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("long.gilscope");
    write_recording(&path, samples).expect("write the recording");
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
        "report of {samples} samples (replay, diagnose, terminal, JSON): median {:.0} ms, range {:.0}-{:.0} ms over {} runs",
        (times[4] + times[5]) / 2.0,
        times[0],
        times[9],
        times.len()
    );
}
