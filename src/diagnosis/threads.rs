//! The rules for the threads of one process: who holds the GIL, who waits, on what.

use crate::analysis::ThreadSummary;
use crate::model::ThreadState::{Gil, GilWait, Io, Lock, Native, Sleep};
use crate::words::{pct, thread_name};

use super::facts::{entry_point, mean_of, uses_executor, Facts};
use super::prediction::predict;
use super::text::{base, entry_points, gil_and_cores, hot_lines, location};
use super::{
    Confidence, Prediction, Verdict, VerdictKind, FREE_THREADED_EFFICIENCY, LOCK_SHARE_MIN,
    SATURATION_MIN,
};

/// The GIL held for at least this share of the samples by a thread that could not be mapped
/// (and for most of the time it was held) leaves every GIL-based rule without evidence.
pub const UNMAPPED_HOLDER_MIN: f64 = 0.2;

/// The GIL was held, but mostly by a thread gilscope could not map to one of the target's:
/// every thread's `gil` time would read as `native` or `gil_wait`, so no verdict is given.
pub(super) fn unmapped_holder(f: &Facts) -> Option<Verdict> {
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
    v.confidence = Confidence::Low;
    v.advice.push("The likely cause is a PID namespace gilscope could not translate (a container): run gilscope in the target's PID namespace (`gilscope run` inside the container, or a sidecar started with `--pid=container:NAME`)".into());
    v.advice.push("If the target is on the host, please report this with the Python build and `cat /proc/PID/status`".into());
    Some(v)
}

/// Busy threads that fit no rule: what was seen, without a verdict.
pub(super) fn no_rule_fits(f: &Facts) -> Verdict {
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
            gil_and_cores(f),
        ],
    );
    v.confidence = Confidence::Low;
    v.advice.push("Sample a longer stretch of the slow part, or look at the per-thread table and the hot functions below".into());
    v
}

pub(super) fn gil_contention(f: &Facts, python: &[&ThreadSummary]) -> Verdict {
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

pub(super) fn mixed(
    f: &Facts,
    python: &[&ThreadSummary],
    io_threads: &[&ThreadSummary],
) -> Verdict {
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
            gil_and_cores(f),
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

pub(super) fn native_parallel(f: &Facts, native_threads: usize) -> Verdict {
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
            gil_and_cores(f),
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

pub(super) fn single_thread_cpu(f: &Facts, busy: &ThreadSummary) -> Verdict {
    let a = f.analysis;
    let name = thread_name(&busy.name, busy.tid);
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

pub(super) fn lock_contention(f: &Facts) -> Verdict {
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
            gil_and_cores(f),
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
    v.predicted_speedup = Some(Prediction::unchanged(
        "the lock stays as it is: only changing the locking helps",
    ));
    v
}

pub(super) fn io_bound(f: &Facts) -> Verdict {
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
            gil_and_cores(f),
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

pub(super) fn cpu_saturated(f: &Facts) -> Verdict {
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
    v.predicted_speedup = Some(Prediction::unchanged("every core is already busy"));
    v
}

pub(super) fn idle(f: &Facts) -> Verdict {
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
