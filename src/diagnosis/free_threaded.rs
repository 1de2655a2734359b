//! The rules for a free-threaded build, and for its GIL coming back on.

use crate::analysis::{GilEnabling, ProcessSummary, Window};
use crate::model::ThreadState::{Gil, GilWait, Handoff, Lock, Native, ObjectLock};

use super::facts::{entry_points, hot, mean_of, threads_in, words_of, Facts, Unit};
use super::findings::{
    Assumption, Finding, Forecast, FreeThreaded, FreeThreadedCase, GilTurnedOn,
    ObjectLockContention, PhaseLabel, PhaseSpan, Span,
};
use super::{
    VerdictKind, BUSY_MIN, CONTENTION_GIL_HELD_MIN, CONTENTION_WAIT_MIN, LOCK_SHARE_MIN,
    OBJECT_LOCK_SHARE_MIN,
};

/// A type of object is named as contended when it was the one held in this share of the
/// readings where a thread waited.
const HELD_TYPE_MIN: f64 = 0.2;

/// Fewer busy threads than this (counted as [`Facts::count`] does) is none at all.
const NOTHING_BUSY_MAX: f64 = 0.5;

/// Busy threads on a free-threaded build are starved when they get less than this share of
/// the cores they could use.
const STARVED_CORES_MAX: f64 = 0.75;

/// What a free-threaded build has to say, or `None` when no thread was busy and nothing
/// waited on a lock: the general rules (I/O-bound, a blocked event loop, idle) judge a run in
/// which the build made no difference.
pub(super) fn free_threaded(f: &Facts) -> Option<Finding> {
    if let Some(enabling) = &f.analysis.gil_enabled {
        return Some(gil_turned_on(f, enabling));
    }
    if f.mean(&[ObjectLock]) >= OBJECT_LOCK_SHARE_MIN {
        return Some(object_lock_contention(f));
    }
    let busy = f.count(&[Native], BUSY_MIN);
    let case = if f.analysis.gil_held.is_some_and(|h| h > 0.0) {
        FreeThreadedCase::GilHeld
    } else if busy >= 1.5 && f.cores_used() < STARVED_CORES_MAX * busy.min(f.cores as f64) {
        FreeThreadedCase::Starved { busy }
    } else if f.mean(&[Lock]) >= LOCK_SHARE_MIN {
        FreeThreadedCase::Locks {
            lock: f.mean(&[Lock]),
        }
    } else if busy < NOTHING_BUSY_MAX {
        return None;
    } else {
        FreeThreadedCase::Parallel
    };
    Some(Finding::FreeThreaded(FreeThreaded {
        load: f.load(),
        case,
    }))
}

/// Threads that take turns on shared objects' locks, and what giving each its own would gain:
/// the share of their time that is work today, spread over the cores they could use. Each
/// update of a contended object also costs more (its cache line moves between cores), so the
/// gain is a floor.
fn object_lock_contention(f: &Facts) -> Finding {
    let a = f.analysis;
    let waiters: Vec<&Unit> = f
        .workers
        .iter()
        .filter(|u| u.fraction(ObjectLock) >= OBJECT_LOCK_SHARE_MIN)
        .collect();
    let threads = threads_in(&waiters);
    let running = mean_of(&waiters, &[Native]);
    let cores = threads.min(f.cores as f64);
    let speedup = (cores / (threads * running).max(1e-3)).max(1.0);
    Finding::ObjectLockContention(ObjectLockContention {
        groups: words_of(&waiters),
        waiters: threads,
        object_lock: mean_of(&waiters, &[ObjectLock]),
        objects: a.root().map(contended_types).unwrap_or_default(),
        load: f.load(),
        sites: hot(a, ObjectLock),
        entries: entry_points(a, &waiters),
        forecast: Forecast {
            processes: None,
            threads: Some(1.0),
            free_threaded: None,
            fix: Some(speedup),
            assumptions: vec![Assumption::ObjectLockRemoved { running, cores }],
        },
    })
}

/// The types seen held in at least [`HELD_TYPE_MIN`] of the readings, most seen first.
fn contended_types(process: &ProcessSummary) -> Vec<String> {
    let total: u64 = process.contended_objects.values().sum();
    let mut types: Vec<(&String, u64)> = process
        .contended_objects
        .iter()
        .map(|(name, &n)| (name, n))
        .filter(|&(_, n)| n as f64 >= HELD_TYPE_MIN * total as f64)
        .collect();
    types.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    types.into_iter().map(|(name, _)| name.clone()).collect()
}

fn span(windows: &[Window]) -> Span {
    let sum = |f: fn(&Window) -> u64| windows.iter().map(f).sum::<u64>();
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
pub(super) fn gil_turned_on(f: &Facts, enabling: &GilEnabling) -> Finding {
    // The window in which it came on is neither before nor after (unless it is the last).
    let windows = &f.analysis.windows;
    let before = &windows[..windows.partition_point(|w| w.start_ns + w.length_ns <= enabling.t_ns)];
    let after = match &windows[windows.partition_point(|w| w.start_ns < enabling.t_ns)..] {
        [] => &windows[before.len()..],
        after => after,
    };
    let mut after = span(after);
    // The windows carry the root's GIL readings only: a descendant judged alone (the GIL came
    // on in a worker process) is read from its own totals.
    if f.analysis.root().is_some_and(|p| p.parent.is_some()) {
        let busy = f.mean(&[Gil, GilWait, Handoff, Native]);
        after.gil_held = f.gil_held;
        after.gil_wait = f.mean(&[GilWait]) / busy.max(1e-9);
    }
    Finding::GilTurnedOn(GilTurnedOn {
        modules: enabling.modules.clone(),
        at_s: enabling.at_s,
        contended: after.gil_held >= CONTENTION_GIL_HELD_MIN
            && after.gil_wait >= CONTENTION_WAIT_MIN,
        before: (!before.is_empty()).then(|| span(before)),
        after,
        cores: f.cores,
    })
}

/// The run split where the GIL came on, when that was after sampling began.
pub(super) fn gil_phases(finding: &Finding, duration_s: f64) -> Option<Vec<PhaseSpan>> {
    let Finding::GilTurnedOn(GilTurnedOn { at_s, .. }) = finding else {
        return None;
    };
    (*at_s > 0.0).then(|| {
        vec![
            PhaseSpan {
                start_s: 0.0,
                end_s: *at_s,
                kind: VerdictKind::FreeThreaded,
                label: PhaseLabel::GilDisabled,
            },
            PhaseSpan {
                start_s: *at_s,
                end_s: duration_s,
                kind: finding.kind(),
                label: PhaseLabel::GilOn,
            },
        ]
    })
}
