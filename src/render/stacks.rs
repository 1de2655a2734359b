//! Stacks by thread and state, the common input of the flame graph, speedscope and pprof.

use crate::analysis::Analysis;
use crate::model::{Frame, PerState, ThreadState, Tid};

/// One distinct (thread, state, stack) with its sample count. Frames are outermost first.
pub struct StackCount<'a> {
    pub tid: Tid,
    pub thread: Option<&'a str>,
    pub state: ThreadState,
    pub frames: Vec<&'a Frame>,
    pub count: u64,
}

/// Every sampled stack, in a stable order (thread start, state, stack id). Samples with no
/// Python stack count as an empty stack, so totals match the thread tables.
pub fn stack_counts(analysis: &Analysis, only: Option<ThreadState>) -> Vec<StackCount<'_>> {
    let mut out = Vec::new();
    for thread in &analysis.threads {
        let mut keys: Vec<_> = thread.stacks.iter().collect();
        keys.sort_by_key(|(&(state, stack), _)| (state, stack));
        let mut with_stack = PerState::<u64>::default();
        for (&(state, stack), &count) in keys {
            with_stack[state] += count;
            if only.is_some_and(|s| s != state) {
                continue;
            }
            let mut frames: Vec<&Frame> = analysis.stack_frames(stack).collect();
            frames.reverse();
            out.push(StackCount {
                tid: thread.tid,
                thread: thread.name.as_deref(),
                state,
                frames,
                count,
            });
        }
        for state in ThreadState::ALL {
            let bare = thread.counts[state].saturating_sub(with_stack[state]);
            if bare > 0 && only.is_none_or(|s| s == state) {
                out.push(StackCount {
                    tid: thread.tid,
                    thread: thread.name.as_deref(),
                    state,
                    frames: Vec::new(),
                    count: bare,
                });
            }
        }
    }
    out
}

pub use super::words::thread_label;

/// `function (file:line)` with the file's directory dropped.
pub fn frame_label(frame: &Frame) -> String {
    super::words::place(&frame.function, &frame.file, frame.line)
}
