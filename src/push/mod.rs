//! `--pyroscope URL`: every interval, the window's samples go to a Grafana Pyroscope server as
//! a profile per process, each sample labelled with its thread and its state.
//!
//! The sampling thread only counts (in the aggregator) and, once an interval, hands the
//! window to [`Pusher::offer`], which never blocks. The push thread encodes and sends it,
//! retrying with back-off; when the bounded queue is full the oldest window is dropped and
//! counted. At the end, [`Pusher::finish`] flushes what is left within a grace period.

mod config;
pub mod http;
pub mod wire;

pub use config::{Credentials, PushConfig, Retry, RESERVED_LABELS};

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::analysis::{Aggregator, ProfileWindow};
use crate::model::{Pid, Record};
use crate::render::pprof::{self, SampleLabels, Span};
use crate::render::stacks::StackCount;

/// Windows waiting to be sent at most; one more drops the oldest.
pub const QUEUE_WINDOWS: usize = 8;
/// How long the end of a run waits for the last windows to go out.
pub const FLUSH_GRACE: Duration = Duration::from_secs(5);

/// What the push did over the run, for the report.
pub type PushStats = crate::report::PushSummary;

/// One window of the whole tree, ready to encode.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Unix time of the window's start, in ns.
    pub start_unix_ns: i64,
    pub duration_ns: i64,
    pub window: ProfileWindow,
    /// Series labels per pid.
    pub series_labels: HashMap<Pid, Vec<(String, String)>>,
}

impl Batch {
    /// One series per process, its samples labelled the way Pyroscope keeps them.
    pub fn series(&self) -> Vec<wire::Series> {
        let mut pids: Vec<Pid> = self.window.stacks.iter().map(|s| s.pid).collect();
        pids.dedup();
        let span = Span {
            time_nanos: self.start_unix_ns,
            duration_nanos: self.duration_ns,
            period_nanos: self.window.interval_ns as i64,
        };
        pids.into_iter()
            .map(|pid| {
                let stacks: Vec<StackCount> = self
                    .window
                    .stacks
                    .iter()
                    .filter(|s| s.pid == pid)
                    .map(|s| StackCount {
                        tid: s.tid,
                        thread: s.thread.as_deref(),
                        state: s.state,
                        frames: s.frames.iter().collect(),
                        count: s.samples,
                    })
                    .collect();
                wire::Series {
                    labels: self.series_labels.get(&pid).cloned().unwrap_or_default(),
                    profile: pprof::profile_of(&stacks, span, SampleLabels::Pyroscope),
                }
            })
            .collect()
    }
}

/// Sends one request body; the push thread's only contact with the network.
pub trait Transport: Send + 'static {
    fn send(&mut self, body: &[u8], timeout: Duration) -> Result<(), SendError>;
}

/// Why a request failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No answer, a connection refused, a 5xx or a 429: worth another try.
    #[error("{0}")]
    Transient(String),
    /// A 4xx the same request will get again (bad credentials, a malformed request).
    #[error("{0}")]
    Permanent(String),
}

/// The queue between the sampling thread and the push thread.
#[derive(Default)]
struct Queue {
    batches: VecDeque<Batch>,
    closing: Option<Instant>,
    stats: PushStats,
    /// Set by the push thread when it is done.
    finished: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A poisoned queue still holds valid counters.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The push thread and its queue.
pub struct Pusher {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Pusher {
    pub fn start(config: &PushConfig, transport: impl Transport) -> std::io::Result<Pusher> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                stats: PushStats {
                    url: config.url.clone(),
                    interval_s: config.interval.as_secs_f64(),
                    ..PushStats::default()
                },
                ..Queue::default()
            }),
            changed: Condvar::new(),
        });
        let timeout = config
            .interval
            .clamp(Duration::from_secs(2), Duration::from_secs(10));
        let retry = config.retry;
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("gilscope-push".into())
                .spawn(move || push_loop(&shared, transport, timeout, retry))?
        };
        Ok(Pusher {
            shared,
            thread: Some(thread),
        })
    }

    /// Queues a window; never blocks. A full queue drops its oldest window.
    pub fn offer(&self, batch: Batch) {
        let mut queue = self.shared.lock();
        if queue.batches.len() >= QUEUE_WINDOWS {
            queue.batches.pop_front();
            queue.stats.windows_dropped += 1;
        }
        queue.batches.push_back(batch);
        drop(queue);
        self.shared.changed.notify_all();
    }

    /// Sends what is queued within `grace`, then stops the thread. What could not go out is
    /// counted as dropped.
    pub fn finish(mut self, grace: Duration) -> PushStats {
        let deadline = Instant::now() + grace;
        self.shared.lock().closing = Some(deadline);
        self.shared.changed.notify_all();
        let mut queue = self.shared.lock();
        while !queue.finished {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            queue = self
                .shared
                .changed
                .wait_timeout(queue, left)
                .map_or_else(|e| e.into_inner().0, |(q, _)| q);
        }
        let unsent = queue.batches.len() as u64;
        queue.batches.clear();
        queue.stats.windows_dropped += unsent;
        let stats = queue.stats.clone();
        let finished = queue.finished;
        drop(queue);
        if finished {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
        // Otherwise the thread is stuck in a request past the grace: leave it to the exit.
        stats
    }
}

/// The push thread: sends the oldest window, retries it with back-off, gives up after
/// `retry.attempts` or at the flush deadline.
fn push_loop(shared: &Shared, mut transport: impl Transport, timeout: Duration, retry: Retry) {
    loop {
        let mut queue = shared.lock();
        while queue.batches.is_empty() && queue.closing.is_none() {
            queue = shared
                .changed
                .wait(queue)
                .unwrap_or_else(|e| e.into_inner());
        }
        let Some(batch) = queue.batches.pop_front() else {
            break; // closing, and nothing left
        };
        drop(queue);
        let body = wire::encode(&batch.series());
        drop(batch);
        let mut backoff = retry.first_backoff;
        for attempt in 1..=retry.attempts {
            let deadline = shared.lock().closing;
            let timeout = deadline.map_or(timeout, |d| {
                timeout.min(d.saturating_duration_since(Instant::now()))
            });
            let result = if timeout.is_zero() {
                Err(SendError::Transient(
                    "the run ended before it could be sent".into(),
                ))
            } else {
                transport.send(&body, timeout)
            };
            let mut queue = shared.lock();
            match result {
                Ok(()) => {
                    queue.stats.windows_pushed += 1;
                    break;
                }
                Err(e) => {
                    queue.stats.failed_requests += 1;
                    let last = attempt == retry.attempts
                        || matches!(e, SendError::Permanent(_))
                        || queue.closing.is_some_and(|d| Instant::now() + backoff >= d);
                    queue.stats.last_error = Some(e.to_string());
                    if last {
                        queue.stats.windows_dropped += 1;
                        break;
                    }
                }
            }
            // Wait before the next try; the end of the run cuts the wait short.
            let until = Instant::now() + backoff;
            while queue.closing.is_none() {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                queue = shared
                    .changed
                    .wait_timeout(queue, left)
                    .map_or_else(|e| e.into_inner().0, |(q, _)| q);
            }
            backoff = (backoff * 2).min(retry.max_backoff);
        }
    }
    shared.lock().finished = true;
    shared.changed.notify_all();
}

/// Cuts the record stream into windows of the push interval and offers each to the pusher.
/// Runs on the sampling thread, after the aggregator has taken each record.
pub struct Feed {
    pusher: Pusher,
    interval_ns: u64,
    app_name: Option<String>,
    tags: Vec<(String, String)>,
    /// The current window's start on the sampler's clock.
    window_start_ns: Option<u64>,
    started_unix_s: f64,
    series_labels: HashMap<Pid, Vec<(String, String)>>,
}

impl Feed {
    /// Starts counting windows in `aggregator`.
    pub fn new(config: &PushConfig, pusher: Pusher, aggregator: &mut Aggregator) -> Feed {
        aggregator.collect_profile_windows();
        Feed {
            pusher,
            interval_ns: config.interval.as_nanos() as u64,
            app_name: config.app_name.clone(),
            tags: config.tags.clone(),
            window_start_ns: None,
            started_unix_s: 0.0,
            series_labels: HashMap::new(),
        }
    }

    pub fn record(&mut self, record: &Record, aggregator: &mut Aggregator) {
        match record {
            Record::Target(info) => {
                self.started_unix_s = info.started_unix_s;
                let labels = self.labels(info.pid, &info.command, Some(&info.python));
                self.series_labels.insert(info.pid, labels);
            }
            Record::Process(info) => {
                let labels = self.labels(info.pid, &info.command, info.python.as_deref());
                self.series_labels.insert(info.pid, labels);
            }
            Record::Sample(sample) => {
                let start = *self.window_start_ns.get_or_insert(sample.t_ns);
                if sample.t_ns.saturating_sub(start) >= self.interval_ns {
                    self.send_window(aggregator, sample.t_ns);
                }
            }
            Record::End { duration_s, .. } => {
                let start = self.window_start_ns.unwrap_or(0);
                let end = ((duration_s * 1e9) as u64).max(start);
                self.send_window(aggregator, end);
            }
            _ => {}
        }
    }

    /// Ends the current window at `end_ns` and offers it, unless it counted nothing.
    fn send_window(&mut self, aggregator: &mut Aggregator, end_ns: u64) {
        let start = self.window_start_ns.replace(end_ns).unwrap_or(end_ns);
        let window = aggregator.take_profile_window();
        if window.stacks.is_empty() {
            return;
        }
        let since_start = i64::try_from(start).unwrap_or(i64::MAX);
        self.pusher.offer(Batch {
            start_unix_ns: ((self.started_unix_s * 1e9) as i64).saturating_add(since_start),
            duration_ns: end_ns.saturating_sub(start) as i64,
            window,
            series_labels: self.series_labels.clone(),
        });
    }

    fn labels(&self, pid: Pid, command: &[String], python: Option<&str>) -> Vec<(String, String)> {
        let service = self
            .app_name
            .clone()
            .unwrap_or_else(|| service_name(command));
        let mut labels = vec![
            ("__name__".to_string(), "wall".to_string()),
            ("service_name".to_string(), service),
            ("pid".to_string(), pid.to_string()),
        ];
        if let Some(version) = python.filter(|v| !v.is_empty()) {
            labels.push(("process.runtime.name".into(), "cpython".into()));
            labels.push(("process.runtime.version".into(), version.to_string()));
        }
        labels.extend(self.tags.iter().cloned());
        labels
    }

    /// Flushes and stops the push thread.
    pub fn finish(self, grace: Duration) -> PushStats {
        self.pusher.finish(grace)
    }
}

/// The script's name from a command line: `python app.py` → `app`, `python -m pkg.mod` →
/// `pkg.mod`, else the program's file name.
pub fn service_name(command: &[String]) -> String {
    let base = |s: &str| {
        std::path::Path::new(s)
            .file_name()
            .map_or_else(|| s.to_string(), |n| n.to_string_lossy().into_owned())
    };
    let Some(program) = command.first() else {
        return "python".to_string();
    };
    if !base(program).starts_with("python") {
        return base(program);
    }
    let mut args = command.iter().skip(1);
    while let Some(arg) = args.next() {
        if arg == "-m" {
            if let Some(module) = args.next() {
                return module.clone();
            }
        }
        if arg == "-c" {
            break;
        }
        if !arg.starts_with('-') {
            let name = base(arg);
            return name.strip_suffix(".py").unwrap_or(&name).to_string();
        }
    }
    base(program)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Answers each request with the next scripted result (then success), and tells the test.
    struct Scripted {
        results: VecDeque<Result<(), SendError>>,
        sent: mpsc::Sender<usize>,
        /// Each request waits for a go-ahead first, when set.
        gate: Option<mpsc::Receiver<()>>,
    }

    impl Transport for Scripted {
        fn send(&mut self, body: &[u8], _timeout: Duration) -> Result<(), SendError> {
            if let Some(gate) = &self.gate {
                let _ = gate.recv();
            }
            let _ = self.sent.send(body.len());
            self.results.pop_front().unwrap_or(Ok(()))
        }
    }

    fn config() -> PushConfig {
        PushConfig {
            url: "http://127.0.0.1:9".into(),
            interval: Duration::from_secs(1),
            app_name: None,
            tags: Vec::new(),
            credentials: Credentials::default(),
            retry: Retry {
                attempts: 3,
                first_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(20),
            },
        }
    }

    fn batch() -> Batch {
        Batch {
            start_unix_ns: 1,
            duration_ns: 1_000_000_000,
            window: ProfileWindow {
                interval_ns: 10_000_000,
                stacks: vec![crate::analysis::WindowStack {
                    pid: crate::model::Pid(7),
                    tid: crate::model::Tid(8),
                    thread: Some("worker".into()),
                    state: crate::model::ThreadState::GilWait,
                    frames: Vec::new(),
                    samples: 3,
                }],
            },
            series_labels: HashMap::new(),
        }
    }

    fn transient() -> Result<(), SendError> {
        Err(SendError::Transient("connection refused".into()))
    }

    #[test]
    fn a_failed_window_is_retried_then_pushed() {
        let (sent, requests) = mpsc::channel();
        let transport = Scripted {
            results: VecDeque::from([transient(), transient()]),
            sent,
            gate: None,
        };
        let pusher = Pusher::start(&config(), transport).unwrap();
        pusher.offer(batch());
        for _ in 0..3 {
            requests.recv_timeout(Duration::from_secs(5)).unwrap();
        }
        let stats = pusher.finish(Duration::from_secs(5));
        assert_eq!((stats.windows_pushed, stats.windows_dropped), (1, 0));
        assert_eq!(stats.failed_requests, 2);
        assert_eq!(stats.last_error.as_deref(), Some("connection refused"));
    }

    #[test]
    fn a_window_is_dropped_after_every_try_fails_and_at_once_when_the_server_refuses_it() {
        let (sent, requests) = mpsc::channel();
        let transport = Scripted {
            results: VecDeque::from([
                transient(),
                transient(),
                transient(),
                Err(SendError::Permanent("the server answered 401".into())),
            ]),
            sent,
            gate: None,
        };
        let pusher = Pusher::start(&config(), transport).unwrap();
        pusher.offer(batch());
        pusher.offer(batch());
        pusher.offer(batch());
        for _ in 0..5 {
            requests.recv_timeout(Duration::from_secs(5)).unwrap();
        }
        let stats = pusher.finish(Duration::from_secs(5));
        assert_eq!(stats.windows_dropped, 2, "three tries, then one refusal");
        assert_eq!(stats.windows_pushed, 1);
        assert_eq!(stats.failed_requests, 4);
        assert!(
            requests.try_recv().is_err(),
            "a refused window is not retried"
        );
    }

    #[test]
    fn a_stuck_server_drops_the_oldest_windows_and_never_blocks_the_offer() {
        let (sent, requests) = mpsc::channel();
        let (go, gate) = mpsc::channel();
        let transport = Scripted {
            results: VecDeque::new(),
            sent,
            gate: Some(gate),
        };
        let pusher = Pusher::start(&config(), transport).unwrap();
        let started = Instant::now();
        for _ in 0..QUEUE_WINDOWS + 5 {
            pusher.offer(batch());
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "offer never waits"
        );
        // One window may be in the request that hangs; the queue holds QUEUE_WINDOWS more.
        let dropped = pusher.shared.lock().stats.windows_dropped;
        assert!((4..=5).contains(&dropped), "{dropped} dropped");
        let finishing = Instant::now();
        let stats = pusher.finish(Duration::from_millis(200));
        assert!(
            finishing.elapsed() < Duration::from_secs(2),
            "the end waits no longer than its grace for a stuck server"
        );
        assert_eq!(stats.windows_pushed, 0);
        assert!(stats.windows_dropped >= (QUEUE_WINDOWS + 4) as u64);
        drop(go);
        let _ = requests;
    }

    fn words(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_service_is_named_after_the_script() {
        assert_eq!(
            service_name(&words(&["python3", "/srv/api/app.py", "--port", "8"])),
            "app"
        );
        assert_eq!(
            service_name(&words(&["python", "-u", "-m", "gunicorn", "x:app"])),
            "gunicorn"
        );
        assert_eq!(
            service_name(&words(&["/usr/bin/python3.12", "-c", "print(1)"])),
            "python3.12"
        );
        assert_eq!(
            service_name(&words(&["/venv/bin/uvicorn", "main:app"])),
            "uvicorn"
        );
        assert_eq!(service_name(&[]), "python");
    }
}
