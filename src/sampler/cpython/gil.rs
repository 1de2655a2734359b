//! Where the GIL lives in each CPython version, and how to read it.
//!
//! 3.13+ describe themselves in `_Py_DebugOffsets` at `_PyRuntime`+0. Before that the offsets
//! are fixed per version, in [`super::versions`].

use std::io;

use super::debug_offsets::DebugOffsets;
use crate::sampler::memory::ReadMemory;
use crate::sampler::namespace::TargetTid;

/// Field offsets inside `struct _gil_runtime_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GilLayout {
    pub size: u64,
    pub last_holder: u64,
    pub locked: u64,
    pub switch_number: u64,
    /// Free-threaded builds only: `int enabled`.
    pub enabled: Option<u64>,
}

impl GilLayout {
    /// The default build, 3.7 to 3.13: interval, last_holder, locked, switch_number, cond,
    /// mutex, switch_cond, switch_mutex.
    pub const DEFAULT: GilLayout = GilLayout {
        size: 208,
        last_holder: 8,
        locked: 16,
        switch_number: 24,
        enabled: None,
    };

    /// Free-threaded builds put `int enabled` first, shifting everything by 8.
    pub const FREE_THREADED: GilLayout = GilLayout {
        size: 216,
        last_holder: 16,
        locked: 24,
        switch_number: 32,
        enabled: Some(0),
    };
}

/// How a thread state names its OS thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadIdField {
    /// `native_thread_id` (3.11+): the kernel tid itself.
    Native(u64),
    /// `thread_id`: a `pthread_t`, the address of glibc's `struct pthread`.
    Pthread(u64),
}

impl ThreadIdField {
    /// Where the field is in the thread state.
    pub fn offset(self) -> u64 {
        match self {
            ThreadIdField::Native(off) | ThreadIdField::Pthread(off) => off,
        }
    }

    /// The thread named by the field's value.
    pub fn thread(self, value: u64) -> ThreadRef {
        match self {
            ThreadIdField::Native(_) => ThreadRef::Tid(TargetTid(value as u32)),
            ThreadIdField::Pthread(_) => ThreadRef::Pthread(value),
        }
    }
}

/// A thread as a thread state names it: the kernel tid itself, or a `pthread_t` that must be
/// mapped to one (see [`crate::sampler::pthread`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadRef {
    Tid(TargetTid),
    Pthread(u64),
}

/// How to reach every interpreter's GIL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GilSource {
    /// One GIL inside `_PyRuntime` (3.7 to 3.11).
    Runtime { offset: u64 },
    /// Each interpreter points to its GIL (3.12+): walk `_PyRuntime.interpreters`.
    Interpreters {
        head: u64,
        main: u64,
        next: u64,
        ceval_gil: u64,
    },
}

/// Everything needed to find and read the GIL of one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GilLocator {
    runtime: u64,
    source: GilSource,
    pub layout: GilLayout,
    pub thread_id: ThreadIdField,
    pub free_threaded: bool,
}

/// The GIL struct fields gilscope reads at every tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawGil {
    pub locked: bool,
    pub last_holder: u64,
    pub switch_number: u64,
    pub enabled: Option<bool>,
}

/// At most this many interpreters are walked: the list is read from a live process.
const MAX_INTERPRETERS: usize = 256;

impl GilLocator {
    /// The locator of a release before 3.13 (the table of [`super::versions`]) whose
    /// `_PyRuntime` is at `runtime`.
    pub fn fixed(runtime: u64, source: GilSource, thread_id: ThreadIdField) -> GilLocator {
        GilLocator {
            runtime,
            source,
            layout: GilLayout::DEFAULT,
            thread_id,
            free_threaded: false,
        }
    }

    /// The locator of a 3.13+ interpreter, from its own `_Py_DebugOffsets`.
    pub fn from_debug_offsets(runtime: u64, offsets: &DebugOffsets) -> GilLocator {
        let base = if offsets.free_threaded {
            GilLayout::FREE_THREADED
        } else {
            GilLayout::DEFAULT
        };
        let layout = GilLayout {
            last_holder: offsets.gil_last_holder,
            locked: offsets.gil_locked,
            // `unsigned long switch_number` follows `int locked`, aligned.
            switch_number: (offsets.gil_locked + 4).next_multiple_of(8),
            enabled: offsets.gil_enabled,
            ..base
        };
        GilLocator {
            runtime,
            source: GilSource::Interpreters {
                head: offsets.interpreters_head,
                main: offsets.interpreters_head + 8,
                next: offsets.interp_next,
                ceval_gil: offsets.interp_ceval_gil,
            },
            layout,
            thread_id: ThreadIdField::Native(offsets.thread_native_thread_id),
            free_threaded: offsets.free_threaded,
        }
    }

    /// The main interpreter's GIL struct address.
    pub fn main_gil(&self, mem: &impl ReadMemory) -> io::Result<u64> {
        match self.source {
            GilSource::Runtime { offset } => Ok(self.runtime + offset),
            GilSource::Interpreters {
                main, ceval_gil, ..
            } => {
                let interp = mem.read_u64(self.runtime + main)?;
                nonzero(mem.read_u64(interp + ceval_gil)?)
            }
        }
    }

    /// Every interpreter's GIL as `[start, end)`, main interpreter's first. Subinterpreters
    /// sharing the main GIL appear once.
    pub fn ranges(&self, mem: &impl ReadMemory) -> io::Result<Vec<(u64, u64)>> {
        let main = self.main_gil(mem)?;
        let mut starts = vec![main];
        if let GilSource::Interpreters {
            head,
            next,
            ceval_gil,
            ..
        } = self.source
        {
            let mut interp = mem.read_u64(self.runtime + head)?;
            for _ in 0..MAX_INTERPRETERS {
                if interp == 0 {
                    break;
                }
                let gil = mem.read_u64(interp + ceval_gil)?;
                if gil != 0 && !starts.contains(&gil) {
                    starts.push(gil);
                }
                interp = mem.read_u64(interp + next)?;
            }
        }
        Ok(starts
            .into_iter()
            .map(|start| (start, start + self.layout.size))
            .collect())
    }

    /// The thread holding the GIL read as `raw`, from its thread state; `None` when it is free.
    pub fn holder(&self, mem: &impl ReadMemory, raw: &RawGil) -> Option<ThreadRef> {
        if !raw.locked || raw.last_holder == 0 {
            return None;
        }
        let field = self.thread_id;
        mem.read_u64(raw.last_holder + field.offset())
            .ok()
            .map(|value| field.thread(value))
    }

    /// Reads the fields of the GIL at `gil`.
    pub fn read(&self, mem: &impl ReadMemory, gil: u64) -> io::Result<RawGil> {
        let layout = &self.layout;
        let mut buf = [0u8; 40];
        mem.read(gil, &mut buf)?;
        let field = |off: u64, len: usize| -> u64 {
            let off = off as usize;
            let mut word = [0u8; 8];
            word[..len].copy_from_slice(&buf[off..off + len]);
            u64::from_le_bytes(word)
        };
        Ok(RawGil {
            locked: field(layout.locked, 4) != 0,
            last_holder: field(layout.last_holder, 8),
            switch_number: field(layout.switch_number, 8),
            enabled: layout.enabled.map(|off| field(off, 4) != 0),
        })
    }
}

fn nonzero(addr: u64) -> io::Result<u64> {
    if addr == 0 {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the interpreter has no GIL yet",
        ))
    } else {
        Ok(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::memory::fake::FakeMemory;

    #[test]
    fn walks_interpreters_on_312() {
        let mut mem = FakeMemory::default();
        let rt = 0x10_000;
        let (main_interp, sub_interp) = (0x20_000, 0x30_000);
        mem.put_u64(rt + 40, sub_interp); // head: newest first
        mem.put_u64(rt + 48, main_interp);
        mem.put_u64(sub_interp, main_interp); // next
        mem.put_u64(sub_interp + 384, 0x50_000); // own GIL
        mem.put_u64(main_interp, 0);
        mem.put_u64(main_interp + 384, 0x40_000);
        let source = GilSource::Interpreters {
            head: 40,
            main: 48,
            next: 0,
            ceval_gil: 384,
        };
        let loc = GilLocator::fixed(rt, source, ThreadIdField::Native(144));
        assert_eq!(
            loc.ranges(&mem).unwrap(),
            vec![(0x40_000, 0x40_000 + 208), (0x50_000, 0x50_000 + 208)]
        );
    }

    #[test]
    fn debug_offsets_of_each_release() {
        use crate::sampler::cpython::debug_offsets::tests::*;
        let locate = |words: &[u64]| {
            let mut mem = FakeMemory::default();
            mem.regions.insert(0x100_000, table(words));
            DebugOffsets::read(&mem, 0x100_000)
                .map(|offsets| GilLocator::from_debug_offsets(0x100_000, &offsets))
        };
        for words in [LIVE_3_13_0, LIVE_3_14_10, LIVE_3_15_2] {
            let loc = locate(words).unwrap();
            assert_eq!(loc.layout, GilLayout::DEFAULT);
            assert!(!loc.free_threaded);
        }
        assert_eq!(
            locate(LIVE_3_13_0).unwrap().thread_id,
            ThreadIdField::Native(160)
        );
        assert_eq!(
            locate(LIVE_3_15_2).unwrap().thread_id,
            ThreadIdField::Native(184)
        );
        let ft = locate(LIVE_3_13_5T).unwrap();
        assert_eq!(ft.layout, GilLayout::FREE_THREADED);
        assert!(ft.free_threaded);
    }

    #[test]
    fn reads_fields() {
        let mut mem = FakeMemory::default();
        let mut gil = vec![0u8; 208];
        gil[8..16].copy_from_slice(&0xdead_beefu64.to_le_bytes());
        gil[16] = 1;
        gil[24..32].copy_from_slice(&42u64.to_le_bytes());
        mem.regions.insert(0x9000, gil);
        let source = GilSource::Runtime { offset: 360 };
        let loc = GilLocator::fixed(0x9000 - 360, source, ThreadIdField::Native(160));
        let raw = loc.read(&mem, 0x9000).unwrap();
        assert_eq!(
            raw,
            RawGil {
                locked: true,
                last_holder: 0xdead_beef,
                switch_number: 42,
                enabled: None
            }
        );
    }
}
