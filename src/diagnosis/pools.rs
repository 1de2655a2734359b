//! The rules for a process pool, judged over every process of the run.

use std::collections::HashMap;

use crate::analysis::{Analysis, ThreadSummary};
use crate::known_frames::{is_ipc, is_result_handler, ProcessRole};
use crate::model::Frame;
use crate::model::ThreadState::{Gil, GilWait, Handoff, Native};

use super::facts::hot;
use super::findings::{
    Assumption, Finding, Forecast, IpcOverhead, PoolLoad, PoolParallel, PoolUnderused,
    ResultBottleneck,
};
use super::prediction::round2;
use super::BUSY_MIN;
use crate::known_frames::is_thread_machinery;

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
    /// Workers alive at once, on average over the pool's lifetime.
    concurrent_workers: f64,
    /// Worker-equivalents busy on a CPU, on average over the pool's lifetime.
    busy_workers: f64,
    /// When the first worker appeared and the last one ended, seconds into the run.
    lifetime: (f64, f64),
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
            .filter_map(|p| {
                analysis
                    .threads_of(p.pid)
                    .find(|t| t.tid == p.pid.main_thread())
            })
            .collect();
        let presence: f64 = workers
            .iter()
            .map(|t| t.last_t_ns.saturating_sub(t.first_t_ns) as f64 / run_ns)
            .sum();
        if workers.is_empty() || presence < POOL_WORKER_PRESENCE_MIN {
            return None;
        }
        // The pool is judged over its own lifetime: a script that prepares its data first is
        // not an idle pool during the preparation.
        let origin = analysis.root().map_or(0, |p| p.first_t_ns);
        let pool_start = workers.iter().map(|t| t.first_t_ns).min().unwrap_or(origin);
        let pool_end = workers
            .iter()
            .map(|t| t.last_t_ns)
            .max()
            .unwrap_or(pool_start);
        let pool_ns = (pool_end.saturating_sub(pool_start) as f64).max(1.0);
        let presence = presence * run_ns / pool_ns;
        let busy_ns: u64 = workers
            .iter()
            .map(|t| t.time_ns[Gil] + t.time_ns[Handoff] + t.time_ns[Native])
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
        let result_thread = analysis
            .root()
            .into_iter()
            .flat_map(|root| analysis.threads_of(root.pid))
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
            busy_workers: busy_ns as f64 / pool_ns,
            lifetime: (
                pool_start.saturating_sub(origin) as f64 / 1e9,
                pool_end.saturating_sub(origin) as f64 / 1e9,
            ),
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

    pub(super) fn load(&self) -> PoolLoad {
        PoolLoad {
            concurrent_workers: self.concurrent_workers,
            busy_workers: self.busy_workers,
            lifetime: self.lifetime,
            run_s: self.analysis.duration_s,
            cores_used: self.analysis.cpu_cores_used,
            cores: self.cores,
        }
    }

    /// The user's functions the workers run, outside the pool machinery and pickling, as
    /// (function, file).
    pub(super) fn task_functions(&self) -> Vec<(String, String)> {
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
            .map(|((function, file), _)| (function.to_string(), file.to_string()))
            .collect()
    }
}

/// The pool rules, in order: a saturated result thread, IPC overhead, an under-used pool, a
/// working pool.
pub(super) fn diagnose_pool(p: &PoolFacts) -> Finding {
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

pub(super) fn ipc_overhead(p: &PoolFacts) -> Finding {
    Finding::IpcOverhead(IpcOverhead {
        ipc_share: p.ipc_share,
        pool: p.load(),
        hot: hot(p.analysis, Gil),
    })
}

pub(super) fn result_bottleneck(p: &PoolFacts, thread: &ThreadSummary, busy: f64) -> Finding {
    Finding::ResultBottleneck(ResultBottleneck {
        thread: thread.name.clone(),
        tid: thread.tid,
        busy,
        pool: p.load(),
    })
}

pub(super) fn pool_underused(p: &PoolFacts) -> Finding {
    let cores = p.cores as f64;
    let parent_busy = p
        .analysis
        .root()
        .and_then(|root| {
            p.analysis
                .threads_of(root.pid)
                .find(|t| t.tid == root.pid.main_thread())
        })
        .map_or(0.0, |t| t.share(&[Gil, Native]));
    Finding::PoolUnderused(PoolUnderused {
        pool: p.load(),
        utilisation: p.utilisation(),
        few_workers: p.concurrent_workers + 0.5 < cores,
        parent_busy: (parent_busy >= BUSY_MIN).then_some(parent_busy),
        forecast: Forecast {
            processes: Some(round2((cores / p.busy_workers.max(0.1)).clamp(1.0, cores))),
            threads: None,
            free_threaded: None,
            fix: None,
            assumptions: vec![Assumption::AllCoresBusy {
                cores: p.cores,
                busy_workers: p.busy_workers,
            }],
        },
    })
}

pub(super) fn pool_parallel(p: &PoolFacts) -> Finding {
    Finding::PoolParallel(PoolParallel {
        pool: p.load(),
        ipc_share: p.ipc_share,
        tasks: p.task_functions(),
        forecast: Forecast::unchanged(Assumption::EveryCoreBusyWithWork),
    })
}
