//! One thread's accumulation: its states, stacks, lines and event loop, sample by sample.

use std::collections::HashMap;

use crate::classify::resolve_transit;
use crate::known_frames::{loop_position, waits_for_task, LoopPosition};
use crate::model::{Frame, Pid, ThreadState, Tid};

use super::summary::{
    CpuWait, EventLoop, Holder, Segment, Stall, ThreadSummary, WaitHolder, LOOP_STALLS_KEPT,
    MAX_TIMELINE_SEGMENTS,
};
use super::timeline::Totals;

#[derive(Debug, Clone)]
pub(super) struct ThreadAcc {
    pub(super) summary: ThreadSummary,
    pub(super) last_cpu_ns: Option<u64>,
    pub(super) previous: Option<ThreadState>,
    /// A sample whose state waits for the next one (see [`is_transit_candidate`]).
    pub(super) pending: Option<Pending>,
    /// The event-loop stall in progress.
    pub(super) stall: Option<Stall>,
    /// The process tick that last saw the thread.
    pub(super) seen_at_tick: u64,
    /// The thread appeared after the process's first tick: it started during the run, so all
    /// the CPU time it has used is the run's.
    pub(super) born_during_run: bool,
    /// Its first and last run-delay readings: (t_ns, cumulative ns).
    run_delays: Option<((u64, u64), (u64, u64))>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Pending {
    pub(super) stack: Option<u32>,
    pub(super) t_ns: u64,
    /// The time this sample stands for.
    pub(super) weight_ns: u64,
    /// Where the stack stands in an event loop; `None` without a stack.
    pub(super) loop_position: Option<LoopPosition>,
    /// The stack is a pool worker's, waiting for its next task.
    pub(super) waits_for_task: bool,
    /// The stack's innermost frame.
    pub(super) top_frame: Option<u32>,
    /// Who held the GIL at this sample, when one of the process's threads did.
    pub(super) holder: Option<Holder>,
}

/// A line releases the GIL when its threads spent at least this many times as long on a CPU
/// without it as holding it (`hashlib`, `zlib`, NumPy: typically 10x and more).
pub const RELEASING_LINE_RATIO: u64 = 2;

/// How each line has used the GIL so far, over every thread: time on a CPU holding it and
/// without it. A thread seen on a CPU without the GIL at a line that mostly runs holding it is
/// passing the GIL on (between a release and the next take), not running native code.
#[derive(Debug, Clone, Default)]
pub(super) struct LineUse {
    pub(super) by_frame: HashMap<u32, (u64, u64)>,
}

impl LineUse {
    /// The state of a sample at `frame`, with what the line did so far; the sample is added.
    pub(super) fn judge(
        &mut self,
        frame: Option<u32>,
        state: ThreadState,
        weight_ns: u64,
    ) -> ThreadState {
        let Some(frame) = frame else { return state };
        let (held, released) = self.by_frame.entry(frame).or_default();
        match state {
            ThreadState::Gil => *held += weight_ns,
            ThreadState::Native => {
                *released += weight_ns;
                if *held > 0 && *released < RELEASING_LINE_RATIO * *held {
                    return ThreadState::Handoff;
                }
            }
            _ => {}
        }
        state
    }

    /// Whether the line at `frame` has so far run mostly without the GIL.
    pub(super) fn releases(&self, frame: Option<u32>) -> bool {
        frame
            .and_then(|f| self.by_frame.get(&f))
            .is_some_and(|&(held, released)| released >= RELEASING_LINE_RATIO * held)
    }
}

/// What a stack means beyond its frames, worked out once per stack.
#[derive(Debug, Clone, Copy)]
pub(super) struct StackMeaning {
    pub(super) loop_position: LoopPosition,
    pub(super) waits_for_task: bool,
}

/// The [`StackMeaning`] of each stack seen.
#[derive(Debug, Clone, Default)]
pub(super) struct StackMeanings {
    pub(super) known: HashMap<u32, StackMeaning>,
}

impl StackMeanings {
    pub(super) fn of(&mut self, stack: u32, frames: &[Frame], stacks: &[Vec<u32>]) -> StackMeaning {
        *self.known.entry(stack).or_insert_with(|| {
            let ids = stacks.get(stack as usize).map_or(&[][..], |s| s.as_slice());
            let frames = ids.iter().filter_map(|&id| frames.get(id as usize));
            StackMeaning {
                loop_position: loop_position(frames.clone()),
                waits_for_task: waits_for_task(frames),
            }
        })
    }
}

impl ThreadAcc {
    /// A thread first seen at `t` (named, when its name is already known).
    pub(super) fn new(
        pid: Pid,
        tid: Tid,
        t: u64,
        names: &HashMap<Tid, String>,
        born_during_run: bool,
    ) -> ThreadAcc {
        ThreadAcc {
            summary: ThreadSummary {
                pid,
                tid,
                name: names.get(&tid).cloned(),
                first_t_ns: t,
                last_t_ns: t,
                ..ThreadSummary::default()
            },
            run_delays: None,
            last_cpu_ns: None,
            previous: None,
            pending: None,
            stall: None,
            seen_at_tick: 0,
            born_during_run,
        }
    }

    pub(super) fn count(&mut self, totals: &mut Totals, at: Pending, state: ThreadState) {
        self.count_loop(at, state);
        let s = &mut self.summary;
        s.samples += 1;
        s.counts[state] += 1;
        s.time_ns[state] += at.weight_ns;
        if state == ThreadState::Lock && at.waits_for_task {
            s.waiting_for_work_ns += at.weight_ns;
        }
        if let Some(stack) = at.stack {
            *s.stacks.entry((state, stack)).or_insert(0) += 1;
        }
        if let Some(frame) = at.top_frame {
            *s.line_time_ns.entry((frame, state)).or_insert(0) += at.weight_ns;
            if let (ThreadState::GilWait, Some(holder)) = (state, at.holder) {
                let key = WaitHolder {
                    waiting_frame: frame,
                    holder_tid: holder.tid,
                    holder_frame: holder.frame,
                };
                *s.gil_wait_holders.entry(key).or_insert(0) += 1;
            }
        }
        if let Some(w) = totals.windows.existing(at.t_ns) {
            w.counts[state] += 1;
        }
        if let Some(profile) = totals.profile.as_deref_mut() {
            *profile.entry((s.pid, s.tid, state, at.stack)).or_insert(0) += 1;
        }
        match s.timeline.last_mut() {
            Some(last) if last.state == state => last.end_ns = at.t_ns,
            last => {
                if let Some(last) = last {
                    last.end_ns = at.t_ns;
                }
                if *totals.segments < MAX_TIMELINE_SEGMENTS {
                    *totals.segments += 1;
                    s.timeline.push(Segment {
                        start_ns: at.t_ns,
                        end_ns: at.t_ns,
                        state,
                        stack: at.stack,
                    });
                }
            }
        }
    }

    /// Follows the event loop, if the thread runs one: time waiting, time running, stalls.
    /// A sample without a stack leaves the loop as it was.
    pub(super) fn count_loop(&mut self, at: Pending, state: ThreadState) {
        let Some(position) = at.loop_position else {
            return;
        };
        if position == LoopPosition::NotALoop {
            self.close_stall();
            return;
        }
        let blocked = !matches!(
            state,
            ThreadState::Gil | ThreadState::GilWait | ThreadState::Native
        );
        let lp = self
            .summary
            .event_loop
            .get_or_insert_with(EventLoop::default);
        lp.loop_ns += at.weight_ns;
        if position == LoopPosition::Waiting {
            self.close_stall();
            return;
        }
        lp.running_ns += at.weight_ns;
        let blocked_ns = if blocked { at.weight_ns } else { 0 };
        lp.blocked_ns += blocked_ns;
        if let Some(stack) = at.stack {
            let entry = lp.running_by_stack.entry(stack).or_default();
            entry.0 += at.weight_ns;
            entry.1 += blocked_ns;
        }
        let stall = self.stall.get_or_insert(Stall {
            start_ns: at.t_ns.saturating_sub(at.weight_ns),
            duration_ns: 0,
            stack: at.stack,
            blocked_ns: 0,
        });
        stall.duration_ns += at.weight_ns;
        stall.blocked_ns += blocked_ns;
    }

    /// Ends the current stall, keeping it if it is among the longest.
    pub(super) fn close_stall(&mut self) {
        let (Some(stall), Some(lp)) = (self.stall.take(), self.summary.event_loop.as_mut()) else {
            return;
        };
        let at = lp
            .stalls
            .partition_point(|s| s.duration_ns >= stall.duration_ns);
        if at < LOOP_STALLS_KEPT {
            lp.stalls.insert(at, stall);
            lp.stalls.truncate(LOOP_STALLS_KEPT);
        }
    }

    /// Settles a pending sample now that the next state is known (`None`: the thread ended).
    pub(super) fn settle(&mut self, totals: &mut Totals, next: Option<ThreadState>) {
        if let Some(p) = self.pending.take() {
            self.count(totals, p, resolve_transit(next));
        }
    }

    /// Adds a reading of the kernel's cumulative run delay.
    pub(super) fn note_run_delay(&mut self, t_ns: u64, delay_ns: u64) {
        self.run_delays = match self.run_delays {
            Some((first, (_, last))) if delay_ns >= last => Some((first, (t_ns, delay_ns))),
            _ => Some(((t_ns, delay_ns), (t_ns, delay_ns))),
        };
    }

    /// Closes the thread: a pending sample is settled, and its last run gets one interval.
    pub(super) fn close(mut self, totals: &mut Totals, interval_ns: u64) -> ThreadSummary {
        self.settle(totals, None);
        self.summary.cpu_wait =
            self.run_delays
                .filter(|((t0, _), (t1, _))| t1 > t0)
                .map(|((t0, d0), (t1, d1))| CpuWait {
                    span_ns: t1 - t0,
                    waited_ns: d1 - d0,
                });
        self.close_stall();
        if let Some(last) = self.summary.timeline.last_mut() {
            last.end_ns = last.end_ns.saturating_add(interval_ns);
        }
        self.summary
    }
}
