//! The timeline's windows and where a counted sample goes besides its thread.

use std::collections::{BTreeMap, HashMap};

use crate::model::{Pid, ThreadState, Tid};

use super::summary::{Window, MAX_WINDOWS, WINDOW_NS};

/// Where a counted sample goes besides the thread's own totals.
pub(super) struct Totals<'a> {
    pub(super) windows: &'a mut Windows,
    pub(super) segments: &'a mut usize,
    /// The samples counted since the last [`Aggregator::take_profile_window`], when asked for.
    pub(super) profile: Option<&'a mut ProfileCounts>,
}

/// Samples by (pid, tid, state, stack).
pub(super) type ProfileCounts = HashMap<(Pid, Tid, ThreadState, Option<u32>), u64>;

/// The timeline's windows, by index (start / length): only the windows that saw a sample
/// exist, so a timestamp far in the future (a corrupt file) costs one window, not one per
/// second. Past [`MAX_WINDOWS`], neighbours merge.
#[derive(Debug, Clone, Default)]
pub(super) struct Windows {
    pub(super) by_index: BTreeMap<u64, Window>,
    /// How many times the windows doubled in length.
    pub(super) doublings: u32,
}

impl Windows {
    pub(super) fn length_ns(&self) -> u64 {
        WINDOW_NS << self.doublings
    }

    /// The window that holds time `t_ns`, made when it is the first sample there.
    pub(super) fn at_time(&mut self, t_ns: u64) -> &mut Window {
        if self.by_index.len() >= MAX_WINDOWS
            && !self.by_index.contains_key(&(t_ns / self.length_ns()))
        {
            self.coarsen();
        }
        let length_ns = self.length_ns();
        let index = t_ns / length_ns;
        self.by_index.entry(index).or_insert_with(|| Window {
            start_ns: index * length_ns,
            length_ns,
            ..Window::default()
        })
    }

    /// The window that holds time `t_ns`, if it exists.
    pub(super) fn existing(&mut self, t_ns: u64) -> Option<&mut Window> {
        let index = t_ns / self.length_ns();
        self.by_index.get_mut(&index)
    }

    /// Merges each pair of neighbours into one window twice as long.
    pub(super) fn coarsen(&mut self) {
        self.doublings += 1;
        let length_ns = self.length_ns();
        let mut merged: BTreeMap<u64, Window> = BTreeMap::new();
        for (_, w) in std::mem::take(&mut self.by_index) {
            let index = w.start_ns / length_ns;
            let into = merged.entry(index).or_insert_with(|| Window {
                start_ns: index * length_ns,
                length_ns,
                ..Window::default()
            });
            into.ticks += w.ticks;
            for state in ThreadState::ALL {
                into.counts[state] += w.counts[state];
            }
            into.gil_locked += w.gil_locked;
            into.gil_readings += w.gil_readings;
            into.cpu_ns += w.cpu_ns;
            into.switches += w.switches;
        }
        self.by_index = merged;
    }

    /// The windows the root sampled (a descendant's samples alone make a window without ticks).
    pub(super) fn into_sampled(self) -> Vec<Window> {
        self.by_index
            .into_values()
            .filter(|w| w.ticks > 0)
            .collect()
    }
}
