//! Did the fix work? Two reports in (each live, replayed from a recording, or read back from
//! `--json`), one comparison out: the JSON contract `gilscope.diff/1`, read by the renderers.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::diagnosis::VerdictKind;
use crate::model::GilMode;
use crate::report::{Report, States};

pub const SCHEMA: &str = "gilscope.diff/1";
/// The comparison lists this many functions.
pub const CHANGES_LIMIT: usize = 10;
/// A function whose GIL time changed less than this share of the largest change is not listed.
const CHANGE_MIN_SHARE: f64 = 0.02;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diff {
    pub schema: String,
    pub before: Side,
    pub after: Side,
    /// The functions whose time holding or waiting for the GIL changed most, most first.
    pub changes: Vec<Change>,
    /// The gain measured against the one the first run's verdict predicted.
    pub speedup: Speedup,
}

/// One run, summed up for the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// The file it was read from.
    pub source: String,
    pub command: String,
    #[serde(with = "crate::model::empty_as_none")]
    pub python: Option<String>,
    pub gil: GilMode,
    pub duration_s: f64,
    /// How sampling ended, e.g. "the target exited with status 0".
    pub ending: Option<String>,
    /// Whether the run was sampled to the target's exit: then its duration is the work's.
    pub ran_to_exit: bool,
    pub processes: usize,
    pub cpu_cores_used: f64,
    pub cores: u32,
    pub gil_held: Option<f64>,
    pub gil_switches_per_s: Option<f64>,
    /// Shares of all threads' observed time, each thread weighed by its samples.
    pub states: States,
    pub verdict: Option<SideVerdict>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideVerdict {
    pub kind: VerdictKind,
    pub headline: String,
}

/// A function's GIL time in both runs, in thread-seconds (from `gil_by_line`, all its lines).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub function: String,
    pub file: String,
    pub held_s: Pair,
    pub waiting_s: Pair,
    pub released_s: Pair,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    pub before: f64,
    pub after: f64,
}

impl Pair {
    pub fn change(&self) -> f64 {
        self.after - self.before
    }
}

/// The measured gain, and what the first run predicted for the fix the second run made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speedup {
    /// Before's duration over after's, where both ran to the target's exit.
    pub measured: Option<f64>,
    /// The fix the second run made, as the prediction names it.
    pub fix: Fix,
    pub predicted: Option<f64>,
    /// Why a figure is missing.
    pub notes: Vec<SpeedupNote>,
}

/// The fixes a prediction covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fix {
    /// The work moved to processes (the second run has more processes).
    Processes,
    /// The same program on a free-threaded build.
    FreeThreaded,
    /// Neither: the same shape of program, changed otherwise (the "more threads" figure).
    Threads,
}

/// Why the comparison lacks a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeedupNote {
    /// A run ended by `--duration`, Ctrl-C or a detach: its duration is not its work's.
    NotRunToExit,
    /// The first run's verdict predicts nothing for this fix.
    NoPrediction,
}

/// Compares two reports. Pure: the same reports give the same diff.
pub fn compare(before: &Report, before_source: &str, after: &Report, after_source: &str) -> Diff {
    Diff {
        schema: SCHEMA.into(),
        before: side(before, before_source),
        after: side(after, after_source),
        changes: changes(before, after),
        speedup: speedup(before, after),
    }
}

fn side(report: &Report, source: &str) -> Side {
    Side {
        source: source.into(),
        command: report.target.command.clone(),
        python: report.target.python.clone(),
        gil: report.target.gil,
        duration_s: report.duration_s,
        ending: report.ending.clone(),
        ran_to_exit: report.exit.is_some(),
        processes: report.processes.len().max(1),
        cpu_cores_used: report.process.cpu_cores_used,
        cores: report.process.cores,
        gil_held: report.process.gil_held,
        gil_switches_per_s: report.process.gil_switches_per_s,
        states: thread_states(report),
        verdict: report.verdict.as_ref().map(|v| SideVerdict {
            kind: v.kind,
            headline: v.headline.clone(),
        }),
    }
}

/// Every thread's state shares, weighed by its samples.
fn thread_states(report: &Report) -> States {
    let total: u64 = report.threads.iter().map(|t| t.samples).sum();
    States::from_fn(|state| {
        let weighed: f64 = report
            .threads
            .iter()
            .map(|t| t.states[state] * t.samples as f64)
            .sum();
        if total == 0 {
            0.0
        } else {
            weighed / total as f64
        }
    })
}

/// Each function's held, waited and released thread-seconds in both runs.
fn changes(before: &Report, after: &Report) -> Vec<Change> {
    let mut by_function: HashMap<(String, String), Change> = HashMap::new();
    for (report, is_after) in [(before, false), (after, true)] {
        for line in &report.gil_by_line {
            let change = by_function
                .entry((line.function.clone(), line.file.clone()))
                .or_insert_with(|| Change {
                    function: line.function.clone(),
                    file: line.file.clone(),
                    held_s: Pair::default(),
                    waiting_s: Pair::default(),
                    released_s: Pair::default(),
                });
            for (pair, share) in [
                (&mut change.held_s, line.held),
                (&mut change.waiting_s, line.waiting),
                (&mut change.released_s, line.released),
            ] {
                let side = if is_after {
                    &mut pair.after
                } else {
                    &mut pair.before
                };
                *side += line.seconds * share;
            }
        }
    }
    let size = |c: &Change| c.held_s.change().abs() + c.waiting_s.change().abs();
    let largest = by_function.values().map(size).fold(0.0, f64::max);
    let mut changes: Vec<Change> = by_function
        .into_values()
        .filter(|c| size(c) > 0.0 && size(c) >= CHANGE_MIN_SHARE * largest)
        .collect();
    changes.sort_by(|a, b| {
        size(b)
            .total_cmp(&size(a))
            .then_with(|| (&a.function, &a.file).cmp(&(&b.function, &b.file)))
    });
    changes.truncate(CHANGES_LIMIT);
    changes
}

fn speedup(before: &Report, after: &Report) -> Speedup {
    let mut notes = Vec::new();
    let measured = if before.exit.is_some() && after.exit.is_some() && after.duration_s > 0.0 {
        Some(before.duration_s / after.duration_s)
    } else {
        notes.push(SpeedupNote::NotRunToExit);
        None
    };
    let fix = if after.processes.len() > before.processes.len().max(1) {
        Fix::Processes
    } else if after.target.gil == GilMode::Disabled && before.target.gil != GilMode::Disabled {
        Fix::FreeThreaded
    } else {
        Fix::Threads
    };
    let prediction = before
        .verdict
        .as_ref()
        .and_then(|v| v.predicted_speedup.as_ref());
    let predicted = prediction.and_then(|p| match fix {
        Fix::Processes => p.processes,
        Fix::FreeThreaded => p.free_threaded,
        Fix::Threads => p.fix.or(p.threads),
    });
    if predicted.is_none() {
        notes.push(SpeedupNote::NoPrediction);
    }
    Speedup {
        measured,
        fix,
        predicted,
        notes,
    }
}
