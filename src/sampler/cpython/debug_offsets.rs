//! `_Py_DebugOffsets`: the table CPython 3.13+ keeps at `_PyRuntime`+0 so that tools outside
//! the process can find its interpreters, thread states, frames, code objects and the GIL.
//!
//! The table is a flat run of `uint64_t`s whose sections grow from release to release (3.14
//! added fields to the interpreter and frame sections, 3.15 to the thread-state one), so each
//! release is read by its own word positions, taken from its own header
//! (`internal/pycore_runtime.h` in 3.13, `internal/pycore_debug_offsets.h` from 3.14) and
//! checked by `tests/offsets.rs` on the real interpreters. A release without a table here is
//! refused by name: a wrong reading would look like data.

use super::super::memory::ReadMemory;

pub const COOKIE: &[u8; 8] = b"xdebugpy";
/// The largest table read (3.15's is 111 words).
const MAX_WORDS: usize = 128;

/// A CPython version as `PY_VERSION_HEX` encodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HexVersion {
    pub major: u64,
    pub minor: u64,
    pub micro: u64,
}

impl HexVersion {
    pub fn from_hex(hex: u64) -> HexVersion {
        HexVersion {
            major: (hex >> 24) & 0xff,
            minor: (hex >> 16) & 0xff,
            micro: (hex >> 8) & 0xff,
        }
    }
}

impl std::fmt::Display for HexVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DebugOffsetsError {
    #[error("no _Py_DebugOffsets at _PyRuntime (the cookie `xdebugpy` is missing)")]
    NoCookie,
    #[error("CPython {version}{build} has a _Py_DebugOffsets layout gilscope does not know (it reads 3.13, 3.14 and 3.15)")]
    UnknownRelease {
        version: HexVersion,
        build: &'static str,
    },
    #[error("_Py_DebugOffsets of CPython {0} hold implausible values (a torn or foreign table)")]
    Implausible(HexVersion),
    #[error("reading _Py_DebugOffsets: {0}")]
    Read(String),
}

/// Where each field the sampler uses sits in one release's table, as a word index.
struct WordPositions {
    interpreters_head: usize,
    interp_size: usize,
    interp_next: usize,
    interp_threads_head: usize,
    interp_imports_modules: usize,
    /// `interp->gc`, the collector's state.
    interp_gc: usize,
    /// The collector's `collecting` flag in its state: a word of the table from 3.14; 3.13's
    /// table has no gc section, and the flag sits at a fixed offset there.
    gc_collecting: GcCollecting,
    interp_ceval_gil: usize,
    interp_gil_runtime_state: usize,
    interp_gil_enabled: usize,
    interp_gil_locked: usize,
    interp_gil_holder: usize,
    thread_size: usize,
    thread_next: usize,
    thread_current_frame: usize,
    thread_native_thread_id: usize,
    thread_holds_gil: Option<usize>,
    thread_gil_requested: Option<usize>,
    /// Not in the table: byte offsets in `PyThreadState` of `int state` and `uintptr_t
    /// critical_section` (`offsetof` with the release's headers, the same in both builds;
    /// checked by `tests/thread_status.rs` on the real interpreters).
    thread_state_field: u64,
    thread_critical_section: u64,
    frame_size: usize,
    frame_previous: usize,
    frame_executable: usize,
    frame_instr_ptr: usize,
    frame_owner: usize,
    code_size: usize,
    code_filename: usize,
    code_qualname: usize,
    code_linetable: usize,
    code_firstlineno: usize,
    code_adaptive: usize,
    object_size: usize,
    object_type: usize,
    type_name: usize,
    type_flags: usize,
    dict_keys: usize,
    dict_values: usize,
    bytes_size: usize,
    bytes_data: usize,
    str_state: usize,
    str_length: usize,
    str_ascii_size: usize,
}

/// Where a thread state (3.13+) keeps its attachment and its critical sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadStatusFields {
    /// `int state`: detached, attached, suspended (`_Py_THREAD_*`).
    pub state: u64,
    /// Free-threaded builds: `uintptr_t critical_section`, the tagged pointer to the
    /// innermost critical section (always 0 in the default build, and not read there).
    pub critical_section: Option<u64>,
}

/// Where the collector's `collecting` flag sits in its state.
#[derive(Clone, Copy)]
enum GcCollecting {
    /// A word of the table (3.14+: `gc.collecting`).
    Word(usize),
    /// At this offset (3.13: `struct _gc_runtime_state`, both builds; checked by
    /// `tests/offsets.rs` against the interpreter's own `gc.callbacks`).
    Fixed(u64),
}

/// 3.13 (both builds): from `internal/pycore_runtime.h`.
const V3_13: WordPositions = WordPositions {
    interpreters_head: 5,
    interp_size: 6,
    interp_next: 8,
    interp_threads_head: 9,
    interp_imports_modules: 11,
    interp_gc: 10,
    gc_collecting: GcCollecting::Fixed(200),
    interp_ceval_gil: 14,
    interp_gil_runtime_state: 15,
    interp_gil_enabled: 16,
    interp_gil_locked: 17,
    interp_gil_holder: 18,
    thread_size: 19,
    thread_next: 21,
    thread_current_frame: 23,
    thread_native_thread_id: 25,
    thread_holds_gil: None,
    thread_gil_requested: None,
    thread_state_field: 40,
    thread_critical_section: 176,
    frame_size: 28,
    frame_previous: 29,
    frame_executable: 30,
    frame_instr_ptr: 31,
    frame_owner: 33,
    code_size: 34,
    code_filename: 35,
    code_qualname: 37,
    code_linetable: 38,
    code_firstlineno: 39,
    code_adaptive: 43,
    object_size: 44,
    object_type: 45,
    type_name: 47,
    type_flags: 49,
    dict_keys: 57,
    dict_values: 58,
    bytes_size: 65,
    bytes_data: 66,
    str_state: 68,
    str_length: 69,
    str_ascii_size: 70,
};

/// 3.14: `threads_main`, `code_object_generation` and `tlbc_generation` in the interpreter
/// section, `stackpointer` and `tlbc_index` in the frame one, `co_tlbc` in the code one, and
/// a set section.
const V3_14: WordPositions = WordPositions {
    interpreters_head: 5,
    interp_size: 6,
    interp_next: 8,
    interp_threads_head: 9,
    interp_imports_modules: 12,
    interp_gc: 11,
    gc_collecting: GcCollecting::Word(82),
    interp_ceval_gil: 15,
    interp_gil_runtime_state: 16,
    interp_gil_enabled: 17,
    interp_gil_locked: 18,
    interp_gil_holder: 19,
    thread_size: 22,
    thread_next: 24,
    thread_current_frame: 26,
    thread_native_thread_id: 28,
    thread_holds_gil: None,
    thread_gil_requested: None,
    thread_state_field: 44,
    thread_critical_section: 176,
    frame_size: 31,
    frame_previous: 32,
    frame_executable: 33,
    frame_instr_ptr: 34,
    frame_owner: 36,
    code_size: 39,
    code_filename: 40,
    code_qualname: 42,
    code_linetable: 43,
    code_firstlineno: 44,
    code_adaptive: 48,
    object_size: 50,
    object_type: 51,
    type_name: 53,
    type_flags: 55,
    dict_keys: 67,
    dict_values: 68,
    bytes_size: 75,
    bytes_data: 76,
    str_state: 78,
    str_length: 79,
    str_ascii_size: 80,
};

/// 3.15: the thread-state section gains `base_frame`, the profiler's last frame,
/// `holds_gil`, `gil_requested` and the exception fields; more sections follow.
const V3_15: WordPositions = WordPositions {
    interpreters_head: 5,
    interp_size: 6,
    interp_next: 8,
    interp_threads_head: 9,
    interp_imports_modules: 12,
    interp_gc: 11,
    gc_collecting: GcCollecting::Word(95),
    interp_ceval_gil: 15,
    interp_gil_runtime_state: 16,
    interp_gil_enabled: 17,
    interp_gil_locked: 18,
    interp_gil_holder: 19,
    thread_size: 22,
    thread_next: 24,
    thread_current_frame: 26,
    thread_native_thread_id: 31,
    thread_holds_gil: Some(34),
    thread_gil_requested: Some(35),
    thread_state_field: 48,
    thread_critical_section: 200,
    frame_size: 39,
    frame_previous: 40,
    frame_executable: 41,
    frame_instr_ptr: 42,
    frame_owner: 44,
    code_size: 47,
    code_filename: 48,
    code_qualname: 50,
    code_linetable: 51,
    code_firstlineno: 52,
    code_adaptive: 56,
    object_size: 58,
    object_type: 59,
    type_name: 61,
    type_flags: 63,
    dict_keys: 79,
    dict_values: 80,
    bytes_size: 87,
    bytes_data: 88,
    str_state: 90,
    str_length: 91,
    str_ascii_size: 92,
};

/// The offsets gilscope reads, from one interpreter's own table. Offsets of the interpreter,
/// thread-state, frame and object sections are relative to their structs; the GIL's are
/// relative to the GIL struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebugOffsets {
    pub version: HexVersion,
    pub free_threaded: bool,
    /// `_PyRuntime.interpreters.head`; `interpreters.main` is the word after it.
    pub interpreters_head: u64,
    pub interp_next: u64,
    pub interp_threads_head: u64,
    pub interp_imports_modules: u64,
    /// The collector's `collecting` flag, from the interpreter state.
    pub interp_gc_collecting: u64,
    /// The pointer to the interpreter's GIL (`ceval.gil`).
    pub interp_ceval_gil: u64,
    pub gil_locked: u64,
    pub gil_last_holder: u64,
    /// Free-threaded builds: `int enabled`.
    pub gil_enabled: Option<u64>,
    pub thread_next: u64,
    pub thread_current_frame: u64,
    pub thread_native_thread_id: u64,
    /// 3.15: CPython's own per-thread `holds_gil` and `gil_requested` flags.
    pub thread_gil_flags: Option<(u64, u64)>,
    /// The thread state's own status fields.
    pub thread_status: ThreadStatusFields,
    pub frame_size: u64,
    pub frame_previous: u64,
    pub frame_executable: u64,
    pub frame_instr_ptr: u64,
    pub frame_owner: u64,
    pub code_filename: u64,
    pub code_qualname: u64,
    pub code_linetable: u64,
    pub code_firstlineno: u64,
    pub code_adaptive: u64,
    pub object_size: u64,
    pub object_type: u64,
    pub type_name: u64,
    pub type_flags: u64,
    pub dict_keys: u64,
    pub dict_values: u64,
    pub bytes_size: u64,
    pub bytes_data: u64,
    pub str_state: u64,
    pub str_length: u64,
    pub str_ascii_size: u64,
}

impl DebugOffsets {
    /// Reads the table at `runtime` (the address of `_PyRuntime`).
    pub fn read(mem: &impl ReadMemory, runtime: u64) -> Result<DebugOffsets, DebugOffsetsError> {
        let mut raw = [0u8; 8 * MAX_WORDS];
        mem.read(runtime, &mut raw[..8 * 3])
            .map_err(|e| DebugOffsetsError::Read(e.to_string()))?;
        if &raw[..8] != COOKIE {
            return Err(DebugOffsetsError::NoCookie);
        }
        let version = HexVersion::from_hex(word(&raw, 1));
        let free_threaded = word(&raw, 2) != 0;
        let positions = match (version.major, version.minor) {
            (3, 13) => &V3_13,
            (3, 14) => &V3_14,
            (3, 15) => &V3_15,
            _ => {
                return Err(DebugOffsetsError::UnknownRelease {
                    version,
                    build: if free_threaded {
                        " (free-threaded)"
                    } else {
                        ""
                    },
                })
            }
        };
        mem.read(runtime, &mut raw)
            .map_err(|e| DebugOffsetsError::Read(e.to_string()))?;
        Self::parse(&raw, version, free_threaded, positions)
    }

    fn parse(
        raw: &[u8],
        version: HexVersion,
        free_threaded: bool,
        p: &WordPositions,
    ) -> Result<DebugOffsets, DebugOffsetsError> {
        let w = |i: usize| word(raw, i);
        let embedded_gil = w(p.interp_gil_runtime_state);
        let (locked, holder) = (w(p.interp_gil_locked), w(p.interp_gil_holder));
        let offsets = DebugOffsets {
            version,
            free_threaded,
            interpreters_head: w(p.interpreters_head),
            interp_next: w(p.interp_next),
            interp_threads_head: w(p.interp_threads_head),
            interp_imports_modules: w(p.interp_imports_modules),
            interp_gc_collecting: w(p.interp_gc).wrapping_add(match p.gc_collecting {
                GcCollecting::Word(i) => w(i),
                GcCollecting::Fixed(offset) => offset,
            }),
            interp_ceval_gil: w(p.interp_ceval_gil),
            gil_locked: locked.wrapping_sub(embedded_gil),
            gil_last_holder: holder.wrapping_sub(embedded_gil),
            gil_enabled: free_threaded.then(|| w(p.interp_gil_enabled)),
            thread_next: w(p.thread_next),
            thread_current_frame: w(p.thread_current_frame),
            thread_native_thread_id: w(p.thread_native_thread_id),
            thread_gil_flags: p
                .thread_holds_gil
                .zip(p.thread_gil_requested)
                .map(|(h, r)| (w(h), w(r))),
            thread_status: ThreadStatusFields {
                state: p.thread_state_field,
                critical_section: free_threaded.then_some(p.thread_critical_section),
            },
            frame_size: w(p.frame_size),
            frame_previous: w(p.frame_previous),
            frame_executable: w(p.frame_executable),
            frame_instr_ptr: w(p.frame_instr_ptr),
            frame_owner: w(p.frame_owner),
            code_filename: w(p.code_filename),
            code_qualname: w(p.code_qualname),
            code_linetable: w(p.code_linetable),
            code_firstlineno: w(p.code_firstlineno),
            code_adaptive: w(p.code_adaptive),
            object_size: w(p.object_size),
            object_type: w(p.object_type),
            type_name: w(p.type_name),
            type_flags: w(p.type_flags),
            dict_keys: w(p.dict_keys),
            dict_values: w(p.dict_values),
            bytes_size: w(p.bytes_size),
            bytes_data: w(p.bytes_data),
            str_state: w(p.str_state),
            str_length: w(p.str_length),
            str_ascii_size: w(p.str_ascii_size),
        };
        let (interp_size, thread_size, frame_size, code_size) = (
            w(p.interp_size),
            w(p.thread_size),
            w(p.frame_size),
            w(p.code_size),
        );
        let within =
            |offs: &[u64], size: u64| size > 0 && size < 1 << 20 && offs.iter().all(|&o| o < size);
        let o = &offsets;
        let plausible = within(
            &[
                o.interp_next,
                o.interp_threads_head,
                o.interp_ceval_gil,
                o.interp_gc_collecting,
                embedded_gil,
                locked,
                holder,
            ],
            interp_size,
        ) && locked > embedded_gil
            && holder > embedded_gil
            && within(
                &[
                    o.thread_next,
                    o.thread_current_frame,
                    o.thread_native_thread_id,
                ],
                thread_size,
            )
            && o.thread_gil_flags
                .is_none_or(|(h, r)| h < thread_size && r < thread_size)
            && o.thread_status.state < thread_size
            && o.thread_status
                .critical_section
                .is_none_or(|c| c < thread_size)
            && within(
                &[
                    o.frame_previous,
                    o.frame_executable,
                    o.frame_instr_ptr,
                    o.frame_owner,
                ],
                frame_size,
            )
            && frame_size <= 256
            && within(
                &[
                    o.code_filename,
                    o.code_qualname,
                    o.code_linetable,
                    o.code_firstlineno,
                    o.code_adaptive,
                ],
                code_size + 1,
            )
            && o.object_size >= 16
            && o.str_ascii_size < 256
            && o.bytes_data < 256;
        if plausible {
            Ok(offsets)
        } else {
            Err(DebugOffsetsError::Implausible(version))
        }
    }

    /// The thread-state bytes the walk reads at once: every field it uses.
    pub fn thread_header_size(&self) -> u64 {
        let flags = self.thread_gil_flags.map_or(0, |(h, r)| h.max(r));
        self.thread_next
            .max(self.thread_current_frame)
            .max(self.thread_native_thread_id)
            .max(flags)
            + 8
    }
}

fn word(raw: &[u8], i: usize) -> u64 {
    raw.get(8 * i..8 * i + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sampler::memory::fake::FakeMemory;

    /// CPython 3.13.0's table, read live (`_PyRuntime`+8 onwards).
    pub const LIVE_3_13_0: &[u64] = &[
        51183856, 0, 283320, 608, 632, 194968, 7272, 7264, 7344, 7400, 7656, 7640, 7648, 16, 7752,
        0, 7768, 7760, 304, 0, 8, 16, 72, 152, 160, 232, 32, 80, 8, 0, 56, 72, 70, 208, 112, 120,
        128, 136, 68, 52, 96, 104, 200, 16, 8, 416, 24, 88, 168, 32, 24, 16, 40, 24, 16, 48, 32,
        40, 24, 16, 32, 16, 24, 40, 16, 32, 64, 32, 16, 40, 240, 200,
    ];
    /// CPython 3.13.5t (free-threaded).
    pub const LIVE_3_13_5T: &[u64] = &[
        51185136, 1, 328320, 608, 632, 215616, 7272, 7264, 7344, 7400, 7664, 7648, 7656, 16, 7760,
        0, 7784, 7776, 304, 0, 8, 16, 72, 152, 160, 232, 32, 80, 8, 0, 56, 72, 70, 224, 128, 136,
        144, 152, 84, 68, 112, 120, 216, 32, 24, 432, 40, 104, 184, 48, 40, 32, 56, 40, 32, 64, 48,
        56, 40, 32, 48, 32, 40, 56, 32, 48, 80, 48, 32, 56, 248, 200,
    ];
    /// CPython 3.14.10 (Debian's build).
    pub const LIVE_3_14_10: &[u64] = &[
        51251952, 0, 316616, 784, 808, 225864, 7280, 7272, 7344, 7360, 7408, 7688, 7672, 7680, 16,
        7784, 0, 7800, 7792, 7992, 0, 832, 0, 8, 16, 72, 152, 160, 232, 32, 88, 8, 0, 56, 80, 74,
        64, 0, 216, 112, 120, 128, 136, 68, 52, 96, 104, 208, 0, 16, 8, 416, 24, 88, 168, 40, 32,
        16, 40, 24, 16, 200, 24, 40, 32, 48, 32, 40, 24, 16, 32, 16, 24, 40, 16, 32, 64, 32, 16,
        40, 264, 192, 160, 24, 72, 67, 0, 8, 24, 304, 8076, 0, 4, 512,
    ];
    /// CPython 3.15.2 (Debian's build).
    pub const LIVE_3_15_2: &[u64] = &[
        51315440, 0, 346568, 912, 936, 226240, 7272, 7264, 7336, 7352, 7400, 7592, 7576, 7584, 16,
        7736, 0, 7752, 7744, 7944, 0, 888, 0, 8, 16, 72, 80, 88, 96, 176, 184, 256, 32, 36, 40,
        136, 288, 0, 88, 8, 0, 56, 80, 74, 64, 0, 216, 112, 120, 128, 136, 68, 52, 96, 104, 208, 0,
        16, 8, 424, 24, 88, 168, 32, 288, 944, 888, 40, 32, 16, 40, 24, 16, 200, 24, 40, 32, 48,
        32, 40, 24, 16, 32, 16, 24, 40, 16, 32, 64, 32, 16, 40, 56, 176, 112, 120, 1120, 104, 160,
        24, 72, 67, 0, 8, 24, 344, 8028, 0, 4, 512,
    ];

    pub fn table(words: &[u64]) -> Vec<u8> {
        let mut bytes = COOKIE.to_vec();
        for w in words {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        bytes.resize(8 * MAX_WORDS, 0);
        bytes
    }

    #[test]
    fn versions_decode_from_py_version_hex() {
        let v = HexVersion::from_hex(0x030e0af0);
        assert_eq!((v.major, v.minor, v.micro), (3, 14, 10));
        assert_eq!(v.to_string(), "3.14.10");
    }

    #[test]
    fn an_unknown_release_is_refused_by_name() {
        let mut mem = FakeMemory::default();
        mem.regions.insert(0x1000, table(&[0x031000f0, 1]));
        let err = DebugOffsets::read(&mem, 0x1000).unwrap_err();
        assert_eq!(err.to_string(), "CPython 3.16.0 (free-threaded) has a _Py_DebugOffsets layout gilscope does not know (it reads 3.13, 3.14 and 3.15)");
        mem.regions.insert(0x1000, vec![b'x'; 8 * MAX_WORDS]);
        assert_eq!(
            DebugOffsets::read(&mem, 0x1000),
            Err(DebugOffsetsError::NoCookie)
        );
    }

    #[test]
    fn a_3_13_table_read_by_3_14_positions_is_implausible() {
        // 3.13's words under a 3.14 version word: its positions land on other fields.
        let mut words = LIVE_3_13_0.to_vec();
        words[0] = 0x030e0af0;
        let raw = table(&words);
        let err = DebugOffsets::parse(&raw, HexVersion::from_hex(words[0]), false, &V3_14);
        assert!(
            matches!(err, Err(DebugOffsetsError::Implausible(_))),
            "{err:?}"
        );
    }

    fn parse(words: &[u64]) -> DebugOffsets {
        let mut mem = FakeMemory::default();
        mem.regions.insert(0x1000, table(words));
        DebugOffsets::read(&mem, 0x1000).unwrap()
    }

    #[test]
    fn each_release_reads_by_its_own_positions() {
        // (table, thread id, current frame, GIL locked/holder, free-threaded, 3.15 flags)
        let v13 = parse(LIVE_3_13_0);
        assert_eq!(
            (v13.thread_native_thread_id, v13.thread_current_frame),
            (160, 72)
        );
        assert_eq!(
            (v13.gil_locked, v13.gil_last_holder, v13.gil_enabled),
            (16, 8, None)
        );
        let ft = parse(LIVE_3_13_5T);
        assert!(ft.free_threaded);
        assert_eq!(
            (ft.gil_locked, ft.gil_last_holder, ft.gil_enabled),
            (24, 16, Some(0))
        );
        assert_eq!(ft.object_size, 32);
        let v14 = parse(LIVE_3_14_10);
        assert_eq!(v14.version.to_string(), "3.14.10");
        assert_eq!(
            (v14.thread_native_thread_id, v14.frame_size, v14.frame_owner),
            (160, 88, 74)
        );
        assert_eq!(v14.thread_gil_flags, None);
        let v15 = parse(LIVE_3_15_2);
        assert_eq!(v15.thread_native_thread_id, 184);
        assert_eq!(v15.thread_gil_flags, Some((36, 40)));
        assert_eq!(v15.thread_header_size(), 192);
    }
}
