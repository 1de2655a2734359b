//! Thread ids across PID namespaces. CPython and glibc keep thread ids in the target's memory
//! (`native_thread_id`, the pthread's `tid`) as the target's own PID namespace numbers them;
//! gilscope names threads as its own `/proc` does. In a container seen from the host (or a
//! privileged sidecar in an ancestor namespace) the two differ: every id read from the
//! target's memory goes through [`TidMap::to_ours`], which translates them with each task's
//! `NSpid:` line (`/proc/PID/task/TID/status`: the id in each namespace, outermost first).

use std::collections::{HashMap, HashSet};

use crate::model::Tid;

/// A thread id as the target's PID namespace numbers it, read from the target's memory. Its
/// own type, so that it is never taken for one of gilscope's ids (a `/proc` task) without
/// going through [`TidMap::to_ours`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TargetTid(pub u32);

/// The target's thread ids mapped to gilscope's.
#[derive(Debug, Default)]
pub struct TidMap {
    /// `None` when gilscope shares the target's PID namespace: ids are the same.
    translated: Option<HashMap<TargetTid, Tid>>,
}

impl TidMap {
    /// The map for process `pid`: empty, to be filled by [`TidMap::update`], when the target is
    /// in another PID namespace.
    pub fn for_process(pid: u32) -> TidMap {
        let ns = |path: &str| std::fs::read_link(path).ok();
        let same = match (ns("/proc/self/ns/pid"), ns(&format!("/proc/{pid}/ns/pid"))) {
            (Some(ours), Some(theirs)) => ours == theirs,
            // Unreadable namespace links: compare the process's own NSpid instead.
            _ => innermost_id(&format!("/proc/{pid}/status")).is_none_or(|id| id == pid),
        };
        TidMap {
            translated: (!same).then(HashMap::new),
        }
    }

    /// Whether the target's ids need translating.
    pub fn translates(&self) -> bool {
        self.translated.is_some()
    }

    /// Brings the map up to date with the target's threads `tids` (gilscope's ids, sorted).
    pub fn update(&mut self, pid: u32, tids: &[Tid]) {
        let Some(map) = &mut self.translated else {
            return;
        };
        map.retain(|_, ours| tids.binary_search(ours).is_ok());
        let known: HashSet<Tid> = map.values().copied().collect();
        for &tid in tids {
            if known.contains(&tid) {
                continue;
            }
            if let Some(theirs) = innermost_id(&format!("/proc/{pid}/task/{tid}/status")) {
                map.insert(TargetTid(theirs), tid);
            }
        }
    }

    /// gilscope's id of the thread the target calls `theirs`.
    pub fn to_ours(&self, theirs: TargetTid) -> Option<Tid> {
        match &self.translated {
            None => Some(Tid(theirs.0)),
            Some(map) => map.get(&theirs).copied(),
        }
    }

    /// A map for a target in another namespace, with these (theirs, ours) pairs.
    #[cfg(test)]
    pub fn translating(pairs: &[(u32, u32)]) -> TidMap {
        TidMap {
            translated: Some(pairs.iter().map(|&(t, o)| (TargetTid(t), Tid(o))).collect()),
        }
    }
}

/// The innermost id in the `NSpid:` line of a `status` file.
fn innermost_id(status_path: &str) -> Option<u32> {
    parse_nspid(&std::fs::read_to_string(status_path).ok()?)
}

/// The last (innermost namespace's) id of the `NSpid:` line.
pub fn parse_nspid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("NSpid:"))?
        .split_ascii_whitespace()
        .last()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_innermost_id_is_the_last() {
        let status = "Name:\tpython\nTgid:\t4242\nNSpid:\t4242\t7\nPPid:\t1\n";
        assert_eq!(parse_nspid(status), Some(7));
        assert_eq!(parse_nspid("NSpid:\t99\n"), Some(99));
        assert_eq!(parse_nspid("Name:\tx\n"), None);
    }

    #[test]
    fn own_namespace_needs_no_translation() {
        let map = TidMap::for_process(std::process::id());
        assert!(!map.translates());
        assert_eq!(map.to_ours(TargetTid(12345)), Some(Tid(12345)));
    }
}
