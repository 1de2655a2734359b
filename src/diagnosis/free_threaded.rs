//! The rules for a free-threaded build, and for its GIL coming back on.

use crate::model::ThreadState::{Gil, GilWait, Lock, Native};
use crate::words::pct;

use super::facts::Facts;
use super::phases::phase_headline;
use super::text::base;
use super::{
    Phase, Verdict, VerdictKind, BUSY_MIN, CONTENTION_GIL_HELD_MIN, CONTENTION_WAIT_MIN,
    LOCK_SHARE_MIN,
};

pub(super) fn free_threaded(f: &Facts) -> Verdict {
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
pub(super) struct Span {
    seconds: f64,
    cores: f64,
    gil_held: f64,
    /// Of the busy thread-samples (holding, waiting for the GIL, on a CPU), the waiting ones.
    gil_wait: f64,
}

pub(super) fn span(windows: &[crate::analysis::Window]) -> Span {
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
pub(super) fn gil_turned_on(f: &Facts, enabling: &crate::analysis::GilEnabling) -> Verdict {
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
