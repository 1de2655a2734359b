//! Questions asked of a finished [`Analysis`]: the hot functions of a state, the code that kept
//! an event loop busy. The diagnosis and the report both ask them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Analysis, EventLoop};
use crate::known_frames::loop_culprit;
use crate::model::{Frame, ThreadState};

/// The functions (innermost Python frame) most often seen in a state. `fraction` is the share
/// of all thread-samples in that state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotFunction {
    pub function: String,
    pub file: String,
    pub line: i32,
    pub fraction: f64,
}

/// The hot functions of `state`, most frequent first.
pub fn hot_functions(analysis: &Analysis, state: ThreadState, limit: usize) -> Vec<HotFunction> {
    let mut by_frame: std::collections::HashMap<u32, u64> = Default::default();
    let total: u64 = analysis
        .threads
        .iter()
        .map(|t| t.counts[state.index()])
        .sum();
    for thread in &analysis.threads {
        for (&(s, stack), &n) in &thread.stacks {
            if s != state {
                continue;
            }
            if let Some(&frame) = analysis.stacks.get(stack as usize).and_then(|f| f.first()) {
                *by_frame.entry(frame).or_insert(0) += n;
            }
        }
    }
    let mut hot: Vec<(u32, u64)> = by_frame.into_iter().collect();
    hot.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    hot.into_iter()
        .take(limit)
        .filter_map(|(id, n)| {
            let frame = analysis.frames.get(id as usize)?;
            Some(HotFunction {
                function: frame.function.clone(),
                file: frame.file.clone(),
                line: frame.line,
                fraction: n as f64 / total.max(1) as f64,
            })
        })
        .collect()
}

/// Code that kept an event loop from waiting for events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopCulprit {
    /// The coroutine or callback the loop was running.
    pub coroutine: String,
    /// The innermost Python frame: where in it the time went.
    pub function: String,
    pub file: String,
    pub line: i32,
    /// Share of the loop's time.
    pub share: f64,
    /// Share of that time blocked rather than on a CPU.
    pub blocked: f64,
}

/// How many culprits an event loop lists.
pub const LOOP_CULPRITS: usize = 5;

/// The loop's busy time grouped by (coroutine, innermost frame), most first.
pub fn loop_culprits(analysis: &Analysis, lp: &EventLoop) -> Vec<LoopCulprit> {
    let mut by_site: HashMap<(String, &Frame), (u64, u64)> = HashMap::new();
    for (&stack, &(running, blocked)) in &lp.running_by_stack {
        let frames: Vec<&Frame> = analysis.stack_frames(stack).collect();
        let (Some(coroutine), Some(inner)) = (loop_culprit(&frames), frames.first()) else {
            continue;
        };
        let entry = by_site
            .entry((coroutine.function.clone(), *inner))
            .or_default();
        entry.0 += running;
        entry.1 += blocked;
    }
    let mut sites: Vec<_> = by_site.into_iter().collect();
    sites.sort_by(|a, b| {
        b.1 .0.cmp(&a.1 .0).then_with(|| {
            (&a.0 .0, &a.0 .1.file, a.0 .1.line).cmp(&(&b.0 .0, &b.0 .1.file, b.0 .1.line))
        })
    });
    sites
        .into_iter()
        .take(LOOP_CULPRITS)
        .map(|((coroutine, inner), (running, blocked))| LoopCulprit {
            coroutine,
            function: inner.function.clone(),
            file: inner.file.clone(),
            line: inner.line,
            share: running as f64 / lp.loop_ns.max(1) as f64,
            blocked: blocked as f64 / running.max(1) as f64,
        })
        .collect()
}
