//! How much faster the fix should make the run: Amdahl's law on what was measured.

use crate::analysis::Window;
use crate::model::ThreadState::{Gil, GilWait, Handoff, Native};

use super::facts::{mean_of, threads_in, Facts, Unit};
use super::findings::{Assumption, Forecast, StartMethod};
use super::FREE_THREADED_EFFICIENCY;

/// A pool's start, seconds: once per pool, then per worker, by start method, from the medians
/// of `bench/pool_startup.py` on 3.9, 3.12 and 3.14 (4 workers: fork 0.010-0.017 s in all,
/// forkserver 0.075-0.084 s cold, with bytecode caches written). Programs that import large
/// libraries take longer under forkserver: the server imports the main module.
const POOL_START_S: f64 = 0.05;
const FORK_WORKER_S: f64 = 0.003;
const FORKSERVER_WORKER_S: f64 = 0.006;

impl StartMethod {
    /// The default on Linux for a CPython version such as "3.14.1": forkserver from 3.14.
    pub(super) fn default_for(python: Option<&str>) -> StartMethod {
        let minor = python
            .and_then(|v| v.strip_prefix("3."))
            .and_then(|rest| rest.split('.').next())
            .and_then(|minor| minor.parse::<u32>().ok());
        match minor {
            Some(minor) if minor >= 14 => StartMethod::Forkserver,
            _ => StartMethod::Fork,
        }
    }

    /// Seconds a pool of `workers` takes to start.
    pub(super) fn startup_s(self, workers: f64) -> f64 {
        match self {
            StartMethod::Fork => FORK_WORKER_S * workers,
            StartMethod::Forkserver => POOL_START_S + FORKSERVER_WORKER_S * workers,
        }
    }
}

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
    let method = StartMethod::default_for(a.root().and_then(|p| p.python.as_deref()));
    let startup = method.startup_s(workers);
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
            Assumption::WorkerStartup {
                method,
                seconds: startup,
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_start_from_a_forkserver_from_3_14() {
        for (version, method) in [
            (Some("3.9.18"), StartMethod::Fork),
            (Some("3.13.5t"), StartMethod::Fork),
            (Some("3.14.10"), StartMethod::Forkserver),
            (Some("3.15.0a2"), StartMethod::Forkserver),
            (Some("not a version"), StartMethod::Fork),
            (None, StartMethod::Fork),
        ] {
            assert_eq!(StartMethod::default_for(version), method, "{version:?}");
        }
        let forked = StartMethod::Fork.startup_s(4.0);
        let served = StartMethod::Forkserver.startup_s(4.0);
        assert!(forked > 0.0 && forked < served, "{forked} {served}");
    }
}
