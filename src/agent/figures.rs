//! What one window of one process comes to, in the units the metrics count: seconds per
//! thread group and state, GIL hand-offs, cores, and the verdict's kind.

use crate::analysis::Analysis;
use crate::diagnosis::VerdictKind;
use crate::model::{PerState, ThreadState};

/// A thread group's time in one window.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSeconds {
    /// The group's label (`worker-*`, `MainThread`): bounded, whatever the threads' ids.
    pub label: String,
    /// Thread-seconds per state, summed over the group's threads.
    pub seconds: PerState<f64>,
}

/// One window of one process.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowFigures {
    pub duration_s: f64,
    pub samples: u64,
    pub groups: Vec<GroupSeconds>,
    /// Share of samples the GIL was held (`None`: not visible, e.g. free-threaded).
    pub gil_held: Option<f64>,
    /// GIL hand-offs counted over the window.
    pub handoffs: Option<f64>,
    pub cores_used: f64,
    pub verdict: VerdictKind,
}

impl WindowFigures {
    pub fn of(analysis: &Analysis, verdict: VerdictKind) -> WindowFigures {
        let mut groups: Vec<GroupSeconds> = Vec::new();
        for group in &analysis.groups {
            let seconds = PerState::from_fn(|state| group.time_ns[state] as f64 / 1e9);
            // Two groups of one label (a pool restarted) are one series.
            match groups.iter_mut().find(|g| g.label == group.label) {
                Some(same) => {
                    for state in ThreadState::ALL {
                        same.seconds[state] += seconds[state];
                    }
                }
                None => groups.push(GroupSeconds {
                    label: group.label.clone(),
                    seconds,
                }),
            }
        }
        WindowFigures {
            duration_s: analysis.duration_s,
            samples: analysis.ticks,
            groups,
            gil_held: analysis.gil_held,
            handoffs: analysis
                .gil_switches_per_s
                .map(|per_s| per_s * analysis.duration_s),
            cores_used: analysis.cpu_cores_used,
            verdict,
        }
    }

    /// Thread-seconds the process's threads spent in `state`.
    pub fn total(&self, state: ThreadState) -> f64 {
        self.groups.iter().map(|g| g.seconds[state]).sum()
    }
}
