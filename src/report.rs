//! The report: the JSON contract `gilscope.report/1` (keys may be added, never renamed), built
//! from an [`Analysis`] and a verdict. Its types are all here or re-exported from here (the
//! verdict's from the diagnosis, the states' from the model): one place to read the contract. The terminal and JSON renderers read only this; the
//! HTML page, the flame graph, pprof, speedscope and the trace also read the analysis, for
//! its stacks and timelines, which the report leaves out.

use serde::{Deserialize, Serialize};

use crate::analysis::queries::{gil_by_line, hot_functions, loop_culprits, GIL_LINES_LIMIT};
use crate::analysis::{Analysis, GilEnabling};
use crate::known_frames::loop_culprit;
use crate::model::{Ending, Pid, Tid};

// Every type of the contract is reachable from here, whichever stage defines it.
pub use crate::analysis::groups::GroupRole;
pub use crate::analysis::queries::{GilHolder, GilUse, HotFunction, LineGil, LoopCulprit};
pub use crate::analysis::SHORT_OF_CPUS_MIN;
pub use crate::diagnosis::{Confidence, Phase, Prediction, Verdict, VerdictKind};
pub use crate::known_frames::ProcessRole;
pub use crate::model::{ExtensionModule, GilMode, PerState, ThreadState};

pub const SCHEMA: &str = "gilscope.report/1";
/// Hot-function lists keep this many entries.
pub const HOT_LIMIT: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub target: Target,
    pub duration_s: f64,
    pub samples: u64,
    pub rate_hz: f64,
    /// Ticks the sampler could not take on time.
    pub late_samples: u64,
    /// How sampling ended, e.g. "exited with status 0".
    pub ending: Option<String>,
    /// The target's exit status or signal, for `run`.
    pub exit: Option<Exit>,
    /// The whole tree: with `--subprocesses`, CPU and GIL hand-offs summed over the processes,
    /// the GIL held averaged over them.
    pub process: Process,
    /// Every thread of every process.
    pub threads: Vec<Thread>,
    /// The threads grouped by the function they were started with (a pool's workers, a
    /// server's request threads are one group each), in the order they appeared.
    #[serde(default)]
    pub groups: Vec<Group>,
    /// Each process: the root first, then descendants in the order found.
    pub processes: Vec<ProcessEntry>,
    /// Threads that ran an asyncio event loop.
    pub event_loops: Vec<EventLoopEntry>,
    pub hot: Hot,
    /// The lines where threads spent their time, and how much of it the GIL was released.
    #[serde(default)]
    pub gil_by_line: Vec<LineGil>,
    pub verdict: Option<Verdict>,
    /// `--pyroscope`: what the continuous push delivered. Absent without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushSummary>,
}

/// What a continuous push to Pyroscope delivered over the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PushSummary {
    pub url: String,
    pub interval_s: f64,
    /// Windows the server accepted.
    pub windows_pushed: u64,
    /// Windows given up: the queue was full, every try failed, or the run ended first.
    pub windows_dropped: u64,
    /// Requests that failed (each retry counts).
    pub failed_requests: u64,
    /// The last failure, as the client or the server put it.
    pub last_error: Option<String>,
}

/// Threads of one process started with the same function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub pid: Pid,
    /// `crunch-*`, `ThreadPoolExecutor-0_*`, `Thread-* (process_request_thread)`, `MainThread`.
    pub label: String,
    pub role: GroupRole,
    /// The function its threads were started with, where a Python stack of them was read.
    pub start: Option<String>,
    pub start_file: Option<String>,
    /// Its threads' ids (a server that starts a thread per request has many).
    pub tids: Vec<Tid>,
    /// Threads alive at once, on average over the group's life.
    pub at_once: f64,
    /// Threads started a second over the group's life, for a group whose threads come and go.
    pub started_per_s: Option<f64>,
    pub cpu_s: f64,
    /// Fractions of the threads' summed time, as for a thread.
    pub states: States,
    /// Share of the time the threads waited for a task as a pool's idle workers (part of
    /// `lock`).
    pub waiting_for_work: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessEntry {
    pub pid: Pid,
    /// `None` for the root.
    pub parent: Option<Pid>,
    /// "main", "parent", "pool worker", "multiprocessing child", "multiprocessing helper",
    /// "child".
    pub role: ProcessRole,
    pub command: String,
    /// `None` when the process is not Python (threads without stacks).
    pub python: Option<String>,
    /// False where its GIL waits cannot be told apart (a free-threaded build, or not Python).
    pub gil_wait_visible: bool,
    /// When it was first and last sampled, seconds from the start of the run.
    pub start_s: f64,
    pub end_s: f64,
    /// How it ended, when it ended before the run did.
    pub ending: Option<String>,
    pub cpu_s: f64,
    /// The part of `cpu_s` no sampled thread accounts for: threads that lived between two
    /// samples (a thread per request), or ran on after their last sample.
    #[serde(default)]
    pub unattributed_cpu_s: f64,
    pub cpu_cores_used: f64,
    pub gil_held: Option<f64>,
    pub gil_switches_per_s: Option<f64>,
    /// Share of its samples in which its garbage collector was collecting (`null` where the
    /// collector's state could not be read).
    #[serde(default)]
    pub gc_collecting: Option<f64>,
    /// 3.13+: share of its samples in which a stop-the-world pause had suspended its threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub world_stopped: Option<f64>,
    /// A free-threaded build's GIL came on in this process: when, and by which modules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gil_turned_on: Option<GilTurnedOn>,
    pub threads: Vec<Tid>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventLoopEntry {
    pub pid: Pid,
    pub tid: Tid,
    #[serde(with = "crate::model::empty_as_none")]
    pub thread: Option<String>,
    /// Share of the loop's time not spent waiting for events: running callbacks and
    /// coroutine steps, or stuck in a blocking call.
    pub busy: f64,
    /// The part of `busy` spent blocked (sleep, I/O, locks) rather than on a CPU.
    pub blocked: f64,
    pub longest_stalls: Vec<StallEntry>,
    /// Where the loop's busy time went, by the code responsible, most first.
    pub culprits: Vec<LoopCulprit>,
}

/// What an event loop's stall was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StallKind {
    /// A blocking call (sleep, I/O, a lock) for at least half of it.
    Blocked,
    /// Running Python or native code.
    Cpu,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StallEntry {
    pub start_s: f64,
    pub duration_s: f64,
    pub kind: StallKind,
    /// The coroutine or callback the loop was running.
    pub coroutine: Option<String>,
    /// Where it was: the innermost Python frame.
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub pid: Pid,
    pub command: String,
    /// The CPython version; `None` for a target that is not Python.
    #[serde(with = "crate::model::empty_as_none")]
    pub python: Option<String>,
    pub gil: GilMode,
    /// False where GIL waits cannot be told apart (a free-threaded build, or not Python).
    pub gil_wait_visible: bool,
    /// A free-threaded build whose GIL was found on: when, and which extension modules.
    #[serde(default)]
    pub gil_turned_on: Option<GilTurnedOn>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GilTurnedOn {
    /// Seconds from the start of sampling; 0 when it was on from the start.
    pub at_s: f64,
    /// The loaded extension modules that declare no free-threading support.
    pub modules: Vec<ExtensionModule>,
}

impl From<&GilEnabling> for GilTurnedOn {
    fn from(e: &GilEnabling) -> GilTurnedOn {
        GilTurnedOn {
            at_s: e.at_s,
            modules: e.modules.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Process {
    pub cpu_cores_used: f64,
    pub cores: u32,
    pub gil_held: Option<f64>,
    pub gil_switches_per_s: Option<f64>,
    /// The root process's garbage collector: share of the samples in which it was collecting.
    #[serde(default)]
    pub gc_collecting: Option<f64>,
    /// The root process (3.13+): share of the samples in which a stop-the-world pause had
    /// suspended its threads (the free-threaded collector stops every thread).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub world_stopped: Option<f64>,
    /// Threads runnable but without a CPU, on average over the run (the kernel's run delay):
    /// above a few tenths, the machine was short of cores. Absent where not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads_waiting_for_cpu: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    /// The process it belongs to.
    pub pid: Pid,
    pub tid: Tid,
    #[serde(with = "crate::model::empty_as_none")]
    pub name: Option<String>,
    pub python: bool,
    pub samples: u64,
    pub cpu_s: f64,
    pub states: States,
    /// CPython's own view (3.15's per-thread `holds_gil` and `gil_requested`): the share of
    /// readings in which each was set. Absent on other versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpython: Option<CpythonGilShares>,
    /// Share of its samples in which its thread state said it was attached to the interpreter
    /// (3.13+: running Python, or native code that did not release it). Absent before 3.13.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached: Option<f64>,
    /// Share of its time runnable but without a CPU (the kernel's run delay), counted apart
    /// from `states`: a preempted thread is in the state of the work it was doing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for_cpu: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CpythonGilShares {
    pub holds_gil: f64,
    pub gil_requested: f64,
    pub readings: u64,
}

/// Fractions of a thread's observed time (each sample weighs the time since the thread's
/// previous one); they sum to 1. In JSON, `{"gil": .., "gil_wait": .., ...}`.
pub type States = PerState<f64>;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hot {
    pub gil: Vec<HotFunction>,
    pub gil_wait: Vec<HotFunction>,
    pub native: Vec<HotFunction>,
    pub io: Vec<HotFunction>,
    pub lock: Vec<HotFunction>,
    /// Free-threaded builds: where threads waited for an object's lock.
    #[serde(default)]
    pub object_lock: Vec<HotFunction>,
}

pub fn describe_ending(ending: &Ending) -> String {
    match ending {
        Ending::Exited(code) => format!("the target exited with status {code}"),
        Ending::Killed(sig) => format!("the target was killed by signal {sig}"),
        Ending::DurationElapsed => "the sampling duration elapsed".into(),
        Ending::Interrupted => "sampling was interrupted".into(),
        Ending::TargetGone => "the target exited".into(),
        Ending::PidReused => "the target exited and its PID was reused by another process".into(),
    }
}

/// Stack reads that fail in fewer samples than this share are the torn reads to expect when
/// sampling without pausing the target (a thread exiting mid-read): not worth a note.
pub const STACK_ERROR_NOTE_MIN: f64 = 0.05;

/// The target's notes, and what the analysis adds: stacks that could not be read, ticks
/// that may have waited for a CPU.
fn notes(analysis: &Analysis) -> Vec<String> {
    let mut notes = analysis
        .target
        .as_ref()
        .map_or(Vec::new(), |t| t.notes.clone());
    let errors = analysis
        .stack_errors
        .as_ref()
        .filter(|(count, _)| *count as f64 >= STACK_ERROR_NOTE_MIN * analysis.ticks.max(1) as f64);
    if let Some((count, last)) = errors {
        notes.push(format!(
            "the Python stacks could not be read in {count} of {} samples ({last}); thread states were measured all the same",
            analysis.ticks
        ));
    }
    if let Some(waiting) = analysis
        .threads_waiting_for_cpu
        .filter(|&w| w >= SHORT_OF_CPUS_MIN)
    {
        notes.push(format!(
            "threads waited for a CPU ({waiting:.1} at a time on average): gilscope's ticks waited too, and a tick that waits for a CPU gets one as a thread blocks, so blocked states such as gil_wait may read a few points high"
        ));
    }
    notes
}

fn processes(analysis: &Analysis) -> Vec<ProcessEntry> {
    let start = analysis.root().map_or(0, |p| p.first_t_ns);
    let seconds = |t: u64| t.saturating_sub(start) as f64 / 1e9;
    analysis
        .processes
        .iter()
        .map(|p| ProcessEntry {
            pid: p.pid,
            parent: p.parent,
            role: p.role,
            command: p.command.join(" "),
            python: p.python.clone(),
            gil_wait_visible: p.gil_wait_visible,
            start_s: seconds(p.first_t_ns),
            end_s: seconds(p.last_t_ns),
            ending: p
                .ending
                .as_ref()
                .filter(|_| p.parent.is_some())
                .map(describe_process_ending),
            cpu_s: p.cpu_s,
            unattributed_cpu_s: p.unattributed_cpu_s,
            cpu_cores_used: p.cpu_cores_used,
            gil_held: p.gil_held,
            gil_switches_per_s: p.gil_switches_per_s,
            gc_collecting: p.gc_collecting,
            world_stopped: p.world_stopped,
            gil_turned_on: p.gil_enabled.as_ref().map(GilTurnedOn::from),
            threads: analysis.threads_of(p.pid).map(|t| t.tid).collect(),
            notes: p.notes.clone(),
        })
        .collect()
}

fn groups(analysis: &Analysis) -> Vec<Group> {
    analysis
        .groups
        .iter()
        .map(|g| Group {
            pid: g.pid,
            label: g.label.clone(),
            role: g.role,
            start: g.start.as_ref().map(|f| f.function.clone()),
            start_file: g.start.as_ref().map(|f| f.file.clone()),
            tids: g
                .members
                .iter()
                .filter_map(|&i| analysis.threads.get(i).map(|t| t.tid))
                .collect(),
            at_once: g.at_once(),
            started_per_s: g.started_per_s(),
            cpu_s: g.cpu_s,
            states: g.time_ns.shares(),
            waiting_for_work: g.waiting_for_work(),
        })
        .collect()
}

fn describe_process_ending(ending: &Ending) -> String {
    match ending {
        Ending::Exited(code) => format!("exited with status {code}"),
        Ending::Killed(sig) => format!("killed by signal {sig}"),
        _ => "exited".into(),
    }
}

/// Event loops that ran long enough to judge, with their longest stalls.
fn event_loops(analysis: &Analysis) -> Vec<EventLoopEntry> {
    let start = analysis.root().map_or(0, |p| p.first_t_ns);
    analysis
        .threads
        .iter()
        .filter_map(|t| Some((t, t.event_loop.as_ref().filter(|l| l.loop_ns > 0)?)))
        .map(|(t, lp)| EventLoopEntry {
            pid: t.pid,
            tid: t.tid,
            thread: t.name.clone(),
            busy: lp.busy_share(),
            blocked: lp.blocked_ns as f64 / lp.loop_ns as f64,
            longest_stalls: lp
                .stalls
                .iter()
                .map(|s| {
                    let frames: Vec<_> = s
                        .stack
                        .map(|id| analysis.stack_frames(id).collect())
                        .unwrap_or_default();
                    let innermost = frames.first();
                    StallEntry {
                        start_s: s.start_ns.saturating_sub(start) as f64 / 1e9,
                        duration_s: s.duration_ns as f64 / 1e9,
                        kind: if s.blocked_ns * 2 >= s.duration_ns {
                            StallKind::Blocked
                        } else {
                            StallKind::Cpu
                        },
                        coroutine: loop_culprit(&frames).map(|f| f.function.clone()),
                        function: innermost.map(|f| f.function.clone()),
                        file: innermost.map(|f| f.file.clone()),
                        line: innermost.map(|f| f.line),
                    }
                })
                .collect(),
            culprits: loop_culprits(analysis, lp),
        })
        .collect()
}

/// The report of `analysis` with its verdict, as every command that judges a run builds it.
pub fn diagnosed(analysis: &Analysis) -> Report {
    build(analysis, Some(crate::diagnosis::diagnose(analysis)))
}

/// Builds the report. Pure: the same analysis and verdict give the same report.
pub fn build(analysis: &Analysis, verdict: Option<Verdict>) -> Report {
    let target = analysis.target.clone();
    let exit = match &analysis.ending {
        Some(Ending::Exited(code)) => Some(Exit {
            code: Some(*code),
            signal: None,
        }),
        Some(Ending::Killed(sig)) => Some(Exit {
            code: None,
            signal: Some(*sig),
        }),
        _ => None,
    };
    Report {
        schema: SCHEMA.into(),
        target: Target {
            pid: target.as_ref().map_or(Pid::default(), |t| t.pid),
            command: target
                .as_ref()
                .map_or(String::new(), |t| t.command.join(" ")),
            python: target
                .as_ref()
                .and_then(|t| (!t.python.is_empty()).then(|| t.python.clone())),
            gil: target.as_ref().map_or(GilMode::Enabled, |t| t.gil),
            gil_wait_visible: target.as_ref().is_some_and(|t| t.gil_wait_visible),
            gil_turned_on: analysis.gil_enabled.as_ref().map(GilTurnedOn::from),
            notes: notes(analysis),
        },
        duration_s: analysis.duration_s,
        samples: analysis.ticks,
        rate_hz: target.as_ref().map_or(0.0, |t| t.rate_hz),
        late_samples: analysis.late,
        ending: analysis.ending.as_ref().map(describe_ending),
        exit,
        process: Process {
            cpu_cores_used: analysis.cpu_cores_used,
            cores: analysis.cores(),
            gil_held: analysis.gil_held,
            gil_switches_per_s: analysis.gil_switches_per_s,
            gc_collecting: analysis.root().and_then(|p| p.gc_collecting),
            world_stopped: analysis.root().and_then(|p| p.world_stopped),
            threads_waiting_for_cpu: analysis.threads_waiting_for_cpu,
        },
        threads: analysis
            .threads
            .iter()
            .map(|t| Thread {
                pid: t.pid,
                tid: t.tid,
                name: t.name.clone(),
                python: t.python,
                samples: t.samples,
                cpu_s: t.cpu_s,
                states: t.time_ns.shares(),
                cpython: t
                    .cpython_flags
                    .filter(|c| c.readings > 0)
                    .map(|c| CpythonGilShares {
                        holds_gil: c.holds_gil as f64 / c.readings as f64,
                        gil_requested: c.gil_requested as f64 / c.readings as f64,
                        readings: c.readings,
                    }),
                attached: t
                    .attachment
                    .filter(|c| c.readings > 0)
                    .map(|c| c.attached as f64 / c.readings as f64),
                waiting_for_cpu: t.cpu_wait.map(|w| w.share()),
            })
            .collect(),
        groups: groups(analysis),
        processes: processes(analysis),
        event_loops: event_loops(analysis),
        hot: Hot {
            gil: hot_functions(analysis, ThreadState::Gil, HOT_LIMIT),
            gil_wait: hot_functions(analysis, ThreadState::GilWait, HOT_LIMIT),
            native: hot_functions(analysis, ThreadState::Native, HOT_LIMIT),
            io: hot_functions(analysis, ThreadState::Io, HOT_LIMIT),
            lock: hot_functions(analysis, ThreadState::Lock, HOT_LIMIT),
            object_lock: hot_functions(analysis, ThreadState::ObjectLock, HOT_LIMIT),
        },
        gil_by_line: gil_by_line(analysis, GIL_LINES_LIMIT),
        verdict,
        push: None,
    }
}
