//! `gilscope diff` for a person: the two runs side by side, the verdicts, the gain measured
//! against the gain predicted, and the functions whose GIL use changed most.

use std::io::{self, Write};

use super::words::{file_name, interpreter, pct, short_command};
use crate::diff::{Diff, Fix, Side, SpeedupNote};
use crate::model::ThreadState;

/// The label column's width.
const LABEL: usize = 20;
/// Each run's column's width.
const COLUMN: usize = 18;

fn row(out: &mut impl Write, label: &str, before: &str, after: &str, note: &str) -> io::Result<()> {
    let line = format!("  {label:<LABEL$}{before:<COLUMN$}{after:<COLUMN$}{note}");
    writeln!(out, "{}", line.trim_end())
}

fn optional(value: Option<f64>, show: impl Fn(f64) -> String) -> String {
    value.map_or("-".into(), show)
}

fn fix_name(fix: Fix) -> &'static str {
    match fix {
        Fix::Processes => "processes",
        Fix::FreeThreaded => "a free-threaded build",
        Fix::Threads => "more threads",
    }
}

fn run_line(out: &mut impl Write, label: &str, side: &Side) -> io::Result<()> {
    writeln!(
        out,
        "{label} {} · {} ({})",
        short_command(&side.command),
        interpreter(side.python.as_deref()),
        side.source
    )
}

/// Renders `diff` for a person.
pub fn render(diff: &Diff, out: &mut impl Write) -> io::Result<()> {
    let (b, a) = (&diff.before, &diff.after);
    run_line(out, "Before:", b)?;
    run_line(out, "After: ", a)?;
    writeln!(out)?;
    row(out, "", "BEFORE", "AFTER", "")?;
    let faster = diff
        .speedup
        .measured
        .map_or(String::new(), |s| format!("{s:.2}x as fast"));
    row(
        out,
        "duration",
        &format!("{:.2} s", b.duration_s),
        &format!("{:.2} s", a.duration_s),
        &faster,
    )?;
    let cores = |s: &Side| format!("{:.2} of {}", s.cpu_cores_used, s.cores);
    row(out, "cores used", &cores(b), &cores(a), "")?;
    row(
        out,
        "processes",
        &b.processes.to_string(),
        &a.processes.to_string(),
        "",
    )?;
    row(
        out,
        "GIL held",
        &optional(b.gil_held, pct),
        &optional(a.gil_held, pct),
        "",
    )?;
    let per_s = |x: f64| format!("{x:.0}");
    row(
        out,
        "GIL hand-offs/s",
        &optional(b.gil_switches_per_s, per_s),
        &optional(a.gil_switches_per_s, per_s),
        "",
    )?;
    for state in ThreadState::ALL {
        let (x, y) = (b.states.get(state), a.states.get(state));
        if x >= 0.005 || y >= 0.005 {
            row(
                out,
                &format!("threads' {}", state.name()),
                &pct(x),
                &pct(y),
                "",
            )?;
        }
    }
    let kind = |s: &Side| s.verdict.as_ref().map_or("-", |v| v.kind.name());
    row(out, "verdict", kind(b), kind(a), "")?;
    writeln!(out)?;
    for (label, side) in [("Before:", b), ("After: ", a)] {
        if let Some(v) = &side.verdict {
            writeln!(out, "{label} {}", v.headline)?;
        }
    }
    writeln!(out)?;
    speedup(out, diff)?;
    changes(out, diff)
}

fn speedup(out: &mut impl Write, diff: &Diff) -> io::Result<()> {
    let s = &diff.speedup;
    let fix = fix_name(s.fix);
    let measured = s
        .measured
        .map_or("not measured".into(), |m| format!("measured {m:.2}x"));
    let predicted = s.predicted.map_or(String::new(), |p| {
        format!(", predicted {p:.1}x for {fix} by the first run's verdict")
    });
    writeln!(out, "Speedup: {measured}{predicted}")?;
    for note in &s.notes {
        let why = match note {
            SpeedupNote::NotRunToExit => "a run did not end with the target's exit (--duration, Ctrl-C or attach): its duration is not the work's",
            SpeedupNote::NoPrediction => "the first run's verdict predicts no speedup for this change",
        };
        writeln!(out, "  {why}")?;
    }
    Ok(())
}

fn changes(out: &mut impl Write, diff: &Diff) -> io::Result<()> {
    if diff.changes.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(
        out,
        "Functions whose GIL use changed most (thread-seconds, before → after)"
    )?;
    for c in &diff.changes {
        writeln!(out, "  {} ({})", c.function, file_name(&c.file))?;
        writeln!(
            out,
            "    held {:.2} → {:.2} s · waited {:.2} → {:.2} s · released {:.2} → {:.2} s",
            c.held_s.before,
            c.held_s.after,
            c.waiting_s.before,
            c.waiting_s.after,
            c.released_s.before,
            c.released_s.after
        )?;
    }
    Ok(())
}
