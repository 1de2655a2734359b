//! The words the rules share: one place for each sentence more than one rule says.

use crate::analysis::queries::hot_functions;
use crate::analysis::{Analysis, ThreadSummary};
use crate::model::{Frame, ThreadState};
use crate::words::{file_name, pct, place};

use super::facts::{entry_point, Facts};
use super::{Confidence, Verdict, VerdictKind};

pub(super) fn base(kind: VerdictKind, headline: String, evidence: Vec<String>) -> Verdict {
    Verdict {
        kind,
        headline,
        evidence,
        advice: Vec::new(),
        snippet: None,
        predicted_speedup: None,
        confidence: Confidence::High,
        phases: Vec::new(),
    }
}

/// `function (file:line)`, the file's directory dropped.
pub(super) fn location(frame: &Frame) -> String {
    place(&frame.function, &frame.file, frame.line)
}

/// "the GIL was held 95% of the time; 1.0 of 2 cores used", which most rules give.
pub(super) fn gil_and_cores(f: &Facts) -> String {
    format!(
        "the GIL was held {} of the time; {}",
        pct(f.gil_held),
        f.core_line()
    )
}

pub(super) fn hot_lines(analysis: &Analysis, state: ThreadState, what: &str) -> Vec<String> {
    hot_functions(analysis, state, 3)
        .into_iter()
        .filter(|h| h.fraction >= 0.005)
        .map(|h| {
            format!(
                "- {}:{} `{}` ({} of {what})",
                file_name(&h.file),
                h.line,
                h.function,
                pct(h.fraction)
            )
        })
        .collect()
}

pub(super) fn entry_points(analysis: &Analysis, threads: &[&ThreadSummary]) -> Vec<String> {
    let mut names: Vec<String> = threads
        .iter()
        .filter_map(|t| entry_point(analysis, t))
        .map(location)
        .collect();
    names.sort();
    names.dedup();
    names
}
