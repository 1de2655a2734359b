//! Finds `_PyRuntime` in a live process without py-spy: the symbol's value in the ELF file
//! that defines it (the executable, or libpython), plus where the target mapped that file.
//! The file is read as the target sees it (see [`crate::sampler::procfs::read_mapped_file`]),
//! so a container's interpreter is the one parsed, never a host file at the same path.

use std::path::{Path, PathBuf};

use goblin::elf::{program_header::PT_LOAD, Elf};
use proc_maps::MapRange;

use super::debug_offsets::DebugOffsets;
use crate::sampler::memory::ReadMemory;
use crate::sampler::procfs;

/// Where the target's `_PyRuntime` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeSymbol {
    pub address: u64,
    /// The file that defines it, as the target names it.
    pub file: PathBuf,
}

/// `_PyRuntime` of process `pid`: `None` when no mapped executable or libpython defines it.
pub fn find(pid: u32) -> Option<RuntimeSymbol> {
    let maps = proc_maps::get_process_maps(pid as proc_maps::Pid).ok()?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    candidates(&maps, exe.as_deref())
        .into_iter()
        .find_map(|map| {
            let bytes = procfs::read_mapped_file(pid, map).ok()?;
            let address = symbol_address(&bytes, map, &maps, "_PyRuntime")?;
            Some(RuntimeSymbol {
                address,
                file: map.filename()?.to_path_buf(),
            })
        })
}

/// The main interpreter of a 3.13+ runtime at `runtime`, once it has a thread.
pub fn main_interpreter(
    mem: &impl ReadMemory,
    runtime: u64,
    offsets: &DebugOffsets,
) -> Option<u64> {
    let interp = mem
        .read_u64(runtime + offsets.interpreters_head + 8)
        .ok()
        .filter(|&a| a != 0)?;
    let threads = mem.read_u64(interp + offsets.interp_threads_head).ok()?;
    (threads != 0).then_some(interp)
}

/// The first mapping (offset 0) of the executable and of each libpython, executable first.
fn candidates<'a>(maps: &'a [MapRange], exe: Option<&Path>) -> Vec<&'a MapRange> {
    let is_libpython = |path: &Path| {
        path.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("libpython"))
    };
    let mut found: Vec<&MapRange> = Vec::new();
    let first_maps = maps.iter().filter(|m| m.offset == 0);
    for map in first_maps {
        let Some(path) = map.filename() else { continue };
        let wanted = Some(path) == exe || is_libpython(path);
        if wanted && !found.iter().any(|f| f.filename() == Some(path)) {
            found.push(map);
        }
    }
    found.sort_by_key(|m| m.filename() != exe);
    found
}

/// The run-time address of `name` in the ELF `bytes`, mapped by the target at `first` (its
/// mapping at file offset 0).
fn symbol_address(bytes: &[u8], first: &MapRange, maps: &[MapRange], name: &str) -> Option<u64> {
    let elf = Elf::parse(bytes).ok()?;
    let value = elf
        .dynsyms
        .iter()
        .find(|sym| elf.dynstrtab.get_at(sym.st_name) == Some(name))
        .or_else(|| {
            elf.syms
                .iter()
                .find(|sym| elf.strtab.get_at(sym.st_name) == Some(name))
        })
        .map(|sym| sym.st_value)
        .filter(|&v| v != 0)?;
    if elf.header.e_type != goblin::elf::header::ET_DYN {
        return Some(value);
    }
    // A position-independent file is loaded at (first mapping's start - lowest PT_LOAD vaddr,
    // page-aligned).
    let lowest = elf
        .program_headers
        .iter()
        .filter(|ph| ph.p_type == PT_LOAD)
        .map(|ph| ph.p_vaddr & !0xfff)
        .min()?;
    let base = (first.start() as u64).checked_sub(lowest)?;
    let address = base.checked_add(value)?;
    // The symbol must land in mapped memory (its file's, or the anonymous `.bss` after it).
    maps.iter()
        .any(|m| address >= m.start() as u64 && address < (m.start() + m.size()) as u64)
        .then_some(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_no_runtime_in_a_process_without_python() {
        assert_eq!(find(std::process::id()), None);
    }
}
