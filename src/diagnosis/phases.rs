//! A run that changes character over time, split into phases.

use crate::analysis::{Analysis, Window};
use crate::model::ThreadState;
use crate::model::ThreadState::{Gil, GilWait, Handoff, Io, Lock, Native, ObjectLock, Sleep};

use super::findings::{PhaseLabel, PhaseSpan};
use super::{VerdictKind, MIN_PHASE_WINDOWS};

/// A window's character, from process-wide counts.
pub(super) fn window_kind(w: &Window) -> Option<VerdictKind> {
    if w.ticks == 0 {
        return None;
    }
    let per_tick = |states: &[ThreadState]| w.counts.sum_of(states) as f64 / w.ticks as f64;
    let python = per_tick(&[Gil, GilWait, Handoff]);
    let native = per_tick(&[Native]);
    let io = per_tick(&[Io, Sleep]);
    let lock = per_tick(&[Lock]);
    let object_lock = per_tick(&[ObjectLock]);
    let (best, _) = [
        (VerdictKind::GilContention, python),
        (VerdictKind::NativeParallel, native),
        (VerdictKind::IoBound, io),
        (VerdictKind::LockContention, lock),
        (VerdictKind::ObjectLockContention, object_lock),
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

/// The process's figures over one phase's windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct PhaseFigures {
    pub(super) gil_held: Option<f64>,
    pub(super) cores_used: f64,
    pub(super) switches_per_s: f64,
}

/// The GIL held, the cores used and the hand-offs per second over the windows that lie in
/// `phase` (its times are from the first window's start); `None` when none does.
pub(super) fn figures_during(analysis: &Analysis, phase: &PhaseSpan) -> Option<PhaseFigures> {
    let origin = analysis.windows.first()?.start_ns;
    let within = |w: &&Window| {
        let start_s = w.start_ns.saturating_sub(origin) as f64 / 1e9;
        start_s >= phase.start_s - 1e-9 && start_s < phase.end_s - 1e-9
    };
    let windows: Vec<&Window> = analysis.windows.iter().filter(within).collect();
    let length_ns: u64 = windows.iter().map(|w| w.length_ns).sum();
    if length_ns == 0 {
        return None;
    }
    let seconds = length_ns as f64 / 1e9;
    let readings: u64 = windows.iter().map(|w| w.gil_readings).sum();
    let locked: u64 = windows.iter().map(|w| w.gil_locked).sum();
    Some(PhaseFigures {
        gil_held: (readings > 0).then(|| locked as f64 / readings as f64),
        cores_used: windows.iter().map(|w| w.cpu_ns).sum::<u64>() as f64 / 1e9 / seconds,
        switches_per_s: windows.iter().map(|w| w.switches).sum::<u64>() as f64 / seconds,
    })
}

/// Splits the run into phases of different character; empty when it kept one character.
pub(super) fn phases(analysis: &Analysis) -> Vec<PhaseSpan> {
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
        .map(|(kind, start, end)| PhaseSpan {
            start_s: t(start) - origin,
            end_s: (if end < analysis.windows.len() {
                t(end)
            } else {
                t(end - 1) + end_of(end - 1)
            } - origin)
                .min(analysis.duration_s),
            kind,
            label: PhaseLabel::Character,
        })
        .collect()
}
