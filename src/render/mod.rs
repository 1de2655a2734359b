//! Renderers: pure functions from the report to a writer.

pub mod terminal;

use std::io::{self, Write};

use crate::report::Report;

/// The JSON report, `gilscope.report/1`.
pub fn json(report: &Report, out: &mut impl Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}
