//! Memory over a long run: a one-hour recording at 100 Hz of 100 threads (36 million
//! thread-samples, states changing every few samples, as in `bench/workloads/mixed100.py`),
//! reported by `gilscope report`, whose peak RSS is printed. The aggregation that bounds a
//! live run's memory is the same code; the live sampler adds a constant per thread.
//!
//! `cargo bench --bench long_recording` (needs `cargo build --release` first).
//! `GILSCOPE_BENCH_SECONDS` and `GILSCOPE_BENCH_THREADS` change the run.

use std::io::BufWriter;
use std::process::Command;

use gilscope::model::{
    Ending, Frame, GilReading, Record, Sample, Syscall, TargetInfo, ThreadSample,
};
use gilscope::recording::RecordingWriter;
use gilscope::sampler::RecordSink;

const GIL: u64 = 0x7f00_0000_1000;
const INTERVAL_NS: u64 = 10_000_000;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A cheap deterministic generator (xorshift), so every run writes the same file.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn main() -> std::io::Result<()> {
    let seconds = env("GILSCOPE_BENCH_SECONDS", 3600);
    let threads = env("GILSCOPE_BENCH_THREADS", 100) as u32;
    let gilscope = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/gilscope");
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("hour.gilscope");
    let samples = seconds * 1_000_000_000 / INTERVAL_NS;
    let mut w = RecordingWriter::new(BufWriter::new(std::fs::File::create(&path)?))?;
    w.record(&Record::Target(TargetInfo {
        pid: 1000,
        command: vec!["python3".into(), "mixed100.py".into()],
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
    // 200 functions, 1000 distinct stacks of depth 8.
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
        for t in 0..threads {
            let tid = 1001 + t;
            // A thread changes what it does every few samples.
            if rng.next().is_multiple_of(4) {
                kinds[t as usize] = rng.next() % 4;
                stacks[t as usize] = (rng.next() % 1000) as u32;
            }
            let syscall = if tid == holder {
                cpu[t as usize] += INTERVAL_NS / 2;
                Syscall::Running
            } else {
                match kinds[t as usize] {
                    0 => Syscall::Blocked {
                        nr: 202,
                        args: [GIL + 72, 0x189, 0],
                    },
                    1 => Syscall::Blocked {
                        nr: 0,
                        args: [5, 0, 0],
                    },
                    2 => Syscall::Blocked {
                        nr: 230,
                        args: [1, 0, 0],
                    },
                    _ => Syscall::Blocked {
                        nr: 202,
                        args: [0x5000, 0x80, 0],
                    },
                }
            };
            sample_threads.push(ThreadSample {
                tid,
                syscall: Some(syscall),
                cpu_ns: Some(cpu[t as usize]),
                stack: Some(stacks[t as usize]),
                python: true,
            });
        }
        w.record(&Record::Sample(Sample {
            t_ns: i * INTERVAL_NS,
            process_cpu_ns: Some(cpu.iter().sum()),
            gil: Some(GilReading {
                locked: true,
                holder_tid: Some(holder),
                switch_number: Some(i),
                enabled: None,
            }),
            threads: sample_threads,
        }))?;
    }
    w.record(&Record::End {
        ending: Ending::Exited(0),
        duration_s: seconds as f64,
    })?;
    w.finish()?;
    let size = std::fs::metadata(&path)?.len();
    let started = std::time::Instant::now();
    let mut child = Command::new(&gilscope)
        .args(["report", "-q", "--json", "/dev/null"])
        .arg(&path)
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to locals; the child is ours.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    drop(child.try_wait());
    assert_eq!(waited, pid, "wait4 failed");
    assert_eq!(status, 0, "gilscope report failed");
    println!(
        "{seconds} s at 100 Hz, {threads} threads: {samples} samples, {} thread-samples, recording {:.0} MB; \
         gilscope report: peak RSS {:.1} MB, {:.1} s",
        samples * threads as u64,
        size as f64 / 1e6,
        usage.ru_maxrss as f64 / 1024.0,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
