//! One tick of an attached process: the kernel states, the GIL, the Python stacks, the names, as
//! records.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use crate::model::{
    Attachment, CpythonGilFlags, CpythonThreadStatus, Ending, Frame, GilReading, Pid, Record,
    Sample, TargetInfo, ThreadSample, Tid, RUN_DELAYS_EVERY_NS,
};

use super::cpython::frames::CriticalSection;
use super::cpython::gil::ThreadRef;
use super::namespace::{TargetTid, TidMap};
use super::procfs::{self, ThreadFiles, ThreadKernelState};
use super::{
    cpython, still_our_target, Interner, ProcessSampler, PythonReader, RecordSink, Role,
    GIL_RANGES_REFRESH, GIL_USERS_WAIT, MAX_STACK_DEPTH,
};

/// Where a free-threaded object keeps its lock: `ob_mutex`, after `ob_tid` and a 16-bit
/// field, in 3.13 to 3.15.
const OB_MUTEX_OFFSET: u64 = 10;

impl ProcessSampler {
    pub fn target_info(&self) -> &TargetInfo {
        &self.info
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn is_python(&self) -> bool {
        self.python.is_some()
    }

    /// Takes one sample at `t_ns`, sending it and any newly seen frames, stacks and names.
    /// Returns `Some(ending)`, and sends nothing, once the target is no longer the process
    /// gilscope attached to.
    pub fn tick(
        &mut self,
        t_ns: u64,
        interner: &mut Interner,
        sink: &mut impl RecordSink,
    ) -> std::io::Result<Option<Ending>> {
        let stat = self
            .process_stat
            .read(&mut self.buf)
            .ok()
            .and_then(procfs::parse_stat);
        let stat = match still_our_target(stat, self.start_ticks) {
            Ok(stat) => stat,
            Err(ending) => return Ok(Some(ending)),
        };
        let process_cpu_ns = Some(stat.cpu_ticks * self.ns_per_tick);
        self.refresh_gil_ranges(sink)?;
        // Listing /proc/PID/task costs more than reading it: list again only when the thread
        // count moved, or a thread's files stopped reading (it exited, maybe replaced by another).
        let listed = self.relist || stat.num_threads as usize != self.tids.len();
        let mut threads_changed = listed && self.refresh_threads();
        self.relist = false;
        let (mut threads, mut kernels) = self.read_kernel_states();
        // A thread that exited since the last listing is not in this sample; when the count
        // stayed the same (one thread-per-request thread replaced by the next), list again now,
        // so the new threads are read at this tick rather than the next.
        if self.relist && !listed && self.refresh_threads() {
            threads_changed = true;
            self.relist = false;
            (threads, kernels) = self.read_kernel_states();
        }
        if threads_changed {
            self.pthread_cache.clear();
        }
        // The GIL is read next to the threads' kernel states, before the stacks.
        let nothing_ran = !threads_changed && self.did_not_run.len() == threads.len();
        let gil = if nothing_ran && !threads.is_empty() {
            // No thread executed since the last tick: every Python stack, and the GIL, are as
            // they were.
            for t in &mut threads {
                (t.python, t.stack) = self.previous.stack_of(t.tid);
            }
            self.previous.gil
        } else {
            let gil = self.read_gil();
            self.walk_stacks(&mut threads, threads_changed, interner, sink)?;
            gil
        };
        if !nothing_ran {
            self.note_gc(t_ns, sink)?;
        }
        self.note_gil_enabled(t_ns, gil, sink)?;
        self.previous.remember(&threads, &kernels, gil);
        self.note_run_delays(t_ns, &threads, &kernels, sink)?;
        self.kernels = kernels;
        self.note_os_names(&threads, sink)?;
        let sample = Sample {
            t_ns,
            process_cpu_ns,
            gil,
            threads,
        };
        sink.record(&self.role.sample(self.pid, sample))?;
        Ok(None)
    }

    /// Every thread's kernel state (syscall, CPU time), as a sample without stacks yet. A
    /// thread that has not run since the last tick is still blocked where it was, with the
    /// same frames: its costlier syscall read is skipped (and, later, its stack walk).
    fn read_kernel_states(&mut self) -> (Vec<ThreadSample>, Vec<ThreadKernelState>) {
        let mut threads: Vec<ThreadSample> = Vec::with_capacity(self.tids.len());
        let mut kernels = std::mem::take(&mut self.kernels);
        kernels.clear();
        self.did_not_run.clear();
        for &tid in &self.tids {
            let kernel = match self.threads.get_mut(&tid) {
                Some(files) => {
                    let Some(cpu) = files.read_cpu(&mut self.buf) else {
                        // Its files stopped reading: the thread exited since the listing.
                        self.relist = true;
                        continue;
                    };
                    match self.previous.unchanged(tid, Some(cpu)) {
                        Some(kernel) => {
                            self.did_not_run.insert(tid);
                            kernel
                        }
                        None => files.read_syscall(&mut self.buf, Some(cpu)),
                    }
                }
                None => Default::default(),
            };
            self.relist |= kernel.syscall.is_none();
            threads.push(ThreadSample {
                tid,
                syscall: kernel.syscall,
                cpu_ns: kernel.cpu.map(|c| c.ns),
                stack: None,
                python: false,
            });
            kernels.push(kernel);
        }
        (threads, kernels)
    }

    /// Sends the threads' run delays when [`RUN_DELAYS_EVERY_NS`] has passed since the last.
    fn note_run_delays(
        &mut self,
        t_ns: u64,
        threads: &[ThreadSample],
        kernels: &[ThreadKernelState],
        sink: &mut impl RecordSink,
    ) -> std::io::Result<()> {
        if self
            .run_delays_sent_ns
            .is_some_and(|sent| t_ns < sent + RUN_DELAYS_EVERY_NS)
        {
            return Ok(());
        }
        self.run_delays_sent_ns = Some(t_ns);
        let delays = threads
            .iter()
            .zip(kernels)
            .filter_map(|(t, k)| Some((t.tid, k.cpu?.run_delay_ns)))
            .collect();
        sink.record(&Record::RunDelays {
            pid: Pid(self.pid),
            t_ns,
            threads: delays,
        })
    }

    /// Sends a thread's OS name until its Python name is read.
    fn note_os_names(
        &mut self,
        threads: &[ThreadSample],
        sink: &mut impl RecordSink,
    ) -> std::io::Result<()> {
        for t in threads {
            if !self.names.contains_key(&t.tid) {
                let name = procfs::thread_comm(self.pid, t.tid).unwrap_or_default();
                self.note_thread_name(t.tid, name, sink)?;
            }
        }
        Ok(())
    }

    /// Reads every thread's Python stack and fills them in: with gilscope's own walk where it
    /// can, with py-spy's when the thread set changed or the names are due for a refresh.
    fn walk_stacks(
        &mut self,
        threads: &mut [ThreadSample],
        threads_changed: bool,
        interner: &mut Interner,
        sink: &mut impl RecordSink,
    ) -> std::io::Result<()> {
        let names_due = self.name_clock.due(threads_changed);
        // Only a thread changes its own frames: those that did not run are not walked.
        let (did_not_run, pthreads, tid_map) =
            (&self.did_not_run, &self.pthread_cache, &self.tid_map);
        let unchanged = |thread| did_not_run_since(thread, did_not_run, pthreads, tid_map);
        let walked = match self.python.as_mut() {
            Some(PythonReader {
                walker: Some(walker),
                spy,
                ..
            }) if !names_due || spy.is_none() => walker.walk(&self.mem, MAX_STACK_DEPTH, unchanged),
            _ => return self.walk_stacks_with_py_spy(threads, interner, sink),
        };
        if names_due {
            self.read_thread_names(sink)?;
        }
        let walked = match walked {
            Ok(walked) => walked,
            Err(e) => {
                self.stack_error(e.to_string());
                return Ok(());
            }
        };
        let mut flags = Vec::new();
        let mut statuses = Vec::new();
        let someone_waits = walked.iter().any(|t| {
            t.status
                .is_some_and(|s| s.critical_section == CriticalSection::Entering)
        });
        for thread in walked {
            let Some(tid) = self.resolve(thread.thread) else {
                continue;
            };
            if let Some(s) = thread.status {
                let held = match s.critical_section {
                    CriticalSection::Holding(mutex) if someone_waits => self.lock_owner_type(mutex),
                    _ => None,
                };
                statuses.push(CpythonThreadStatus {
                    tid,
                    attachment: Attachment::from_state(s.state),
                    entering_critical_section: s.critical_section == CriticalSection::Entering,
                    holds_lock_of: held,
                });
            }
            if let Some(f) = thread.gil_flags {
                flags.push(CpythonGilFlags {
                    tid,
                    holds_gil: f.holds_gil,
                    gil_requested: f.gil_requested,
                });
            }
            let stack = match thread.stack {
                Some(walked) => interner.stack(self.pid, walked.frames, walked.depth, sink)?,
                None => self.previous.stack_of(tid).1,
            };
            fill_in(threads, tid, stack);
        }
        if !flags.is_empty() && self.role == Role::Root {
            sink.record(&Record::CpythonGilFlags(flags))?;
        }
        if !statuses.is_empty() {
            sink.record(&Record::ThreadStatuses {
                pid: Pid(self.pid),
                threads: statuses,
            })?;
        }
        Ok(())
    }

    /// On a free-threaded build (the root or a descendant), when the GIL is found enabled (at the first reading, or
    /// after it was disabled), sends which extension modules keep it on. The GIL comes on
    /// while such a module initialises, before `sys.modules` holds it: the modules are looked
    /// for at the following ticks too, for up to [`GIL_USERS_WAIT`].
    fn note_gil_enabled(
        &mut self,
        t_ns: u64,
        gil: Option<GilReading>,
        sink: &mut impl RecordSink,
    ) -> std::io::Result<()> {
        let Some(python) = &mut self.python else {
            return Ok(());
        };
        if let Some(enabled) = gil.and_then(|g| g.enabled) {
            if enabled && python.gil_was_enabled != Some(true) {
                python.gil_enabled_at = Some((t_ns, Instant::now()));
            }
            python.gil_was_enabled = Some(enabled);
            // Importing an extension turns the GIL on while the module initialises, and off
            // again when it declares free-threading support: a GIL off again before its
            // modules were named was on for an import, not for good.
            if !enabled {
                python.gil_enabled_at = None;
            }
        }
        let Some((at_ns, since)) = python.gil_enabled_at else {
            return Ok(());
        };
        let modules = python
            .objects
            .as_ref()
            .map(|objects| objects.gil_users(&self.mem, python.interpreter))
            .unwrap_or_default();
        if modules.is_empty() && since.elapsed() < GIL_USERS_WAIT {
            return Ok(());
        }
        python.gil_enabled_at = None;
        sink.record(&match self.role {
            Role::Root => Record::GilEnabled {
                t_ns: at_ns,
                modules,
            },
            Role::Descendant => Record::ProcessGilEnabled {
                pid: Pid(self.pid),
                t_ns: at_ns,
                modules,
            },
        })
    }

    /// The type of the object whose `ob_mutex` is at `mutex`, where it reads as one.
    fn lock_owner_type(&self, mutex: u64) -> Option<String> {
        let objects = self.python.as_ref()?.objects.as_ref()?;
        objects.type_name(&self.mem, mutex.checked_sub(OB_MUTEX_OFFSET)?)
    }

    /// Reads the collector's flag; sends it when it changed (and at the first reading).
    fn note_gc(&mut self, t_ns: u64, sink: &mut impl RecordSink) -> std::io::Result<()> {
        let Some(python) = &mut self.python else {
            return Ok(());
        };
        let Some(flag) = python.gc_flag else {
            return Ok(());
        };
        let Ok(collecting) = cpython::gc::read_collecting(&self.mem, flag) else {
            return Ok(());
        };
        if python.gc_was != Some(collecting) {
            python.gc_was = Some(collecting);
            sink.record(&Record::GcCollecting {
                pid: Pid(self.pid),
                t_ns,
                collecting,
            })?;
        }
        Ok(())
    }

    /// Reads the thread names with gilscope's own reader, where py-spy cannot.
    fn read_thread_names(&mut self, sink: &mut impl RecordSink) -> std::io::Result<()> {
        let Some(PythonReader {
            spy: None,
            objects: Some(reader),
            interpreter,
            ..
        }) = &self.python
        else {
            return Ok(());
        };
        let names = reader.thread_names(&self.mem, *interpreter);
        self.name_clock.read_now();
        for (target_tid, name) in names {
            let Some(tid) = self.resolve(ThreadRef::Tid(target_tid)) else {
                continue;
            };
            self.note_thread_name(tid, name, sink)?;
        }
        Ok(())
    }

    /// Sends a thread's Python name when it is new or changed.
    fn note_thread_name(
        &mut self,
        tid: Tid,
        name: String,
        sink: &mut impl RecordSink,
    ) -> std::io::Result<()> {
        if self.names.get(&tid) != Some(&name) {
            sink.record(&Record::ThreadName {
                tid,
                name: name.clone(),
            })?;
            self.names.insert(tid, name);
        }
        Ok(())
    }

    fn stack_error(&mut self, error: String) {
        self.stack_errors = self.stack_errors.saturating_add(1);
        self.last_stack_error = error;
    }

    fn walk_stacks_with_py_spy(
        &mut self,
        threads: &mut [ThreadSample],
        interner: &mut Interner,
        sink: &mut impl RecordSink,
    ) -> std::io::Result<()> {
        let Some(spy) = self.python.as_mut().and_then(|p| p.spy.as_mut()) else {
            return Ok(());
        };
        self.name_clock.read_now();
        let traces = match spy.get_stack_traces() {
            Ok(traces) => traces,
            Err(e) => {
                self.stack_error(e.root_cause().to_string());
                Vec::new()
            }
        };
        for trace in traces {
            // Without `native_thread_id` (before 3.11) py-spy gives the pthread_t only.
            let thread = trace
                .os_thread_id
                .map_or(ThreadRef::Pthread(trace.thread_id), |tid| {
                    ThreadRef::Tid(TargetTid(tid as u32))
                });
            let Some(tid) = self.resolve(thread) else {
                continue;
            };
            let depth = trace.frames.len();
            let frames = trace.frames.into_iter().map(|frame| Frame {
                function: frame.name,
                file: frame.filename,
                line: frame.line,
            });
            let stack = interner.stack(self.pid, frames, depth, sink)?;
            if let Some(name) = trace.thread_name {
                self.note_thread_name(tid, name, sink)?;
            }
            fill_in(threads, tid, stack);
        }
        Ok(())
    }

    /// Re-lists the target's threads, opening files for new ones. True when the set changed.
    fn refresh_threads(&mut self) -> bool {
        let before = self.tids.len();
        let previous: HashSet<Tid> = self.tids.iter().copied().collect();
        if procfs::list_threads(self.pid, &mut self.tids).is_err() {
            self.tids.clear();
        }
        self.tids.sort_unstable();
        let mut changed = before != self.tids.len();
        for &tid in &self.tids {
            if !previous.contains(&tid) {
                changed = true;
                if let Ok(files) = ThreadFiles::open(self.pid, tid) {
                    self.threads.insert(tid, files);
                }
            }
        }
        if let (true, Some(spy)) = (changed, self.python.as_mut().and_then(|p| p.spy.as_mut())) {
            // py-spy caches names by pthread_t, which a new thread reuses from an exited one.
            spy.python_thread_names.clear();
        }
        if changed {
            let live: HashSet<Tid> = self.tids.iter().copied().collect();
            self.threads.retain(|tid, _| live.contains(tid));
            self.names.retain(|tid, _| live.contains(tid));
            self.tid_map.update(self.pid, &self.tids);
        }
        changed
    }

    fn refresh_gil_ranges(&mut self, sink: &mut impl RecordSink) -> std::io::Result<()> {
        let Some(python) = &mut self.python else {
            return Ok(());
        };
        if python
            .gil_ranges_read
            .is_some_and(|at| at.elapsed() < GIL_RANGES_REFRESH)
        {
            return Ok(());
        }
        python.gil_ranges_read = Some(Instant::now());
        if let Ok(ranges) = python.gil.ranges(&self.mem) {
            python.main_gil = ranges.first().map(|r| r.0);
            if ranges != python.gil_ranges {
                sink.record(&self.role.gil_ranges(self.pid, ranges.clone()))?;
                python.gil_ranges = ranges;
            }
        }
        Ok(())
    }

    fn read_gil(&mut self) -> Option<GilReading> {
        let python = self.python.as_ref()?;
        let raw = python.gil.read(&self.mem, python.main_gil?).ok()?;
        let holder = python.gil.holder(&self.mem, &raw);
        let holder_tid = holder.and_then(|thread| self.resolve(thread));
        Some(GilReading {
            locked: raw.locked,
            holder_tid,
            switch_number: Some(raw.switch_number),
            enabled: raw.enabled,
        })
    }

    /// The kernel tid of a thread state's thread.
    /// Every thread id read from the target's memory goes through here: it is the target's
    /// PID namespace's, translated to gilscope's (see [`namespace`]).
    fn resolve(&mut self, thread: ThreadRef) -> Option<Tid> {
        match thread {
            ThreadRef::Tid(tid) => self.tid_map.to_ours(tid),
            ThreadRef::Pthread(pthread) => self.pthread_to_tid(pthread),
        }
    }

    /// Cached per `pthread_t`; the cache is cleared whenever the thread set changes, which is
    /// the only way a `pthread_t` can come to name another thread.
    fn pthread_to_tid(&mut self, pthread: u64) -> Option<Tid> {
        if let Some(&tid) = self.pthread_cache.get(&pthread) {
            return Some(tid);
        }
        let tid = self
            .python
            .as_ref()?
            .pthread_tid?
            .tid(&self.mem, pthread)
            .ok()?;
        let tid = self.tid_map.to_ours(tid)?;
        if self.tids.binary_search(&tid).is_err() {
            return None;
        }
        self.pthread_cache.insert(pthread, tid);
        Some(tid)
    }
}

/// Whether a thread, as the target's memory names it, has not run since the last tick: a
/// thread id read from the target is translated to gilscope's before it is looked up.
fn did_not_run_since(
    thread: ThreadRef,
    did_not_run: &HashSet<Tid>,
    pthreads: &HashMap<u64, Tid>,
    tid_map: &TidMap,
) -> bool {
    let ours = match thread {
        ThreadRef::Tid(theirs) => tid_map.to_ours(theirs),
        ThreadRef::Pthread(p) => pthreads.get(&p).copied(),
    };
    ours.is_some_and(|tid| did_not_run.contains(&tid))
}

/// Marks thread `tid` (in `threads`, sorted by tid) as a Python thread with this stack.
fn fill_in(threads: &mut [ThreadSample], tid: Tid, stack: Option<u32>) {
    if let Ok(i) = threads.binary_search_by_key(&tid, |t| t.tid) {
        threads[i].python = true;
        threads[i].stack = stack;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a container the target calls its thread 7 where gilscope's `/proc` says 4007; 7 is
    /// also one of gilscope's ids, of another thread that did not run.
    #[test]
    fn a_thread_id_from_the_target_is_translated_before_it_is_looked_up() {
        let tid_map = TidMap::translating(&[(7, 4007), (8, 4008)]);
        let did_not_run: HashSet<Tid> = [Tid(7), Tid(4008)].into();
        let pthreads: HashMap<u64, Tid> = [(0xaa, Tid(4008))].into();
        let still = |thread| did_not_run_since(thread, &did_not_run, &pthreads, &tid_map);
        assert!(!still(ThreadRef::Tid(TargetTid(7))), "4007 ran");
        assert!(still(ThreadRef::Tid(TargetTid(8))));
        assert!(!still(ThreadRef::Tid(TargetTid(9))), "unknown to the map");
        assert!(still(ThreadRef::Pthread(0xaa)));
        assert!(!still(ThreadRef::Pthread(0xbb)));
    }
}
