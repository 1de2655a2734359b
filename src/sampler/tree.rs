//! The root process and, with `--subprocesses`, every descendant: pool workers, forkserver,
//! `subprocess` children, started before or after sampling began.
//!
//! Descendants are found by walking `/proc/PID/task/TID/children` from the root every
//! [`DISCOVERY_INTERVAL`]. A new process is attached once it is [`ATTACH_DELAY`] old, so that a
//! `fork` followed by `exec` (spawn, forkserver, `subprocess`) has exec'd: attaching to the
//! short-lived copy of the parent would read an image about to be replaced.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::exits::ExitWatcher;
use super::{ending_of_wait_status, procfs, Interner, RecordSink, Role, Sampler, SamplerOptions};
use crate::error::Error;
use crate::model::{Ending, ProcessInfo, Record};

/// How often the process tree is walked for new descendants.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_millis(100);
/// A descendant younger than this is not attached yet (see the module documentation).
pub const ATTACH_DELAY: Duration = Duration::from_millis(40);
/// How long a Python descendant may take to initialise its interpreter before it is sampled
/// without stacks.
pub const PYTHON_STARTUP_TIMEOUT: Duration = Duration::from_secs(5);

/// A descendant found but not attached yet.
struct Pending {
    parent: u32,
    start_ticks: u64,
    found: Instant,
    /// When it was found, on the run's clock.
    found_t_ns: u64,
}

/// The processes of one run.
pub struct ProcessTree {
    root: Sampler,
    options: SamplerOptions,
    interner: Interner,
    descendants: HashMap<u32, Sampler>,
    pending: HashMap<u32, Pending>,
    /// Descendants that ended, by (pid, start time): a zombie still listed by its parent must
    /// not be attached again, while a new process reusing the pid must.
    ended: HashSet<(u32, u64)>,
    last_discovery: Option<Instant>,
    stack_errors: (u32, String),
    /// Exit statuses of descendants, where the kernel tells them (see [`ExitWatcher`]).
    exits: Option<ExitWatcher>,
    /// Whether the kernel lists each thread's children (`CONFIG_PROC_CHILDREN`); without,
    /// descendants are found by scanning every process's parent.
    children_files: bool,
}

impl ProcessTree {
    pub fn new(root: Sampler, options: SamplerOptions) -> ProcessTree {
        let children_files =
            std::path::Path::new(&format!("/proc/{0}/task/{0}/children", root.pid)).exists();
        ProcessTree {
            root,
            interner: Interner::default(),
            descendants: HashMap::new(),
            pending: HashMap::new(),
            ended: HashSet::new(),
            last_discovery: None,
            stack_errors: (0, String::new()),
            exits: options.subprocesses.then(ExitWatcher::open).flatten(),
            children_files,
            options,
        }
    }

    pub fn root(&self) -> &Sampler {
        &self.root
    }

    /// Samples every process once. `Some(ending)` when the root ended: the run is over.
    /// Descendants that end are reported with [`Record::ProcessEnd`] and sampling goes on.
    pub fn tick(
        &mut self,
        t_ns: u64,
        sink: &mut impl RecordSink,
    ) -> std::io::Result<Option<Ending>> {
        let root_ending = self.root.tick(t_ns, &mut self.interner, sink)?;
        if !self.options.subprocesses {
            return Ok(root_ending);
        }
        if root_ending.is_some() {
            // A last look at the descendants, to record those that ended with the root.
            self.tick_descendants(t_ns, sink)?;
            return Ok(root_ending);
        }
        if self
            .last_discovery
            .is_none_or(|at| at.elapsed() >= DISCOVERY_INTERVAL)
        {
            self.last_discovery = Some(Instant::now());
            self.discover(t_ns);
        }
        self.attach_pending(sink)?;
        self.tick_descendants(t_ns, sink)?;
        Ok(None)
    }

    /// Samples every attached descendant; those that ended are reported and dropped.
    fn tick_descendants(&mut self, t_ns: u64, sink: &mut impl RecordSink) -> std::io::Result<()> {
        if let Some(exits) = &mut self.exits {
            let ours = &self.descendants;
            exits.poll(|pid| ours.contains_key(&pid));
        }
        let mut ended = Vec::new();
        for (&pid, sampler) in &mut self.descendants {
            if let Some(ending) = sampler.tick(t_ns, &mut self.interner, sink)? {
                ended.push((pid, ending));
            }
        }
        for (pid, mut ending) in ended {
            if ending == Ending::TargetGone {
                // Reaped by its parent before gilscope saw the zombie: ask the kernel's record.
                if let Some(status) = self.exits.as_mut().and_then(|e| e.take(pid)) {
                    ending = ending_of_wait_status(status);
                }
            }
            if let Some(sampler) = self.descendants.remove(&pid) {
                self.ended.insert((pid, sampler.start_ticks));
                add_stack_errors(&mut self.stack_errors, &sampler);
            }
            sink.record(&Record::ProcessEnd { pid, t_ns, ending })?;
        }
        Ok(())
    }

    /// The stack errors of every process, as one record (`None` when there were none).
    pub fn stack_errors(&mut self) -> Option<Record> {
        for sampler in self.descendants.values().chain([&self.root]) {
            add_stack_errors(&mut self.stack_errors, sampler);
        }
        let (count, last) = &self.stack_errors;
        (*count > 0).then(|| Record::StackErrors {
            count: *count,
            last: last.clone(),
        })
    }

    /// Finds descendants not seen before: children of the root and of every descendant.
    fn discover(&mut self, t_ns: u64) {
        let mut parents: Vec<u32> = vec![self.root.pid];
        parents.extend(self.descendants.keys());
        parents.extend(self.pending.keys());
        let mut seen: HashSet<u32> = parents.iter().copied().collect();
        let found = if !self.children_files {
            descendants_by_scan(self.root.pid)
        } else {
            let mut found = Vec::new();
            let mut queue = parents;
            while let Some(parent) = queue.pop() {
                let mut children = Vec::new();
                if procfs::list_children(parent, &mut children).is_err() {
                    continue;
                }
                for child in children {
                    if seen.insert(child) {
                        found.push((child, parent));
                        queue.push(child);
                    }
                }
            }
            found
        };
        for (pid, parent) in found {
            if self.descendants.contains_key(&pid) || self.pending.contains_key(&pid) {
                continue;
            }
            let Ok(stat) = procfs::process_stat(pid) else {
                continue;
            };
            if self.ended.contains(&(pid, stat.start_ticks)) || stat.state == b'Z' {
                continue;
            }
            self.pending.insert(
                pid,
                Pending {
                    parent,
                    start_ticks: stat.start_ticks,
                    found: Instant::now(),
                    found_t_ns: t_ns,
                },
            );
        }
    }

    /// Attaches the descendants old enough; a Python one that is still starting is retried.
    fn attach_pending(&mut self, sink: &mut impl RecordSink) -> std::io::Result<()> {
        let ready: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| p.found.elapsed() >= ATTACH_DELAY)
            .map(|(&pid, _)| pid)
            .collect();
        for pid in ready {
            let Some(pending) = self.pending.get(&pid) else {
                continue;
            };
            let still_same = procfs::process_stat(pid)
                .is_ok_and(|s| s.start_ticks == pending.start_ticks && s.state != b'Z');
            if !still_same {
                self.pending.remove(&pid);
                continue;
            }
            let attached = match Sampler::attach(pid, &self.options, Role::Descendant) {
                Ok(sampler) => Some(sampler),
                Err(Error::PythonUnreadable { .. })
                    if pending.found.elapsed() < PYTHON_STARTUP_TIMEOUT =>
                {
                    continue; // its interpreter is not up yet
                }
                Err(Error::NoSuchProcess(_)) => None,
                Err(e) => {
                    let note = match e {
                        Error::NotPython { .. } => "not Python: threads without stacks".into(),
                        other => format!("stacks unreadable ({other}): threads without stacks"),
                    };
                    Sampler::attach_without_python(pid, &self.options, Role::Descendant, note).ok()
                }
            };
            let Some(pending) = self.pending.remove(&pid) else {
                continue;
            };
            let Some(sampler) = attached else {
                continue;
            };
            let info = sampler.target_info();
            sink.record(&Record::Process(ProcessInfo {
                pid,
                parent: pending.parent,
                command: info.command.clone(),
                python: sampler.is_python().then(|| info.python.clone()),
                gil_wait_visible: info.gil_wait_visible,
                t_ns: pending.found_t_ns,
                notes: info.notes.clone(),
            }))?;
            self.descendants.insert(pid, sampler);
        }
        Ok(())
    }
}

/// Adds a sampler's stack errors to a run's (count, last reason).
fn add_stack_errors(total: &mut (u32, String), sampler: &Sampler) {
    if sampler.stack_errors > 0 {
        total.0 = total.0.saturating_add(sampler.stack_errors);
        total.1 = sampler.last_stack_error.clone();
    }
}

/// Descendants of `root` as (pid, parent) pairs, from a scan of every process's parent.
fn descendants_by_scan(root: u32) -> Vec<(u32, u32)> {
    let Ok(pairs) = procfs::parent_map() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in &pairs {
            if ppid == parent && pid != root && !found.iter().any(|&(p, _)| p == pid) {
                found.push((pid, parent));
                frontier.push(pid);
            }
        }
    }
    found
}
