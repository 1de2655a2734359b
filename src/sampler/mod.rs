//! The one place that talks to the target: `/proc`, its memory, and py-spy.
//!
//! [`ProcessSampler::tick`] reads every thread's kernel state, the GIL, and the Python stacks, and
//! turns them into [`Record`]s. Interpretation happens later, on the records.

pub mod cpython;
pub mod exits;
pub mod memory;
pub mod namespace;
pub mod procfs;
pub mod pthread;
pub mod source;
pub mod tree;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use py_spy::config::LockingStrategy;
use py_spy::PythonSpy;

use crate::error::Error;
use crate::model::{
    Attachment, CpythonGilFlags, CpythonThreadStatus, Ending, Frame, GilMode, GilReading, Record,
    Sample, Syscall, TargetInfo, ThreadSample,
};
use cpython::debug_offsets::{DebugOffsets, DebugOffsetsError};
use cpython::frames::{self, CriticalSection, FrameWalker, Layout};
use cpython::gil::{GilLocator, ThreadIdField, ThreadRef};
use cpython::objects::ObjectReader;
use memory::ProcessMemory;
use namespace::TidMap;
use procfs::{CpuUse, ProcFile, ThreadFiles, ThreadKernelState};
use pthread::PthreadTidOffset;

/// Deeper stacks are cut here, with a marker frame: a target can recurse without bound.
pub const MAX_STACK_DEPTH: usize = 512;
/// How often py-spy walks the stacks even when gilscope's own walk could: it alone reads the
/// Python thread names, and a thread can be named after it starts.
const THREAD_NAMES_REFRESH: Duration = Duration::from_secs(1);
/// A new thread's name is read this soon, at the most: a target that starts thousands of
/// threads a second would otherwise have py-spy walk at every tick.
const NEW_THREAD_NAMES_DELAY: Duration = Duration::from_millis(100);
/// How long the modules that turned a free-threaded build's GIL on are looked for.
const GIL_USERS_WAIT: Duration = Duration::from_secs(1);
/// How often the interpreter list is re-read for new subinterpreters.
const GIL_RANGES_REFRESH: Duration = Duration::from_secs(1);

/// How to sample.
#[derive(Debug, Clone)]
pub struct SamplerOptions {
    pub rate_hz: f64,
    /// Pause the target while reading its stacks (py-spy's blocking mode).
    pub blocking: bool,
    /// Follow descendant processes too (`--subprocesses`).
    pub subprocesses: bool,
}

/// Frames and stacks, each given an id once per run. Shared by every process of a run, so ids
/// mean the same in all of them.
#[derive(Debug, Default)]
pub struct Interner {
    frames: HashMap<Frame, u32>,
    stacks: HashMap<Vec<u32>, u32>,
    /// Where each new frame's source line is read from.
    sources: source::SourceFiles,
}

impl Interner {
    /// The id of a stack of `depth` frames of process `pid`, given innermost first (at most
    /// [`MAX_STACK_DEPTH`] of them are kept, then a marker).
    fn stack(
        &mut self,
        pid: u32,
        frames: impl IntoIterator<Item = Frame>,
        depth: usize,
        sink: &mut impl RecordSink,
    ) -> std::io::Result<Option<u32>> {
        if depth == 0 {
            return Ok(None);
        }
        let mut ids = Vec::with_capacity(depth.min(MAX_STACK_DEPTH + 1));
        for frame in frames.into_iter().take(MAX_STACK_DEPTH) {
            ids.push(self.frame(pid, frame, sink)?);
        }
        if depth > MAX_STACK_DEPTH {
            let function = if depth > frames::MAX_FRAMES_WALKED {
                format!(
                    "<{}+ more frames>",
                    frames::MAX_FRAMES_WALKED - MAX_STACK_DEPTH
                )
            } else {
                format!("<{} more frames>", depth - MAX_STACK_DEPTH)
            };
            let marker = Frame {
                function,
                file: String::new(),
                line: 0,
            };
            ids.push(self.frame(pid, marker, sink)?);
        }
        if ids.is_empty() {
            return Ok(None);
        }
        if let Some(&id) = self.stacks.get(&ids) {
            return Ok(Some(id));
        }
        let id = self.stacks.len() as u32;
        sink.record(&Record::Stack {
            id,
            frames: ids.clone(),
        })?;
        self.stacks.insert(ids, id);
        Ok(Some(id))
    }

    /// The id of a frame; a new one is sent with its source line.
    fn frame(
        &mut self,
        pid: u32,
        frame: Frame,
        sink: &mut impl RecordSink,
    ) -> std::io::Result<u32> {
        if let Some(&id) = self.frames.get(&frame) {
            return Ok(id);
        }
        let id = self.frames.len() as u32;
        sink.record(&Record::Frame {
            id,
            frame: frame.clone(),
        })?;
        if let Some(text) = self.sources.line(pid, &frame.file, frame.line) {
            sink.record(&Record::SourceLine { frame: id, text })?;
        }
        self.frames.insert(frame, id);
        Ok(id)
    }
}

/// Which records a process's samples go out as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The process the user named: [`Record::Sample`], [`Record::GilRanges`].
    Root,
    /// A descendant: [`Record::ProcessSample`], [`Record::ProcessGilRanges`].
    Descendant,
}

impl Role {
    /// One tick of process `pid`, as this role sends it.
    fn sample(self, pid: u32, sample: Sample) -> Record {
        match self {
            Role::Root => Record::Sample(sample),
            Role::Descendant => Record::ProcessSample { pid, sample },
        }
    }

    /// Process `pid`'s GIL ranges, as this role sends them.
    fn gil_ranges(self, pid: u32, ranges: Vec<(u64, u64)>) -> Record {
        match self {
            Role::Root => Record::GilRanges(ranges),
            Role::Descendant => Record::ProcessGilRanges { pid, ranges },
        }
    }
}

/// Receives the sampler's records: the aggregator, a recording file, or both.
pub trait RecordSink {
    fn record(&mut self, record: &Record) -> std::io::Result<()>;
}

/// What reads a Python process beyond `/proc`: its stacks, its GIL, its threads' ids.
struct PythonReader {
    /// `None` where py-spy cannot read the build (free-threaded ones).
    spy: Option<PythonSpy>,
    /// gilscope's own stack walk, where the layout is known and the target is not paused.
    walker: Option<FrameWalker>,
    /// Reads Python objects (3.13+): thread names where py-spy cannot, and the modules that
    /// turn a free-threaded build's GIL on.
    objects: Option<ObjectReader>,
    /// The main interpreter's address.
    interpreter: u64,
    gil: GilLocator,
    /// The main interpreter's GIL, re-read with the GIL ranges.
    main_gil: Option<u64>,
    /// Every interpreter's GIL struct, as last sent, and when it was read.
    gil_ranges: Vec<(u64, u64)>,
    gil_ranges_read: Option<Instant>,
    /// Whether the last reading found a free-threaded build's GIL enabled.
    gil_was_enabled: Option<bool>,
    /// When it was found enabled, while the modules that did it are looked for.
    gil_enabled_at: Option<(u64, Instant)>,
    pthread_tid: Option<PthreadTidOffset>,
    /// The collector's `collecting` flag, where its place is known, and its last reading.
    gc_flag: Option<u64>,
    gc_was: Option<bool>,
}

/// Where a free-threaded object keeps its lock: `ob_mutex`, after `ob_tid` and a 16-bit
/// field, in 3.13 to 3.15.
const OB_MUTEX_OFFSET: u64 = 10;

/// The minor versions whose free-threaded build the tests run (3.13t): another one's report
/// says it was not tested.
const TESTED_FREE_THREADED_MINORS: [u64; 1] = [13];

/// The note for a free-threaded build of a release whose free-threaded build is not tested.
fn untested_free_threaded(free_threaded: bool, minor: u64, version: &str) -> Option<String> {
    (free_threaded && !TESTED_FREE_THREADED_MINORS.contains(&minor)).then(|| {
        format!(
            "free-threaded CPython {version} is not tested on this build: it is read from its own _Py_DebugOffsets, and the thread-state fields gilscope adds were checked on the default {version} build only (the free-threaded build tested is 3.13t)"
        )
    })
}

impl PythonReader {
    /// What this reader cannot see on this target, for the report's notes.
    fn limits(&self, options: &SamplerOptions, minor: u64, version: &str) -> Vec<String> {
        let mut notes = Vec::new();
        if matches!(self.gil.thread_id, ThreadIdField::Pthread(_)) && self.pthread_tid.is_none() {
            notes.push("no glibc in the target: GIL holders cannot be mapped to OS threads on this version".into());
        }
        if self.gil.free_threaded {
            notes.push("free-threaded build: while the GIL is disabled, a thread on a CPU shows as `native` whether it runs Python or native code (`threads[].attached` in the JSON says how much of its time it was attached to the interpreter) and no thread waits for a GIL; waits on the program's own locks go through per-thread parking and show as `lock`; a thread waiting to enter an object's critical section (the lock of a dict, list or set another thread is using) shows as `object_lock`".into());
        }
        if !(8..=15).contains(&minor) {
            notes.push(format!(
                "CPython {version} is best-effort: tested versions are 3.8 to 3.15"
            ));
        }
        notes.extend(untested_free_threaded(
            self.gil.free_threaded,
            minor,
            version,
        ));
        if options.blocking && self.spy.is_none() {
            notes.push("--blocking needs py-spy, which cannot read this build: the stacks are read without pausing the target".into());
        }
        if self.spy.is_none() && self.objects.is_none() {
            notes.push(
                "Python thread names are not read on this build: threads carry their OS names"
                    .into(),
            );
        }
        notes
    }
}

fn py_spy_config(options: &SamplerOptions) -> py_spy::Config {
    py_spy::Config {
        blocking: if options.blocking {
            LockingStrategy::Lock
        } else {
            LockingStrategy::NonBlocking
        },
        ..py_spy::Config::default()
    }
}

/// The target's `_PyRuntime` and, from 3.13, the debug offsets it carries. A release whose
/// table gilscope does not know, or a table that reads implausibly, is refused here.
fn read_runtime(
    pid: u32,
    mem: &ProcessMemory,
) -> Result<
    (
        Option<cpython::runtime::RuntimeSymbol>,
        Option<DebugOffsets>,
    ),
    Error,
> {
    let Some(runtime) = cpython::runtime::find(pid) else {
        return Ok((None, None));
    };
    let described = match DebugOffsets::read(mem, runtime.address) {
        Ok(offsets) => Some(offsets),
        // Before 3.13: py-spy tells the version.
        Err(DebugOffsetsError::NoCookie | DebugOffsetsError::Read(_)) => None,
        Err(DebugOffsetsError::UnknownRelease { version, build }) => {
            return Err(Error::UnsupportedPython {
                version: format!("{version}{build}"),
            })
        }
        Err(e @ DebugOffsetsError::Implausible(version)) => {
            return Err(Error::DebugOffsetsUnreadable {
                pid,
                version: version.to_string(),
                detail: e.to_string(),
            })
        }
    };
    Ok((Some(runtime), described))
}

/// py-spy where it reads the build, and the version (text and minor): from py-spy, or from
/// the debug offsets where py-spy cannot read the build. py-spy does not know the
/// free-threaded object layout, yet its attach sometimes passes its checks on such a build
/// (then it reads no thread names): it is never used there.
fn identify(
    pid: u32,
    spy: anyhow::Result<PythonSpy>,
    described: Option<&DebugOffsets>,
) -> Result<(Option<PythonSpy>, String, u64), Error> {
    match (spy, described) {
        (_, Some(offsets)) if offsets.free_threaded => {
            Ok((None, offsets.version.to_string(), offsets.version.minor))
        }
        (Ok(spy), _) => {
            let v = &spy.version;
            let text = format!("{}.{}.{}", v.major, v.minor, v.patch);
            if v.major != 3 || v.minor < 7 {
                return Err(Error::UnsupportedPython { version: text });
            }
            let minor = v.minor;
            Ok((Some(spy), text, minor))
        }
        (Err(_), Some(offsets)) => Ok((None, offsets.version.to_string(), offsets.version.minor)),
        (Err(e), None) => Err(classify_spy_error(pid, e)),
    }
}

/// The GIL's locator. Without it a thread waiting for the GIL looks like any lock wait and
/// one holding it like native code: every verdict would be wrong, so refuse rather than
/// mislead.
fn locate_gil(
    pid: u32,
    mem: &ProcessMemory,
    runtime: Option<&cpython::runtime::RuntimeSymbol>,
    described: Option<&DebugOffsets>,
    version: &str,
    minor: u64,
) -> Result<GilLocator, Error> {
    let not_found = |detail: String| Error::GilNotFound {
        pid,
        version: version.to_string(),
        detail,
    };
    match (runtime, described) {
        (Some(rt), Some(offsets)) => Ok(GilLocator::from_debug_offsets(rt.address, offsets)),
        (Some(rt), None) => {
            GilLocator::new(mem, rt.address, 3, minor).map_err(|e| not_found(e.to_string()))
        }
        (None, _) => Err(not_found("it exports no `_PyRuntime` symbol".into())),
    }
}

/// What the run is about, before anything Python is known: a process without Python.
fn describe(pid: u32, options: &SamplerOptions) -> TargetInfo {
    TargetInfo {
        pid,
        command: read_cmdline(pid),
        python: String::new(),
        gil: GilMode::Enabled,
        gil_wait_visible: false,
        notes: Vec::new(),
        rate_hz: options.rate_hz,
        arch: std::env::consts::ARCH.into(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        started_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
    }
}

/// An attached process.
pub struct ProcessSampler {
    pid: u32,
    role: Role,
    /// `None` for a process without Python: its threads' kernel states only.
    python: Option<PythonReader>,
    /// When the Python thread names are due to be read again.
    name_clock: NameClock,
    /// This tick's threads that have not run since the last one (see
    /// [`PreviousTick::unchanged`]; reused from tick to tick).
    did_not_run: HashSet<u32>,
    /// This tick's kernel states, one per thread (reused from tick to tick).
    kernels: Vec<ThreadKernelState>,
    mem: ProcessMemory,
    start_ticks: u64,
    process_stat: ProcFile,
    ns_per_tick: u64,
    threads: HashMap<u32, ThreadFiles>,
    tids: Vec<u32>,
    pthread_cache: HashMap<u64, u32>,
    names: HashMap<u32, String>,
    info: TargetInfo,
    buf: Vec<u8>,
    stack_errors: u32,
    last_stack_error: String,
    previous: PreviousTick,
    /// List the threads again at the next tick.
    relist: bool,
    /// The target's thread ids to gilscope's, across PID namespaces.
    tid_map: TidMap,
}

/// When the Python thread names (read by py-spy's walk, or by the object reader) are due.
#[derive(Debug, Default)]
struct NameClock {
    read_at: Option<Instant>,
    /// Threads appeared since the names were last read.
    stale: bool,
}

impl NameClock {
    /// Whether to read the names at this tick. A new thread's name is due soon after it
    /// appears, even if no thread changes after it: until then it carries its OS name, which
    /// on 3.14+ is its creator's for a moment.
    fn due(&mut self, threads_changed: bool) -> bool {
        self.stale |= threads_changed;
        let since = self.read_at.map(|at| at.elapsed());
        let due = since.is_none_or(|since| {
            since >= THREAD_NAMES_REFRESH || (self.stale && since >= NEW_THREAD_NAMES_DELAY)
        });
        if due {
            self.stale = false;
        }
        due
    }

    fn read_now(&mut self) {
        self.read_at = Some(Instant::now());
    }
}

/// What the last tick saw: each thread's kernel state and stack, and the GIL.
#[derive(Default)]
struct PreviousTick {
    threads: HashMap<u32, (ThreadKernelState, bool, Option<u32>)>,
    gil: Option<GilReading>,
}

impl PreviousTick {
    /// The last kernel state of a thread that was blocked in a syscall then and has not been
    /// on a CPU since (same slice count and on-CPU time): it cannot have left that syscall.
    /// (One it woke, still waiting for a CPU, reads as blocked until it runs: a wait either
    /// way.)
    fn unchanged(&self, tid: u32, cpu: Option<CpuUse>) -> Option<ThreadKernelState> {
        let (kernel, _, _) = self.threads.get(&tid)?;
        let blocked = matches!(kernel.syscall, Some(Syscall::Blocked { .. }));
        (blocked && cpu.is_some() && kernel.cpu == cpu).then_some(*kernel)
    }

    fn stack_of(&self, tid: u32) -> (bool, Option<u32>) {
        self.threads
            .get(&tid)
            .map_or((false, None), |&(_, python, stack)| (python, stack))
    }

    fn remember(
        &mut self,
        threads: &[ThreadSample],
        kernels: &[ThreadKernelState],
        gil: Option<GilReading>,
    ) {
        self.gil = gil;
        self.threads.clear();
        self.threads.extend(
            threads
                .iter()
                .zip(kernels)
                .map(|(t, &kernel)| (t.tid, (kernel, t.python, t.stack))),
        );
    }
}

impl ProcessSampler {
    /// Attaches to the Python process `pid` without pausing it.
    pub fn attach(pid: u32, options: &SamplerOptions, role: Role) -> Result<ProcessSampler, Error> {
        check_python_maps(pid)?;
        let mem = ProcessMemory { pid };
        // py-spy first: it fails (and the caller retries) until the interpreter is loaded, so
        // its success says `_PyRuntime` is there to be read next. Reading the runtime first (to
        // skip py-spy on a free-threaded build) races a launched target's libpython loading
        // between the two looks; `identify` drops py-spy on such a build instead.
        let spy = PythonSpy::new(pid as py_spy::Pid, &py_spy_config(options));
        let (runtime, described) = read_runtime(pid, &mem)?;
        let (spy, version_text, minor) = identify(pid, spy, described.as_ref())?;
        let gil = locate_gil(
            pid,
            &mem,
            runtime.as_ref(),
            described.as_ref(),
            &version_text,
            minor,
        )?;
        let interpreter = match (&spy, &runtime, &described) {
            (Some(spy), _, _) => Some(spy.addresses.interpreter_address as u64),
            (None, Some(rt), Some(offsets)) => {
                cpython::runtime::main_interpreter(&mem, rt.address, offsets)
            }
            // Without py-spy a target is read only through its debug offsets (see identify).
            _ => None,
        }
        .ok_or_else(|| Error::PythonUnreadable {
            pid,
            detail: "the interpreter has not started yet".into(),
        })?;
        let layout = match &described {
            Some(offsets) => Some(Layout::from_debug_offsets(offsets)),
            None => Layout::for_version(minor),
        };
        // py-spy pauses the target for its walk in blocking mode; gilscope's walk never does.
        let walker = layout
            .filter(|_| !options.blocking || spy.is_none())
            .map(|layout| FrameWalker::new(layout, interpreter));
        let objects = match (&described, &layout) {
            (Some(offsets), Some(layout)) => ObjectReader::new(offsets, layout.strings()),
            _ => None,
        };
        let gc_flag = cpython::gc::collecting_flag(
            minor,
            runtime.as_ref().map(|rt| rt.address),
            interpreter,
            described.as_ref(),
        );
        let python = PythonReader {
            gc_flag,
            gc_was: None,
            pthread_tid: PthreadTidOffset::find(pid, &mem),
            main_gil: gil.main_gil(&mem).ok(),
            gil_ranges: Vec::new(),
            gil_ranges_read: None,
            gil_was_enabled: None,
            gil_enabled_at: None,
            spy,
            walker,
            objects,
            interpreter,
            gil,
        };
        let info = TargetInfo {
            gil: if python.gil.free_threaded {
                GilMode::Disabled
            } else {
                GilMode::Enabled
            },
            gil_wait_visible: !python.gil.free_threaded,
            notes: python.limits(options, minor, &version_text),
            python: version_text,
            ..describe(pid, options)
        };
        ProcessSampler::new(pid, role, info, Some(python))
    }

    /// Attaches to a process that does not run Python: its threads' kernel states, no stacks.
    pub fn attach_without_python(
        pid: u32,
        options: &SamplerOptions,
        role: Role,
        note: String,
    ) -> Result<ProcessSampler, Error> {
        let info = TargetInfo {
            notes: vec![note],
            ..describe(pid, options)
        };
        ProcessSampler::new(pid, role, info, None)
    }

    fn new(
        pid: u32,
        role: Role,
        info: TargetInfo,
        python: Option<PythonReader>,
    ) -> Result<ProcessSampler, Error> {
        let tid_map = TidMap::for_process(pid);
        let mut info = info;
        if tid_map.translates() {
            info.notes.push("the target runs in its own PID namespace (a container): the thread ids in its memory are translated through /proc/PID/task/TID/status (NSpid)".into());
        }
        let gone = |_| Error::NoSuchProcess(pid);
        let process_stat = ProcFile::open(&format!("/proc/{pid}/stat")).map_err(gone)?;
        let mut buf = vec![0u8; 4096];
        let start_ticks = process_stat
            .read(&mut buf)
            .ok()
            .and_then(procfs::parse_stat)
            .ok_or(Error::NoSuchProcess(pid))?
            .start_ticks;
        Ok(ProcessSampler {
            pid,
            role,
            python,
            name_clock: NameClock::default(),
            did_not_run: HashSet::new(),
            kernels: Vec::new(),
            mem: ProcessMemory { pid },
            start_ticks,
            process_stat,
            ns_per_tick: procfs::ns_per_tick(),
            threads: HashMap::new(),
            tids: Vec::new(),
            pthread_cache: HashMap::new(),
            names: HashMap::new(),
            info,
            buf,
            stack_errors: 0,
            last_stack_error: String::new(),
            previous: PreviousTick::default(),
            relist: true,
            tid_map,
        })
    }

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
        let threads_changed =
            (self.relist || stat.num_threads as usize != self.tids.len()) && self.refresh_threads();
        if threads_changed {
            self.pthread_cache.clear();
        }
        self.relist = false;
        let (mut threads, kernels) = self.read_kernel_states();
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
            let kernel = match self.threads.get(&tid) {
                Some(files) => {
                    let cpu = files.read_cpu(&mut self.buf);
                    match self.previous.unchanged(tid, cpu) {
                        Some(kernel) => {
                            self.did_not_run.insert(tid);
                            kernel
                        }
                        None => files.read_syscall(&mut self.buf, cpu),
                    }
                }
                None => Default::default(),
            };
            self.relist |= kernel.syscall.is_none() || kernel.cpu.is_none();
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
        let (did_not_run, pthreads) = (&self.did_not_run, &self.pthread_cache);
        let unchanged = |thread| match thread {
            ThreadRef::Tid(tid) => did_not_run.contains(&tid),
            ThreadRef::Pthread(p) => pthreads
                .get(&p)
                .is_some_and(|tid| did_not_run.contains(tid)),
        };
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
                pid: self.pid,
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
                pid: self.pid,
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
                pid: self.pid,
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
        tid: u32,
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
                    ThreadRef::Tid(tid as u32)
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
        let previous: HashSet<u32> = self.tids.iter().copied().collect();
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
            let live: HashSet<u32> = self.tids.iter().copied().collect();
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
    fn resolve(&mut self, thread: ThreadRef) -> Option<u32> {
        match thread {
            ThreadRef::Tid(tid) => self.tid_map.to_ours(tid),
            ThreadRef::Pthread(pthread) => self.pthread_to_tid(pthread),
        }
    }

    /// Cached per `pthread_t`; the cache is cleared whenever the thread set changes, which is
    /// the only way a `pthread_t` can come to name another thread.
    fn pthread_to_tid(&mut self, pthread: u64) -> Option<u32> {
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

/// Marks thread `tid` (in `threads`, sorted by tid) as a Python thread with this stack.
fn fill_in(threads: &mut [ThreadSample], tid: u32, stack: Option<u32>) {
    if let Ok(i) = threads.binary_search_by_key(&tid, |t| t.tid) {
        threads[i].python = true;
        threads[i].stack = stack;
    }
}

/// Whether the process behind the PID is still the one gilscope attached to: its stat if so,
/// else how it ended. The `stat` file held open since attaching already reads nothing once its
/// process is reaped; the start time guards the rest: a PID names a process only together
/// with it, and a new process that took the PID has another one.
pub fn still_our_target(
    stat: Option<procfs::Stat>,
    start_ticks: u64,
) -> Result<procfs::Stat, Ending> {
    match stat {
        None => Err(Ending::TargetGone),
        Some(s) if s.state == b'Z' || s.state == b'X' => Err(s
            .exit_code
            .map_or(Ending::TargetGone, Ending::of_wait_status)),
        Some(s) if s.start_ticks != start_ticks => Err(Ending::PidReused),
        Some(s) => Ok(s),
    }
}

/// Fails fast, with a clear error, on a process that maps no Python.
fn check_python_maps(pid: u32) -> Result<(), Error> {
    let maps = match std::fs::read_to_string(format!("/proc/{pid}/maps")) {
        Ok(maps) => maps,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(Error::PermissionDenied(pid))
        }
        Err(_) => return Err(Error::NoSuchProcess(pid)),
    };
    let exited = std::fs::read(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| procfs::parse_stat(&stat))
        .is_some_and(|s| s.state == b'Z' || s.state == b'X');
    if exited {
        return Err(Error::Exited(pid));
    }
    let has_python = maps.lines().any(|line| {
        line.rsplit('/')
            .next()
            .is_some_and(|name| name.starts_with("python") || name.starts_with("libpython"))
    });
    if has_python {
        Ok(())
    } else {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "?".into());
        Err(Error::NotPython { pid, exe })
    }
}

fn classify_spy_error(pid: u32, err: anyhow::Error) -> Error {
    let text = format!("{err:#}");
    if text.contains("Permission denied") || text.contains("Operation not permitted") {
        Error::PermissionDenied(pid)
    } else {
        Error::PythonUnreadable {
            pid,
            detail: text.lines().next().unwrap_or("").to_string(),
        }
    }
}

fn read_cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            bytes
                .split(|&b| b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use procfs::Stat;

    #[test]
    fn only_an_untested_free_threaded_build_says_so() {
        assert_eq!(untested_free_threaded(true, 13, "3.13.5"), None);
        assert_eq!(untested_free_threaded(false, 14, "3.14.10"), None);
        let note = untested_free_threaded(true, 14, "3.14.2").unwrap();
        assert!(
            note.contains("3.14.2 is not tested on this build"),
            "{note}"
        );
    }

    #[test]
    fn a_reused_pid_is_not_our_target() {
        let ours = Stat {
            state: b'S',
            cpu_ticks: 42,
            start_ticks: 1000,
            num_threads: 1,
            exit_code: None,
        };
        assert_eq!(still_our_target(Some(ours), 1000), Ok(ours));
        let zombie = |exit_code| Stat {
            state: b'Z',
            exit_code,
            ..ours
        };
        let cases = [
            (
                Some(Stat {
                    start_ticks: 2000,
                    ..ours
                }),
                Ending::PidReused,
            ),
            (Some(zombie(None)), Ending::TargetGone),
            (
                Some(zombie(Some(libc::SIGKILL))),
                Ending::Killed(libc::SIGKILL),
            ),
            (Some(zombie(Some(3 << 8))), Ending::Exited(3)),
            (None, Ending::TargetGone),
        ];
        for (stat, ending) in cases {
            assert_eq!(still_our_target(stat, 1000), Err(ending), "{stat:?}");
        }
    }
}
