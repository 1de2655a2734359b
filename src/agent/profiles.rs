//! `gilscope agent --pyroscope URL`: each window's samples of every watched process, pushed
//! through the same push thread as `attach --pyroscope`, one profile per process, its series
//! labelled with the process's service, pid, runtime, container, pod and `--env-label` values.

use crate::model::Pid;
use std::collections::HashMap;

use super::identity::Identity;
use crate::analysis::ProfileWindow;
use crate::push::{http::Http, Batch, PushConfig, PushStats, Pusher, FLUSH_GRACE};

/// The push, and the window being gathered across processes.
pub struct Profiles {
    pusher: Pusher,
    tags: Vec<(String, String)>,
    window: ProfileWindow,
    labels: HashMap<Pid, Vec<(String, String)>>,
}

impl Profiles {
    pub fn start(config: &PushConfig, interval_ns: u64) -> std::io::Result<Profiles> {
        let transport = Http::new(&config.url, config.credentials.clone());
        Ok(Profiles {
            pusher: Pusher::start(config, transport)?,
            tags: config.tags.clone(),
            window: ProfileWindow {
                interval_ns,
                stacks: Vec::new(),
            },
            labels: HashMap::new(),
        })
    }

    /// Adds one process's window. A process sampled less often than the others (idle, under
    /// the budget) has its counts scaled to the common interval: a sample stands for the
    /// time it covered.
    pub fn add(&mut self, identity: &Identity, python: &str, window: ProfileWindow) {
        let scale = (window.interval_ns as f64 / self.window.interval_ns.max(1) as f64)
            .round()
            .max(1.0) as u64;
        self.window
            .stacks
            .extend(window.stacks.into_iter().map(|mut stack| {
                stack.samples *= scale;
                stack
            }));
        self.labels.insert(
            Pid(identity.pid),
            series_labels(identity, python, &self.tags),
        );
    }

    /// Offers the window gathered, from `start_unix_ns` for `duration_ns`, to the push
    /// thread; the processes' stacks are in pid order.
    pub fn offer(&mut self, start_unix_ns: i64, duration_ns: i64) {
        let mut window = ProfileWindow {
            interval_ns: self.window.interval_ns,
            stacks: std::mem::take(&mut self.window.stacks),
        };
        if window.stacks.is_empty() {
            return;
        }
        window.stacks.sort_by_key(|s| s.pid);
        self.pusher.offer(Batch {
            start_unix_ns,
            duration_ns,
            window,
            series_labels: std::mem::take(&mut self.labels),
        });
    }

    /// Sets the common interval for the next window (the schedule's rate changed).
    pub fn set_interval(&mut self, interval_ns: u64) {
        self.window.interval_ns = interval_ns;
    }

    /// Flushes what is queued within the grace period.
    pub fn finish(self) -> PushStats {
        self.pusher.finish(FLUSH_GRACE)
    }
}

/// A process's series labels, as `attach --pyroscope` gives them, and where it runs.
fn series_labels(
    identity: &Identity,
    python: &str,
    tags: &[(String, String)],
) -> Vec<(String, String)> {
    let mut labels = vec![
        ("__name__".to_string(), "wall".to_string()),
        ("service_name".to_string(), identity.service.clone()),
        ("pid".to_string(), identity.pid.to_string()),
    ];
    if !python.is_empty() {
        labels.push(("process.runtime.name".into(), "cpython".into()));
        labels.push(("process.runtime.version".into(), python.to_string()));
    }
    labels.extend(identity.place_labels());
    labels.extend(tags.iter().cloned());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_the_process_and_where_it_runs() {
        let identity = Identity {
            pid: 31,
            service: "checkout".into(),
            command: vec!["python3".into(), "app.py".into()],
            container_id: Some("ab".repeat(32)),
            pod_uid: None,
            env_labels: vec![("TEAM".into(), "pay".into())],
        };
        let labels = series_labels(&identity, "3.12.1", &[("region".into(), "eu".into())]);
        let get = |name: &str| {
            labels
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("service_name"), Some("checkout"));
        assert_eq!(get("pid"), Some("31"));
        assert_eq!(get("container_id"), Some("ab".repeat(32).as_str()));
        assert_eq!(get("pod_uid"), None);
        assert_eq!(get("team"), Some("pay"));
        assert_eq!(get("region"), Some("eu"));
        assert_eq!(get("process.runtime.version"), Some("3.12.1"));
    }
}
