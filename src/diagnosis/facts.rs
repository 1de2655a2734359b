//! The evidence the rules read, computed once per run.

use crate::analysis::groups::{GroupRole, ThreadGroup};
use crate::analysis::queries::{hot_functions, HotFunction};
use crate::analysis::{Analysis, ThreadSummary};
use crate::known_frames::{is_thread_machinery, pool_library, PoolLibrary};
use crate::model::ThreadState::{Gil, GilWait, Handoff, Io, Native, Sleep};
use crate::model::{Frame, PerState, ThreadState};

use super::findings::{GroupWords, Load, ThreadPoolKind};
use super::{BYSTANDER_MAX, OWN_WORK_MIN, PARTICIPATION_MIN, PYTHON_PART_MIN, WANTS_TO_RUN};

/// Hot functions below this share are too rare to name.
const HOT_MIN: f64 = 0.005;

/// A group of threads as the rules see it: its shares of the time its threads had work (time
/// waiting for a task in a pool taken out), and how many threads it kept alive at once.
pub(super) struct Unit<'a> {
    pub(super) group: &'a ThreadGroup,
    pub(super) threads: Vec<&'a ThreadSummary>,
    shares: PerState<f64>,
}

impl<'a> Unit<'a> {
    fn new(analysis: &'a Analysis, group: &'a ThreadGroup) -> Unit<'a> {
        Unit {
            group,
            threads: group
                .members
                .iter()
                .filter_map(|&i| analysis.threads.get(i))
                .collect(),
            shares: group.active_shares(),
        }
    }

    pub(super) fn fraction(&self, state: ThreadState) -> f64 {
        self.shares[state]
    }

    pub(super) fn share(&self, states: &[ThreadState]) -> f64 {
        states.iter().map(|&s| self.shares[s]).sum()
    }

    /// Threads of the group alive at once, on average: its weight among the rules' counts.
    pub(super) fn weight(&self) -> f64 {
        self.group.at_once().max(1e-9)
    }

    /// Neither ran nor wanted the GIL: a sleeping main thread, a heartbeat, a thread in `join`.
    pub(super) fn is_bystander(&self) -> bool {
        self.share(&WANTS_TO_RUN) < BYSTANDER_MAX
    }

    pub(super) fn words(&self) -> GroupWords {
        GroupWords {
            label: self.group.label.clone(),
            threads: self.group.threads(),
            at_once: self.group.at_once(),
            started_per_s: self.group.started_per_s(),
        }
    }
}

/// The evidence the rules read, computed once.
pub(super) struct Facts<'a> {
    pub(super) analysis: &'a Analysis,
    /// Groups that did something (see [`PARTICIPATION_MIN`]); a pool's helper threads are
    /// never among them.
    pub(super) workers: Vec<Unit<'a>>,
    /// Groups that took part but neither ran nor wanted the GIL: named, never deciding.
    pub(super) bystanders: Vec<GroupWords>,
    pub(super) cores: u32,
    pub(super) gil_held: f64,
}

impl<'a> Facts<'a> {
    pub(super) fn new(analysis: &'a Analysis) -> Self {
        let min_samples = (analysis.ticks / 10).max(1);
        let workers: Vec<Unit> = analysis
            .groups
            .iter()
            .filter(|g| g.role != GroupRole::Helpers)
            .map(|g| Unit::new(analysis, g))
            .filter(|u| u.threads.iter().map(|t| t.samples).sum::<u64>() >= min_samples)
            .filter(|u| u.share(&WANTS_TO_RUN) + u.share(&[Io, Sleep]) >= PARTICIPATION_MIN)
            .collect();
        let wants_gil = workers.iter().any(|u| !u.is_bystander());
        let bystanders = workers
            .iter()
            .filter(|u| wants_gil && u.is_bystander())
            .map(Unit::words)
            .collect();
        Facts {
            analysis,
            workers,
            bystanders,
            cores: analysis.cores(),
            gil_held: analysis.gil_held.unwrap_or(0.0),
        }
    }

    /// The workers' mean share of `states`, each group weighed by its threads.
    pub(super) fn mean(&self, states: &[ThreadState]) -> f64 {
        mean_of(&self.workers.iter().collect::<Vec<_>>(), states)
    }

    /// Threads (alive at once) of the groups with at least `min` of their time in `states`.
    pub(super) fn count(&self, states: &[ThreadState], min: f64) -> f64 {
        self.workers
            .iter()
            .filter(|u| u.share(states) >= min)
            .map(Unit::weight)
            .sum()
    }

    /// Groups that run Python: mostly on a CPU (their GIL wait taken out), and holding the GIL
    /// for at least [`PYTHON_PART_MIN`] of that time (the rest is native code that released it:
    /// a socket send, a hash).
    pub(super) fn running_python(&self) -> Vec<&Unit<'a>> {
        self.workers
            .iter()
            .filter(|u| own_share(u, &[Gil, Handoff, Native]) >= OWN_WORK_MIN)
            .filter(|u| {
                u.share(&[Gil, Handoff]) >= PYTHON_PART_MIN * u.share(&[Gil, Handoff, Native])
            })
            .collect()
    }

    /// Groups whose own work (their time with the GIL wait taken out) is mostly in `states`.
    pub(super) fn doing(&self, states: &[ThreadState]) -> Vec<&Unit<'a>> {
        self.workers
            .iter()
            .filter(|u| own_share(u, states) >= OWN_WORK_MIN)
            .collect()
    }

    /// The worker groups, as the verdict names them.
    pub(super) fn worker_words(&self) -> Vec<GroupWords> {
        self.workers.iter().map(Unit::words).collect()
    }

    pub(super) fn cores_used(&self) -> f64 {
        self.analysis.cpu_cores_used
    }

    pub(super) fn load(&self) -> Load {
        Load {
            gil_held: self.gil_held,
            cores_used: self.cores_used(),
            cores: self.cores,
            threads_waiting_for_cpu: self.analysis.threads_waiting_for_cpu,
        }
    }
}

/// Threads alive at once in `units`, summed.
pub(super) fn threads_in(units: &[&Unit]) -> f64 {
    units.iter().map(|u| u.weight()).sum()
}

/// How `units` are named in a verdict.
pub(super) fn words_of(units: &[&Unit]) -> Vec<GroupWords> {
    units.iter().map(|u| u.words()).collect()
}

pub(super) fn own_share(u: &Unit, states: &[ThreadState]) -> f64 {
    let outside_wait = 1.0 - u.fraction(GilWait);
    if outside_wait <= 0.0 {
        0.0
    } else {
        u.share(states) / outside_wait
    }
}

/// The mean share of `states` over `units`, each weighed by its threads alive at once.
pub(super) fn mean_of(units: &[&Unit], states: &[ThreadState]) -> f64 {
    let weight = threads_in(units);
    if units.is_empty() || weight <= 0.0 {
        return 0.0;
    }
    units
        .iter()
        .map(|u| u.share(states) * u.weight())
        .sum::<f64>()
        / weight
}

/// The outermost frame of the user's own code in a group: the function its threads run.
pub(super) fn entry_point<'a>(analysis: &'a Analysis, unit: &Unit) -> Option<&'a Frame> {
    let (&(_, stack), _) = unit
        .threads
        .iter()
        .flat_map(|t| t.stacks.iter())
        .filter(|((state, _), _)| matches!(state, Gil | GilWait | Handoff | Native))
        .max_by_key(|(k, &n)| (n, std::cmp::Reverse(k.1)))?;
    let frames: Vec<&Frame> = analysis.stack_frames(stack).collect();
    frames
        .iter()
        .rev()
        .copied()
        .find(|f| !is_thread_machinery(f) && !f.file.is_empty())
}

/// The (at most three) functions most often seen in `state`, the rare ones left out.
pub(super) fn hot(analysis: &Analysis, state: ThreadState) -> Vec<HotFunction> {
    let mut hot = hot_functions(analysis, state, 3);
    hot.retain(|h| h.fraction >= HOT_MIN);
    hot
}

/// The functions `units` run (see [`entry_point`]).
pub(super) fn entry_points(analysis: &Analysis, units: &[&Unit]) -> Vec<Frame> {
    units
        .iter()
        .filter_map(|u| entry_point(analysis, u))
        .cloned()
        .collect()
}

/// What started `units`' threads, from the frames they were seen in: joblib first (it runs
/// on `multiprocessing.pool`), then `multiprocessing`'s pool, then an executor.
pub(super) fn thread_pool_kind(analysis: &Analysis, units: &[&Unit]) -> ThreadPoolKind {
    let seen = |library: PoolLibrary| {
        units.iter().flat_map(|u| u.threads.iter()).any(|t| {
            t.stacks.keys().any(|&(_, stack)| {
                analysis
                    .stack_frames(stack)
                    .any(|f| pool_library(f) == Some(library))
            })
        })
    };
    if seen(PoolLibrary::Joblib) {
        ThreadPoolKind::Joblib
    } else if seen(PoolLibrary::MultiprocessingPool) {
        ThreadPoolKind::MultiprocessingThreadPool
    } else if seen(PoolLibrary::Executor) {
        ThreadPoolKind::Executor
    } else {
        ThreadPoolKind::Threads
    }
}
