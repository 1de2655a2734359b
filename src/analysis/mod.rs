//! Streaming aggregation: records in, an [`Analysis`] out; [`queries`] asks it questions.
//! Memory is bounded by the number of threads, distinct stacks and seconds of the run, never
//! by the number of samples.

use std::collections::{BTreeMap, HashMap};

pub mod groups;
pub mod queries;

use crate::classify::{classify, is_transit_candidate, resolve_transit, Arch, Observation};
use crate::known_frames::{
    descendant_role, loop_position, waits_for_task, LoopPosition, ProcessRole,
};
use crate::model::{
    Attachment, CpythonThreadStatus, Ending, ExtensionModule, Frame, GilReading, PerState,
    ProcessInfo, Record, Sample, TargetInfo, ThreadSample, ThreadState,
};
use crate::sampler::RecordSink;
use groups::{group_threads, ThreadGroup};

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
    pub holder: Option<u32>,
}

/// One thread's totals over the run.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadSummary {
    /// The process the thread belongs to.
    pub pid: u32,
    pub tid: u32,
    pub name: String,
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
}

/// How often a thread state said it was attached (see [`Record::ThreadStatuses`]).
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
    pub holder_tid: u32,
    pub holder_frame: Option<u32>,
}

/// The GIL's holder at one sample, as a waiting sample remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Holder {
    tid: u32,
    frame: Option<u32>,
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
    pub pid: u32,
    /// `None` for the root.
    pub parent: Option<u32>,
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
    pub frames: Vec<Frame>,
    pub stacks: Vec<Vec<u32>>,
    /// Every thread of every process, the root's first.
    pub threads: Vec<ThreadSummary>,
    /// The threads grouped by what they do (see [`groups`]).
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

    pub fn process(&self, pid: u32) -> Option<&ProcessSummary> {
        self.processes.iter().find(|p| p.pid == pid)
    }

    pub fn threads_of(&self, pid: u32) -> impl Iterator<Item = &ThreadSummary> {
        self.threads.iter().filter(move |t| t.pid == pid)
    }

    /// The analysis of one process alone, as if it had been sampled by itself.
    pub fn only_process(&self, pid: u32) -> Analysis {
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

#[derive(Debug, Clone)]
struct ThreadAcc {
    summary: ThreadSummary,
    last_cpu_ns: Option<u64>,
    previous: Option<ThreadState>,
    /// A sample whose state waits for the next one (see [`is_transit_candidate`]).
    pending: Option<Pending>,
    /// The event-loop stall in progress.
    stall: Option<Stall>,
    /// The process tick that last saw the thread.
    seen_at_tick: u64,
    /// The thread appeared after the process's first tick: it started during the run, so all
    /// the CPU time it has used is the run's.
    born_during_run: bool,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    stack: Option<u32>,
    t_ns: u64,
    /// The time this sample stands for.
    weight_ns: u64,
    /// Where the stack stands in an event loop; `None` without a stack.
    loop_position: Option<LoopPosition>,
    /// The stack is a pool worker's, waiting for its next task.
    waits_for_task: bool,
    /// The stack's innermost frame.
    top_frame: Option<u32>,
    /// Who held the GIL at this sample, when one of the process's threads did.
    holder: Option<Holder>,
}

/// Where a counted sample goes besides the thread's own totals.
struct Totals<'a> {
    windows: &'a mut Windows,
    segments: &'a mut usize,
    /// The samples counted since the last [`Aggregator::take_profile_window`], when asked for.
    profile: Option<&'a mut ProfileCounts>,
}

/// Samples by (pid, tid, state, stack).
type ProfileCounts = HashMap<(u32, u32, ThreadState, Option<u32>), u64>;

/// The timeline's windows, by index (start / length): only the windows that saw a sample
/// exist, so a timestamp far in the future (a corrupt file) costs one window, not one per
/// second. Past [`MAX_WINDOWS`], neighbours merge.
#[derive(Debug, Clone, Default)]
struct Windows {
    by_index: BTreeMap<u64, Window>,
    /// How many times the windows doubled in length.
    doublings: u32,
}

impl Windows {
    fn length_ns(&self) -> u64 {
        WINDOW_NS << self.doublings
    }

    /// The window that holds time `t_ns`, made when it is the first sample there.
    fn at_time(&mut self, t_ns: u64) -> &mut Window {
        if self.by_index.len() >= MAX_WINDOWS
            && !self.by_index.contains_key(&(t_ns / self.length_ns()))
        {
            self.coarsen();
        }
        let length_ns = self.length_ns();
        let index = t_ns / length_ns;
        self.by_index.entry(index).or_insert_with(|| Window {
            start_ns: index * length_ns,
            length_ns,
            ..Window::default()
        })
    }

    /// The window that holds time `t_ns`, if it exists.
    fn existing(&mut self, t_ns: u64) -> Option<&mut Window> {
        let index = t_ns / self.length_ns();
        self.by_index.get_mut(&index)
    }

    /// Merges each pair of neighbours into one window twice as long.
    fn coarsen(&mut self) {
        self.doublings += 1;
        let length_ns = self.length_ns();
        let mut merged: BTreeMap<u64, Window> = BTreeMap::new();
        for (_, w) in std::mem::take(&mut self.by_index) {
            let index = w.start_ns / length_ns;
            let into = merged.entry(index).or_insert_with(|| Window {
                start_ns: index * length_ns,
                length_ns,
                ..Window::default()
            });
            into.ticks += w.ticks;
            for state in ThreadState::ALL {
                into.counts[state] += w.counts[state];
            }
            into.gil_locked += w.gil_locked;
            into.gil_readings += w.gil_readings;
            into.cpu_ns += w.cpu_ns;
            into.switches += w.switches;
        }
        self.by_index = merged;
    }

    /// The windows the root sampled (a descendant's samples alone make a window without ticks).
    fn into_sampled(self) -> Vec<Window> {
        self.by_index
            .into_values()
            .filter(|w| w.ticks > 0)
            .collect()
    }
}

/// A line releases the GIL when its threads spent at least this many times as long on a CPU
/// without it as holding it (`hashlib`, `zlib`, NumPy: typically 10x and more).
pub const RELEASING_LINE_RATIO: u64 = 2;

/// How each line has used the GIL so far, over every thread: time on a CPU holding it and
/// without it. A thread seen on a CPU without the GIL at a line that mostly runs holding it is
/// passing the GIL on (between a release and the next take), not running native code.
#[derive(Debug, Clone, Default)]
struct LineUse {
    by_frame: HashMap<u32, (u64, u64)>,
}

impl LineUse {
    /// The state of a sample at `frame`, with what the line did so far; the sample is added.
    fn judge(&mut self, frame: Option<u32>, state: ThreadState, weight_ns: u64) -> ThreadState {
        let Some(frame) = frame else { return state };
        let (held, released) = self.by_frame.entry(frame).or_default();
        match state {
            ThreadState::Gil => *held += weight_ns,
            ThreadState::Native => {
                *released += weight_ns;
                if *held > 0 && *released < RELEASING_LINE_RATIO * *held {
                    return ThreadState::Handoff;
                }
            }
            _ => {}
        }
        state
    }

    /// Whether the line at `frame` has so far run mostly without the GIL.
    fn releases(&self, frame: Option<u32>) -> bool {
        frame
            .and_then(|f| self.by_frame.get(&f))
            .is_some_and(|&(held, released)| released >= RELEASING_LINE_RATIO * held)
    }
}

/// What a stack means beyond its frames, worked out once per stack.
#[derive(Debug, Clone, Copy)]
struct StackMeaning {
    loop_position: LoopPosition,
    waits_for_task: bool,
}

/// The [`StackMeaning`] of each stack seen.
#[derive(Debug, Clone, Default)]
struct StackMeanings {
    known: HashMap<u32, StackMeaning>,
}

impl StackMeanings {
    fn of(&mut self, stack: u32, frames: &[Frame], stacks: &[Vec<u32>]) -> StackMeaning {
        *self.known.entry(stack).or_insert_with(|| {
            let ids = stacks.get(stack as usize).map_or(&[][..], |s| s.as_slice());
            let frames = ids.iter().filter_map(|&id| frames.get(id as usize));
            StackMeaning {
                loop_position: loop_position(frames.clone()),
                waits_for_task: waits_for_task(frames),
            }
        })
    }
}

impl ThreadAcc {
    /// A thread first seen at `t` (named, when its name is already known).
    fn new(
        pid: u32,
        tid: u32,
        t: u64,
        names: &HashMap<u32, String>,
        born_during_run: bool,
    ) -> ThreadAcc {
        ThreadAcc {
            summary: ThreadSummary {
                pid,
                tid,
                name: names.get(&tid).cloned().unwrap_or_default(),
                python: false,
                samples: 0,
                cpu_s: 0.0,
                counts: PerState::default(),
                time_ns: PerState::default(),
                stacks: HashMap::new(),
                first_t_ns: t,
                last_t_ns: t,
                timeline: Vec::new(),
                event_loop: None,
                cpython_flags: None,
                gil_wait_holders: HashMap::new(),
                line_time_ns: HashMap::new(),
                waiting_for_work_ns: 0,
                gc_ns: 0,
                attachment: None,
            },
            last_cpu_ns: None,
            previous: None,
            pending: None,
            stall: None,
            seen_at_tick: 0,
            born_during_run,
        }
    }

    fn count(&mut self, totals: &mut Totals, at: Pending, state: ThreadState) {
        self.count_loop(at, state);
        let s = &mut self.summary;
        s.samples += 1;
        s.counts[state] += 1;
        s.time_ns[state] += at.weight_ns;
        if state == ThreadState::Lock && at.waits_for_task {
            s.waiting_for_work_ns += at.weight_ns;
        }
        if let Some(stack) = at.stack {
            *s.stacks.entry((state, stack)).or_insert(0) += 1;
        }
        if let Some(frame) = at.top_frame {
            *s.line_time_ns.entry((frame, state)).or_insert(0) += at.weight_ns;
            if let (ThreadState::GilWait, Some(holder)) = (state, at.holder) {
                let key = WaitHolder {
                    waiting_frame: frame,
                    holder_tid: holder.tid,
                    holder_frame: holder.frame,
                };
                *s.gil_wait_holders.entry(key).or_insert(0) += 1;
            }
        }
        if let Some(w) = totals.windows.existing(at.t_ns) {
            w.counts[state] += 1;
        }
        if let Some(profile) = totals.profile.as_deref_mut() {
            *profile.entry((s.pid, s.tid, state, at.stack)).or_insert(0) += 1;
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

    /// Follows the event loop, if the thread runs one: time waiting, time running, stalls.
    /// A sample without a stack leaves the loop as it was.
    fn count_loop(&mut self, at: Pending, state: ThreadState) {
        let Some(position) = at.loop_position else {
            return;
        };
        if position == LoopPosition::NotALoop {
            self.close_stall();
            return;
        }
        let blocked = !matches!(
            state,
            ThreadState::Gil | ThreadState::GilWait | ThreadState::Native
        );
        let lp = self
            .summary
            .event_loop
            .get_or_insert_with(EventLoop::default);
        lp.loop_ns += at.weight_ns;
        if position == LoopPosition::Waiting {
            self.close_stall();
            return;
        }
        lp.running_ns += at.weight_ns;
        let blocked_ns = if blocked { at.weight_ns } else { 0 };
        lp.blocked_ns += blocked_ns;
        if let Some(stack) = at.stack {
            let entry = lp.running_by_stack.entry(stack).or_default();
            entry.0 += at.weight_ns;
            entry.1 += blocked_ns;
        }
        let stall = self.stall.get_or_insert(Stall {
            start_ns: at.t_ns.saturating_sub(at.weight_ns),
            duration_ns: 0,
            stack: at.stack,
            blocked_ns: 0,
        });
        stall.duration_ns += at.weight_ns;
        stall.blocked_ns += blocked_ns;
    }

    /// Ends the current stall, keeping it if it is among the longest.
    fn close_stall(&mut self) {
        let (Some(stall), Some(lp)) = (self.stall.take(), self.summary.event_loop.as_mut()) else {
            return;
        };
        let at = lp
            .stalls
            .partition_point(|s| s.duration_ns >= stall.duration_ns);
        if at < LOOP_STALLS_KEPT {
            lp.stalls.insert(at, stall);
            lp.stalls.truncate(LOOP_STALLS_KEPT);
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
        self.close_stall();
        if let Some(last) = self.summary.timeline.last_mut() {
            last.end_ns = last.end_ns.saturating_add(interval_ns);
        }
        self.summary
    }
}

/// One process's accumulation.
#[derive(Debug, Clone, Default)]
struct ProcessAcc {
    pid: u32,
    parent: Option<u32>,
    command: Vec<String>,
    python: Option<String>,
    gil_wait_visible: bool,
    notes: Vec<String>,
    found_t_ns: Option<u64>,
    gil_ranges: Vec<(u64, u64)>,
    finished: Vec<ThreadSummary>,
    /// Threads present in the last sample, by tid: a tid that vanishes and comes back is a
    /// new thread (the kernel reuses ids).
    live: HashMap<u32, ThreadAcc>,
    ticks: u64,
    first_t_ns: Option<u64>,
    last_t_ns: Option<u64>,
    gil_readings: u64,
    gil_locked: u64,
    /// Readings with the GIL locked by a thread that could not be mapped to one sampled.
    gil_unmapped: u64,
    switches: Option<((u64, u64), (u64, u64))>,
    process_cpu: Option<((u64, u64), (u64, u64))>,
    thread_cpu_ns: u64,
    gil_timeline: Vec<GilSegment>,
    last_switch_number: Option<u64>,
    ending: Option<Ending>,
    /// The collector's flag as last sent (`None`: not read in this process).
    gc: Option<bool>,
    gc_readings: u64,
    gc_ticks: u64,
    /// The collecting thread's innermost frame at collecting ticks: where it allocated.
    gc_frames: HashMap<u32, u64>,
    /// Each thread's status as last read (3.13+): it holds until the next reading, as a
    /// thread that did not run between two ticks is not walked again.
    statuses: HashMap<u32, CpythonThreadStatus>,
    status_ticks: u64,
    stopped_ticks: u64,
    /// When its free-threaded build's GIL came on, and the modules that did it.
    gil_enabled: Option<(u64, Vec<ExtensionModule>)>,
    /// See [`ProcessSummary::contended_objects`].
    contended_objects: HashMap<String, u64>,
}

/// The GIL and the collector at one tick of a process, as each of its threads is counted.
struct TickGil {
    holder: Option<u32>,
    /// The holder, where it is one of the process's sampled threads.
    holding: Option<Holder>,
    locked: bool,
    /// The collector was collecting.
    collecting: bool,
}

/// What every process's samples share: the interned stacks, the clock's windows, names.
struct Shared<'a> {
    frames: &'a [Frame],
    stacks: &'a [Vec<u32>],
    names: &'a HashMap<u32, String>,
    totals: Totals<'a>,
    meanings: &'a mut StackMeanings,
    lines: &'a mut LineUse,
    arch: Arch,
    interval_ns: u64,
    /// Only the root's ticks and GIL readings go into the windows.
    root: bool,
}

impl ProcessAcc {
    fn push_sample(&mut self, sample: &Sample, shared: &mut Shared) {
        let t = sample.t_ns;
        if self.last_t_ns.is_some_and(|last| t < last) {
            return; // out of order: a corrupt or concatenated file
        }
        self.first_t_ns.get_or_insert(t);
        self.ticks += 1;
        let window = shared.totals.windows.at_time(t);
        if shared.root {
            window.ticks += 1;
        }
        if let Some(gil) = sample.gil {
            self.count_gil(t, gil, shared);
        }
        if let Some(cpu) = sample.process_cpu_ns {
            let first = self.process_cpu.map_or((t, cpu), |(first, _)| first);
            self.process_cpu = Some((first, (t, cpu)));
        }
        let holder = sample
            .gil
            .and_then(|g| if g.locked { g.holder_tid } else { None });
        let top_frame = |stack: Option<u32>| shared.stacks.get(stack? as usize)?.first().copied();
        let holding = holder
            .and_then(|tid| sample.threads.iter().find(|ts| ts.tid == tid))
            .map(|ts| Holder {
                tid: ts.tid,
                frame: top_frame(ts.stack),
            });
        let tick = TickGil {
            holder,
            holding,
            locked: sample.gil.is_some_and(|g| g.locked),
            collecting: self.gc == Some(true),
        };
        self.count_gc(&tick);
        self.count_stopped();
        for ts in &sample.threads {
            self.count_thread(ts, t, &tick, shared);
        }
        self.gil_unmapped += u64::from(tick.locked && holding.is_none());
        if self.live.len() != sample.threads.len() {
            self.close_vanished_threads(shared);
        }
        self.last_t_ns = Some(t);
    }

    /// One reading of the collector's flag: a collecting tick, and where the collecting thread
    /// (the GIL's holder) was.
    fn count_gc(&mut self, tick: &TickGil) {
        if self.gc.is_none() {
            return;
        }
        self.gc_readings += 1;
        if tick.collecting {
            self.gc_ticks += 1;
            if let Some(frame) = tick.holding.and_then(|h| h.frame) {
                *self.gc_frames.entry(frame).or_insert(0) += 1;
            }
        }
    }

    /// A tick with its threads' status read: was the world stopped?
    fn count_stopped(&mut self) {
        if self.statuses.is_empty() {
            return;
        }
        self.status_ticks += 1;
        let stopped = self
            .statuses
            .values()
            .any(|s| s.attachment == Attachment::Suspended);
        self.stopped_ticks += u64::from(stopped);
    }

    /// One GIL reading: held or not, its hand-offs, the GIL's own timeline.
    fn count_gil(&mut self, t: u64, gil: GilReading, shared: &mut Shared) {
        let window = shared.totals.windows.at_time(t);
        self.gil_readings += 1;
        if shared.root {
            window.gil_readings += 1;
        }
        if gil.locked {
            self.gil_locked += 1;
            if shared.root {
                window.gil_locked += 1;
            }
        }
        if let Some(n) = gil.switch_number {
            let first = self.switches.map_or((t, n), |(first, _)| first);
            self.switches = Some((first, (t, n)));
            if let (Some(last), true) = (self.last_switch_number, shared.root) {
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
                if *shared.totals.segments < MAX_TIMELINE_SEGMENTS {
                    *shared.totals.segments += 1;
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

    /// One thread at one tick: classified (or held for the next tick), counted, its CPU added.
    fn count_thread(&mut self, ts: &ThreadSample, t: u64, tick: &TickGil, shared: &mut Shared) {
        let (holder, locked) = (tick.holder, tick.locked);
        let pid = self.pid;
        let ticks = self.ticks;
        let acc = self
            .live
            .entry(ts.tid)
            .or_insert_with(|| ThreadAcc::new(pid, ts.tid, t, shared.names, ticks > 1));
        acc.seen_at_tick = ticks;
        let dt = t.saturating_sub(acc.summary.last_t_ns);
        let first_sample = acc.summary.samples == 0 && acc.pending.is_none();
        let cpu_delta = match (acc.last_cpu_ns, ts.cpu_ns) {
            (Some(before), Some(now)) if now >= before => Some(now - before),
            // A thread born during the run: everything it used since it started.
            (None, Some(now)) if acc.born_during_run && first_sample => Some(now),
            _ => None,
        };
        // A newborn's first sample stands for at most one interval.
        let span_ns = if dt > 0 { dt } else { shared.interval_ns };
        let cpu_share = cpu_delta
            .filter(|_| dt > 0 || acc.born_during_run)
            .map(|d| (d as f64 / span_ns as f64).min(1.0));
        let status = self.statuses.get(&ts.tid);
        let obs = Observation {
            syscall: ts.syscall,
            cpu_share,
            holds_gil: holder == Some(ts.tid),
            other_holds_gil: locked && holder != Some(ts.tid),
            gil_ranges: &self.gil_ranges,
            previous: acc.previous,
            arch: shared.arch,
            entering_critical_section: status.is_some_and(|s| s.entering_critical_section),
            suspended: status.is_some_and(|s| s.attachment == Attachment::Suspended),
        };
        let top_frame = ts
            .stack
            .and_then(|stack| shared.stacks.get(stack as usize)?.first().copied());
        let state = shared.lines.judge(top_frame, classify(&obs), span_ns);
        acc.settle(&mut shared.totals, Some(state));
        let meaning = ts
            .stack
            .map(|stack| shared.meanings.of(stack, shared.frames, shared.stacks));
        let at = Pending {
            stack: ts.stack,
            t_ns: t,
            weight_ns: span_ns,
            loop_position: meaning.map(|m| m.loop_position),
            waits_for_task: meaning.is_some_and(|m| m.waits_for_task),
            top_frame,
            holder: tick.holding.filter(|h| h.tid != ts.tid),
        };
        // At a line that releases the GIL, a thread on a CPU after holding it runs that native
        // code; elsewhere it may be passing the GIL on, which its next sample tells.
        if is_transit_candidate(&obs, state) && !shared.lines.releases(top_frame) {
            acc.pending = Some(at);
        } else {
            acc.count(&mut shared.totals, at, state);
        }
        let s = &mut acc.summary;
        if tick.collecting && holder == Some(ts.tid) {
            s.gc_ns += span_ns;
        }
        if let Some(status) = self.statuses.get(&ts.tid) {
            let counts = s.attachment.get_or_insert_with(AttachmentCounts::default);
            counts.readings += 1;
            counts.attached += u64::from(status.attachment == Attachment::Attached);
        }
        s.python |= ts.python;
        s.last_t_ns = t;
        if let Some(d) = cpu_delta {
            s.cpu_s += d as f64 / 1e9;
            self.thread_cpu_ns += d;
            if let Some(w) = shared.totals.windows.existing(t) {
                w.cpu_ns += d;
            }
        }
        if ts.cpu_ns.is_some() {
            acc.last_cpu_ns = ts.cpu_ns;
        }
        acc.previous = Some(state);
    }

    /// Threads missing from this tick ended (a tid that comes back is a new thread).
    fn close_vanished_threads(&mut self, shared: &mut Shared) {
        let ended: Vec<u32> = self
            .live
            .iter()
            .filter(|(_, acc)| acc.seen_at_tick != self.ticks)
            .map(|(&tid, _)| tid)
            .collect();
        for tid in ended {
            if let Some(acc) = self.live.remove(&tid) {
                self.finished
                    .push(acc.close(&mut shared.totals, shared.interval_ns));
            }
        }
    }

    /// Closes every thread and sums the process up.
    fn finish(
        mut self,
        totals: &mut Totals,
        interval_ns: u64,
        frames: &[Frame],
        stacks: &[Vec<u32>],
    ) -> (ProcessSummary, Vec<ThreadSummary>) {
        let mut threads = std::mem::take(&mut self.finished);
        for acc in std::mem::take(&mut self.live).into_values() {
            threads.push(acc.close(totals, interval_ns));
        }
        threads.sort_by_key(|t| (t.first_t_ns, t.tid));
        if let Some(last) = self.gil_timeline.last_mut() {
            last.end_ns = last.end_ns.saturating_add(interval_ns);
        }
        let first = self.first_t_ns.or(self.found_t_ns).unwrap_or(0);
        let last = self.last_t_ns.unwrap_or(first);
        let span_ns = last - first.min(last);
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
        let role = if self.parent.is_some() {
            descendant_role(
                threads
                    .iter()
                    .flat_map(|t| t.stacks.keys())
                    .filter_map(|&(_, stack)| stacks.get(stack as usize))
                    .flatten()
                    .filter_map(|&id| frames.get(id as usize)),
            )
        } else {
            ProcessRole::Main
        };
        let cpu_s = self
            .process_cpu
            .map_or(self.thread_cpu_ns, |((_, v0), (_, v1))| {
                v1.saturating_sub(v0)
            }) as f64
            / 1e9;
        let summary = ProcessSummary {
            pid: self.pid,
            parent: self.parent,
            command: self.command,
            python: self.python,
            gil_wait_visible: self.gil_wait_visible,
            role,
            first_t_ns: first,
            last_t_ns: last.saturating_add(if self.ticks > 0 { interval_ns } else { 0 }),
            ending: self.ending,
            ticks: self.ticks,
            cpu_s,
            unattributed_cpu_s: (cpu_s - self.thread_cpu_ns as f64 / 1e9).max(0.0),
            cpu_cores_used,
            gil_held: (self.gil_readings > 0)
                .then(|| self.gil_locked as f64 / self.gil_readings as f64),
            gil_held_unmapped: (self.gil_readings > 0)
                .then(|| self.gil_unmapped as f64 / self.gil_readings as f64),
            gil_switches_per_s: self.switches.and_then(per_second),
            gil_timeline: self.gil_timeline,
            gc_collecting: (self.gc_readings > 0)
                .then(|| self.gc_ticks as f64 / self.gc_readings as f64),
            gc_frames: self.gc_frames,
            world_stopped: (self.status_ticks > 0)
                .then(|| self.stopped_ticks as f64 / self.status_ticks as f64),
            gil_enabled: None,
            contended_objects: self.contended_objects,
            notes: self.notes,
        };
        (summary, threads)
    }
}

/// Folds records into an [`Analysis`]. A live view clones it to finish a snapshot while the run
/// goes on.
#[derive(Debug, Clone, Default)]
pub struct Aggregator {
    target: Option<TargetInfo>,
    frames: Vec<Frame>,
    stacks: Vec<Vec<u32>>,
    names: HashMap<u32, String>,
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
    cpython_flags: HashMap<u32, CpythonFlagCounts>,
    sources: HashMap<u32, String>,
}

/// How often CPython's own flags read set for one thread (see [`Record::CpythonGilFlags`]).
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
    pub pid: u32,
    pub tid: u32,
    /// Empty while the thread has no name.
    pub thread: String,
    pub state: ThreadState,
    /// Outermost first; empty for samples without a Python stack.
    pub frames: Vec<Frame>,
    pub samples: u64,
}

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
                    thread: self.names.get(&tid).cloned().unwrap_or_default(),
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
                for process in std::iter::once(&mut self.root).chain(&mut self.descendants) {
                    if let Some(acc) = process.live.get_mut(tid) {
                        acc.summary.name = name.clone();
                    }
                }
                self.names.insert(*tid, name.clone());
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

    fn descendant(&mut self, pid: u32) -> Option<&mut ProcessAcc> {
        latest(&mut self.descendants, pid)
    }

    /// The root or the latest descendant with `pid`.
    fn process_mut(&mut self, pid: u32) -> Option<&mut ProcessAcc> {
        if pid == self.root.pid {
            Some(&mut self.root)
        } else {
            self.descendant(pid)
        }
    }

    fn push_sample(&mut self, pid: Option<u32>, sample: &Sample) {
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
        let windows = std::mem::take(&mut self.windows).into_sampled();
        let groups = group_threads(&threads, &self.frames, &self.stacks);
        Analysis {
            groups,
            target: self.target,
            ending: self.ending.map(|(e, _)| e),
            duration_s,
            ticks,
            late: self.late,
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
            .find(|t| t.pid == p.pid && t.tid == p.pid)
            .is_some_and(|t| {
                t.share(&[ThreadState::Gil, ThreadState::Handoff, ThreadState::Native])
                    >= SHAPE_BUSY_MIN
            })
    };
    let mut siblings: HashMap<(u32, Vec<String>), Vec<usize>> = HashMap::new();
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
fn latest(descendants: &mut [ProcessAcc], pid: u32) -> Option<&mut ProcessAcc> {
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
            pid: 1,
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
            tid,
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
                holder_tid: Some(2),
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
    fn a_profile_window_holds_the_samples_since_the_last_one() {
        let mut aggregator = Aggregator::new();
        aggregator.push(&target());
        aggregator.push(&sample(0));
        aggregator.collect_profile_windows();
        aggregator.push(&Record::ThreadName {
            tid: 2,
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
                .filter(|s| s.tid == tid && s.state == state)
                .map(|s| s.samples)
                .sum::<u64>()
        };
        assert_eq!(
            of(&window, 2, ThreadState::Gil),
            10,
            "not the sample before"
        );
        assert_eq!(of(&window, 3, ThreadState::Sleep), 10);
        assert_eq!(window.stacks[0].thread, "worker");
        aggregator.push(&sample(11 * WINDOW_NS));
        let next = aggregator.take_profile_window();
        assert_eq!(of(&next, 2, ThreadState::Gil), 1, "a new window begins");
        assert!(aggregator.take_profile_window().stacks.is_empty());
    }
}
