//! The raw samples: what the sampler saw, before any interpretation.
//!
//! Everything after the sampler (classification, aggregation, diagnosis, rendering) is a
//! function of a stream of [`Record`]s, so a recording replays into exactly the live report.

use serde::{Deserialize, Serialize};

/// What a thread was doing at one sample, as the contract names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadState {
    /// Holds the GIL: runs Python, or native code that kept the GIL.
    Gil,
    /// Blocked waiting to take the GIL.
    GilWait,
    /// GIL overhead: passing the GIL on. A thread that released it waits for the next holder
    /// to take it (CPython's forced switch), or is on a CPU between a release and the next
    /// take, at a line that otherwise runs holding the GIL.
    Handoff,
    /// On a CPU (or runnable) without the GIL.
    Native,
    /// Blocked in a read/write/recv/poll-like call.
    Io,
    /// In a sleep call.
    Sleep,
    /// Waiting on a lock, condition, queue, event or join of the program's own.
    Lock,
    /// Free-threaded builds: waiting for (parked on, or spinning for) the lock of an object
    /// another thread is using (a shared dict, list or set): entering a critical section.
    ObjectLock,
    /// Blocked otherwise.
    Idle,
    /// The sample could not be read.
    Unknown,
}

impl ThreadState {
    pub const ALL: [ThreadState; 10] = [
        ThreadState::Gil,
        ThreadState::GilWait,
        ThreadState::Handoff,
        ThreadState::Native,
        ThreadState::Io,
        ThreadState::Sleep,
        ThreadState::Lock,
        ThreadState::ObjectLock,
        ThreadState::Idle,
        ThreadState::Unknown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ThreadState::Gil => "gil",
            ThreadState::GilWait => "gil_wait",
            ThreadState::Handoff => "handoff",
            ThreadState::Native => "native",
            ThreadState::Io => "io",
            ThreadState::Sleep => "sleep",
            ThreadState::Lock => "lock",
            ThreadState::ObjectLock => "object_lock",
            ThreadState::Idle => "idle",
            ThreadState::Unknown => "unknown",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One value per thread state, indexed by [`ThreadState`]. In JSON, an object keyed by the
/// states' names in [`ThreadState::ALL`] order (`{"gil": .., "gil_wait": .., ...}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerState<T>([T; 10]);

impl<T> PerState<T> {
    pub fn from_fn(mut f: impl FnMut(ThreadState) -> T) -> Self {
        PerState(ThreadState::ALL.map(&mut f))
    }

    /// Each state with its value, in [`ThreadState::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (ThreadState, &T)> {
        ThreadState::ALL.into_iter().zip(&self.0)
    }

    pub fn map<U>(&self, mut f: impl FnMut(&T) -> U) -> PerState<U> {
        PerState::from_fn(|s| f(&self[s]))
    }
}

impl<T: Copy> PerState<T> {
    pub fn get(&self, state: ThreadState) -> T {
        self[state]
    }
}

impl<T: Copy + std::iter::Sum<T>> PerState<T> {
    pub fn total(&self) -> T {
        self.0.iter().copied().sum()
    }

    /// The sum over `states`.
    pub fn sum_of(&self, states: &[ThreadState]) -> T {
        states.iter().map(|&s| self[s]).sum()
    }
}

impl PerState<u64> {
    /// Each value as a share of the total (all 0 when the total is 0).
    pub fn shares(&self) -> PerState<f64> {
        let total = self.total();
        self.map(|&n| {
            if total == 0 {
                0.0
            } else {
                n as f64 / total as f64
            }
        })
    }
}

impl<T> std::ops::Index<ThreadState> for PerState<T> {
    type Output = T;
    fn index(&self, state: ThreadState) -> &T {
        &self.0[state.index()]
    }
}

impl<T> std::ops::IndexMut<ThreadState> for PerState<T> {
    fn index_mut(&mut self, state: ThreadState) -> &mut T {
        &mut self.0[state.index()]
    }
}

impl<T: Serialize> Serialize for PerState<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(ThreadState::ALL.len()))?;
        for (state, value) in self.iter() {
            map.serialize_entry(state.name(), value)?;
        }
        map.end()
    }
}

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for PerState<T> {
    /// A state missing from the object reads as the default (0).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = std::collections::HashMap::<ThreadState, T>::deserialize(deserializer)?;
        let mut entries = entries;
        Ok(PerState::from_fn(|s| {
            entries.remove(&s).unwrap_or_default()
        }))
    }
}

/// Where the thread stood in the kernel, from `/proc/PID/task/TID/syscall`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Syscall {
    /// On a CPU or runnable (`running`).
    Running,
    /// Blocked, but not inside a system call (`-1 ...`), e.g. a page fault.
    NotInSyscall,
    /// Blocked inside system call `nr`, with its first three arguments.
    Blocked { nr: i64, args: [u64; 3] },
    /// Runnable (what `running` says), with where its kernel stack put it; read where the
    /// stack is readable (root), [`Syscall::Running`] elsewhere.
    Runnable(RunnablePlace),
}

/// Where a runnable thread stands, from its kernel stack (`/proc/PID/task/TID/stack`). It tells
/// a waiter that was woken and has no CPU yet from a thread preempted in its own code, which
/// `syscall` (`running` for both) cannot. Checked against uprobes on `take_gil`/`drop_gil`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunnablePlace {
    /// On a CPU (the stack of a thread that runs cannot be read).
    OnCpu,
    /// Woken inside a futex wait and not yet back: it still waits for what it waited on.
    FutexWake,
    /// Preempted by an interrupt in user space: in the middle of its own code.
    UserCode,
    /// Preempted on its way back from a system call.
    SyscallExit,
    /// Elsewhere in the kernel (a page fault, another call's wake-up).
    Kernel,
}

/// One thread at one tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadSample {
    /// The OS thread id.
    pub tid: Tid,
    /// `None` when the syscall file could not be read.
    pub syscall: Option<Syscall>,
    /// Cumulative on-CPU time in nanoseconds (`schedstat`), `None` when unreadable.
    pub cpu_ns: Option<u64>,
    /// The interned Python stack, innermost frame first; `None` for a thread without Python
    /// frames or one whose stack could not be read this tick.
    pub stack: Option<u32>,
    /// Whether this thread is a Python thread (has a thread state in the interpreter).
    pub python: bool,
}

/// The GIL of the main interpreter at one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GilReading {
    pub locked: bool,
    /// The OS thread holding it, when `locked` and the holder could be mapped.
    pub holder_tid: Option<Tid>,
    /// `switch_number`, a counter of hand-offs.
    pub switch_number: Option<u64>,
    /// Free-threaded builds: whether the GIL is enabled right now.
    pub enabled: Option<bool>,
}

/// One tick of the sampler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Nanoseconds since sampling started (monotonic clock).
    pub t_ns: u64,
    /// Cumulative CPU time of the whole process (user + system, all threads, live and dead).
    pub process_cpu_ns: Option<u64>,
    pub gil: Option<GilReading>,
    pub threads: Vec<ThreadSample>,
}

/// A Python frame, interned once in a recording.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Frame {
    pub function: String,
    pub file: String,
    pub line: i32,
}

/// What the run is about, written first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    pub pid: Pid,
    pub command: Vec<String>,
    /// The CPython version, e.g. "3.12.1".
    pub python: String,
    pub gil: GilMode,
    /// Whether gilscope can see GIL waits on this target (false on free-threaded builds and
    /// processes that are not Python; a Python whose GIL cannot be located is refused).
    pub gil_wait_visible: bool,
    /// Why a limitation applies, shown in the report.
    pub notes: Vec<String>,
    pub rate_hz: f64,
    /// The CPU architecture the syscall numbers belong to (`std::env::consts::ARCH`).
    pub arch: String,
    pub cores: u32,
    /// Wall-clock start, seconds since the Unix epoch.
    pub started_unix_s: f64,
}

/// Whether the target's build has a GIL that runs: `enabled`, or `disabled` (a free-threaded
/// build, until an extension turns it on). Stored as that string, in recordings and JSON alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GilMode {
    Enabled,
    Disabled,
}

impl GilMode {
    pub fn name(self) -> &'static str {
        match self {
            GilMode::Enabled => "enabled",
            GilMode::Disabled => "disabled",
        }
    }
}

impl Serialize for GilMode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for GilMode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "enabled" => Ok(GilMode::Enabled),
            "disabled" => Ok(GilMode::Disabled),
            other => Err(serde::de::Error::unknown_variant(
                other,
                &["enabled", "disabled"],
            )),
        }
    }
}

/// How sampling ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ending {
    /// The target exited with this status.
    Exited(i32),
    /// The target was killed by this signal.
    Killed(i32),
    /// `--duration` ran out.
    DurationElapsed,
    /// The user interrupted gilscope (Ctrl-C / SIGTERM).
    Interrupted,
    /// The target went away while attached.
    TargetGone,
    /// A different process now has the target's PID.
    PidReused,
}

impl Ending {
    /// The ending a wait status (as `waitpid` gives it, or the kernel's exit code) means.
    pub fn of_wait_status(status: i32) -> Ending {
        if status & 0x7f == 0 {
            Ending::Exited((status >> 8) & 0xff)
        } else {
            Ending::Killed(status & 0x7f)
        }
    }
}

/// The sampler's output stream, also the unit of the recording file. The variant index is part
/// of the file format: add new variants at the end, never in between.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    Target(TargetInfo),
    /// Address ranges `[start, end)` of every interpreter's GIL struct; sent when they change.
    GilRanges(Vec<(u64, u64)>),
    Frame {
        id: u32,
        frame: Frame,
    },
    Stack {
        id: u32,
        frames: Vec<u32>,
    },
    ThreadName {
        tid: Tid,
        name: String,
    },
    Sample(Sample),
    /// Samples the sampler meant to take but could not in time.
    Late {
        count: u32,
    },
    End {
        ending: Ending,
        duration_s: f64,
    },
    /// Ticks whose Python stacks could not be read (py-spy refuses stacks deeper than 4096
    /// frames and strings of 4096 characters or more, and a torn read can fail), with the last
    /// reason. Thread states are measured all the same.
    StackErrors {
        count: u32,
        last: String,
    },
    /// `--subprocesses`: a descendant process was found. Its records follow with its pid.
    Process(ProcessInfo),
    /// A descendant's GIL ranges (the root's are in [`Record::GilRanges`]).
    ProcessGilRanges {
        pid: Pid,
        ranges: Vec<(u64, u64)>,
    },
    /// One tick of a descendant (the root's are in [`Record::Sample`]).
    ProcessSample {
        pid: Pid,
        sample: Sample,
    },
    /// A descendant ended while the run went on.
    ProcessEnd {
        pid: Pid,
        t_ns: u64,
        ending: Ending,
    },
    /// A free-threaded build's GIL was found enabled (at the first sample, or after it was
    /// disabled), with the extension modules then loaded that keep it on.
    GilEnabled {
        t_ns: u64,
        modules: Vec<ExtensionModule>,
    },
    /// CPython's own per-thread GIL flags (3.15's `holds_gil`, `gil_requested`), read in the
    /// same walk as the root's stacks at one tick: a cross-check of gilscope's own reading.
    CpythonGilFlags(Vec<CpythonGilFlags>),
    /// The source text of a frame's line, read from the target's file when the frame was
    /// first seen (absent where the file could not be read).
    SourceLine {
        frame: u32,
        text: String,
    },
    /// A process's garbage collector started (`collecting`) or finished a collection, as
    /// seen at a sample; the first reading of each process is sent too.
    GcCollecting {
        pid: Pid,
        t_ns: u64,
        collecting: bool,
    },
    /// A 3.13+ process's thread states' own status at one tick, read in the same walk as its
    /// stacks and sent before that tick's sample.
    ThreadStatuses {
        pid: Pid,
        threads: Vec<CpythonThreadStatus>,
    },
    /// A descendant's [`Record::GilEnabled`]: its free-threaded build's GIL came on.
    ProcessGilEnabled {
        pid: Pid,
        t_ns: u64,
        modules: Vec<ExtensionModule>,
    },
    /// Each thread's cumulative time runnable without a CPU (`schedstat`'s run delay), in
    /// nanoseconds, read at the sample of `t_ns`; sent about every [`RUN_DELAYS_EVERY_NS`].
    RunDelays {
        pid: Pid,
        t_ns: u64,
        threads: Vec<(Tid, u64)>,
    },
}

/// How often [`Record::RunDelays`] is sent: the account is of whole runs and windows, not ticks.
pub const RUN_DELAYS_EVERY_NS: u64 = 100_000_000;

/// One thread's `holds_gil` and `gil_requested`, as CPython 3.15 keeps them. Written by the
/// thread itself and read without a lock: both can read set at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpythonGilFlags {
    pub tid: Tid,
    pub holds_gil: bool,
    pub gil_requested: bool,
}

/// One thread as its thread state (3.13+) describes itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpythonThreadStatus {
    pub tid: Tid,
    pub attachment: Attachment,
    /// Free-threaded builds: the thread waits to enter a critical section (its innermost
    /// one has no mutex yet): another thread holds the lock of the object it needs.
    pub entering_critical_section: bool,
    /// Free-threaded builds, at a tick when another thread waits to enter one: the type of
    /// the object whose lock this thread holds in its innermost critical section.
    pub holds_lock_of: Option<String>,
}

/// `PyThreadState.state`: whether the thread may touch Python objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attachment {
    /// Released the interpreter: native code, I/O, a blocking call (`_Py_THREAD_DETACHED`).
    Detached,
    /// Runs Python, or native code that kept the interpreter (`_Py_THREAD_ATTACHED`).
    Attached,
    /// Stopped by a stop-the-world pause (`_Py_THREAD_SUSPENDED`).
    Suspended,
    /// A value this release does not define (a torn read), or the thread shutting down.
    Other,
}

impl Attachment {
    /// The `_Py_THREAD_*` value as 3.13 to 3.15 define it (3.15's `_WAITING` twins included).
    pub fn from_state(state: i32) -> Attachment {
        match state {
            0 | 5 => Attachment::Detached,
            1 => Attachment::Attached,
            2 | 4 => Attachment::Suspended,
            _ => Attachment::Other,
        }
    }
}

/// An extension module, as loaded in the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionModule {
    pub name: String,
    /// Its `__file__`, empty where it has none.
    pub file: String,
}

/// A descendant process, as first seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: Pid,
    /// Its parent process (the root, or another descendant).
    pub parent: Pid,
    pub command: Vec<String>,
    /// The CPython version, `None` for a process that is not Python (no stacks, no GIL).
    pub python: Option<String>,
    pub gil_wait_visible: bool,
    /// When it was found, on the run's clock.
    pub t_ns: u64,
    pub notes: Vec<String>,
}

/// A process id, as gilscope's own `/proc` numbers it. The records and every stage after them
/// carry ids as [`Pid`] and [`Tid`]; the sampler and the command line hold the kernel's plain
/// numbers until they write a record.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Pid(pub u32);

/// A thread id (a kernel task), as gilscope's own `/proc` numbers it: in another PID
/// namespace the target numbers it otherwise (see `sampler::namespace`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Tid(pub u32);

impl Pid {
    /// The process's main thread: its tid is the process's pid.
    pub fn main_thread(self) -> Tid {
        Tid(self.0)
    }
}

impl std::fmt::Display for Pid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for Tid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A text that may be missing (a thread's name, the target's Python version), written as
/// `report/1` has always written it: the empty string for "none". Read back the same way.
pub mod empty_as_none {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(name: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(name.as_deref().unwrap_or_default())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let name = String::deserialize(d)?;
        Ok((!name.is_empty()).then_some(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_state_values_are_json_objects_keyed_by_state_in_order() {
        let mut shares = PerState::<f64>::default();
        shares[ThreadState::GilWait] = 0.75;
        shares[ThreadState::Gil] = 0.25;
        let json = serde_json::to_string(&shares).unwrap();
        assert_eq!(
            json,
            r#"{"gil":0.25,"gil_wait":0.75,"handoff":0.0,"native":0.0,"io":0.0,"sleep":0.0,"lock":0.0,"object_lock":0.0,"idle":0.0,"unknown":0.0}"#
        );
        assert_eq!(
            serde_json::from_str::<PerState<f64>>(&json).unwrap(),
            shares
        );
        let partial: PerState<f64> = serde_json::from_str(r#"{"io": 1.0}"#).unwrap();
        assert_eq!(partial[ThreadState::Io], 1.0);
        assert_eq!(partial.total(), 1.0, "a missing state reads as 0");
        assert!(serde_json::from_str::<PerState<f64>>(r#"{"gill": 1.0}"#).is_err());
        let counts = PerState::from_fn(|s| if s == ThreadState::Lock { 3u64 } else { 1 });
        assert_eq!(counts.total(), 12);
        assert_eq!(counts.shares()[ThreadState::Lock], 3.0 / 12.0);
        assert_eq!(counts.sum_of(&[ThreadState::Gil, ThreadState::Lock]), 4);
    }

    #[test]
    fn a_missing_thread_name_is_written_and_read_as_the_empty_string() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Named {
            #[serde(with = "super::empty_as_none")]
            name: Option<String>,
        }
        for (name, json) in [
            (None, r#"{"name":""}"#),
            (Some("w-1".into()), r#"{"name":"w-1"}"#),
        ] {
            let named = Named { name };
            assert_eq!(serde_json::to_string(&named).unwrap(), json);
            assert_eq!(serde_json::from_str::<Named>(json).unwrap(), named);
        }
    }
}
