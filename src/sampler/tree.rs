//! The root process and, with `--subprocesses`, every descendant: pool workers, forkserver,
//! `subprocess` children, started before or after sampling began.
//!
//! Descendants are found by walking `/proc/PID/task/TID/children` from the root every
//! [`DISCOVERY_INTERVAL`]. A new process is attached once it is [`ATTACH_DELAY`] old, so that a
//! `fork` followed by `exec` (spawn, forkserver, `subprocess`) has exec'd: attaching to the
//! short-lived copy of the parent would read an image about to be replaced.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::exits::ExitWatcher;
use super::{procfs, Interner, ProcessSampler, RecordSink, Role, SamplerOptions};
use crate::error::Error;
use crate::model::{Ending, Pid, ProcessInfo, Record};

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
    /// When it was found, on the run's clock.
    found_t_ns: u64,
}

impl Pending {
    fn age(&self, t_ns: u64) -> Duration {
        Duration::from_nanos(t_ns.saturating_sub(self.found_t_ns))
    }
}

/// The processes of one run.
pub struct ProcessTree {
    root: ProcessSampler,
    options: SamplerOptions,
    interner: Interner,
    descendants: HashMap<u32, ProcessSampler>,
    pending: HashMap<u32, Pending>,
    /// When the tree was last walked, on the run's clock.
    last_discovery: Option<u64>,
    stack_errors: (u32, String),
    /// Exit statuses of descendants, where the kernel tells them (see [`ExitWatcher`]).
    exits: Option<ExitWatcher>,
    /// Whether the kernel lists each thread's children (`CONFIG_PROC_CHILDREN`); without,
    /// descendants are found by scanning every process's parent.
    children_files: bool,
}

impl ProcessTree {
    pub fn new(root: ProcessSampler, options: SamplerOptions) -> ProcessTree {
        let children_files =
            std::path::Path::new(&format!("/proc/{0}/task/{0}/children", root.pid)).exists();
        ProcessTree {
            root,
            interner: Interner::default(),
            descendants: HashMap::new(),
            pending: HashMap::new(),
            last_discovery: None,
            stack_errors: (0, String::new()),
            exits: options.subprocesses.then(ExitWatcher::open).flatten(),
            children_files,
            options,
        }
    }

    pub fn root(&self) -> &ProcessSampler {
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
            .is_none_or(|at| t_ns.saturating_sub(at) >= DISCOVERY_INTERVAL.as_nanos() as u64)
        {
            self.last_discovery = Some(t_ns);
            self.discover(t_ns);
        }
        self.attach_pending(t_ns, sink)?;
        self.tick_descendants(t_ns, sink)?;
        Ok(None)
    }

    /// Samples every attached descendant; those that ended are reported and dropped.
    fn tick_descendants(&mut self, t_ns: u64, sink: &mut impl RecordSink) -> std::io::Result<()> {
        if self.descendants.is_empty() {
            return Ok(());
        }
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
            let status = self.exits.as_mut().and_then(|e| e.take(pid));
            if let (Ending::TargetGone, Some(status)) = (&ending, status) {
                // Reaped by its parent before gilscope saw the zombie: the kernel's record.
                ending = Ending::of_wait_status(status);
            }
            if let Some(sampler) = self.descendants.remove(&pid) {
                add_stack_errors(&mut self.stack_errors, &sampler);
            }
            sink.record(&Record::ProcessEnd {
                pid: Pid(pid),
                t_ns,
                ending,
            })?;
        }
        Ok(())
    }

    /// The stack errors of every process so far, as one record (`None` when there were none).
    pub fn stack_errors(&self) -> Option<Record> {
        let mut total = self.stack_errors.clone();
        for sampler in self.descendants.values().chain([&self.root]) {
            add_stack_errors(&mut total, sampler);
        }
        let (count, last) = total;
        (count > 0).then_some(Record::StackErrors { count, last })
    }

    /// Finds descendants not seen before: children of the root and of every descendant.
    fn discover(&mut self, t_ns: u64) {
        // Without `children` files, one scan of every process's parent serves the whole walk.
        let parents_scan = if self.children_files {
            None
        } else {
            procfs::parent_map().ok()
        };
        let mut queue: Vec<u32> = vec![self.root.pid];
        queue.extend(self.descendants.keys());
        queue.extend(self.pending.keys());
        let mut seen: HashSet<u32> = queue.iter().copied().collect();
        let mut children = Vec::new();
        while let Some(parent) = queue.pop() {
            children.clear();
            match &parents_scan {
                Some(pairs) => children.extend(
                    pairs
                        .iter()
                        .filter(|&&(_, ppid)| ppid == parent)
                        .map(|&(pid, _)| pid),
                ),
                None => {
                    if procfs::list_children(parent, &mut children).is_err() {
                        continue;
                    }
                }
            }
            for &pid in &children {
                if !seen.insert(pid) {
                    continue;
                }
                queue.push(pid);
                // A zombie (dead, not yet reaped by its parent) has nothing left to sample; one
                // that ended while attached is reported already.
                match procfs::process_stat(pid) {
                    Ok(stat) if !matches!(stat.state, b'Z' | b'X') => {
                        self.pending.insert(
                            pid,
                            Pending {
                                parent,
                                start_ticks: stat.start_ticks,
                                found_t_ns: t_ns,
                            },
                        );
                    }
                    _ => {}
                }
            }
        }
    }

    /// Attaches the descendants old enough; a Python one that is still starting is retried.
    fn attach_pending(&mut self, t_ns: u64, sink: &mut impl RecordSink) -> std::io::Result<()> {
        let ready: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| p.age(t_ns) >= ATTACH_DELAY)
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
            let attached = match ProcessSampler::attach(pid, &self.options, Role::Descendant) {
                Ok(sampler) => Some(sampler),
                Err(Error::PythonUnreadable { .. })
                    if pending.age(t_ns) < PYTHON_STARTUP_TIMEOUT =>
                {
                    continue; // its interpreter is not up yet
                }
                Err(Error::NoSuchProcess(_)) => None,
                Err(e) => {
                    let note = match e {
                        Error::NotPython { .. } => "not Python: threads without stacks".into(),
                        other => format!("stacks unreadable ({other}): threads without stacks"),
                    };
                    ProcessSampler::attach_without_python(
                        pid,
                        &self.options,
                        Role::Descendant,
                        note,
                    )
                    .ok()
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
                pid: Pid(pid),
                parent: Pid(pending.parent),
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
fn add_stack_errors(total: &mut (u32, String), sampler: &ProcessSampler) {
    if sampler.stack_errors > 0 {
        total.0 = total.0.saturating_add(sampler.stack_errors);
        total.1 = sampler.last_stack_error.clone();
    }
}
