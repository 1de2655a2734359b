//! One watched process's record stream, cut into windows. Each window is folded by a fresh
//! [`Aggregator`] (so memory stays that of one window), first told what the stream said
//! before it (the target, thread names, frames, stacks, GIL ranges, the collector's state) and
//! given the previous window's last sample, so that CPU deltas run on without a gap.

use std::collections::HashMap;

use crate::analysis::{Aggregator, Analysis, ProfileWindow};
use crate::model::{Ending, Record, TargetInfo, Tid};
use crate::sampler::RecordSink;

/// What a new window's aggregator must be told first.
#[derive(Debug, Default)]
struct Preamble {
    target: Option<TargetInfo>,
    gil_ranges: Option<Record>,
    names: HashMap<Tid, String>,
    /// Frames, stacks and source lines, in the order defined.
    definitions: Vec<Record>,
    gc: Option<Record>,
    gil_enabled: Option<Record>,
}

impl Preamble {
    fn note(&mut self, record: &Record) {
        match record {
            Record::Target(info) => self.target = Some(info.clone()),
            Record::GilRanges(_) => self.gil_ranges = Some(record.clone()),
            Record::ThreadName { tid, name } => {
                self.names.insert(*tid, name.clone());
            }
            Record::Frame { .. } | Record::Stack { .. } | Record::SourceLine { .. } => {
                self.definitions.push(record.clone())
            }
            Record::GcCollecting { .. } => self.gc = Some(record.clone()),
            Record::GilEnabled { .. } => self.gil_enabled = Some(record.clone()),
            // Names of threads gone by now are not needed again.
            Record::Sample(sample) if self.names.len() > sample.threads.len() => {
                self.names
                    .retain(|tid, _| sample.threads.iter().any(|t| t.tid == *tid));
            }
            _ => {}
        }
    }

    /// Tells a new aggregator the stream so far, its target's rate set to `rate_hz`.
    fn replay_into(&self, aggregator: &mut Aggregator, rate_hz: f64) {
        if let Some(target) = &self.target {
            aggregator.push(&Record::Target(TargetInfo {
                rate_hz,
                ..target.clone()
            }));
        }
        let rest = self.gil_ranges.iter().chain(&self.definitions);
        for record in rest.chain(&self.gc).chain(&self.gil_enabled) {
            aggregator.push(record);
        }
        for (tid, name) in &self.names {
            aggregator.push(&Record::ThreadName {
                tid: *tid,
                name: name.clone(),
            });
        }
    }
}

/// A process's records, folded window by window.
#[derive(Debug, Default)]
pub struct WindowedRecords {
    preamble: Preamble,
    aggregator: Aggregator,
    /// Each window's samples are also counted by stack, for a profile push.
    profiles: bool,
    /// The last sample seen, which also opens the next window.
    last_sample: Option<Record>,
    samples: u64,
}

impl RecordSink for WindowedRecords {
    fn record(&mut self, record: &Record) -> std::io::Result<()> {
        self.preamble.note(record);
        self.aggregator.push(record);
        if let Record::Sample(_) = record {
            self.samples += 1;
            self.last_sample = Some(record.clone());
        }
        Ok(())
    }
}

/// A window, closed.
pub struct ClosedWindow {
    pub analysis: Analysis,
    /// Its samples by stack; empty unless the records collect profiles.
    pub profile: ProfileWindow,
}

impl WindowedRecords {
    /// Records that also count each window's samples by stack, when `profiles`.
    pub fn new(profiles: bool) -> WindowedRecords {
        let mut records = WindowedRecords {
            profiles,
            ..WindowedRecords::default()
        };
        if profiles {
            records.aggregator.collect_profile_windows();
        }
        records
    }

    /// Counts samples the sampler meant to take but could not.
    pub fn late(&mut self, count: u32) {
        self.aggregator.push(&Record::Late { count });
    }

    /// Ends the current window (with `ending`, when the process is gone) and starts the
    /// next at rate `rate_hz`. `None` when the window had fewer than two samples: nothing
    /// to measure a span on.
    pub fn close(&mut self, ending: Option<Ending>, rate_hz: f64) -> Option<ClosedWindow> {
        let mut next = Aggregator::new();
        self.preamble.replay_into(&mut next, rate_hz);
        if let Some(sample) = &self.last_sample {
            next.push(sample);
        }
        if self.profiles {
            // The sample carried over was counted in the window it closed.
            next.collect_profile_windows();
        }
        let mut done = std::mem::replace(&mut self.aggregator, next);
        let samples = std::mem::replace(&mut self.samples, u64::from(self.last_sample.is_some()));
        if samples < 2 {
            return None;
        }
        if let Some(ending) = ending {
            done.push(&Record::End {
                ending,
                duration_s: 0.0,
            });
        }
        let profile = done.take_profile_window();
        Some(ClosedWindow {
            analysis: done.finish(),
            profile,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Frame, GilMode, Pid, Sample};

    fn target(pid: u32) -> TargetInfo {
        TargetInfo {
            pid: Pid(pid),
            command: vec!["python3".into(), "app.py".into()],
            python: "3.12.1".into(),
            gil: GilMode::Enabled,
            gil_wait_visible: true,
            notes: Vec::new(),
            rate_hz: 20.0,
            arch: "x86_64".into(),
            cores: 2,
            started_unix_s: 0.0,
        }
    }

    fn sample(t_ns: u64) -> Record {
        Record::Sample(Sample {
            t_ns,
            process_cpu_ns: Some(t_ns / 2),
            gil: None,
            threads: Vec::new(),
        })
    }

    #[test]
    fn windows_tile_the_run_and_keep_what_was_defined_before_them() {
        let mut windows = WindowedRecords::default();
        windows.record(&Record::Target(target(42))).unwrap();
        let frame = Frame {
            function: "work".into(),
            file: "app.py".into(),
            line: 3,
        };
        windows.record(&Record::Frame { id: 0, frame }).unwrap();
        for t in 0..=10 {
            windows.record(&sample(t * 50_000_000)).unwrap();
        }
        let first = windows
            .close(None, 10.0)
            .expect("a window of 11 samples")
            .analysis;
        assert!(
            (first.duration_s - 0.5).abs() < 1e-9,
            "{}",
            first.duration_s
        );
        for t in 11..=20 {
            windows.record(&sample(t * 50_000_000)).unwrap();
        }
        let second = windows.close(None, 10.0).expect("a second window").analysis;
        // The second window starts where the first ended: no gap, no overlap in time.
        assert!(
            (second.duration_s - 0.5).abs() < 1e-9,
            "{}",
            second.duration_s
        );
        assert_eq!(
            second.frames.len(),
            1,
            "the frame defined in the first window"
        );
        assert_eq!(second.target.as_ref().map(|t| t.rate_hz), Some(10.0));
        assert!(
            windows.close(None, 10.0).is_none(),
            "one carried-over sample is no window"
        );
    }

    /// A day of 10 s windows of a thread-per-request server (a new thread every request,
    /// twenty a window, each named), simulated: what the windows carry from one to the next,
    /// and the metrics, stay the size of one window.
    #[test]
    fn a_day_of_windows_keeps_memory_flat() {
        use crate::agent::figures::WindowFigures;
        use crate::agent::identity::Identity;
        use crate::agent::metrics::Metrics;
        use crate::diagnosis::VerdictKind;
        use crate::model::{Syscall, ThreadSample};

        const WINDOWS: u64 = 24 * 360;
        let mut windows = WindowedRecords::new(true);
        windows.record(&Record::Target(target(7))).unwrap();
        for (id, function) in ["serve_forever", "process_request_thread", "handle"]
            .iter()
            .enumerate()
        {
            let frame = Frame {
                function: function.to_string(),
                file: "socketserver.py".into(),
                line: 10 * id as i32,
            };
            windows
                .record(&Record::Frame {
                    id: id as u32,
                    frame,
                })
                .unwrap();
        }
        windows
            .record(&Record::Stack {
                id: 0,
                frames: vec![0],
            })
            .unwrap();
        windows
            .record(&Record::Stack {
                id: 1,
                frames: vec![2, 1],
            })
            .unwrap();
        let metrics = Metrics::new();
        let identity = Identity {
            pid: 7,
            service: "server".into(),
            command: Vec::new(),
            container_id: None,
            pod_uid: None,
            env_labels: Vec::new(),
        };
        let mut published = metrics.watch(&identity, "3.12.1");
        let thread = |tid: u32, t: u64| ThreadSample {
            tid: Tid(tid),
            syscall: Some(Syscall::Blocked {
                nr: 7,
                args: [0; 3],
            }),
            cpu_ns: Some(t / 100),
            stack: Some(u32::from(tid != 7)),
            python: true,
        };
        let mut sizes = Vec::new();
        let mut t = 0u64;
        for window in 0..WINDOWS {
            for request in 0..20u64 {
                // Each request's thread lives for a tenth of the window.
                let tid = 1000 + (window * 20 + request) as u32;
                windows
                    .record(&Record::ThreadName {
                        tid: Tid(tid),
                        name: format!("Thread-{tid} (process_request_thread)"),
                    })
                    .unwrap();
                for _ in 0..10 {
                    t += 50_000_000;
                    let sample = Sample {
                        t_ns: t,
                        process_cpu_ns: Some(t / 50),
                        gil: None,
                        threads: vec![thread(7, t), thread(tid, t)],
                    };
                    windows.record(&Record::Sample(sample)).unwrap();
                }
            }
            let closed = windows.close(None, 20.0).expect("a window");
            let figures = WindowFigures::of(&closed.analysis, VerdictKind::IoBound);
            metrics.add_window(&identity, &figures, &mut published);
            if window == 10 || window == WINDOWS - 1 {
                sizes.push((
                    windows.preamble.names.len(),
                    windows.preamble.definitions.len(),
                    metrics.encode().len(),
                ));
            }
        }
        assert_eq!(sizes[0].0, sizes[1].0, "thread names kept: {sizes:?}");
        assert!(sizes[1].0 <= 2, "only the live threads' names: {sizes:?}");
        assert_eq!(sizes[0].1, sizes[1].1, "definitions kept: {sizes:?}");
        // The counters' digits grow; the series do not.
        assert!(
            sizes[1].2 < sizes[0].2 + 200,
            "the metrics' text: {sizes:?}"
        );
    }
}
