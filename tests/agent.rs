//! `gilscope agent` watched by a real Prometheus (Debian's `prometheus`, started here with a
//! scrape config pointing at the agent): three Python processes, one GIL-bound on the host,
//! one I/O-bound with a service name and a label in its environment, and one GIL-bound in its
//! own PID namespace and a container's cgroup. Prometheus's HTTP API must show `gil_wait`
//! growing for the GIL-bound ones and not for the I/O-bound one, the right verdict kinds, and
//! the contained process with its container id; a process killed mid-run leaves no series.
//! Needs root (unshare, cgroups) and `prometheus`; skipped loudly without them.

#[path = "common/capture.rs"]
mod capture;
mod common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A child process killed (and reaped) on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn get(url: &str) -> Option<String> {
    ureq::get(url).call().ok()?.body_mut().read_to_string().ok()
}

/// A Prometheus server scraping the agent every second.
struct Prometheus {
    _server: Killed,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(agent_port: u16) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: gilscope\n    static_configs:\n      - targets: ['127.0.0.1:{agent_port}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let server = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus");
        Prometheus {
            _server: Killed(server),
            port,
            _dir: dir,
        }
    }

    /// An instant query's answer, as Prometheus's API gives it (`Null` when there is none).
    fn answer(&self, expr: &str) -> Value {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        ureq::get(&url)
            .config()
            .http_status_as_error(false)
            .build()
            .query("query", expr)
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or(Value::Null)
    }

    /// An instant query's series: each one's labels and value.
    fn query(&self, expr: &str) -> Vec<(HashMap<String, String>, f64)> {
        let value = self.answer(expr);
        value["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|series| {
                let labels = series["metric"]
                    .as_object()?
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect();
                let number = series["value"][1].as_str()?.parse().ok()?;
                Some((labels, number))
            })
            .collect()
    }

    /// `expr`'s value per `pid` label.
    fn by_pid(&self, expr: &str) -> HashMap<u32, f64> {
        self.query(expr)
            .into_iter()
            .filter_map(|(labels, v)| Some((labels.get("pid")?.parse().ok()?, v)))
            .collect()
    }

    /// The current verdict kind per pid.
    fn verdicts(&self) -> HashMap<u32, String> {
        self.query("gilscope_verdict == 1")
            .into_iter()
            .filter_map(|(labels, _)| {
                Some((
                    labels.get("pid")?.parse().ok()?,
                    labels.get("kind")?.clone(),
                ))
            })
            .collect()
    }
}

/// A cgroup named as Docker names a container's (`docker-ID.scope`), removed on drop.
struct ContainerCgroup {
    dir: PathBuf,
    id: String,
}

impl ContainerCgroup {
    fn create() -> Option<ContainerCgroup> {
        // cgroup v2 (alone, or the hybrid layout's unified tree), else v1's pids controller.
        let root = [
            "/sys/fs/cgroup/unified",
            "/sys/fs/cgroup/pids",
            "/sys/fs/cgroup",
        ]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("cgroup.procs").exists())?;
        let id = format!(
            "{:064x}",
            u128::from(std::process::id()) * 0x9e37_79b9_7f4a_7c15
        );
        let id = id[id.len() - 64..].to_string();
        let dir = root.join(format!("docker-{id}.scope"));
        std::fs::create_dir(&dir).ok()?;
        Some(ContainerCgroup { dir, id })
    }
}

impl Drop for ContainerCgroup {
    fn drop(&mut self) {
        // Its process was killed: the directory empties as the kernel reaps it.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Polls `check` until it passes or `limit` runs out; the last failure is returned.
fn eventually(
    limit: Duration,
    mut check: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        match check() {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

#[test]
fn prometheus_sees_gil_wait_verdicts_and_containers() {
    let _live = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    if !is_root() {
        return common::skip("the agent test needs root (unshare, cgroups): not tested");
    }
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        return common::skip(
            "prometheus is not installed (Debian's `prometheus`): the agent test did not run",
        );
    }
    let Some(python) = common::python("3.12") else {
        return common::skip("CPython 3.12 is not installed: the agent test did not run");
    };
    let Some(cgroup) = ContainerCgroup::create() else {
        return common::skip("cannot create a cgroup: the agent test did not run");
    };
    let seconds = "90";
    let gil_bound = Killed(
        Command::new(&python)
            .arg(common::workload("cpu_threads.py"))
            .arg(seconds)
            .spawn()
            .unwrap(),
    );
    let io_bound = Killed(
        Command::new(&python)
            .arg(common::workload("io_threads.py"))
            .arg(seconds)
            .env("OTEL_SERVICE_NAME", "storage-api")
            .env("TEAM", "storage \"blue\"")
            .spawn()
            .unwrap(),
    );
    let unshare = Killed(
        Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "sh", "-c"])
            .arg(r#"echo 0 > "$CG/cgroup.procs" && exec "$PY" "$@""#)
            .arg("sh")
            .arg(common::workload("cpu_threads.py"))
            .arg(seconds)
            .env("CG", &cgroup.dir)
            .env("PY", &python)
            .spawn()
            .unwrap(),
    );
    let contained = common::python_child(unshare.0.id());
    let (gil_pid, io_pid) = (gil_bound.0.id(), io_bound.0.id());

    let pyroscope = capture::Capture::start(capture::Answer::Ok);
    let agent_port = free_port();
    let agent_log = tempfile::NamedTempFile::new().unwrap();
    let agent = Killed(
        common::gilscope()
            .args(["agent", "--window", "3", "--discover-every", "1"])
            .args(["--env-label", "TEAM"])
            .args(["--match", r"tests/workloads/(cpu|io)_threads\.py"])
            .arg("--listen")
            .arg(format!("127.0.0.1:{agent_port}"))
            .args(["--duration", "80"])
            .args(["--pyroscope", &pyroscope.url(), "--tag", "cluster=test"])
            .stderr(agent_log.reopen().unwrap())
            .spawn()
            .unwrap(),
    );
    let agent_said = || std::fs::read_to_string(agent_log.path()).unwrap_or_default();
    let prometheus = Prometheus::start(agent_port);

    // Every process watched, each with the verdict its workload calls for.
    let expected = [
        (gil_pid, "gil_contention"),
        (io_pid, "io_bound"),
        (contained, "gil_contention"),
    ];
    let verdicts = eventually(Duration::from_secs(40), || {
        let now = prometheus.verdicts();
        for (pid, kind) in expected {
            if now.get(&pid).map(String::as_str) != Some(kind) {
                return Err(format!(
                    "verdicts by pid {now:?}, expected {expected:?}; the agent said: {}",
                    agent_said()
                ));
            }
        }
        Ok(())
    });
    assert_eq!(verdicts, Ok(()));

    // gil_wait thread-seconds grow for the GIL-bound processes (4 threads waiting most of
    // the time), hardly for the I/O-bound one: over 10 s, at least two 3 s windows counted.
    let query = r#"sum by (pid) (increase(gilscope_state_seconds_total{state="gil_wait"}[10s]))"#;
    let mut growth = HashMap::new();
    let grew = eventually(Duration::from_secs(30), || {
        growth = prometheus.by_pid(query);
        for pid in [gil_pid, contained] {
            let grown = growth.get(&pid).copied().unwrap_or(0.0);
            if grown <= 8.0 {
                return Err(format!(
                    "gil_wait grew {grown} thread-seconds in 10 s for {pid}: {growth:?}"
                ));
            }
        }
        Ok(())
    });
    assert_eq!(grew, Ok(()));
    let io_grown = growth.get(&io_pid).copied().unwrap_or(0.0);
    assert!(
        io_grown < 1.0,
        "the I/O-bound process's gil_wait grew {io_grown}: {growth:?}"
    );

    // Who each process is: the service and label from the I/O-bound one's environment, the
    // contained one's container id under its host PID.
    let info = prometheus.query("gilscope_process_info");
    let labels_of = |pid: u32| {
        info.iter()
            .find(|(labels, _)| labels.get("pid") == Some(&pid.to_string()))
            .map(|(labels, _)| labels.clone())
            .unwrap_or_else(|| panic!("no process_info for {pid}: {info:?}"))
    };
    let io_labels = labels_of(io_pid);
    assert_eq!(
        io_labels.get("service").map(String::as_str),
        Some("storage-api")
    );
    assert_eq!(
        io_labels.get("team").map(String::as_str),
        Some("storage \"blue\"")
    );
    assert_eq!(
        labels_of(gil_pid).get("service").map(String::as_str),
        Some("cpu_threads")
    );
    let contained_labels = labels_of(contained);
    assert_eq!(contained_labels.get("container_id"), Some(&cgroup.id));
    assert_eq!(
        labels_of(gil_pid).get("container_id"),
        None,
        "a host process has none"
    );
    let watched = prometheus.query("gilscope_processes");
    assert_eq!(watched.first().map(|(_, v)| *v), Some(3.0), "{watched:?}");
    let agent_cpu = prometheus.query("rate(gilscope_agent_cpu_seconds_total[10s])");
    assert!(!agent_cpu.is_empty(), "the agent's own CPU is served");

    // Every query of the Grafana dashboard is valid PromQL over these series, and finds data.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/gilscope-dashboard.json"),
        )
        .unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "10s")
                .replace("$service", ".*");
            let answer = prometheus.answer(&expr);
            assert_eq!(answer["status"], "success", "{expr}: {answer}");
            let found = answer["data"]["result"].as_array().map_or(0, Vec::len);
            assert!(found > 0, "panel {}: {expr} finds nothing", panel["title"]);
        }
    }

    // The JSON listing agrees, and serves each process's last report.
    let listing: Value =
        serde_json::from_str(&get(&format!("http://127.0.0.1:{agent_port}/processes")).unwrap())
            .unwrap();
    let listed: Vec<u64> = listing["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["pid"].as_u64())
        .collect();
    assert_eq!(listed.len(), 3, "{listing}");
    let report: Value = serde_json::from_str(
        &get(&format!(
            "http://127.0.0.1:{agent_port}/processes/{gil_pid}"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(report["schema"], "gilscope.report/1");
    assert_eq!(report["verdict"]["kind"], "gil_contention");

    // Each window's profiles went to Pyroscope, one series per process, labelled as the
    // metrics are; the GIL-bound process's samples are mostly gil_wait.
    assert!(
        pyroscope.wait_for(2, Duration::from_secs(10)),
        "no push arrived"
    );
    let requests = pyroscope.requests();
    let mut series_of = HashMap::new();
    for request in &requests {
        for series in request.push_request().series {
            let pid: u32 = series.label("pid").unwrap().parse().unwrap();
            series_of.insert(pid, series);
        }
    }
    for pid in [gil_pid, io_pid, contained] {
        let series = series_of
            .get(&pid)
            .unwrap_or_else(|| panic!("no series for {pid}"));
        assert_eq!(series.label("cluster"), Some("test"));
        assert_eq!(series.label("__name__"), Some("wall"));
    }
    assert_eq!(
        series_of[&io_pid].label("service_name"),
        Some("storage-api")
    );
    assert_eq!(series_of[&io_pid].label("team"), Some("storage \"blue\""));
    assert_eq!(
        series_of[&contained].label("container_id"),
        Some(cgroup.id.as_str())
    );
    let profile = capture::profile_of(&series_of[&gil_pid].samples[0].raw_profile);
    let states: Vec<(String, i64)> = profile
        .sample
        .iter()
        .filter_map(|sample| {
            let state = sample
                .label
                .iter()
                .find(|l| profile.string(l.key) == "state")?;
            Some((profile.string(state.str).to_string(), sample.value[0]))
        })
        .collect();
    let total: i64 = states.iter().map(|(_, n)| n).sum();
    let waiting: i64 = states
        .iter()
        .filter(|(s, _)| s == "gil_wait")
        .map(|(_, n)| n)
        .sum();
    assert!(
        total > 0 && waiting as f64 > 0.3 * total as f64,
        "gil_wait {waiting} of {total} samples pushed for the GIL-bound process"
    );

    // A target killed mid-run: its series go, the others stay.
    drop(io_bound);
    let gone = eventually(Duration::from_secs(10), || {
        let metrics = get(&format!("http://127.0.0.1:{agent_port}/metrics")).unwrap_or_default();
        let io_series = format!("pid=\"{io_pid}\"");
        let gil_series = format!("pid=\"{gil_pid}\"");
        if metrics.contains(&io_series) || !metrics.contains(&gil_series) {
            return Err(metrics);
        }
        Ok(())
    });
    assert!(gone.is_ok(), "the killed process's series stay: {gone:?}");
    drop(agent);
    drop(unshare);
    // SAFETY: kill has no memory preconditions; the namespace's init takes it down.
    unsafe { libc::kill(contained as libc::pid_t, libc::SIGKILL) };
    drop(gil_bound);
    drop(cgroup);
}

/// The pids `/processes` lists.
fn listed(agent_port: u16) -> Vec<u32> {
    get(&format!("http://127.0.0.1:{agent_port}/processes"))
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|listing| {
            listing["processes"].as_array().map(|ps| {
                ps.iter()
                    .filter_map(|p| p["pid"].as_u64().map(|pid| pid as u32))
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// A program that prepares for 3 s, then maps CPU work over a forked pool of two for 5 s,
/// closes it and idles: the agent must watch the workers while they live, and let them go.
const POOL_PROGRAM: &str = r#"
# agent-churn
import multiprocessing, os, time
def burn(n):
    return sum(i * i for i in range(n))
if __name__ == "__main__":
    time.sleep(3)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        end = time.monotonic() + 5
        while time.monotonic() < end:
            pool.map(burn, [200_000] * 8)
    print("pool closed", flush=True)
    time.sleep(60)
"#;

#[test]
fn processes_that_fork_exec_and_exit() {
    let _live = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(python) = common::python("3.12") else {
        return common::skip("CPython 3.12 is not installed: the agent churn test did not run");
    };
    let mut pool = Killed(
        Command::new(&python)
            .args(["-c", POOL_PROGRAM])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // A shell that becomes Python after a while keeps its pid: the agent first finds a shell.
    let exec = Killed(
        Command::new("sh")
            .arg("-c")
            .arg(
                r#"sleep 2; exec "$PY" -c 'import time  # agent-churn
time.sleep(60)'"#,
            )
            .env("PY", &python)
            .spawn()
            .unwrap(),
    );
    let agent_port = free_port();
    let _agent = Killed(
        common::gilscope()
            .args(["agent", "--window", "3", "--discover-every", "0.5"])
            .args(["--match", "agent-churn", "--duration", "40"])
            .arg("--listen")
            .arg(format!("127.0.0.1:{agent_port}"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (parent, shell) = (pool.0.id(), exec.0.id());
    let children = || {
        std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
            .collect::<Vec<u32>>()
    };
    // While the pool works: its parent and both workers are watched, and the exec'd shell.
    let mut workers = Vec::new();
    let during = eventually(Duration::from_secs(12), || {
        let now = listed(agent_port);
        workers = children();
        let all = [parent, shell]
            .iter()
            .chain(&workers)
            .all(|pid| now.contains(pid));
        if workers.len() >= 2 && all {
            Ok(())
        } else {
            Err(format!(
                "listed {now:?}; parent {parent}, workers {workers:?}, exec'd {shell}"
            ))
        }
    });
    assert_eq!(during, Ok(()));
    // After the pool closed: the workers are let go, the parent and the exec'd one stay.
    let mut out = std::io::BufReader::new(pool.0.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "pool closed");
    let after = eventually(Duration::from_secs(8), || {
        let now = listed(agent_port);
        let workers_gone = workers.iter().all(|pid| !now.contains(pid));
        if workers_gone && now.contains(&parent) && now.contains(&shell) {
            Ok(())
        } else {
            Err(format!(
                "listed {now:?} after the pool closed; workers were {workers:?}"
            ))
        }
    });
    assert_eq!(after, Ok(()));
}
