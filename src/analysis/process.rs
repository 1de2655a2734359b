//! One process's accumulation: its threads, the GIL's holders and hand-offs, tick by tick.

use std::collections::HashMap;

use crate::classify::{classify, is_transit_candidate, Arch, Observation};
use crate::known_frames::{
    descendant_role, is_os_default_thread_name, ProcessRole, MAIN_THREAD_NAME,
};
use crate::model::{
    Attachment, CpythonThreadStatus, Ending, ExtensionModule, Frame, GilReading, Pid, Sample,
    ThreadSample, Tid,
};

use super::summary::{
    AttachmentCounts, GilSegment, Holder, ProcessSummary, ThreadSummary, MAX_TIMELINE_SEGMENTS,
};
use super::thread::{LineUse, Pending, StackMeanings, ThreadAcc};
use super::timeline::Totals;

/// One process's accumulation.
#[derive(Debug, Clone, Default)]
pub(super) struct ProcessAcc {
    pub(super) pid: Pid,
    pub(super) parent: Option<Pid>,
    pub(super) command: Vec<String>,
    pub(super) python: Option<String>,
    pub(super) gil_wait_visible: bool,
    pub(super) notes: Vec<String>,
    pub(super) found_t_ns: Option<u64>,
    pub(super) gil_ranges: Vec<(u64, u64)>,
    pub(super) finished: Vec<ThreadSummary>,
    /// Threads present in the last sample, by tid: a tid that vanishes and comes back is a
    /// new thread (the kernel reuses ids).
    pub(super) live: HashMap<Tid, ThreadAcc>,
    pub(super) ticks: u64,
    pub(super) first_t_ns: Option<u64>,
    pub(super) last_t_ns: Option<u64>,
    pub(super) gil_readings: u64,
    pub(super) gil_locked: u64,
    /// Readings with the GIL locked by a thread that could not be mapped to one sampled.
    pub(super) gil_unmapped: u64,
    pub(super) switches: Option<((u64, u64), (u64, u64))>,
    pub(super) process_cpu: Option<((u64, u64), (u64, u64))>,
    pub(super) thread_cpu_ns: u64,
    pub(super) gil_timeline: Vec<GilSegment>,
    pub(super) last_switch_number: Option<u64>,
    pub(super) ending: Option<Ending>,
    /// The collector's flag as last sent (`None`: not read in this process).
    pub(super) gc: Option<bool>,
    pub(super) gc_readings: u64,
    pub(super) gc_ticks: u64,
    /// The collecting thread's innermost frame at collecting ticks: where it allocated.
    pub(super) gc_frames: HashMap<u32, u64>,
    /// Each thread's status as last read (3.13+): it holds until the next reading, as a
    /// thread that did not run between two ticks is not walked again.
    pub(super) statuses: HashMap<Tid, CpythonThreadStatus>,
    pub(super) status_ticks: u64,
    pub(super) stopped_ticks: u64,
    /// When its free-threaded build's GIL came on, and the modules that did it.
    pub(super) gil_enabled: Option<(u64, Vec<ExtensionModule>)>,
    /// See [`ProcessSummary::contended_objects`].
    pub(super) contended_objects: HashMap<String, u64>,
}

/// The GIL and the collector at one tick of a process, as each of its threads is counted.
pub(super) struct TickGil {
    pub(super) holder: Option<Tid>,
    /// The holder, where it is one of the process's sampled threads.
    pub(super) holding: Option<Holder>,
    pub(super) locked: bool,
    /// The collector was collecting.
    pub(super) collecting: bool,
}

/// What every process's samples share: the interned stacks, the clock's windows, names.
pub(super) struct Shared<'a> {
    pub(super) frames: &'a [Frame],
    pub(super) stacks: &'a [Vec<u32>],
    pub(super) names: &'a HashMap<Tid, String>,
    pub(super) totals: Totals<'a>,
    pub(super) meanings: &'a mut StackMeanings,
    pub(super) lines: &'a mut LineUse,
    pub(super) arch: Arch,
    pub(super) interval_ns: u64,
    /// Only the root's ticks and GIL readings go into the windows.
    pub(super) root: bool,
}

impl ProcessAcc {
    pub(super) fn push_sample(&mut self, sample: &Sample, shared: &mut Shared) {
        let t = sample.t_ns;
        if self.last_t_ns.is_some_and(|last| t < last) {
            return; // out of order: a corrupt or concatenated file
        }
        self.first_t_ns.get_or_insert(t);
        self.ticks += 1;
        let window = shared.totals.windows.at_time(t);
        if shared.root {
            window.ticks += 1;
        }
        if let Some(gil) = sample.gil {
            self.count_gil(t, gil, shared);
        }
        if let Some(cpu) = sample.process_cpu_ns {
            let first = self.process_cpu.map_or((t, cpu), |(first, _)| first);
            self.process_cpu = Some((first, (t, cpu)));
        }
        let holder = sample
            .gil
            .and_then(|g| if g.locked { g.holder_tid } else { None });
        let top_frame = |stack: Option<u32>| shared.stacks.get(stack? as usize)?.first().copied();
        let holding = holder
            .and_then(|tid| sample.threads.iter().find(|ts| ts.tid == tid))
            .map(|ts| Holder {
                tid: ts.tid,
                frame: top_frame(ts.stack),
            });
        let tick = TickGil {
            holder,
            holding,
            locked: sample.gil.is_some_and(|g| g.locked),
            collecting: self.gc == Some(true),
        };
        self.count_gc(&tick);
        self.count_stopped();
        for ts in &sample.threads {
            self.count_thread(ts, t, &tick, shared);
        }
        self.gil_unmapped += u64::from(tick.locked && holding.is_none());
        if self.live.len() != sample.threads.len() {
            self.close_vanished_threads(shared);
        }
        self.last_t_ns = Some(t);
    }

    /// One reading of the collector's flag: a collecting tick, and where the collecting thread
    /// (the GIL's holder) was.
    pub(super) fn count_gc(&mut self, tick: &TickGil) {
        if self.gc.is_none() {
            return;
        }
        self.gc_readings += 1;
        if tick.collecting {
            self.gc_ticks += 1;
            if let Some(frame) = tick.holding.and_then(|h| h.frame) {
                *self.gc_frames.entry(frame).or_insert(0) += 1;
            }
        }
    }

    /// A tick with its threads' status read: was the world stopped?
    pub(super) fn count_stopped(&mut self) {
        if self.statuses.is_empty() {
            return;
        }
        self.status_ticks += 1;
        let stopped = self
            .statuses
            .values()
            .any(|s| s.attachment == Attachment::Suspended);
        self.stopped_ticks += u64::from(stopped);
    }

    /// One GIL reading: held or not, its hand-offs, the GIL's own timeline.
    pub(super) fn count_gil(&mut self, t: u64, gil: GilReading, shared: &mut Shared) {
        let window = shared.totals.windows.at_time(t);
        self.gil_readings += 1;
        if shared.root {
            window.gil_readings += 1;
        }
        if gil.locked {
            self.gil_locked += 1;
            if shared.root {
                window.gil_locked += 1;
            }
        }
        if let Some(n) = gil.switch_number {
            let first = self.switches.map_or((t, n), |(first, _)| first);
            self.switches = Some((first, (t, n)));
            if let (Some(last), true) = (self.last_switch_number, shared.root) {
                window.switches += n.saturating_sub(last);
            }
            self.last_switch_number = Some(n);
        }
        let holder = if gil.locked { gil.holder_tid } else { None };
        match self.gil_timeline.last_mut() {
            Some(last) if last.locked == gil.locked && last.holder == holder => last.end_ns = t,
            last => {
                if let Some(last) = last {
                    last.end_ns = t;
                }
                if *shared.totals.segments < MAX_TIMELINE_SEGMENTS {
                    *shared.totals.segments += 1;
                    self.gil_timeline.push(GilSegment {
                        start_ns: t,
                        end_ns: t,
                        locked: gil.locked,
                        holder,
                    });
                }
            }
        }
    }

    /// One thread at one tick: classified (or held for the next tick), counted, its CPU added.
    pub(super) fn count_thread(
        &mut self,
        ts: &ThreadSample,
        t: u64,
        tick: &TickGil,
        shared: &mut Shared,
    ) {
        let (holder, locked) = (tick.holder, tick.locked);
        let pid = self.pid;
        let ticks = self.ticks;
        let acc = self
            .live
            .entry(ts.tid)
            .or_insert_with(|| ThreadAcc::new(pid, ts.tid, t, shared.names, ticks > 1));
        acc.seen_at_tick = ticks;
        let dt = t.saturating_sub(acc.summary.last_t_ns);
        let first_sample = acc.summary.samples == 0 && acc.pending.is_none();
        let cpu_delta = match (acc.last_cpu_ns, ts.cpu_ns) {
            (Some(before), Some(now)) if now >= before => Some(now - before),
            // A thread born during the run: everything it used since it started.
            (None, Some(now)) if acc.born_during_run && first_sample => Some(now),
            _ => None,
        };
        // A newborn's first sample stands for at most one interval.
        let span_ns = if dt > 0 { dt } else { shared.interval_ns };
        let cpu_share = cpu_delta
            .filter(|_| dt > 0 || acc.born_during_run)
            .map(|d| (d as f64 / span_ns as f64).min(1.0));
        let status = self.statuses.get(&ts.tid);
        let obs = Observation {
            syscall: ts.syscall,
            cpu_share,
            holds_gil: holder == Some(ts.tid),
            other_holds_gil: locked && holder != Some(ts.tid),
            gil_ranges: &self.gil_ranges,
            previous: acc.previous,
            arch: shared.arch,
            entering_critical_section: status.is_some_and(|s| s.entering_critical_section),
            suspended: status.is_some_and(|s| s.attachment == Attachment::Suspended),
        };
        let top_frame = ts
            .stack
            .and_then(|stack| shared.stacks.get(stack as usize)?.first().copied());
        let state = shared.lines.judge(top_frame, classify(&obs), span_ns);
        acc.settle(&mut shared.totals, Some(state));
        let meaning = ts
            .stack
            .map(|stack| shared.meanings.of(stack, shared.frames, shared.stacks));
        let at = Pending {
            stack: ts.stack,
            t_ns: t,
            weight_ns: span_ns,
            loop_position: meaning.map(|m| m.loop_position),
            waits_for_task: meaning.is_some_and(|m| m.waits_for_task),
            top_frame,
            holder: tick.holding.filter(|h| h.tid != ts.tid),
        };
        // At a line that releases the GIL, a thread on a CPU after holding it runs that native
        // code; elsewhere it may be passing the GIL on, which its next sample tells.
        if is_transit_candidate(&obs, state) && !shared.lines.releases(top_frame) {
            acc.pending = Some(at);
        } else {
            acc.count(&mut shared.totals, at, state);
        }
        let s = &mut acc.summary;
        if tick.collecting && holder == Some(ts.tid) {
            s.gc_ns += span_ns;
        }
        if let Some(status) = self.statuses.get(&ts.tid) {
            let counts = s.attachment.get_or_insert_with(AttachmentCounts::default);
            counts.readings += 1;
            counts.attached += u64::from(status.attachment == Attachment::Attached);
        }
        s.python |= ts.python;
        s.last_t_ns = t;
        if let Some(d) = cpu_delta {
            s.cpu_s += d as f64 / 1e9;
            self.thread_cpu_ns += d;
            if let Some(w) = shared.totals.windows.existing(t) {
                w.cpu_ns += d;
            }
        }
        if ts.cpu_ns.is_some() {
            acc.last_cpu_ns = ts.cpu_ns;
        }
        acc.previous = Some(state);
    }

    /// Threads missing from this tick ended (a tid that comes back is a new thread).
    pub(super) fn close_vanished_threads(&mut self, shared: &mut Shared) {
        let ended: Vec<Tid> = self
            .live
            .iter()
            .filter(|(_, acc)| acc.seen_at_tick != self.ticks)
            .map(|(&tid, _)| tid)
            .collect();
        for tid in ended {
            if let Some(acc) = self.live.remove(&tid) {
                self.finished
                    .push(acc.close(&mut shared.totals, shared.interval_ns));
            }
        }
    }

    /// Closes every thread and sums the process up.
    pub(super) fn finish(
        mut self,
        totals: &mut Totals,
        interval_ns: u64,
        frames: &[Frame],
        stacks: &[Vec<u32>],
    ) -> (ProcessSummary, Vec<ThreadSummary>) {
        let mut threads = std::mem::take(&mut self.finished);
        for acc in std::mem::take(&mut self.live).into_values() {
            threads.push(acc.close(totals, interval_ns));
        }
        threads.sort_by_key(|t| (t.first_t_ns, t.tid));
        // A script that never imported `threading` has no Python name to read: its main
        // thread carries only the OS's (`python3.12`), where CPython would say `MainThread`.
        let main = self.pid.main_thread();
        for t in threads.iter_mut().filter(|t| t.tid == main && t.python) {
            if is_os_default_thread_name(t.name.as_deref()) {
                t.name = Some(MAIN_THREAD_NAME.into());
            }
        }
        if let Some(last) = self.gil_timeline.last_mut() {
            last.end_ns = last.end_ns.saturating_add(interval_ns);
        }
        let first = self.first_t_ns.or(self.found_t_ns).unwrap_or(0);
        let last = self.last_t_ns.unwrap_or(first);
        let span_ns = last - first.min(last);
        let per_second = |((t0, v0), (t1, v1)): ((u64, u64), (u64, u64))| {
            (t1 > t0).then(|| v1.saturating_sub(v0) as f64 / ((t1 - t0) as f64 / 1e9))
        };
        let cpu_cores_used = self
            .process_cpu
            .and_then(per_second)
            .filter(|&c| c > 0.0)
            .or_else(|| (span_ns > 0).then(|| self.thread_cpu_ns as f64 / (span_ns as f64 / 1e9)))
            .unwrap_or(0.0)
            / 1e9;
        let role = if self.parent.is_some() {
            descendant_role(
                threads
                    .iter()
                    .flat_map(|t| t.stacks.keys())
                    .filter_map(|&(_, stack)| stacks.get(stack as usize))
                    .flatten()
                    .filter_map(|&id| frames.get(id as usize)),
            )
        } else {
            ProcessRole::Main
        };
        let cpu_s = self
            .process_cpu
            .map_or(self.thread_cpu_ns, |((_, v0), (_, v1))| {
                v1.saturating_sub(v0)
            }) as f64
            / 1e9;
        let summary = ProcessSummary {
            pid: self.pid,
            parent: self.parent,
            command: self.command,
            python: self.python,
            gil_wait_visible: self.gil_wait_visible,
            role,
            first_t_ns: first,
            last_t_ns: last.saturating_add(if self.ticks > 0 { interval_ns } else { 0 }),
            ending: self.ending,
            ticks: self.ticks,
            cpu_s,
            unattributed_cpu_s: (cpu_s - self.thread_cpu_ns as f64 / 1e9).max(0.0),
            cpu_cores_used,
            gil_held: (self.gil_readings > 0)
                .then(|| self.gil_locked as f64 / self.gil_readings as f64),
            gil_held_unmapped: (self.gil_readings > 0)
                .then(|| self.gil_unmapped as f64 / self.gil_readings as f64),
            gil_switches_per_s: self.switches.and_then(per_second),
            gil_timeline: self.gil_timeline,
            gc_collecting: (self.gc_readings > 0)
                .then(|| self.gc_ticks as f64 / self.gc_readings as f64),
            gc_frames: self.gc_frames,
            world_stopped: (self.status_ticks > 0)
                .then(|| self.stopped_ticks as f64 / self.status_ticks as f64),
            gil_enabled: None,
            contended_objects: self.contended_objects,
            notes: self.notes,
        };
        (summary, threads)
    }
}
