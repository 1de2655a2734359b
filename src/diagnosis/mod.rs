//! The verdict: a pure function from an [`Analysis`] to what is wrong, what to change, and how
//! much faster it should get. Each rule is named, with its thresholds as constants.
//!
//! [`diagnose`] computes the [`facts`] once and asks the rules in order of precedence: the
//! families are [`threads`] (one process's threads), [`pools`], [`event_loops`] and
//! [`free_threaded`] builds; [`phases`] splits a run that changed character and [`prediction`]
//! says how much faster the fix should be. A rule writes no words: it returns a typed
//! [`findings::Finding`], and [`text`] alone turns findings into the verdict's sentences.

mod event_loops;
mod facts;
mod findings;
mod free_threaded;
mod gc;
mod phases;
mod pools;
mod prediction;
mod text;
mod threads;

use serde::{Deserialize, Serialize};

use crate::analysis::Analysis;
use crate::model::{GilMode, ThreadState};

use event_loops::{blocked_loop, event_loop_blocked};
use facts::{mean_of, threads_in, Facts};
use findings::{Diagnosis, Finding, NotEnoughEvidence};
use free_threaded::{free_threaded, gil_phases};
use gc::gc_pauses;
use phases::{figures_during, phases};
use pools::{diagnose_pool, PoolFacts};
use threads::{
    cpu_saturated, gil_contention, idle, io_bound, lock_contention, mixed, native_parallel,
    no_rule_fits, single_thread_cpu, unmapped_holder,
};
use ThreadState::*;

/// Fewer samples than this, or a shorter run, is not enough evidence for a verdict.
pub const MIN_SAMPLES: u64 = 50;
pub const MIN_DURATION_S: f64 = 0.5;
/// A thread takes part when it spent at least this share of its samples doing something other
/// than waiting on the program's own locks or idling (so a main thread in `join` does not).
pub const PARTICIPATION_MIN: f64 = 0.05;
/// A group that ran or waited for the GIL, or ran native code, less than this share of its
/// time is a bystander (a sleeping main thread, a heartbeat): named, never deciding.
pub const BYSTANDER_MAX: f64 = 0.1;
/// A thread's own work is of a kind (Python, I/O) when this share of its time outside GIL
/// waits is of that kind: an I/O thread slowed by GIL waits is still an I/O thread.
pub const OWN_WORK_MIN: f64 = 0.5;
/// A group on a CPU runs Python when it holds the GIL at least this share of its CPU time.
pub const PYTHON_PART_MIN: f64 = 0.2;
/// What the GIL costs a thread that wants it: waiting to take it, and passing it on.
pub const GIL_COST: [ThreadState; 2] = [ThreadState::GilWait, ThreadState::Handoff];
/// GIL hand-offs a second from which passing the GIL on is worth naming as a cost.
pub const HANDOFF_RATE_MIN: f64 = 1000.0;
/// GIL contention: the GIL held at least this much, and Python threads waiting this much.
pub const CONTENTION_GIL_HELD_MIN: f64 = 0.5;
pub const CONTENTION_WAIT_MIN: f64 = 0.2;
/// A thread is busy on the CPU (holding the GIL or native) at least this much.
pub const BUSY_MIN: f64 = 0.5;
/// Native-parallel: a thread running native code without the GIL at least this much.
pub const NATIVE_THREAD_MIN: f64 = 0.3;
/// Native-parallel: the process used at least this share of two cores (of one on a one-core
/// machine): threads that run native code one at a time are not parallel.
pub const NATIVE_PARALLEL_CORES_MIN: f64 = 0.6;
/// I/O-bound: the average participating thread waits on I/O or sleeps at least this much.
pub const IO_SHARE_MIN: f64 = 0.6;
/// Lock contention: the average participating thread waits on a lock this much.
pub const LOCK_SHARE_MIN: f64 = 0.4;
/// Object-lock contention (free-threaded): the average participating thread waits for (or
/// spins on) objects' locks this much.
pub const OBJECT_LOCK_SHARE_MIN: f64 = 0.3;
/// What a thread does when it wants to run: run (holding the GIL or not), wait for the GIL,
/// pass it on, or wait for an object's lock.
pub const WANTS_TO_RUN: [ThreadState; 5] = [
    ThreadState::Gil,
    ThreadState::GilWait,
    ThreadState::Handoff,
    ThreadState::Native,
    ThreadState::ObjectLock,
];
/// The collector's pauses decide the verdict when it collected in at least this share of the
/// samples: whatever the threads do, most of the run is spent collecting.
pub const GC_SHARE_MIN: f64 = 0.3;
/// Saturated: the process used at least this share of the machine's cores.
pub const SATURATION_MIN: f64 = 0.85;
/// Idle: the process used less CPU than this (cores).
pub const IDLE_CORES_MAX: f64 = 0.05;
/// Estimated throughput of Python code on a free-threaded 3.13t build relative to the
/// default build (its single-thread overhead). An estimate, flagged.
pub const FREE_THREADED_EFFICIENCY: f64 = 0.8;
/// Phases shorter than this many windows (seconds) are folded into their neighbours.
pub const MIN_PHASE_WINDOWS: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    GilContention,
    SingleThreadCpu,
    IoBound,
    NativeParallel,
    LockContention,
    CpuSaturated,
    IpcOverhead,
    FreeThreaded,
    Mixed,
    Idle,
    /// A process pool whose workers keep the cores busy: the fix worked.
    PoolParallel,
    /// A process pool with fewer busy workers than cores.
    PoolUnderused,
    /// An asyncio event loop stalled by blocking calls or CPU-bound code.
    EventLoopBlocked,
    /// The garbage collector takes much of the run.
    GcPauses,
    /// Free-threaded: threads take turns on the lock of an object they share.
    ObjectLockContention,
    /// The evidence fits no rule, is too little (a run shorter than half a second), or could
    /// not be read well enough to judge (the GIL held by a thread gilscope could not map):
    /// what was seen, and no verdict built on it.
    Inconclusive,
}

impl VerdictKind {
    pub const ALL: [VerdictKind; 16] = [
        VerdictKind::GilContention,
        VerdictKind::SingleThreadCpu,
        VerdictKind::IoBound,
        VerdictKind::NativeParallel,
        VerdictKind::LockContention,
        VerdictKind::CpuSaturated,
        VerdictKind::IpcOverhead,
        VerdictKind::FreeThreaded,
        VerdictKind::Mixed,
        VerdictKind::Idle,
        VerdictKind::PoolParallel,
        VerdictKind::PoolUnderused,
        VerdictKind::EventLoopBlocked,
        VerdictKind::GcPauses,
        VerdictKind::ObjectLockContention,
        VerdictKind::Inconclusive,
    ];

    pub fn name(self) -> &'static str {
        match self {
            VerdictKind::GilContention => "gil_contention",
            VerdictKind::SingleThreadCpu => "single_thread_cpu",
            VerdictKind::IoBound => "io_bound",
            VerdictKind::NativeParallel => "native_parallel",
            VerdictKind::LockContention => "lock_contention",
            VerdictKind::CpuSaturated => "cpu_saturated",
            VerdictKind::IpcOverhead => "ipc_overhead",
            VerdictKind::FreeThreaded => "free_threaded",
            VerdictKind::Mixed => "mixed",
            VerdictKind::Idle => "idle",
            VerdictKind::PoolParallel => "pool_parallel",
            VerdictKind::PoolUnderused => "pool_underused",
            VerdictKind::EventLoopBlocked => "event_loop_blocked",
            VerdictKind::GcPauses => "gc_pauses",
            VerdictKind::ObjectLockContention => "object_lock_contention",
            VerdictKind::Inconclusive => "inconclusive",
        }
    }
}

/// How far the verdict can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    High,
    /// The reason is in the evidence.
    Low,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Speedup of the whole run from moving the work to processes.
    pub processes: Option<f64>,
    /// Speedup from adding threads on the same build (1.0: threads cannot help).
    pub threads: Option<f64>,
    /// Speedup from running the same threads on a free-threaded build.
    pub free_threaded: Option<f64>,
    /// Speedup from the code change the advice names, where it names one the other figures
    /// do not cover (each thread its own object instead of a shared one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<f64>,
    pub assumptions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub start_s: f64,
    pub end_s: f64,
    pub kind: VerdictKind,
    pub headline: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub kind: VerdictKind,
    pub headline: String,
    pub evidence: Vec<String>,
    pub advice: Vec<String>,
    /// A short code change, where one applies.
    pub snippet: Option<String>,
    pub predicted_speedup: Option<Prediction>,
    pub confidence: Confidence,
    /// When the run changed character over time, one entry per phase.
    pub phases: Vec<Phase>,
}

/// Decides the verdict for a whole run.
pub fn diagnose(analysis: &Analysis) -> Verdict {
    text::verdict(&find(analysis))
}

/// What the rules find about a run.
fn find(analysis: &Analysis) -> Diagnosis {
    let alone = |finding| Diagnosis {
        finding,
        during: None,
        within: None,
        phases: Vec::new(),
    };
    if analysis.ticks < MIN_SAMPLES || analysis.duration_s < MIN_DURATION_S {
        let rate_hz = analysis
            .target
            .as_ref()
            .map_or(100.0, |t| t.rate_hz.max(1.0));
        return alone(Finding::NotEnoughEvidence(NotEnoughEvidence {
            samples: analysis.ticks,
            duration_s: analysis.duration_s,
            needed_s: (MIN_SAMPLES as f64 / rate_hz).max(MIN_DURATION_S),
        }));
    }
    if let Some(pool) = PoolFacts::new(analysis) {
        return alone(diagnose_pool(&pool));
    }
    // Without a pool, the process that did the most is judged on its own: its threads share
    // one GIL, other processes' do not.
    let busiest = analysis
        .processes
        .iter()
        .filter(|p| p.python.is_some())
        .max_by(|a, b| a.cpu_s.total_cmp(&b.cpu_s));
    if let (Some(process), true) = (busiest, analysis.processes.len() > 1) {
        let mut diagnosis = find(&analysis.only_process(process.pid));
        if process.parent.is_some() {
            diagnosis.within = Some((process.pid, process.command.join(" ")));
        }
        return diagnosis;
    }
    let facts = Facts::new(analysis);
    let phases = phases(analysis);
    let mut finding = decide(&facts);
    let mut during = None;
    // Phases that did not overlap are not a mix, nor a spread: judge the run by its CPU-bound
    // phase.
    let cpu_phase = phases.iter().find(|p| p.kind == VerdictKind::GilContention);
    if let (Finding::Mixed(_) | Finding::NoRuleFits(_), Some(phase)) = (&finding, cpu_phase) {
        let python = facts.running_python();
        if threads_in(&python) >= 2.0 {
            finding = gil_contention(&facts, &python);
            during = Some((phase.start_s, phase.end_s));
            // The threads' shares are their own lifetimes' (the phase's); the process's
            // figures are the run's until told over the phase.
            if let (Finding::GilContention(g), Some(figures)) =
                (&mut finding, figures_during(analysis, phase))
            {
                g.load.gil_held = figures.gil_held.unwrap_or(g.load.gil_held);
                g.load.cores_used = figures.cores_used;
                g.switches_per_s = Some(figures.switches_per_s);
            }
        }
    }
    Diagnosis {
        phases: gil_phases(&finding, analysis.duration_s).unwrap_or(phases),
        finding,
        during,
        within: None,
    }
}

/// The rules, in order of precedence.
fn decide(f: &Facts) -> Finding {
    if let Some(pauses) = gc_pauses(f) {
        return pauses;
    }
    if f.analysis
        .target
        .as_ref()
        .is_some_and(|t| t.gil == GilMode::Disabled)
    {
        if let Some(finding) = free_threaded(f) {
            return finding;
        }
    }
    if let Some(v) = unmapped_holder(f) {
        return v;
    }
    if f.workers.is_empty() {
        return idle(f);
    }
    let python = f.running_python();
    // I/O threads matter to the GIL only when they wait for it: one that sleeps or waits on
    // the network without asking for the GIL is a bystander.
    let io_threads: Vec<_> = f
        .doing(&[Io, Sleep])
        .into_iter()
        .filter(|u| u.share(&GIL_COST) >= CONTENTION_WAIT_MIN)
        .collect();
    let waiting: Vec<_> = python.iter().chain(&io_threads).copied().collect();
    let contended = !python.is_empty()
        && threads_in(&waiting) >= 1.5
        && f.gil_held >= CONTENTION_GIL_HELD_MIN
        && mean_of(&waiting, &GIL_COST) >= CONTENTION_WAIT_MIN;
    if contended && !io_threads.is_empty() {
        return mixed(f, &python, &io_threads);
    }
    if contended && threads_in(&python) >= 1.5 {
        return gil_contention(f, &python);
    }
    if let Some((thread, lp)) = blocked_loop(f.analysis) {
        return event_loop_blocked(f, thread, lp);
    }
    // Native code runs in parallel only where the process used more than one core's worth.
    let parallel_cores = NATIVE_PARALLEL_CORES_MIN * (f.cores as f64).min(2.0);
    let native_threads = f.count(&[Native], NATIVE_THREAD_MIN);
    if native_threads >= 1.5
        && f.mean(&[GilWait]) < CONTENTION_WAIT_MIN
        && f.cores_used() >= parallel_cores
    {
        return native_parallel(f, native_threads);
    }
    let busy: Vec<_> = f
        .workers
        .iter()
        .filter(|u| u.share(&[Gil, Handoff, Native]) >= BUSY_MIN)
        .collect();
    if let ([only], true) = (&busy[..], f.cores_used() < 1.5) {
        if only.weight() < 1.5 {
            return single_thread_cpu(f, only);
        }
    }
    if f.mean(&[Lock]) >= LOCK_SHARE_MIN && f.mean(&[Lock]) >= f.mean(&[Io, Sleep]) {
        return lock_contention(f);
    }
    if f.mean(&[Io, Sleep]) >= IO_SHARE_MIN {
        return io_bound(f);
    }
    if f.cores_used() >= SATURATION_MIN * f.cores as f64 {
        return cpu_saturated(f);
    }
    if f.cores_used() < IDLE_CORES_MAX {
        return idle(f);
    }
    if python.is_empty() || io_threads.is_empty() {
        return no_rule_fits(f);
    }
    mixed(f, &python, &io_threads)
}
