//! `gilscope top`: the screen drawn from a replayed recording with ratatui's test backend
//! (a golden screen), the keys, and one live run in tmux, driven by its keys.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gilscope::analysis::{Aggregator, Analysis};
use gilscope::model::{Record, ThreadState};
use gilscope::recording::RecordingReader;
use gilscope::top::view::{self, Controls, Scope, Snapshot, SortKey};
use gilscope::top::{action, Action};
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyModifiers};
use ratatui::Terminal;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The analysis after the first `seconds` of the recording, and after all of it.
fn halfway_and_end(name: &str, seconds: f64) -> (Analysis, Analysis) {
    let path = common::recording(name);
    let mut reader = RecordingReader::open(&path).unwrap();
    let mut aggregator = Aggregator::new();
    let mut halfway = None;
    while let Some(record) = reader.next_record().unwrap() {
        if let (Record::Sample(s), None) = (&record, &halfway) {
            if s.t_ns as f64 / 1e9 >= seconds {
                halfway = Some(aggregator.clone().finish());
            }
        }
        aggregator.push(&record);
    }
    (
        halfway.expect("the recording is long enough"),
        aggregator.finish(),
    )
}

fn screen(view: &view::TopView, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| gilscope::top::draw::draw(frame, view))
        .unwrap();
    let buffer = terminal.backend().buffer();
    let mut text = String::new();
    for y in 0..height {
        let line: String = (0..width)
            .map(|x| buffer.cell((x, y)).map_or(" ", |c| c.symbol()))
            .collect();
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[test]
fn the_screen_of_a_replayed_gil_bound_run() {
    let (halfway, end) = halfway_and_end("cpu_threads", 1.0);
    let view = view::build(
        &end,
        &Snapshot::of(&end),
        &Snapshot::of(&halfway),
        Controls::default(),
    );
    let text = screen(&view, 100, 24);
    common::golden(
        &root().join("tests/golden/top_cpu_threads.txt"),
        text.as_bytes(),
    );
    for needle in [
        "worker-0",
        "GIL held",
        "hand-offs/s",
        "So far: GIL contention",
    ] {
        assert!(text.contains(needle), "{needle}:\n{text}");
    }
}

#[test]
fn the_window_covers_the_last_second_and_since_start_the_whole_run() {
    let (halfway, end) = halfway_and_end("cpu_threads", 1.0);
    let previous = Snapshot::of(&halfway);
    let now = Snapshot::of(&end);
    let window = view::build(&end, &now, &previous, Controls::default());
    let since = view::build(
        &end,
        &now,
        &previous,
        Controls {
            scope: Scope::SinceStart,
            ..Controls::default()
        },
    );
    let report = gilscope::report::build(&end, None);
    for row in &since.rows {
        let t = report.threads.iter().find(|t| t.tid == row.tid).unwrap();
        assert_eq!(
            row.states, t.states,
            "since start is the report's own shares"
        );
    }
    let workers: Vec<_> = window
        .rows
        .iter()
        .filter(|r| r.name.as_deref().is_some_and(|n| n.starts_with("worker")))
        .collect();
    assert_eq!(workers.len(), 4);
    for w in &workers {
        let total: f64 = gilscope::model::ThreadState::ALL
            .iter()
            .map(|&s| w.states.get(s))
            .sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
        let whole = since.rows.iter().find(|r| r.tid == w.tid).unwrap();
        assert!(
            w.cpu_s < whole.cpu_s,
            "the window's CPU is part of the whole"
        );
    }
    let waits: Vec<f64> = window
        .rows
        .iter()
        .map(|r| r.states[ThreadState::GilWait])
        .collect();
    assert!(
        waits.windows(2).all(|p| p[0] >= p[1]),
        "sorted by GIL wait: {waits:?}"
    );
    let held = window.gil_held.unwrap();
    assert!(held > 0.9, "{held}");
}

#[test]
fn keys_quit_sort_switch_and_freeze() {
    let none = KeyModifiers::NONE;
    assert_eq!(action(KeyCode::Char('q'), none), Some(Action::Quit));
    assert_eq!(action(KeyCode::Esc, none), Some(Action::Quit));
    assert_eq!(
        action(KeyCode::Char('c'), KeyModifiers::CONTROL),
        Some(Action::Quit)
    );
    assert_eq!(action(KeyCode::Char('c'), none), Some(Action::ToggleScope));
    assert_eq!(action(KeyCode::Char('x'), none), None);
    let mut controls = Controls::default();
    let mut seen = vec![controls.sort];
    for _ in 0..4 {
        controls.apply(Action::NextSort);
        seen.push(controls.sort);
    }
    controls.apply(Action::NextSort);
    assert_eq!(
        controls.sort,
        SortKey::GilWait,
        "the sort keys cycle: {seen:?}"
    );
    controls.apply(Action::ToggleScope);
    assert_eq!(controls.scope, Scope::SinceStart);
    controls.apply(Action::ToggleFreeze);
    assert!(controls.frozen);
}

fn tmux(args: &[&str]) -> String {
    let output = Command::new("tmux").args(args).output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Polls the tmux pane until `ready` holds, for up to `limit`.
fn wait_for_pane(session: &str, limit: Duration, ready: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let pane = tmux(&["capture-pane", "-p", "-t", session]);
        if ready(&pane) || start.elapsed() > limit {
            return pane;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A GIL-bound program, watched in a real terminal (tmux): per-thread rows appear, `c` switches
/// to since-start, `q` quits, the target keeps running, and the usual report is written.
#[test]
fn top_in_a_real_terminal_shows_the_threads_and_quits_with_q() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("\n*** SKIP: tmux not found: `gilscope top` not tested in a terminal ***\n");
        return;
    }
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut target = Command::new(common::any_python())
        .arg(common::workload("cpu_threads.py"))
        .arg("60")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let dir = tempfile::tempdir().unwrap();
    let json: PathBuf = dir.path().join("top.json");
    let session = format!("gilscope-top-{}", std::process::id());
    let command = format!(
        "{} top {} --json {}; sleep 60",
        env!("CARGO_BIN_EXE_gilscope"),
        target.id(),
        json.display()
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "110",
        "-y",
        "36",
        &command,
    ]);
    let pane = wait_for_pane(&session, Duration::from_secs(15), |p| {
        p.matches("worker-").count() >= 4 && p.contains("So far:")
    });
    let result = (|| {
        if pane.matches("worker-").count() < 4 || !pane.contains("GIL held") {
            return Err(format!("no thread rows:\n{pane}"));
        }
        if !pane.contains("last second") {
            return Err(format!("not the last second by default:\n{pane}"));
        }
        tmux(&["send-keys", "-t", &session, "c"]);
        let pane = wait_for_pane(&session, Duration::from_secs(5), |p| {
            p.contains("since start")
        });
        if !pane.contains("since start") {
            return Err(format!("`c` did not switch:\n{pane}"));
        }
        tmux(&["send-keys", "-t", &session, "q"]);
        let start = Instant::now();
        while !json.exists() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let pane = wait_for_pane(&session, Duration::from_secs(5), |p| {
            p.contains("GIL contention")
        });
        if !json.exists() {
            return Err(format!("no report after q:\n{pane}"));
        }
        if !pane.contains("Process: ") {
            return Err(format!("the report was not printed after q:\n{pane}"));
        }
        Ok(())
    })();
    let still_running = target.try_wait().unwrap().is_none();
    tmux(&["kill-session", "-t", &session]);
    let _ = target.kill();
    let _ = target.wait();
    result.unwrap();
    assert!(still_running, "quitting top left the target running");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["verdict"]["kind"], "gil_contention");
}

#[test]
fn top_without_a_terminal_says_so_and_starts_nothing() {
    let output = common::gilscope()
        .args(["top", "--", "python3", "-c", "print('started')"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("needs a terminal") && stderr.contains("hint:"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "the command was not started");
}

/// On a terminal, `run` shows one status line on stderr while it samples (gone with `-q`, and
/// gone before the report); into a pipe it writes none (every other test's stderr).
#[test]
fn run_shows_a_status_line_on_a_terminal_unless_quiet() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("\n*** SKIP: tmux not found: the status line not tested in a terminal ***\n");
        return;
    }
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let python = common::any_python();
    for (quiet, expect_status) in [(false, true), (true, false)] {
        let session = format!("gilscope-status-{}-{quiet}", std::process::id());
        let command = format!(
            "{} run {} -- {} {} 4 >/dev/null; sleep 30",
            env!("CARGO_BIN_EXE_gilscope"),
            if quiet { "-q" } else { "" },
            python.display(),
            common::workload("cpu_threads.py").display()
        );
        tmux(&[
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "100",
            "-y",
            "10",
            &command,
        ]);
        let pane = wait_for_pane(&session, Duration::from_secs(3), |p| p.contains("GIL held"));
        let after = wait_for_pane(&session, Duration::from_secs(8), |p| {
            !p.contains("samples ·")
        });
        tmux(&["kill-session", "-t", &session]);
        assert_eq!(
            pane.contains("samples · 0 late · GIL held") || pane.contains(" late · GIL held"),
            expect_status,
            "quiet={quiet}:\n{pane}"
        );
        assert!(
            !after.contains("samples ·"),
            "the line is cleared at the end:\n{after}"
        );
    }
}
