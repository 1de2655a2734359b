//! A synthetic recording for the benches: `threads` Python threads at 100 Hz, one holding the
//! GIL at each sample, the others waiting for it, in I/O, asleep or on a lock, each changing
//! what it does every few samples over 1000 distinct stacks (as in
//! `bench/workloads/mixed100.py`). Deterministic: every run writes the same file.

// Each bench target uses a part of this module.
#![allow(dead_code)]

use std::io::BufWriter;
use std::path::Path;

use gilscope::model::{
    Ending, Frame, GilReading, Record, Sample, Syscall, TargetInfo, ThreadSample,
};
use gilscope::recording::RecordingWriter;
use gilscope::sampler::RecordSink;

const GIL: u64 = 0x7f00_0000_1000;
pub const INTERVAL_NS: u64 = 10_000_000;

/// A bench setting from the environment, or its default.
pub fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// xorshift: cheap and reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Writes `samples` samples of `threads` threads to `path`.
pub fn write_recording(path: &Path, samples: u64, threads: u32) -> std::io::Result<()> {
    let mut w = RecordingWriter::new(BufWriter::new(std::fs::File::create(path)?))?;
    w.record(&Record::Target(TargetInfo {
        pid: gilscope::model::Pid(1000),
        command: vec!["python3".into(), "app.py".into()],
        python: "3.12.1".into(),
        gil: gilscope::model::GilMode::Enabled,
        gil_wait_visible: true,
        notes: vec![],
        rate_hz: 1e9 / INTERVAL_NS as f64,
        arch: "x86_64".into(),
        cores: 2,
        started_unix_s: 0.0,
    }))?;
    w.record(&Record::GilRanges(vec![(GIL, GIL + 208)]))?;
    for id in 0..200u32 {
        w.record(&Record::Frame {
            id,
            frame: Frame {
                function: format!("function_{id}"),
                file: format!("/app/module_{}.py", id % 20),
                line: id as i32,
            },
        })?;
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for id in 0..1000u32 {
        let frames = (0..8).map(|_| (rng.next() % 200) as u32).collect();
        w.record(&Record::Stack { id, frames })?;
    }
    let mut cpu = vec![0u64; threads as usize];
    let mut stacks: Vec<u32> = (0..threads).map(|t| t % 1000).collect();
    let mut kinds: Vec<u64> = vec![0; threads as usize];
    for i in 0..samples {
        let holder = 1001 + (rng.next() % threads as u64) as u32;
        let mut sample_threads = Vec::with_capacity(threads as usize);
        for t in 0..threads as usize {
            let tid = 1001 + t as u32;
            if rng.next().is_multiple_of(4) {
                kinds[t] = rng.next() % 4;
                stacks[t] = (rng.next() % 1000) as u32;
            }
            let syscall = if tid == holder {
                cpu[t] += INTERVAL_NS / 2;
                Syscall::Running
            } else {
                let (nr, first) = match kinds[t] {
                    0 => (202, GIL + 72), // futex on the GIL
                    1 => (0, 5),          // read
                    2 => (230, 1),        // clock_nanosleep
                    _ => (202, 0x5000),   // futex elsewhere: a lock
                };
                Syscall::Blocked {
                    nr,
                    args: [first, 0, 0],
                }
            };
            sample_threads.push(ThreadSample {
                tid: gilscope::model::Tid(tid),
                syscall: Some(syscall),
                cpu_ns: Some(cpu[t]),
                stack: Some(stacks[t]),
                python: true,
            });
        }
        w.record(&Record::Sample(Sample {
            t_ns: i * INTERVAL_NS,
            process_cpu_ns: Some(cpu.iter().sum()),
            gil: Some(GilReading {
                locked: true,
                holder_tid: Some(gilscope::model::Tid(holder)),
                switch_number: Some(i),
                enabled: None,
            }),
            threads: sample_threads,
        }))?;
    }
    w.record(&Record::End {
        ending: Ending::Exited(0),
        duration_s: (samples * INTERVAL_NS) as f64 / 1e9,
    })?;
    w.finish()?;
    Ok(())
}
