//! What the rules find, as numbers and names and before any word is written: a rule returns a
//! [`Finding`], and [`super::text`] alone turns it into the [`super::Verdict`]'s sentences.

use crate::analysis::queries::{HotFunction, LoopCulprit};
use crate::model::{ExtensionModule, Frame, Pid, ThreadState, Tid};

use super::{Confidence, VerdictKind};

/// How busy the process was: the GIL and the cores, which most rules cite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Load {
    pub(super) gil_held: f64,
    pub(super) cores_used: f64,
    pub(super) cores: u32,
    /// Threads runnable without a CPU, on average over the run, where the kernel said.
    pub(super) threads_waiting_for_cpu: Option<f64>,
}

/// What started a program's threads: the fix names its process-based twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ThreadPoolKind {
    /// `threading.Thread`.
    Threads,
    /// `concurrent.futures.ThreadPoolExecutor`.
    Executor,
    /// `multiprocessing.pool.ThreadPool` (or `multiprocessing.dummy`).
    MultiprocessingThreadPool,
    /// joblib with `backend="threading"` (or `prefer="threads"`).
    Joblib,
}

/// A group of threads, as a verdict names it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct GroupWords {
    pub(super) label: String,
    pub(super) threads: usize,
    /// Threads alive at once, on average.
    pub(super) at_once: f64,
    /// For threads that come and go (one per request), how many start a second.
    pub(super) started_per_s: Option<f64>,
}

/// A process pool's workers against the cores, which every pool rule cites.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct PoolLoad {
    /// Workers alive at once, on average over the pool's lifetime.
    pub(super) concurrent_workers: f64,
    /// Worker-equivalents busy on a CPU, on average over the pool's lifetime.
    pub(super) busy_workers: f64,
    /// When the pool's first worker appeared and its last one ended, seconds into the run.
    pub(super) lifetime: (f64, f64),
    pub(super) run_s: f64,
    /// Cores used by the whole process tree.
    pub(super) cores_used: f64,
    pub(super) cores: u32,
}

/// What the windows before or after a moment show.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Span {
    pub(super) seconds: f64,
    pub(super) cores: f64,
    pub(super) gil_held: f64,
    /// Of the busy thread-samples (holding, waiting for the GIL, on a CPU), the waiting ones.
    pub(super) gil_wait: f64,
}

/// What a free-threaded build with the GIL off shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum FreeThreadedCase {
    /// A recording that saw the GIL held without the moment it came on.
    GilHeld,
    /// Busy threads that get fewer cores than they could use.
    Starved { busy: f64 },
    /// Threads waiting on the program's own locks.
    Locks { lock: f64 },
    /// Threads running Python in parallel.
    Parallel,
}

/// A speedup estimate: the numbers, with what they assume.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Forecast {
    pub(super) processes: Option<f64>,
    pub(super) threads: Option<f64>,
    pub(super) free_threaded: Option<f64>,
    /// The code change the advice names (own objects instead of a shared one).
    pub(super) fix: Option<f64>,
    pub(super) assumptions: Vec<Assumption>,
}

impl Forecast {
    /// No fix speeds the run up, because of `why`.
    pub(super) fn unchanged(why: Assumption) -> Forecast {
        Forecast {
            processes: Some(1.0),
            threads: Some(1.0),
            free_threaded: Some(1.0),
            fix: None,
            assumptions: vec![why],
        }
    }
}

/// How a process pool starts its workers on Linux, by default on the target's CPython.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StartMethod {
    /// A copy of the parent: no interpreter to start, nothing to import.
    Fork,
    /// From a server process started once (a fresh interpreter importing the main module),
    /// then forked per worker: the default from 3.14.
    Forkserver,
}

/// What a forecast takes for granted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Assumption {
    /// Amdahl's split: this share of the run spreads over `workers` cores.
    ParallelShare {
        parallel: f64,
        workers: f64,
    },
    EvenSplit,
    /// The pool's start: its workers started by `method`, `seconds` in all.
    WorkerStartup {
        method: StartMethod,
        seconds: f64,
    },
    PicklingUnmeasured,
    FreeThreadedSpeed,
    /// The work must first be split into `cores` parts.
    SplitFirst {
        cores: u32,
    },
    NativeAlreadyParallel,
    WaitsOutside,
    LockStays,
    EveryCoreBusy,
    EveryCoreBusyWithWork,
    /// The collector's share of the run removed.
    GcRemoved {
        share: f64,
    },
    /// The waits for objects' locks turned into work: `running` of the waiting threads' time
    /// is work today, spread over `cores` once each thread has its own object.
    ObjectLockRemoved {
        running: f64,
        cores: f64,
    },
    /// Every core kept busy, against the workers busy today.
    AllCoresBusy {
        cores: u32,
        busy_workers: f64,
    },
}

/// What one rule found.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Finding {
    NotEnoughEvidence(NotEnoughEvidence),
    UnmappedHolder(UnmappedHolder),
    NoRuleFits(NoRuleFits),
    GilContention(GilContention),
    Mixed(Mixed),
    NativeParallel(NativeParallel),
    SingleThreadCpu(SingleThreadCpu),
    LockContention(LockContention),
    IoBound(IoBound),
    CpuSaturated(CpuSaturated),
    Idle(Idle),
    EventLoopBlocked(EventLoopBlocked),
    IpcOverhead(IpcOverhead),
    ResultBottleneck(ResultBottleneck),
    PoolUnderused(PoolUnderused),
    PoolParallel(PoolParallel),
    FreeThreaded(FreeThreaded),
    GilTurnedOn(GilTurnedOn),
    GcPauses(GcPauses),
    ObjectLockContention(ObjectLockContention),
}

/// Free-threaded: threads take turns on a shared object's lock.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ObjectLockContention {
    pub(super) groups: Vec<GroupWords>,
    pub(super) waiters: f64,
    /// The waiting groups' share of time waiting for (or spinning on) objects' locks.
    pub(super) object_lock: f64,
    pub(super) load: Load,
    /// The types of the objects whose locks other threads held meanwhile, most seen first.
    pub(super) objects: Vec<String>,
    /// Where they waited: the lines that update the shared object.
    pub(super) sites: Vec<HotFunction>,
    pub(super) entries: Vec<Frame>,
    pub(super) forecast: Forecast,
}

/// The garbage collector took much of the run.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct GcPauses {
    /// Share of the samples in which it was collecting.
    pub(super) share: f64,
    /// A free-threaded build: each collection stops every thread.
    pub(super) stops_the_world: bool,
    /// Share of the samples in which a stop-the-world pause had suspended threads (3.13+).
    pub(super) world_stopped: Option<f64>,
    pub(super) load: Load,
    /// Where the collecting thread was when collections ran: the code that allocates.
    pub(super) allocating: Vec<HotFunction>,
    pub(super) forecast: Forecast,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct NotEnoughEvidence {
    pub(super) samples: u64,
    pub(super) duration_s: f64,
    pub(super) needed_s: f64,
}

/// The GIL held mostly by a thread gilscope could not map.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct UnmappedHolder {
    pub(super) unmapped: f64,
    pub(super) load: Load,
}

/// Busy threads whose time spreads over several states.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct NoRuleFits {
    pub(super) groups: Vec<GroupWords>,
    pub(super) shares: Vec<(ThreadState, f64)>,
    pub(super) load: Load,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct GilContention {
    /// The groups that ran Python, and the threads they kept busy at once.
    pub(super) groups: Vec<GroupWords>,
    pub(super) threads: f64,
    /// Groups that neither ran nor wanted the GIL.
    pub(super) bystanders: Vec<GroupWords>,
    /// Each Python thread's mean share waiting for the GIL.
    pub(super) wait: f64,
    /// Each Python thread's mean share passing the GIL on.
    pub(super) handoff: f64,
    pub(super) load: Load,
    pub(super) switches_per_s: Option<f64>,
    /// What started the threads.
    pub(super) pool: ThreadPoolKind,
    pub(super) hot: Vec<HotFunction>,
    pub(super) entries: Vec<Frame>,
    /// The threads' functions were typed into a notebook (or IPython): a process pool started
    /// by spawn or forkserver cannot import them.
    pub(super) defined_in_notebook: bool,
    pub(super) forecast: Forecast,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Mixed {
    pub(super) io_groups: Vec<GroupWords>,
    pub(super) io_wait: f64,
    pub(super) python_groups: Vec<GroupWords>,
    pub(super) python_wait: f64,
    pub(super) load: Load,
    pub(super) hot: Vec<HotFunction>,
    pub(super) forecast: Option<Forecast>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct NativeParallel {
    pub(super) threads: f64,
    pub(super) native: f64,
    pub(super) wait: f64,
    /// More native threads than cores, on every core: the verdict is `cpu_saturated`.
    pub(super) oversubscribed: bool,
    pub(super) load: Load,
    pub(super) hot: Vec<HotFunction>,
    pub(super) forecast: Forecast,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct SingleThreadCpu {
    /// The busy thread's group.
    pub(super) thread: String,
    pub(super) on_cpu: f64,
    pub(super) holding: f64,
    /// Threads of the other groups that took part.
    pub(super) others: f64,
    pub(super) load: Load,
    pub(super) entry: Option<Frame>,
    pub(super) hot: Vec<HotFunction>,
    pub(super) forecast: Forecast,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct LockContention {
    pub(super) waiters: f64,
    pub(super) lock: f64,
    pub(super) wait: f64,
    pub(super) load: Load,
    pub(super) sites: Vec<HotFunction>,
    pub(super) entries: Vec<Frame>,
    pub(super) forecast: Forecast,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct IoBound {
    pub(super) threads: f64,
    pub(super) io: f64,
    pub(super) wait: f64,
    pub(super) load: Load,
    /// Each running event loop: its thread's name and its share waiting for events.
    pub(super) loops: Vec<(Option<String>, f64)>,
    pub(super) hot: Vec<HotFunction>,
    pub(super) forecast: Forecast,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct CpuSaturated {
    pub(super) wait: f64,
    pub(super) load: Load,
    pub(super) forecast: Forecast,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Idle {
    pub(super) load: Load,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct EventLoopBlocked {
    pub(super) thread: Option<String>,
    /// Blocking calls rather than CPU-bound code.
    pub(super) blocking: bool,
    pub(super) busy: f64,
    pub(super) longest_s: f64,
    /// Of the loop's busy time, the share blocked rather than on a CPU.
    pub(super) blocked: f64,
    pub(super) culprits: Vec<LoopCulprit>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct IpcOverhead {
    pub(super) ipc_share: f64,
    pub(super) pool: PoolLoad,
    pub(super) hot: Vec<HotFunction>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct ResultBottleneck {
    pub(super) thread: Option<String>,
    pub(super) tid: Tid,
    pub(super) busy: f64,
    pub(super) pool: PoolLoad,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct PoolUnderused {
    pub(super) pool: PoolLoad,
    pub(super) utilisation: f64,
    /// Fewer workers than cores.
    pub(super) few_workers: bool,
    /// The parent's main thread's busy share, when it may be too slow to feed the pool.
    pub(super) parent_busy: Option<f64>,
    pub(super) forecast: Forecast,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct PoolParallel {
    pub(super) pool: PoolLoad,
    pub(super) ipc_share: f64,
    /// The user's functions the workers run: (function, file).
    pub(super) tasks: Vec<(String, String)>,
    pub(super) forecast: Forecast,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct FreeThreaded {
    pub(super) load: Load,
    pub(super) case: FreeThreadedCase,
}

/// A free-threaded build's GIL came back on.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct GilTurnedOn {
    pub(super) modules: Vec<ExtensionModule>,
    pub(super) at_s: f64,
    pub(super) contended: bool,
    pub(super) before: Option<Span>,
    pub(super) after: Span,
    pub(super) cores: u32,
}

impl Finding {
    pub(super) fn kind(&self) -> VerdictKind {
        match self {
            Finding::Idle(_) => VerdictKind::Idle,
            Finding::NotEnoughEvidence(_) | Finding::UnmappedHolder(_) | Finding::NoRuleFits(_) => {
                VerdictKind::Inconclusive
            }
            Finding::GilContention(_) => VerdictKind::GilContention,
            Finding::Mixed(_) => VerdictKind::Mixed,
            Finding::NativeParallel(n) if n.oversubscribed => VerdictKind::CpuSaturated,
            Finding::CpuSaturated(_) => VerdictKind::CpuSaturated,
            Finding::NativeParallel(_) => VerdictKind::NativeParallel,
            Finding::SingleThreadCpu(_) => VerdictKind::SingleThreadCpu,
            Finding::LockContention(_) => VerdictKind::LockContention,
            Finding::IoBound(_) => VerdictKind::IoBound,
            Finding::EventLoopBlocked(_) => VerdictKind::EventLoopBlocked,
            Finding::IpcOverhead(_) | Finding::ResultBottleneck(_) => VerdictKind::IpcOverhead,
            Finding::PoolUnderused(_) => VerdictKind::PoolUnderused,
            Finding::PoolParallel(_) => VerdictKind::PoolParallel,
            Finding::FreeThreaded(FreeThreaded {
                case: FreeThreadedCase::Locks { .. },
                ..
            }) => VerdictKind::LockContention,
            Finding::FreeThreaded(_) => VerdictKind::FreeThreaded,
            Finding::GcPauses(_) => VerdictKind::GcPauses,
            Finding::ObjectLockContention(_) => VerdictKind::ObjectLockContention,
            Finding::GilTurnedOn(g) if g.contended => VerdictKind::GilContention,
            Finding::GilTurnedOn(_) => VerdictKind::FreeThreaded,
        }
    }

    /// Low where the evidence is too thin or too unclear for a verdict.
    pub(super) fn confidence(&self) -> Confidence {
        match self {
            Finding::NotEnoughEvidence(_) | Finding::UnmappedHolder(_) | Finding::NoRuleFits(_) => {
                Confidence::Low
            }
            _ => Confidence::High,
        }
    }
}

/// How a phase is labelled: by its character alone, or around the GIL coming on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum PhaseLabel {
    Character,
    GilDisabled,
    GilOn,
}

/// A stretch of the run of one character.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct PhaseSpan {
    pub(super) start_s: f64,
    pub(super) end_s: f64,
    pub(super) kind: VerdictKind,
    pub(super) label: PhaseLabel,
}

/// Everything the rules found about a run: [`super::text::verdict`] writes it out.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Diagnosis {
    pub(super) finding: Finding,
    /// The stretch of the run judged, when its phases did not overlap: (start, end) seconds.
    pub(super) during: Option<(f64, f64)>,
    /// The process judged when a tree's busiest one is not its root: (pid, command).
    pub(super) within: Option<(Pid, String)>,
    pub(super) phases: Vec<PhaseSpan>,
}
