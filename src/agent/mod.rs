//! `gilscope agent`: every Python process on a node, watched continuously, its thread states,
//! GIL and verdict served to Prometheus (`/metrics`) and as JSON (`/processes`).
//!
//! One thread samples every watched process at the schedule's rate, each into its own
//! [`WindowedRecords`]; once a window, each window goes through the same analysis and
//! diagnosis as a `gilscope attach`, and its figures into the metrics. The HTTP server reads
//! the published [`Board`] on a thread of its own.

mod board;
mod budget;
mod discovery;
mod figures;
mod identity;
mod metrics;
mod profiles;
mod server;
mod window;

pub use budget::Schedule;
pub use discovery::Filter;
pub use identity::EnvLabels;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use board::{AgentEntry, Board, VerdictSummary, WatchedEntry};
use discovery::{Attached, Finding};
use figures::WindowFigures;
use identity::Identity;
use metrics::Published;
use profiles::Profiles;
use std::sync::mpsc::Receiver;
use window::{ClosedWindow, WindowedRecords};

use crate::analysis::ProfileWindow;
use crate::diagnosis;
use crate::error::Error;
use crate::model::{Ending, Record, ThreadState};
use crate::push::{PushConfig, PushStats};
use crate::report;
use crate::sampler::{Interner, ProcessSampler, RecordSink, SamplerOptions};

/// A process that used less than this many cores over a window, and whose threads never
/// waited for the GIL, is idle: sampled less often when the budget is tight.
const BUSY_CORES: f64 = 0.05;

/// A window holds at least this many samples of a busy process: the diagnosis's minimum and
/// a tenth more, for ticks that come late.
const WINDOW_SAMPLES: u64 = diagnosis::MIN_SAMPLES + diagnosis::MIN_SAMPLES / 10;

/// Process windows closed at one tick, at most: a node's worth of analyses at once would
/// make the next ticks late.
const CLOSES_PER_TICK: usize = 8;

/// How the agent runs, checked.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub listen: SocketAddr,
    pub rate_hz: f64,
    /// The agent's CPU budget, in cores.
    pub max_cpu: f64,
    pub window: Duration,
    pub discover_every: Duration,
    pub filter: Filter,
    pub env: EnvLabels,
    /// Stop after this long (for tests and one-off surveys); `None`: until SIGTERM.
    pub duration: Option<Duration>,
    /// `--pyroscope`: where each window's profiles go.
    pub push: Option<PushConfig>,
}

/// Runs the agent until SIGINT, SIGTERM or `--duration`.
pub fn run(options: AgentOptions) -> Result<(), Error> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(Error::Signals)?;
    }
    let board = Arc::new(Board::default());
    let server = server::Server::start(options.listen, Arc::clone(&board)).map_err(|source| {
        Error::Listen {
            address: options.listen.to_string(),
            source,
        }
    })?;
    eprintln!(
        "gilscope agent: serving http://{}/metrics and /processes; sampling at {} Hz, at most {} cores",
        server.address, options.rate_hz, options.max_cpu
    );
    let finding = Finding {
        filter: options.filter.clone(),
        env: options.env.clone(),
        sampler: SamplerOptions {
            rate_hz: options.rate_hz,
            blocking: false,
            subprocesses: false,
            // A new thread is still named at once; renames show within a window.
            names_refresh: options.window,
        },
        every: options.discover_every,
    };
    let found = discovery::spawn(finding, Arc::clone(&board), Arc::clone(&stop))
        .map_err(Error::AgentThread)?;
    let profiles = options
        .push
        .as_ref()
        .map(|config| Profiles::start(config, (1e9 / options.rate_hz) as u64))
        .transpose()
        .map_err(Error::PushThread)?;
    let tally = Fleet::new(options, board, found, profiles).run(&stop);
    stop.store(true, Ordering::Relaxed);
    drop(server);
    eprintln!(
        "gilscope agent: stopped after {:.1} s; watched {} processes, used {:.2} s of CPU ({:.3} cores), dropped {} samples; last rate {:.1} Hz, idle processes every {} ticks",
        tally.seconds,
        tally.processes,
        tally.cpu_s,
        tally.cpu_s / tally.seconds.max(1e-9),
        tally.dropped_samples,
        tally.schedule.rate_hz,
        tally.schedule.idle_every,
    );
    if let Some(push) = tally.push {
        eprintln!(
            "gilscope agent: pushed {} windows to {} ({} dropped, {} failed requests{})",
            push.windows_pushed,
            push.url,
            push.windows_dropped,
            push.failed_requests,
            push.last_error
                .map(|e| format!("; last: {e}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// What a run of the agent came to.
struct Tally {
    /// Processes watched at some time.
    processes: usize,
    seconds: f64,
    cpu_s: f64,
    dropped_samples: u64,
    schedule: Schedule,
    /// What the push to Pyroscope delivered, when there was one.
    push: Option<PushStats>,
}

/// A process being watched.
struct Watched {
    identity: Identity,
    sampler: ProcessSampler,
    interner: Interner,
    windows: WindowedRecords,
    published: Published,
    entry: WatchedEntry,
    /// Sampled at every tick, whatever the budget.
    busy: bool,
    /// When its current window opened: each process's windows run on their own clock, so
    /// that their analyses spread over many ticks instead of all falling on one.
    window_opened: Instant,
}

/// Every watched process, and the schedule they are sampled on.
struct Fleet {
    options: AgentOptions,
    board: Arc<Board>,
    /// Processes the discovery thread attached to.
    found: Receiver<Attached>,
    watched: BTreeMap<u32, Watched>,
    schedule: Schedule,
    started: Instant,
    dropped_in_window: u64,
    dropped_total: u64,
    attached_total: usize,
    /// `--pyroscope`: the push, and the window's profiles gathered for it.
    profiles: Option<Profiles>,
    /// The wall clock when the agent started, for the profiles' times.
    started_unix_s: f64,
}

impl Fleet {
    fn new(
        options: AgentOptions,
        board: Arc<Board>,
        found: Receiver<Attached>,
        profiles: Option<Profiles>,
    ) -> Fleet {
        Fleet {
            profiles,
            started_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            found,
            schedule: Schedule::full(options.rate_hz),
            options,
            board,
            watched: BTreeMap::new(),
            started: Instant::now(),
            dropped_in_window: 0,
            dropped_total: 0,
            attached_total: 0,
        }
    }

    /// How long a window lasts: `--window`, or longer where the budget slowed sampling, so
    /// that a busy process's window holds the samples a verdict needs.
    fn window(&self) -> Duration {
        let needed_s = WINDOW_SAMPLES as f64 / self.schedule.rate_hz;
        self.options.window.max(Duration::from_secs_f64(needed_s))
    }

    fn t_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    fn run(mut self, stop: &AtomicBool) -> Tally {
        let mut tick: u64 = 0;
        let mut next_tick = Instant::now();
        let mut window_start = next_tick;
        let mut window_start_t_ns = self.t_ns();
        let mut cpu_at_window_start = own_cpu_s();
        let end = self.options.duration.map(|d| self.started + d);
        while !stop.load(Ordering::Relaxed) && end.is_none_or(|end| Instant::now() < end) {
            while let Ok(attached) = self.found.try_recv() {
                self.watch(attached);
            }
            self.tick_all(tick);
            self.close_due_windows();
            // The agent's own window (its budget, its push) keeps `--window`'s length, however
            // long a slow rate makes the processes' windows.
            if window_start.elapsed() >= self.options.window {
                let cpu = own_cpu_s();
                let cores = (cpu - cpu_at_window_start) / window_start.elapsed().as_secs_f64();
                self.close_agent_window(window_start_t_ns, cpu - cpu_at_window_start, cores);
                window_start = Instant::now();
                window_start_t_ns = self.t_ns();
                cpu_at_window_start = cpu;
            }
            tick += 1;
            let interval = Duration::from_secs_f64(1.0 / self.schedule.rate_hz);
            next_tick += interval;
            let mut missed = 0u32;
            while next_tick + interval <= Instant::now() {
                next_tick += interval;
                missed += 1;
                tick += 1;
            }
            if missed > 0 {
                self.missed(missed, tick);
            }
            if let Some(wait) = next_tick.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        // The last window, and every process let go.
        let pids: Vec<u32> = self.watched.keys().copied().collect();
        for pid in pids {
            self.release(pid, Some(Ending::Interrupted));
        }
        self.offer_profiles(window_start_t_ns);
        let push = self.profiles.take().map(Profiles::finish);
        Tally {
            push,
            processes: self.attached_total,
            seconds: self.started.elapsed().as_secs_f64(),
            cpu_s: own_cpu_s(),
            dropped_samples: self.dropped_total + self.dropped_in_window,
            schedule: self.schedule,
        }
    }

    /// Samples every process due at `tick`; those that ended are let go.
    fn tick_all(&mut self, tick: u64) {
        let t_ns = self.t_ns();
        let mut ended = Vec::new();
        for (&pid, watched) in &mut self.watched {
            if !self.schedule.due(tick, watched.busy) {
                continue;
            }
            let sampled = watched
                .sampler
                .tick(t_ns, &mut watched.interner, &mut watched.windows);
            match sampled {
                Ok(None) => {}
                Ok(Some(ending)) => ended.push((pid, ending)),
                // The windows never fail to take a record.
                Err(_) => ended.push((pid, Ending::TargetGone)),
            }
        }
        for (pid, ending) in ended {
            self.release(pid, Some(ending));
        }
    }

    /// Ticks that could not be taken in time: each process due at them misses a sample.
    fn missed(&mut self, ticks: u32, tick: u64) {
        for watched in self.watched.values_mut() {
            let due = (0..u64::from(ticks))
                .filter(|back| self.schedule.due(tick.saturating_sub(*back), watched.busy))
                .count() as u32;
            if due > 0 {
                watched.windows.late(due);
                self.dropped_in_window += u64::from(due);
            }
        }
    }

    /// Starts watching a process the discovery thread attached to.
    fn watch(&mut self, attached: Attached) {
        let Attached { sampler, identity } = attached;
        let info = sampler.target_info().clone();
        let pid = identity.pid;
        let published = self.board.metrics.watch(&identity, &info.python);
        let mut windows = WindowedRecords::new(self.profiles.is_some());
        // Taking a record cannot fail.
        let _ = windows.record(&Record::Target(info.clone()));
        let entry = WatchedEntry {
            identity: identity.clone(),
            python: info.python.clone(),
            watched_since_unix_s: info.started_unix_s,
            rate_hz: self.schedule.rate_hz,
            verdict: None,
            report: format!("/processes/{pid}"),
        };
        self.board.publish(entry.clone(), None);
        self.attached_total += 1;
        self.watched.insert(
            pid,
            Watched {
                identity,
                sampler,
                interner: Interner::default(),
                windows,
                published,
                entry,
                busy: true,
                window_opened: Instant::now(),
            },
        );
        self.board.metrics.set_processes(self.watched.len());
    }

    /// Closes the windows of the processes whose window has run its length, the longest
    /// open first, at most [`CLOSES_PER_TICK`] of them.
    fn close_due_windows(&mut self) {
        let length = self.window();
        let mut due: Vec<(Instant, u32)> = self
            .watched
            .iter()
            .filter(|(_, w)| w.window_opened.elapsed() >= length)
            .map(|(&pid, w)| (w.window_opened, pid))
            .collect();
        due.sort_unstable();
        for (_, pid) in due.into_iter().take(CLOSES_PER_TICK) {
            let Some(watched) = self.watched.get_mut(&pid) else {
                continue;
            };
            let every = if watched.busy {
                1
            } else {
                self.schedule.idle_every
            };
            let rate_hz = self.schedule.rate_hz / f64::from(every);
            let profile = close_window(watched, None, rate_hz, &self.board);
            watched.window_opened = Instant::now();
            if let (Some(profiles), Some(profile)) = (&mut self.profiles, profile) {
                profiles.add(&watched.identity, &watched.entry.python, profile);
            }
        }
    }

    /// Ends the agent's own window (opened at `start_t_ns`): the profiles gathered are
    /// pushed, its CPU and dropped samples counted, and the schedule for the next set from
    /// its CPU use over this one.
    fn close_agent_window(&mut self, start_t_ns: u64, cpu_s: f64, cores: f64) {
        let next = self
            .schedule
            .next(cores, self.options.max_cpu, self.options.rate_hz);
        if let Some(profiles) = &mut self.profiles {
            profiles.set_interval((1e9 / self.schedule.rate_hz) as u64);
        }
        self.offer_profiles(start_t_ns);
        self.board
            .metrics
            .add_agent(cpu_s, self.dropped_in_window, self.schedule.rate_hz);
        self.schedule = next;
        self.dropped_total += self.dropped_in_window;
        self.dropped_in_window = 0;
        self.board.set_agent(AgentEntry {
            rate_hz: self.schedule.rate_hz,
            idle_every: self.schedule.idle_every,
            cpu_cores: cores,
            max_cpu_cores: self.options.max_cpu,
            dropped_samples: self.dropped_total,
        });
    }

    /// Pushes the profiles gathered since `start_t_ns`, when pushing.
    fn offer_profiles(&mut self, start_t_ns: u64) {
        let end_t_ns = self.t_ns();
        if let Some(profiles) = &mut self.profiles {
            let start_unix_ns = (self.started_unix_s * 1e9) as i64 + start_t_ns as i64;
            profiles.offer(start_unix_ns, end_t_ns.saturating_sub(start_t_ns) as i64);
        }
    }

    /// Lets a process go: its last window is closed (its profile goes with the next push)
    /// and its series taken down.
    fn release(&mut self, pid: u32, ending: Option<Ending>) {
        let Some(mut watched) = self.watched.remove(&pid) else {
            return;
        };
        let profile = close_window(&mut watched, ending, self.schedule.rate_hz, &self.board);
        if let (Some(profiles), Some(profile)) = (&mut self.profiles, profile) {
            profiles.add(&watched.identity, &watched.entry.python, profile);
        }
        self.board
            .metrics
            .forget(&watched.identity, &watched.published);
        self.board.remove(pid);
        self.board.metrics.set_processes(self.watched.len());
    }
}

/// Closes a process's window: its analysis, diagnosis and report, published. Returns its
/// samples by stack, when they are collected for a push.
fn close_window(
    watched: &mut Watched,
    ending: Option<Ending>,
    rate_hz: f64,
    board: &Board,
) -> Option<ProfileWindow> {
    let ClosedWindow { analysis, profile } = watched.windows.close(ending, rate_hz)?;
    let verdict = diagnosis::diagnose(&analysis);
    let figures = WindowFigures::of(&analysis, verdict.kind);
    board
        .metrics
        .add_window(&watched.identity, &figures, &mut watched.published);
    watched.busy = figures.cores_used >= BUSY_CORES || figures.total(ThreadState::GilWait) > 0.0;
    watched.entry.rate_hz = rate_hz;
    watched.entry.verdict = Some(VerdictSummary {
        kind: verdict.kind,
        headline: verdict.headline.clone(),
        window_s: figures.duration_s,
    });
    let report = report::build(&analysis, Some(verdict));
    board.publish(watched.entry.clone(), Some(report));
    Some(profile)
}

/// The CPU time this process has used, every thread of it, in seconds.
fn own_cpu_s() -> f64 {
    // SAFETY: getrusage fills the struct it is given; a zeroed rusage is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF and a valid pointer to a rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
