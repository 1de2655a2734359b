//! The sampling thread's scheduling priority.
//!
//! At a normal priority, on a machine short of CPUs, a tick whose timer fired waits for a CPU,
//! and a CPU frees up when a thread blocks: the reading then lands just as a target thread
//! went to sleep, and blocked states (a GIL wait above all) read high. Measured on 2 cores
//! with two Python and two hashlib threads: the hashlib threads read blocked on the GIL's
//! futex in 0.75 of the samples at normal priority, 0.62 at `SCHED_FIFO`, where the kernel's
//! own account (the futex calls' time, traced) says 0.60. So the sampling loop runs at the
//! lowest real-time priority when it may (root, or `CAP_SYS_NICE`), and gives it up as soon
//! as a tick runs late, so that it never keeps a CPU from the target.

use crate::model::SamplerTiming;

/// The lowest `SCHED_FIFO` priority: above every normal thread, below every other real-time one.
const PRIORITY: libc::c_int = 1;

/// The calling thread's real-time priority while it lasts; dropping it (or
/// [`Realtime::give_up`]) puts the thread back at a normal priority.
#[derive(Debug)]
pub struct Realtime {
    timing: SamplerTiming,
}

impl Realtime {
    /// Puts the calling thread at real-time priority where allowed. Children forked later
    /// start at a normal priority (`SCHED_RESET_ON_FORK`).
    pub fn enter() -> Realtime {
        let allowed = set_policy(libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, PRIORITY);
        Realtime {
            timing: if allowed {
                SamplerTiming::Realtime
            } else {
                SamplerTiming::Normal
            },
        }
    }

    pub fn timing(&self) -> SamplerTiming {
        self.timing
    }

    /// Returns to a normal priority; true when the thread was at a real-time one.
    pub fn give_up(&mut self) -> bool {
        if self.timing != SamplerTiming::Realtime {
            return false;
        }
        set_policy(libc::SCHED_OTHER, 0);
        self.timing = SamplerTiming::RealtimeGivenUp;
        true
    }
}

impl Drop for Realtime {
    fn drop(&mut self) {
        self.give_up();
    }
}

fn set_policy(policy: libc::c_int, priority: libc::c_int) -> bool {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a valid sched_param for the call's duration; pid 0 is this thread.
    unsafe { libc::sched_setscheduler(0, policy, &param) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn giving_up_restores_the_normal_policy() {
        let timing = std::thread::spawn(|| {
            let mut realtime = Realtime::enter();
            let timing = realtime.timing();
            assert_eq!(realtime.give_up(), timing == SamplerTiming::Realtime);
            drop(realtime);
            // SAFETY: sched_getscheduler has no memory-safety preconditions.
            let policy = unsafe { libc::sched_getscheduler(0) };
            assert_eq!(policy, libc::SCHED_OTHER);
            timing
        })
        .join()
        .expect("the thread ran");
        if timing == SamplerTiming::Normal {
            eprintln!("*** note: real-time priority not permitted here: only leave() checked ***");
        }
    }
}
