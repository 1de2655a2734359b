//! `run --fail-on KIND[,KIND...]` and `--max-gil-wait FRACTION`: a gate for CI, read off the
//! finished report. When it trips, gilscope exits with [`GATE_EXIT_CODE`] after the report is
//! out; otherwise with the target's own status.

use std::fmt;

use crate::diagnosis::VerdictKind;
use crate::model::ThreadState;
use crate::report::Report;
use crate::words::pct;

/// The exit status of a tripped gate: distinct from gilscope's own failures (2).
pub const GATE_EXIT_CODE: i32 = 3;

/// What trips the gate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gate {
    pub fail_on: Vec<VerdictKind>,
    /// The largest share of its time any thread may wait for the GIL.
    pub max_gil_wait: Option<f64>,
}

/// Why the gate tripped.
#[derive(Debug, Clone, PartialEq)]
pub enum Tripped {
    Verdict(VerdictKind),
    GilWait {
        thread: String,
        share: f64,
        max: f64,
    },
}

impl fmt::Display for Tripped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tripped::Verdict(kind) => {
                write!(f, "the verdict is {}, listed in --fail-on", kind.name())
            }
            Tripped::GilWait { thread, share, max } => write!(
                f,
                "{thread} waited {} of its time for the GIL, more than --max-gil-wait {max}",
                pct(*share)
            ),
        }
    }
}

impl Gate {
    /// The first reason the report trips the gate, if any.
    pub fn check(&self, report: &Report) -> Option<Tripped> {
        let kind = report.verdict.as_ref().map(|v| v.kind);
        if let Some(kind) = kind.filter(|k| self.fail_on.contains(k)) {
            return Some(Tripped::Verdict(kind));
        }
        let max = self.max_gil_wait?;
        report
            .threads
            .iter()
            .filter(|t| t.states[ThreadState::GilWait] > max)
            .max_by(|a, b| {
                a.states[ThreadState::GilWait].total_cmp(&b.states[ThreadState::GilWait])
            })
            .map(|t| Tripped::GilWait {
                thread: crate::words::thread_label(t.name.as_deref(), t.tid),
                share: t.states[ThreadState::GilWait],
                max,
            })
    }
}
