//! The bench report as a terminal table, Markdown and JSON. Pure functions of the report.

use std::io::{self, Write};

use super::{BenchReport, BenchResult};
use crate::words::pct;

fn secs(x: Option<f64>) -> String {
    match x {
        Some(s) if s < 0.001 => format!("{:.0} µs", s * 1e6),
        Some(s) if s < 0.1 => format!("{:.1} ms", s * 1e3),
        Some(s) if s < 1.0 => format!("{:.0} ms", s * 1e3),
        Some(s) => format!("{s:.2} s"),
        None => "-".into(),
    }
}

fn speedup(r: &BenchResult) -> String {
    match (r.speedup, r.speedup_min, r.speedup_max) {
        (Some(s), Some(lo), Some(hi)) => format!("{s:.2}x ({lo:.2}-{hi:.2})"),
        _ => "-".into(),
    }
}

fn fraction(x: Option<f64>) -> String {
    x.map_or("-".into(), pct)
}

fn correct(r: &BenchResult) -> &'static str {
    match (r.correct, &r.error) {
        (_, Some(_)) => "error",
        (Some(true), _) => "yes",
        (Some(false), _) => "NO",
        (None, None) => "-",
    }
}

fn python_label(r: &BenchResult) -> String {
    let name = crate::words::file_name(&r.python);
    let ft = if r.free_threaded {
        ", free-threaded"
    } else {
        ""
    };
    if r.python_version.is_empty() {
        name.to_string()
    } else {
        format!("{name} ({}{ft})", r.python_version)
    }
}

/// One row's cells, in [`header`]'s order.
fn rows(report: &BenchReport) -> Vec<Vec<String>> {
    report
        .results
        .iter()
        .map(|r| {
            let mut cells = vec![r.mode.name().to_string()];
            if report.scaling {
                cells.push(r.workers.to_string());
            }
            cells.extend([secs(r.median_s), secs(r.min_s), secs(r.max_s), speedup(r)]);
            if report.scaling {
                cells.push(r.speedup.map_or("-".into(), |s| {
                    format!("{:.2}", s / r.workers.max(1) as f64)
                }));
                cells.push(r.tasks_per_s.map_or("-".into(), |t| format!("{t:.1}")));
            }
            cells.extend([
                r.cores_used.map_or("-".into(), |c| format!("{c:.2}")),
                fraction(r.gil_held),
                fraction(r.gil_wait),
                correct(r).to_string(),
            ]);
            if report.scaling {
                cells.push(r.verdict.map_or("-", |v| v.name()).to_string());
            }
            cells
        })
        .collect()
}

/// The columns; with `--scaling` also the workers, the speedup per worker, tasks a second and
/// what gilscope saw in the sampled run.
fn header(report: &BenchReport) -> Vec<&'static str> {
    let mut header = vec!["mode"];
    if report.scaling {
        header.push("workers");
    }
    header.extend(["median", "min", "max", "speedup (spread)"]);
    if report.scaling {
        header.extend(["per worker", "tasks/s"]);
    }
    header.extend(["cores", "GIL held", "GIL wait", "correct"]);
    if report.scaling {
        header.push("seen");
    }
    header
}

fn summary_line(report: &BenchReport) -> String {
    let args = if report.args.is_empty() {
        String::new()
    } else {
        report.args.join(", ")
    };
    format!(
        "{}({args}) x {} tasks, {} workers, {} runs (+{} warm-up) per mode, each in a fresh interpreter",
        report.target, report.tasks, report.workers, report.runs, report.warmup
    )
}

/// The terminal table, one block per interpreter.
pub fn terminal(report: &BenchReport, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "Benchmark: {}", summary_line(report))?;
    let all = rows(report);
    let header = header(report);
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &all {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut current = None;
    for (r, row) in report.results.iter().zip(&all) {
        if current != Some(&r.python) {
            current = Some(&r.python);
            writeln!(out)?;
            writeln!(out, "{}", python_label(r))?;
            let names: Vec<String> = header.iter().map(|h| h.to_string()).collect();
            writeln!(out, "  {}", line(&names))?;
        }
        writeln!(out, "  {}", line(row))?;
    }
    writeln!(out)?;
    if let Some(rec) = &report.recommendation {
        let who = crate::words::file_name(&rec.python);
        writeln!(out, "Recommendation: {} ({who})", rec.text)?;
        if let Some(v) = &rec.threads_verdict {
            writeln!(out, "  The threaded run, as gilscope saw it: {v}")?;
        }
    }
    for w in &report.warnings {
        writeln!(out, "warning: {w}")?;
    }
    Ok(())
}

/// Markdown, for a README or a pull request.
pub fn markdown(report: &BenchReport, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "Benchmark: `{}`", summary_line(report))?;
    let all = rows(report);
    let header = header(report);
    let mut current = None;
    for (r, row) in report.results.iter().zip(&all) {
        if current != Some(&r.python) {
            current = Some(&r.python);
            writeln!(out)?;
            writeln!(out, "**{}**", python_label(r))?;
            writeln!(out)?;
            writeln!(out, "| {} |", header.join(" | "))?;
            writeln!(out, "|{}", "---|".repeat(header.len()))?;
        }
        writeln!(out, "| {} |", row.join(" | "))?;
    }
    if let Some(rec) = &report.recommendation {
        writeln!(out)?;
        writeln!(out, "Recommendation: {}.", rec.text)?;
    }
    for w in &report.warnings {
        writeln!(out)?;
        writeln!(out, "> warning: {w}")?;
    }
    Ok(())
}
