//! gilscope's own walk of the Python stacks, for the builds whose layouts it knows: CPython 3.8
//! to 3.15, and the free-threaded 3.13t (from 3.13 through each release's `_Py_DebugOffsets`).
//! py-spy's walk, on every sample, lists `/proc/PID/task`, reads every
//! thread's `stat`, and re-reads each frame's code object, its name, file name and line table
//! (eight reads a frame). This walk reads each frame and its code object once a sample and
//! keeps the rest, checked against the code object's fields. Names, lines and skipped frames
//! are py-spy's, to the byte (`tests/offsets.rs` compares the two on every version); other
//! builds keep py-spy's walk.

use std::collections::{HashMap, HashSet};
use std::io;

use super::gil::ThreadRef;
use super::layout::{
    FrameKind, FrameRoot, Layout, StrLayout, FIRST_NON_PYTHON_OWNER, STACKREF_TAG_BITS,
};
use super::line_table::line_of;
use crate::model::Frame;
use crate::sampler::memory::ReadMemory;

/// Frames past this are counted but not named (py-spy refuses stacks deeper than 4096).
pub const MAX_FRAMES_WALKED: usize = 4096;
/// At most this many thread states are followed: the list is read from a live process.
const MAX_THREADS: usize = 4096;
/// Strings and line tables longer than py-spy reads are not read either.
const MAX_STRING_CHARS: u64 = 4096;
const MAX_TABLE_BYTES: u64 = 65536;
const PAGE: u64 = 4096;
/// The code cache is dropped when it grows past this (code made by `exec` in a loop).
const MAX_CACHED_CODES: usize = 65536;

/// CPython 3.15's own per-thread GIL flags (see [`crate::model::CpythonGilFlags`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadGilFlags {
    pub holds_gil: bool,
    pub gil_requested: bool,
}

/// A thread state's own status (3.13+), as read at one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadStatusReading {
    /// `int state` (`_Py_THREAD_*`).
    pub state: i32,
    pub critical_section: CriticalSection,
}

/// A free-threaded thread's innermost critical section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CriticalSection {
    /// None, or one that could not be read.
    None,
    /// Pushed without its mutex yet: the thread waits for an object's lock.
    Entering,
    /// Holding the mutex at this address (an object's `ob_mutex`, or an interpreter lock).
    Holding(u64),
}

/// `_Py_CRITICAL_SECTION_MASK`: the tag bits of `critical_section` (inactive, two mutexes).
const CRITICAL_SECTION_TAG_BITS: u64 = 0x3;
const CRITICAL_SECTION_TWO_MUTEXES: u64 = 0x2;

/// The critical section `tag` points to. `PyCriticalSection` is `{uintptr_t prev; PyMutex
/// *mutex}` (`PyCriticalSection2` adds `mutex2`): CPython pushes a section with no mutex,
/// locks, and only then sets the mutex (`_PyCriticalSection_BeginSlow`, and `_Resume` after a
/// detach), so a pushed section without one is a thread waiting.
fn critical_section(mem: &impl ReadMemory, tag: u64) -> CriticalSection {
    if tag == 0 {
        return CriticalSection::None;
    }
    let two = tag & CRITICAL_SECTION_TWO_MUTEXES != 0;
    let mut section = [0u8; 24];
    let section = &mut section[..if two { 24 } else { 16 }];
    if mem.read(tag & !CRITICAL_SECTION_TAG_BITS, section).is_err() {
        return CriticalSection::None;
    }
    match u64_at(section, 8) {
        0 => CriticalSection::Entering,
        _ if two && u64_at(section, 16) == 0 => CriticalSection::Entering,
        mutex => CriticalSection::Holding(mutex),
    }
}

/// One Python thread as the walk found it.
#[derive(Debug, Clone, PartialEq)]
pub struct WalkedThread {
    pub thread: ThreadRef,
    /// None for a thread left unwalked, as unchanged (see [`FrameWalker::walk`]).
    pub stack: Option<WalkedStack>,
    /// CPython's own view of this thread's GIL (3.15 keeps it in the thread state).
    pub gil_flags: Option<ThreadGilFlags>,
    pub status: Option<ThreadStatusReading>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WalkedStack {
    /// Innermost first, at most `keep` of them (see [`FrameWalker::walk`]).
    pub frames: Vec<Frame>,
    /// Frames in the stack, up to [`MAX_FRAMES_WALKED`].
    pub depth: usize,
}

/// What the fields of a code object said when it was last read: equal fields mean the same
/// strings and table (the code object holds them, and they are immutable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CodeKey {
    filename: u64,
    name: u64,
    table: u64,
    firstlineno: i32,
}

#[derive(Debug)]
struct CodeInfo {
    key: CodeKey,
    /// None where py-spy skips the frame: unreadable or over-long names, `<shim>` frames.
    names: Option<(String, String)>,
    table: Option<Vec<u8>>,
    lines: HashMap<i64, i32>,
}

/// Walks the thread states of one interpreter, caching code objects by address.
#[derive(Debug)]
pub struct FrameWalker {
    layout: Layout,
    interpreter: u64,
    codes: HashMap<u64, CodeInfo>,
    /// The memory last read around a frame, and where it starts.
    window: Vec<u8>,
    window_start: u64,
    /// The thread states seen in this walk: a loop in the list is a torn read.
    seen: HashSet<u64>,
    /// The current thread's Python frames: code object and instruction.
    pending: Vec<(u64, i64)>,
    /// Their code objects' addresses, and headers, one block each.
    addresses: Vec<u64>,
    headers: Vec<u8>,
}

impl FrameWalker {
    pub fn new(layout: Layout, interpreter: u64) -> FrameWalker {
        FrameWalker {
            layout,
            interpreter,
            codes: HashMap::new(),
            window: Vec::new(),
            window_start: 0,
            pending: Vec::new(),
            seen: HashSet::new(),
            addresses: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// Every thread's stack, naming at most `keep` frames of each; threads for which
    /// `unchanged` holds are listed without walking their frames (`stack: None`). An error means
    /// the thread list itself could not be read (the interpreter is going away, or a torn read).
    pub fn walk(
        &mut self,
        mem: &impl ReadMemory,
        keep: usize,
        unchanged: impl Fn(ThreadRef) -> bool,
    ) -> io::Result<Vec<WalkedThread>> {
        let layout = self.layout;
        let mut threads = Vec::new();
        let mut tstate = mem.read_u64(self.interpreter + layout.interp_threads_head)?;
        let mut header = [0u8; 256];
        let header = &mut header[..layout.thread_header_size()];
        self.seen.clear();
        while tstate != 0 {
            if threads.len() >= MAX_THREADS || !self.seen.insert(tstate) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the thread list loops or is too long (a torn read)",
                ));
            }
            mem.read(tstate, header)?;
            let field = layout.ts_thread;
            let thread = field.thread(u64_at(header, field.offset()));
            let gil_flags = layout.ts_gil_flags.map(|(held, requested)| ThreadGilFlags {
                holds_gil: i32_at(header, held) != 0,
                gil_requested: i32_at(header, requested) != 0,
            });
            let status = layout.ts_status.map(|fields| ThreadStatusReading {
                state: i32_at(header, fields.state),
                critical_section: fields
                    .critical_section
                    .map_or(CriticalSection::None, |off| {
                        critical_section(mem, u64_at(header, off))
                    }),
            });
            let next = u64_at(header, layout.ts_next);
            if unchanged(thread) {
                threads.push(WalkedThread {
                    thread,
                    stack: None,
                    gil_flags,
                    status,
                });
                tstate = next;
                continue;
            }
            let frame = match layout.ts_frame {
                FrameRoot::Direct(off) => u64_at(header, off),
                FrameRoot::ViaCFrame {
                    cframe,
                    current_frame,
                } => match u64_at(header, cframe) {
                    0 => 0,
                    cframe => mem.read_u64(cframe + current_frame)?,
                },
            };
            let (frames, depth) = self.walk_frames(mem, frame, keep)?;
            threads.push(WalkedThread {
                thread,
                stack: Some(WalkedStack { frames, depth }),
                gil_flags,
                status,
            });
            tstate = next;
        }
        Ok(threads)
    }

    fn walk_frames(
        &mut self,
        mem: &impl ReadMemory,
        mut frame: u64,
        keep: usize,
    ) -> io::Result<(Vec<Frame>, usize)> {
        let layout = self.layout;
        // First the chain, then every code object at once.
        self.window.clear();
        self.pending.clear();
        let mut beyond = 0;
        let mut steps = 0;
        while frame != 0 && steps < MAX_FRAMES_WALKED {
            steps += 1;
            let raw = self.frame_bytes(mem, frame)?;
            let word = |off: u64| u64_at(raw, off);
            let code = word(layout.frame_code) & !STACKREF_TAG_BITS;
            let back = word(layout.frame_back);
            let (python, instruction) = match layout.frame_kind {
                FrameKind::Object { lasti } => (true, i64::from(i32_at(raw, lasti))),
                FrameKind::Interpreter { instr, owner } => {
                    let shim = owner.is_some_and(|off| raw[off as usize] >= FIRST_NON_PYTHON_OWNER);
                    (
                        !shim && code != 0,
                        (word(instr) as i64).wrapping_sub(code as i64),
                    )
                }
            };
            frame = back;
            match (python, self.pending.len() < keep) {
                (false, _) => {}
                (true, true) => self.pending.push((code, instruction)),
                (true, false) => beyond += 1,
            }
        }
        // Code objects are read in one system call; any after one that failed, one by one.
        let size = layout.code_header_size();
        let pending = std::mem::take(&mut self.pending);
        let mut headers = std::mem::take(&mut self.headers);
        headers.resize(pending.len() * size, 0);
        self.addresses.clear();
        self.addresses.extend(pending.iter().map(|&(code, _)| code));
        let whole = mem.read_blocks(&self.addresses, &mut headers);
        let mut frames = Vec::with_capacity(pending.len());
        let blocks = pending.iter().zip(headers.chunks_exact_mut(size));
        for (i, (&(code, instruction), block)) in blocks.enumerate() {
            if i < whole || mem.read(code, block).is_ok() {
                frames.extend(self.frame_at(mem, code, block, instruction));
            }
        }
        self.headers = headers;
        self.pending = pending;
        let depth = frames.len() + beyond + usize::from(frame != 0);
        Ok((frames, depth))
    }

    /// The frame at `addr`. Interpreter frames (3.11+) are stacked upwards in a thread's data
    /// stack, so reading from the start of the frame's page (always mapped, unlike the page
    /// below it) usually brings its callers too.
    fn frame_bytes(&mut self, mem: &impl ReadMemory, addr: u64) -> io::Result<&[u8]> {
        let size = self.layout.frame_size;
        let end = addr
            .checked_add(size as u64)
            .ok_or(io::ErrorKind::InvalidData)?;
        let start = self.window_start;
        let cached = addr >= start && end <= start + self.window.len() as u64;
        if !cached {
            let from = match self.layout.frame_kind {
                FrameKind::Interpreter { .. } => addr & !(PAGE - 1),
                FrameKind::Object { .. } => addr,
            };
            self.window.resize((end - from) as usize, 0);
            self.window_start = from;
            if let Err(e) = mem.read(from, &mut self.window) {
                self.window.clear();
                return Err(e);
            }
        }
        let offset = (addr - self.window_start) as usize;
        Ok(&self.window[offset..offset + size])
    }

    /// The frame of code object `code` at `instruction`; None where py-spy skips the frame.
    fn frame_at(
        &mut self,
        mem: &impl ReadMemory,
        code: u64,
        header: &[u8],
        instruction: i64,
    ) -> Option<Frame> {
        let layout = self.layout;
        let key = CodeKey {
            filename: u64_at(header, layout.code_filename),
            name: u64_at(header, layout.code_name),
            table: u64_at(header, layout.code_table),
            firstlineno: i32_at(header, layout.code_firstlineno),
        };
        let stale = self.codes.get(&code).is_none_or(|info| info.key != key);
        if stale {
            if self.codes.len() >= MAX_CACHED_CODES {
                self.codes.clear();
            }
            let names = read_string(mem, &layout.strings, key.name)
                .zip(read_string(mem, &layout.strings, key.filename))
                .filter(|(_, file)| !file.is_empty() && file != "<shim>");
            let info = CodeInfo {
                key,
                table: names
                    .as_ref()
                    .and_then(|_| read_bytes(mem, &layout, key.table)),
                names,
                lines: HashMap::new(),
            };
            self.codes.insert(code, info);
        }
        let info = self.codes.get_mut(&code)?;
        let (function, file) = info.names.as_ref()?;
        let line = match &info.table {
            Some(table) => *info
                .lines
                .entry(instruction)
                .or_insert_with(|| line_of(layout.lines, key.firstlineno, instruction, table)),
            None => 0,
        };
        Some(Frame {
            function: function.clone(),
            file: file.clone(),
            line,
        })
    }
}

fn u64_at(buf: &[u8], off: u64) -> u64 {
    let off = off as usize;
    u64::from_le_bytes(buf[off..off + 8].try_into().unwrap_or_default())
}

fn i32_at(buf: &[u8], off: u64) -> i32 {
    let off = off as usize;
    i32::from_le_bytes(buf[off..off + 4].try_into().unwrap_or_default())
}

/// A `str` object's text, decoded as py-spy decodes it; None where py-spy gives an error.
pub(crate) fn read_string(mem: &impl ReadMemory, layout: &StrLayout, addr: u64) -> Option<String> {
    let mut buf = [0u8; 128];
    let header = buf.get_mut(..layout.ascii_size as usize)?;
    mem.read(addr, header).ok()?;
    let length = u64_at(header, layout.length);
    let state = u32::from_le_bytes(
        header
            .get(layout.state as usize..)?
            .get(..4)?
            .try_into()
            .ok()?,
    );
    if length == 0 {
        return Some(String::new());
    }
    if length >= MAX_STRING_CHARS {
        return None;
    }
    let kind = u64::from((state >> layout.kind_shift) & 7);
    let (compact_shift, ascii_shift) = (layout.kind_shift + 3, layout.kind_shift + 4);
    let compact = (state >> compact_shift) & 1 == 1;
    let ascii = (state >> ascii_shift) & 1 == 1;
    let data = match (compact, ascii) {
        (false, _) => mem.read_u64(addr + layout.compact_size).ok()?,
        (true, true) => addr + layout.ascii_size,
        (true, false) => addr + layout.compact_size,
    };
    let mut bytes = vec![0u8; (length * kind) as usize];
    mem.read(data, &mut bytes).ok()?;
    match (kind, ascii) {
        (4, _) => bytes
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        (2, _) => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        (1, true) => String::from_utf8(bytes).ok(),
        (1, false) => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        _ => None,
    }
}

/// A `bytes` object's contents (a line table).
fn read_bytes(mem: &impl ReadMemory, layout: &Layout, addr: u64) -> Option<Vec<u8>> {
    let size = mem.read_u64(addr + layout.bytes_size).ok()?;
    if size >= MAX_TABLE_BYTES {
        return None;
    }
    let mut bytes = vec![0u8; size as usize];
    mem.read(addr + layout.bytes_data, &mut bytes).ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::cpython::debug_offsets::DebugOffsets;
    use crate::sampler::cpython::versions::fixed_offsets;
    use crate::sampler::memory::fake::FakeMemory;
    use crate::sampler::namespace::TargetTid;

    /// Puts a zeroed struct of `size` bytes at `addr` with the given little-endian fields.
    fn put(mem: &mut FakeMemory, addr: u64, size: usize, fields: &[(u64, &[u8])]) {
        let mut bytes = vec![0u8; size];
        for (off, value) in fields {
            bytes[*off as usize..*off as usize + value.len()].copy_from_slice(value);
        }
        mem.regions.insert(addr, bytes);
    }

    /// A compact ASCII `str` in the 3.12 layout (header of 40 bytes, then the text).
    fn put_str(mem: &mut FakeMemory, addr: u64, text: &str) {
        let state: u32 = (1 << 2) | (1 << 5) | (1 << 6); // kind 1, compact, ascii
        let mut bytes = vec![0u8; 40];
        bytes[16..24].copy_from_slice(&(text.len() as u64).to_le_bytes());
        bytes[32..36].copy_from_slice(&state.to_le_bytes());
        bytes.extend_from_slice(text.as_bytes());
        mem.regions.insert(addr, bytes);
    }

    const INTERP: u64 = 0x1000;
    const TSTATE: u64 = 0x2000;
    const CFRAME: u64 = 0x3000;
    const CODE: u64 = 0x4000;
    const TABLE: u64 = 0x5000;
    const FRAMES: u64 = 0x10_0000;

    fn put_code(mem: &mut FakeMemory, name: u64) {
        put(
            mem,
            CODE,
            256,
            &[
                (112, &0x6000u64.to_le_bytes()),
                (128, &name.to_le_bytes()),
                (136, &TABLE.to_le_bytes()),
                (68, &7i32.to_le_bytes()),
            ],
        );
    }

    /// One 3.12 thread (tid 77) whose frames are `owners.len()` interpreter frames, each
    /// running CODE unless owned by the C stack.
    fn fake_312(owners: &[u8]) -> FakeMemory {
        let mut mem = FakeMemory::default();
        put(&mut mem, INTERP, 80, &[(72, &TSTATE.to_le_bytes())]);
        put(
            &mut mem,
            TSTATE,
            160,
            &[(56, &CFRAME.to_le_bytes()), (144, &77u64.to_le_bytes())],
        );
        put(&mut mem, CFRAME, 8, &[(0, &FRAMES.to_le_bytes())]);
        for (i, &owner) in owners.iter().enumerate() {
            let addr = FRAMES + 72 * i as u64;
            let back = if i + 1 < owners.len() { addr + 72 } else { 0 };
            put(
                &mut mem,
                addr,
                72,
                &[
                    (0, &CODE.to_le_bytes()),
                    (8, &back.to_le_bytes()),
                    (56, &(CODE + 192).to_le_bytes()),
                    (70, &[owner]),
                ],
            );
        }
        put_code(&mut mem, 0x7000);
        put_str(&mut mem, 0x6000, "app.py");
        put_str(&mut mem, 0x7000, "Worker.run");
        put_str(&mut mem, 0x7100, "renamed");
        // One entry: code 11 (line + 1), one code unit, two column bytes.
        put(
            &mut mem,
            TABLE,
            40,
            &[(16, &3u64.to_le_bytes()), (32, &[0xD8, 0, 0])],
        );
        mem
    }

    #[test]
    fn shim_frames_are_skipped_and_threads_named_by_their_tid() {
        let mem = fake_312(&[0, FIRST_NON_PYTHON_OWNER, 0]);
        let layout = fixed_offsets(12).unwrap().frames.unwrap();
        let mut walker = FrameWalker::new(layout, INTERP);
        let threads = walker.walk(&mem, 512, |_| false).unwrap();
        let frame = Frame {
            function: "Worker.run".into(),
            file: "app.py".into(),
            line: 8,
        };
        let stack = WalkedStack {
            frames: vec![frame.clone(), frame],
            depth: 2,
        };
        assert_eq!(
            threads,
            vec![WalkedThread {
                thread: ThreadRef::Tid(TargetTid(77)),
                stack: Some(stack),
                gil_flags: None,
                status: None,
            }]
        );
        // A thread the caller knows did not run is listed, not walked.
        let threads = walker
            .walk(&mem, 512, |t| t == ThreadRef::Tid(TargetTid(77)))
            .unwrap();
        assert_eq!(threads[0].stack, None);
    }

    #[test]
    fn a_code_object_whose_fields_changed_is_read_again() {
        let mut mem = fake_312(&[0]);
        let mut walker = FrameWalker::new(fixed_offsets(12).unwrap().frames.unwrap(), INTERP);
        let mut name = |mem: &FakeMemory| {
            let threads = walker.walk(mem, 512, |_| false).unwrap();
            threads[0].stack.as_ref().unwrap().frames[0]
                .function
                .clone()
        };
        assert_eq!(name(&mem), "Worker.run");
        // Another code object at the same address, with another name.
        put_code(&mut mem, 0x7100);
        assert_eq!(name(&mem), "renamed");
    }

    #[test]
    fn deep_stacks_are_named_to_the_limit_and_counted_beyond() {
        let mem = fake_312(&vec![0; MAX_FRAMES_WALKED + 10]);
        let mut walker = FrameWalker::new(fixed_offsets(12).unwrap().frames.unwrap(), INTERP);
        let threads = walker.walk(&mem, 512, |_| false).unwrap();
        let stack = threads[0].stack.as_ref().unwrap();
        assert_eq!(stack.frames.len(), 512);
        assert_eq!(stack.depth, MAX_FRAMES_WALKED + 1);
    }

    /// 3.8 to 3.12 from the tables, 3.13+ from live debug offsets.
    fn every_layout() -> Vec<Layout> {
        use crate::sampler::cpython::debug_offsets::tests::*;
        let mut layouts: Vec<Layout> = (8..=12)
            .filter_map(|minor| fixed_offsets(minor)?.frames)
            .collect();
        for words in [LIVE_3_13_0, LIVE_3_13_5T, LIVE_3_14_10, LIVE_3_15_2] {
            let mut mem = FakeMemory::default();
            mem.regions.insert(0x1000, table(words));
            layouts.push(Layout::from_debug_offsets(
                &DebugOffsets::read(&mem, 0x1000).unwrap(),
            ));
        }
        layouts
    }

    proptest::proptest! {
        #[test]
        fn any_memory_is_walked_without_panicking(
            words in proptest::collection::vec(0u64..0x1100, 64..256),
            version in 0..9usize,
        ) {
            // Every pointer lands in the same small region, so walks go somewhere.
            let mut mem = FakeMemory::default();
            mem.regions.insert(0, words.iter().flat_map(|w| w.to_le_bytes()).collect());
            let mut walker = FrameWalker::new(every_layout()[version], 8);
            let _ = walker.walk(&mem, 512, |_| false);
        }
    }
}
