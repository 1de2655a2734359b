//! What reads a Python process beyond `/proc`: its stacks, its GIL, its threads' ids, its objects.

use std::time::Instant;

use py_spy::PythonSpy;

use super::cpython::frames::FrameWalker;
use super::cpython::gil::{GilLocator, ThreadIdField};
use super::cpython::objects::ObjectReader;
use super::cpython::versions::{TESTED_FREE_THREADED_MINORS, TESTED_MINORS};
use super::pthread::PthreadTidOffset;
use super::SamplerOptions;

/// What reads a Python process beyond `/proc`: its stacks, its GIL, its threads' ids.
pub(super) struct PythonReader {
    /// `None` where py-spy cannot read the build (free-threaded ones).
    pub(super) spy: Option<PythonSpy>,
    /// gilscope's own stack walk, where the layout is known and the target is not paused.
    pub(super) walker: Option<FrameWalker>,
    /// Reads Python objects (3.13+): thread names where py-spy cannot, and the modules that
    /// turn a free-threaded build's GIL on.
    pub(super) objects: Option<ObjectReader>,
    /// The main interpreter's address.
    pub(super) interpreter: u64,
    pub(super) gil: GilLocator,
    /// The main interpreter's GIL, re-read with the GIL ranges.
    pub(super) main_gil: Option<u64>,
    /// Every interpreter's GIL struct, as last sent, and when it was read.
    pub(super) gil_ranges: Vec<(u64, u64)>,
    pub(super) gil_ranges_read: Option<Instant>,
    /// Whether the last reading found a free-threaded build's GIL enabled.
    pub(super) gil_was_enabled: Option<bool>,
    /// When it was found enabled, while the modules that did it are looked for.
    pub(super) gil_enabled_at: Option<(u64, Instant)>,
    pub(super) pthread_tid: Option<PthreadTidOffset>,
    /// The collector's `collecting` flag, where its place is known, and its last reading.
    pub(super) gc_flag: Option<u64>,
    pub(super) gc_was: Option<bool>,
}

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
    pub(super) fn limits(
        &self,
        options: &SamplerOptions,
        minor: u64,
        version: &str,
    ) -> Vec<String> {
        let mut notes = Vec::new();
        if matches!(self.gil.thread_id, ThreadIdField::Pthread(_)) && self.pthread_tid.is_none() {
            notes.push("no glibc in the target: GIL holders cannot be mapped to OS threads on this version".into());
        }
        if self.gil.free_threaded {
            notes.push("free-threaded build: while the GIL is disabled, a thread on a CPU shows as `native` whether it runs Python or native code (`threads[].attached` in the JSON says how much of its time it was attached to the interpreter) and no thread waits for a GIL; waits on the program's own locks go through per-thread parking and show as `lock`; a thread waiting to enter an object's critical section (the lock of a dict, list or set another thread is using) shows as `object_lock`".into());
        }
        if !TESTED_MINORS.contains(&minor) {
            notes.push(format!(
                "CPython {version} is best-effort: tested versions are 3.{} to 3.{}",
                TESTED_MINORS.start(),
                TESTED_MINORS.end()
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
