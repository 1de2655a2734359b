//! The CPython releases gilscope knows, written once. From 3.13 an interpreter describes its
//! own structures in `_Py_DebugOffsets`, a table whose own layout moves per release: a new
//! release needs that layout's entry in [`super::debug_offsets`] and [`TESTED_MINORS`] widened.
//! The releases before 3.13 have fixed offsets, all in [`fixed_offsets`]: one entry per minor
//! version, measured on pyenv's builds (the frame layouts from py-spy's bindings) and checked by
//! `tests/offsets.rs` on every installed interpreter.

use std::ops::RangeInclusive;

use super::gc::CollectingFlag;
use super::gil::{GilSource, ThreadIdField};
use super::layout::{FrameKind, FrameRoot, Layout, LineTable, StrLayout};

/// The minor versions of CPython 3 whose default build the tests run.
pub const TESTED_MINORS: RangeInclusive<u64> = 8..=15;

/// The minor versions whose free-threaded build the tests run (3.13t).
pub const TESTED_FREE_THREADED_MINORS: [u64; 1] = [13];

/// What gilscope must be told of a release before 3.13.
#[derive(Debug, Clone, Copy)]
pub struct FixedOffsets {
    /// Where the GIL is.
    pub gil: GilSource,
    /// How a thread state names its OS thread (the GIL's holder, the stack walk's threads).
    pub thread_id: ThreadIdField,
    /// The collector's `collecting` flag; `None` where it was not measured (3.7).
    pub gc_collecting: Option<CollectingFlag>,
    /// The stack walk's layout; `None` where gilscope leaves the walk to py-spy (3.7).
    pub frames: Option<Layout>,
}

/// The fixed offsets of CPython `3.minor` (its default build), for 3.7 to 3.12.
pub fn fixed_offsets(minor: u64) -> Option<FixedOffsets> {
    let pthread = ThreadIdField::Pthread(176);
    let entry = |gil_in_runtime, gc_collecting, frames| FixedOffsets {
        gil: GilSource::Runtime {
            offset: gil_in_runtime,
        },
        thread_id: pthread,
        gc_collecting: Some(gc_collecting),
        frames: Some(frames),
    };
    Some(match minor {
        7 => FixedOffsets {
            gil: GilSource::Runtime { offset: 1264 },
            thread_id: pthread,
            gc_collecting: None,
            frames: None,
        },
        8 => entry(
            1152,
            CollectingFlag::InRuntime(544),
            frames_before_3_11(pthread, 104, LineTable::Lnotab),
        ),
        9 => entry(
            352,
            CollectingFlag::InInterpreter(816),
            frames_before_3_11(pthread, 104, LineTable::Lnotab),
        ),
        10 => entry(
            352,
            CollectingFlag::InInterpreter(816),
            frames_before_3_11(pthread, 96, LineTable::Linetable310),
        ),
        11 => {
            let thread_id = ThreadIdField::Native(160);
            FixedOffsets {
                thread_id,
                ..entry(
                    360,
                    CollectingFlag::InInterpreter(848),
                    frames_3_11(thread_id),
                )
            }
        }
        12 => {
            let thread_id = ThreadIdField::Native(144);
            FixedOffsets {
                gil: GilSource::Interpreters {
                    head: 40,
                    main: 48,
                    next: 0,
                    ceval_gil: 384,
                },
                thread_id,
                gc_collecting: Some(CollectingFlag::InInterpreter(312)),
                frames: Some(frames_3_12(thread_id)),
            }
        }
        _ => return None,
    })
}

/// 3.8 to 3.10: `PyFrameObject`s, whose `f_lasti` moved in 3.10.
fn frames_before_3_11(thread: ThreadIdField, lasti: u64, lines: LineTable) -> Layout {
    Layout {
        interp_threads_head: 8,
        ts_next: 8,
        ts_frame: FrameRoot::Direct(24),
        ts_thread: thread,
        frame_back: 24,
        frame_code: 32,
        frame_kind: FrameKind::Object { lasti },
        frame_size: 112,
        code_filename: 104,
        code_name: 112,
        code_firstlineno: 40,
        code_table: 120,
        lines,
        ts_gil_flags: None,
        ts_status: None,
        strings: StrLayout::default_build(48, 72),
        bytes_size: 16,
        bytes_data: 32,
    }
}

/// 3.11: `_PyInterpreterFrame`s reached through the `_PyCFrame`; from here the name is
/// `co_qualname` (`Class.method`), as py-spy reports it.
fn frames_3_11(thread: ThreadIdField) -> Layout {
    Layout {
        interp_threads_head: 16,
        ts_next: 8,
        ts_frame: FrameRoot::ViaCFrame {
            cframe: 56,
            current_frame: 8,
        },
        ts_thread: thread,
        frame_back: 48,
        frame_code: 32,
        frame_kind: FrameKind::Interpreter {
            instr: 56,
            owner: None,
        },
        frame_size: 72,
        code_filename: 112,
        code_name: 128,
        code_firstlineno: 72,
        code_table: 136,
        lines: LineTable::Locations { code_adaptive: 184 },
        ts_gil_flags: None,
        ts_status: None,
        strings: StrLayout::default_build(48, 72),
        bytes_size: 16,
        bytes_data: 32,
    }
}

/// 3.12: frames owned by the C stack are shims (the `owner` byte); `str` lost `wstr`.
fn frames_3_12(thread: ThreadIdField) -> Layout {
    Layout {
        interp_threads_head: 72,
        ts_next: 8,
        ts_frame: FrameRoot::ViaCFrame {
            cframe: 56,
            current_frame: 0,
        },
        ts_thread: thread,
        frame_back: 8,
        frame_code: 0,
        frame_kind: FrameKind::Interpreter {
            instr: 56,
            owner: Some(70),
        },
        frame_size: 72,
        code_filename: 112,
        code_name: 128,
        code_firstlineno: 68,
        code_table: 136,
        lines: LineTable::Locations { code_adaptive: 192 },
        ts_gil_flags: None,
        ts_status: None,
        strings: StrLayout::default_build(40, 56),
        bytes_size: 16,
        bytes_data: 32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::cpython::gil::GilLocator;
    use crate::sampler::memory::fake::FakeMemory;

    #[test]
    fn one_entry_for_each_release_before_3_13() {
        assert!(fixed_offsets(6).is_none());
        assert!(fixed_offsets(13).is_none());
        let entry = |minor| fixed_offsets(minor).unwrap();
        // The GIL in `_PyRuntime` until 3.11, through the interpreters from 3.12.
        let gil = |minor| {
            let f = entry(minor);
            GilLocator::fixed(0x1000, f.gil, f.thread_id).main_gil(&FakeMemory::default())
        };
        assert_eq!(gil(8).unwrap(), 0x1000 + 1152);
        assert_eq!(gil(11).unwrap(), 0x1000 + 360);
        assert!(
            gil(12).is_err(),
            "read through an interpreter the fake has not"
        );
        // A `pthread_t` until 3.10, the kernel's tid from 3.11; the walk uses the same field.
        assert_eq!(entry(10).thread_id, ThreadIdField::Pthread(176));
        assert_eq!(entry(11).thread_id, ThreadIdField::Native(160));
        for minor in 8..=12 {
            let f = entry(minor);
            assert_eq!(f.frames.unwrap().ts_thread, f.thread_id, "3.{minor}");
        }
        assert_eq!(entry(8).gc_collecting, Some(CollectingFlag::InRuntime(544)));
        assert_eq!(
            entry(12).gc_collecting,
            Some(CollectingFlag::InInterpreter(312))
        );
        assert!(entry(7).frames.is_none() && entry(7).gc_collecting.is_none());
    }
}
