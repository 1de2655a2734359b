//! The rule for an asyncio event loop that stalls.

use crate::analysis::queries::loop_culprits;
use crate::analysis::{Analysis, EventLoop, ThreadSummary};

use super::facts::Facts;
use super::findings::{EventLoopBlocked, Finding};

/// An event loop is blocked when it ran (outside its selector) at least this share of its
/// time, with a stall of at least [`LOOP_STALL_MIN_S`].
pub const LOOP_BUSY_MIN: f64 = 0.25;
pub const LOOP_STALL_MIN_S: f64 = 0.05;
/// Code that took less of the loop's time than this is not named.
const CULPRIT_MIN: f64 = 0.01;

/// The event loop that stalls the most, if one is blocked (see [`LOOP_BUSY_MIN`]).
pub(super) fn blocked_loop(analysis: &Analysis) -> Option<(&ThreadSummary, &EventLoop)> {
    analysis
        .threads
        .iter()
        .filter_map(|t| Some((t, t.event_loop.as_ref()?)))
        .filter(|(_, lp)| {
            lp.busy_share() >= LOOP_BUSY_MIN
                && lp
                    .stalls
                    .first()
                    .is_some_and(|s| s.duration_ns as f64 / 1e9 >= LOOP_STALL_MIN_S)
        })
        .max_by(|a, b| a.1.busy_share().total_cmp(&b.1.busy_share()))
}

pub(super) fn event_loop_blocked(f: &Facts, thread: &ThreadSummary, lp: &EventLoop) -> Finding {
    let mut culprits = loop_culprits(f.analysis, lp);
    culprits.retain(|c| c.share >= CULPRIT_MIN);
    Finding::EventLoopBlocked(EventLoopBlocked {
        thread: thread.name.clone(),
        blocking: lp.blocked_ns * 2 >= lp.running_ns,
        busy: lp.busy_share(),
        longest_s: lp
            .stalls
            .first()
            .map_or(0.0, |s| s.duration_ns as f64 / 1e9),
        blocked: if lp.running_ns == 0 {
            0.0
        } else {
            lp.blocked_ns as f64 / lp.running_ns as f64
        },
        culprits,
    })
}
