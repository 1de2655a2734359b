//! Streaming aggregation: records in, an [`Analysis`] out; [`queries`] asks it questions.
//! Memory is bounded by the number of threads, distinct stacks and seconds of the run, never
//! by the number of samples.

use std::collections::HashMap;

pub mod groups;
mod process;
pub mod queries;
mod summary;
mod thread;
mod timeline;

use process::{ProcessAcc, Shared};
pub use summary::*;
use thread::{LineUse, StackMeanings};
use timeline::{ProfileCounts, Totals, Windows};

use crate::classify::Arch;
use crate::known_frames::ProcessRole;
use crate::model::{
    Ending, ExtensionModule, Frame, Pid, ProcessInfo, Record, Sample, TargetInfo, ThreadState, Tid,
};
use crate::sampler::RecordSink;
use groups::group_threads;

/// Folds records into an [`Analysis`]. A live view clones it to finish a snapshot while the run
/// goes on.
#[derive(Debug, Clone, Default)]
pub struct Aggregator {
    target: Option<TargetInfo>,
    frames: Vec<Frame>,
    stacks: Vec<Vec<u32>>,
    names: HashMap<Tid, String>,
    root: ProcessAcc,
    /// Descendants by pid, in the order found; one that ended stays, and a new process that
    /// reuses its pid replaces it only after it ended.
    descendants: Vec<ProcessAcc>,
    late: u64,
    windows: Windows,
    segments: usize,
    /// Counts for [`Aggregator::take_profile_window`], once asked for.
    profile: Option<ProfileCounts>,
    meanings: StackMeanings,
    lines: LineUse,
    stack_errors: Option<(u64, String)>,
    ending: Option<(Ending, f64)>,
    /// The first time a free-threaded build's GIL was found on: when, and the modules.
    gil_enabled: Option<(u64, Vec<ExtensionModule>)>,
    /// CPython 3.15's own GIL flags, counted per root thread.
    cpython_flags: HashMap<Tid, CpythonFlagCounts>,
    sources: HashMap<u32, String>,
}

/// How often CPython's own flags read set for one thread (see [`Record::CpythonGilFlags`]).
impl Aggregator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts every sample also into the current profile window, from now on.
    pub fn collect_profile_windows(&mut self) {
        self.profile.get_or_insert_with(HashMap::new);
    }

    /// The samples counted since the previous call (or since [`collect_profile_windows`]),
    /// and a new window begun. Memory stays that of one window's distinct stacks.
    ///
    /// [`collect_profile_windows`]: Aggregator::collect_profile_windows
    pub fn take_profile_window(&mut self) -> ProfileWindow {
        let counts = match &mut self.profile {
            Some(counts) => std::mem::take(counts),
            None => HashMap::new(),
        };
        let mut keys: Vec<_> = counts.into_iter().collect();
        keys.sort_unstable_by_key(|&(key, _)| key);
        let stacks = keys
            .into_iter()
            .map(|((pid, tid, state, stack), samples)| {
                let mut frames: Vec<Frame> = stack
                    .and_then(|id| self.stacks.get(id as usize))
                    .map_or(&[][..], |ids| ids.as_slice())
                    .iter()
                    .filter_map(|&id| self.frames.get(id as usize).cloned())
                    .collect();
                frames.reverse();
                WindowStack {
                    pid,
                    tid,
                    thread: self.names.get(&tid).cloned(),
                    state,
                    frames,
                    samples,
                }
            })
            .collect();
        ProfileWindow {
            interval_ns: self.interval_ns(),
            stacks,
        }
    }

    pub fn push(&mut self, record: &Record) {
        match record {
            Record::Target(info) => {
                self.root.pid = info.pid;
                self.root.command = info.command.clone();
                self.root.python = (!info.python.is_empty()).then(|| info.python.clone());
                self.root.gil_wait_visible = info.gil_wait_visible;
                self.target = Some(info.clone());
            }
            Record::GilRanges(ranges) => self.root.gil_ranges = ranges.clone(),
            Record::Frame { id, frame } => set_at(&mut self.frames, *id, frame.clone()),
            Record::Stack { id, frames } => set_at(&mut self.stacks, *id, frames.clone()),
            Record::ThreadName { tid, name } => {
                // The sampler sends an empty name for a thread whose name it could not read.
                let name = (!name.is_empty()).then(|| name.clone());
                for process in std::iter::once(&mut self.root).chain(&mut self.descendants) {
                    if let Some(acc) = process.live.get_mut(tid) {
                        acc.summary.name = name.clone();
                    }
                }
                match name {
                    Some(name) => self.names.insert(*tid, name),
                    None => self.names.remove(tid),
                };
            }
            Record::Sample(sample) => self.push_sample(None, sample),
            Record::Late { count } => self.late += *count as u64,
            Record::StackErrors { count, last } => {
                self.stack_errors = Some((*count as u64, last.clone()))
            }
            Record::End { ending, duration_s } => self.ending = Some((ending.clone(), *duration_s)),
            Record::Process(info) => self.add_process(info),
            Record::ProcessGilRanges { pid, ranges } => {
                if let Some(p) = self.descendant(*pid) {
                    p.gil_ranges = ranges.clone();
                }
            }
            Record::ProcessSample { pid, sample } => self.push_sample(Some(*pid), sample),
            Record::ProcessEnd { pid, t_ns, ending } => {
                if let Some(p) = self.descendant(*pid) {
                    p.ending = Some(ending.clone());
                    p.last_t_ns = Some(p.last_t_ns.unwrap_or(*t_ns).max(*t_ns));
                }
            }
            Record::CpythonGilFlags(flags) => {
                for f in flags {
                    let counts = self.cpython_flags.entry(f.tid).or_default();
                    counts.readings += 1;
                    counts.holds_gil += u64::from(f.holds_gil);
                    counts.gil_requested += u64::from(f.gil_requested);
                }
            }
            Record::SourceLine { frame, text } => {
                if (*frame as usize) < self.frames.len() {
                    self.sources.insert(*frame, text.clone());
                }
            }
            Record::GcCollecting {
                pid, collecting, ..
            } => {
                if let Some(p) = self.process_mut(*pid) {
                    p.gc = Some(*collecting);
                }
            }
            Record::ThreadStatuses { pid, threads } => {
                if let Some(p) = self.process_mut(*pid) {
                    for held in threads.iter().filter_map(|s| s.holds_lock_of.as_ref()) {
                        *p.contended_objects.entry(held.clone()).or_insert(0) += 1;
                    }
                    p.statuses = threads.iter().map(|s| (s.tid, s.clone())).collect();
                }
            }
            Record::GilEnabled { t_ns, modules } => {
                self.gil_enabled
                    .get_or_insert_with(|| (*t_ns, modules.clone()));
            }
            Record::RunDelays { pid, t_ns, threads } => {
                if let Some(p) = self.process_mut(*pid) {
                    for &(tid, delay_ns) in threads {
                        if let Some(acc) = p.live.get_mut(&tid) {
                            acc.note_run_delay(*t_ns, delay_ns);
                        }
                    }
                }
            }
            Record::ProcessGilEnabled { pid, t_ns, modules } => {
                if let Some(p) = self.descendant(*pid) {
                    p.gil_enabled
                        .get_or_insert_with(|| (*t_ns, modules.clone()));
                }
            }
        }
    }

    fn add_process(&mut self, info: &ProcessInfo) {
        self.descendants.push(ProcessAcc {
            pid: info.pid,
            parent: Some(info.parent),
            command: info.command.clone(),
            python: info.python.clone(),
            gil_wait_visible: info.gil_wait_visible,
            notes: info.notes.clone(),
            found_t_ns: Some(info.t_ns),
            ..ProcessAcc::default()
        });
    }

    fn descendant(&mut self, pid: Pid) -> Option<&mut ProcessAcc> {
        latest(&mut self.descendants, pid)
    }

    /// The root or the latest descendant with `pid`.
    fn process_mut(&mut self, pid: Pid) -> Option<&mut ProcessAcc> {
        if pid == self.root.pid {
            Some(&mut self.root)
        } else {
            self.descendant(pid)
        }
    }

    fn push_sample(&mut self, pid: Option<Pid>, sample: &Sample) {
        let interval_ns = self.interval_ns();
        let arch = Arch::from_name(
            self.target
                .as_ref()
                .map_or(std::env::consts::ARCH, |t| t.arch.as_str()),
        );
        let process = match pid {
            None => &mut self.root,
            Some(pid) => match latest(&mut self.descendants, pid) {
                Some(p) => p,
                None => return, // a sample before its process record: a corrupt file
            },
        };
        let mut shared = Shared {
            frames: &self.frames,
            stacks: &self.stacks,
            names: &self.names,
            totals: Totals {
                windows: &mut self.windows,
                segments: &mut self.segments,
                profile: self.profile.as_mut(),
            },
            meanings: &mut self.meanings,
            lines: &mut self.lines,
            arch,
            interval_ns,
            root: pid.is_none(),
        };
        process.push_sample(sample, &mut shared);
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
            profile: None,
        };
        let ticks = self.root.ticks;
        let span_ns = match (self.root.first_t_ns, self.root.last_t_ns) {
            (Some(a), Some(b)) => b - a,
            _ => 0,
        };
        let first_t_ns = self.root.first_t_ns.unwrap_or(0);
        let enabling = |(t_ns, modules): (u64, Vec<ExtensionModule>)| GilEnabling {
            at_s: t_ns.saturating_sub(first_t_ns) as f64 / 1e9,
            t_ns,
            modules,
        };
        let gil_enabled = self.gil_enabled.take().map(enabling);
        let mut root = std::mem::take(&mut self.root);
        root.ending = self.ending.as_ref().map(|(e, _)| e.clone());
        let (mut root_summary, mut threads) =
            root.finish(&mut totals, interval_ns, &self.frames, &self.stacks);
        root_summary.gil_enabled = gil_enabled.clone();
        for t in &mut threads {
            t.cpython_flags = self.cpython_flags.get(&t.tid).copied();
        }
        let mut processes = Vec::new();
        for mut process in std::mem::take(&mut self.descendants) {
            let gil_enabled = process.gil_enabled.take().map(enabling);
            let (mut summary, process_threads) =
                process.finish(&mut totals, interval_ns, &self.frames, &self.stacks);
            summary.gil_enabled = gil_enabled;
            threads.extend(process_threads);
            processes.push(summary);
        }
        if !processes.is_empty() {
            root_summary.role = ProcessRole::Parent;
        }
        processes.insert(0, root_summary);
        recognise_pools_by_shape(&mut processes, &threads);
        let duration_s = match &self.ending {
            Some((_, d)) if *d > 0.0 => *d,
            _ => span_ns as f64 / 1e9,
        };
        // The tree's GIL figures: held, weighed by each process's GIL readings; hand-offs summed.
        let readings: Vec<(f64, u64)> = processes
            .iter()
            .filter_map(|p| p.gil_held.map(|h| (h, p.ticks)))
            .collect();
        let weight: u64 = readings.iter().map(|&(_, n)| n).sum();
        let gil_held = (weight > 0)
            .then(|| readings.iter().map(|&(h, n)| h * n as f64).sum::<f64>() / weight as f64);
        let gil_switches_per_s = processes
            .iter()
            .filter_map(|p| p.gil_switches_per_s)
            .reduce(|a, b| a + b);
        // The root's cores, plus every descendant's CPU time spread over the run.
        let run_s = (span_ns as f64 / 1e9).max(1e-9);
        let cpu_cores_used = processes[0].cpu_cores_used
            + processes[1..].iter().map(|p| p.cpu_s).sum::<f64>() / run_s;
        let threads_waiting_for_cpu = threads_waiting_for_cpu(&threads, run_s);
        let windows = std::mem::take(&mut self.windows).into_sampled();
        let groups = group_threads(&threads, &self.frames, &self.stacks);
        Analysis {
            groups,
            target: self.target,
            ending: self.ending.map(|(e, _)| e),
            duration_s,
            ticks,
            late: self.late,
            threads_waiting_for_cpu,
            frames: self.frames,
            stacks: self.stacks,
            threads,
            processes,
            gil_held,
            gil_switches_per_s,
            cpu_cores_used,
            windows,
            timeline_truncated: self.segments >= MAX_TIMELINE_SEGMENTS,
            stack_errors: self.stack_errors,
            gil_enabled,
            sources: self.sources,
        }
    }
}

impl RecordSink for Aggregator {
    fn record(&mut self, record: &Record) -> std::io::Result<()> {
        self.push(record);
        Ok(())
    }
}

/// A parent's Python children that no frame names as pool workers are one all the same when
/// they have its shape: at least [`SHAPE_POOL_MIN`] of them run the same command, and each kept
/// its main thread on a CPU at least [`SHAPE_BUSY_MIN`] of its life (a hand-rolled pool of
/// `subprocess` workers, a library's own pool).
fn recognise_pools_by_shape(processes: &mut [ProcessSummary], threads: &[ThreadSummary]) {
    let busy = |p: &ProcessSummary| {
        threads
            .iter()
            .find(|t| t.pid == p.pid && t.tid == p.pid.main_thread())
            .is_some_and(|t| {
                t.share(&[ThreadState::Gil, ThreadState::Handoff, ThreadState::Native])
                    >= SHAPE_BUSY_MIN
            })
    };
    let mut siblings: HashMap<(Pid, Vec<String>), Vec<usize>> = HashMap::new();
    for (i, p) in processes.iter().enumerate() {
        let candidate = matches!(
            p.role,
            ProcessRole::Child | ProcessRole::MultiprocessingChild
        );
        if let (true, Some(parent), Some(_)) = (candidate, p.parent, &p.python) {
            if busy(p) {
                siblings
                    .entry((parent, p.command.clone()))
                    .or_default()
                    .push(i);
            }
        }
    }
    for members in siblings.into_values() {
        if members.len() >= SHAPE_POOL_MIN {
            for i in members {
                processes[i].role = ProcessRole::PoolWorker;
            }
        }
    }
}

/// A pool recognised by its shape has at least this many busy workers running one command.
const SHAPE_POOL_MIN: usize = 2;
/// Each of them on a CPU at least this share of its life.
const SHAPE_BUSY_MIN: f64 = 0.3;

/// The descendant with this pid that was found last: the live one, when a pid was reused.
/// Threads runnable without a CPU, on average over `run_s`; `None` where no run delay was read.
fn threads_waiting_for_cpu(threads: &[ThreadSummary], run_s: f64) -> Option<f64> {
    let waited_ns = threads
        .iter()
        .filter_map(|t| t.cpu_wait)
        .map(|w| w.waited_ns)
        .reduce(|a, b| a + b)?;
    Some(waited_ns as f64 / 1e9 / run_s)
}

fn latest(descendants: &mut [ProcessAcc], pid: Pid) -> Option<&mut ProcessAcc> {
    descendants.iter_mut().rev().find(|p| p.pid == pid)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GilMode, GilReading, Syscall, ThreadSample};

    fn target() -> Record {
        Record::Target(TargetInfo {
            pid: Pid(1),
            command: vec!["python3".into(), "app.py".into()],
            python: "3.12.1".into(),
            gil: GilMode::Enabled,
            gil_wait_visible: true,
            notes: vec![],
            rate_hz: 1.0,
            arch: "x86_64".into(),
            cores: 2,
            started_unix_s: 0.0,
        })
    }

    /// Thread 2 holds the GIL; thread 3 sleeps.
    fn sample(t_ns: u64) -> Record {
        let thread = |tid, syscall| ThreadSample {
            tid: Tid(tid),
            syscall: Some(syscall),
            cpu_ns: Some(t_ns),
            stack: None,
            python: true,
        };
        Record::Sample(Sample {
            t_ns,
            process_cpu_ns: Some(t_ns),
            gil: Some(GilReading {
                locked: true,
                holder_tid: Some(Tid(2)),
                switch_number: None,
                enabled: None,
            }),
            threads: vec![
                thread(2, Syscall::Running),
                thread(
                    3,
                    Syscall::Blocked {
                        nr: 35,
                        args: [0; 3],
                    },
                ),
            ],
        })
    }

    #[test]
    fn a_long_run_merges_its_windows_and_keeps_every_count() {
        let mut aggregator = Aggregator::new();
        aggregator.push(&target());
        let seconds = MAX_WINDOWS as u64 * 3;
        for s in 0..seconds {
            aggregator.push(&sample(s * WINDOW_NS));
        }
        let analysis = aggregator.finish();
        assert!(analysis.windows.len() <= MAX_WINDOWS);
        assert!(analysis.windows.len() > MAX_WINDOWS / 4);
        assert!(analysis
            .windows
            .iter()
            .all(|w| w.length_ns == 4 * WINDOW_NS));
        let ticks: u64 = analysis.windows.iter().map(|w| w.ticks).sum();
        assert_eq!(ticks, seconds, "merging loses no tick");
        let held: u64 = analysis
            .windows
            .iter()
            .map(|w| w.counts[ThreadState::Gil])
            .sum();
        assert_eq!(held, seconds);
        for pair in analysis.windows.windows(2) {
            assert_eq!(pair[0].start_ns + pair[0].length_ns, pair[1].start_ns);
        }
    }

    #[test]
    fn a_main_thread_with_only_the_interpreters_os_name_is_main_thread() {
        let mut aggregator = Aggregator::new();
        aggregator.push(&target());
        aggregator.push(&Record::ThreadName {
            tid: Tid(1),
            name: "python3.12".into(),
        });
        aggregator.push(&Record::ThreadName {
            tid: Tid(2),
            name: "python3.12".into(),
        });
        for s in 0..3 {
            aggregator.push(&Record::Sample(Sample {
                t_ns: s * 10_000_000,
                process_cpu_ns: None,
                gil: None,
                threads: [1, 2]
                    .map(|tid| ThreadSample {
                        tid: Tid(tid),
                        syscall: Some(Syscall::Running),
                        cpu_ns: Some(s * 10_000_000),
                        stack: None,
                        python: true,
                    })
                    .to_vec(),
            }));
        }
        let analysis = aggregator.finish();
        let name = |tid| {
            analysis
                .threads
                .iter()
                .find(|t| t.tid == Tid(tid))
                .and_then(|t| t.name.clone())
        };
        assert_eq!(name(1).as_deref(), Some("MainThread"));
        assert_eq!(
            name(2).as_deref(),
            Some("python3.12"),
            "not the main thread"
        );
    }

    #[test]
    fn a_profile_window_holds_the_samples_since_the_last_one() {
        let mut aggregator = Aggregator::new();
        aggregator.push(&target());
        aggregator.push(&sample(0));
        aggregator.collect_profile_windows();
        aggregator.push(&Record::ThreadName {
            tid: Tid(2),
            name: "worker".into(),
        });
        for s in 1..=10 {
            aggregator.push(&sample(s * WINDOW_NS));
        }
        let window = aggregator.take_profile_window();
        assert_eq!(window.interval_ns, WINDOW_NS);
        let of = |w: &ProfileWindow, tid, state| {
            w.stacks
                .iter()
                .filter(|s| s.tid == Tid(tid) && s.state == state)
                .map(|s| s.samples)
                .sum::<u64>()
        };
        assert_eq!(
            of(&window, 2, ThreadState::Gil),
            10,
            "not the sample before"
        );
        assert_eq!(of(&window, 3, ThreadState::Sleep), 10);
        assert_eq!(window.stacks[0].thread.as_deref(), Some("worker"));
        aggregator.push(&sample(11 * WINDOW_NS));
        let next = aggregator.take_profile_window();
        assert_eq!(of(&next, 2, ThreadState::Gil), 1, "a new window begins");
        assert!(aggregator.take_profile_window().stacks.is_empty());
    }

    #[test]
    fn run_delays_give_each_thread_and_the_run_their_wait_for_a_cpu() {
        let mut aggregator = Aggregator::new();
        aggregator.push(&target());
        for s in 0..=10 {
            let t_ns = s * WINDOW_NS / 10;
            // Thread 2 waits for a CPU a quarter of the time; thread 3 never. As live, the
            // delays come before the tick's sample.
            aggregator.push(&Record::RunDelays {
                pid: Pid(1),
                t_ns,
                threads: vec![(Tid(2), 500 + t_ns / 4), (Tid(3), 0)],
            });
            aggregator.push(&sample(t_ns));
        }
        let analysis = aggregator.finish();
        let share = |tid| {
            analysis
                .threads
                .iter()
                .find(|t| t.tid == Tid(tid))
                .and_then(|t| t.cpu_wait)
                .map(|w| w.share())
        };
        // The first reading comes before thread 2's first sample: counted from the second.
        let two = share(2).expect("thread 2 read twice");
        assert!((two - 0.25).abs() < 1e-9, "{two}");
        assert_eq!(share(3), Some(0.0));
        let waiting = analysis.threads_waiting_for_cpu.expect("read");
        assert!((waiting - 0.225).abs() < 1e-6, "{waiting}");
    }
}
