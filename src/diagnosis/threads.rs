//! The rules for the threads of one process: who holds the GIL, who waits, on what.

use crate::known_frames::is_notebook_cell;
use crate::model::ThreadState::{Gil, GilWait, Handoff, Io, Lock, Native, Sleep};

use super::facts::{
    entry_point, entry_points, hot, mean_of, thread_pool_kind, threads_in, words_of, Facts, Unit,
};
use super::findings::{
    Assumption, CpuSaturated, Finding, Forecast, GilContention, Idle, IoBound, LockContention,
    Mixed, NativeParallel, NoRuleFits, SingleThreadCpu, UnmappedHolder,
};
use super::prediction::predict;
use super::{FREE_THREADED_EFFICIENCY, LOCK_SHARE_MIN, SATURATION_MIN};

/// The GIL held for at least this share of the samples by a thread that could not be mapped
/// (and for most of the time it was held) leaves every GIL-based rule without evidence.
pub const UNMAPPED_HOLDER_MIN: f64 = 0.2;
/// A state below this mean share is left out of the spread [`no_rule_fits`] reports.
const SPREAD_MIN: f64 = 0.05;

/// The GIL was held, but mostly by a thread gilscope could not map to one of the target's:
/// every thread's `gil` time would read as `native` or `gil_wait`, so no verdict is given.
pub(super) fn unmapped_holder(f: &Facts) -> Option<Finding> {
    let unmapped = f.analysis.root()?.gil_held_unmapped?;
    if unmapped < UNMAPPED_HOLDER_MIN || unmapped < 0.5 * f.gil_held {
        return None;
    }
    Some(Finding::UnmappedHolder(UnmappedHolder {
        unmapped,
        load: f.load(),
    }))
}

/// Busy threads that fit no rule: what was seen, without a verdict.
pub(super) fn no_rule_fits(f: &Facts) -> Finding {
    Finding::NoRuleFits(NoRuleFits {
        groups: f.worker_words(),
        shares: [Gil, GilWait, Native, Io, Sleep, Lock]
            .into_iter()
            .map(|state| (state, f.mean(&[state])))
            .filter(|&(_, share)| share >= SPREAD_MIN)
            .collect(),
        load: f.load(),
    })
}

pub(super) fn gil_contention(f: &Facts, python: &[&Unit]) -> Finding {
    let a = f.analysis;
    let entries = entry_points(a, python);
    let hot = hot(a, Gil);
    let defined_in_notebook = entries
        .iter()
        .map(|e| e.file.as_str())
        .chain(hot.iter().map(|h| h.file.as_str()))
        .any(is_notebook_cell);
    Finding::GilContention(GilContention {
        groups: words_of(python),
        threads: threads_in(python),
        bystanders: f.bystanders.clone(),
        wait: mean_of(python, &[GilWait]),
        handoff: mean_of(python, &[Handoff]),
        load: f.load(),
        switches_per_s: a.gil_switches_per_s,
        pool: thread_pool_kind(a, python),
        hot,
        entries,
        defined_in_notebook,
        forecast: predict(f, python),
    })
}

pub(super) fn mixed(f: &Facts, python: &[&Unit], io_threads: &[&Unit]) -> Finding {
    Finding::Mixed(Mixed {
        io_groups: words_of(io_threads),
        io_wait: mean_of(io_threads, &[GilWait]),
        python_groups: words_of(python),
        python_wait: mean_of(python, &[GilWait]),
        load: f.load(),
        hot: hot(f.analysis, Gil),
        forecast: (!python.is_empty()).then(|| predict(f, python)),
    })
}

pub(super) fn native_parallel(f: &Facts, native_threads: f64) -> Finding {
    let saturated = f.cores_used() >= SATURATION_MIN * f.cores as f64;
    Finding::NativeParallel(NativeParallel {
        threads: native_threads,
        native: f.mean(&[Native]),
        wait: f.mean(&[GilWait]),
        oversubscribed: saturated && native_threads > f.cores as f64 + 0.5,
        load: f.load(),
        hot: hot(f.analysis, Native),
        forecast: Forecast {
            processes: Some(1.0),
            threads: saturated.then_some(1.0),
            free_threaded: Some(1.0),
            fix: None,
            assumptions: vec![Assumption::NativeAlreadyParallel],
        },
    })
}

pub(super) fn single_thread_cpu(f: &Facts, busy: &Unit) -> Finding {
    let a = f.analysis;
    let cores = f.cores as f64;
    let others = f
        .workers
        .iter()
        .filter(|u| !std::ptr::eq(u.group, busy.group) && !u.is_bystander())
        .map(Unit::weight)
        .sum();
    Finding::SingleThreadCpu(SingleThreadCpu {
        thread: busy.group.label.clone(),
        on_cpu: busy.share(&[Gil, Handoff, Native]),
        holding: busy.fraction(Gil),
        others,
        load: f.load(),
        entry: entry_point(a, busy).cloned(),
        hot: hot(a, Gil),
        forecast: Forecast {
            processes: Some(cores),
            threads: Some(1.0),
            free_threaded: Some(cores * FREE_THREADED_EFFICIENCY),
            fix: None,
            assumptions: vec![
                Assumption::SplitFirst { cores: f.cores },
                Assumption::FreeThreadedSpeed,
            ],
        },
    })
}

pub(super) fn lock_contention(f: &Facts) -> Finding {
    let a = f.analysis;
    let waiters: Vec<&Unit> = f
        .workers
        .iter()
        .filter(|u| u.fraction(Lock) >= LOCK_SHARE_MIN)
        .collect();
    Finding::LockContention(LockContention {
        waiters: threads_in(&waiters),
        lock: f.mean(&[Lock]),
        wait: f.mean(&[GilWait]),
        load: f.load(),
        sites: hot(a, Lock),
        entries: entry_points(a, &waiters),
        forecast: Forecast::unchanged(Assumption::LockStays),
    })
}

pub(super) fn io_bound(f: &Facts) -> Finding {
    let loops = f
        .analysis
        .threads
        .iter()
        .filter_map(|t| {
            let lp = t.event_loop.as_ref().filter(|l| l.loop_ns > 0)?;
            Some((t.name.clone(), 1.0 - lp.busy_share()))
        })
        .collect();
    Finding::IoBound(IoBound {
        threads: threads_in(&f.workers.iter().collect::<Vec<_>>()),
        io: f.mean(&[Io, Sleep]),
        wait: f.mean(&[GilWait]),
        load: f.load(),
        loops,
        hot: hot(f.analysis, Io),
        forecast: Forecast {
            processes: Some(1.0),
            threads: None,
            free_threaded: Some(1.0),
            fix: None,
            assumptions: vec![Assumption::WaitsOutside],
        },
    })
}

pub(super) fn cpu_saturated(f: &Facts) -> Finding {
    Finding::CpuSaturated(CpuSaturated {
        wait: f.mean(&[GilWait]),
        load: f.load(),
        forecast: Forecast::unchanged(Assumption::EveryCoreBusy),
    })
}

pub(super) fn idle(f: &Facts) -> Finding {
    Finding::Idle(Idle { load: f.load() })
}
