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

use crate::report::Report;

/// The JSON report, `gilscope.report/1`.
pub fn json(report: &Report, out: &mut impl Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}
