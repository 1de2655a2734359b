//! The evidence the rules read, computed once per run.

use crate::analysis::queries::{hot_functions, HotFunction};
use crate::analysis::{Analysis, ThreadSummary};
use crate::model::ThreadState::{Gil, GilWait, Io, Native, Sleep};
use crate::model::{Frame, ThreadState};

use super::findings::Load;
use super::{OWN_WORK_MIN, PARTICIPATION_MIN};

/// Hot functions below this share are too rare to name.
const HOT_MIN: f64 = 0.005;

/// The evidence the rules read, computed once.
pub(super) struct Facts<'a> {
    pub(super) analysis: &'a Analysis,
    /// Threads that did something (see [`PARTICIPATION_MIN`]).
    pub(super) workers: Vec<&'a ThreadSummary>,
    pub(super) cores: u32,
    pub(super) gil_held: f64,
}

impl<'a> Facts<'a> {
    pub(super) fn new(analysis: &'a Analysis) -> Self {
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

    pub(super) fn mean(&self, states: &[ThreadState]) -> f64 {
        if self.workers.is_empty() {
            return 0.0;
        }
        self.workers.iter().map(|t| t.share(states)).sum::<f64>() / self.workers.len() as f64
    }

    pub(super) fn count(&self, states: &[ThreadState], min: f64) -> usize {
        self.workers
            .iter()
            .filter(|t| t.share(states) >= min)
            .count()
    }

    /// Threads whose own work (their time with the GIL wait taken out) is mostly in `states`.
    pub(super) fn doing(&self, states: &[ThreadState]) -> Vec<&'a ThreadSummary> {
        self.workers
            .iter()
            .copied()
            .filter(|t| own_share(t, states) >= OWN_WORK_MIN)
            .collect()
    }

    pub(super) fn cores_used(&self) -> f64 {
        self.analysis.cpu_cores_used
    }

    pub(super) fn load(&self) -> Load {
        Load {
            gil_held: self.gil_held,
            cores_used: self.cores_used(),
            cores: self.cores,
        }
    }
}

pub(super) fn own_share(t: &ThreadSummary, states: &[ThreadState]) -> f64 {
    let outside_wait = 1.0 - t.fraction(GilWait);
    if outside_wait <= 0.0 {
        0.0
    } else {
        t.share(states) / outside_wait
    }
}

pub(super) fn mean_of(threads: &[&ThreadSummary], states: &[ThreadState]) -> f64 {
    if threads.is_empty() {
        return 0.0;
    }
    threads.iter().map(|t| t.share(states)).sum::<f64>() / threads.len() as f64
}

/// Frames of the threading machinery, skipped when naming a thread's entry point.
pub(super) fn is_thread_machinery(frame: &Frame) -> bool {
    let file = frame.file.as_str();
    file.ends_with("threading.py")
        || file.contains("concurrent/futures/")
        || file.contains("multiprocessing/")
        || file.contains("asyncio/")
}

/// The outermost frame of the user's own code on a thread: the function the thread runs.
pub(super) fn entry_point<'a>(analysis: &'a Analysis, thread: &ThreadSummary) -> Option<&'a Frame> {
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

/// The (at most three) functions most often seen in `state`, the rare ones left out.
pub(super) fn hot(analysis: &Analysis, state: ThreadState) -> Vec<HotFunction> {
    let mut hot = hot_functions(analysis, state, 3);
    hot.retain(|h| h.fraction >= HOT_MIN);
    hot
}

/// The functions `threads` run (see [`entry_point`]).
pub(super) fn entry_points(analysis: &Analysis, threads: &[&ThreadSummary]) -> Vec<Frame> {
    threads
        .iter()
        .filter_map(|t| entry_point(analysis, t))
        .cloned()
        .collect()
}

pub(super) fn uses_executor(analysis: &Analysis, threads: &[&ThreadSummary]) -> bool {
    threads.iter().any(|t| {
        t.stacks.keys().any(|&(_, stack)| {
            analysis
                .stack_frames(stack)
                .any(|f| f.file.contains("concurrent/futures/thread.py"))
        })
    })
}
