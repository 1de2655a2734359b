//! What `gilscope top` shows, as data: built from snapshots of the analysis (a clone of the
//! aggregator, finished), so it is tested on replayed recordings without a terminal.

use std::collections::HashMap;

use crate::analysis::{Analysis, Window};
use crate::diagnosis::VerdictKind;
use crate::model::{PerState, Pid, ThreadState, Tid};
use crate::report::{self, HotFunction, Report, States};

/// Which time the thread rows and the GIL figures cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Since the previous snapshot (about a second).
    Window,
    /// Since sampling began.
    SinceStart,
}

/// The column the thread rows are sorted by, largest first (the name: alphabetically).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    GilWait,
    Gil,
    Native,
    Cpu,
    Name,
}

impl SortKey {
    /// The next key, for the `s` key.
    pub fn next(self) -> SortKey {
        match self {
            SortKey::GilWait => SortKey::Gil,
            SortKey::Gil => SortKey::Native,
            SortKey::Native => SortKey::Cpu,
            SortKey::Cpu => SortKey::Name,
            SortKey::Name => SortKey::GilWait,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SortKey::GilWait => "GIL wait",
            SortKey::Gil => "GIL",
            SortKey::Native => "native",
            SortKey::Cpu => "CPU",
            SortKey::Name => "name",
        }
    }
}

/// The viewer's choices: what to show and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Controls {
    pub scope: Scope,
    pub sort: SortKey,
    /// The screen keeps its last picture while sampling goes on.
    pub frozen: bool,
}

impl Default for Controls {
    fn default() -> Self {
        Controls {
            scope: Scope::Window,
            sort: SortKey::GilWait,
            frozen: false,
        }
    }
}

/// The cumulative counters a window's figures are the difference of.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Per (pid, tid): time per state (ns) and CPU seconds.
    threads: HashMap<(Pid, Tid), (PerState<u64>, f64)>,
    gil_locked: u64,
    gil_readings: u64,
    switches: u64,
    cpu_ns: u64,
    /// How long the run had gone at the snapshot, in ns.
    span_ns: u64,
}

impl Snapshot {
    pub fn of(analysis: &Analysis) -> Snapshot {
        let sum = |f: fn(&Window) -> u64| analysis.windows.iter().map(f).sum::<u64>();
        Snapshot {
            threads: analysis
                .threads
                .iter()
                .map(|t| ((t.pid, t.tid), (t.time_ns, t.cpu_s)))
                .collect(),
            gil_locked: sum(|w| w.gil_locked),
            gil_readings: sum(|w| w.gil_readings),
            switches: sum(|w| w.switches),
            cpu_ns: sum(|w| w.cpu_ns),
            span_ns: (analysis.duration_s * 1e9) as u64,
        }
    }
}

/// One thread's row.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadRow {
    pub name: Option<String>,
    pub pid: Pid,
    pub tid: Tid,
    pub states: States,
    pub cpu_s: f64,
}

/// Everything on the screen.
#[derive(Debug, Clone, PartialEq)]
pub struct TopView {
    pub command: String,
    pub python: Option<String>,
    pub pid: Pid,
    pub elapsed_s: f64,
    pub samples: u64,
    pub late: u64,
    pub controls: Controls,
    pub gil_held: Option<f64>,
    pub switches_per_s: Option<f64>,
    pub cores_used: f64,
    pub cores: u32,
    pub rows: Vec<ThreadRow>,
    /// Since the start, whatever the scope.
    pub hot_gil: Vec<HotFunction>,
    pub hot_gil_wait: Vec<HotFunction>,
    pub verdict: Option<(VerdictKind, String)>,
}

/// Hot functions the screen lists per state.
const HOT_SHOWN: usize = 3;

/// The view of `analysis` (whose counters are `now`), with the window measured from
/// `previous`.
pub fn build(
    analysis: &Analysis,
    now: &Snapshot,
    previous: &Snapshot,
    controls: Controls,
) -> TopView {
    let report = report::diagnosed(analysis);
    let (gil_held, switches_per_s, cores_used, mut rows) = match controls.scope {
        Scope::SinceStart => (
            report.process.gil_held,
            report.process.gil_switches_per_s,
            report.process.cpu_cores_used,
            since_start_rows(&report),
        ),
        Scope::Window => window_figures(now, previous, &report),
    };
    sort(&mut rows, controls.sort);
    let hot = |list: &[HotFunction]| list.iter().take(HOT_SHOWN).cloned().collect();
    TopView {
        command: report.target.command.clone(),
        python: report.target.python.clone(),
        pid: report.target.pid,
        elapsed_s: report.duration_s,
        samples: report.samples,
        late: report.late_samples,
        controls,
        gil_held,
        switches_per_s,
        cores_used,
        cores: report.process.cores,
        rows,
        hot_gil: hot(&report.hot.gil),
        hot_gil_wait: hot(&report.hot.gil_wait),
        verdict: report.verdict.map(|v| (v.kind, v.headline)),
    }
}

fn since_start_rows(report: &Report) -> Vec<ThreadRow> {
    report
        .threads
        .iter()
        .map(|t| ThreadRow {
            name: t.name.clone(),
            pid: t.pid,
            tid: t.tid,
            states: t.states,
            cpu_s: t.cpu_s,
        })
        .collect()
}

/// The GIL held, hand-offs per second, cores used and thread rows between two snapshots.
/// Threads seen in neither window are left out.
fn window_figures(
    now: &Snapshot,
    previous: &Snapshot,
    report: &Report,
) -> (Option<f64>, Option<f64>, f64, Vec<ThreadRow>) {
    let seconds = now.span_ns.saturating_sub(previous.span_ns) as f64 / 1e9;
    let readings = now.gil_readings.saturating_sub(previous.gil_readings);
    let gil_held = (readings > 0)
        .then(|| now.gil_locked.saturating_sub(previous.gil_locked) as f64 / readings as f64);
    let per_second = |n: u64| (seconds > 0.0).then(|| n as f64 / seconds);
    let switches = per_second(now.switches.saturating_sub(previous.switches));
    let cores = per_second(now.cpu_ns.saturating_sub(previous.cpu_ns)).unwrap_or(0.0) / 1e9;
    let rows = report
        .threads
        .iter()
        .filter_map(|t| {
            let (time, cpu_s) = now.threads.get(&(t.pid, t.tid))?;
            let (before, cpu_before) = previous
                .threads
                .get(&(t.pid, t.tid))
                .copied()
                .unwrap_or_default();
            let delta = PerState::from_fn(|s| time[s].saturating_sub(before[s]));
            (delta.total() > 0).then(|| ThreadRow {
                name: t.name.clone(),
                pid: t.pid,
                tid: t.tid,
                states: delta.shares(),
                cpu_s: cpu_s - cpu_before,
            })
        })
        .collect();
    (gil_held, switches, cores, rows)
}

fn sort(rows: &mut [ThreadRow], key: SortKey) {
    let value = |r: &ThreadRow| match key {
        SortKey::GilWait => r.states.get(ThreadState::GilWait),
        SortKey::Gil => r.states.get(ThreadState::Gil),
        SortKey::Native => r.states.get(ThreadState::Native),
        SortKey::Cpu => r.cpu_s,
        SortKey::Name => 0.0,
    };
    rows.sort_by(|a, b| {
        value(b)
            .total_cmp(&value(a))
            .then_with(|| (&a.name, a.tid).cmp(&(&b.name, b.tid)))
    });
}
