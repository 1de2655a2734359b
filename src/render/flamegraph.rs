//! A flame graph (SVG, built by inferno) whose first level is the thread state, so the
//! functions holding the GIL, waiting for it, or running native code stand apart.

use std::io::{self, Write};

use inferno::flamegraph::color::{Color, PaletteMap};
use inferno::flamegraph::{self, Options};

use super::colors::{rgb, style};
use super::stacks::{frame_label, stack_counts, thread_label};
use crate::analysis::Analysis;
use crate::model::ThreadState;

/// The folded-stack lines (`state;thread;outer;...;inner count`), one per distinct stack.
pub fn folded(analysis: &Analysis, only: Option<ThreadState>) -> Vec<String> {
    // `;` separates frames and a newline ends a line: neither may come from a name.
    let clean = |s: &str| s.replace([';', '\n', '\r'], " ");
    stack_counts(analysis, only)
        .into_iter()
        .map(|sc| {
            let mut line = clean(style(sc.state).label);
            line.push(';');
            line.push_str(&clean(&thread_label(sc.thread, sc.tid)));
            for frame in &sc.frames {
                line.push(';');
                line.push_str(&clean(&frame_label(frame)));
            }
            line.push_str(&format!(" {}", sc.count));
            line
        })
        .collect()
}

pub fn render(
    analysis: &Analysis,
    only: Option<ThreadState>,
    out: &mut impl Write,
) -> io::Result<()> {
    let lines = folded(analysis, only);
    let mut palette = PaletteMap::default();
    for state in ThreadState::ALL {
        let (r, g, b) = rgb(style(state).hex);
        palette.insert(style(state).label, Color { r, g, b });
    }
    let command = analysis
        .target
        .as_ref()
        .map_or(String::new(), |t| t.command.join(" "));
    let mut options = Options::default();
    options.title = match only {
        Some(state) => format!("gilscope: {} ({})", command, style(state).label),
        None => format!("gilscope: {command}"),
    };
    options.subtitle = Some("first level: thread state; second: thread".into());
    options.count_name = "samples".into();
    options.deterministic = true;
    options.hash = true;
    options.palette_map = Some(&mut palette);
    if lines.is_empty() {
        // inferno refuses an empty profile: say so in a valid, empty SVG.
        return writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="600" height="40"><text x="10" y="25">no samples</text></svg>"#
        );
    }
    flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), out)
        .map_err(|e| io::Error::other(e.to_string()))
}
