//! Fault injection against real targets: whatever the target does, gilscope keeps working or
//! fails with a clear message, never harms the target, and never loses the report it gathered.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

fn python() -> std::path::PathBuf {
    common::any_python()
}

/// `gilscope run --json - -q [extra] -- python -c CODE`
fn run_code(code: &str, extra: &[&str]) -> (Output, Value) {
    let output = common::gilscope()
        .args(["run", "--json", "-", "-q"])
        .args(extra)
        .arg("--")
        .arg(python())
        .args(["-c", code])
        .output()
        .unwrap();
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    (output, report)
}

/// A Python target that prints "ready" once set up, and is killed on drop.
struct Target(Child);

impl Target {
    fn start(code: &str) -> Target {
        let mut child = Command::new(python())
            .args(["-c", code])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        await_ready(&mut child);
        Target(child)
    }
    fn pid(&self) -> String {
        self.0.id().to_string()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for a child to print "ready".
fn await_ready(child: &mut Child) {
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
}

/// Sends `sig` (as `kill` spells it: `-TERM`) to `pid`.
fn signal(sig: &str, pid: u32) {
    assert!(Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

/// Waits for a gilscope started with `--json -` and returns its status, output and report.
fn finish(mut gilscope: Child) -> (std::process::ExitStatus, String, Value) {
    let status = gilscope.wait().unwrap();
    let mut stdout = String::new();
    gilscope
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let report = serde_json::from_str(&stdout).unwrap();
    (status, stdout, report)
}

fn attach_json(pid: &str, extra: &[&str]) -> (Output, Value) {
    let output = common::gilscope()
        .args(["attach", "--json", "-", "-q"])
        .args(extra)
        .arg(pid)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    (output, report)
}

#[test]
fn target_segfaults_mid_sample() {
    let _g = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let (output, report) = run_code(
        "import ctypes, time; time.sleep(0.7); ctypes.string_at(0)",
        &[],
    );
    assert_eq!(output.status.code(), Some(128 + 11));
    assert_eq!(report["ending"], "the target was killed by signal 11");
    assert!(
        report["samples"].as_u64().unwrap() > 30,
        "the samples gathered are reported"
    );
}

#[test]
fn target_exits_while_attached() {
    let _g = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let target = Target::start("import time; print('ready', flush=True); time.sleep(0.8)");
    let (output, report) = attach_json(&target.pid(), &[]);
    assert_eq!(output.status.code(), Some(0));
    // With its status when gilscope saw it before its parent reaped it.
    let ending = report["ending"].as_str().unwrap();
    assert!(
        ending == "the target exited" || ending == "the target exited with status 0",
        "{ending}"
    );
    assert!(report["samples"].as_u64().unwrap() > 20);
}

#[test]
fn sigterm_during_run_reaches_the_target() {
    let _g = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let gilscope = common::gilscope()
        .args(["run", "--json", "-", "-q", "--"])
        .arg(python())
        .args(["-c", "import time; time.sleep(30)"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    signal("-TERM", gilscope.id());
    let (status, _, report) = finish(gilscope);
    assert_eq!(status.code(), Some(128 + 15));
    assert_eq!(report["ending"], "the target was killed by signal 15");
}

#[test]
fn a_thousand_threads() {
    let _g = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let target = Target::start(
        "import threading, time\n\
         ev = threading.Event()\n\
         ts = [threading.Thread(target=ev.wait, daemon=True) for _ in range(1000)]\n\
         [t.start() for t in ts]\n\
         print('ready', flush=True)\n\
         time.sleep(60)",
    );
    let (output, report) = attach_json(&target.pid(), &["--duration", "3"]);
    assert!(output.status.success());
    let threads = report["threads"].as_array().unwrap();
    assert!(threads.len() >= 1001, "{} threads", threads.len());
    let lock_waiters = threads
        .iter()
        .filter(|t| t["states"]["lock"].as_f64().unwrap() > 0.9)
        .count();
    assert!(
        lock_waiters >= 1000,
        "{lock_waiters} threads seen waiting on the Event"
    );
    assert!(report["samples"].as_u64().unwrap() >= 20);
}

#[test]
fn thread_churn() {
    let _g = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let (output, report) = run_code(
        "import threading, time\n\
         end = time.time() + 2\n\
         n = 0\n\
         while time.time() < end:\n\
         \x20   t = threading.Thread(target=lambda: None); t.start(); t.join(); n += 1\n\
         assert n > 1000, n",
        &[],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report["threads"].as_array().unwrap().len() > 20,
        "short-lived threads are reported"
    );
    let sum_ok = report["threads"].as_array().unwrap().iter().all(|t| {
        let s: f64 = t["states"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .sum();
        (s - 1.0).abs() < 1e-9
    });
    assert!(sum_ok);
}

/// Recurses `depth` calls deep after 0.3 s (gilscope attaches first: py-spy cannot attach to
/// a stack already deeper than 4096 frames, see docs/robustness.md), then spins for 1 s.
fn recursion(depth: u32) -> String {
    format!(
        "import sys, time\n\
         sys.setrecursionlimit(20000)\n\
         time.sleep(0.3)\n\
         def down(n):\n\
         \x20   if n == 0:\n\
         \x20       end = time.time() + 1.0\n\
         \x20       while time.time() < end: pass\n\
         \x20       return 0\n\
         \x20   return down(n - 1) + 1\n\
         down({depth})"
    )
}

/// `gilscope run` of a recursion `depth` frames deep: the report, and the speedscope file.
fn recurse_with_speedscope(depth: u32) -> (Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let speedscope = dir.path().join("s.json");
    let (output, report) = run_code(
        &recursion(depth),
        &["--speedscope", speedscope.to_str().unwrap()],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (report, std::fs::read_to_string(&speedscope).unwrap())
}

/// Deep stacks are cut at MAX_STACK_DEPTH frames, with a marker frame.
#[test]
fn deep_recursion_is_truncated_with_a_marker() {
    let _g = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let (_, text) = recurse_with_speedscope(2000);
    assert!(text.contains("more frames>"), "no truncation marker");
    let file: Value = serde_json::from_str(&text).unwrap();
    let deepest = file["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_array().unwrap().len())
        })
        .max()
        .unwrap();
    assert!(
        deepest <= gilscope::sampler::MAX_STACK_DEPTH + 2,
        "stack of {deepest} frames"
    );
}

/// Past 4096 frames py-spy refuses the stack read; gilscope's own walk names the innermost
/// frames and marks the rest as at least 3584 more. The thread's state is measured either way.
#[test]
fn very_deep_recursion_is_reported_not_fatal() {
    let _g = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let (report, text) = recurse_with_speedscope(10_000);
    let main = &report["threads"][0];
    assert!(main["states"]["gil"].as_f64().unwrap() > 0.5, "{main}");
    assert!(text.contains("<3584+ more frames>"), "no truncation marker");
}

/// Odd names from compile() and exec: a fake file name with quotes and a newline, and a
/// function name of 1000 characters, are reported as they are.
#[test]
fn hostile_names_from_compile_and_exec() {
    let _g = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let (output, report) = run_code(&named(1000, "<fake \\n\\\"file\\\">"), &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let hot = report["hot"]["gil"].as_array().unwrap();
    assert!(
        hot.iter()
            .any(|h| h["function"].as_str().unwrap().len() == 1001),
        "{hot:?}"
    );
    assert!(
        hot.iter()
            .any(|h| h["file"].as_str().unwrap() == "<fake \n\"file\">"),
        "{hot:?}"
    );
}

/// Past py-spy's limits (names of 4096+ characters, file names that are not valid UTF-8)
/// py-spy skips the frame (docs/robustness.md): no crash, and the state is still measured.
#[test]
fn names_past_py_spy_limits_are_survived() {
    let _g = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for (length, file) in [(20_000, "<fake>"), (10, "<fake \\udcff>")] {
        let (output, report) = run_code(&named(length, file), &[]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let main = &report["threads"][0];
        assert!(main["states"]["gil"].as_f64().unwrap() > 0.7, "{main}");
    }
}

/// A target that runs, for a second, a function named `f` + `x` * `length`, compiled from a
/// file named `file`.
fn named(length: usize, file: &str) -> String {
    format!(
        "import time\n\
         name = 'f' + 'x' * {length}\n\
         src = 'def ' + name + '():\\n    end = time.time() + 1.0\\n    while time.time() < end: pass\\n'\n\
         ns = {{'time': time}}\n\
         exec(compile(src, '{file}', 'exec'), ns)\n\
         ns[name]()"
    )
}

#[test]
fn fork_and_exec_in_the_target() {
    let _g = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let (output, report) = run_code(
        "import os, time\n\
         for _ in range(3):\n\
         \x20   pid = os.fork()\n\
         \x20   if pid == 0:\n\
         \x20       os.execv('/bin/sleep', ['sleep', '0.2'])\n\
         \x20   os.waitpid(pid, 0)\n\
         time.sleep(0.3)",
        &[],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(report["ending"], "the target exited with status 0");
    let main = &report["threads"][0];
    assert!(
        main["states"]["idle"].as_f64().unwrap() > 0.3,
        "waiting for the child (wait4) is idle: {main}"
    );
}

/// With `--subprocesses`, children that come and go (Python forks that work and exit, `sleep`
/// execs, one that fails) are each reported with how they ended, and the run goes on.
#[test]
fn children_come_and_go_with_subprocesses() {
    let _g = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let (output, report) = run_code(
        "import os, time\n\
         for i in range(4):\n\
         \x20   pid = os.fork()\n\
         \x20   if pid == 0:\n\
         \x20       if i % 2:\n\
         \x20           os.execv('/bin/sleep', ['sleep', '0.3'])\n\
         \x20       end = time.monotonic() + 0.3\n\
         \x20       while time.monotonic() < end: pass\n\
         \x20       os._exit(i)\n\
         \x20   os.waitpid(pid, 0)\n",
        &["--subprocesses"],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(report["ending"], "the target exited with status 0");
    let children: Vec<&Value> = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| !p["parent"].is_null())
        .collect();
    assert!(children.len() >= 3, "{}", report["processes"]);
    for child in &children {
        let ending = child["ending"].as_str().unwrap_or("");
        assert!(ending.starts_with("exited"), "{child}");
    }
    let python_children = children.iter().filter(|c| c["python"].is_string()).count();
    let others = children.iter().filter(|c| c["python"].is_null()).count();
    assert!(
        python_children >= 1 && others >= 1,
        "{}",
        report["processes"]
    );
}

/// Sums the target's writable memory through /proc/PID/mem.
fn memory_checksum(pid: u32) -> u64 {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut sum: u64 = 0;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (range, perms) = (fields.next().unwrap(), fields.next().unwrap());
        if !perms.starts_with("rw") || line.contains("[vvar") {
            continue;
        }
        let (a, b) = range.split_once('-').unwrap();
        let (a, b) = (
            u64::from_str_radix(a, 16).unwrap(),
            u64::from_str_radix(b, 16).unwrap(),
        );
        let mut buf = vec![0u8; (b - a) as usize];
        if std::os::unix::fs::FileExt::read_exact_at(&mem, &mut buf, a).is_ok() {
            for (i, chunk) in buf.chunks(8).enumerate() {
                let mut w = [0u8; 8];
                w[..chunk.len()].copy_from_slice(chunk);
                sum = sum.wrapping_add(u64::from_le_bytes(w).wrapping_mul(i as u64 | 1));
            }
        }
    }
    sum
}

#[test]
fn gilscope_never_writes_to_the_target() {
    let _g = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let target = Target::start(
        "import threading, time\n\
         def spin():\n\
         \x20   while True: sum(range(1000))\n\
         [threading.Thread(target=spin, daemon=True).start() for _ in range(3)]\n\
         print('ready', flush=True)\n\
         time.sleep(60)",
    );
    let pid = target.0.id();
    // Stopped, the target cannot change its own memory: any change would be gilscope's.
    signal("-STOP", pid);
    std::thread::sleep(Duration::from_millis(100));
    let before = memory_checksum(pid);
    let (output, report) = attach_json(&pid.to_string(), &["--duration", "1"]);
    let after = memory_checksum(pid);
    signal("-CONT", pid);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report["samples"].as_u64().unwrap() > 50);
    assert_eq!(
        before, after,
        "the target's memory changed while gilscope read it"
    );
}

/// A full disk: one clear line, exit 2, and nothing half-written left behind. Needs root to
/// mount a 64 KiB tmpfs; skipped loudly otherwise.
#[test]
fn full_disk_leaves_no_half_written_file() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        common::skip("cannot mount a tmpfs (needs root): the full-disk case did not run");
        return;
    }
    let fill = std::fs::File::create(dir.path().join("fill")).unwrap();
    let _ = std::io::Write::write_all(&mut &fill, &vec![0u8; 80 << 10]);
    let report = dir.path().join("r.json");
    let output = common::gilscope()
        .arg("report")
        .arg(common::recording("cpu_threads"))
        .args(["-q", "--json"])
        .arg(&report)
        .output()
        .unwrap();
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    Command::new("umount").arg(dir.path()).status().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("No space left on device") && stderr.contains("(hint: "),
        "{stderr}"
    );
    assert_eq!(names, ["fill"], "nothing but the filler is left");
}

/// Spawns `command` again and again until the kernel gives it `pid` (by setting
/// `ns_last_pid`, as CRIU does; other processes forking at the same moment can take it first).
/// None where `ns_last_pid` cannot be written (not root, or no `CAP_SYS_ADMIN`).
fn spawn_with_pid(pid: u32, command: &mut Command) -> Option<Child> {
    for _ in 0..500 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).ok()?;
        let mut child = command.spawn().unwrap();
        if child.id() == pid {
            return Some(child);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    None
}

#[test]
fn a_reused_pid_is_never_sampled() {
    let _g = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut target = Target::start("import time; print('ready', flush=True); time.sleep(60)");
    let pid = target.0.id();
    let mut gilscope = common::gilscope()
        .args(["attach", "--json", "-", "-q", "--duration", "30"])
        .arg(pid.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    // Freeze gilscope between two samples, then let another process take the PID.
    signal("-STOP", gilscope.id());
    target.0.kill().unwrap();
    target.0.wait().unwrap();
    let impostor_code = "import threading, time\n\
        def impostor_function():\n    time.sleep(60)\n\
        threading.current_thread().name = 'impostor'\n\
        print('ready', flush=True)\n\
        impostor_function()";
    let impostor = spawn_with_pid(
        pid,
        Command::new(python())
            .args(["-c", impostor_code])
            .stdout(Stdio::piped()),
    );
    let Some(impostor) = impostor else {
        signal("-KILL", gilscope.id());
        let _ = gilscope.wait();
        eprintln!(
            "\n*** SKIPPED a_reused_pid_is_never_sampled: PID {pid} could not be reused \
             (/proc/sys/kernel/ns_last_pid needs root with CAP_SYS_ADMIN) ***\n"
        );
        return;
    };
    let mut impostor = Target(impostor);
    await_ready(&mut impostor.0);
    signal("-CONT", gilscope.id());
    let (status, stdout, report) = finish(gilscope);
    assert_eq!(status.code(), Some(0));
    let ending = report["ending"].as_str().unwrap();
    assert!(
        ending == "the target exited"
            || ending == "the target exited and its PID was reused by another process",
        "{ending}"
    );
    eprintln!("PID {pid} reused; gilscope's report ends: {ending}");
    assert!(
        report["duration_s"].as_f64().unwrap() < 20.0,
        "sampling stopped when the target went, not at --duration"
    );
    assert!(
        !stdout.contains("impostor"),
        "nothing of the process that took the PID is reported"
    );
}
