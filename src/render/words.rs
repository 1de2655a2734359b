//! Phrases the renderers share, so the terminal and the HTML page say the same thing.

use crate::model::ThreadState;
use crate::report::{GilHolder, GilUse, Group, LineGil, Process, SHORT_OF_CPUS_MIN};

pub use crate::words::{
    file_name, interpreter, of_cores, pct, place, short_command, thread_label, thread_name,
};

/// The state columns of the thread tables (the terminal report's and `gilscope top`'s), in
/// the report's order: LOCK counts the program's locks and, on a free-threaded build, objects'
/// locks.
pub const STATE_COLUMNS: [(&[ThreadState], &str); 7] = [
    (&[ThreadState::Gil], "GIL"),
    (&[ThreadState::GilWait], "WAIT"),
    (&[ThreadState::Handoff], "H-O"),
    (&[ThreadState::Native], "NAT"),
    (&[ThreadState::Io], "I/O"),
    (&[ThreadState::Sleep], "SLP"),
    (&[ThreadState::Lock, ThreadState::ObjectLock], "LOCK"),
];

/// Where a GIL holder was: `work (app.py:8)`, or `native code` without a Python frame.
pub fn holder_place(h: &GilHolder) -> String {
    match (&h.function, &h.file, h.line) {
        (Some(function), Some(file), Some(line)) => place(function, file, line),
        _ => "native code".into(),
    }
}

/// A line's waits for the GIL are worth a mention from this share of its time.
const WAITING_MENTIONED: f64 = 0.2;

/// What a line's GIL use means for threads: `releases the GIL 97% of its running time:
/// threads help here`, with its waits where they matter.
pub fn gil_use(line: &LineGil) -> String {
    let running = pct(line.released_running);
    let held = pct(1.0 - line.released_running);
    let judged = match line.kind {
        GilUse::Released => {
            format!("releases the GIL {running} of its running time: threads help here")
        }
        GilUse::Held => {
            format!("holds the GIL {held} of its running time: threads do not help here")
        }
        GilUse::Mixed => {
            format!("releases the GIL {running} of its running time: threads help in part")
        }
        GilUse::Waited => return "only seen waiting for the GIL: threads do not help here".into(),
        GilUse::ObjectLocked => {
            return format!(
                "waits for an object's lock {} of its time: threads take turns here",
                pct(line.object_lock)
            )
        }
    };
    if line.waiting >= WAITING_MENTIONED {
        format!(
            "{judged} (it waited for the GIL {} of its time)",
            pct(line.waiting)
        )
    } else {
        judged
    }
}

/// A group of several threads as a row names it: `crunch-* x4`, and for threads that come and
/// go `Thread-* (process_request_thread) x712 178/s` (started a second).
pub fn group_label(g: &Group) -> String {
    match g.started_per_s {
        Some(rate) => format!("{} x{} {rate:.0}/s", g.label, g.tids.len()),
        None => format!("{} x{}", g.label, g.tids.len()),
    }
}

/// The line as the report names it: its source text where read, else where it is.
pub fn line_text(line: &LineGil) -> String {
    match &line.source {
        Some(source) => format!("`{source}`"),
        None => format!("`{}`", line.function),
    }
}

/// What the push to Pyroscope delivered, in one sentence.
/// "1.9 threads waiting for a CPU", when enough were to say the machine was short of cores.
pub fn short_of_cpus(process: &Process) -> Option<String> {
    process
        .threads_waiting_for_cpu
        .filter(|&w| w >= SHORT_OF_CPUS_MIN)
        .map(|w| format!("{w:.1} threads waiting for a CPU"))
}

pub fn push_summary(push: &crate::report::PushSummary) -> String {
    let mut text = format!(
        "{} of {} windows ({} s each) pushed to {}",
        push.windows_pushed,
        push.windows_pushed + push.windows_dropped,
        push.interval_s,
        push.url
    );
    if push.windows_dropped > 0 {
        text += &format!(
            "; {} dropped after {} failed requests",
            push.windows_dropped, push.failed_requests
        );
    } else if push.failed_requests > 0 {
        text += &format!(" ({} requests retried)", push.failed_requests);
    }
    if let (Some(error), true) = (&push.last_error, push.failed_requests > 0) {
        text += &format!(" (last: {error})");
    }
    text
}
