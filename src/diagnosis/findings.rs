//! What the rules find, as numbers and names and before any word is written: a rule returns a
//! [`Finding`], and [`super::text`] alone turns it into the [`super::Verdict`]'s sentences.

use crate::analysis::queries::{HotFunction, LoopCulprit};
use crate::model::{ExtensionModule, Frame, ThreadState};

use super::{Confidence, VerdictKind};

/// How busy the process was: the GIL and the cores, which most rules cite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Load {
    pub(super) gil_held: f64,
    pub(super) cores_used: f64,
    pub(super) cores: u32,
}

/// A process pool's workers against the cores, which every pool rule cites.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct PoolLoad {
    /// Workers alive at once, on average over the run.
    pub(super) concurrent_workers: f64,
    /// Worker-equivalents busy on a CPU, on average over the run.
    pub(super) busy_workers: f64,
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
    Starved { busy: usize },
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
    pub(super) assumptions: Vec<Assumption>,
}

impl Forecast {
    /// No fix speeds the run up, because of `why`.
    pub(super) fn unchanged(why: Assumption) -> Forecast {
        Forecast {
            processes: Some(1.0),
            threads: Some(1.0),
            free_threaded: Some(1.0),
            assumptions: vec![why],
        }
    }
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
    WorkerStartup,
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
    /// Every core kept busy, against the workers busy today.
    AllCoresBusy {
        cores: u32,
        busy_workers: f64,
    },
}

/// What one rule found.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Finding {
    NotEnoughEvidence {
        samples: u64,
        duration_s: f64,
        needed_s: f64,
    },
    /// The GIL held mostly by a thread gilscope could not map.
    UnmappedHolder {
        unmapped: f64,
        load: Load,
    },
    /// Busy threads whose time spreads over several states.
    NoRuleFits {
        threads: usize,
        shares: Vec<(ThreadState, f64)>,
        load: Load,
    },
    GilContention {
        threads: usize,
        /// Each Python thread's mean share waiting for the GIL.
        wait: f64,
        load: Load,
        switches_per_s: Option<f64>,
        /// The threads come from a `ThreadPoolExecutor`.
        executor: bool,
        hot: Vec<HotFunction>,
        entries: Vec<Frame>,
        forecast: Forecast,
    },
    Mixed {
        io_threads: usize,
        io_wait: f64,
        python_threads: usize,
        python_wait: f64,
        load: Load,
        hot: Vec<HotFunction>,
        forecast: Option<Forecast>,
    },
    NativeParallel {
        threads: usize,
        native: f64,
        wait: f64,
        /// More native threads than cores, on every core: the verdict is `cpu_saturated`.
        oversubscribed: bool,
        load: Load,
        hot: Vec<HotFunction>,
        forecast: Forecast,
    },
    SingleThreadCpu {
        thread: String,
        on_cpu: f64,
        holding: f64,
        others: usize,
        load: Load,
        entry: Option<Frame>,
        hot: Vec<HotFunction>,
        forecast: Forecast,
    },
    LockContention {
        waiters: usize,
        lock: f64,
        wait: f64,
        load: Load,
        sites: Vec<HotFunction>,
        entries: Vec<Frame>,
        forecast: Forecast,
    },
    IoBound {
        threads: usize,
        io: f64,
        wait: f64,
        load: Load,
        /// Each running event loop: its thread's name and its share waiting for events.
        loops: Vec<(String, f64)>,
        hot: Vec<HotFunction>,
        forecast: Forecast,
    },
    CpuSaturated {
        wait: f64,
        load: Load,
        forecast: Forecast,
    },
    Idle {
        load: Load,
    },
    EventLoopBlocked {
        thread: String,
        /// Blocking calls rather than CPU-bound code.
        blocking: bool,
        busy: f64,
        longest_s: f64,
        /// Of the loop's busy time, the share blocked rather than on a CPU.
        blocked: f64,
        culprits: Vec<LoopCulprit>,
    },
    IpcOverhead {
        ipc_share: f64,
        pool: PoolLoad,
        hot: Vec<HotFunction>,
    },
    ResultBottleneck {
        thread: String,
        tid: u32,
        busy: f64,
        pool: PoolLoad,
    },
    PoolUnderused {
        pool: PoolLoad,
        utilisation: f64,
        /// Fewer workers than cores.
        few_workers: bool,
        /// The parent's main thread's busy share, when it may be too slow to feed the pool.
        parent_busy: Option<f64>,
        forecast: Forecast,
    },
    PoolParallel {
        pool: PoolLoad,
        ipc_share: f64,
        /// The user's functions the workers run: (function, file).
        tasks: Vec<(String, String)>,
        forecast: Forecast,
    },
    FreeThreaded {
        load: Load,
        case: FreeThreadedCase,
    },
    /// A free-threaded build's GIL came back on.
    GilTurnedOn {
        modules: Vec<ExtensionModule>,
        at_s: f64,
        contended: bool,
        before: Option<Span>,
        after: Span,
        cores: u32,
    },
}

impl Finding {
    pub(super) fn kind(&self) -> VerdictKind {
        match self {
            Finding::NotEnoughEvidence { .. } | Finding::Idle { .. } => VerdictKind::Idle,
            Finding::UnmappedHolder { .. } | Finding::NoRuleFits { .. } => {
                VerdictKind::Inconclusive
            }
            Finding::GilContention { .. } => VerdictKind::GilContention,
            Finding::Mixed { .. } => VerdictKind::Mixed,
            Finding::NativeParallel {
                oversubscribed: true,
                ..
            }
            | Finding::CpuSaturated { .. } => VerdictKind::CpuSaturated,
            Finding::NativeParallel { .. } => VerdictKind::NativeParallel,
            Finding::SingleThreadCpu { .. } => VerdictKind::SingleThreadCpu,
            Finding::LockContention { .. } => VerdictKind::LockContention,
            Finding::IoBound { .. } => VerdictKind::IoBound,
            Finding::EventLoopBlocked { .. } => VerdictKind::EventLoopBlocked,
            Finding::IpcOverhead { .. } | Finding::ResultBottleneck { .. } => {
                VerdictKind::IpcOverhead
            }
            Finding::PoolUnderused { .. } => VerdictKind::PoolUnderused,
            Finding::PoolParallel { .. } => VerdictKind::PoolParallel,
            Finding::FreeThreaded { .. } => VerdictKind::FreeThreaded,
            Finding::GilTurnedOn {
                contended: true, ..
            } => VerdictKind::GilContention,
            Finding::GilTurnedOn { .. } => VerdictKind::FreeThreaded,
        }
    }

    /// Low where the evidence is too thin or too unclear for a verdict.
    pub(super) fn confidence(&self) -> Confidence {
        match self {
            Finding::NotEnoughEvidence { .. }
            | Finding::UnmappedHolder { .. }
            | Finding::NoRuleFits { .. } => Confidence::Low,
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
    pub(super) within: Option<(u32, String)>,
    pub(super) phases: Vec<PhaseSpan>,
}
