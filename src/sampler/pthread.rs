//! Maps a `pthread_t` (CPython's `thread_id` before 3.11) to the kernel tid.
//!
//! glibc publishes, for debuggers, where `struct pthread` keeps the tid: the symbol
//! `_thread_db_pthread_tid` holds `(bits, count, offset)`. It is read from the target's own
//! libc, so no offset is hard-coded.

use std::io;
use std::path::Path;

use goblin::elf::Elf;

use super::memory::ReadMemory;
use super::namespace::TargetTid;

/// Offset of `tid` inside glibc's `struct pthread`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PthreadTidOffset(pub u64);

impl PthreadTidOffset {
    /// Finds the target's libc in its memory maps and reads the descriptor. `None` where
    /// there is no glibc (musl, static builds).
    pub fn find(pid: u32, mem: &impl ReadMemory) -> Option<PthreadTidOffset> {
        let maps = proc_maps::get_process_maps(pid as proc_maps::Pid).ok()?;
        let libc = maps.iter().find(|m| {
            m.offset == 0
                && m.filename()
                    .and_then(Path::file_name)
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libc.so") || n.starts_with("libc-"))
        })?;
        // The target's own libc, so a container's is the one parsed.
        let bytes = super::procfs::read_mapped_file(pid, libc).ok()?;
        let symbol = Self::symbol_value(&bytes)?;
        let at = libc.start() as u64 + symbol;
        let bits = mem.read_u32(at).ok()?;
        let count = mem.read_u32(at + 4).ok()?;
        let offset = mem.read_u32(at + 8).ok()?;
        (bits == 32 && count == 1 && offset < 4096).then_some(PthreadTidOffset(offset as u64))
    }

    fn symbol_value(elf_bytes: &[u8]) -> Option<u64> {
        let elf = Elf::parse(elf_bytes).ok()?;
        elf.dynsyms.iter().find_map(|sym| {
            (elf.dynstrtab.get_at(sym.st_name) == Some("_thread_db_pthread_tid"))
                .then_some(sym.st_value)
        })
    }

    /// The tid of the thread whose `pthread_t` is `pthread`.
    pub fn tid(self, mem: &impl ReadMemory, pthread: u64) -> io::Result<TargetTid> {
        mem.read_u32(pthread + self.0).map(TargetTid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::memory::ProcessMemory;

    #[test]
    fn maps_own_threads() {
        let pid = std::process::id();
        let mem = ProcessMemory { pid };
        let offset = PthreadTidOffset::find(pid, &mem).expect("glibc descriptor");
        // SAFETY: pthread_self and gettid have no preconditions.
        let (me, tid) = unsafe { (libc::pthread_self() as u64, libc::gettid() as u32) };
        assert_eq!(offset.tid(&mem, me).unwrap(), TargetTid(tid));
    }
}
