//! Draws a [`TopView`] with ratatui: a pure function of the view, so a test backend gives the
//! exact screen.

use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::view::{Scope, TopView};
use crate::model::ThreadState;
use crate::render::words::{
    self, interpreter, pct, place, short_command, thread_name, STATE_COLUMNS,
};

/// The report's state columns, and IDLE: a live view shows how much of the last second
/// each thread sat idle.
fn columns() -> impl Iterator<Item = (&'static [ThreadState], &'static str)> {
    STATE_COLUMNS
        .into_iter()
        .chain([(&[ThreadState::Idle][..], "IDLE")])
}

fn cell(x: f64) -> String {
    if x < 0.005 {
        "-".into()
    } else {
        pct(x)
    }
}

pub fn draw(frame: &mut Frame, view: &TopView) {
    let hot_lines = 2 + view.hot_gil.len().max(1) + view.hot_gil_wait.len().max(1);
    let [header, threads, hot, keys] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Min(4),
        Constraint::Length(hot_lines as u16),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(header_text(view), header);
    frame.render_widget(thread_table(view), threads);
    frame.render_widget(hot_text(view), hot);
    let c = view.controls;
    let keys_line = format!(
        "q quit · s sort ({}) · c {} · f {}",
        c.sort.label(),
        match c.scope {
            Scope::Window => "since start",
            Scope::SinceStart => "last second",
        },
        if c.frozen { "resume" } else { "freeze" }
    );
    frame.render_widget(
        Paragraph::new(keys_line).style(Style::default().add_modifier(Modifier::DIM)),
        keys,
    );
}

fn header_text(view: &TopView) -> Paragraph<'static> {
    let scope = match view.controls.scope {
        Scope::Window => "last second",
        Scope::SinceStart => "since start",
    };
    let frozen = if view.controls.frozen {
        " · FROZEN"
    } else {
        ""
    };
    let opt = |x: Option<f64>, f: fn(f64) -> String| x.map_or("-".to_string(), f);
    let lines = vec![
        Line::from(format!(
            "gilscope top · {} · {} · PID {}",
            short_command(&view.command),
            interpreter(view.python.as_deref()),
            view.pid
        ))
        .style(Style::default().add_modifier(Modifier::BOLD)),
        Line::from(format!(
            "{:.1} s · {} samples ({} late) · {scope}{frozen}",
            view.elapsed_s, view.samples, view.late
        )),
        Line::from(format!(
            "GIL held {} · {} hand-offs/s · {}",
            opt(view.gil_held, pct),
            opt(view.switches_per_s, |s| format!("{s:.0}")),
            words::of_cores(view.cores_used, view.cores, 2)
        )),
        Line::from(match &view.verdict {
            Some((_, headline)) => format!("So far: {headline}"),
            None => "So far: no verdict yet".into(),
        }),
    ];
    Paragraph::new(lines)
}

fn thread_table(view: &TopView) -> Table<'static> {
    let mut header = vec![Cell::from("THREAD"), Cell::from("TID")];
    header.extend(columns().map(|(_, name)| Cell::from(name)));
    header.push(Cell::from("CPU s"));
    let rows = view.rows.iter().map(|r| {
        let mut cells = vec![
            Cell::from(thread_name(r.name.as_deref(), r.tid)),
            Cell::from(r.tid.to_string()),
        ];
        cells.extend(columns().map(|(states, _)| Cell::from(cell(r.states.sum_of(states)))));
        cells.push(Cell::from(format!("{:.2}", r.cpu_s)));
        Row::new(cells)
    });
    let mut widths = vec![Constraint::Length(22), Constraint::Length(8)];
    widths.extend(columns().map(|_| Constraint::Length(5)));
    widths.push(Constraint::Length(7));
    Table::new(rows, widths)
        .header(Row::new(header).style(Style::default().add_modifier(Modifier::BOLD)))
        .block(Block::default().borders(Borders::TOP).title(format!(
            " {} threads, by {} ",
            view.rows.len(),
            view.controls.sort.label()
        )))
}

fn hot_text(view: &TopView) -> Paragraph<'static> {
    let mut lines = Vec::new();
    for (title, hot) in [
        ("Holding the GIL (since start)", &view.hot_gil),
        ("Waiting for the GIL (since start)", &view.hot_gil_wait),
    ] {
        lines.push(Line::from(title).style(Style::default().add_modifier(Modifier::BOLD)));
        if hot.is_empty() {
            lines.push(Line::from("  -"));
        }
        for h in hot {
            lines.push(Line::from(format!(
                "  {:>4}  {}",
                pct(h.fraction),
                place(&h.function, &h.file, h.line)
            )));
        }
    }
    Paragraph::new(lines)
}
