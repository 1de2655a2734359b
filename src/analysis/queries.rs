//! Questions asked of a finished [`Analysis`]: the hot functions of a state (and, for GIL
//! waits, who held the GIL meanwhile), how each busy line uses the GIL, the code that kept an
//! event loop busy. The diagnosis and the report both ask them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Analysis, EventLoop};
use crate::known_frames::loop_culprit;
use crate::model::{Frame, Pid, ThreadState, Tid};

/// The functions (innermost Python frame) most often seen in a state. `fraction` is the share
/// of all thread-samples in that state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotFunction {
    pub function: String,
    pub file: String,
    pub line: i32,
    pub fraction: f64,
    /// For a function waiting for the GIL: who held it in those same samples, most first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<Vec<GilHolder>>,
}

/// A thread that held the GIL while another waited, and where it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GilHolder {
    #[serde(with = "crate::model::empty_as_none")]
    pub thread: Option<String>,
    pub tid: Tid,
    /// The holder's innermost Python frame; `None` when it had none (native code).
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<i32>,
    /// Share of the waiting function's GIL-wait samples. The shares sum to less than 1 where
    /// the GIL was between holders or held by a thread gilscope could not map.
    pub fraction: f64,
}

/// How many holders (thread and place) each waiting function lists.
pub const HELD_BY_LIMIT: usize = 5;

/// The hot functions of `state`, most frequent first.
pub fn hot_functions(analysis: &Analysis, state: ThreadState, limit: usize) -> Vec<HotFunction> {
    let mut by_frame: HashMap<u32, u64> = HashMap::new();
    let total: u64 = analysis.threads.iter().map(|t| t.counts[state]).sum();
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
                held_by: (state == ThreadState::GilWait).then(|| gil_holders(analysis, id, n)),
            })
        })
        .collect()
}

/// Who held the GIL while threads waited in frame `waiting` (`samples` waiting samples there).
fn gil_holders(analysis: &Analysis, waiting: u32, samples: u64) -> Vec<GilHolder> {
    let mut by_holder: HashMap<(Pid, Tid, Option<u32>), u64> = HashMap::new();
    for thread in &analysis.threads {
        for (key, &n) in &thread.gil_wait_holders {
            if key.waiting_frame == waiting {
                *by_holder
                    .entry((thread.pid, key.holder_tid, key.holder_frame))
                    .or_insert(0) += n;
            }
        }
    }
    let mut holders: Vec<_> = by_holder.into_iter().collect();
    holders.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    holders
        .into_iter()
        .take(HELD_BY_LIMIT)
        .map(|((pid, tid, frame), n)| {
            let frame = frame.and_then(|id| analysis.frames.get(id as usize));
            GilHolder {
                thread: analysis
                    .threads_of(pid)
                    .find(|t| t.tid == tid)
                    .and_then(|t| t.name.clone()),
                tid,
                function: frame.map(|f| f.function.clone()),
                file: frame.map(|f| f.file.clone()),
                line: frame.map(|f| f.line),
                fraction: n as f64 / samples.max(1) as f64,
            }
        })
        .collect()
}

/// A line where threads spent their time, and how it used the GIL: does running it in threads
/// help (the GIL released) or not (held, or waited for)?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineGil {
    pub function: String,
    pub file: String,
    pub line: i32,
    /// The line's text, read from the target's file; `None` where it could not be read.
    pub source: Option<String>,
    /// Thread-seconds spent on the line: holding the GIL, waiting for it, or without it.
    pub seconds: f64,
    /// Shares of `seconds`: without the GIL (native code, I/O), holding it, waiting for it.
    pub released: f64,
    pub held: f64,
    pub waiting: f64,
    /// Share of `seconds` spent waiting for (or spinning on) an object's lock: a free-threaded
    /// build's threads taking turns on a shared dict, list or set at this line.
    #[serde(default)]
    pub object_lock: f64,
    /// Share of the time the line ran (released or held, not waited) with the GIL released:
    /// whether the line itself releases the GIL, whatever other threads make it wait.
    pub released_running: f64,
    pub kind: GilUse,
}

/// What a line's GIL use means for threads, judged on the time it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GilUse {
    /// Mostly runs with the GIL released: threads run it in parallel.
    Released,
    /// Mostly runs holding the GIL: threads take turns on it.
    Held,
    /// Neither.
    Mixed,
    /// Seen only waiting for the GIL: its thread wanted to run Python there.
    Waited,
    /// Free-threaded builds: threads wait here for an object's lock (at least
    /// [`OBJECT_LOCK_LINE_MIN`] of the line's time): they take turns, more threads do not help.
    ObjectLocked,
}

/// A line is [`GilUse::ObjectLocked`] from this share of its time waiting for objects' locks.
pub const OBJECT_LOCK_LINE_MIN: f64 = 0.2;

/// A line is [`GilUse::Released`] (or [`GilUse::Held`]) from this share of its running time.
pub const GIL_USE_CLEAR: f64 = 2.0 / 3.0;
/// Below this share of its time running, a line is judged [`GilUse::Waited`].
const RUNNING_MIN: f64 = 0.05;
/// How many lines [`gil_by_line`] lists.
pub const GIL_LINES_LIMIT: usize = 20;

/// The states that tell how a line uses the GIL (or, free-threaded, an object's lock).
/// Sleep, the program's own locks and idle waits say nothing about it and are left out.
const LINE_STATES: [ThreadState; 5] = [
    ThreadState::Gil,
    ThreadState::GilWait,
    ThreadState::Native,
    ThreadState::Io,
    ThreadState::ObjectLock,
];

/// The lines (of innermost frames) where threads spent the most time holding, waiting for or
/// running without the GIL, most first. Each is named by the function busiest on it.
pub fn gil_by_line(analysis: &Analysis, limit: usize) -> Vec<LineGil> {
    // Per frame first, then per (file, line): one line can hold several functions (a
    // generator expression and the function around it).
    let mut by_frame: HashMap<u32, [u64; 5]> = HashMap::new();
    for thread in &analysis.threads {
        for (&(frame, state), &ns) in &thread.line_time_ns {
            if let Some(i) = LINE_STATES.iter().position(|&s| s == state) {
                by_frame.entry(frame).or_default()[i] += ns;
            }
        }
    }
    let mut by_line: HashMap<(&str, i32), LineTally> = HashMap::new();
    for (id, ns) in by_frame {
        let Some(frame) = analysis.frames.get(id as usize) else {
            continue;
        };
        let tally = by_line.entry((&frame.file, frame.line)).or_default();
        let total: u64 = ns.iter().sum();
        if total > tally.top_frame_ns || (total == tally.top_frame_ns && Some(id) < tally.top) {
            (tally.top, tally.top_frame_ns) = (Some(id), total);
        }
        for (sum, n) in tally.ns.iter_mut().zip(ns) {
            *sum += n;
        }
    }
    let mut lines: Vec<(u32, [u64; 5], u64)> = by_line
        .into_values()
        .filter_map(|t| Some((t.top?, t.ns, t.ns.iter().sum::<u64>())))
        .filter(|&(_, _, total)| total > 0)
        .collect();
    lines.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    lines
        .into_iter()
        .take(limit)
        .filter_map(|(id, ns, total)| line_gil(analysis, id, ns, total))
        .collect()
}

/// One line's time per [`LINE_STATES`], and the frame that spent the most of it there.
#[derive(Debug, Default)]
struct LineTally {
    ns: [u64; 5],
    top: Option<u32>,
    top_frame_ns: u64,
}

/// A line's entry, named by frame `id` (the one busiest there).
fn line_gil(analysis: &Analysis, id: u32, ns: [u64; 5], total: u64) -> Option<LineGil> {
    let frame = analysis.frames.get(id as usize)?;
    let [gil, wait, native, io, object_lock] = ns;
    let share = |ns: u64| ns as f64 / total as f64;
    let (released, held, waiting) = (share(native + io), share(gil), share(wait));
    let object_lock = share(object_lock);
    let running = released + held;
    let released_running = if running > 0.0 {
        released / running
    } else {
        0.0
    };
    Some(LineGil {
        function: frame.function.clone(),
        file: frame.file.clone(),
        line: frame.line,
        source: analysis.sources.get(&id).cloned(),
        seconds: total as f64 / 1e9,
        released,
        held,
        waiting,
        object_lock,
        released_running,
        kind: if object_lock >= OBJECT_LOCK_LINE_MIN {
            GilUse::ObjectLocked
        } else if running < RUNNING_MIN {
            GilUse::Waited
        } else if released_running >= GIL_USE_CLEAR {
            GilUse::Released
        } else if released_running <= 1.0 - GIL_USE_CLEAR {
            GilUse::Held
        } else {
            GilUse::Mixed
        },
    })
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
