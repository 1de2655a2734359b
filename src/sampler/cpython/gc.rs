//! Where the garbage collector says it is collecting: the `collecting` flag of the collector's
//! state, set for the whole of a collection (its `gc.callbacks` included). `_PyRuntime.gc` in
//! 3.8, the interpreter's `gc` from 3.9; from 3.13 `_Py_DebugOffsets` place it. The offsets
//! before 3.13 were measured on pyenv's builds (an int that reads 1 inside a `gc.callbacks`
//! callback and 0 outside, the only one) and are checked by `tests/offsets.rs` on every
//! installed interpreter.

use std::io;

use super::debug_offsets::DebugOffsets;
use crate::sampler::memory::ReadMemory;

/// The offset of `collecting`, by minor version, before 3.13: (relative to `_PyRuntime` rather
/// than the interpreter state, offset).
fn fixed_offset(minor: u64) -> Option<(bool, u64)> {
    match minor {
        8 => Some((true, 544)),
        9 | 10 => Some((false, 816)),
        11 => Some((false, 848)),
        12 => Some((false, 312)),
        _ => None,
    }
}

/// The address of the main interpreter's `collecting` flag; `None` where gilscope does not
/// know it (3.7).
pub fn collecting_flag(
    minor: u64,
    runtime: Option<u64>,
    interpreter: u64,
    described: Option<&DebugOffsets>,
) -> Option<u64> {
    if let Some(offsets) = described {
        return Some(interpreter.wrapping_add(offsets.interp_gc_collecting));
    }
    match fixed_offset(minor)? {
        (true, offset) => Some(runtime?.wrapping_add(offset)),
        (false, offset) => Some(interpreter.wrapping_add(offset)),
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
    fn the_flag_is_relative_to_the_runtime_in_3_8_and_the_interpreter_after() {
        assert_eq!(
            collecting_flag(8, Some(0x1000), 0x9000, None),
            Some(0x1000 + 544)
        );
        assert_eq!(collecting_flag(8, None, 0x9000, None), None);
        assert_eq!(collecting_flag(12, None, 0x9000, None), Some(0x9000 + 312));
        assert_eq!(collecting_flag(7, Some(0x1000), 0x9000, None), None);
    }
}
