//! CPython's own structures, as gilscope reads them from outside, all in this folder: where
//! the interpreter is ([`runtime`]), the table of offsets 3.13+ publish for tools like this
//! one ([`debug_offsets`]), each version's frame and string layouts ([`layout`]) and the stack
//! walk over them ([`frames`], with the line tables in `line_table`), where each version keeps
//! its GIL ([`gil`]), and the few objects gilscope reads ([`objects`]: thread names, extension
//! modules); [`versions`] says which releases are tested, and holds the fixed offsets of those
//! before 3.13.

pub mod debug_offsets;
pub mod frames;
pub mod gc;
pub mod gil;
pub mod layout;
mod line_table;
pub mod objects;
pub mod runtime;
pub mod versions;
