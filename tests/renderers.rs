//! Every output format, from a recorded run: golden files (`GILSCOPE_BLESS=1` rewrites them),
//! each file parsed back and checked against its format, hostile names escaped, and the HTML
//! page loaded in a real browser when Chromium is installed.

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use gilscope::analysis::{Aggregator, Analysis};
use gilscope::model::{Frame, Record, Sample, Syscall, TargetInfo, ThreadSample};
use gilscope::render;
use gilscope::report::{self, Report};
use prost::Message;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn recorded(name: &str) -> (Analysis, Report) {
    let analysis = gilscope::recording::replay(&common::recording(name)).unwrap();
    let report = report::diagnosed(&analysis);
    (analysis, report)
}

/// Compares with tests/golden/NAME (see [`common::golden`]).
fn golden(name: &str, actual: &[u8]) {
    common::golden(&root().join("tests/golden").join(name), actual);
}

fn golden_json(name: &str, actual: &[u8]) {
    common::golden_json(&root().join("tests/golden").join(name), actual);
}

fn render_to_vec(f: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> Vec<u8> {
    let mut out = Vec::new();
    f(&mut out).unwrap();
    out
}

#[test]
fn terminal_and_json_golden() {
    let (_, report) = recorded("cpu_threads");
    let style = render::terminal::Style {
        color: false,
        threads: false,
    };
    golden(
        "cpu_threads.txt",
        &render_to_vec(|o| render::terminal::render(&report, style, o)),
    );
    golden(
        "cpu_threads.report.json",
        &render_to_vec(|o| render::json(&report, o)),
    );
}

#[test]
fn chrome_trace_follows_the_format() {
    let (analysis, _) = recorded("cpu_threads");
    let bytes = render_to_vec(|o| render::trace::render(&analysis, o));
    golden_json("cpu_threads.trace.json", &bytes);
    let trace: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    let mut names = HashMap::new();
    let mut last_end: HashMap<u64, f64> = HashMap::new();
    let mut counters = 0;
    for e in events {
        let ph = e["ph"].as_str().unwrap();
        assert!(e["pid"].is_u64(), "{e}");
        match ph {
            "M" => {
                if e["name"] == "thread_name" {
                    names.insert(
                        e["tid"].as_u64().unwrap(),
                        e["args"]["name"].as_str().unwrap().to_string(),
                    );
                }
            }
            "X" => {
                let (ts, dur) = (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap());
                assert!(ts >= 0.0 && dur >= 0.0, "{e}");
                let tid = e["tid"].as_u64().unwrap();
                let end = last_end.entry(tid).or_insert(0.0);
                assert!(ts >= *end - 1e-6, "slices of a track overlap: {e}");
                *end = ts + dur;
                if e["cat"] == "state" {
                    assert!(e["args"]["state"].is_string());
                }
            }
            "C" => counters += 1,
            other => panic!("unexpected phase {other}"),
        }
    }
    assert_eq!(names.get(&0).map(String::as_str), Some("GIL"));
    assert_eq!(names.len(), analysis.threads.len() + 1);
    assert!(counters >= 2);
    assert!(last_end.contains_key(&0), "the GIL track has slices");
}

#[test]
fn flamegraph_groups_by_state() {
    let (analysis, _) = recorded("cpu_threads");
    let folded = render::flamegraph::folded(&analysis, None).join("\n");
    golden("cpu_threads.folded", folded.as_bytes());
    let total: u64 = folded
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    let samples: u64 = analysis.threads.iter().map(|t| t.samples).sum();
    assert_eq!(total, samples);
    // Every stack is rooted in its state, then its thread.
    let labels: Vec<&str> = gilscope::model::ThreadState::ALL
        .iter()
        .map(|&s| render::colors::style(s).label)
        .collect();
    for line in folded.lines() {
        let root = line.split(';').next().unwrap();
        assert!(
            labels.contains(&root),
            "stack not rooted in a state: {line}"
        );
    }
    assert!(folded.contains("holds the GIL;worker-0 ("));
    let svg = String::from_utf8(render_to_vec(|o| {
        render::flamegraph::render(&analysis, None, o)
    }))
    .unwrap();
    assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("waits for the GIL"));
    let only = String::from_utf8(render_to_vec(|o| {
        render::flamegraph::render(&analysis, Some(gilscope::model::ThreadState::Gil), o)
    }))
    .unwrap();
    assert!(!only.contains("waits for the GIL"));
}

#[test]
fn speedscope_follows_the_schema() {
    let (analysis, _) = recorded("cpu_threads");
    let bytes = render_to_vec(|o| render::speedscope::render(&analysis, o));
    golden_json("cpu_threads.speedscope.json", &bytes);
    let file: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        file["$schema"],
        "https://www.speedscope.app/file-format-schema.json"
    );
    let frames = file["shared"]["frames"].as_array().unwrap().len() as u64;
    let profiles = file["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), analysis.threads.len());
    for p in profiles {
        assert_eq!(p["type"], "sampled");
        let samples = p["samples"].as_array().unwrap();
        let weights = p["weights"].as_array().unwrap();
        assert_eq!(samples.len(), weights.len());
        let sum: u64 = weights.iter().map(|w| w.as_u64().unwrap()).sum();
        assert_eq!(p["endValue"].as_u64().unwrap(), sum);
        for s in samples {
            assert!(s
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i.as_u64().unwrap() < frames));
        }
    }
}

#[test]
fn pprof_decodes_with_labels() {
    let (analysis, _) = recorded("mixed_cpu_native");
    let gz = render_to_vec(|o| render::pprof::render(&analysis, o));
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .unwrap();
    let profile = render::pprof::Profile::decode(&raw[..]).unwrap();
    let strings = &profile.string_table;
    assert_eq!(strings[0], "");
    let s = |i: i64| strings[i as usize].as_str();
    assert_eq!(
        profile
            .sample_type
            .iter()
            .map(|v| (s(v.r#type), s(v.unit)))
            .collect::<Vec<_>>(),
        [("samples", "count"), ("wall", "nanoseconds")]
    );
    let ids: std::collections::HashSet<u64> = profile.location.iter().map(|l| l.id).collect();
    let functions: std::collections::HashSet<u64> = profile.function.iter().map(|f| f.id).collect();
    assert!(profile.location.iter().all(|l| l
        .line
        .iter()
        .all(|line| functions.contains(&line.function_id))));
    let mut count = 0;
    let mut states = std::collections::HashSet::new();
    for sample in &profile.sample {
        assert!(sample.location_id.iter().all(|id| ids.contains(id)));
        let keys: Vec<&str> = sample.label.iter().map(|l| s(l.key)).collect();
        assert_eq!(keys, ["thread", "tid", "state"]);
        states.insert(s(sample.label[2].str).to_string());
        count += sample.value[0];
    }
    assert_eq!(
        count as u64,
        analysis.threads.iter().map(|t| t.samples).sum::<u64>()
    );
    assert!(states.contains("gil") && states.contains("gil_wait") && states.contains("native"));
}

/// A run whose target named everything hostilely.
fn hostile() -> (Analysis, Report) {
    let evil_function = "<script>document.title='pwned'</script>";
    let evil_thread = "<img src=x onerror=\"document.title='pwned'\">";
    let mut agg = Aggregator::new();
    agg.push(&Record::Target(TargetInfo {
        pid: gilscope::model::Pid(42),
        command: vec!["python".into(), "<b>app</b>.py".into()],
        ..common::synthetic_target("3.12.1", gilscope::model::GilMode::Enabled, 2)
    }));
    agg.push(&Record::Frame {
        id: 0,
        frame: Frame {
            function: evil_function.into(),
            file: "a\"b'.py".into(),
            line: 1,
        },
    });
    agg.push(&Record::Stack {
        id: 0,
        frames: vec![0],
    });
    agg.push(&Record::ThreadName {
        tid: gilscope::model::Tid(7),
        name: evil_thread.into(),
    });
    for i in 0..100u64 {
        agg.push(&Record::Sample(Sample {
            t_ns: i * 10_000_000,
            process_cpu_ns: Some(i * 10_000_000),
            gil: None,
            threads: vec![ThreadSample {
                tid: gilscope::model::Tid(7),
                syscall: Some(Syscall::Running),
                cpu_ns: Some(i * 10_000_000),
                stack: Some(0),
                python: true,
            }],
        }));
    }
    let analysis = agg.finish();
    let report = report::diagnosed(&analysis);
    (analysis, report)
}

fn html_of(analysis: &Analysis, report: &Report) -> String {
    let svg = String::from_utf8(render_to_vec(|o| {
        render::flamegraph::render(analysis, None, o)
    }))
    .unwrap();
    String::from_utf8(render_to_vec(|o| {
        render::html::render(report, analysis, &svg, o)
    }))
    .unwrap()
}

#[test]
fn html_escapes_target_strings() {
    let (analysis, report) = hostile();
    let html = html_of(&analysis, &report);
    assert!(
        !html.contains("<script>document.title"),
        "unescaped function name"
    );
    assert!(!html.contains("<img src=x"), "unescaped thread name");
    assert!(!html.contains("<b>app</b>"), "unescaped command");
    assert!(html.contains("&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"));
    assert!(html.contains("&lt;img src=x onerror="));
    for external in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!html.contains(external), "external resource: {external}");
    }
}

/// Every timeline rectangle's tooltip names the state it is coloured in (a column takes the
/// state the thread spent most of it in, and the tooltip that state's first frame there).
#[test]
fn timeline_tooltips_name_the_colour_they_explain() {
    use gilscope::model::ThreadState;
    use gilscope::render::colors::style;
    let (analysis, report) = recorded("cpu_threads");
    let html = html_of(&analysis, &report);
    let mut checked = 0;
    for rect in html.split("<rect ").skip(1) {
        let Some(fill) = rect
            .split("fill=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
        else {
            continue;
        };
        let Some(tip) = rect.split(" s: ").nth(1) else {
            continue;
        };
        if tip.starts_with("held") {
            continue; // the GIL row
        }
        let state = ThreadState::ALL
            .into_iter()
            .find(|&s| style(s).hex == fill)
            .unwrap_or_else(|| panic!("no state is coloured {fill}"));
        let label = style(state).label.replace('\'', "&#39;");
        assert!(tip.starts_with(&label), "a {fill} rectangle says: {tip}");
        checked += 1;
    }
    assert!(checked > 50, "only {checked} rectangles");
}

#[test]
fn html_golden() {
    let (analysis, report) = recorded("cpu_threads");
    golden("cpu_threads.html", html_of(&analysis, &report).as_bytes());
}

/// Loads a page in headless Chromium; `None` (with a loud message) when it is not installed.
fn chromium_dom(page: &Path, screenshot: &Path) -> Option<String> {
    let chromium = ["chromium", "chromium-browser"].into_iter().find(|c| {
        std::process::Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(chromium) = chromium else {
        common::skip(
            "chromium not installed (apt-get install chromium): the browser check did not run",
        );
        return None;
    };
    let profile = tempfile::tempdir().unwrap();
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,2400",
    ];
    let url = format!("file://{}", page.display());
    let run = |extra: &str| {
        std::process::Command::new(chromium)
            .args(flags)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(extra)
            .arg(&url)
            .output()
            .unwrap()
    };
    let shot = run(&format!("--screenshot={}", screenshot.display()));
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let dom = run("--dump-dom");
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    Some(String::from_utf8_lossy(&dom.stdout).into_owned())
}

#[test]
fn html_renders_in_chromium() {
    let (analysis, report) = recorded("cpu_threads");
    let out = root().join("target/html-check");
    std::fs::create_dir_all(&out).unwrap();
    let page = out.join("cpu_threads.html");
    std::fs::write(&page, html_of(&analysis, &report)).unwrap();
    let Some(dom) = chromium_dom(&page, &out.join("cpu_threads.png")) else {
        return;
    };
    assert!(
        dom.contains("data-rendered=\"ok\""),
        "the page script did not finish"
    );
    assert!(
        dom.contains("data-errors=\"0\""),
        "the page logged script errors"
    );
    assert!(dom.contains("id=\"verdict\" data-kind=\"gil_contention\""));
    assert!(dom.contains(&report.verdict.as_ref().unwrap().headline));
    // A bar per thread, and one per group of several threads above them.
    let groups = report.groups.iter().filter(|g| g.tids.len() > 1).count();
    assert_eq!(
        dom.matches("class=\"bar\"").count(),
        report.threads.len() + groups
    );
    assert!(
        dom.contains("<span style=\"left:10%\">"),
        "the timeline axis was drawn"
    );
    assert!(
        std::fs::metadata(out.join("cpu_threads.png"))
            .unwrap()
            .len()
            > 10_000
    );

    let (analysis, report) = hostile();
    let page = out.join("hostile.html");
    std::fs::write(&page, html_of(&analysis, &report)).unwrap();
    let dom = chromium_dom(&page, &out.join("hostile.png")).unwrap();
    assert!(
        !dom.contains("<title>pwned</title>"),
        "a target string ran as script"
    );
    assert!(dom.contains("data-rendered=\"ok\""));
}

#[test]
fn outputs_from_the_command_line_are_atomic_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| -> PathBuf { dir.path().join(n) };
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_gilscope"))
        .arg("report")
        .arg(common::recording("io_threads"))
        .arg("-q")
        .args(["--trace", p("t.json").to_str().unwrap()])
        .args(["--flamegraph", p("f.svg").to_str().unwrap()])
        .args(["--speedscope", p("s.json").to_str().unwrap()])
        .args(["--pprof", p("p.pb.gz").to_str().unwrap()])
        .args(["--html", p("r.html").to_str().unwrap()])
        .args(["--json", p("r.json").to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["f.svg", "p.pb.gz", "r.html", "r.json", "s.json", "t.json"],
        "no temporary files left"
    );
}
