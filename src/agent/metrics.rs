//! The agent's Prometheus series, in the OpenMetrics text format (`prometheus-client`). Label
//! values are bounded: processes, services, thread groups and states, never thread ids.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::figures::WindowFigures;
use super::identity::Identity;
use crate::diagnosis::VerdictKind;
use crate::model::ThreadState;

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A thread state as a label value: the name the JSON report gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct StateValue(ThreadState);

impl EncodeLabelValue for StateValue {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.0.name())
    }
}

/// A verdict kind as a label value: the name the JSON report gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct KindValue(VerdictKind);

impl EncodeLabelValue for KindValue {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.0.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProcessLabels {
    pid: u32,
    service: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabels {
    pid: u32,
    service: String,
    thread_group: String,
    state: StateValue,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VerdictLabels {
    pid: u32,
    service: String,
    kind: KindValue,
}

type FloatCounter = Counter<f64, AtomicU64>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// Every series the agent serves. The families are shared with the registry: updating them
/// here is what the next scrape reads.
pub struct Metrics {
    registry: Registry,
    state_seconds: Family<StateLabels, FloatCounter>,
    gil_held: Family<ProcessLabels, FloatGauge>,
    handoffs: Family<ProcessLabels, FloatCounter>,
    cores_used: Family<ProcessLabels, FloatGauge>,
    samples: Family<ProcessLabels, Counter>,
    verdict: Family<VerdictLabels, Gauge>,
    info: Family<Vec<(String, String)>, Gauge>,
    processes: Gauge,
    agent_cpu: FloatCounter,
    agent_dropped: Counter,
    agent_rate: FloatGauge,
}

/// What the agent last published for one process, to take its series down when it goes.
#[derive(Debug, Clone, Default)]
pub struct Published {
    groups: Vec<String>,
    verdict: Option<VerdictKind>,
    info: Vec<(String, String)>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("gilscope");
        let metrics = Metrics {
            state_seconds: Family::default(),
            gil_held: Family::default(),
            handoffs: Family::default(),
            cores_used: Family::default(),
            samples: Family::default(),
            verdict: Family::default(),
            info: Family::default(),
            processes: Gauge::default(),
            agent_cpu: FloatCounter::default(),
            agent_dropped: Counter::default(),
            agent_rate: FloatGauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "state_seconds",
            "Thread-seconds spent in each state (the states of gilscope.report/1), per thread group",
            metrics.state_seconds.clone(),
        );
        registry.register(
            "gil_held_ratio",
            "Share of the last window's samples at which the GIL was held",
            metrics.gil_held.clone(),
        );
        registry.register(
            "gil_handoffs",
            "GIL hand-offs from one thread to another",
            metrics.handoffs.clone(),
        );
        registry.register(
            "cores_used",
            "CPU cores the process used over the last window (the kernel's count)",
            metrics.cores_used.clone(),
        );
        registry.register(
            "samples",
            "Samples taken of the process",
            metrics.samples.clone(),
        );
        registry.register(
            "verdict",
            "1 for the kind of the verdict over the last window",
            metrics.verdict.clone(),
        );
        registry.register(
            "process_info",
            "1 per watched process: its command, Python, container, pod and --env-label values",
            metrics.info.clone(),
        );
        registry.register(
            "processes",
            "Python processes watched",
            metrics.processes.clone(),
        );
        registry.register(
            "agent_cpu_seconds",
            "CPU time the agent itself used",
            metrics.agent_cpu.clone(),
        );
        registry.register(
            "agent_dropped_samples",
            "Samples the agent meant to take but could not in time",
            metrics.agent_dropped.clone(),
        );
        registry.register(
            "agent_rate_hz",
            "The agent's sampling rate, after the CPU budget",
            metrics.agent_rate.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// A process begins to be watched.
    pub fn watch(&self, identity: &Identity, python: &str) -> Published {
        let info = info_labels(identity, python);
        self.info.get_or_create(&info).set(1);
        Published {
            info,
            ..Published::default()
        }
    }

    /// Counts one window of a process.
    pub fn add_window(
        &self,
        identity: &Identity,
        figures: &WindowFigures,
        published: &mut Published,
    ) {
        let process = process_labels(identity);
        for group in &figures.groups {
            for state in ThreadState::ALL {
                let seconds = group.seconds[state];
                if seconds > 0.0 {
                    self.state_seconds
                        .get_or_create(&state_labels(identity, &group.label, state))
                        .inc_by(seconds);
                }
            }
            if !published.groups.contains(&group.label) {
                published.groups.push(group.label.clone());
            }
        }
        match figures.gil_held {
            Some(held) => {
                self.gil_held.get_or_create(&process).set(held);
            }
            None => {
                self.gil_held.remove(&process);
            }
        }
        if let Some(handoffs) = figures.handoffs {
            self.handoffs.get_or_create(&process).inc_by(handoffs);
        }
        self.cores_used
            .get_or_create(&process)
            .set(figures.cores_used);
        self.samples.get_or_create(&process).inc_by(figures.samples);
        if let Some(before) = published.verdict.filter(|&kind| kind != figures.verdict) {
            self.verdict.remove(&verdict_labels(identity, before));
        }
        self.verdict
            .get_or_create(&verdict_labels(identity, figures.verdict))
            .set(1);
        published.verdict = Some(figures.verdict);
    }

    /// Takes down every series of a process that is no longer watched.
    pub fn forget(&self, identity: &Identity, published: &Published) {
        let process = process_labels(identity);
        for label in &published.groups {
            for state in ThreadState::ALL {
                self.state_seconds
                    .remove(&state_labels(identity, label, state));
            }
        }
        self.gil_held.remove(&process);
        self.handoffs.remove(&process);
        self.cores_used.remove(&process);
        self.samples.remove(&process);
        if let Some(kind) = published.verdict {
            self.verdict.remove(&verdict_labels(identity, kind));
        }
        self.info.remove(&published.info);
    }

    pub fn set_processes(&self, count: usize) {
        self.processes.set(count as i64);
    }

    /// The agent's own CPU time, dropped samples and rate.
    pub fn add_agent(&self, cpu_s: f64, dropped: u64, rate_hz: f64) {
        self.agent_cpu.inc_by(cpu_s);
        self.agent_dropped.inc_by(dropped);
        self.agent_rate.set(rate_hz);
    }

    /// Every series, as a scrape reads them.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

fn process_labels(identity: &Identity) -> ProcessLabels {
    ProcessLabels {
        pid: identity.pid,
        service: identity.service.clone(),
    }
}

fn state_labels(identity: &Identity, group: &str, state: ThreadState) -> StateLabels {
    StateLabels {
        pid: identity.pid,
        service: identity.service.clone(),
        thread_group: group.to_string(),
        state: StateValue(state),
    }
}

fn verdict_labels(identity: &Identity, kind: VerdictKind) -> VerdictLabels {
    VerdictLabels {
        pid: identity.pid,
        service: identity.service.clone(),
        kind: KindValue(kind),
    }
}

/// The command line in a label is cut here: a label is not a log.
const COMMAND_LABEL_MAX: usize = 200;

fn info_labels(identity: &Identity, python: &str) -> Vec<(String, String)> {
    let mut command = identity.command.join(" ");
    if command.len() > COMMAND_LABEL_MAX {
        let cut = (0..=COMMAND_LABEL_MAX)
            .rev()
            .find(|&i| command.is_char_boundary(i))
            .unwrap_or(0);
        command.truncate(cut);
    }
    let mut labels = vec![
        ("pid".to_string(), identity.pid.to_string()),
        ("service".to_string(), identity.service.clone()),
        ("command".to_string(), command),
        ("python".to_string(), python.to_string()),
    ];
    // Absent rather than empty: Prometheus drops empty labels anyway.
    labels.extend(identity.place_labels());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::figures::GroupSeconds;
    use crate::model::PerState;

    fn identity(service: &str) -> Identity {
        Identity {
            pid: 4242,
            service: service.to_string(),
            command: vec!["python3".into(), "app.py".into()],
            container_id: None,
            pod_uid: None,
            env_labels: vec![("TEAM".into(), "pay\"ments\nline2\\".into())],
        }
    }

    fn window(verdict: VerdictKind, gil_wait_s: f64) -> WindowFigures {
        WindowFigures {
            duration_s: 10.0,
            samples: 200,
            groups: vec![GroupSeconds {
                label: "worker-*".into(),
                seconds: PerState::from_fn(|s| {
                    if s == ThreadState::GilWait {
                        gil_wait_s
                    } else {
                        0.0
                    }
                }),
            }],
            gil_held: Some(0.98),
            handoffs: Some(1500.0),
            cores_used: 1.0,
            verdict,
        }
    }

    #[test]
    fn windows_add_up_and_a_changed_verdict_replaces_the_old_one() {
        let metrics = Metrics::new();
        let id = identity("api");
        let mut published = metrics.watch(&id, "3.12.1");
        metrics.add_window(
            &id,
            &window(VerdictKind::GilContention, 30.0),
            &mut published,
        );
        metrics.add_window(&id, &window(VerdictKind::IoBound, 2.5), &mut published);
        let text = metrics.encode();
        assert!(
            text.contains(r#"gilscope_state_seconds_total{pid="4242",service="api",thread_group="worker-*",state="gil_wait"} 32.5"#),
            "{text}"
        );
        assert!(
            text.contains(r#"gilscope_gil_handoffs_total{pid="4242",service="api"} 3000.0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"gilscope_verdict{pid="4242",service="api",kind="io_bound"} 1"#),
            "{text}"
        );
        assert!(
            !text.contains("gil_contention"),
            "the old verdict is gone: {text}"
        );
        metrics.forget(&id, &published);
        let text = metrics.encode();
        assert!(
            !text.contains("4242"),
            "a process gone leaves no series: {text}"
        );
    }

    #[test]
    fn hostile_values_are_escaped_and_names_sanitised() {
        let metrics = Metrics::new();
        let mut id = identity("x\"} evil{");
        id.env_labels.push(("9-LIVES".into(), "v".into()));
        id.env_labels.push(("PID".into(), "1".into()));
        metrics.watch(&id, "3.12.1");
        let text = metrics.encode();
        let line = text
            .lines()
            .find(|l| l.starts_with("gilscope_process_info{"))
            .expect("an info line");
        assert!(line.contains(r#"service="x\"} evil{""#), "{line}");
        assert!(line.contains(r#"team="pay\"ments\nline2\\""#), "{line}");
        assert!(line.contains(r#"env_9_lives="v""#), "{line}");
        assert!(line.contains(r#"env_pid="1""#), "{line}");
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("gilscope_process_info{"))
                .count(),
            1
        );
    }
}
