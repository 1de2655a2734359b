//! Where the garbage collector says it is collecting: the `collecting` flag of the collector's
//! state, set for the whole of a collection (its `gc.callbacks` included). `_PyRuntime.gc` in
//! 3.8, the interpreter's `gc` from 3.9; from 3.13 `_Py_DebugOffsets` place it. The offsets
//! before 3.13 (in [`super::versions`]) were measured on pyenv's builds: an int that reads 1
//! inside a `gc.callbacks` callback and 0 outside, the only one.

use std::io;

use super::debug_offsets::DebugOffsets;
use crate::sampler::memory::ReadMemory;

/// Where `collecting` is before 3.13 (the table of [`super::versions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectingFlag {
    /// At this offset in `_PyRuntime` (3.8).
    InRuntime(u64),
    /// At this offset in the interpreter state (3.9 to 3.12).
    InInterpreter(u64),
}

/// The address of the main interpreter's `collecting` flag, from the debug offsets where the
/// interpreter has them, else from the fixed place; `None` where gilscope does not know it.
pub fn collecting_flag(
    fixed: Option<CollectingFlag>,
    runtime: Option<u64>,
    interpreter: u64,
    described: Option<&DebugOffsets>,
) -> Option<u64> {
    if let Some(offsets) = described {
        return Some(interpreter.wrapping_add(offsets.interp_gc_collecting));
    }
    match fixed? {
        CollectingFlag::InRuntime(offset) => Some(runtime?.wrapping_add(offset)),
        CollectingFlag::InInterpreter(offset) => Some(interpreter.wrapping_add(offset)),
    }
}

/// Whether a collection is running.
pub fn read_collecting(mem: &impl ReadMemory, flag: u64) -> io::Result<bool> {
    let mut raw = [0u8; 4];
    mem.read(flag, &mut raw)?;
    Ok(i32::from_ne_bytes(raw) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_is_found_in_the_runtime_or_the_interpreter() {
        let in_runtime = Some(CollectingFlag::InRuntime(544));
        assert_eq!(
            collecting_flag(in_runtime, Some(0x1000), 0x9000, None),
            Some(0x1000 + 544)
        );
        assert_eq!(collecting_flag(in_runtime, None, 0x9000, None), None);
        let in_interpreter = Some(CollectingFlag::InInterpreter(312));
        assert_eq!(
            collecting_flag(in_interpreter, None, 0x9000, None),
            Some(0x9000 + 312)
        );
        assert_eq!(collecting_flag(None, Some(0x1000), 0x9000, None), None);
    }
}
