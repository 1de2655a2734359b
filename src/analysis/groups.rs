//! Threads grouped by what they do: the function a thread was started with makes a pool's
//! workers, a server's request threads or the program's own workers one group, however many
//! threads come and go in it; a pool's own machinery threads are its helpers. The diagnosis
//! judges groups, and the report shows them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::ThreadSummary;
use crate::known_frames::{is_os_default_thread_name, is_pool_helper, start_function};
use crate::model::{Frame, PerState, Pid, ThreadState};

/// A thread sampled at most this many times lived between a few samples: one of a server's
/// request threads, say.
const SHORT_LIVED_SAMPLES: u64 = 2;
/// A group whose threads come and go has at least this many, and this many times more than
/// it keeps alive at once.
const CHURN_MIN_THREADS: usize = 8;
const CHURN_MIN_RATIO: f64 = 2.0;
/// A group's share of the names that must follow one pattern for the pattern to be its label.
const LABEL_PATTERN_MIN: f64 = 0.8;

/// What a group of threads is in its process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupRole {
    /// The process's main thread.
    Main,
    /// Threads that run the program's work: its own threads, a pool's workers, a server's
    /// request threads.
    Workers,
    /// A pool's own machinery: handing out tasks, collecting results, feeding its queues.
    Helpers,
    /// Threads that never ran Python (a native library's own threads).
    Native,
}

/// Threads of one process that were started with the same function.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadGroup {
    pub pid: Pid,
    /// `crunch-*`, `ThreadPoolExecutor-0_*`, `Thread-* (process_request_thread)`, `MainThread`.
    pub label: String,
    pub role: GroupRole,
    /// The function its threads were started with (`None`: no Python stack was read).
    pub start: Option<Frame>,
    /// Its threads, as indexes into [`super::Analysis::threads`].
    pub members: Vec<usize>,
    /// Time per state, summed over its threads.
    pub time_ns: PerState<u64>,
    /// The part of the `lock` time its threads spent idle in a pool, waiting for a task.
    pub waiting_for_work_ns: u64,
    pub cpu_s: f64,
    pub first_t_ns: u64,
    pub last_t_ns: u64,
}

impl ThreadGroup {
    pub fn threads(&self) -> usize {
        self.members.len()
    }

    /// Threads alive at once, on average over the group's lifetime.
    pub fn at_once(&self) -> f64 {
        let span = self.last_t_ns.saturating_sub(self.first_t_ns);
        if span == 0 {
            return self.threads() as f64;
        }
        self.time_ns.total() as f64 / span as f64
    }

    /// Threads started a second over the group's life, for a group whose threads come and go
    /// (a thread per request): many more of them than are alive at once.
    pub fn started_per_s(&self) -> Option<f64> {
        let life_s = self.last_t_ns.saturating_sub(self.first_t_ns) as f64 / 1e9;
        let churns = self.threads() >= CHURN_MIN_THREADS
            && self.threads() as f64 > CHURN_MIN_RATIO * self.at_once().max(1.0);
        (churns && life_s > 0.0).then(|| self.threads() as f64 / life_s)
    }

    /// Shares of the group's time per state, with the time its threads waited for a task
    /// taken out: what the threads did while they had work.
    pub fn active_shares(&self) -> PerState<f64> {
        let mut time = self.time_ns;
        time[ThreadState::Lock] = time[ThreadState::Lock].saturating_sub(self.waiting_for_work_ns);
        time.shares()
    }

    /// Share of the group's time its threads waited for a task.
    pub fn waiting_for_work(&self) -> f64 {
        let total = self.time_ns.total();
        if total == 0 {
            0.0
        } else {
            self.waiting_for_work_ns as f64 / total as f64
        }
    }
}

/// What makes threads one group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum GroupKey {
    Main,
    /// The start function's name and file.
    Start(String, String),
    /// Threads without a Python stack, by the pattern of their names.
    Name(String),
}

/// Where one thread goes.
struct Placement {
    key: GroupKey,
    role: GroupRole,
    start: Option<Frame>,
}

fn place(t: &ThreadSummary, frames: &[Frame], stacks: &[Vec<u32>]) -> Placement {
    let start = thread_start(t, frames, stacks);
    let (key, role) = if t.tid == t.pid.main_thread() {
        (GroupKey::Main, GroupRole::Main)
    } else if let Some(start) = &start {
        let role = if is_pool_helper(start) {
            GroupRole::Helpers
        } else {
            GroupRole::Workers
        };
        (
            GroupKey::Start(start.function.clone(), start.file.clone()),
            role,
        )
    } else if t.python {
        (
            GroupKey::Name(name_pattern(t.name.as_deref())),
            GroupRole::Workers,
        )
    } else {
        (
            GroupKey::Name(name_pattern(t.name.as_deref())),
            GroupRole::Native,
        )
    };
    Placement { key, role, start }
}

/// Threads seen without a Python stack (one that lived between two samples, or died while
/// read) join a group that has stacks: a short-lived one, the process's group of short-lived
/// threads; another, the group whose threads most often carry its name's pattern. A server's
/// request threads are one group whether or not a stack of each was caught, and whatever name
/// the kernel gave them for their first moments (3.14+ names a thread after its creator until
/// it runs).
fn adopt_stackless(threads: &[ThreadSummary], placements: &mut [Placement]) {
    // Per (pid, name pattern), and per pid for short-lived threads: votes for a placement,
    // by the index of the first thread placed there.
    let mut by_pattern: HashMap<(Pid, String), HashMap<usize, usize>> = HashMap::new();
    let mut short_lived: HashMap<Pid, HashMap<usize, usize>> = HashMap::new();
    let mut first_of: HashMap<(Pid, GroupKey), usize> = HashMap::new();
    for (i, (t, p)) in threads.iter().zip(placements.iter()).enumerate() {
        if !matches!(p.key, GroupKey::Start(..)) {
            continue;
        }
        let first = *first_of.entry((t.pid, p.key.clone())).or_insert(i);
        let votes = by_pattern
            .entry((t.pid, name_pattern(t.name.as_deref())))
            .or_default();
        *votes.entry(first).or_insert(0) += 1;
        if t.samples <= SHORT_LIVED_SAMPLES {
            *short_lived
                .entry(t.pid)
                .or_default()
                .entry(first)
                .or_insert(0) += 1;
        }
    }
    let winner = |votes: &HashMap<usize, usize>, min: usize| {
        votes
            .iter()
            .filter(|&(_, &n)| n >= min)
            .max_by_key(|&(&i, &n)| (n, std::cmp::Reverse(i)))
            .map(|(&i, _)| i)
    };
    let mut adopted: Vec<(usize, usize)> = Vec::new();
    for (i, (t, p)) in threads.iter().zip(placements.iter()).enumerate() {
        let GroupKey::Name(pattern) = &p.key else {
            continue;
        };
        let unread = t.name.is_none() && t.stacks.is_empty();
        let by_life = short_lived
            .get(&t.pid)
            .filter(|_| (t.python || unread) && t.samples <= SHORT_LIVED_SAMPLES)
            .and_then(|votes| winner(votes, 2));
        let by_name = || {
            t.python
                .then(|| by_pattern.get(&(t.pid, pattern.clone())))
                .flatten()
                .and_then(|votes| winner(votes, 1))
        };
        if let Some(host) = by_life.or_else(by_name) {
            adopted.push((i, host));
        }
    }
    for (i, host) in adopted {
        let p = &placements[host];
        let (key, role, start) = (p.key.clone(), p.role, p.start.clone());
        placements[i] = Placement { key, role, start };
    }
}

/// The threads of every process grouped, in the order their first thread appears.
pub fn group_threads(
    threads: &[ThreadSummary],
    frames: &[Frame],
    stacks: &[Vec<u32>],
) -> Vec<ThreadGroup> {
    let mut groups: Vec<ThreadGroup> = Vec::new();
    let mut index: HashMap<(Pid, GroupKey), usize> = HashMap::new();
    let mut placements: Vec<Placement> = threads.iter().map(|t| place(t, frames, stacks)).collect();
    adopt_stackless(threads, &mut placements);
    for (i, (t, Placement { key, role, start })) in threads.iter().zip(placements).enumerate() {
        let g = *index.entry((t.pid, key)).or_insert_with(|| {
            groups.push(ThreadGroup {
                pid: t.pid,
                label: String::new(),
                role,
                start: start.clone(),
                members: Vec::new(),
                time_ns: PerState::default(),
                waiting_for_work_ns: 0,
                cpu_s: 0.0,
                first_t_ns: t.first_t_ns,
                last_t_ns: t.last_t_ns,
            });
            groups.len() - 1
        });
        let group = &mut groups[g];
        group.members.push(i);
        for (state, &ns) in t.time_ns.iter() {
            group.time_ns[state] += ns;
        }
        group.waiting_for_work_ns += t.waiting_for_work_ns;
        group.cpu_s += t.cpu_s;
        group.first_t_ns = group.first_t_ns.min(t.first_t_ns);
        group.last_t_ns = group.last_t_ns.max(t.last_t_ns);
    }
    for group in &mut groups {
        group.label = label(group, threads);
    }
    groups
}

/// The function a thread was started with, from its most frequent stack that shows it.
fn thread_start(t: &ThreadSummary, frames: &[Frame], stacks: &[Vec<u32>]) -> Option<Frame> {
    let mut seen: Vec<(&(ThreadState, u32), &u64)> = t.stacks.iter().collect();
    seen.sort_by_key(|&(&(state, stack), &n)| (std::cmp::Reverse(n), state, stack));
    seen.into_iter().find_map(|(&(_, stack), _)| {
        let stack: Vec<&Frame> = stacks
            .get(stack as usize)?
            .iter()
            .filter_map(|&id| frames.get(id as usize))
            .collect();
        start_function(&stack).map(|f| Frame {
            line: 0,
            ..f.clone()
        })
    })
}

/// A name with each run of digits as `*`: `worker-3` and `worker-12` are `worker-*`. The
/// threads without a name share the empty pattern.
fn name_pattern(name: Option<&str>) -> String {
    let name = name.unwrap_or_default();
    let mut out = String::with_capacity(name.len());
    let mut in_digits = false;
    for c in name.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('*');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// A group's name: its one thread's name; the pattern most of its threads' names follow; else
/// its start function. Python before 3.10 names threads `Thread-N` whatever they run: the start
/// function is added, as 3.10 does.
fn label(group: &ThreadGroup, threads: &[ThreadSummary]) -> String {
    let start = group
        .start
        .as_ref()
        .map(|f| f.function.rsplit('.').next().unwrap_or(&f.function));
    if let [only] = group.members[..] {
        let t = &threads[only];
        if let Some(name) = &t.name {
            return name.clone();
        }
    }
    let mut patterns: HashMap<String, usize> = HashMap::new();
    let named: Vec<&str> = group
        .members
        .iter()
        .map(|&i| threads[i].name.as_deref())
        .filter(|&name| !is_os_default_thread_name(name))
        .flatten()
        .collect();
    for name in &named {
        *patterns.entry(name_pattern(Some(name))).or_insert(0) += 1;
    }
    let common = patterns
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
        .filter(|(_, n)| *n as f64 >= LABEL_PATTERN_MIN * named.len() as f64)
        .map(|(pattern, _)| pattern);
    match (common, start) {
        (Some(pattern), Some(start)) if pattern == "Thread-*" => {
            format!("Thread-* ({start})")
        }
        (Some(pattern), _) => pattern,
        (None, Some(start)) => format!("{start} threads"),
        (None, None) => "unnamed threads".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Tid;

    fn frame(function: &str, file: &str) -> Frame {
        Frame {
            function: function.into(),
            file: file.into(),
            line: 1,
        }
    }

    fn thread(pid: u32, tid: u32, name: &str, stack: Option<u32>, gil_ns: u64) -> ThreadSummary {
        let mut time_ns = PerState::default();
        time_ns[ThreadState::Gil] = gil_ns;
        ThreadSummary {
            pid: Pid(pid),
            tid: Tid(tid),
            name: (!name.is_empty()).then(|| name.into()),
            python: stack.is_some(),
            samples: 1,
            cpu_s: gil_ns as f64 / 1e9,
            time_ns,
            stacks: stack
                .map(|s| HashMap::from([((ThreadState::Gil, s), 1)]))
                .unwrap_or_default(),
            last_t_ns: 1_000,
            ..ThreadSummary::default()
        }
    }

    #[test]
    fn threads_group_by_start_function_and_pool_helpers_apart() {
        let frames = vec![
            frame("<module>", "app.py"),
            frame("crunch", "app.py"),
            frame("Thread._bootstrap", "/x/threading.py"),
            frame("_handle_results", "/x/multiprocessing/pool.py"),
            frame("process_request_thread", "/x/socketserver.py"),
        ];
        let stacks = vec![vec![0], vec![1, 2], vec![3, 2], vec![4, 2]];
        let threads = vec![
            thread(10, 10, "MainThread", Some(0), 0),
            thread(10, 11, "crunch-0", Some(1), 500),
            thread(10, 12, "crunch-1", Some(1), 500),
            thread(10, 13, "Thread-3 (_handle_results)", Some(2), 0),
            thread(10, 14, "Thread-4 (process_request_thread)", Some(3), 100),
            thread(10, 15, "python", Some(3), 100),
            thread(10, 16, "Thread-6 (process_request_thread)", Some(3), 100),
            thread(10, 17, "Thread-7 (process_request_thread)", Some(3), 100),
            thread(10, 18, "Thread-8 (process_request_thread)", Some(3), 100),
            thread(10, 19, "OpenBLAS-1", None, 0),
            thread(10, 20, "OpenBLAS-2", None, 0),
            thread(11, 21, "crunch-0", Some(1), 500),
        ];
        let groups = group_threads(&threads, &frames, &stacks);
        let summary: Vec<(u32, &str, GroupRole, usize)> = groups
            .iter()
            .map(|g| (g.pid.0, g.label.as_str(), g.role, g.threads()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (10, "MainThread", GroupRole::Main, 1),
                (10, "crunch-*", GroupRole::Workers, 2),
                (10, "Thread-3 (_handle_results)", GroupRole::Helpers, 1),
                (
                    10,
                    "Thread-* (process_request_thread)",
                    GroupRole::Workers,
                    5
                ),
                (10, "OpenBLAS-*", GroupRole::Native, 2),
                (11, "crunch-0", GroupRole::Workers, 1),
            ]
        );
        assert_eq!(groups[1].time_ns[ThreadState::Gil], 1000);
        assert_eq!(groups[3].at_once(), 0.5, "500 ns of threads over 1000 ns");
    }

    #[test]
    fn waiting_for_a_task_is_taken_out_of_the_active_shares() {
        let mut t = thread(1, 2, "worker", Some(0), 300);
        t.time_ns[ThreadState::Lock] = 700;
        t.waiting_for_work_ns = 600;
        let frames = vec![frame("work", "app.py")];
        let groups = group_threads(&[t], &frames, &[vec![0]]);
        let shares = groups[0].active_shares();
        assert_eq!(shares[ThreadState::Gil], 0.75);
        assert_eq!(shares[ThreadState::Lock], 0.25);
        assert_eq!(groups[0].waiting_for_work(), 0.6);
    }
}
