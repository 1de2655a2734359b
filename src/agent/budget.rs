//! The agent's CPU budget (`--max-cpu`): the sampling schedule it keeps to. Over budget,
//! idle processes are sampled less often first, then the rate comes down for all; well
//! under it, the rate goes back up, then idle processes are sampled at the full rate again.

/// Idle processes are sampled every this many ticks while the budget is tight.
pub const IDLE_EVERY: u32 = 4;
/// The rate never goes below this.
pub const MIN_RATE_HZ: f64 = 1.0;
/// Below this share of the budget, sampling speeds back up.
const SPEED_UP_BELOW: f64 = 0.5;

/// When the agent samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub rate_hz: f64,
    /// Ticks between two samples of an idle process.
    pub idle_every: u32,
}

impl Schedule {
    pub fn full(rate_hz: f64) -> Schedule {
        Schedule {
            rate_hz,
            idle_every: 1,
        }
    }

    /// Whether a process is sampled at global tick `tick`.
    pub fn due(&self, tick: u64, busy: bool) -> bool {
        busy || tick.is_multiple_of(u64::from(self.idle_every))
    }

    /// The schedule for the next window, after the agent used `cores` of CPU over the last
    /// one with a budget of `max_cores` and a rate of at most `max_rate_hz`.
    pub fn next(self, cores: f64, max_cores: f64, max_rate_hz: f64) -> Schedule {
        if cores > max_cores {
            if self.idle_every == 1 {
                return Schedule {
                    idle_every: IDLE_EVERY,
                    ..self
                };
            }
            // CPU goes with the rate: aim a tenth under the budget.
            let rate_hz = (self.rate_hz * 0.9 * max_cores / cores).max(MIN_RATE_HZ);
            return Schedule { rate_hz, ..self };
        }
        if cores < SPEED_UP_BELOW * max_cores {
            if self.rate_hz < max_rate_hz {
                let rate_hz = (self.rate_hz * 1.5).min(max_rate_hz);
                return Schedule { rate_hz, ..self };
            }
            return Schedule::full(max_rate_hz);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_budget_idle_processes_slow_first_then_everyone() {
        let full = Schedule::full(20.0);
        let idle_slowed = full.next(0.08, 0.05, 20.0);
        assert_eq!(
            idle_slowed,
            Schedule {
                rate_hz: 20.0,
                idle_every: IDLE_EVERY
            }
        );
        let slower = idle_slowed.next(0.08, 0.05, 20.0);
        assert!((slower.rate_hz - 20.0 * 0.9 * 0.05 / 0.08).abs() < 1e-9);
        assert_eq!(slower.idle_every, IDLE_EVERY);
        let floor = slower.next(100.0, 0.05, 20.0);
        assert_eq!(floor.rate_hz, MIN_RATE_HZ);
    }

    #[test]
    fn well_under_budget_speeds_back_up_and_at_the_budget_holds() {
        let slow = Schedule {
            rate_hz: 8.0,
            idle_every: IDLE_EVERY,
        };
        assert_eq!(
            slow.next(0.04, 0.05, 20.0),
            slow,
            "between half and all of it: hold"
        );
        let faster = slow.next(0.01, 0.05, 20.0);
        assert_eq!(
            faster,
            Schedule {
                rate_hz: 12.0,
                idle_every: IDLE_EVERY
            }
        );
        let at_max = Schedule {
            rate_hz: 20.0,
            idle_every: IDLE_EVERY,
        };
        assert_eq!(at_max.next(0.01, 0.05, 20.0), Schedule::full(20.0));
    }

    #[test]
    fn busy_processes_are_due_at_every_tick() {
        let tight = Schedule {
            rate_hz: 20.0,
            idle_every: IDLE_EVERY,
        };
        assert!((0..8).all(|tick| tight.due(tick, true)));
        assert_eq!((0..8).filter(|&tick| tight.due(tick, false)).count(), 2);
    }
}
