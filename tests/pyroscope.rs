//! `--pyroscope`: the pushes a capture server on 127.0.0.1 receives, decoded with types written
//! from the upstream protos, against the report of the same run; a dead or silent server; the
//! last window on SIGTERM; Grafana's own agent for reference; `go tool pprof` reading a push.

#[path = "common/capture.rs"]
mod capture;
mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use capture::{Answer, Capture, Request};
use serde_json::Value;

/// A GIL-bound target that runs until the test ends it.
struct Target(Child);

impl Target {
    fn start() -> Target {
        let child = Command::new(common::any_python())
            .arg(common::workload("cpu_threads.py"))
            .arg("60")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(700)); // the threads start
        Target(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `gilscope attach` with a push, its JSON report and how long it took.
fn attach(
    pid: u32,
    url: &str,
    args: &[&str],
    json: &Path,
) -> (std::process::Output, Value, Duration) {
    let started = Instant::now();
    let output = common::gilscope()
        .args(["attach", "-q", "--pyroscope", url])
        .args(args)
        .arg("--json")
        .arg(json)
        .arg(pid.to_string())
        .env("PYROSCOPE_TENANT_ID", "team-a")
        .env("PYROSCOPE_BASIC_AUTH_USER", "gil")
        .env("PYROSCOPE_BASIC_AUTH_PASSWORD", "scope")
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    (output, report, took)
}

/// Samples per (thread id, state) over every push, checking each sample's labels.
fn pushed_counts(requests: &[Request], pid: u32) -> HashMap<(u32, String), i64> {
    let mut counts = HashMap::new();
    for request in requests {
        let push = request.push_request();
        assert_eq!(push.series.len(), 1, "one process, one series");
        let series = &push.series[0];
        assert_eq!(series.label("pid"), Some(pid.to_string().as_str()));
        assert_eq!(series.samples.len(), 1);
        let profile = capture::profile_of(&series.samples[0].raw_profile);
        let types: Vec<(&str, &str)> = profile
            .sample_type
            .iter()
            .map(|t| (profile.string(t.r#type), profile.string(t.unit)))
            .collect();
        assert_eq!(types, [("samples", "count"), ("wall", "nanoseconds")]);
        assert_eq!(profile.period, 10_000_000, "100 Hz");
        for sample in &profile.sample {
            let labels: HashMap<String, String> = profile.labels(sample).into_iter().collect();
            let mut names: Vec<&str> = labels.keys().map(|k| k.as_str()).collect();
            names.sort();
            assert_eq!(names, ["state", "thread_id", "thread_name"]);
            let tid: u32 = labels["thread_id"].parse().expect("a thread id");
            let state = &labels["state"];
            assert!(
                gilscope::model::ThreadState::ALL
                    .iter()
                    .any(|s| s.name() == state.as_str()),
                "{state}"
            );
            assert_eq!(sample.value[1], sample.value[0] * profile.period);
            *counts.entry((tid, state.clone())).or_insert(0) += sample.value[0];
        }
    }
    counts
}

#[test]
fn pushes_arrive_every_interval_with_their_labels_and_match_the_report() {
    let _live = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let server = Capture::start(Answer::Ok);
    let mut target = Target::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let (_, report, _) = attach(
        target.pid(),
        &server.url(),
        &[
            "--push-interval",
            "2",
            "--duration",
            "7",
            "--tag",
            "region=test",
        ],
        &json,
    );
    assert!(target.running(), "the target keeps running");
    let requests = server.requests();
    assert!(
        (4..=5).contains(&requests.len()),
        "7 s in windows of 2 s: 3 whole ones and the rest at the end; got {}",
        requests.len()
    );
    // The headers Grafana's own agent sends (see the reference test below).
    let token = base64::engine::general_purpose::STANDARD.encode("gil:scope");
    for r in &requests {
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/push.v1.PusherService/Push")
        );
        assert_eq!(r.header("content-type"), Some("application/proto"));
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(r.header("x-scope-orgid"), Some("team-a"));
        assert_eq!(
            r.header("authorization"),
            Some(format!("Basic {token}").as_str())
        );
    }
    // A push every 2 s (the last one comes at the end, with what is left).
    let mut gaps: Vec<f64> = requests
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64())
        .collect();
    gaps.pop();
    gaps.sort_by(f64::total_cmp);
    let median = gaps[gaps.len() / 2];
    assert!(
        (1.7..=2.4).contains(&median),
        "pushes {median:.2} s apart, gaps {gaps:?}"
    );

    let series = &requests[0].push_request().series[0];
    assert_eq!(series.label("__name__"), Some("wall"));
    assert_eq!(series.label("service_name"), Some("cpu_threads"));
    assert_eq!(series.label("process.runtime.name"), Some("cpython"));
    assert_eq!(
        series.label("process.runtime.version"),
        report["target"]["python"].as_str()
    );
    assert_eq!(series.label("region"), Some("test"));

    // Every state's samples, thread by thread, as the report has them.
    let counts = pushed_counts(&requests, target.pid());
    let pushed_total: i64 = counts.values().sum();
    let reported_total: u64 = report["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["samples"].as_u64().unwrap())
        .sum();
    let threads = report["threads"].as_array().unwrap().len() as i64;
    assert!(
        (pushed_total - reported_total as i64).abs() <= threads,
        "pushed {pushed_total} samples, the report counted {reported_total}"
    );
    for thread in report["threads"].as_array().unwrap() {
        let tid = thread["tid"].as_u64().unwrap() as u32;
        let total: i64 = counts
            .iter()
            .filter(|((t, _), _)| *t == tid)
            .map(|(_, n)| n)
            .sum();
        if total < 100 {
            continue;
        }
        for (state, fraction) in thread["states"].as_object().unwrap() {
            let pushed =
                counts.get(&(tid, state.clone())).copied().unwrap_or(0) as f64 / total as f64;
            let reported = fraction.as_f64().unwrap();
            assert!(
                (pushed - reported).abs() < 0.05,
                "thread {tid} {state}: pushed {pushed:.3}, reported {reported:.3}"
            );
        }
    }
    let waiting: i64 = counts
        .iter()
        .filter(|((_, s), _)| s == "gil_wait")
        .map(|(_, n)| n)
        .sum();
    assert!(
        waiting as f64 > 0.3 * pushed_total as f64,
        "four spinning threads mostly wait for the GIL"
    );
    assert_eq!(report["push"]["windows_pushed"], requests.len() as u64);
    assert_eq!(report["push"]["windows_dropped"], 0);

    read_with_go_pprof(&requests[1]);
}

/// `go tool pprof -raw` reads a pushed profile, labels and all.
fn read_with_go_pprof(request: &Request) {
    if Command::new("go").arg("version").output().is_err() {
        common::skip("`go` is not installed (Debian's golang-go; .ci/run installs it): go tool pprof did not read the push");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pushed.pb");
    let raw = &request.push_request().series[0].samples[0].raw_profile;
    std::fs::write(&path, raw).unwrap();
    let output = Command::new("go")
        .args(["tool", "pprof", "-raw"])
        .arg(&path)
        .env("HOME", dir.path())
        .env("PPROF_TMPDIR", dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("samples/count wall/nanoseconds"), "{text}");
    assert!(text.contains("state:[gil_wait]"), "{text}");
    assert!(text.contains("thread_name:[worker-"), "{text}");
    assert!(text.contains("work"), "{text}");
}

#[test]
fn a_dead_or_silent_server_costs_the_run_nothing() {
    let _live = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    // Nothing listens on a port just closed; the silent server reads and never answers.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let silent = Capture::start(Answer::Silent);
    for url in [closed, silent.url()] {
        let mut target = Target::start();
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("report.json");
        let (_, report, took) = attach(
            target.pid(),
            &url,
            &["--push-interval", "1", "--duration", "5"],
            &json,
        );
        assert!(target.running(), "{url}: the target keeps running");
        let samples = report["samples"].as_f64().unwrap();
        let late = report["late_samples"].as_f64().unwrap();
        assert!(samples >= 0.9 * 500.0, "{url}: {samples} samples of 500");
        assert!(late <= 0.02 * samples, "{url}: {late} late samples");
        let push = &report["push"];
        assert_eq!(push["windows_pushed"], 0, "{url}");
        assert!(
            push["windows_dropped"].as_u64().unwrap() >= 4,
            "{url}: {push}"
        );
        assert!(push["last_error"].is_string(), "{url}: {push}");
        // The run ends within the flush grace (5 s) of its duration (and the attach's start-up).
        assert!(took < Duration::from_secs(16), "{url}: took {took:?}");
    }
}

#[test]
fn sigterm_flushes_the_last_window() {
    let _live = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let server = Capture::start(Answer::Ok);
    let mut target = Target::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let mut gilscope = common::gilscope()
        .args([
            "attach",
            "-q",
            "--pyroscope",
            &server.url(),
            "--push-interval",
            "60",
        ])
        .arg("--json")
        .arg(&json)
        .arg(target.pid().to_string())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(server.count(), 0, "nothing before the first minute");
    unsafe { libc::kill(gilscope.id() as i32, libc::SIGTERM) };
    let status = gilscope.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(target.running(), "the target keeps running");
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "the last window, on SIGTERM");
    let samples: i64 = pushed_counts(&requests, target.pid()).values().sum();
    // About 3 s of 5 threads at 100 Hz.
    assert!((800..=2200).contains(&samples), "{samples} samples");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["push"]["windows_pushed"], 1);
}

#[test]
fn thousands_of_pushes_leak_no_descriptor_or_thread() {
    use gilscope::analysis::{ProfileWindow, WindowStack};
    use gilscope::model::{Frame, ThreadState};
    use gilscope::push::{http::Http, Batch, Credentials, PushConfig, Pusher, Retry};
    // Alone: the other tests of this binary open descriptors and start threads of their own.
    let _live = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let count = |dir: &str| std::fs::read_dir(dir).unwrap().count();
    for answer in [Answer::Ok, Answer::OkAndClose] {
        let server = Capture::start(answer);
        let config = PushConfig {
            url: server.url(),
            interval: Duration::from_secs(1),
            app_name: Some("leak".into()),
            tags: Vec::new(),
            credentials: Credentials::default(),
            retry: Retry::default(),
        };
        let pusher =
            Pusher::start(&config, Http::new(&config.url, Credentials::default())).unwrap();
        let batch = Batch {
            start_unix_ns: 1_700_000_000_000_000_000,
            duration_ns: 1_000_000_000,
            window: ProfileWindow {
                interval_ns: 10_000_000,
                stacks: vec![WindowStack {
                    pid: gilscope::model::Pid(1),
                    tid: gilscope::model::Tid(2),
                    thread: Some("worker-0".into()),
                    state: ThreadState::GilWait,
                    frames: vec![Frame {
                        function: "work".into(),
                        file: "app.py".into(),
                        line: 3,
                    }],
                    samples: 100,
                }],
            },
            series_labels: HashMap::from([(
                gilscope::model::Pid(1),
                vec![("service_name".into(), "leak".into())],
            )]),
        };
        let mut steady = None;
        for n in 1..=2000 {
            pusher.offer(batch.clone());
            assert!(
                server.wait_for(n, Duration::from_secs(5)),
                "{answer:?}: push {n}"
            );
            if n == 20 {
                std::thread::sleep(Duration::from_millis(300));
                steady = Some((count("/proc/self/fd"), count("/proc/self/task")));
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        let now = (count("/proc/self/fd"), count("/proc/self/task"));
        let stats = pusher.finish(Duration::from_secs(5));
        assert_eq!(stats.windows_pushed, 2000, "{answer:?}");
        let (fds, tasks) = steady.unwrap();
        // Other tests of this binary run beside it: allow them their few.
        assert!(
            now.0 <= fds + 4,
            "{answer:?}: {fds} descriptors after 20 pushes, {} after 2000",
            now.0
        );
        assert!(
            now.1 <= tasks + 4,
            "{answer:?}: {tasks} threads after 20 pushes, {} after 2000",
            now.1
        );
    }
}

/// Grafana's Python agent (`pyroscope-io`), pointed at the same capture server, sends the
/// reference request: gilscope's has the same path, headers and label shapes.
#[test]
fn grafanas_own_agent_sends_the_same_shape() {
    let Some(python) = std::env::var_os("GILSCOPE_PYROSCOPE_IO_PYTHON") else {
        common::skip("GILSCOPE_PYROSCOPE_IO_PYTHON is not set to a python with pyroscope-io (.ci/run sets it): Grafana's agent did not run");
        return;
    };
    let _live = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let server = Capture::start(Answer::Ok);
    let agent = format!(
        r#"
import pyroscope, threading, time
pyroscope.configure(application_name="reference", server_address="{}", tenant_id="team-a",
                    basic_auth_username="gil", basic_auth_password="scope", tags={{"region": "test"}})
def spin(until):
    while time.time() < until:
        pass
until = time.time() + 12
t = threading.Thread(target=spin, args=(until,), name="spinner")
t.start()
spin(until)
t.join()
pyroscope.shutdown()
"#,
        server.url()
    );
    let status = Command::new(&python).args(["-c", &agent]).status().unwrap();
    assert!(status.success());
    assert!(
        server.wait_for(1, Duration::from_secs(5)),
        "the agent pushed nothing"
    );
    let reference = &server.requests()[0];
    assert_eq!(reference.path, "/push.v1.PusherService/Push");
    assert_eq!(reference.header("content-type"), Some("application/proto"));
    assert_eq!(reference.header("content-encoding"), Some("gzip"));
    assert_eq!(reference.header("x-scope-orgid"), Some("team-a"));
    let token = base64::engine::general_purpose::STANDARD.encode("gil:scope");
    assert_eq!(
        reference.header("authorization"),
        Some(format!("Basic {token}").as_str())
    );
    let push = reference.push_request();
    let series = &push.series[0];
    for name in [
        "__name__",
        "service_name",
        "process.runtime.name",
        "process.runtime.version",
        "region",
    ] {
        assert!(
            series.label(name).is_some(),
            "the reference has no {name} label"
        );
    }
    assert_eq!(series.label("service_name"), Some("reference"));
    assert_eq!(series.label("process.runtime.name"), Some("cpython"));
    assert_eq!(series.samples.len(), 1);
    assert!(
        !series.samples[0].id.is_empty(),
        "each raw sample has an id"
    );
    let profile = capture::profile_of(&series.samples[0].raw_profile);
    assert!(!profile.sample.is_empty());
    for sample in &profile.sample {
        let _ = profile.labels(sample); // string labels only, as gilscope sends
    }
}
