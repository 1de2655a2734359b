//! The layout of the structures the stack walk reads: for 3.8 to 3.12 the table of
//! [`super::versions`] gives it, for 3.13+ the interpreter's own `_Py_DebugOffsets`.

use super::debug_offsets::{DebugOffsets, ThreadStatusFields};
use super::gil::ThreadIdField;

/// Where a thread state keeps its innermost frame.
#[derive(Debug, Clone, Copy)]
pub(super) enum FrameRoot {
    /// A pointer in the thread state itself.
    Direct(u64),
    /// A pointer in the `_PyCFrame` the thread state points to (3.11, 3.12).
    ViaCFrame { cframe: u64, current_frame: u64 },
}

/// How a frame is laid out and what its instruction position means.
#[derive(Debug, Clone, Copy)]
pub(super) enum FrameKind {
    /// `PyFrameObject` (3.8 to 3.10): `f_lasti` is an `int`.
    Object { lasti: u64 },
    /// `_PyInterpreterFrame` (3.11+): a pointer to the instruction, in the code object.
    Interpreter {
        instr: u64,
        /// The `owner` byte; frames owned by the C stack (3.12+) are shims, skipped.
        owner: Option<u64>,
    },
}

/// How to turn an instruction position into a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LineTable {
    /// `co_lnotab`, byte offsets (3.8, 3.9).
    Lnotab,
    /// `co_linetable` of 3.10, instruction offsets.
    Linetable310,
    /// The location table of 3.11+, relative to `co_code_adaptive`.
    Locations { code_adaptive: u64 },
}

/// The offsets one CPython version needs, as py-spy's bindings for it give them.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub(super) interp_threads_head: u64,
    pub(super) ts_next: u64,
    pub(super) ts_frame: FrameRoot,
    pub(super) ts_thread: ThreadIdField,
    pub(super) frame_back: u64,
    pub(super) frame_code: u64,
    pub(super) frame_kind: FrameKind,
    pub(super) frame_size: usize,
    pub(super) code_filename: u64,
    pub(super) code_name: u64,
    pub(super) code_firstlineno: u64,
    pub(super) code_table: u64,
    pub(super) lines: LineTable,
    /// A thread state's own GIL flags (`holds_gil`, `gil_requested`: 3.15).
    pub(super) ts_gil_flags: Option<(u64, u64)>,
    /// A thread state's own status (3.13+).
    pub(super) ts_status: Option<ThreadStatusFields>,
    pub(super) strings: StrLayout,
    pub(super) bytes_size: u64,
    pub(super) bytes_data: u64,
}

/// Where a `str` object keeps its length, its state bits and its text.
#[derive(Debug, Clone, Copy)]
pub struct StrLayout {
    pub(super) length: u64,
    pub(super) state: u64,
    /// The `kind` bits' position in `state` (free-threaded 3.14+ keep `interned` in a byte).
    pub(super) kind_shift: u32,
    /// `sizeof(PyASCIIObject)`: an ASCII string's text follows.
    pub(super) ascii_size: u64,
    /// `sizeof(PyCompactUnicodeObject)`: another compact string's text follows.
    pub(super) compact_size: u64,
}

impl StrLayout {
    /// Default builds before 3.12: 48-byte ASCII header (with `wstr`); 3.12+: 40.
    pub(super) const fn default_build(ascii_size: u64, compact_size: u64) -> StrLayout {
        StrLayout {
            length: 16,
            state: 32,
            kind_shift: 2,
            ascii_size,
            compact_size,
        }
    }
}

/// Frames with an `owner` from this one on are not Python's: `FRAME_OWNED_BY_CSTACK` in 3.12
/// and 3.13, `FRAME_OWNED_BY_INTERPRETER` (and `_CSTACK`) from 3.14.
pub(super) const FIRST_NON_PYTHON_OWNER: u8 = 3;
/// `_PyStackRef` tag bits (3.14+ tag `f_executable`); pointers to objects are 8-aligned.
pub(super) const STACKREF_TAG_BITS: u64 = 3;

impl Layout {
    /// The layout of a 3.13+ interpreter (either build), from its own `_Py_DebugOffsets`.
    pub fn from_debug_offsets(o: &DebugOffsets) -> Layout {
        Layout {
            interp_threads_head: o.interp_threads_head,
            ts_next: o.thread_next,
            ts_frame: FrameRoot::Direct(o.thread_current_frame),
            ts_thread: ThreadIdField::Native(o.thread_native_thread_id),
            frame_back: o.frame_previous,
            frame_code: o.frame_executable,
            frame_kind: FrameKind::Interpreter {
                instr: o.frame_instr_ptr,
                owner: Some(o.frame_owner),
            },
            frame_size: o.frame_size as usize,
            code_filename: o.code_filename,
            code_name: o.code_qualname,
            code_firstlineno: o.code_firstlineno,
            code_table: o.code_linetable,
            lines: LineTable::Locations {
                code_adaptive: o.code_adaptive,
            },
            ts_gil_flags: o.thread_gil_flags,
            ts_status: Some(o.thread_status),
            strings: StrLayout {
                length: o.str_length,
                state: o.str_state,
                kind_shift: if o.free_threaded && o.version.minor >= 14 {
                    8
                } else {
                    2
                },
                ascii_size: o.str_ascii_size,
                // `utf8_length` and `utf8` follow the ASCII header.
                compact_size: o.str_ascii_size + 16,
            },
            bytes_size: o.bytes_size,
            bytes_data: o.bytes_data,
        }
    }

    /// How this version lays out `str` objects.
    pub fn strings(&self) -> StrLayout {
        self.strings
    }

    pub(super) fn thread_header_size(&self) -> usize {
        let frame = match self.ts_frame {
            FrameRoot::Direct(off) => off,
            FrameRoot::ViaCFrame { cframe, .. } => cframe,
        };
        let thread = self.ts_thread.offset();
        let flags = self
            .ts_gil_flags
            .map_or(0, |(held, requested)| held.max(requested));
        let status = self
            .ts_status
            .map_or(0, |s| s.state.max(s.critical_section.unwrap_or(0)));
        (frame.max(thread).max(self.ts_next).max(flags).max(status) + 8) as usize
    }

    pub(super) fn code_header_size(&self) -> usize {
        (self.code_table.max(self.code_name).max(self.code_filename) + 8) as usize
    }
}
