//! Targets run the way containers run them, in their own PID namespace (and mount namespace,
//! with the interpreter at a path that exists only inside), attached from outside: the
//! verdict, thread names and per-thread shares must be those of the same workload on the host.
//! Needs root (for `unshare`); skipped loudly without it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{ensure, share, threads};
use serde_json::Value;

/// Where the target's interpreter is, as the target sees it.
#[derive(Clone, Copy, PartialEq)]
enum Mounts {
    /// The host's paths.
    Shared,
    /// The interpreter's directory bind-mounted at `/mnt/gilscope-python`, its host path hidden
    /// under an empty tmpfs: the maps name files the host does not have.
    OwnInterpreterPath,
}

/// A workload running in new PID and mount namespaces; killed (with its namespace) on drop.
struct Contained {
    unshare: Child,
    /// The Python process's PID as the host sees it.
    pid: u32,
}

impl Drop for Contained {
    fn drop(&mut self) {
        // Killing the namespace's init (the Python process, `exec`'d by the shell) ends it.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        common::skip("container tests need root (unshare): not tested");
    }
    root
}

/// The directory a pyenv interpreter lives in (`.../versions/3.12.1`).
fn version_dir(python: &Path) -> PathBuf {
    python.parent().unwrap().parent().unwrap().to_path_buf()
}

fn start_contained(python: &Path, mounts: Mounts, workload: &str, args: &[&str]) -> Contained {
    let script = common::workload(workload);
    let dir = std::fs::canonicalize(version_dir(python)).unwrap();
    let real_python = std::fs::canonicalize(python).unwrap();
    // Inside, the interpreter's directory is mounted elsewhere: its executable's path in it.
    let exe = real_python
        .strip_prefix(&dir)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    assert!(
        mounts == Mounts::Shared || !exe.as_os_str().is_empty(),
        "{} lives outside {}",
        real_python.display(),
        dir.display()
    );
    let shell = match mounts {
        Mounts::Shared => r#"exec "$PY" "$@""#.to_string(),
        Mounts::OwnInterpreterPath => r#"
            set -e
            mount -t tmpfs gilscope-test /mnt
            mkdir /mnt/gilscope-python
            mount --bind "$DIR" /mnt/gilscope-python
            mount -t tmpfs gilscope-hidden "$DIR"
            export LD_LIBRARY_PATH=/mnt/gilscope-python/lib
            exec "/mnt/gilscope-python/$EXE" "$@""#
            .to_string(),
    };
    let unshare = Command::new("unshare")
        .args([
            "--mount",
            "--pid",
            "--fork",
            "--mount-proc",
            "sh",
            "-c",
            &shell,
            "sh",
        ])
        .arg(&script)
        .args(args)
        .env("PY", &real_python)
        .env("DIR", &dir)
        .env("EXE", &exe)
        .stdout(Stdio::null())
        .spawn()
        .expect("unshare");
    let pid = await_python(unshare.id());
    Contained { unshare, pid }
}

/// The host PID of the Python process `unshare` forked, once it runs Python.
fn await_python(unshare: u32) -> u32 {
    let pid = common::python_child(unshare);
    // Give the interpreter a moment to start its threads.
    std::thread::sleep(Duration::from_millis(300));
    pid
}

fn attach_report(pid: u32, options: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let output = common::gilscope()
        .args(["attach", "-q", "--duration", "2", "--json"])
        .arg(&json)
        .args(options)
        .arg(pid.to_string())
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|_| panic!("no report: {}", String::from_utf8_lossy(&output.stderr)));
    serde_json::from_str(&text).unwrap()
}

/// The workers' mean share of each state.
fn mean_states(report: &Value, prefix: &str) -> Vec<(String, f64)> {
    let workers = threads(report, prefix);
    ["gil", "gil_wait", "native", "io", "sleep", "lock"]
        .iter()
        .map(|s| {
            let mean =
                workers.iter().map(|w| share(w, &[s])).sum::<f64>() / workers.len().max(1) as f64;
            (s.to_string(), mean)
        })
        .collect()
}

/// The same checks on the host's run and the contained one: same verdict, same thread names,
/// mean shares within 0.15 of each other, and the workload's own expectation.
fn compare(host: &Value, contained: &Value, prefix: &str) -> Result<(), String> {
    ensure(
        host["verdict"]["kind"] == contained["verdict"]["kind"],
        || {
            format!(
                "verdict {} on the host, {} contained",
                host["verdict"]["kind"], contained["verdict"]["kind"]
            )
        },
    )?;
    let names = |r: &Value| {
        let mut n: Vec<String> = threads(r, prefix)
            .iter()
            .map(|t| t["name"].to_string())
            .collect();
        n.sort();
        n
    };
    ensure(
        names(host) == names(contained) && names(host).len() == 4,
        || {
            format!(
                "threads {:?} on the host, {:?} contained",
                names(host),
                names(contained)
            )
        },
    )?;
    for ((state, a), (_, b)) in mean_states(host, prefix)
        .iter()
        .zip(mean_states(contained, prefix))
    {
        ensure((a - b).abs() <= 0.15, || {
            format!("{state}: {a:.2} on the host, {b:.2} contained")
        })?;
    }
    Ok(())
}

fn host_report(python: &Path, workload: &str) -> Value {
    let mut child = Command::new(python)
        .arg(common::workload(workload))
        .arg("6")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let report = attach_report(child.id(), &[]);
    let _ = child.kill();
    let _ = child.wait();
    report
}

/// Checks `workload` on `version` contained with `mounts` against the host, retrying once.
fn check(version: &str, mounts: Mounts, workload: &str, expected: &str) {
    let Some(py) = common::python(version) else {
        return;
    };
    let checked = common::retry(2, &format!("{workload} on {version}"), || {
        let host = host_report(&py, workload);
        let target = start_contained(&py, mounts, workload, &["6"]);
        let contained = attach_report(target.pid, &[]);
        drop(target);
        compare(&host, &contained, "worker")
            .and_then(|_| {
                ensure(contained["verdict"]["kind"] == expected, || {
                    format!("verdict {}", contained["verdict"]["kind"])
                })
            })
            .map_err(|e| {
                format!(
                    "{e}\nhost: {}\ncontained: {}",
                    common::summary(&host),
                    common::summary(&contained)
                )
            })
    });
    if let Err(last) = checked {
        panic!("{workload} on CPython {version} in a container: {last}");
    }
}

/// Own PID namespace: 3.12 names threads by `native_thread_id`, 3.9 by a `pthread_t` whose
/// `tid` glibc keeps; both are the namespace's ids.
#[test]
fn a_target_in_its_own_pid_namespace_reads_as_on_the_host() {
    if !is_root() {
        return;
    }
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for version in ["3.9", "3.12", "3.15"] {
        check(version, Mounts::Shared, "cpu_threads.py", "gil_contention");
    }
}

/// Own mount namespace too, the interpreter at a path that exists only inside: `_PyRuntime`,
/// the libc's pthread layout and the stacks come from the target's own files.
#[test]
fn an_interpreter_only_the_container_has_reads_as_on_the_host() {
    if !is_root() {
        return;
    }
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    check(
        "3.9",
        Mounts::OwnInterpreterPath,
        "cpu_threads.py",
        "gil_contention",
    );
    check(
        "3.12",
        Mounts::OwnInterpreterPath,
        "cpu_threads.py",
        "gil_contention",
    );
    check(
        "3.13t",
        Mounts::OwnInterpreterPath,
        "cpu_threads.py",
        "free_threaded",
    );
}

/// A process pool inside the namespace, followed with `--subprocesses` from outside: its
/// workers are found, with their role, and the pool verdict is given.
#[test]
fn a_pool_in_a_container_gives_its_pool_verdict() {
    if !is_root() {
        return;
    }
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(py) = common::python("3.12") else {
        return;
    };
    let checked = common::retry(2, "pool in a container", || {
        let target = start_contained(&py, Mounts::OwnInterpreterPath, "pool_good.py", &["6"]);
        let report = attach_report(target.pid, &["--subprocesses"]);
        drop(target);
        let workers = report["processes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["role"] == "pool worker")
            .count();
        ensure(workers >= 2, || format!("{workers} pool workers"))
            .and_then(|_| {
                ensure(report["verdict"]["kind"] == "pool_parallel", || {
                    format!("verdict {}", report["verdict"]["kind"])
                })
            })
            .map_err(|e| format!("{e}\n{}", common::summary(&report)))
    });
    if let Err(last) = checked {
        panic!("pool in a container: {last}");
    }
}

/// A cgroup with a CPU quota of half a CPU, as `docker --cpus 0.5` makes: the target may use
/// one CPU, whatever the machine has, and the report's cores say so (v1's `cpu.cfs_quota_us`
/// or v2's `cpu.max`, whichever this machine mounts).
#[test]
fn a_cpu_limit_is_the_targets_cores() {
    if !is_root() {
        return;
    }
    let Some(py) = common::python("3.12") else {
        return;
    };
    let name = format!("gilscope-test-{}", std::process::id());
    let v1 = Path::new("/sys/fs/cgroup/cpu");
    let (dir, limit) = if v1.join("cpu.cfs_period_us").exists() {
        (v1.join(&name), ("cpu.cfs_quota_us", "50000"))
    } else {
        (
            Path::new("/sys/fs/cgroup").join(&name),
            ("cpu.max", "50000 100000"),
        )
    };
    let made = std::fs::create_dir(&dir)
        .and_then(|_| std::fs::write(dir.join(limit.0), limit.1))
        .map_err(|e| e.to_string());
    if let Err(e) = made {
        let _ = std::fs::remove_dir(&dir);
        return common::skip(&format!(
            "cannot make a CPU-limited cgroup ({e}): not tested"
        ));
    }
    let dir_text = dir.display().to_string();
    let script = format!(
        "echo $$ > {dir_text}/cgroup.procs && exec {} {} 2",
        py.display(),
        common::workload("cpu_threads.py").display()
    );
    let dir_json = tempfile::tempdir().unwrap();
    let json = dir_json.path().join("report.json");
    let output = common::gilscope()
        .args(["run", "-q", "--json"])
        .arg(&json)
        .args(["--", "sh", "-c", &script])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir(&dir);
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(&json)
            .unwrap_or_else(|_| panic!("no report: {}", String::from_utf8_lossy(&output.stderr))),
    )
    .unwrap();
    assert_eq!(
        report["process"]["cores"],
        1,
        "{}",
        common::summary(&report)
    );
}
