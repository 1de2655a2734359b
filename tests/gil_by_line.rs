//! After the verdict, replayed with no live process: who held the GIL while each waiting
//! function waited (`hot.gil_wait[].held_by`), and how each busy line used the GIL
//! (`gil_by_line`), on a synthetic run whose answer is known and on a recorded one.

mod common;

use gilscope::analysis::{Aggregator, Analysis};
use gilscope::model::{Frame, GilMode, GilReading, Record, Sample, Syscall, ThreadSample, Tid};
use gilscope::render::terminal::{self, Style};
use gilscope::report::{self, GilUse, Report};

const GIL: (u64, u64) = (0x1000, 0x1100);
const FUTEX: i64 = 202;

fn frame(function: &str, line: i32) -> Frame {
    Frame {
        function: function.into(),
        file: "/srv/app.py".into(),
        line,
    }
}

/// Three threads over 2 s at 100 Hz: `spinner` holds the GIL, alternating between two lines;
/// `waiter` waits for it on one line; `hasher` runs native code without it. Frames 0 to 3 are
/// spin_a, spin_b, wait_here and digest, each its own one-frame stack; digest's line has source.
fn synthetic_run() -> Analysis {
    let mut agg = Aggregator::new();
    agg.push(&Record::Target(common::synthetic_target(
        "3.12.1",
        GilMode::Enabled,
        4,
    )));
    agg.push(&Record::GilRanges(vec![GIL]));
    let frames = [
        frame("spin_a", 5),
        frame("spin_b", 6),
        frame("wait_here", 9),
        frame("digest", 12),
    ];
    for (id, f) in frames.into_iter().enumerate() {
        agg.push(&Record::Frame {
            id: id as u32,
            frame: f,
        });
        agg.push(&Record::Stack {
            id: id as u32,
            frames: vec![id as u32],
        });
    }
    agg.push(&Record::SourceLine {
        frame: 3,
        text: "h = hashlib.sha256(buf).hexdigest()".into(),
    });
    for (tid, name) in [(1, "spinner"), (2, "waiter"), (3, "hasher")] {
        agg.push(&Record::ThreadName {
            tid: Tid(tid),
            name: name.into(),
        });
    }
    for i in 0..200u64 {
        let t = i * 10_000_000;
        let thread = |tid, syscall, cpu_ns, stack| ThreadSample {
            tid: Tid(tid),
            syscall: Some(syscall),
            cpu_ns: Some(cpu_ns),
            stack: Some(stack),
            python: true,
        };
        let futex = Syscall::Blocked {
            nr: FUTEX,
            args: [GIL.0 + 0x40, 0x80, 0],
        };
        agg.push(&Record::Sample(Sample {
            t_ns: t,
            process_cpu_ns: Some(2 * t),
            gil: Some(GilReading {
                locked: true,
                holder_tid: Some(Tid(1)),
                switch_number: Some(i / 10),
                enabled: None,
            }),
            threads: vec![
                thread(1, Syscall::Running, t, (i % 2) as u32),
                thread(2, futex, 0, 2),
                thread(3, Syscall::Running, t, 3),
            ],
        }));
    }
    agg.finish()
}

fn build(analysis: &Analysis) -> Report {
    report::diagnosed(analysis)
}

fn text(report: &Report) -> String {
    let mut out = Vec::new();
    terminal::render(
        report,
        Style {
            color: false,
            threads: false,
        },
        &mut out,
    )
    .unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn the_waiting_function_names_who_held_the_gil_and_where() {
    let report = build(&synthetic_run());
    let waiting = &report.hot.gil_wait[0];
    assert_eq!(waiting.function, "wait_here");
    let held_by = waiting
        .held_by
        .as_ref()
        .expect("held_by on a waiting function");
    assert_eq!(held_by.len(), 2, "{held_by:?}");
    for (holder, function) in held_by.iter().zip(["spin_a", "spin_b"]) {
        assert_eq!(holder.thread.as_deref(), Some("spinner"));
        assert_eq!(holder.tid, Tid(1));
        assert_eq!(holder.function.as_deref(), Some(function));
        assert_eq!(holder.file.as_deref(), Some("/srv/app.py"));
        assert!((holder.fraction - 0.5).abs() < 0.01, "{holder:?}");
    }
    assert!(
        report.hot.gil.iter().all(|h| h.held_by.is_none()),
        "only waiting functions list holders"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["hot"]["gil_wait"][0]["held_by"][0]["thread"],
        "spinner"
    );
    assert!(json["hot"]["gil"][0].get("held_by").is_none());
    let text = text(&report);
    assert!(
        text.contains(
            "held by spinner in spin_a (app.py:5) 50%; by spinner in spin_b (app.py:6)\n      50%"
        ),
        "{text}"
    );
}

#[test]
fn each_busy_line_says_whether_threads_help_there() {
    let report = build(&synthetic_run());
    let line = |function: &str| {
        report
            .gil_by_line
            .iter()
            .find(|l| l.function == function)
            .unwrap_or_else(|| panic!("{function} in {:?}", report.gil_by_line))
    };
    let digest = line("digest");
    assert_eq!(digest.kind, GilUse::Released);
    assert!((digest.released - 1.0).abs() < 1e-9, "{digest:?}");
    assert!((digest.released_running - 1.0).abs() < 1e-9, "{digest:?}");
    assert!((digest.seconds - 2.0).abs() < 0.05, "{digest:?}");
    assert_eq!(
        digest.source.as_deref(),
        Some("h = hashlib.sha256(buf).hexdigest()")
    );
    let wait = line("wait_here");
    assert_eq!(wait.kind, GilUse::Waited);
    assert!((wait.waiting - 1.0).abs() < 1e-9, "{wait:?}");
    let spin = line("spin_a");
    assert_eq!(spin.kind, GilUse::Held);
    assert!((spin.held - 1.0).abs() < 1e-9, "{spin:?}");
    assert_eq!(spin.released_running, 0.0);
    assert!((spin.seconds - 1.0).abs() < 0.05, "{spin:?}");
    assert_eq!(spin.source, None, "no source line was recorded for it");
    let seconds: Vec<f64> = report.gil_by_line.iter().map(|l| l.seconds).collect();
    assert!(seconds.windows(2).all(|w| w[0] >= w[1]), "{seconds:?}");
    let text = text(&report);
    assert!(
        text.contains("`h = hashlib.sha256(buf).hexdigest()` app.py:12 · 2.00 s\n    releases the GIL 100% of its running time: threads help here"),
        "{text}"
    );
    assert!(
        text.contains("`wait_here` app.py:9 · 2.00 s\n    only seen waiting for the GIL: threads do not help here"),
        "{text}"
    );
}

/// The recorded four-thread GIL-bound run: each waiting worker waited on the same line while
/// one of the others held the GIL there.
#[test]
fn a_recorded_gil_bound_run_names_the_other_workers() {
    let recording = common::recording("cpu_threads");
    let report = build(&gilscope::recording::replay(&recording).unwrap());
    let waiting = &report.hot.gil_wait[0];
    assert_eq!(waiting.function, "work.<locals>.<genexpr>");
    let held_by = waiting.held_by.as_ref().unwrap();
    assert_eq!(held_by.len(), gilscope::analysis::queries::HELD_BY_LIMIT);
    assert!(held_by.iter().all(|h| h
        .thread
        .as_deref()
        .is_some_and(|t| t.starts_with("worker-"))));
    let total: f64 = held_by.iter().map(|h| h.fraction).sum();
    assert!((0.3..=1.0).contains(&total), "{held_by:?}");
    let busiest = &report.gil_by_line[0];
    assert_eq!(busiest.function, "work.<locals>.<genexpr>");
    assert_eq!(busiest.kind, GilUse::Held);
    assert!(busiest.released < 0.1, "{busiest:?}");
}
