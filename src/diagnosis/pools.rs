//! The rules for a process pool, judged over every process of the run.

use std::collections::HashMap;

use crate::analysis::{Analysis, ThreadSummary};
use crate::known_frames::{is_ipc, is_result_handler, ProcessRole};
use crate::model::Frame;
use crate::model::ThreadState::{Gil, GilWait, Native};
use crate::words::{file_name, pct};

use super::facts::is_thread_machinery;
use super::prediction::round2;
use super::text::{base, hot_lines};
use super::{Prediction, Verdict, VerdictKind, BUSY_MIN};

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
pub(super) struct PoolFacts<'a> {
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
    pub(super) fn new(analysis: &'a Analysis) -> Option<PoolFacts<'a>> {
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
    pub(super) fn capacity(&self) -> f64 {
        self.concurrent_workers.min(self.cores as f64).max(1e-9)
    }

    pub(super) fn utilisation(&self) -> f64 {
        self.busy_workers / self.capacity()
    }

    pub(super) fn summary_line(&self) -> String {
        format!(
            "{:.1} workers alive on average, {:.1} of them busy on a CPU; {:.1} of {} cores used by the whole process tree",
            self.concurrent_workers,
            self.busy_workers,
            self.analysis.cpu_cores_used,
            self.cores
        )
    }

    /// The user's functions the workers run, outside the pool machinery and pickling.
    pub(super) fn task_functions(&self) -> Vec<String> {
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
            .map(|((function, file), _)| format!("{function} ({})", file_name(file)))
            .collect()
    }
}

/// The pool rules, in order: a saturated result thread, IPC overhead, an under-used pool, a
/// working pool.
pub(super) fn diagnose_pool(p: &PoolFacts) -> Verdict {
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

pub(super) fn ipc_overhead(p: &PoolFacts) -> Verdict {
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

pub(super) fn result_bottleneck(p: &PoolFacts, thread: &ThreadSummary, busy: f64) -> Verdict {
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

pub(super) fn pool_underused(p: &PoolFacts) -> Verdict {
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

pub(super) fn pool_parallel(p: &PoolFacts) -> Verdict {
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
    v.predicted_speedup = Some(Prediction::unchanged(
        "every core is already busy with the work",
    ));
    v
}
