//! The timeline in the Chrome trace-event format (JSON object form), for Perfetto and
//! `chrome://tracing`: a group per process, with a track per thread whose slices are its
//! states and a "GIL" track showing the holder; counters for cores used and GIL hand-offs per
//! second. Times come from the samples.

use std::collections::HashMap;
use std::io::{self, Write};

use serde_json::{json, Value};

use super::colors::style;
use super::stacks::{frame_label, thread_label};
use crate::analysis::{Analysis, ProcessSummary, ThreadSummary};
use crate::known_frames::ProcessRole;
use crate::model::{Pid, ThreadState, Tid};

/// The synthetic track id of the GIL (no kernel thread has id 0).
pub const GIL_TRACK: u32 = 0;

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

pub fn render(analysis: &Analysis, out: &mut impl Write) -> io::Result<()> {
    let mut events: Vec<Value> = Vec::new();
    let names: HashMap<(Pid, Tid), Option<&str>> = analysis
        .threads
        .iter()
        .map(|t| ((t.pid, t.tid), t.name.as_deref()))
        .collect();
    // One group per process: its GIL track first, then its threads.
    for (p, process) in analysis.processes.iter().enumerate() {
        process_tracks(&mut events, process, p);
        for (i, thread) in analysis.threads_of(process.pid).enumerate() {
            thread_events(&mut events, analysis, thread, i);
        }
        gil_events(&mut events, process, &names);
    }
    counter_events(&mut events, analysis);
    let trace = json!({
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "producer": concat!("gilscope ", env!("CARGO_PKG_VERSION")),
            "python": analysis.target.as_ref().map(|t| t.python.clone()),
            "timeline_truncated": analysis.timeline_truncated,
        },
    });
    serde_json::to_writer(&mut *out, &trace)?;
    writeln!(out)
}

/// A process's group, sorted `index`th, with its GIL track where it runs Python.
fn process_tracks(events: &mut Vec<Value>, process: &ProcessSummary, index: usize) {
    let pid = process.pid;
    let label = match process.role {
        ProcessRole::Main => format!("{} (PID {pid})", process.command.join(" ")),
        role => format!("{}: {} (PID {pid})", role.name(), process.command.join(" ")),
    };
    events.push(
        json!({"name": "process_name", "ph": "M", "pid": pid, "tid": GIL_TRACK,
                       "args": {"name": label}}),
    );
    events.push(json!({"name": "process_sort_index", "ph": "M", "pid": pid,
                       "tid": GIL_TRACK, "args": {"sort_index": index}}));
    if process.python.is_some() {
        events.push(
            json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": GIL_TRACK,
                           "args": {"name": "GIL"}}),
        );
        events.push(json!({"name": "thread_sort_index", "ph": "M", "pid": pid,
                           "tid": GIL_TRACK, "args": {"sort_index": -1}}));
    }
}

/// A thread's track, sorted `index`th in its process: one slice per state segment.
fn thread_events(
    events: &mut Vec<Value>,
    analysis: &Analysis,
    thread: &ThreadSummary,
    index: usize,
) {
    let (pid, tid) = (thread.pid, thread.tid);
    events.push(
        json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                       "args": {"name": thread_label(thread.name.as_deref(), tid)}}),
    );
    events.push(
        json!({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid,
                       "args": {"sort_index": index}}),
    );
    for seg in &thread.timeline {
        let mut args = json!({"state": seg.state.name()});
        if let Some(frame) = seg.stack.and_then(|s| analysis.top_frame(s)) {
            args["function"] = json!(frame.function);
            args["file"] = json!(frame.file);
            args["line"] = json!(frame.line);
            args["frame"] = json!(frame_label(frame));
        }
        events.push(json!({"name": seg.state.name(), "cat": "state", "ph": "X",
                           "ts": us(seg.start_ns), "dur": us(seg.end_ns - seg.start_ns),
                           "pid": pid, "tid": tid, "cname": style(seg.state).chrome,
                           "args": args}));
    }
}

/// The process's GIL track: one slice per stretch it was held, named by its holder.
fn gil_events(
    events: &mut Vec<Value>,
    process: &ProcessSummary,
    names: &HashMap<(Pid, Tid), Option<&str>>,
) {
    let pid = process.pid;
    for seg in process.gil_timeline.iter().filter(|s| s.locked) {
        let name = match seg.holder {
            Some(tid) => format!(
                "held by {}",
                thread_label(names.get(&(pid, tid)).copied().flatten(), tid)
            ),
            None => "held".to_string(),
        };
        events.push(json!({"name": name, "cat": "gil", "ph": "X",
                           "ts": us(seg.start_ns), "dur": us(seg.end_ns - seg.start_ns),
                           "pid": pid, "tid": GIL_TRACK, "cname": style(ThreadState::Gil).chrome,
                           "args": {"holder_tid": seg.holder}}));
    }
}

/// The whole tree's cores and GIL hand-offs per window, on the root's group.
fn counter_events(events: &mut Vec<Value>, analysis: &Analysis) {
    let pid = analysis.root().map_or(Pid::default(), |p| p.pid);
    for w in &analysis.windows {
        let window_s = w.length_ns as f64 / 1e9;
        events.push(
            json!({"name": "cores used", "ph": "C", "ts": us(w.start_ns), "pid": pid,
                           "args": {"cores": w.cpu_ns as f64 / 1e9 / window_s}}),
        );
        events.push(
            json!({"name": "GIL hand-offs/s", "ph": "C", "ts": us(w.start_ns), "pid": pid,
                           "args": {"per_s": w.switches as f64 / window_s}}),
        );
    }
}
