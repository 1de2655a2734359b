//! The timeline in the Chrome trace-event format (JSON object form), for Perfetto and
//! `chrome://tracing`: a track per thread whose slices are its states, a "GIL" track showing
//! the holder, and counters for cores used and GIL hand-offs per second. Times come from the
//! samples.

use std::collections::HashMap;
use std::io::{self, Write};

use serde_json::{json, Value};

use super::colors::style;
use super::stacks::{frame_label, thread_label};
use crate::analysis::{Analysis, WINDOW_NS};

/// The synthetic track id of the GIL (no kernel thread has id 0).
pub const GIL_TRACK: u32 = 0;

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

pub fn render(analysis: &Analysis, out: &mut impl Write) -> io::Result<()> {
    let pid = analysis.target.as_ref().map_or(0, |t| t.pid);
    let command = analysis
        .target
        .as_ref()
        .map_or(String::new(), |t| t.command.join(" "));
    let mut events: Vec<Value> = vec![
        json!({"name": "process_name", "ph": "M", "pid": pid, "tid": GIL_TRACK,
               "args": {"name": format!("{command} (PID {pid})")}}),
        json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": GIL_TRACK,
               "args": {"name": "GIL"}}),
        json!({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": GIL_TRACK,
               "args": {"sort_index": -1}}),
    ];
    let mut names: HashMap<u32, &str> = HashMap::new();
    for (i, thread) in analysis.threads.iter().enumerate() {
        names.insert(thread.tid, &thread.name);
        events.push(
            json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": thread.tid,
                           "args": {"name": thread_label(&thread.name, thread.tid)}}),
        );
        events.push(
            json!({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": thread.tid,
                           "args": {"sort_index": i}}),
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
                               "pid": pid, "tid": thread.tid, "cname": style(seg.state).chrome,
                               "args": args}));
        }
    }
    for seg in analysis.gil_timeline.iter().filter(|s| s.locked) {
        let name = match seg.holder {
            Some(tid) => format!(
                "held by {}",
                thread_label(names.get(&tid).copied().unwrap_or(""), tid)
            ),
            None => "held".to_string(),
        };
        events.push(json!({"name": name, "cat": "gil", "ph": "X",
                           "ts": us(seg.start_ns), "dur": us(seg.end_ns - seg.start_ns),
                           "pid": pid, "tid": GIL_TRACK, "cname": style(crate::model::ThreadState::Gil).chrome,
                           "args": {"holder_tid": seg.holder}}));
    }
    let window_s = WINDOW_NS as f64 / 1e9;
    for w in &analysis.windows {
        events.push(
            json!({"name": "cores used", "ph": "C", "ts": us(w.start_ns), "pid": pid,
                           "args": {"cores": w.cpu_ns as f64 / 1e9 / window_s}}),
        );
        events.push(
            json!({"name": "GIL hand-offs/s", "ph": "C", "ts": us(w.start_ns), "pid": pid,
                           "args": {"per_s": w.switches as f64 / window_s}}),
        );
    }
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
