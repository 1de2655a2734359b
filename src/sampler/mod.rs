//! The one place that talks to the target: `/proc`, its memory, and py-spy.
//!
//! [`ProcessSampler::tick`] reads every thread's kernel state, the GIL, and the Python stacks, and
//! turns them into [`Record`]s. Interpretation happens later, on the records.

pub mod cores;
pub mod cpython;
pub mod exits;
pub mod memory;
pub mod namespace;
pub mod procfs;
pub mod pthread;
pub mod source;
pub mod tree;

mod attach;
mod interner;
mod python_reader;
mod tick;

pub use interner::Interner;
use python_reader::PythonReader;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::model::{
    Ending, GilReading, Pid, Record, Sample, Syscall, TargetInfo, ThreadSample, Tid,
};
use memory::ProcessMemory;
use namespace::TidMap;
use procfs::{CpuUse, ProcFile, ThreadFiles, ThreadKernelState};

/// Deeper stacks are cut here, with a marker frame: a target can recurse without bound.
pub const MAX_STACK_DEPTH: usize = 512;
/// How often py-spy walks the stacks even when gilscope's own walk could: it alone reads the
/// Python thread names, and a thread can be named after it starts.
pub const THREAD_NAMES_REFRESH: Duration = Duration::from_secs(1);
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
    /// How often the thread names are read again (a new thread's are read at once):
    /// [`THREAD_NAMES_REFRESH`], or less often where a read of every process costs too much.
    pub names_refresh: Duration,
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
            Role::Descendant => Record::ProcessSample {
                pid: Pid(pid),
                sample,
            },
        }
    }

    /// Process `pid`'s GIL ranges, as this role sends them.
    fn gil_ranges(self, pid: u32, ranges: Vec<(u64, u64)>) -> Record {
        match self {
            Role::Root => Record::GilRanges(ranges),
            Role::Descendant => Record::ProcessGilRanges {
                pid: Pid(pid),
                ranges,
            },
        }
    }
}

/// Receives the sampler's records: the aggregator, a recording file, or both.
pub trait RecordSink {
    fn record(&mut self, record: &Record) -> std::io::Result<()>;
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
    did_not_run: HashSet<Tid>,
    /// This tick's kernel states, one per thread (reused from tick to tick).
    kernels: Vec<ThreadKernelState>,
    mem: ProcessMemory,
    start_ticks: u64,
    process_stat: ProcFile,
    ns_per_tick: u64,
    threads: HashMap<Tid, ThreadFiles>,
    tids: Vec<Tid>,
    pthread_cache: HashMap<u64, Tid>,
    names: HashMap<Tid, String>,
    info: TargetInfo,
    buf: Vec<u8>,
    stack_errors: u32,
    last_stack_error: String,
    previous: PreviousTick,
    /// List the threads again at the next tick.
    relist: bool,
    /// The target's thread ids to gilscope's, across PID namespaces.
    tid_map: TidMap,
    /// When [`Record::RunDelays`] was last sent.
    run_delays_sent_ns: Option<u64>,
}

/// When the Python thread names (read by py-spy's walk, or by the object reader) are due.
#[derive(Debug)]
struct NameClock {
    refresh: Duration,
    read_at: Option<Instant>,
    /// Threads appeared since the names were last read.
    stale: bool,
}

impl NameClock {
    fn new(refresh: Duration) -> NameClock {
        NameClock {
            refresh,
            read_at: None,
            stale: false,
        }
    }

    /// Whether to read the names at this tick. A new thread's name is due soon after it
    /// appears, even if no thread changes after it: until then it carries its OS name, which
    /// on 3.14+ is its creator's for a moment.
    fn due(&mut self, threads_changed: bool) -> bool {
        self.stale |= threads_changed;
        let since = self.read_at.map(|at| at.elapsed());
        let due = since.is_none_or(|since| {
            since >= self.refresh || (self.stale && since >= NEW_THREAD_NAMES_DELAY)
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
    threads: HashMap<Tid, (ThreadKernelState, bool, Option<u32>)>,
    gil: Option<GilReading>,
}

impl PreviousTick {
    /// The last kernel state of a thread that was blocked in a syscall then and has not been
    /// on a CPU since (same slice count and on-CPU time): it cannot have left that syscall.
    /// (One it woke, still waiting for a CPU, reads as blocked until it runs: a wait either
    /// way.)
    fn unchanged(&self, tid: Tid, cpu: Option<CpuUse>) -> Option<ThreadKernelState> {
        let (kernel, _, _) = self.threads.get(&tid)?;
        let blocked = matches!(kernel.syscall, Some(Syscall::Blocked { .. }));
        (blocked && cpu.is_some() && kernel.cpu == cpu).then_some(*kernel)
    }

    fn stack_of(&self, tid: Tid) -> (bool, Option<u32>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use procfs::Stat;

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
