//! The terminal report: the verdict first, then the evidence and the per-thread table.
//! Fits 80 columns. Colour only when asked for (`--color`; by default a terminal without
//! `NO_COLOR`).

use crate::model::{ThreadState, Tid};
use std::io::{self, Write};

use super::words::{self, pct, STATE_COLUMNS};
use crate::diagnosis::{Prediction, Verdict};
use crate::report::{HotFunction, LineGil, Report};

/// How to draw.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    /// One row per thread instead of one per group.
    pub threads: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// The bar glyph and ANSI colour of a state.
fn glyph(state: ThreadState) -> (char, &'static str) {
    let style = super::colors::style(state);
    (style.glyph, style.ansi)
}

const BAR_WIDTH: usize = 12;
const LABEL_WIDTH: usize = 22;
/// Prose is wrapped to this width.
const TEXT_WIDTH: usize = 80;
const MAX_THREAD_ROWS: usize = 24;

/// Draws a bar of `width` cells split by `fractions` (largest-remainder rounding).
fn bar(fractions: &[(ThreadState, f64)], width: usize, style: Style) -> String {
    let mut cells: Vec<(ThreadState, usize, f64)> = fractions
        .iter()
        .map(|&(s, f)| {
            let exact = f.max(0.0) * width as f64;
            (s, exact.floor() as usize, exact - exact.floor())
        })
        .collect();
    let used: usize = cells.iter().map(|c| c.1).sum();
    let mut order: Vec<usize> = (0..cells.len()).collect();
    order.sort_by(|&a, &b| cells[b].2.total_cmp(&cells[a].2));
    for &i in order.iter().take(width.saturating_sub(used)) {
        if cells[i].2 > 0.0 {
            cells[i].1 += 1;
        }
    }
    let mut out = String::new();
    let mut drawn = 0;
    for (state, n, _) in cells {
        if n == 0 {
            continue;
        }
        let (ch, color) = glyph(state);
        let text: String = std::iter::repeat_n(if style.color { '█' } else { ch }, n).collect();
        out.push_str(&style.paint(color, &text));
        drawn += n;
    }
    out.push_str(&" ".repeat(width.saturating_sub(drawn)));
    out
}

/// Writes `text` word-wrapped at [`TEXT_WIDTH`], the first line after `first`, the others
/// after `rest` (both indents).
fn wrapped(out: &mut impl Write, first: &str, rest: &str, text: &str) -> io::Result<()> {
    let mut line = String::from(first);
    let mut empty = true;
    for word in text.split(' ') {
        if !empty && line.chars().count() + 1 + word.chars().count() > TEXT_WIDTH {
            writeln!(out, "{line}")?;
            line = String::from(rest);
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    writeln!(out, "{line}")
}

fn cell(x: f64) -> String {
    if x < 0.005 {
        "   - ".into()
    } else {
        format!("{:>4.0}%", x * 100.0)
    }
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        format!("{text:<width$}")
    } else {
        let cut: String = text.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// The most frequent functions of a state; under each waiting one, who held the GIL then.
fn hot_section(out: &mut impl Write, title: &str, hot: &[HotFunction]) -> io::Result<()> {
    if hot.is_empty() {
        return Ok(());
    }
    writeln!(out, "{title}")?;
    for h in hot.iter().filter(|h| h.fraction >= 0.005).take(5) {
        let place = truncate(&words::place(&h.function, &h.file, h.line), 66);
        writeln!(out, "  {place} {:>5}", pct(h.fraction))?;
        if let Some(held_by) = held_by_line(h) {
            wrapped(out, "    ", "      ", &held_by)?;
        }
    }
    Ok(())
}

/// `held by worker-1, worker-2 in spin (app.py:8) 70%; by MainThread in native code 20%`:
/// the places the GIL's holders were, busiest first, each with its threads.
fn held_by_line(h: &HotFunction) -> Option<String> {
    let mut places: Vec<(String, f64, Vec<String>)> = Vec::new();
    for g in h.held_by.iter().flatten() {
        let (at, who) = (
            words::holder_place(g),
            words::thread_name(g.thread.as_deref(), g.tid),
        );
        match places.iter_mut().find(|(place, _, _)| *place == at) {
            Some((_, share, threads)) => {
                *share += g.fraction;
                if !threads.contains(&who) {
                    threads.push(who);
                }
            }
            None => places.push((at, g.fraction, vec![who])),
        }
    }
    places.retain(|(_, share, _)| *share >= 0.005);
    places.sort_by(|a, b| b.1.total_cmp(&a.1));
    let places: Vec<String> = places
        .into_iter()
        .map(|(at, share, threads)| format!("{} in {at} {}", threads.join(", "), pct(share)))
        .collect();
    (!places.is_empty()).then(|| format!("held by {}", places.join("; by ")))
}

/// How many lines the GIL-by-line section shows (all are in the JSON).
const GIL_LINES_SHOWN: usize = 5;

/// The busiest lines, each with what its GIL use means for threads.
fn gil_lines_section(out: &mut impl Write, lines: &[LineGil]) -> io::Result<()> {
    let total: f64 = lines.iter().map(|l| l.seconds).sum();
    let shown: Vec<&LineGil> = lines
        .iter()
        .filter(|l| l.seconds >= 0.01 * total)
        .take(GIL_LINES_SHOWN)
        .collect();
    if shown.is_empty() {
        return Ok(());
    }
    writeln!(out, "Where the threads' time went, line by line")?;
    for line in shown {
        let file = words::file_name(&line.file);
        let at = format!(" {file}:{} · {:.2} s", line.line, line.seconds);
        let width = 76usize.saturating_sub(at.chars().count());
        writeln!(
            out,
            "  {}{at}",
            truncate(&words::line_text(line), width).trim_end()
        )?;
        wrapped(out, "    ", "      ", &words::gil_use(line))?;
    }
    Ok(())
}

/// Renders `report` for a person.
pub fn render(report: &Report, style: Style, out: &mut impl Write) -> io::Result<()> {
    header(out, report, style)?;
    if let Some(v) = &report.verdict {
        verdict_section(out, v, style)?;
    }
    process_line(out, report)?;
    threads_table(out, report, style)?;
    hot_section(out, "Holding the GIL", &report.hot.gil)?;
    hot_section(out, "Waiting for the GIL", &report.hot.gil_wait)?;
    hot_section(out, "Native code without the GIL", &report.hot.native)?;
    gil_lines_section(out, &report.gil_by_line)?;
    event_loop_section(out, report)?;
    if report.late_samples > 0 {
        writeln!(
            out,
            "warning: {} samples were late (the sampler could not keep up with --rate {})",
            report.late_samples, report.rate_hz
        )?;
    }
    Ok(())
}

/// The target, the run's length and end, the notes and the push.
fn header(out: &mut impl Write, report: &Report, style: Style) -> io::Result<()> {
    let t = &report.target;
    writeln!(
        out,
        "{} {} · {} · PID {}",
        style.paint("1", "gilscope"),
        truncate(&words::short_command(&t.command), 40).trim_end(),
        words::interpreter(t.python.as_deref()),
        t.pid,
    )?;
    writeln!(
        out,
        "  {:.1} s · {} samples at {} Hz",
        report.duration_s, report.samples, report.rate_hz
    )?;
    if let Some(ending) = &report.ending {
        writeln!(out, "  ended: {ending}")?;
    }
    for note in &t.notes {
        wrapped(out, "  note:", "    ", note)?;
    }
    if let Some(push) = &report.push {
        wrapped(out, "  pyroscope: ", "    ", &words::push_summary(push))?;
    }
    writeln!(out)
}

/// The verdict: headline, evidence, phases, what to do, the snippet and the prediction.
fn verdict_section(out: &mut impl Write, v: &Verdict, style: Style) -> io::Result<()> {
    let mut headline = Vec::new();
    wrapped(&mut headline, "", "  ", &v.headline)?;
    write!(
        out,
        "{}",
        style.paint("1", &String::from_utf8_lossy(&headline))
    )?;
    for line in &v.evidence {
        wrapped(out, "  ", "    ", line)?;
    }
    for phase in &v.phases {
        writeln!(
            out,
            "  phase {:>5.1}-{:<5.1} s: {} ({})",
            phase.start_s,
            phase.end_s,
            phase.headline,
            phase.kind.name()
        )?;
    }
    if !v.advice.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", style.paint("1", "What to do"))?;
        for line in &v.advice {
            let (first, rest) = if line.starts_with("- ") {
                ("    ", "      ")
            } else {
                ("  ", "    ")
            };
            wrapped(out, first, rest, line)?;
        }
    }
    if let Some(snippet) = &v.snippet {
        writeln!(out)?;
        for line in snippet.lines() {
            writeln!(out, "    {}", style.paint("2", line))?;
        }
    }
    if let Some(p) = &v.predicted_speedup {
        prediction_lines(out, p)?;
    }
    writeln!(out)
}

fn prediction_lines(out: &mut impl Write, p: &Prediction) -> io::Result<()> {
    let fmt = |label: &str, x: Option<f64>| x.map(|x| format!("{label} {x:.1}x"));
    let parts: Vec<String> = [
        fmt("processes", p.processes),
        fmt("more threads", p.threads),
        fmt("free-threaded", p.free_threaded),
        fmt("the fix above", p.fix),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !parts.is_empty() {
        writeln!(out)?;
        writeln!(out, "Predicted speedup: {}", parts.join(" · "))?;
        for a in &p.assumptions {
            wrapped(out, "  assuming ", "    ", a)?;
        }
    }
    Ok(())
}

/// The process (or tree) line: cores, the GIL held, hand-offs; a tree's processes below it.
fn process_line(out: &mut impl Write, report: &Report) -> io::Result<()> {
    let p = &report.process;
    let tree = report.processes.len() > 1;
    let mut line = if tree {
        format!(
            "{} processes: {} used",
            report.processes.len(),
            words::of_cores(p.cpu_cores_used, p.cores, 2)
        )
    } else {
        format!(
            "Process: {} used",
            words::of_cores(p.cpu_cores_used, p.cores, 2)
        )
    };
    match p.gil_held {
        Some(held) => line.push_str(&format!(" · GIL held {}", pct(held))),
        None => line.push_str(" · GIL not readable"),
    }
    if let Some(rate) = p.gil_switches_per_s {
        line.push_str(&format!(" · {rate:.0} GIL hand-offs/s"));
    }
    if let Some(gc) = p.gc_collecting.filter(|&gc| gc >= 0.005) {
        line.push_str(&format!(" · GC {}", pct(gc)));
    }
    if let Some(stopped) = p.world_stopped.filter(|&s| s >= 0.005) {
        line.push_str(&format!(" · world stopped {}", pct(stopped)));
    }
    if let Some(short) = words::short_of_cpus(p) {
        line.push_str(&format!(" · {short}"));
    }
    writeln!(out, "{line}")?;
    if tree {
        processes_section(out, report)?;
    }
    writeln!(out)
}

/// One row per group of threads (or per thread, with `--threads`), busiest first: a bar of
/// its states and their shares; the CPU no sampled thread accounts for; a legend.
fn threads_table(out: &mut impl Write, report: &Report, style: Style) -> io::Result<()> {
    let headers: String = STATE_COLUMNS
        .iter()
        .map(|(_, name)| format!("{name:>5}"))
        .collect();
    writeln!(
        out,
        "  {:<l$} {:<w$} {headers} {:>6}",
        if style.threads { "THREAD" } else { "THREADS" },
        "",
        "CPU s",
        l = LABEL_WIDTH,
        w = BAR_WIDTH
    )?;
    let mut rows: Vec<Row> = if style.threads || report.groups.is_empty() {
        report.threads.iter().map(Row::of_thread).collect()
    } else {
        report.groups.iter().map(Row::of_group).collect()
    };
    rows.sort_by(|a, b| {
        let busy = |r: &Row| 1.0 - r.states[ThreadState::Idle] - r.states[ThreadState::Unknown];
        busy(b).total_cmp(&busy(a)).then(a.order.cmp(&b.order))
    });
    for row in rows.iter().take(MAX_THREAD_ROWS) {
        let fractions: Vec<(ThreadState, f64)> = ThreadState::ALL
            .iter()
            .map(|&s| (s, row.states.get(s)))
            .collect();
        let cells: String = STATE_COLUMNS
            .iter()
            .map(|(states, _)| cell(row.states.sum_of(states)))
            .collect();
        writeln!(
            out,
            "  {} {} {cells} {:>6.2}",
            truncate(&row.label, LABEL_WIDTH),
            bar(&fractions, BAR_WIDTH, style),
            row.cpu_s
        )?;
    }
    if rows.len() > MAX_THREAD_ROWS {
        writeln!(
            out,
            "  ... and {} more (all are in --json)",
            rows.len() - MAX_THREAD_ROWS
        )?;
    }
    unattributed_line(out, report)?;
    let legend: Vec<String> = ThreadState::ALL
        .iter()
        .map(|&s| {
            let (ch, color) = glyph(s);
            let mark = if style.color { '█' } else { ch };
            format!("{} {}", style.paint(color, &mark.to_string()), s.name())
        })
        .collect();
    wrapped(out, "  ", "  ", &legend.join("  "))?;
    writeln!(out)
}

/// One row of the threads table: a thread, or a group of them.
struct Row {
    label: String,
    states: crate::report::States,
    cpu_s: f64,
    /// Ties keep the order of appearance.
    order: Tid,
}

impl Row {
    fn of_thread(t: &crate::report::Thread) -> Row {
        Row {
            label: match &t.name {
                Some(name) => format!("{name} {}", t.tid),
                None => t.tid.to_string(),
            },
            states: t.states,
            cpu_s: t.cpu_s,
            order: t.tid,
        }
    }

    /// `MainThread 4242`, or the group's label (see [`words::group_label`]).
    fn of_group(g: &crate::report::Group) -> Row {
        let label = match g.tids.as_slice() {
            [tid] => format!("{} {tid}", g.label),
            _ => words::group_label(g),
        };
        Row {
            label,
            states: g.states,
            cpu_s: g.cpu_s,
            order: g.tids.first().copied().unwrap_or_default(),
        }
    }
}

/// CPU time the sampled threads do not account for, when it is worth a line: threads that
/// started and ended between two samples.
fn unattributed_line(out: &mut impl Write, report: &Report) -> io::Result<()> {
    for p in &report.processes {
        if p.unattributed_cpu_s < UNATTRIBUTED_MIN_S
            || p.unattributed_cpu_s < UNATTRIBUTED_MIN_SHARE * p.cpu_s
        {
            continue;
        }
        let likely = report
            .groups
            .iter()
            .filter(|g| g.pid == p.pid)
            .filter_map(|g| Some((g, g.started_per_s?)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(g, _)| format!(", most likely more of {}", g.label))
            .unwrap_or_default();
        wrapped(
            out,
            "  ",
            "    ",
            &format!(
                "+ {:.2} s of CPU in PID {} by threads that lived between samples{likely}",
                p.unattributed_cpu_s, p.pid
            ),
        )?;
    }
    Ok(())
}

/// Unattributed CPU below this many seconds, or this share of the process's, is rounding.
const UNATTRIBUTED_MIN_S: f64 = 0.05;
const UNATTRIBUTED_MIN_SHARE: f64 = 0.05;

/// One line per process of a tree: role, lifetime, cores, GIL, how it ended.
fn processes_section(out: &mut impl Write, report: &Report) -> io::Result<()> {
    writeln!(
        out,
        "  {:<8} {:<14} {:>7} {:>6} {:>5}  COMMAND",
        "PID", "ROLE", "LIFE", "CORES", "GIL"
    )?;
    for p in &report.processes {
        let gil = p.gil_held.map_or("  -".into(), pct);
        let mut command = words::short_command(&p.command);
        if let Some(ending) = &p.ending {
            command = format!("{command} ({ending})");
        }
        writeln!(
            out,
            "  {:<8} {:<14} {:>6.1}s {:>6.2} {:>5}  {}",
            p.pid,
            truncate(p.role.name(), 14),
            p.end_s - p.start_s,
            p.cpu_cores_used,
            gil,
            truncate(&command, 34).trim_end()
        )?;
        if let Some(on) = &p.gil_turned_on {
            let modules: Vec<String> = on.modules.iter().map(|m| format!("`{}`", m.name)).collect();
            let by = if modules.is_empty() {
                "an extension module gilscope could not name".to_string()
            } else {
                modules.join(", ")
            };
            writeln!(
                out,
                "  {:<8} its free-threaded build's GIL came on at {:.1} s: {by}",
                "", on.at_s
            )?;
        }
    }
    Ok(())
}

/// Each asyncio loop: how much it waited for events, and what kept it from waiting.
fn event_loop_section(out: &mut impl Write, report: &Report) -> io::Result<()> {
    for lp in &report.event_loops {
        let thread = match &lp.thread {
            Some(name) => format!("{name} {}", lp.tid),
            None => lp.tid.to_string(),
        };
        writeln!(
            out,
            "asyncio loop in {thread}: waiting for events {}, busy {} ({} of the loop's time blocked)",
            pct(1.0 - lp.busy),
            pct(lp.busy),
            pct(lp.blocked)
        )?;
        if let Some(stall) = lp.longest_stalls.first() {
            writeln!(
                out,
                "  longest stretch without waiting for events: {:.0} ms, from {:.2} s",
                stall.duration_s * 1000.0,
                stall.start_s
            )?;
        }
        for c in lp.culprits.iter().filter(|c| c.share >= 0.01) {
            let site = words::place(&c.function, &c.file, c.line);
            writeln!(
                out,
                "  {:>4}  {}{}",
                pct(c.share),
                truncate(&site, 50).trim_end(),
                if c.blocked >= 0.5 { ", blocked" } else { "" }
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_fills_width_exactly() {
        let style = Style {
            color: false,
            threads: false,
        };
        let b = bar(
            &[
                (ThreadState::Gil, 1.0 / 3.0),
                (ThreadState::GilWait, 1.0 / 3.0),
                (ThreadState::Io, 1.0 / 3.0),
            ],
            20,
            style,
        );
        assert_eq!(b.chars().count(), 20);
        assert_eq!(
            b.matches('G').count() + b.matches('w').count() + b.matches('i').count(),
            20
        );
        assert_eq!(bar(&[(ThreadState::Idle, 0.0)], 5, style), "     ");
    }
}
