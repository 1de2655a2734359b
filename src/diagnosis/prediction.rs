//! How much faster the fix should make the run: Amdahl's law on what was measured.

use crate::analysis::Window;
use crate::model::ThreadState::{Gil, GilWait, Handoff, Native};

use super::facts::{mean_of, threads_in, Facts, Unit};
use super::findings::{Assumption, Forecast};
use super::{FREE_THREADED_EFFICIENCY, WORKER_STARTUP_S};

/// Amdahl's law on the measured run: the part of the run where several threads were busy is
/// spread over the cores; the rest stays serial.
pub(super) fn predict(f: &Facts, python: &[&Unit]) -> Forecast {
    let a = f.analysis;
    let cores = f.cores as f64;
    let n = threads_in(python).round().max(1.0);
    // Busy part: the CPU work W (core-seconds) must fit on the cores, and no thread can finish
    // faster than its own work without the GIL wait.
    let parallel = parallel_fraction(&a.windows, f.cores);
    let total = a.duration_s.max(1e-9);
    let busy = total * parallel;
    let serial = total - busy;
    let work_core_s = f.cores_used() * busy;
    let longest_thread = python
        .iter()
        .map(|t| 1.0 - t.share(&[GilWait, Handoff]))
        .fold(0.0, f64::max)
        * busy;
    let workers = n.min(cores);
    let busy_processes = (work_core_s / cores).max(longest_thread);
    let startup = WORKER_STARTUP_S * workers;
    let processes = total / (serial + busy_processes + startup);
    let python_share = mean_of(python, &[Gil]) / mean_of(python, &[Gil, Native]).max(1e-9);
    let ft_work = work_core_s * (1.0 + python_share * (1.0 / FREE_THREADED_EFFICIENCY - 1.0));
    let free_threaded = total / (serial + (ft_work / cores).max(longest_thread));
    Forecast {
        processes: Some(round2(processes)),
        threads: Some(1.0),
        free_threaded: Some(round2(free_threaded)),
        fix: None,
        assumptions: vec![
            Assumption::ParallelShare { parallel, workers },
            Assumption::EvenSplit,
            Assumption::WorkerStartup,
            Assumption::PicklingUnmeasured,
            Assumption::FreeThreadedSpeed,
        ],
    }
}

pub(super) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Share of the run's windows in which, on average, at least two threads wanted a CPU
/// (held or waited for the GIL, or ran native code): the part that can spread over cores.
pub(super) fn parallel_fraction(windows: &[Window], cores: u32) -> f64 {
    let ticks: u64 = windows.iter().map(|w| w.ticks).sum();
    if ticks == 0 || cores < 2 {
        return 0.0;
    }
    let parallel: u64 = windows
        .iter()
        .filter(|w| {
            let demand = w.counts.sum_of(&[Gil, GilWait, Handoff, Native]);
            w.ticks > 0 && demand as f64 / w.ticks as f64 >= 1.5
        })
        .map(|w| w.ticks)
        .sum();
    parallel as f64 / ticks as f64
}
