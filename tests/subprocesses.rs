//! `--subprocesses`: process pools, spawned workers, child processes and asyncio loops, live
//! on every required CPython. Each workload has a known answer (see its docstring).

mod common;

use std::time::{Duration, Instant};

use common::{any_python, ensure, for_every_version_with, gilscope, workload};
use serde_json::Value;

fn processes(r: &Value) -> &Vec<Value> {
    r["processes"].as_array().expect("processes[]")
}

fn workers(r: &Value) -> Vec<&Value> {
    processes(r)
        .iter()
        .filter(|p| p["role"] == "pool worker")
        .collect()
}

fn kind(r: &Value) -> String {
    r["verdict"]["kind"].as_str().unwrap_or("").to_string()
}

/// The parent and its workers are all in the report, each with its threads.
fn pool_found(r: &Value, min_workers: usize) -> Result<(), String> {
    let ps = processes(r);
    ensure(ps[0]["role"] == "parent", || {
        format!("root role {}", ps[0]["role"])
    })?;
    let w = workers(r);
    ensure(w.len() >= min_workers, || {
        format!("{} pool workers, expected {min_workers}", w.len())
    })?;
    for p in &w {
        let pid = p["pid"].as_u64().unwrap();
        let threads = r["threads"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["pid"].as_u64() == Some(pid))
            .count();
        ensure(threads >= 1, || format!("worker {pid} has no thread rows"))?;
    }
    Ok(())
}

/// A Pool.map of a CPU function over small arguments keeps a worker busy on each core.
#[test]
fn pool_with_small_arguments_works() {
    for_every_version_with("pool_good.py", &["--subprocesses"], |r| {
        pool_found(r, 2)?;
        ensure(kind(r) == "pool_parallel", || {
            format!("verdict {}", kind(r))
        })?;
        // Two workers on two cores: measured 1.5-1.7 cores for the tree.
        let cores = r["process"]["cpu_cores_used"].as_f64().unwrap();
        ensure(cores >= 1.2, || format!("tree used {cores:.2} cores < 1.2"))?;
        let evidence = r["verdict"]["evidence"].to_string();
        ensure(evidence.contains("burn"), || {
            "the evidence names the task function `burn`".into()
        })
    });
}

/// The same pool with a 200,000-float list per task: pickling dominates (measured 70-80% of
/// the tree's on-CPU samples).
#[test]
fn pool_with_large_arguments_is_ipc_bound() {
    for_every_version_with("pool_pickle.py", &["--subprocesses"], |r| {
        pool_found(r, 2)?;
        ensure(kind(r) == "ipc_overhead", || format!("verdict {}", kind(r)))?;
        let advice = r["verdict"]["advice"].to_string();
        ensure(
            advice.contains("chunksize") && advice.contains("shared_memory"),
            || "advice names chunksize and shared_memory".into(),
        )
    });
}

/// ProcessPoolExecutor with spawn: workers exec a fresh interpreter after sampling began.
#[test]
fn spawned_executor_workers_are_followed() {
    for_every_version_with("ppe_spawn.py", &["--subprocesses"], |r| {
        pool_found(r, 2)?;
        ensure(kind(r) == "pool_parallel", || {
            format!("verdict {}", kind(r))
        })?;
        let spawned = workers(r).iter().all(|p| {
            p["command"]
                .as_str()
                .unwrap_or("")
                .contains("multiprocessing")
        });
        ensure(spawned, || {
            "spawned workers run `-c from multiprocessing...`".into()
        })
    });
}

/// An asyncio server calling time.sleep in its handler: the loop is blocked, by `handle`.
#[test]
fn asyncio_loop_blocked_by_time_sleep() {
    for_every_version_with("asyncio_blocking.py", &[], |r| {
        ensure(kind(r) == "event_loop_blocked", || {
            format!("verdict {}", kind(r))
        })?;
        let lp = &r["event_loops"][0];
        // The loop never waits: measured busy 0.99-1.00, blocked 0.95-0.99.
        let busy = lp["busy"].as_f64().unwrap_or(0.0);
        ensure(busy >= 0.8, || format!("loop busy {busy:.2} < 0.8"))?;
        let culprit = &lp["culprits"][0];
        ensure(culprit["coroutine"] == "handle", || {
            format!("culprit {culprit}")
        })?;
        let advice = r["verdict"]["advice"].to_string();
        ensure(advice.contains("asyncio.to_thread"), || {
            "advice names asyncio.to_thread".into()
        })
    });
}

/// The same server with `await asyncio.sleep`: the loop waits for events (measured 0.95-1.00).
#[test]
fn healthy_asyncio_loop_is_io_bound() {
    for_every_version_with("asyncio_healthy.py", &[], |r| {
        ensure(kind(r) == "io_bound", || format!("verdict {}", kind(r)))?;
        let busy = r["event_loops"][0]["busy"].as_f64().unwrap_or(1.0);
        ensure(busy <= 0.2, || format!("loop busy {busy:.2} > 0.2"))
    });
}

/// The children of `pid` (every thread's), from /proc.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
    {
        let path = task.unwrap().path().join("children");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        out.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    out
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// A worker killed with SIGKILL mid-run is reported as killed; the other worker and the
/// parent go on being sampled; `sleep` (not Python) is listed without stacks.
#[test]
fn a_killed_worker_is_reported_and_sampling_goes_on() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let py = any_python();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let trace = dir.path().join("t.json");
    let mut run = gilscope()
        .args(["run", "--subprocesses", "-q", "--json"])
        .arg(&json)
        .arg("--trace")
        .arg(&trace)
        .arg("--")
        .arg(&py)
        .arg(workload("process_tree.py"))
        .arg("4")
        .spawn()
        .unwrap();
    // Find the Python target, then its first Python child.
    let started = Instant::now();
    let victim = loop {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no worker appeared"
        );
        let target = children(run.id()).into_iter().next();
        let worker = target.and_then(|t| {
            children(t)
                .into_iter()
                .find(|&c| comm(c).starts_with("python"))
        });
        if let Some(w) = worker {
            break w;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(1500));
    let killed_at = started.elapsed().as_secs_f64();
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
    let status = run.wait().unwrap();
    assert!(status.success(), "gilscope exited with {status:?}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let ps = processes(&r);
    let victim_entry = ps
        .iter()
        .find(|p| p["pid"].as_u64() == Some(victim as u64))
        .unwrap_or_else(|| panic!("killed worker {victim} not in {ps:?}"));
    assert_eq!(
        victim_entry["ending"], "killed by signal 9",
        "{victim_entry}"
    );
    let survivor = ps
        .iter()
        .find(|p| {
            p["pid"].as_u64() != Some(victim as u64)
                && p["python"].is_string()
                && !p["parent"].is_null()
        })
        .expect("the other worker");
    let survivor_end = survivor["end_s"].as_f64().unwrap();
    assert!(
        survivor_end >= killed_at + 1.0,
        "the other worker was sampled until {survivor_end:.2} s, the kill was at {killed_at:.2} s"
    );
    let sleeper = ps
        .iter()
        .find(|p| p["command"].as_str().unwrap_or("").starts_with("sleep"))
        .expect("the `sleep` child is listed");
    assert!(sleeper["python"].is_null(), "{sleeper}");
    // The trace puts each process in its own group.
    let trace: Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let groups: std::collections::HashSet<u64> = trace["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "process_name")
        .filter_map(|e| e["pid"].as_u64())
        .collect();
    for p in ps {
        let pid = p["pid"].as_u64().unwrap();
        assert!(groups.contains(&pid), "no trace group for PID {pid}");
    }
}

/// Without `--subprocesses`, only the root is sampled: the contract of the plain `run`.
#[test]
fn without_the_flag_only_the_root_is_sampled() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let (output, r) = common::run_report(&any_python(), "pool_good.py", &["1"]);
    assert!(output.status.success());
    assert_eq!(processes(&r).len(), 1);
    assert_eq!(processes(&r)[0]["role"], "main");
}
