//! The analysis's output: per-thread and per-process summaries, the timeline's windows and
//! segments, and the pieces a continuous push takes.

use std::collections::HashMap;

use crate::known_frames::ProcessRole;
use crate::model::{Ending, ExtensionModule, Frame, PerState, Pid, TargetInfo, ThreadState, Tid};

use super::groups::{group_threads, ThreadGroup};

/// Length of a timeline window, for phases and pictures, until a long run coarsens them.
pub const WINDOW_NS: u64 = 1_000_000_000;
/// A run keeps at most this many windows: past it, neighbours merge and windows grow twice as
/// long, so a run of days keeps its memory flat (a little over an hour of 1 s windows).
pub const MAX_WINDOWS: usize = 4096;
/// The timeline keeps at most this many segments (state runs) over all threads; past it the
/// pictures stop and say so, while the totals go on. 32 bytes each: 32 MB, which keeps a
/// one-hour run of 100 busy threads under 64 MB (`cargo bench --bench long_recording`).
pub const MAX_TIMELINE_SEGMENTS: usize = 1_000_000;
/// Each event loop keeps its this-many longest stalls.
pub const LOOP_STALLS_KEPT: usize = 5;

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
    pub holder: Option<Tid>,
}

/// One thread's totals over the run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ThreadSummary {
    /// The process the thread belongs to.
    pub pid: Pid,
    pub tid: Tid,
    /// Its Python name, else its OS name; `None` while neither could be read.
    pub name: Option<String>,
    pub python: bool,
    pub samples: u64,
    pub cpu_s: f64,
    /// Sample counts per state.
    pub counts: PerState<u64>,
    /// Time per state (ns): each sample weighs the time since the thread's previous sample.
    pub time_ns: PerState<u64>,
    /// Samples per (state, stack id), for hot functions and flame graphs.
    pub stacks: HashMap<(ThreadState, u32), u64>,
    pub first_t_ns: u64,
    pub last_t_ns: u64,
    /// The thread's states over time.
    pub timeline: Vec<Segment>,
    /// Set when the thread ran an asyncio event loop.
    pub event_loop: Option<EventLoop>,
    /// CPython's own GIL flags for this thread (3.15), where read.
    pub cpython_flags: Option<CpythonFlagCounts>,
    /// Samples waiting for the GIL, by where the thread waited and who held the GIL then.
    pub gil_wait_holders: HashMap<WaitHolder, u64>,
    /// Time per (innermost frame, state), in ns: how each line the thread ran used the GIL.
    pub line_time_ns: HashMap<(u32, ThreadState), u64>,
    /// The part of the `lock` time spent as a pool's idle worker, waiting for its next task.
    pub waiting_for_work_ns: u64,
    /// Time it held the GIL while the collector ran: the collecting thread's time.
    pub gc_ns: u64,
    /// Its thread state's own status (3.13+): readings, and those that said attached.
    pub attachment: Option<AttachmentCounts>,
    /// Its time runnable without a CPU, where the kernel's run delay was read twice.
    pub cpu_wait: Option<CpuWait>,
}

/// Threads runnable without a CPU, on average, from which a run is said to be short of cores
/// (and a sampler at a normal priority noted: below, its ticks seldom wait for a CPU).
pub const SHORT_OF_CPUS_MIN: f64 = 0.3;

/// A thread's time runnable but waiting for a CPU (`schedstat`'s run delay) between its first
/// and last readings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuWait {
    pub span_ns: u64,
    pub waited_ns: u64,
}

impl CpuWait {
    /// Share of the span spent waiting for a CPU.
    pub fn share(&self) -> f64 {
        if self.span_ns == 0 {
            0.0
        } else {
            (self.waited_ns as f64 / self.span_ns as f64).min(1.0)
        }
    }
}

/// How often a thread state said it was attached (see [`crate::model::Record::ThreadStatuses`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttachmentCounts {
    pub readings: u64,
    pub attached: u64,
}

/// One waiting sample's circumstances: the waiter's innermost frame, and the thread of the same
/// process that held the GIL at that sample with its innermost frame (`None`: no Python frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WaitHolder {
    pub waiting_frame: u32,
    pub holder_tid: Tid,
    pub holder_frame: Option<u32>,
}

/// The GIL's holder at one sample, as a waiting sample remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Holder {
    pub(super) tid: Tid,
    pub(super) frame: Option<u32>,
}

/// An asyncio event loop's time: waiting in its selector (healthy) or stalled, running one
/// callback or coroutine step while every other task waits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventLoop {
    /// Time inside the loop.
    pub loop_ns: u64,
    /// Time inside the loop but outside its selector.
    pub running_ns: u64,
    /// The part of `running_ns` spent blocked (sleep, I/O, a lock) rather than on a CPU.
    pub blocked_ns: u64,
    /// The longest stalls, longest first. A loop that runs one step after another without
    /// waiting (its selector polled with no timeout) shows one long stall.
    pub stalls: Vec<Stall>,
    /// Time outside the selector per stack: (running, of which blocked), in ns.
    pub running_by_stack: HashMap<u32, (u64, u64)>,
}

impl EventLoop {
    /// Share of the loop's time it was not waiting for events.
    pub fn busy_share(&self) -> f64 {
        if self.loop_ns == 0 {
            0.0
        } else {
            self.running_ns as f64 / self.loop_ns as f64
        }
    }
}

/// A stretch of consecutive samples in which an event loop ran one thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    pub start_ns: u64,
    pub duration_ns: u64,
    /// The stack of its first sample.
    pub stack: Option<u32>,
    /// Time of the stall spent blocked rather than on a CPU.
    pub blocked_ns: u64,
}

/// One process's totals over the run.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSummary {
    pub pid: Pid,
    /// `None` for the root.
    pub parent: Option<Pid>,
    pub command: Vec<String>,
    /// The CPython version, `None` when the process is not Python.
    pub python: Option<String>,
    /// Whether its GIL waits can be told apart (see [`TargetInfo::gil_wait_visible`]).
    pub gil_wait_visible: bool,
    pub role: ProcessRole,
    pub first_t_ns: u64,
    pub last_t_ns: u64,
    /// How it ended, when it ended during the run.
    pub ending: Option<Ending>,
    pub ticks: u64,
    pub cpu_s: f64,
    /// The part of `cpu_s` no sampled thread accounts for: threads that started and ended
    /// between two samples (a thread per request), or ran on after their last sample.
    pub unattributed_cpu_s: f64,
    /// Average cores busy while it was sampled.
    pub cpu_cores_used: f64,
    pub gil_held: Option<f64>,
    /// Share of GIL readings in which it was held by a thread gilscope could not map to one
    /// of the process's threads.
    pub gil_held_unmapped: Option<f64>,
    pub gil_switches_per_s: Option<f64>,
    /// Who held this process's GIL over time.
    pub gil_timeline: Vec<GilSegment>,
    /// Share of its samples in which its garbage collector was collecting (`None`: the
    /// collector's flag was not read).
    pub gc_collecting: Option<f64>,
    /// Where the collecting thread was while it collected: innermost frame, samples.
    pub gc_frames: HashMap<u32, u64>,
    /// Share of its samples in which a stop-the-world pause had suspended a thread (`None`:
    /// its thread states' status was not read; 3.13+).
    pub world_stopped: Option<f64>,
    /// A free-threaded build's GIL came on in this process.
    pub gil_enabled: Option<GilEnabling>,
    /// Free-threaded: the types of the objects whose locks threads held while others waited
    /// to enter a critical section, with the samples each was seen held.
    pub contended_objects: HashMap<String, u64>,
    pub notes: Vec<String>,
}

impl ThreadSummary {
    /// Share of the thread's observed time in `state`. Each sample stands for the time since
    /// the thread's previous sample, so a sampler that falls behind (a deep stack, a loaded
    /// machine) does not bias the fractions toward the moments it kept up.
    pub fn fraction(&self, state: ThreadState) -> f64 {
        let total = self.time_ns.total();
        if total == 0 {
            0.0
        } else {
            self.time_ns[state] as f64 / total as f64
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
    /// [`WINDOW_NS`], or a multiple of it once a long run merged windows.
    pub length_ns: u64,
    pub ticks: u64,
    /// Thread-samples per state, summed over threads.
    pub counts: PerState<u64>,
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
    /// Threads runnable but without a CPU, on average over the run (every process's threads
    /// together), where the kernel's run delays were read.
    pub threads_waiting_for_cpu: Option<f64>,
    pub frames: Vec<Frame>,
    pub stacks: Vec<Vec<u32>>,
    /// Every thread of every process, the root's first.
    pub threads: Vec<ThreadSummary>,
    /// The threads grouped by what they do (see [`super::groups`]).
    pub groups: Vec<ThreadGroup>,
    /// The root first, then descendants in the order they were found.
    pub processes: Vec<ProcessSummary>,
    /// Share of ticks in which a GIL was locked, averaged over the Python processes (weighed
    /// by their samples); `None` where none could be read.
    pub gil_held: Option<f64>,
    /// GIL hand-offs per second, summed over the processes.
    pub gil_switches_per_s: Option<f64>,
    /// Cores busy on average, summed over the processes.
    pub cpu_cores_used: f64,
    /// Windows of the whole tree: thread-sample counts and CPU of every process, GIL readings
    /// of the root.
    pub windows: Vec<Window>,
    /// True when [`MAX_TIMELINE_SEGMENTS`] cut the timelines short.
    pub timeline_truncated: bool,
    /// Ticks whose Python stacks could not be read, and the last reason.
    pub stack_errors: Option<(u64, String)>,
    /// A free-threaded build whose GIL was found on: when and by which modules.
    pub gil_enabled: Option<GilEnabling>,
    /// The source text of frames' lines, by frame id, where the target's file was readable.
    pub sources: HashMap<u32, String>,
}

/// The GIL of a free-threaded build found enabled.
#[derive(Debug, Clone, PartialEq)]
pub struct GilEnabling {
    /// Seconds after the first sample; 0 when it was on from the start.
    pub at_s: f64,
    /// On the sampler's clock, to split the windows.
    pub t_ns: u64,
    /// The loaded extension modules that did not declare free-threading support.
    pub modules: Vec<ExtensionModule>,
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

    /// The root process (`None` only for a run with no sample).
    pub fn root(&self) -> Option<&ProcessSummary> {
        self.processes.first()
    }

    pub fn process(&self, pid: Pid) -> Option<&ProcessSummary> {
        self.processes.iter().find(|p| p.pid == pid)
    }

    pub fn threads_of(&self, pid: Pid) -> impl Iterator<Item = &ThreadSummary> {
        self.threads.iter().filter(move |t| t.pid == pid)
    }

    /// The analysis of one process alone, as if it had been sampled by itself.
    pub fn only_process(&self, pid: Pid) -> Analysis {
        let process = self.process(pid);
        let threads: Vec<ThreadSummary> = self.threads_of(pid).cloned().collect();
        Analysis {
            groups: group_threads(&threads, &self.frames, &self.stacks),
            threads,
            processes: process.into_iter().cloned().collect(),
            gil_held: process.and_then(|p| p.gil_held),
            gil_switches_per_s: process.and_then(|p| p.gil_switches_per_s),
            cpu_cores_used: process.map_or(0.0, |p| p.cpu_cores_used),
            gil_enabled: process.and_then(|p| p.gil_enabled.clone()),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpythonFlagCounts {
    pub readings: u64,
    pub holds_gil: u64,
    pub gil_requested: u64,
}

/// The samples counted over one stretch of a run, stack by stack: what a continuous push
/// (`--pyroscope`) sends each interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileWindow {
    /// The sampling interval each sample stands for.
    pub interval_ns: u64,
    /// In a stable order: pid, tid, state, stack.
    pub stacks: Vec<WindowStack>,
}

/// One (process, thread, state, stack) of a [`ProfileWindow`].
#[derive(Debug, Clone, PartialEq)]
pub struct WindowStack {
    pub pid: Pid,
    pub tid: Tid,
    /// `None` while the thread has no name.
    pub thread: Option<String>,
    pub state: ThreadState,
    /// Outermost first; empty for samples without a Python stack.
    pub frames: Vec<Frame>,
    pub samples: u64,
}
