//! The rule for a run dominated by the garbage collector.

use crate::analysis::queries::HotFunction;
use crate::model::GilMode;

use super::facts::Facts;
use super::findings::{Assumption, Finding, Forecast, GcPauses};
use super::GC_SHARE_MIN;

/// The allocating places named, at most.
const ALLOCATING_LIMIT: usize = 3;

/// The collector collected in at least [`GC_SHARE_MIN`] of the root process's samples.
pub(super) fn gc_pauses(f: &Facts) -> Option<Finding> {
    let a = f.analysis;
    let root = a.root()?;
    let share = root.gc_collecting.filter(|&s| s >= GC_SHARE_MIN)?;
    let total: u64 = root.gc_frames.values().sum();
    let mut frames: Vec<(u32, u64)> = root.gc_frames.iter().map(|(&f, &n)| (f, n)).collect();
    frames.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    let allocating = frames
        .into_iter()
        .take(ALLOCATING_LIMIT)
        .filter_map(|(id, n)| {
            let frame = a.frames.get(id as usize)?;
            Some(HotFunction {
                function: frame.function.clone(),
                file: frame.file.clone(),
                line: frame.line,
                fraction: n as f64 / total.max(1) as f64,
                held_by: None,
            })
        })
        .collect();
    Some(Finding::GcPauses(GcPauses {
        share,
        stops_the_world: a
            .target
            .as_ref()
            .is_some_and(|t| t.gil == GilMode::Disabled),
        world_stopped: root.world_stopped,
        load: f.load(),
        allocating,
        forecast: Forecast {
            processes: Some(1.0),
            threads: Some(1.0),
            free_threaded: Some(1.0),
            fix: None,
            assumptions: vec![Assumption::GcRemoved { share }],
        },
    }))
}
