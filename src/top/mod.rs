//! `gilscope top`: a live terminal view of the sampled threads, refreshed once a second. It
//! runs on its own thread, fed a copy of the records, so drawing never delays a sample.

pub mod draw;
pub mod view;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use crate::analysis::{Aggregator, Analysis};
use crate::model::Record;
use view::{Controls, Scope, Snapshot, TopView};

/// How often the view takes a snapshot.
pub const REFRESH: Duration = Duration::from_secs(1);
/// How long a wait for a key lasts before the records are read again.
const KEY_POLL: Duration = Duration::from_millis(100);

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    NextSort,
    ToggleScope,
    ToggleFreeze,
}

/// The action of a key press, if any: `q`, Esc or Ctrl-C quit; `s` sorts by the next column;
/// `c` switches between the last second and since the start; `f` or space freezes.
pub fn action(code: KeyCode, modifiers: KeyModifiers) -> Option<Action> {
    match code {
        KeyCode::Char('c') if modifiers.contains(KeyModifiers::CONTROL) => Some(Action::Quit),
        KeyCode::Char('q') | KeyCode::Esc => Some(Action::Quit),
        KeyCode::Char('s') => Some(Action::NextSort),
        KeyCode::Char('c') => Some(Action::ToggleScope),
        KeyCode::Char('f') | KeyCode::Char(' ') => Some(Action::ToggleFreeze),
        _ => None,
    }
}

impl Controls {
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Quit => {}
            Action::NextSort => self.sort = self.sort.next(),
            Action::ToggleScope => {
                self.scope = match self.scope {
                    Scope::Window => Scope::SinceStart,
                    Scope::SinceStart => Scope::Window,
                }
            }
            Action::ToggleFreeze => self.frozen = !self.frozen,
        }
    }
}

/// The latest snapshot and the one before it, so a key can redraw at once.
#[derive(Clone, Default)]
struct Snapshots {
    /// The latest analysis, and its counters.
    latest: Option<(Analysis, Snapshot)>,
    before_latest: Snapshot,
}

impl Snapshots {
    fn view(&self, controls: Controls) -> Option<TopView> {
        let (analysis, now) = self.latest.as_ref()?;
        Some(view::build(analysis, now, &self.before_latest, controls))
    }
}

/// Draws the live view until `records` closes (sampling ended). A quit key sets `quit`, which
/// the sampling loop reads; the view goes on draining records until then.
pub fn run(records: Receiver<Record>, quit: Arc<AtomicBool>) -> std::io::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let result = draw_until_closed(&mut terminal, &records, &quit);
    ratatui::restore();
    result
}

fn draw_until_closed(
    terminal: &mut ratatui::DefaultTerminal,
    records: &Receiver<Record>,
    quit: &AtomicBool,
) -> std::io::Result<()> {
    let mut aggregator = Aggregator::new();
    let mut controls = Controls::default();
    let mut snapshots = Snapshots::default();
    // While frozen, the snapshots the screen stays on (sorting and scope still apply).
    let mut frozen: Option<Snapshots> = None;
    let mut shown: Option<TopView> = None;
    let mut next = Instant::now() + REFRESH;
    loop {
        loop {
            match records.try_recv() {
                Ok(record) => aggregator.push(&record),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Ok(()),
            }
        }
        if Instant::now() >= next {
            next += REFRESH;
            let analysis = aggregator.clone().finish();
            let now = Snapshot::of(&analysis);
            if let Some((_, previous)) = snapshots.latest.replace((analysis, now)) {
                snapshots.before_latest = previous;
            }
            if frozen.is_none() {
                shown = snapshots.view(controls);
            }
        }
        if let Some(view) = &shown {
            terminal.draw(|frame| draw::draw(frame, view))?;
        }
        if !event::poll(KEY_POLL)? {
            continue;
        }
        let Event::Key(key) = event::read()? else {
            continue;
        };
        if key.kind != KeyEventKind::Press {
            continue;
        }
        match action(key.code, key.modifiers) {
            Some(Action::Quit) => quit.store(true, Ordering::Relaxed),
            Some(other) => {
                controls.apply(other);
                if other == Action::ToggleFreeze {
                    frozen = controls.frozen.then(|| snapshots.clone());
                }
                shown = frozen
                    .as_ref()
                    .unwrap_or(&snapshots)
                    .view(controls)
                    .or(shown);
            }
            None => {}
        }
    }
}
