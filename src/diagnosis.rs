//! The verdict: a pure function from an [`Analysis`] to what is wrong, what to change, and how
//! much faster it should get. Each rule is named, with its thresholds as constants.

use serde::{Deserialize, Serialize};

use std::collections::HashMap;

use crate::analysis::queries::{hot_functions, loop_culprits};
use crate::analysis::{Analysis, EventLoop, ThreadSummary, Window};
use crate::known_frames::{is_ipc, is_result_handler, ProcessRole};
use crate::model::{Frame, GilMode, ThreadState};

use ThreadState::*;

/// Fewer samples than this, or a shorter run, is not enough evidence for a verdict.
pub const MIN_SAMPLES: u64 = 50;
pub const MIN_DURATION_S: f64 = 0.5;
/// A thread takes part when it spent at least this share of its samples doing something other
/// than waiting on the program's own locks or idling (so a main thread in `join` does not).
pub const PARTICIPATION_MIN: f64 = 0.05;
/// A thread's own work is of a kind (Python, I/O) when this share of its time outside GIL
/// waits is of that kind: an I/O thread slowed by GIL waits is still an I/O thread.
pub const OWN_WORK_MIN: f64 = 0.5;
/// GIL contention: the GIL held at least this much, and Python threads waiting this much.
pub const CONTENTION_GIL_HELD_MIN: f64 = 0.5;
pub const CONTENTION_WAIT_MIN: f64 = 0.2;
/// A thread is busy on the CPU (holding the GIL or native) at least this much.
pub const BUSY_MIN: f64 = 0.5;
/// Native-parallel: a thread running native code without the GIL at least this much.
pub const NATIVE_THREAD_MIN: f64 = 0.3;
/// I/O-bound: the average participating thread waits on I/O or sleeps at least this much.
pub const IO_SHARE_MIN: f64 = 0.6;
/// Lock contention: the average participating thread waits on a lock this much.
pub const LOCK_SHARE_MIN: f64 = 0.4;
/// Saturated: the process used at least this share of the machine's cores.
pub const SATURATION_MIN: f64 = 0.85;
/// Idle: the process used less CPU than this (cores).
pub const IDLE_CORES_MAX: f64 = 0.05;
/// Estimated start-up of one worker process (fork, import), seconds. An estimate, flagged.
pub const WORKER_STARTUP_S: f64 = 0.05;
/// Estimated throughput of Python code on a free-threaded 3.13t build relative to the
/// default build (its single-thread overhead). An estimate, flagged.
pub const FREE_THREADED_EFFICIENCY: f64 = 0.8;
/// Phases shorter than this many windows (seconds) are folded into their neighbours.
pub const MIN_PHASE_WINDOWS: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The evidence fits no rule, or could not be read well enough to judge (the GIL held by
    /// a thread gilscope could not map): what was seen, and no verdict built on it.
    Inconclusive,
}

impl VerdictKind {
    pub const ALL: [VerdictKind; 14] = [
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
            VerdictKind::Inconclusive => "inconclusive",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Speedup of the whole run from moving the work to processes.
    pub processes: Option<f64>,
    /// Speedup from adding threads on the same build (1.0: threads cannot help).
    pub threads: Option<f64>,
    /// Speedup from running the same threads on a free-threaded build.
    pub free_threaded: Option<f64>,
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
    /// "high", or "low" with the reason in the evidence.
    pub confidence: String,
    /// When the run changed character over time, one entry per phase.
    pub phases: Vec<Phase>,
}

/// The evidence the rules read, computed once.
struct Facts<'a> {
    analysis: &'a Analysis,
    /// Threads that did something (see [`PARTICIPATION_MIN`]).
    workers: Vec<&'a ThreadSummary>,
    cores: u32,
    gil_held: f64,
}

impl<'a> Facts<'a> {
    fn new(analysis: &'a Analysis) -> Self {
        let min_samples = (analysis.ticks / 10).max(1);
        let workers = analysis
            .threads
            .iter()
            .filter(|t| t.samples >= min_samples)
            .filter(|t| t.share(&[Gil, GilWait, Native, Io, Sleep]) >= PARTICIPATION_MIN)
            .collect();
        Facts {
            analysis,
            workers,
            cores: analysis.cores(),
            gil_held: analysis.gil_held.unwrap_or(0.0),
        }
    }

    fn mean(&self, states: &[ThreadState]) -> f64 {
        if self.workers.is_empty() {
            return 0.0;
        }
        self.workers.iter().map(|t| t.share(states)).sum::<f64>() / self.workers.len() as f64
    }

    fn count(&self, states: &[ThreadState], min: f64) -> usize {
        self.workers
            .iter()
            .filter(|t| t.share(states) >= min)
            .count()
    }

    /// Threads whose own work (their time with the GIL wait taken out) is mostly in `states`.
    fn doing(&self, states: &[ThreadState]) -> Vec<&'a ThreadSummary> {
        self.workers
            .iter()
            .copied()
            .filter(|t| own_share(t, states) >= OWN_WORK_MIN)
            .collect()
    }

    fn cores_used(&self) -> f64 {
        self.analysis.cpu_cores_used
    }

    fn core_line(&self) -> String {
        format!("{:.1} of {} cores used", self.cores_used(), self.cores)
    }
}

/// Decides the verdict for a whole run.
pub fn diagnose(analysis: &Analysis) -> Verdict {
    if analysis.ticks < MIN_SAMPLES || analysis.duration_s < MIN_DURATION_S {
        return not_enough_evidence(analysis);
    }
    if let Some(pool) = PoolFacts::new(analysis) {
        return diagnose_pool(&pool);
    }
    // Without a pool, the process that did the most is judged on its own: its threads share
    // one GIL, other processes' do not.
    let busiest = analysis
        .processes
        .iter()
        .filter(|p| p.python.is_some())
        .max_by(|a, b| a.cpu_s.total_cmp(&b.cpu_s));
    if let (Some(process), true) = (busiest, analysis.processes.len() > 1) {
        let mut verdict = diagnose(&analysis.only_process(process.pid));
        if process.parent.is_some() {
            verdict.headline = format!(
                "In PID {} ({}): {}",
                process.pid,
                process.command.join(" "),
                verdict.headline
            );
        }
        return verdict;
    }
    let facts = Facts::new(analysis);
    let phases = phases(analysis);
    let mut verdict = decide(&facts);
    // Phases that did not overlap are not a mix: judge the run by its CPU-bound phase.
    let cpu_phase = phases.iter().find(|p| p.kind == VerdictKind::GilContention);
    if let (VerdictKind::Mixed, Some(phase)) = (verdict.kind, cpu_phase) {
        let python = facts.doing(&[Gil]);
        if python.len() >= 2 {
            verdict = gil_contention(&facts, &python);
            verdict.headline = format!(
                "From {:.0} s to {:.0} s: {}",
                phase.start_s, phase.end_s, verdict.headline
            );
        }
    }
    if verdict.phases.is_empty() {
        verdict.phases = phases;
    }
    verdict
}

fn not_enough_evidence(analysis: &Analysis) -> Verdict {
    let needed = (MIN_SAMPLES as f64
        / analysis
            .target
            .as_ref()
            .map_or(100.0, |t| t.rate_hz.max(1.0)))
    .max(MIN_DURATION_S);
    Verdict {
        kind: VerdictKind::Idle,
        headline: format!(
            "Not enough evidence: {} samples over {:.2} s; sample at least {:.1} s",
            analysis.ticks, analysis.duration_s, needed
        ),
        evidence: vec![format!(
            "{} samples, {:.2} s: a verdict needs {} samples and {:.1} s",
            analysis.ticks, analysis.duration_s, MIN_SAMPLES, MIN_DURATION_S
        )],
        advice: vec!["run the program for longer, or attach while it does its slow part".into()],
        snippet: None,
        predicted_speedup: None,
        confidence: "low".into(),
        phases: Vec::new(),
    }
}

/// The rules, in order of precedence.
fn decide(f: &Facts) -> Verdict {
    if f.analysis
        .target
        .as_ref()
        .is_some_and(|t| t.gil == GilMode::Disabled)
    {
        return free_threaded(f);
    }
    if let Some(v) = unmapped_holder(f) {
        return v;
    }
    if f.workers.is_empty() {
        return idle(f);
    }
    let python = f.doing(&[Gil]);
    let io_threads = f.doing(&[Io, Sleep]);
    let waiting: Vec<_> = python.iter().chain(&io_threads).copied().collect();
    let contended = !python.is_empty()
        && python.len() + io_threads.len() >= 2
        && f.gil_held >= CONTENTION_GIL_HELD_MIN
        && mean_of(&waiting, &[GilWait]) >= CONTENTION_WAIT_MIN;
    if contended && !io_threads.is_empty() {
        return mixed(f, &python, &io_threads);
    }
    if contended && python.len() >= 2 {
        return gil_contention(f, &python);
    }
    if let Some((thread, lp)) = blocked_loop(f.analysis) {
        return event_loop_blocked(f, thread, lp);
    }
    let native_threads = f.count(&[Native], NATIVE_THREAD_MIN);
    if native_threads >= 2 && f.mean(&[GilWait]) < CONTENTION_WAIT_MIN {
        return native_parallel(f, native_threads);
    }
    let busy: Vec<_> = f
        .workers
        .iter()
        .copied()
        .filter(|t| t.share(&[Gil, Native]) >= BUSY_MIN)
        .collect();
    if busy.len() == 1 && f.cores_used() < 1.5 {
        return single_thread_cpu(f, busy[0]);
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
    if python.is_empty() && io_threads.is_empty() {
        return no_rule_fits(f);
    }
    mixed(f, &python, &io_threads)
}

/// The GIL held for at least this share of the samples by a thread that could not be mapped
/// (and for most of the time it was held) leaves every GIL-based rule without evidence.
pub const UNMAPPED_HOLDER_MIN: f64 = 0.2;

/// The GIL was held, but mostly by a thread gilscope could not map to one of the target's:
/// every thread's `gil` time would read as `native` or `gil_wait`, so no verdict is given.
fn unmapped_holder(f: &Facts) -> Option<Verdict> {
    let unmapped = f.analysis.root()?.gil_held_unmapped?;
    if unmapped < UNMAPPED_HOLDER_MIN || unmapped < 0.5 * f.gil_held {
        return None;
    }
    let mut v = base(
        VerdictKind::Inconclusive,
        format!(
            "Cannot tell: the GIL was held {} of the time by a thread gilscope could not map",
            pct(unmapped)
        ),
        vec![
            "CPython names the GIL's holder by a thread id from its own memory; that id matched none of the target's threads, so no thread can be shown holding the GIL and GIL-based verdicts would be guesses".into(),
            f.core_line(),
        ],
    );
    v.confidence = "low".into();
    v.advice.push("The likely cause is a PID namespace gilscope could not translate (a container): run gilscope in the target's PID namespace (`gilscope run` inside the container, or a sidecar started with `--pid=container:NAME`)".into());
    v.advice.push("If the target is on the host, please report this with the Python build and `cat /proc/PID/status`".into());
    Some(v)
}

/// Busy threads that fit no rule: what was seen, without a verdict.
fn no_rule_fits(f: &Facts) -> Verdict {
    let shares: Vec<String> = [Gil, GilWait, Native, Io, Sleep, Lock]
        .into_iter()
        .map(|state| (state, f.mean(&[state])))
        .filter(|&(_, share)| share >= 0.05)
        .map(|(state, share)| format!("{} {}", state.name(), pct(share)))
        .collect();
    let mut v = base(
        VerdictKind::Inconclusive,
        "No clear bottleneck: the threads' time is spread over several states".into(),
        vec![
            format!(
                "{} busy threads spend on average: {}",
                f.workers.len(),
                shares.join(", ")
            ),
            format!(
                "the GIL was held {} of the time; {}",
                pct(f.gil_held),
                f.core_line()
            ),
        ],
    );
    v.confidence = "low".into();
    v.advice.push("Sample a longer stretch of the slow part, or look at the per-thread table and the hot functions below".into());
    v
}

fn own_share(t: &ThreadSummary, states: &[ThreadState]) -> f64 {
    let outside_wait = 1.0 - t.fraction(GilWait);
    if outside_wait <= 0.0 {
        0.0
    } else {
        t.share(states) / outside_wait
    }
}

fn mean_of(threads: &[&ThreadSummary], states: &[ThreadState]) -> f64 {
    if threads.is_empty() {
        return 0.0;
    }
    threads.iter().map(|t| t.share(states)).sum::<f64>() / threads.len() as f64
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

fn base(kind: VerdictKind, headline: String, evidence: Vec<String>) -> Verdict {
    Verdict {
        kind,
        headline,
        evidence,
        advice: Vec::new(),
        snippet: None,
        predicted_speedup: None,
        confidence: "high".into(),
        phases: Vec::new(),
    }
}

fn location(frame: &Frame) -> String {
    format!(
        "{} ({}:{})",
        frame.function,
        short_path(&frame.file),
        frame.line
    )
}

fn short_path(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}

/// Frames of the threading machinery, skipped when naming a thread's entry point.
fn is_thread_machinery(frame: &Frame) -> bool {
    let file = frame.file.as_str();
    file.ends_with("threading.py")
        || file.contains("concurrent/futures/")
        || file.contains("multiprocessing/")
        || file.contains("asyncio/")
}

/// The outermost frame of the user's own code on a thread: the function the thread runs.
fn entry_point<'a>(analysis: &'a Analysis, thread: &ThreadSummary) -> Option<&'a Frame> {
    let (&(_, stack), _) = thread
        .stacks
        .iter()
        .max_by_key(|(k, &n)| (n, std::cmp::Reverse(k.1)))?;
    let frames: Vec<&Frame> = analysis.stack_frames(stack).collect();
    frames
        .iter()
        .rev()
        .copied()
        .find(|f| !is_thread_machinery(f) && !f.file.is_empty())
}

fn uses_executor(analysis: &Analysis, threads: &[&ThreadSummary]) -> bool {
    threads.iter().any(|t| {
        t.stacks.keys().any(|&(_, stack)| {
            analysis
                .stack_frames(stack)
                .any(|f| f.file.contains("concurrent/futures/thread.py"))
        })
    })
}

fn hot_lines(analysis: &Analysis, state: ThreadState, what: &str) -> Vec<String> {
    hot_functions(analysis, state, 3)
        .into_iter()
        .filter(|h| h.fraction >= 0.005)
        .map(|h| {
            format!(
                "{} {}:{} `{}` ({} of {what})",
                "-",
                short_path(&h.file),
                h.line,
                h.function,
                pct(h.fraction)
            )
        })
        .collect()
}

fn entry_points(analysis: &Analysis, threads: &[&ThreadSummary]) -> Vec<String> {
    let mut names: Vec<String> = threads
        .iter()
        .filter_map(|t| entry_point(analysis, t))
        .map(location)
        .collect();
    names.sort();
    names.dedup();
    names
}

fn gil_contention(f: &Facts, python: &[&ThreadSummary]) -> Verdict {
    let a = f.analysis;
    let wait = mean_of(python, &[GilWait]);
    let mut evidence = vec![
        format!(
            "{} threads ran Python; the GIL was held {} of the time; each waited {} of its time for it; {}",
            python.len(),
            pct(f.gil_held),
            pct(wait),
            f.core_line()
        ),
    ];
    if let Some(rate) = a.gil_switches_per_s {
        evidence.push(format!("the GIL changed hands {rate:.0} times a second"));
    }
    let mut v = base(
        VerdictKind::GilContention,
        format!(
            "GIL contention: {} Python threads take turns on one GIL, so they run one at a time",
            python.len()
        ),
        evidence,
    );
    let executor = uses_executor(a, python);
    v.advice.push(format!(
        "Move the CPU-bound Python work to processes: {}",
        if executor {
            "replace ThreadPoolExecutor with ProcessPoolExecutor"
        } else {
            "replace threading.Thread with multiprocessing.Pool (or ProcessPoolExecutor)"
        }
    ));
    let hot = hot_lines(a, Gil, "GIL-holding time");
    if !hot.is_empty() {
        v.advice.push("The functions holding the GIL:".into());
        v.advice.extend(hot);
    }
    let entries = entry_points(a, python);
    if !entries.is_empty() {
        v.advice.push(format!(
            "They run in the threads started at: {}",
            entries.join(", ")
        ));
    }
    v.advice.push(
        "Keep the pool's creation under `if __name__ == \"__main__\":`, and pass small arguments (paths, ranges) rather than large data".into(),
    );
    v.advice.push(
        "Alternatively, a free-threaded CPython (3.13t or later) runs these threads in parallel"
            .into(),
    );
    v.snippet = Some(if executor {
        "# before\nwith ThreadPoolExecutor(max_workers=n) as pool:\n    results = list(pool.map(work, tasks))\n\n# after\nfrom concurrent.futures import ProcessPoolExecutor\n\nif __name__ == \"__main__\":\n    with ProcessPoolExecutor(max_workers=n) as pool:\n        results = list(pool.map(work, tasks))".into()
    } else {
        "# before\nthreads = [threading.Thread(target=work, args=(t,)) for t in tasks]\n\n# after\nimport multiprocessing\n\nif __name__ == \"__main__\":\n    with multiprocessing.Pool() as pool:\n        results = pool.map(work, tasks)".into()
    });
    v.predicted_speedup = Some(predict(f, python));
    v
}

fn mixed(f: &Facts, python: &[&ThreadSummary], io_threads: &[&ThreadSummary]) -> Verdict {
    let a = f.analysis;
    let mut v = base(
        VerdictKind::Mixed,
        format!(
            "Mixed: {} threads wait on I/O while {} run Python and hold the GIL",
            io_threads.len(),
            python.len()
        ),
        vec![
            format!(
                "{} threads do I/O or sleep, yet wait {} of their time for the GIL; {} threads ran Python, waiting {} for it",
                io_threads.len(),
                pct(mean_of(io_threads, &[GilWait])),
                python.len(),
                pct(mean_of(python, &[GilWait]))
            ),
            format!("the GIL was held {} of the time; {}", pct(f.gil_held), f.core_line()),
        ],
    );
    v.advice.push("Keep the I/O in threads (or asyncio), and send the CPU-bound Python work to a process pool: chain a ThreadPoolExecutor that fetches into a ProcessPoolExecutor that computes".into());
    v.advice.extend(hot_lines(a, Gil, "GIL-holding time"));
    v.snippet = Some("import asyncio\nfrom concurrent.futures import ProcessPoolExecutor\n\nasync def handle(item, pool):\n    data = await fetch(item)  # I/O stays in threads or the loop\n    loop = asyncio.get_running_loop()\n    # the CPU-bound part goes to a process\n    return await loop.run_in_executor(pool, compute, data)".into());
    if !python.is_empty() {
        v.predicted_speedup = Some(predict(f, python));
    }
    v
}

fn native_parallel(f: &Facts, native_threads: usize) -> Verdict {
    let saturated = f.cores_used() >= SATURATION_MIN * f.cores as f64;
    let kind = if saturated && native_threads > f.cores as usize {
        VerdictKind::CpuSaturated
    } else {
        VerdictKind::NativeParallel
    };
    let mut v = base(
        kind,
        format!(
            "Threads already work: {} threads run native code with the GIL released, filling {:.1} of {} cores",
            native_threads,
            f.cores_used(),
            f.cores
        ),
        vec![
            format!(
                "{} threads spent {} of their time in native code without the GIL; they waited {} for it",
                native_threads,
                pct(f.mean(&[Native])),
                pct(f.mean(&[GilWait]))
            ),
            format!("the GIL was held {} of the time; {}", pct(f.gil_held), f.core_line()),
        ],
    );
    v.advice.push("Threads already run in parallel here: processes would add start-up and pickling costs for no gain".into());
    if kind == VerdictKind::CpuSaturated {
        v.advice.push(format!(
            "Every core is busy: more workers will not help; {} workers (one per core) is enough",
            f.cores
        ));
    }
    v.advice
        .extend(hot_lines(f.analysis, Native, "native time"));
    v.predicted_speedup = Some(Prediction {
        processes: Some(1.0),
        threads: saturated.then_some(1.0),
        free_threaded: Some(1.0),
        assumptions: vec![
            "the native work already runs without the GIL on every core it can use".into(),
        ],
    });
    v
}

fn single_thread_cpu(f: &Facts, busy: &ThreadSummary) -> Verdict {
    let a = f.analysis;
    let name = if busy.name.is_empty() {
        format!("thread {}", busy.tid)
    } else {
        busy.name.clone()
    };
    let others = f.workers.len().saturating_sub(1);
    let mut v = base(
        VerdictKind::SingleThreadCpu,
        format!("One thread does all the work: {name} is busy while the others wait"),
        vec![
            format!(
                "{name} was on the CPU {} of its time ({} holding the GIL); {} other threads took part",
                pct(busy.share(&[Gil, Native])),
                pct(busy.fraction(Gil)),
                others
            ),
            f.core_line(),
        ],
    );
    v.advice.push("Split the work into independent parts first; then run the parts in a process pool (threads would only take turns on the GIL)".into());
    if let Some(entry) = entry_point(a, busy) {
        v.advice
            .push(format!("The busy thread runs {}", location(entry)));
    }
    v.advice.extend(hot_lines(a, Gil, "GIL-holding time"));
    let cores = f.cores as f64;
    v.predicted_speedup = Some(Prediction {
        processes: Some(cores),
        threads: Some(1.0),
        free_threaded: Some(cores * FREE_THREADED_EFFICIENCY),
        assumptions: vec![
            format!("an upper bound: the work must first be split into at least {} independent parts", f.cores),
            format!("a free-threaded build runs Python at about {} of the default build's speed (estimate)", pct(FREE_THREADED_EFFICIENCY)),
        ],
    });
    v
}

fn lock_contention(f: &Facts) -> Verdict {
    let a = f.analysis;
    let waiters: Vec<_> = f
        .workers
        .iter()
        .copied()
        .filter(|t| t.fraction(Lock) >= LOCK_SHARE_MIN)
        .collect();
    let mut v = base(
        VerdictKind::LockContention,
        format!(
            "Lock contention: {} threads wait on a lock of the program's own, not on the GIL",
            waiters.len()
        ),
        vec![
            format!(
                "the threads spent {} of their time waiting on a lock, condition, queue or event, and {} waiting for the GIL",
                pct(f.mean(&[Lock])),
                pct(f.mean(&[GilWait]))
            ),
            format!("the GIL was held {} of the time; {}", pct(f.gil_held), f.core_line()),
        ],
    );
    v.advice.push("The GIL is not the limit: the program's own locking serialises the threads. Hold locks for less time (never across I/O or sleep), or split the data so threads do not share a lock".into());
    let wait_sites = hot_lines(a, Lock, "lock-waiting time");
    if !wait_sites.is_empty() {
        v.advice.push("Where the threads wait:".into());
        v.advice.extend(wait_sites);
    }
    let entries = entry_points(a, &waiters);
    if !entries.is_empty() {
        v.advice
            .push(format!("Waiting threads run: {}", entries.join(", ")));
    }
    v.predicted_speedup = Some(Prediction {
        processes: Some(1.0),
        threads: Some(1.0),
        free_threaded: Some(1.0),
        assumptions: vec!["the lock stays as it is: only changing the locking helps".into()],
    });
    v
}

fn io_bound(f: &Facts) -> Verdict {
    let n = f.workers.len();
    let mut v = base(
        VerdictKind::IoBound,
        format!("I/O-bound: {n} threads spend most of their time waiting on I/O, not on the GIL"),
        vec![
            format!(
                "the threads waited on I/O or slept {} of their time and for the GIL {}",
                pct(f.mean(&[Io, Sleep])),
                pct(f.mean(&[GilWait]))
            ),
            format!(
                "the GIL was held {} of the time; {}",
                pct(f.gil_held),
                f.core_line()
            ),
        ],
    );
    let loops: Vec<_> = f
        .analysis
        .threads
        .iter()
        .filter_map(|t| Some((t, t.event_loop.as_ref().filter(|l| l.loop_ns > 0)?)))
        .collect();
    for (t, lp) in &loops {
        v.evidence.push(format!(
            "the asyncio loop in {} waited for events {} of its time: it is not blocked",
            if t.name.is_empty() {
                "its thread"
            } else {
                &t.name
            },
            pct(1.0 - lp.busy_share())
        ));
    }
    if loops.is_empty() {
        v.advice.push("Threads are the right tool here: the GIL is released while they wait. More threads give more concurrent waits".into());
        v.advice.push("asyncio pays once you need many hundreds of concurrent waits (connections, requests); below that, threads are simpler".into());
    } else {
        v.headline =
            "I/O-bound: the asyncio loop waits on I/O nearly all the time, not on the GIL or the CPU"
                .into();
        v.advice.push("asyncio is the right tool here: the loop spends its time waiting for I/O. More concurrent tasks give more concurrent waits".into());
    }
    v.advice.extend(hot_lines(f.analysis, Io, "I/O time"));
    v.predicted_speedup = Some(Prediction {
        processes: Some(1.0),
        threads: None,
        free_threaded: Some(1.0),
        assumptions: vec!["the waits are outside the process: neither processes nor a free-threaded build shorten them".into()],
    });
    v
}

fn cpu_saturated(f: &Facts) -> Verdict {
    let mut v = base(
        VerdictKind::CpuSaturated,
        format!(
            "CPU saturated: the process keeps all {} cores busy",
            f.cores
        ),
        vec![
            f.core_line(),
            format!(
                "the GIL was held {}; threads waited {} for it",
                pct(f.gil_held),
                pct(f.mean(&[GilWait]))
            ),
        ],
    );
    v.advice.push(
        "Nothing to gain from more workers: make the work itself cheaper, or run on more cores"
            .into(),
    );
    v.predicted_speedup = Some(Prediction {
        processes: Some(1.0),
        threads: Some(1.0),
        free_threaded: Some(1.0),
        assumptions: vec!["every core is already busy".into()],
    });
    v
}

fn idle(f: &Facts) -> Verdict {
    let mut v = base(
        VerdictKind::Idle,
        "Idle: the program was mostly waiting, with no thread busy".into(),
        vec![f.core_line()],
    );
    v.advice.push(
        "Nothing to speed up in this window: sample while the program does its slow part".into(),
    );
    v
}

fn free_threaded(f: &Facts) -> Verdict {
    if let Some(enabling) = &f.analysis.gil_enabled {
        return gil_turned_on(f, enabling);
    }
    let mut v = base(
        VerdictKind::FreeThreaded,
        "Free-threaded CPython: the GIL is disabled and threads run Python in parallel".into(),
        vec![f.core_line()],
    );
    let busy = f.count(&[Native], BUSY_MIN);
    if f.analysis.gil_held.is_some_and(|h| h > 0.0) {
        // A recording without the moment the GIL came on: the readings alone.
        v.headline = "Free-threaded CPython, but the GIL was turned back on".into();
        v.evidence.push(format!(
            "the GIL was held {} of the time: an extension module that does not declare free-threading support re-enabled it",
            pct(f.gil_held)
        ));
        v.advice.push("Find the extension that re-enabled the GIL (Python warns at import with `-W default`), upgrade it, or run with PYTHON_GIL=0 if it is safe".into());
    } else if busy >= 2 && f.cores_used() < 0.75 * busy.min(f.cores as usize) as f64 {
        v.headline = format!(
            "Free-threaded CPython: the GIL is disabled, yet {busy} busy threads use only {:.1} cores",
            f.cores_used()
        );
        v.evidence.push(format!(
            "{busy} threads are on a CPU most of the time, but the process used {:.1} cores: they wait for CPUs other programs hold, or spin",
            f.cores_used()
        ));
        v.advice.push("Check what else runs on the machine (`top`); more threads than cores cannot run at once".into());
    } else if f.mean(&[Lock]) >= LOCK_SHARE_MIN {
        v.headline = "Free-threaded CPython: the GIL is disabled, but the threads wait on the program's own locks".into();
        v.evidence.push(format!(
            "the threads spend {} of their time waiting on locks, queues or events",
            pct(f.mean(&[Lock]))
        ));
        v.advice
            .push("Hold locks for less time, or give each thread its own data".into());
    } else {
        v.advice
            .push("Threads already run Python in parallel; more cores give more speed".into());
    }
    v.evidence.push("with the GIL disabled, a thread on a CPU runs Python or native code: a free-threaded build cannot tell the two apart, so both show as `native`".into());
    v
}

/// What the windows before or after a moment show.
struct Span {
    seconds: f64,
    cores: f64,
    gil_held: f64,
    /// Of the busy thread-samples (holding, waiting for the GIL, on a CPU), the waiting ones.
    gil_wait: f64,
}

fn span(windows: &[crate::analysis::Window]) -> Span {
    let sum = |f: fn(&crate::analysis::Window) -> u64| windows.iter().map(f).sum::<u64>();
    let busy = sum(|w| w.counts.sum_of(&[Gil, GilWait, Native]));
    let seconds = sum(|w| w.length_ns) as f64 / 1e9;
    Span {
        seconds,
        cores: sum(|w| w.cpu_ns) as f64 / 1e9 / seconds.max(1e-9),
        gil_held: sum(|w| w.gil_locked) as f64 / sum(|w| w.gil_readings).max(1) as f64,
        gil_wait: sum(|w| w.counts[GilWait]) as f64 / busy.max(1) as f64,
    }
}

/// A free-threaded build whose GIL came on: by which modules, when, and what it cost.
fn gil_turned_on(f: &Facts, enabling: &crate::analysis::GilEnabling) -> Verdict {
    let a = f.analysis;
    let names: Vec<String> = enabling
        .modules
        .iter()
        .map(|m| format!("`{}`", m.name))
        .collect();
    let culprit = match names.len() {
        0 => "an extension module gilscope could not name".to_string(),
        _ => names.join(", "),
    };
    // The window in which it came on is neither before nor after (unless it is the last).
    let windows = &a.windows;
    let before = &windows[..windows.partition_point(|w| w.start_ns + w.length_ns <= enabling.t_ns)];
    let after = match &windows[windows.partition_point(|w| w.start_ns < enabling.t_ns)..] {
        [] => &windows[before.len()..],
        after => after,
    };
    let after_span = span(after);
    let contended = after_span.gil_held >= CONTENTION_GIL_HELD_MIN
        && after_span.gil_wait >= CONTENTION_WAIT_MIN;
    let kind = if contended {
        VerdictKind::GilContention
    } else {
        VerdictKind::FreeThreaded
    };
    let when = if enabling.at_s > 0.0 {
        format!(
            "importing {culprit} turned the GIL back on at {:.1} s",
            enabling.at_s
        )
    } else {
        format!("the GIL is on: {culprit} turned it back on before sampling began")
    };
    let mut headline = format!("Free-threaded CPython, but {when}");
    if contended {
        headline.push_str(": the threads now take turns on it");
    }
    let mut v = base(kind, headline, Vec::new());
    for module in &enabling.modules {
        let file = if module.file.is_empty() {
            String::new()
        } else {
            format!(" ({})", module.file)
        };
        v.evidence.push(format!(
            "`{}`{file} does not declare free-threading support (no `Py_mod_gil` slot), so importing it enabled the GIL for the whole process",
            module.name
        ));
    }
    if !before.is_empty() {
        let b = span(before);
        v.evidence.push(format!(
            "before: {:.1} s with the GIL disabled, {:.1} of {} cores used",
            b.seconds, b.cores, f.cores
        ));
    }
    v.evidence.push(format!(
        "after: the GIL held {} of the time; the busy threads waited {} of their time for it; {:.1} of {} cores used",
        pct(after_span.gil_held),
        pct(after_span.gil_wait),
        after_span.cores,
        f.cores
    ));
    let first = enabling
        .modules
        .first()
        .map_or("the extension".to_string(), |m| format!("`{}`", m.name));
    v.advice.push(format!(
        "Install a build of {first} made for free-threaded CPython (one that declares `Py_mod_gil`), or replace it"
    ));
    v.advice.push("Or keep the GIL off with PYTHON_GIL=0 (or `python -X gil=0`): at your own risk, since the extension was not written for threads running at once".into());
    if contended {
        v.advice.push(
            "Until then, processes (multiprocessing.Pool) run the CPU-bound threads in parallel"
                .into(),
        );
    }
    if enabling.at_s > 0.0 {
        v.phases = vec![
            Phase {
                start_s: 0.0,
                end_s: enabling.at_s,
                kind: VerdictKind::FreeThreaded,
                headline: "the GIL disabled: threads run in parallel".into(),
            },
            Phase {
                start_s: enabling.at_s,
                end_s: a.duration_s,
                kind,
                headline: format!("the GIL on: {}", phase_headline(kind)),
            },
        ];
    }
    v
}

/// Amdahl's law on the measured run: the part of the run where several threads were busy is
/// spread over the cores; the rest stays serial.
fn predict(f: &Facts, python: &[&ThreadSummary]) -> Prediction {
    let a = f.analysis;
    let cores = f.cores as f64;
    let n = python.len().max(1) as f64;
    // Busy part: the CPU work W (core-seconds) must fit on the cores, and no thread can finish
    // faster than its own work without the GIL wait.
    let parallel = parallel_fraction(&a.windows, f.cores);
    let total = a.duration_s.max(1e-9);
    let busy = total * parallel;
    let serial = total - busy;
    let work_core_s = f.cores_used() * busy;
    let longest_thread = python
        .iter()
        .map(|t| 1.0 - t.fraction(GilWait))
        .fold(0.0, f64::max)
        * busy;
    let workers = n.min(cores);
    let busy_processes = (work_core_s / cores).max(longest_thread);
    let startup = WORKER_STARTUP_S * workers;
    let processes = total / (serial + busy_processes + startup);
    let python_share = mean_of(python, &[Gil]) / mean_of(python, &[Gil, Native]).max(1e-9);
    let ft_work = work_core_s * (1.0 + python_share * (1.0 / FREE_THREADED_EFFICIENCY - 1.0));
    let free_threaded = total / (serial + (ft_work / cores).max(longest_thread));
    Prediction {
        processes: Some(round2(processes)),
        threads: Some(1.0),
        free_threaded: Some(round2(free_threaded)),
        assumptions: vec![
            format!(
                "{} of the run had several busy threads and is spread over {} cores; the other {} stays serial",
                pct(parallel),
                workers,
                pct(1.0 - parallel)
            ),
            "the work divides evenly among the workers and shares no state".into(),
            format!("worker start-up {WORKER_STARTUP_S} s each (estimate)"),
            "pickling of arguments and results not measured: assumed small (estimate)".into(),
            format!(
                "a free-threaded build runs Python at about {} of the default build's speed (estimate)",
                pct(FREE_THREADED_EFFICIENCY)
            ),
        ],
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Share of the run's windows in which, on average, at least two threads wanted a CPU
/// (held or waited for the GIL, or ran native code): the part that can spread over cores.
fn parallel_fraction(windows: &[Window], cores: u32) -> f64 {
    let ticks: u64 = windows.iter().map(|w| w.ticks).sum();
    if ticks == 0 || cores < 2 {
        return 0.0;
    }
    let parallel: u64 = windows
        .iter()
        .filter(|w| {
            let demand = w.counts.sum_of(&[Gil, GilWait, Native]);
            w.ticks > 0 && demand as f64 / w.ticks as f64 >= 1.5
        })
        .map(|w| w.ticks)
        .sum();
    parallel as f64 / ticks as f64
}

/// A window's character, from process-wide counts.
fn window_kind(w: &Window) -> Option<VerdictKind> {
    if w.ticks == 0 {
        return None;
    }
    let per_tick = |states: &[ThreadState]| w.counts.sum_of(states) as f64 / w.ticks as f64;
    let python = per_tick(&[Gil, GilWait]);
    let native = per_tick(&[Native]);
    let io = per_tick(&[Io, Sleep]);
    let lock = per_tick(&[Lock]);
    let (best, _) = [
        (VerdictKind::GilContention, python),
        (VerdictKind::NativeParallel, native),
        (VerdictKind::IoBound, io),
        (VerdictKind::LockContention, lock),
    ]
    .into_iter()
    .fold((VerdictKind::Idle, 0.5), |best, cand| {
        if cand.1 > best.1 {
            cand
        } else {
            best
        }
    });
    Some(match best {
        VerdictKind::GilContention if per_tick(&[GilWait]) < 0.5 => VerdictKind::SingleThreadCpu,
        other => other,
    })
}

fn phase_headline(kind: VerdictKind) -> &'static str {
    match kind {
        VerdictKind::GilContention => "Python threads contend for the GIL",
        VerdictKind::SingleThreadCpu => "one thread runs Python",
        VerdictKind::NativeParallel => "native code runs without the GIL",
        VerdictKind::IoBound => "threads wait on I/O or sleep",
        VerdictKind::LockContention => "threads wait on the program's locks",
        _ => "mostly idle",
    }
}

/// Splits the run into phases of different character; empty when it kept one character.
fn phases(analysis: &Analysis) -> Vec<Phase> {
    let mut runs: Vec<(VerdictKind, usize, usize)> = Vec::new();
    for (i, w) in analysis.windows.iter().enumerate() {
        let Some(kind) = window_kind(w) else { continue };
        match runs.last_mut() {
            Some((k, _, end)) if *k == kind => *end = i + 1,
            _ => runs.push((kind, i, i + 1)),
        }
    }
    // Fold short runs into the previous one, then merge neighbours of equal kind.
    let mut merged: Vec<(VerdictKind, usize, usize)> = Vec::new();
    for run in runs {
        match merged.last_mut() {
            Some(last) if run.2 - run.1 < MIN_PHASE_WINDOWS || last.0 == run.0 => last.2 = run.2,
            _ => merged.push(run),
        }
    }
    if let (Some(first), true) = (merged.first().copied(), merged.len() > 1) {
        if first.2 - first.1 < MIN_PHASE_WINDOWS {
            merged.remove(0);
            merged[0].1 = first.1;
        }
    }
    if merged.len() < 2 {
        return Vec::new();
    }
    let seconds = |ns: u64| ns as f64 / 1e9;
    let t = |i: usize| {
        analysis
            .windows
            .get(i)
            .map_or(analysis.duration_s, |w| seconds(w.start_ns))
    };
    let end_of = |i: usize| {
        analysis
            .windows
            .get(i)
            .map_or(0.0, |w| seconds(w.length_ns))
    };
    let origin = t(0);
    merged
        .into_iter()
        .map(|(kind, start, end)| Phase {
            start_s: t(start) - origin,
            end_s: (if end < analysis.windows.len() {
                t(end)
            } else {
                t(end - 1) + end_of(end - 1)
            } - origin)
                .min(analysis.duration_s),
            kind,
            headline: phase_headline(kind).into(),
        })
        .collect()
}

/// A pool whose workers are busy at least this share of the time they could be (the lesser
/// of the cores and the workers) is working.
pub const POOL_UTILISATION_MIN: f64 = 0.7;
/// IPC overhead: at least this share of the tree's CPU time goes to pickling and moving data.
pub const IPC_SHARE_MIN: f64 = 0.3;
/// Result bottleneck: the parent's result-collecting thread is busy at least this much.
pub const RESULT_THREAD_BUSY_MIN: f64 = 0.7;
/// Pool workers sampled for less than this share of the run are not judged (start-up only).
pub const POOL_WORKER_PRESENCE_MIN: f64 = 0.2;

/// The evidence on a process pool, from every process of the run.
struct PoolFacts<'a> {
    analysis: &'a Analysis,
    /// Each pool worker's main thread (the one that runs tasks).
    workers: Vec<&'a ThreadSummary>,
    cores: u32,
    /// Workers alive at once, on average over the run.
    concurrent_workers: f64,
    /// Worker-equivalents busy on a CPU, on average over the run.
    busy_workers: f64,
    /// Share of the tree's on-CPU samples spent pickling and moving data.
    ipc_share: f64,
    /// The parent's thread that collects results, with its busy share.
    result_thread: Option<(&'a ThreadSummary, f64)>,
}

impl<'a> PoolFacts<'a> {
    /// `None` when the run has no pool worker that lived long enough to judge.
    fn new(analysis: &'a Analysis) -> Option<PoolFacts<'a>> {
        let run_ns = (analysis.duration_s * 1e9).max(1.0);
        let workers: Vec<&ThreadSummary> = analysis
            .processes
            .iter()
            .filter(|p| p.role == ProcessRole::PoolWorker)
            .filter_map(|p| analysis.threads_of(p.pid).find(|t| t.tid == p.pid))
            .collect();
        let presence: f64 = workers
            .iter()
            .map(|t| t.last_t_ns.saturating_sub(t.first_t_ns) as f64 / run_ns)
            .sum();
        if workers.is_empty() || presence < POOL_WORKER_PRESENCE_MIN {
            return None;
        }
        let busy_ns: u64 = workers
            .iter()
            .map(|t| t.time_ns[Gil] + t.time_ns[Native])
            .sum();
        let (mut cpu_samples, mut ipc_samples) = (0u64, 0u64);
        for t in &analysis.threads {
            for (&(state, stack), &n) in &t.stacks {
                if matches!(state, Gil | Native) {
                    cpu_samples += n;
                    if analysis.stack_frames(stack).any(is_ipc) {
                        ipc_samples += n;
                    }
                }
            }
        }
        let root = analysis.root().map_or(0, |p| p.pid);
        let result_thread = analysis
            .threads_of(root)
            .find(|t| {
                t.stacks
                    .keys()
                    .any(|&(_, s)| analysis.stack_frames(s).any(is_result_handler))
            })
            .map(|t| (t, t.share(&[Gil, Native, GilWait])));
        Some(PoolFacts {
            analysis,
            workers,
            cores: analysis.cores(),
            concurrent_workers: presence,
            busy_workers: busy_ns as f64 / run_ns,
            ipc_share: if cpu_samples == 0 {
                0.0
            } else {
                ipc_samples as f64 / cpu_samples as f64
            },
            result_thread,
        })
    }

    /// How many workers could be busy at once: the lesser of the cores and the workers.
    fn capacity(&self) -> f64 {
        self.concurrent_workers.min(self.cores as f64).max(1e-9)
    }

    fn utilisation(&self) -> f64 {
        self.busy_workers / self.capacity()
    }

    fn summary_line(&self) -> String {
        format!(
            "{:.1} workers alive on average, {:.1} of them busy on a CPU; {:.1} of {} cores used by the whole process tree",
            self.concurrent_workers,
            self.busy_workers,
            self.analysis.cpu_cores_used,
            self.cores
        )
    }

    /// The user's functions the workers run, outside the pool machinery and pickling.
    fn task_functions(&self) -> Vec<String> {
        let mut by_function: HashMap<(&str, &str), u64> = HashMap::new();
        for t in &self.workers {
            for (&(state, stack), &n) in &t.stacks {
                if !matches!(state, Gil | Native) || self.analysis.stack_frames(stack).any(is_ipc) {
                    continue;
                }
                // The task is the user's frame right inside the pool's machinery.
                let frames: Vec<&Frame> = self.analysis.stack_frames(stack).collect();
                let machinery = frames.iter().position(|f| is_thread_machinery(f));
                let task = machinery.and_then(|i| frames[..i].last().copied());
                if let Some(frame) = task {
                    *by_function
                        .entry((&frame.function, &frame.file))
                        .or_insert(0) += n;
                }
            }
        }
        let mut hot: Vec<_> = by_function.into_iter().collect();
        hot.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        hot.into_iter()
            .take(3)
            .map(|((function, file), _)| format!("{function} ({})", short_path(file)))
            .collect()
    }
}

/// The pool rules, in order: a saturated result thread, IPC overhead, an under-used pool, a
/// working pool.
fn diagnose_pool(p: &PoolFacts) -> Verdict {
    if let Some((thread, busy)) = p.result_thread {
        if busy >= RESULT_THREAD_BUSY_MIN && p.utilisation() < POOL_UTILISATION_MIN {
            return result_bottleneck(p, thread, busy);
        }
    }
    if p.ipc_share >= IPC_SHARE_MIN {
        return ipc_overhead(p);
    }
    if p.utilisation() < POOL_UTILISATION_MIN || p.concurrent_workers + 0.5 < p.cores as f64 {
        return pool_underused(p);
    }
    pool_parallel(p)
}

fn ipc_overhead(p: &PoolFacts) -> Verdict {
    let mut v = base(
        VerdictKind::IpcOverhead,
        format!(
            "IPC overhead: {} of the CPU time goes to pickling and sending data between processes, not to the work",
            pct(p.ipc_share)
        ),
        vec![
            format!(
                "{} of the on-CPU samples of the parent and the workers were in pickle or multiprocessing's send/receive code",
                pct(p.ipc_share)
            ),
            p.summary_line(),
        ],
    );
    v.advice.push("Send less: pass file paths, database keys or index ranges and let each worker load its own data, or put large arrays in `multiprocessing.shared_memory`".into());
    v.advice.push("Send fewer, bigger tasks: a `chunksize` on `map`/`imap_unordered` (or group items yourself), so each task does more work per pickled byte".into());
    v.advice.push("Return less: reduce the result inside the worker (a sum, a count, a file written) instead of sending the data back".into());
    let hot = hot_lines(p.analysis, Gil, "GIL-holding time");
    if !hot.is_empty() {
        v.advice.push("Where the processes hold their GILs:".into());
        v.advice.extend(hot);
    }
    v.snippet = Some("# before: each task pickles a large list\npool.map(total, [big_list] * n)\n\n# after: send what to load, not the data\ndef total_of(path):\n    return sum(load(path))\n\npool.imap_unordered(total_of, paths, chunksize=16)".into());
    v
}

fn result_bottleneck(p: &PoolFacts, thread: &ThreadSummary, busy: f64) -> Verdict {
    let mut v = base(
        VerdictKind::IpcOverhead,
        format!(
            "Result bottleneck: the parent's result thread ({}) is busy {} of the time receiving and unpickling, and the workers wait on it",
            thread.name,
            pct(busy)
        ),
        vec![
            format!(
                "{} ({}) was on a CPU or waiting for the parent's GIL {} of its time",
                thread.name,
                thread.tid,
                pct(busy)
            ),
            p.summary_line(),
        ],
    );
    v.advice.push("Return less from each task: reduce inside the worker, or write large results to files and return their paths".into());
    v.advice.push("Keep the parent's other threads from holding its GIL while results arrive (move the parent's own CPU work out of it)".into());
    v
}

fn pool_underused(p: &PoolFacts) -> Verdict {
    let cores = p.cores as f64;
    let few_workers = p.concurrent_workers + 0.5 < cores;
    let mut v = base(
        VerdictKind::PoolUnderused,
        if few_workers {
            let workers = p.concurrent_workers.round().max(1.0);
            format!(
                "Under-used pool: {workers:.0} worker{} for {} cores, so {:.1} cores stay idle",
                if workers == 1.0 { "" } else { "s" },
                p.cores,
                (cores - p.analysis.cpu_cores_used).max(0.0)
            )
        } else {
            format!(
                "Under-used pool: the workers are busy only {} of the time; they wait for tasks",
                pct(p.utilisation())
            )
        },
        vec![p.summary_line()],
    );
    if few_workers {
        v.advice.push(format!(
            "Create the pool with one worker per core: `Pool({})` or `ProcessPoolExecutor(max_workers={})` (the default is `os.cpu_count()`)",
            p.cores, p.cores
        ));
    }
    v.advice.push("If the parent produces tasks one at a time (a loop of `apply_async`/`submit` that waits on each result), submit them all first and collect later, or use `imap_unordered`".into());
    v.advice.push("Give each task more work (a `chunksize`, or grouped items) so workers do not wait between tasks".into());
    let parent_busy = p
        .analysis
        .root()
        .and_then(|root| p.analysis.threads_of(root.pid).find(|t| t.tid == root.pid))
        .map_or(0.0, |t| t.share(&[Gil, Native]));
    if parent_busy >= BUSY_MIN {
        v.evidence.push(format!(
            "the parent's main thread was busy {} of the time: it may not produce tasks fast enough",
            pct(parent_busy)
        ));
    }
    v.predicted_speedup = Some(Prediction {
        processes: Some(round2((cores / p.busy_workers.max(0.1)).clamp(1.0, cores))),
        threads: None,
        free_threaded: None,
        assumptions: vec![format!(
            "an upper bound: all {} cores kept busy, against {:.1} busy workers today",
            p.cores, p.busy_workers
        )],
    });
    v
}

fn pool_parallel(p: &PoolFacts) -> Verdict {
    let mut v = base(
        VerdictKind::PoolParallel,
        format!(
            "The process pool works: {:.1} workers busy in parallel on {} cores ({:.1}× one core)",
            p.busy_workers, p.cores, p.analysis.cpu_cores_used
        ),
        vec![
            p.summary_line(),
            format!(
                "only {} of the on-CPU time went to pickling and sending data",
                pct(p.ipc_share)
            ),
        ],
    );
    let tasks = p.task_functions();
    if !tasks.is_empty() {
        v.evidence
            .push(format!("the workers run {}", tasks.join(", ")));
    }
    v.advice.push("Nothing to fix: the work runs in parallel on every core. More workers than cores would not help".into());
    v.predicted_speedup = Some(Prediction {
        processes: Some(1.0),
        threads: Some(1.0),
        free_threaded: Some(1.0),
        assumptions: vec!["every core is already busy with the work".into()],
    });
    v
}

/// An event loop is blocked when it ran (outside its selector) at least this share of its
/// time, with a stall of at least [`LOOP_STALL_MIN_S`].
pub const LOOP_BUSY_MIN: f64 = 0.25;
pub const LOOP_STALL_MIN_S: f64 = 0.05;

/// The event loop that stalls the most, if one is blocked (see [`LOOP_BUSY_MIN`]).
fn blocked_loop(analysis: &Analysis) -> Option<(&ThreadSummary, &EventLoop)> {
    analysis
        .threads
        .iter()
        .filter_map(|t| Some((t, t.event_loop.as_ref()?)))
        .filter(|(_, lp)| {
            lp.busy_share() >= LOOP_BUSY_MIN
                && lp
                    .stalls
                    .first()
                    .is_some_and(|s| s.duration_ns as f64 / 1e9 >= LOOP_STALL_MIN_S)
        })
        .max_by(|a, b| a.1.busy_share().total_cmp(&b.1.busy_share()))
}

fn event_loop_blocked(f: &Facts, thread: &ThreadSummary, lp: &EventLoop) -> Verdict {
    let a = f.analysis;
    let blocking = lp.blocked_ns * 2 >= lp.running_ns;
    let longest = lp
        .stalls
        .first()
        .map_or(0.0, |s| s.duration_ns as f64 / 1e9);
    let culprits: Vec<String> = loop_culprits(a, lp)
        .iter()
        .filter(|c| c.share >= 0.01)
        .map(|c| {
            let site = format!("{} ({}:{})", c.function, short_path(&c.file), c.line);
            let site = if c.function == c.coroutine {
                site
            } else {
                format!("{site} in coroutine {}", c.coroutine)
            };
            format!(
                "{site}: {} of the loop's time, {}",
                pct(c.share),
                if c.blocked >= 0.5 {
                    "blocked"
                } else {
                    "on a CPU"
                }
            )
        })
        .collect();
    let mut v = base(
        VerdictKind::EventLoopBlocked,
        format!(
            "Blocked event loop: the asyncio loop in {} {} {} of the time, stalling every task (longest stretch without waiting for events: {:.0} ms)",
            if thread.name.is_empty() { "its thread" } else { &thread.name },
            if blocking { "sat in blocking calls" } else { "ran CPU-bound code" },
            pct(lp.busy_share()),
            longest * 1000.0
        ),
        vec![format!(
            "the loop waited for events {} of its time; {} was spent in callbacks and coroutine steps, {} of it blocked rather than on a CPU",
            pct(1.0 - lp.busy_share()),
            pct(lp.busy_share()),
            pct(if lp.running_ns == 0 { 0.0 } else { lp.blocked_ns as f64 / lp.running_ns as f64 })
        )],
    );
    if blocking {
        v.advice.push("Move the blocking calls off the loop: `await asyncio.to_thread(f, ...)` (3.9+) or `await loop.run_in_executor(None, f, ...)`; use `await asyncio.sleep()` instead of `time.sleep()`, and async libraries (aiohttp, httpx, aiofiles) instead of requests or plain file reads".into());
        v.snippet = Some("# before: blocks every task on the loop\ntime.sleep(delay)\ndata = requests.get(url).content\n\n# after\nawait asyncio.sleep(delay)\ndata = await asyncio.to_thread(lambda: requests.get(url).content)".into());
    } else {
        v.advice.push("Move the CPU-bound work to a process pool: `await loop.run_in_executor(pool, f, ...)` with a `ProcessPoolExecutor`, so the loop keeps serving other tasks".into());
        v.snippet = Some("from concurrent.futures import ProcessPoolExecutor\n\npool = ProcessPoolExecutor()\n\nasync def handle(item):\n    loop = asyncio.get_running_loop()\n    return await loop.run_in_executor(pool, compute, item)".into());
    }
    if !culprits.is_empty() {
        v.advice.push("Where the loop's time went:".into());
        v.advice
            .extend(culprits.into_iter().map(|c| format!("- {c}")));
    }
    v
}
