//! What the agent publishes, shared between the sampling loop (which writes it once a
//! window) and the HTTP server (which reads it at each request): the metrics, and the list of
//! watched processes with each one's last report.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use super::identity::Identity;
use super::metrics::Metrics;
use crate::diagnosis::VerdictKind;
use crate::report::Report;

/// A watched process, as `/processes` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchedEntry {
    #[serde(flatten)]
    pub identity: Identity,
    pub python: String,
    pub watched_since_unix_s: f64,
    /// The rate it is sampled at now, after the CPU budget.
    pub rate_hz: f64,
    /// The verdict over the last window, once one closed.
    pub verdict: Option<VerdictSummary>,
    /// Where its last window's report (`gilscope.report/1`) is served.
    pub report: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerdictSummary {
    pub kind: VerdictKind,
    pub headline: String,
    pub window_s: f64,
}

/// A process the agent tried and could not watch, with the reason and its fix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnwatchedEntry {
    pub pid: u32,
    pub command: Vec<String>,
    pub reason: String,
    pub hint: String,
}

/// The agent's own account.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentEntry {
    pub rate_hz: f64,
    /// Idle processes are sampled every this many ticks (1: at the full rate).
    pub idle_every: u32,
    /// Cores the agent used over its last window.
    pub cpu_cores: f64,
    pub max_cpu_cores: f64,
    pub dropped_samples: u64,
}

#[derive(Debug, Default, Serialize)]
struct Listing {
    agent: AgentEntry,
    processes: Vec<WatchedEntry>,
    unwatched: Vec<UnwatchedEntry>,
}

#[derive(Debug, Default)]
struct Contents {
    agent: AgentEntry,
    watched: BTreeMap<u32, (WatchedEntry, Option<Arc<Report>>)>,
    unwatched: BTreeMap<u32, UnwatchedEntry>,
}

/// The published state.
#[derive(Default)]
pub struct Board {
    pub metrics: Metrics,
    contents: Mutex<Contents>,
}

impl Board {
    fn lock(&self) -> MutexGuard<'_, Contents> {
        // A panic elsewhere leaves whole entries behind: still worth serving.
        self.contents.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A process's entry, and its last report when a window closed (turned into JSON only
    /// when asked for, on the server's thread).
    pub fn publish(&self, entry: WatchedEntry, report: Option<Report>) {
        let mut contents = self.lock();
        let pid = entry.identity.pid;
        contents.unwatched.remove(&pid);
        let slot = contents.watched.entry(pid).or_insert((entry.clone(), None));
        slot.0 = entry;
        if let Some(report) = report {
            slot.1 = Some(Arc::new(report));
        }
    }

    pub fn remove(&self, pid: u32) {
        self.lock().watched.remove(&pid);
    }

    pub fn unwatched(&self, entry: UnwatchedEntry) {
        self.lock().unwatched.insert(entry.pid, entry);
    }

    /// Forgets unwatched processes that are gone.
    pub fn keep_unwatched(&self, alive: impl Fn(u32) -> bool) {
        self.lock().unwatched.retain(|&pid, _| alive(pid));
    }

    pub fn set_agent(&self, agent: AgentEntry) {
        self.lock().agent = agent;
    }

    /// `/processes`: the agent, the watched processes and the unwatched ones, as JSON.
    pub fn listing_json(&self) -> String {
        let contents = self.lock();
        let listing = Listing {
            agent: contents.agent.clone(),
            processes: contents.watched.values().map(|(e, _)| e.clone()).collect(),
            unwatched: contents.unwatched.values().cloned().collect(),
        };
        serde_json::to_string_pretty(&listing).unwrap_or_default()
    }

    /// `/processes/PID`: the last window's report of a watched process.
    pub fn report_json(&self, pid: u32) -> Option<String> {
        let report = self.lock().watched.get(&pid)?.1.clone()?;
        serde_json::to_string(&*report).ok()
    }
}
