//! Turns one thread's raw observation into a [`ThreadState`]. Pure: no I/O, no clock.

use crate::model::{RunnablePlace, Syscall, ThreadState};

/// What a blocking system call means for the thread that is in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyscallKind {
    Futex,
    Io,
    Sleep,
    /// `select`/`pselect6`: a sleep when it watches no descriptors (`time.sleep` up to 3.10).
    SelectLike,
    Other,
}

/// The architectures whose system call numbers gilscope knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
    /// Any other: its calls are all [`SyscallKind::Other`].
    Other,
}

impl Arch {
    /// From `std::env::consts::ARCH`'s names, as recordings keep them.
    pub fn from_name(name: &str) -> Arch {
        match name {
            "x86_64" => Arch::X86_64,
            "aarch64" => Arch::Aarch64,
            _ => Arch::Other,
        }
    }
}

/// Classifies syscall `nr` of architecture `arch`.
pub fn syscall_kind(arch: Arch, nr: i64) -> SyscallKind {
    use SyscallKind::*;
    match arch {
        Arch::X86_64 => match nr {
            202 | 449 => Futex,
            35 | 230 | 34 => Sleep,
            23 | 270 => SelectLike,
            0 | 1 | 7 | 17 | 18 | 19 | 20 | 40 | 42 | 43 | 44 | 45 | 46 | 47 | 74 | 75 | 208
            | 232 | 257 | 271 | 275 | 281 | 288 | 295 | 296 | 299 | 307 | 426 | 441 => Io,
            _ => Other,
        },
        Arch::Aarch64 => match nr {
            98 | 449 => Futex,
            101 | 115 => Sleep,
            72 => SelectLike,
            22 | 56 | 63 | 64 | 65 | 66 | 67 | 68 | 69 | 70 | 73 | 76 | 82 | 83 | 202 | 203
            | 206 | 207 | 211 | 212 | 242 | 243 | 269 | 426 | 441 => Io,
            _ => Other,
        },
        Arch::Other => Other,
    }
}

/// The last bytes of the GIL struct hold its `switch_cond` and `switch_mutex` (48 and 40
/// bytes, at its end in every layout): a thread blocked there released the GIL and waits for
/// the next holder to take it (CPython's forced switch).
pub const GIL_SWITCH_TAIL: u64 = 88;

/// A runnable thread that used at least this share of the last interval on a CPU is doing
/// real work. A GIL waiter woken by its 5 ms timed wait uses a few microseconds, well below.
pub const NATIVE_MIN_CPU_SHARE: f64 = 0.05;

/// One thread's evidence at one tick, with what the sampler knew around it.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub syscall: Option<Syscall>,
    /// Share of the interval since the previous sample spent on a CPU, if known.
    pub cpu_share: Option<f64>,
    /// This thread held the GIL (`locked` and `last_holder` is this thread).
    pub holds_gil: bool,
    /// Another thread held the GIL (or it was locked by a thread that could not be mapped).
    pub other_holds_gil: bool,
    /// `[start, end)` of every interpreter's GIL struct.
    pub gil_ranges: &'a [(u64, u64)],
    /// The state this thread was given at the previous tick.
    pub previous: Option<ThreadState>,
    pub arch: Arch,
    /// Free-threaded builds: the thread's innermost critical section has no mutex yet.
    pub entering_critical_section: bool,
    /// The thread state said a stop-the-world pause suspended it (3.13+).
    pub suspended: bool,
}

/// The classification rules, in order:
/// 1. a futex wait on an address inside a GIL struct is `gil_wait`, whatever else was read;
///    on its `switch_cond` (the struct's tail) it is `handoff`: the thread dropped the GIL
///    and waits for another to take it;
/// 2. a thread entering a critical section (free-threaded builds) that is parked on a futex
///    or on a CPU waits for an object's lock: `object_lock`; one parked while a
///    stop-the-world pause suspended it (the free-threaded collector) is not waiting on the
///    program's locks: `idle`;
/// 3. the GIL holder is `gil`, even when blocked: every other Python thread waits for it;
/// 4. other futex waits are the program's own locks (`lock`); read/recv/poll-like calls are
///    `io`; sleeps are `sleep`; `select` with no descriptors is a sleep;
/// 5. a runnable thread whose kernel stack was read and shows it preempted in user space is
///    `native`, whatever its CPU time says so far;
/// 6. otherwise a runnable thread is `native` when it used CPU since the previous tick; with
///    almost none, a thread that was waiting for the GIL is still waiting (woken from its
///    timed wait), anything else is `native`;
/// 7. other blocked states are `idle`; an unreadable thread is `unknown`.
pub fn classify(obs: &Observation) -> ThreadState {
    let Some(syscall) = obs.syscall else {
        return if obs.holds_gil {
            ThreadState::Gil
        } else {
            ThreadState::Unknown
        };
    };
    if let Syscall::Blocked { nr, args } = syscall {
        let kind = syscall_kind(obs.arch, nr);
        if kind == SyscallKind::Futex {
            match gil_place(obs.gil_ranges, args[0]) {
                Some(GilPlace::Switch) => return ThreadState::Handoff,
                Some(GilPlace::Take) => return ThreadState::GilWait,
                None if obs.entering_critical_section => return ThreadState::ObjectLock,
                None if obs.suspended => return ThreadState::Idle,
                None => {}
            }
        }
        if obs.holds_gil {
            return ThreadState::Gil;
        }
        return match kind {
            SyscallKind::Futex => ThreadState::Lock,
            SyscallKind::Io => ThreadState::Io,
            SyscallKind::Sleep => ThreadState::Sleep,
            SyscallKind::SelectLike if args[0] == 0 => ThreadState::Sleep,
            SyscallKind::SelectLike => ThreadState::Io,
            SyscallKind::Other => ThreadState::Idle,
        };
    }
    if obs.holds_gil {
        return ThreadState::Gil;
    }
    if obs.entering_critical_section && matches!(syscall, Syscall::Running | Syscall::Runnable(_)) {
        return ThreadState::ObjectLock;
    }
    if let Syscall::Runnable(place) = syscall {
        if let Some(state) = runnable_state(place) {
            return state;
        }
    }
    match syscall {
        Syscall::Running | Syscall::Runnable(_) => {
            let barely_ran = obs
                .cpu_share
                .is_some_and(|share| share < NATIVE_MIN_CPU_SHARE);
            if barely_ran && obs.previous == Some(ThreadState::GilWait) {
                ThreadState::GilWait
            } else {
                ThreadState::Native
            }
        }
        _ => ThreadState::Idle,
    }
}

/// The state of a runnable thread that does not hold the GIL, from where its kernel stack put
/// it; `None` where the stack does not tell (the rules for [`Syscall::Running`] apply).
fn runnable_state(place: RunnablePlace) -> Option<ThreadState> {
    match place {
        // Preempted in its own code: working, whatever CPU time says so far.
        RunnablePlace::UserCode => Some(ThreadState::Native),
        // On a CPU: working, or a GIL waiter awake for a moment in `take_gil` (its timed
        // wait's wake-up every 5 ms): told as a `running` thread is. (Read as working, 3.8's
        // Python threads beside hashlib threads read 12-15% hand-off in CI.) Woken from a
        // futex wait, waiting for a CPU to return: the GIL's, the hand-off's or the program's
        // own lock (the stack does not say which futex). Back from a call: the hand-off's
        // wake-up, or a GIL waiter's timed wake-up (both seen, in proportions that differ
        // between versions). Elsewhere in the kernel. All told as a `running` thread is.
        RunnablePlace::OnCpu
        | RunnablePlace::FutexWake
        | RunnablePlace::SyscallExit
        | RunnablePlace::Kernel => None,
    }
}

/// A runnable thread that used CPU but is not the holder, right after holding the GIL, while
/// another thread holds it: either back in native code, or in hand-off transit (it just
/// dropped the GIL to that thread and will wait to take it again); the CPU it used may have
/// been spent holding the GIL. The next sample tells: [`resolve_transit`]. (After a GIL
/// *wait*, CPU use means it took the GIL and went on to native work; with the GIL free, or
/// no other thread to take it, there is no hand-off: neither case needs lookahead.)
pub fn is_transit_candidate(obs: &Observation, state: ThreadState) -> bool {
    state == ThreadState::Native && obs.previous == Some(ThreadState::Gil) && obs.other_holds_gil
}

/// The state of a transit candidate, given the state of the thread's next sample: passing
/// the GIL on when it went back to the GIL, native work otherwise.
pub fn resolve_transit(next: Option<ThreadState>) -> ThreadState {
    match next {
        Some(ThreadState::Gil | ThreadState::GilWait | ThreadState::Handoff) => {
            ThreadState::Handoff
        }
        _ => ThreadState::Native,
    }
}

/// Where in a GIL struct a futex wait is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GilPlace {
    /// Its `cond` or `mutex`: taking the GIL.
    Take,
    /// Its `switch_cond` or `switch_mutex`: handing it to the next holder.
    Switch,
}

fn gil_place(ranges: &[(u64, u64)], addr: u64) -> Option<GilPlace> {
    let &(_, end) = ranges
        .iter()
        .find(|&&(start, end)| addr >= start && addr < end)?;
    Some(if addr >= end.saturating_sub(GIL_SWITCH_TAIL) {
        GilPlace::Switch
    } else {
        GilPlace::Take
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIL: &[(u64, u64)] = &[(0x1000, 0x1000 + 208)];

    fn obs(syscall: Syscall) -> Observation<'static> {
        Observation {
            syscall: Some(syscall),
            cpu_share: Some(0.0),
            holds_gil: false,
            other_holds_gil: false,
            gil_ranges: GIL,
            previous: None,
            arch: Arch::X86_64,
            entering_critical_section: false,
            suspended: false,
        }
    }

    fn futex(addr: u64) -> Syscall {
        Syscall::Blocked {
            nr: 202,
            args: [addr, 0x189, 0],
        }
    }

    #[test]
    fn futex_inside_gil_is_gil_wait_or_handoff() {
        for off in [48, 72, 76, 80, 112] {
            assert_eq!(classify(&obs(futex(0x1000 + off))), ThreadState::GilWait);
        }
        for off in [120, 160, 164, 168, 200] {
            assert_eq!(classify(&obs(futex(0x1000 + off))), ThreadState::Handoff);
        }
        assert_eq!(classify(&obs(futex(0x1000 + 208))), ThreadState::Lock);
        assert_eq!(classify(&obs(futex(0x5000))), ThreadState::Lock);
    }

    #[test]
    fn a_thread_entering_a_critical_section_waits_for_an_objects_lock() {
        let entering = |syscall| Observation {
            entering_critical_section: true,
            cpu_share: Some(0.9),
            ..obs(syscall)
        };
        // Parked (a futex outside any GIL), or spinning on a CPU before it parks.
        assert_eq!(classify(&entering(futex(0x5000))), ThreadState::ObjectLock);
        assert_eq!(
            classify(&entering(Syscall::Running)),
            ThreadState::ObjectLock
        );
        // A GIL that came back on is still the GIL; I/O is still I/O.
        assert_eq!(
            classify(&entering(futex(0x1000 + 72))),
            ThreadState::GilWait
        );
        let read = Syscall::Blocked {
            nr: 0,
            args: [3, 0, 0],
        };
        assert_eq!(classify(&entering(read)), ThreadState::Io);
        // Without a critical section, the same futex is the program's own lock.
        assert_eq!(classify(&obs(futex(0x5000))), ThreadState::Lock);
        // Unless a stop-the-world pause suspended the thread.
        let suspended = Observation {
            suspended: true,
            ..obs(futex(0x5000))
        };
        assert_eq!(classify(&suspended), ThreadState::Idle);
    }

    #[test]
    fn gil_futex_wins_over_stale_holder() {
        let o = Observation {
            holds_gil: true,
            ..obs(futex(0x1000 + 72))
        };
        assert_eq!(classify(&o), ThreadState::GilWait);
    }

    #[test]
    fn holder_is_gil_even_in_io() {
        let read = Syscall::Blocked {
            nr: 0,
            args: [3, 0, 0],
        };
        let o = Observation {
            holds_gil: true,
            ..obs(read)
        };
        assert_eq!(classify(&o), ThreadState::Gil);
        assert_eq!(classify(&obs(read)), ThreadState::Io);
    }

    #[test]
    fn sleeps_and_selects() {
        let nanosleep = Syscall::Blocked {
            nr: 230,
            args: [1, 0, 0],
        };
        assert_eq!(classify(&obs(nanosleep)), ThreadState::Sleep);
        let select_sleep = Syscall::Blocked {
            nr: 270,
            args: [0, 0, 0],
        };
        assert_eq!(classify(&obs(select_sleep)), ThreadState::Sleep);
        let select_fds = Syscall::Blocked {
            nr: 23,
            args: [5, 0x7f00, 0],
        };
        assert_eq!(classify(&obs(select_fds)), ThreadState::Io);
    }

    #[test]
    fn running_uses_cpu_share_and_history() {
        let busy = Observation {
            cpu_share: Some(0.9),
            previous: Some(ThreadState::GilWait),
            ..obs(Syscall::Running)
        };
        assert_eq!(classify(&busy), ThreadState::Native);
        let woken_waiter = Observation {
            cpu_share: Some(0.001),
            previous: Some(ThreadState::GilWait),
            ..obs(Syscall::Running)
        };
        assert_eq!(classify(&woken_waiter), ThreadState::GilWait);
        let starved = Observation {
            cpu_share: Some(0.001),
            previous: Some(ThreadState::Native),
            ..obs(Syscall::Running)
        };
        assert_eq!(classify(&starved), ThreadState::Native);
    }

    #[test]
    fn a_runnable_threads_kernel_stack_places_it() {
        use RunnablePlace::*;
        // Little CPU so far after a GIL wait: `running` alone reads it as still waiting.
        let after_wait = |place| Observation {
            cpu_share: Some(0.001),
            previous: Some(ThreadState::GilWait),
            ..obs(Syscall::Runnable(place))
        };
        // Preempted in its own code, it works: its CPU time lags the kernel's tick.
        assert_eq!(classify(&after_wait(UserCode)), ThreadState::Native);
        // On a CPU (working, or a waiter awake for a moment in `take_gil`), woken in a futex
        // wait, back from a call, or elsewhere in the kernel: the stack does not tell, CPU
        // time does as for `running`.
        for place in [OnCpu, FutexWake, SyscallExit, Kernel] {
            assert_eq!(classify(&after_wait(place)), ThreadState::GilWait);
        }
        // The holder holds, wherever it is.
        let holder = Observation {
            holds_gil: true,
            ..after_wait(UserCode)
        };
        assert_eq!(classify(&holder), ThreadState::Gil);
    }

    #[test]
    fn transit_is_decided_by_the_next_sample() {
        let after_gil = Observation {
            cpu_share: Some(0.6),
            previous: Some(ThreadState::Gil),
            other_holds_gil: true,
            ..obs(Syscall::Running)
        };
        assert!(is_transit_candidate(&after_gil, classify(&after_gil)));
        // Nobody took the GIL: no hand-off, the thread went on to native work (e.g. the only
        // thread of a pool worker reading its next task).
        let gil_free = Observation {
            other_holds_gil: false,
            ..after_gil
        };
        assert!(!is_transit_candidate(&gil_free, classify(&gil_free)));
        for previous in [ThreadState::Native, ThreadState::GilWait] {
            let other = Observation {
                previous: Some(previous),
                ..after_gil
            };
            assert!(!is_transit_candidate(&other, classify(&other)));
        }
        assert_eq!(
            resolve_transit(Some(ThreadState::GilWait)),
            ThreadState::Handoff
        );
        assert_eq!(
            resolve_transit(Some(ThreadState::Gil)),
            ThreadState::Handoff
        );
        assert_eq!(
            resolve_transit(Some(ThreadState::Native)),
            ThreadState::Native
        );
        assert_eq!(resolve_transit(None), ThreadState::Native);
    }

    #[test]
    fn unreadable_and_other() {
        let mut o = obs(Syscall::NotInSyscall);
        assert_eq!(classify(&o), ThreadState::Idle);
        o.syscall = None;
        assert_eq!(classify(&o), ThreadState::Unknown);
        let wait4 = Syscall::Blocked {
            nr: 61,
            args: [0; 3],
        };
        assert_eq!(classify(&obs(wait4)), ThreadState::Idle);
        assert_eq!(
            syscall_kind(Arch::from_name("riscv64"), 202),
            SyscallKind::Other
        );
    }
}
