//! Renderers: pure functions from the analysis or the report to a writer.

pub mod colors;
pub mod diff;
pub mod flamegraph;
pub mod html;
pub mod pprof;
pub mod speedscope;
pub mod stacks;
pub mod terminal;
pub mod trace;
pub mod words;

use std::io::{self, Write};

/// Any of gilscope's JSON documents (the report `gilscope.report/1`, the diff, the bench
/// results), pretty-printed with a final newline.
pub fn json(document: &impl serde::Serialize, out: &mut impl Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, document)?;
    writeln!(out)
}
