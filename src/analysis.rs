//! Streaming aggregation: records in, an [`Analysis`] out. Memory is bounded by the number of
//! threads, distinct stacks and seconds of the run, never by the number of samples.

use std::collections::HashMap;

use crate::classify::{classify, is_transit_candidate, resolve_transit, Observation};
use crate::model::{Ending, Frame, Record, Sample, TargetInfo, ThreadState};
use crate::sampler::RecordSink;

/// Length of a timeline window, for phases and pictures.
pub const WINDOW_NS: u64 = 1_000_000_000;
/// The timeline keeps at most this many segments (state runs) over all threads; past it the
/// pictures stop and say so, while the totals go on.
pub const MAX_TIMELINE_SEGMENTS: usize = 2_000_000;

/// A run of consecutive samples of one thread in one state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start_ns: u64,
    pub end_ns: u64,
    pub state: ThreadState,
    /// The stack of the run's first sample.
    pub stack: Option<u32>,
}

/// A run of samples with the same GIL holder (`None`: free, or held by an unknown thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GilSegment {
    pub start_ns: u64,
    pub end_ns: u64,
    pub locked: bool,
    pub holder: Option<u32>,
}

/// One thread's totals over the run.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadSummary {
    pub tid: u32,
    pub name: String,
    pub python: bool,
    pub samples: u64,
    pub cpu_s: f64,
    /// Sample counts per state, indexed by [`ThreadState::index`].
    pub counts: [u64; 8],
    /// Time per state (ns): each sample weighs the time since the thread's previous sample.
    pub time_ns: [u64; 8],
    /// Samples per (state, stack id), for hot functions and flame graphs.
    pub stacks: HashMap<(ThreadState, u32), u64>,
    pub first_t_ns: u64,
    pub last_t_ns: u64,
    /// The thread's states over time.
    pub timeline: Vec<Segment>,
}

impl ThreadSummary {
    /// Share of the thread's observed time in `state`. Each sample stands for the time since
    /// the thread's previous sample, so a sampler that falls behind (a deep stack, a loaded
    /// machine) does not bias the fractions toward the moments it kept up.
    pub fn fraction(&self, state: ThreadState) -> f64 {
        let total: u64 = self.time_ns.iter().sum();
        if total == 0 {
            0.0
        } else {
            self.time_ns[state.index()] as f64 / total as f64
        }
    }

    /// Share of the thread's time in any of `states`.
    pub fn share(&self, states: &[ThreadState]) -> f64 {
        states.iter().map(|&s| self.fraction(s)).sum()
    }
}

/// Process-wide totals over one window of time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    pub start_ns: u64,
    pub ticks: u64,
    /// Thread-samples per state, summed over threads.
    pub counts: [u64; 8],
    pub gil_locked: u64,
    pub gil_readings: u64,
    pub cpu_ns: u64,
    /// GIL hand-offs counted in this window.
    pub switches: u64,
}

/// Everything the diagnosis and the renderers need.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub target: Option<TargetInfo>,
    pub ending: Option<Ending>,
    pub duration_s: f64,
    pub ticks: u64,
    pub late: u64,
    pub frames: Vec<Frame>,
    pub stacks: Vec<Vec<u32>>,
    pub threads: Vec<ThreadSummary>,
    /// Share of ticks in which the main GIL was locked; `None` where it could not be read.
    pub gil_held: Option<f64>,
    pub gil_switches_per_s: Option<f64>,
    pub cpu_cores_used: f64,
    pub windows: Vec<Window>,
    pub gil_timeline: Vec<GilSegment>,
    /// True when [`MAX_TIMELINE_SEGMENTS`] cut the timelines short.
    pub timeline_truncated: bool,
    /// Ticks whose Python stacks could not be read, and the last reason.
    pub stack_errors: Option<(u64, String)>,
}

impl Analysis {
    /// The innermost frame of a stack.
    pub fn top_frame(&self, stack: u32) -> Option<&Frame> {
        let id = *self.stacks.get(stack as usize)?.first()?;
        self.frames.get(id as usize)
    }

    pub fn stack_frames(&self, stack: u32) -> impl Iterator<Item = &Frame> {
        self.stacks
            .get(stack as usize)
            .into_iter()
            .flatten()
            .filter_map(|&id| self.frames.get(id as usize))
    }

    pub fn cores(&self) -> u32 {
        self.target.as_ref().map_or(1, |t| t.cores.max(1))
    }
}

#[derive(Debug)]
struct ThreadAcc {
    summary: ThreadSummary,
    last_cpu_ns: Option<u64>,
    previous: Option<ThreadState>,
    /// A sample whose state waits for the next one (see [`is_transit_candidate`]).
    pending: Option<Pending>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    stack: Option<u32>,
    window: usize,
    t_ns: u64,
    /// The time this sample stands for.
    weight_ns: u64,
}

/// Where a counted sample goes besides the thread's own totals.
struct Totals<'a> {
    windows: &'a mut [Window],
    segments: &'a mut usize,
}

impl ThreadAcc {
    fn count(&mut self, totals: &mut Totals, at: Pending, state: ThreadState) {
        let s = &mut self.summary;
        s.samples += 1;
        s.counts[state.index()] += 1;
        s.time_ns[state.index()] += at.weight_ns;
        if let Some(stack) = at.stack {
            *s.stacks.entry((state, stack)).or_insert(0) += 1;
        }
        if let Some(w) = totals.windows.get_mut(at.window) {
            w.counts[state.index()] += 1;
        }
        match s.timeline.last_mut() {
            Some(last) if last.state == state => last.end_ns = at.t_ns,
            last => {
                if let Some(last) = last {
                    last.end_ns = at.t_ns;
                }
                if *totals.segments < MAX_TIMELINE_SEGMENTS {
                    *totals.segments += 1;
                    s.timeline.push(Segment {
                        start_ns: at.t_ns,
                        end_ns: at.t_ns,
                        state,
                        stack: at.stack,
                    });
                }
            }
        }
    }

    /// Settles a pending sample now that the next state is known (`None`: the thread ended).
    fn settle(&mut self, totals: &mut Totals, next: Option<ThreadState>) {
        if let Some(p) = self.pending.take() {
            self.count(totals, p, resolve_transit(next));
        }
    }

    /// Closes the thread: a pending sample is settled, and its last run gets one interval.
    fn close(mut self, totals: &mut Totals, interval_ns: u64) -> ThreadSummary {
        self.settle(totals, None);
        if let Some(last) = self.summary.timeline.last_mut() {
            last.end_ns += interval_ns;
        }
        self.summary
    }
}

/// Folds records into an [`Analysis`].
#[derive(Debug, Default)]
pub struct Aggregator {
    target: Option<TargetInfo>,
    gil_ranges: Vec<(u64, u64)>,
    frames: Vec<Frame>,
    stacks: Vec<Vec<u32>>,
    names: HashMap<u32, String>,
    finished: Vec<ThreadSummary>,
    /// Threads present in the last sample, by tid: a tid that vanishes and comes back is a
    /// new thread (the kernel reuses ids).
    live: HashMap<u32, ThreadAcc>,
    ticks: u64,
    late: u64,
    last_t_ns: Option<u64>,
    first_t_ns: Option<u64>,
    gil_readings: u64,
    gil_locked: u64,
    switches: Option<((u64, u64), (u64, u64))>,
    process_cpu: Option<((u64, u64), (u64, u64))>,
    thread_cpu_ns: u64,
    windows: Vec<Window>,
    gil_timeline: Vec<GilSegment>,
    last_switch_number: Option<u64>,
    segments: usize,
    stack_errors: Option<(u64, String)>,
    ending: Option<(Ending, f64)>,
}

impl Aggregator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, record: &Record) {
        match record {
            Record::Target(info) => self.target = Some(info.clone()),
            Record::GilRanges(ranges) => self.gil_ranges = ranges.clone(),
            Record::Frame { id, frame } => set_at(&mut self.frames, *id, frame.clone()),
            Record::Stack { id, frames } => set_at(&mut self.stacks, *id, frames.clone()),
            Record::ThreadName { tid, name } => {
                if let Some(acc) = self.live.get_mut(tid) {
                    acc.summary.name = name.clone();
                }
                self.names.insert(*tid, name.clone());
            }
            Record::Sample(sample) => self.push_sample(sample),
            Record::Late { count } => self.late += *count as u64,
            Record::StackErrors { count, last } => {
                self.stack_errors = Some((*count as u64, last.clone()))
            }
            Record::End { ending, duration_s } => self.ending = Some((ending.clone(), *duration_s)),
        }
    }

    fn push_sample(&mut self, sample: &Sample) {
        let interval_ns = self.interval_ns();
        let t = sample.t_ns;
        if self.last_t_ns.is_some_and(|last| t < last) {
            return; // out of order: a corrupt or concatenated file
        }
        self.first_t_ns.get_or_insert(t);
        self.ticks += 1;
        let window_index = (t / WINDOW_NS) as usize;
        if window_index >= self.windows.len() {
            let start = self.windows.len() as u64;
            self.windows
                .extend((start..=window_index as u64).map(|i| Window {
                    start_ns: i * WINDOW_NS,
                    ..Window::default()
                }));
        }
        let arch = self
            .target
            .as_ref()
            .map_or(std::env::consts::ARCH, |t| t.arch.as_str());
        let window = &mut self.windows[window_index];
        window.ticks += 1;

        if let Some(gil) = sample.gil {
            self.gil_readings += 1;
            window.gil_readings += 1;
            if gil.locked {
                self.gil_locked += 1;
                window.gil_locked += 1;
            }
            if let Some(n) = gil.switch_number {
                let first = self.switches.map_or((t, n), |(first, _)| first);
                self.switches = Some((first, (t, n)));
                if let Some(last) = self.last_switch_number {
                    window.switches += n.saturating_sub(last);
                }
                self.last_switch_number = Some(n);
            }
            let holder = if gil.locked { gil.holder_tid } else { None };
            match self.gil_timeline.last_mut() {
                Some(last) if last.locked == gil.locked && last.holder == holder => last.end_ns = t,
                last => {
                    if let Some(last) = last {
                        last.end_ns = t;
                    }
                    if self.segments < MAX_TIMELINE_SEGMENTS {
                        self.segments += 1;
                        self.gil_timeline.push(GilSegment {
                            start_ns: t,
                            end_ns: t,
                            locked: gil.locked,
                            holder,
                        });
                    }
                }
            }
        }
        if let Some(cpu) = sample.process_cpu_ns {
            let first = self.process_cpu.map_or((t, cpu), |(first, _)| first);
            self.process_cpu = Some((first, (t, cpu)));
        }

        let holder = sample
            .gil
            .and_then(|g| if g.locked { g.holder_tid } else { None });
        let mut previous_live = std::mem::take(&mut self.live);
        for ts in &sample.threads {
            let mut acc = previous_live.remove(&ts.tid).unwrap_or_else(|| ThreadAcc {
                summary: ThreadSummary {
                    tid: ts.tid,
                    name: self.names.get(&ts.tid).cloned().unwrap_or_default(),
                    python: false,
                    samples: 0,
                    cpu_s: 0.0,
                    counts: [0; 8],
                    time_ns: [0; 8],
                    stacks: HashMap::new(),
                    first_t_ns: t,
                    last_t_ns: t,
                    timeline: Vec::new(),
                },
                last_cpu_ns: None,
                previous: None,
                pending: None,
            });
            let dt = t.saturating_sub(acc.summary.last_t_ns);
            let cpu_delta = match (acc.last_cpu_ns, ts.cpu_ns) {
                (Some(before), Some(now)) if now >= before => Some(now - before),
                _ => None,
            };
            let cpu_share = cpu_delta.filter(|_| dt > 0).map(|d| d as f64 / dt as f64);
            let obs = Observation {
                syscall: ts.syscall,
                cpu_share,
                holds_gil: holder == Some(ts.tid),
                gil_ranges: &self.gil_ranges,
                previous: acc.previous,
                arch,
            };
            let state = classify(&obs);
            let mut totals = Totals {
                windows: &mut self.windows,
                segments: &mut self.segments,
            };
            acc.settle(&mut totals, Some(state));
            let at = Pending {
                stack: ts.stack,
                window: window_index,
                t_ns: t,
                weight_ns: if dt > 0 { dt } else { interval_ns },
            };
            if is_transit_candidate(&obs, state) {
                acc.pending = Some(at);
            } else {
                acc.count(&mut totals, at, state);
            }
            let s = &mut acc.summary;
            s.python |= ts.python;
            s.last_t_ns = t;
            if let Some(d) = cpu_delta {
                s.cpu_s += d as f64 / 1e9;
                self.thread_cpu_ns += d;
                self.windows[window_index].cpu_ns += d;
            }
            if ts.cpu_ns.is_some() {
                acc.last_cpu_ns = ts.cpu_ns;
            }
            acc.previous = Some(state);
            self.live.insert(ts.tid, acc);
        }
        let mut totals = Totals {
            windows: &mut self.windows,
            segments: &mut self.segments,
        };
        for acc in previous_live.into_values() {
            self.finished.push(acc.close(&mut totals, interval_ns));
        }
        self.last_t_ns = Some(t);
    }

    /// The sampling interval, to give the last sample of a run its width.
    fn interval_ns(&self) -> u64 {
        self.target
            .as_ref()
            .filter(|t| t.rate_hz > 0.0)
            .map_or(10_000_000, |t| (1e9 / t.rate_hz) as u64)
    }

    pub fn finish(mut self) -> Analysis {
        let interval_ns = self.interval_ns();
        let mut totals = Totals {
            windows: &mut self.windows,
            segments: &mut self.segments,
        };
        let mut threads = self.finished;
        for acc in self.live.into_values() {
            threads.push(acc.close(&mut totals, interval_ns));
        }
        if let Some(last) = self.gil_timeline.last_mut() {
            last.end_ns += interval_ns;
        }
        threads.sort_by_key(|t| (t.first_t_ns, t.tid));
        let span_ns = match (self.first_t_ns, self.last_t_ns) {
            (Some(a), Some(b)) => b - a,
            _ => 0,
        };
        let duration_s = match &self.ending {
            Some((_, d)) if *d > 0.0 => *d,
            _ => span_ns as f64 / 1e9,
        };
        let per_second = |((t0, v0), (t1, v1)): ((u64, u64), (u64, u64))| {
            (t1 > t0).then(|| v1.saturating_sub(v0) as f64 / ((t1 - t0) as f64 / 1e9))
        };
        let cpu_cores_used = self
            .process_cpu
            .and_then(per_second)
            .filter(|&c| c > 0.0)
            .or_else(|| (span_ns > 0).then(|| self.thread_cpu_ns as f64 / (span_ns as f64 / 1e9)))
            .unwrap_or(0.0)
            / 1e9;
        // Window buckets start at 0 even when an attach begins mid-run: keep only those seen.
        self.windows.retain(|w| w.ticks > 0);
        Analysis {
            target: self.target,
            ending: self.ending.map(|(e, _)| e),
            duration_s,
            ticks: self.ticks,
            late: self.late,
            frames: self.frames,
            stacks: self.stacks,
            threads,
            gil_held: (self.gil_readings > 0)
                .then(|| self.gil_locked as f64 / self.gil_readings as f64),
            gil_switches_per_s: self.switches.and_then(per_second),
            cpu_cores_used,
            windows: self.windows,
            gil_timeline: self.gil_timeline,
            timeline_truncated: self.segments >= MAX_TIMELINE_SEGMENTS,
            stack_errors: self.stack_errors,
        }
    }
}

impl RecordSink for Aggregator {
    fn record(&mut self, record: &Record) -> std::io::Result<()> {
        self.push(record);
        Ok(())
    }
}

/// Stores `value` at `id`. The sampler hands out ids in sequence, so an id past the end comes
/// from a corrupt file and is dropped rather than allowed to allocate.
fn set_at<T>(table: &mut Vec<T>, id: u32, value: T) {
    let id = id as usize;
    if id < table.len() {
        table[id] = value;
    } else if id == table.len() {
        table.push(value);
    }
}
