//! CPython's own structures, as gilscope reads them from outside: where the interpreter is,
//! and (3.13+) the table of offsets it publishes for tools like this one.

pub mod debug_offsets;
pub mod objects;
pub mod runtime;
