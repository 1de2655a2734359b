//! Bad input: each case is one line on stderr with a hint, exit status 2, and no file left.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::gilscope;

fn one_line_error(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(lines[0].starts_with("gilscope: error: "), "{stderr}");
    assert!(lines[0].contains("(hint: "), "{stderr}");
    assert!(lines[0].contains(needle), "expected {needle:?} in {stderr}");
}

fn attach(pid: &str) -> Output {
    gilscope()
        .args(["attach", "--duration", "1", pid])
        .output()
        .unwrap()
}

#[test]
fn malformed_pids() {
    one_line_error(&attach("0"), "invalid PID 0");
    one_line_error(&attach("-5"), "invalid PID -5");
    one_line_error(&attach("99999999999"), "invalid PID");
    one_line_error(&attach("abc"), "invalid PID abc");
    one_line_error(&attach("1"), "init process");
}

#[test]
fn missing_process() {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    one_line_error(
        &attach(&pid.to_string()),
        &format!("no process with PID {pid}"),
    );
}

/// A process that has exited but is not yet reaped (a zombie) has exited; it is not a process
/// "that is not Python".
#[test]
fn a_zombie_has_exited() {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    let stat = format!("/proc/{pid}/stat");
    let zombie = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::read_to_string(&stat).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
    });
    assert!(zombie, "the child became a zombie");
    one_line_error(
        &attach(&pid.to_string()),
        &format!("process {pid} has exited"),
    );
    child.wait().unwrap();
}

#[test]
fn attaching_to_itself() {
    // `exec` keeps the shell's PID, so gilscope receives its own PID.
    let output = Command::new("sh")
        .args([
            "-c",
            &format!("exec {} attach $$", env!("CARGO_BIN_EXE_gilscope")),
        ])
        .output()
        .unwrap();
    one_line_error(&output, "gilscope itself");
}

#[test]
fn not_python() {
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let output = attach(&sleeper.id().to_string());
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    one_line_error(&output, "is not a Python process");
}

#[test]
fn static_binary_without_symbols() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("spin.c");
    std::fs::write(
        &source,
        "#include <unistd.h>\nint main(void) { sleep(30); return 0; }\n",
    )
    .unwrap();
    let binary = dir.path().join("spin");
    let built = Command::new("gcc")
        .args(["-static", "-s", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        common::skip(
            "gcc -static unavailable (Debian's libc6-dev): the static-binary case did not run",
        );
        return;
    }
    let output = gilscope()
        .arg("run")
        .arg("--")
        .arg(&binary)
        .output()
        .unwrap();
    one_line_error(&output, "is not a Python process");
}

/// A copy of the interpreter's `libpython` whose `_PyRuntime` export is renamed `_PyRuntinD`:
/// the same GNU hash (`h * 33 + c`: one more in a letter, 33 less in the next), so the dynamic
/// linker still resolves the library's own references, but no symbol of that name is left.
fn libpython_without_pyruntime(python: &Path, version: &str, dir: &Path) -> Option<()> {
    let name = format!("libpython{version}.so.1.0");
    let original = python.parent()?.parent()?.join("lib").join(&name);
    let bytes = std::fs::read(original).ok()?;
    let (from, to) = (b"\0_PyRuntime\0", b"\0_PyRuntinD\0");
    let mut renamed = bytes.clone();
    for start in 0..bytes.len() - from.len() {
        if &bytes[start..start + from.len()] == from {
            renamed[start..start + to.len()].copy_from_slice(to);
        }
    }
    (renamed != bytes).then_some(())?;
    std::fs::write(dir.join(name), renamed).ok()
}

#[test]
fn python_without_the_pyruntime_symbol() {
    for version in common::REQUIRED {
        let Some(python) = common::python(version) else {
            continue;
        };
        let dir = tempfile::tempdir().unwrap();
        if libpython_without_pyruntime(&python, version, dir.path()).is_none() {
            eprintln!("\n*** SKIP {version}: no shared libpython to rename `_PyRuntime` in ***\n");
            continue;
        }
        let started = Command::new(&python)
            .env("LD_LIBRARY_PATH", dir.path())
            .args(["-c", "import threading"])
            .status()
            .unwrap();
        assert!(started.success(), "{version} starts without `_PyRuntime`");
        let output = gilscope()
            .env("LD_LIBRARY_PATH", dir.path())
            .args(["run", "--"])
            .arg(&python)
            .args(["-c", "import time; time.sleep(30)"])
            .output()
            .unwrap();
        one_line_error(&output, "exports no `_PyRuntime` symbol");
    }
}

#[test]
fn attaching_to_a_stack_deeper_than_py_spy_reads() {
    let code = "import sys, time\n\
        sys.setrecursionlimit(20000)\n\
        def down(n):\n    return time.sleep(60) if n == 0 else down(n - 1)\n\
        down(5000)";
    let mut target = Command::new(common::any_python())
        .args(["-c", code])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let output = attach(&target.id().to_string());
    let still_running = target.try_wait().unwrap().is_none();
    let _ = target.kill();
    let _ = target.wait();
    one_line_error(&output, "could not read the Python interpreter");
    assert!(String::from_utf8_lossy(&output.stderr).contains("4096 frames deep"));
    assert!(still_running, "the target is left running");
}

#[test]
fn run_not_python_stops_the_child() {
    let output = gilscope()
        .args(["run", "--", "sleep", "30"])
        .output()
        .unwrap();
    one_line_error(&output, "is not a Python process");
}

#[test]
fn unsupported_python() {
    for version in ["2.7", "3.6"] {
        let Some(py) = common::python(version) else {
            continue;
        };
        let output = gilscope()
            .arg("run")
            .arg("--")
            .arg(&py)
            .args(["-c", "import time; time.sleep(3)"])
            .output()
            .unwrap();
        one_line_error(&output, &format!("Python {version}"));
    }
}

#[test]
fn command_not_found() {
    let output = gilscope()
        .args(["run", "--", "no-such-command-xyz"])
        .output()
        .unwrap();
    one_line_error(&output, "command not found: no-such-command-xyz");
}

#[test]
fn malformed_options() {
    let cases: &[(&[&str], &str)] = &[
        (&["run", "--rate", "0", "--", "python3"], "--rate"),
        (&["run", "--rate", "abc", "--", "python3"], "--rate"),
        (&["run", "--rate", "1e9", "--", "python3"], "--rate"),
        (&["run", "--duration", "-1", "--", "python3"], "--duration"),
        (&["run", "--duration", "0", "--", "python3"], "--duration"),
        (&["run", "--bogus", "--", "python3"], "--bogus"),
        (&["run"], "required"),
        (&["attach"], "required"),
        (&["frobnicate"], "frobnicate"),
        (&["report"], "required"),
        (&["agent", "--listen", "nowhere"], "--listen"),
        (&["agent", "--match", "("], "--match"),
        (&["agent", "--max-cpu", "0"], "--max-cpu"),
        (&["agent", "--window", "-3"], "--window"),
    ];
    for (args, needle) in cases {
        one_line_error(&gilscope().args(*args).output().unwrap(), needle);
    }
}

#[test]
fn agent_on_a_port_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = gilscope()
        .args(["agent", "--duration", "1", "--listen", &address])
        .output()
        .unwrap();
    one_line_error(&output, "cannot serve on");
}

#[test]
fn unwritable_output_fails_before_sampling() {
    let output = gilscope()
        .args([
            "run",
            "--json",
            "/nonexistent-dir/r.json",
            "--",
            "python3",
            "-c",
            "pass",
        ])
        .output()
        .unwrap();
    one_line_error(&output, "/nonexistent-dir/r.json");
}

#[test]
fn target_exiting_before_first_sample_passes_status_through() {
    let output = gilscope()
        .args(["run", "--", "sh", "-c", "exit 7"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(7));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("exited before the first sample"),
        "{stderr}"
    );
    assert!(stdout.contains("exited with status 7"), "{stdout}");
}

#[test]
fn bad_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.gilscope");
    std::fs::write(&empty, b"").unwrap();
    let report = |p: &std::path::Path| gilscope().arg("report").arg(p).output().unwrap();
    one_line_error(&report(&empty), "the file is empty");
    let garbage = dir.path().join("garbage.gilscope");
    std::fs::write(&garbage, b"this is not a recording").unwrap();
    one_line_error(&report(&garbage), "not a gilscope recording");
    let newer = dir.path().join("newer.gilscope");
    std::fs::write(&newer, b"GILSCOPE\x63\x00\x00\x00").unwrap();
    one_line_error(&report(&newer), "newer gilscope");
    let older = dir.path().join("older.gilscope");
    std::fs::write(&older, b"GILSCOPE\x01\x00\x00\x00").unwrap();
    one_line_error(&report(&older), "older gilscope");
    let corrupt = dir.path().join("corrupt.gilscope");
    std::fs::write(
        &corrupt,
        b"GILSCOPE\x02\x00\x00\x00\x03\x00\x00\x00\xff\xff\xff",
    )
    .unwrap();
    one_line_error(&report(&corrupt), "corrupt record");
    one_line_error(
        &report(&dir.path().join("missing")),
        "cannot read recording",
    );
}

#[test]
fn permission_denied_without_ptrace_rights() {
    // Needs root to drop to another user; setpriv comes with util-linux.
    let is_root = unsafe { libc_geteuid() } == 0;
    if !is_root || Command::new("setpriv").arg("--version").output().is_err() {
        common::skip("the permission test needs root and setpriv: it did not run");
        return;
    }
    let Some(py) = common::python("3.11").or_else(|| common::python("3.12")) else {
        return;
    };
    let mut target = Command::new(py)
        .args(["-c", "import time; time.sleep(30)"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_gilscope"))
        .args(["attach", "--duration", "1", &target.id().to_string()])
        .output()
        .unwrap();
    target.kill().unwrap();
    target.wait().unwrap();
    one_line_error(&output, "permission denied");
    assert!(String::from_utf8_lossy(&output.stderr).contains("CAP_SYS_PTRACE"));
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

#[test]
fn bad_pyroscope_options_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    let run = |args: &[&str]| {
        gilscope()
            .arg("run")
            .args(args)
            .arg("--")
            .args(["touch", marker.to_str().unwrap()])
            .output()
            .unwrap()
    };
    one_line_error(
        &run(&["--pyroscope", "ftp://host"]),
        "expected http://HOST:PORT",
    );
    one_line_error(
        &run(&["--pyroscope", "pyroscope:4040"]),
        "expected http://HOST:PORT",
    );
    one_line_error(
        &run(&["--pyroscope", "http://user:secret@host:4040"]),
        "PYROSCOPE_BASIC_AUTH_USER",
    );
    let url = "http://127.0.0.1:9";
    one_line_error(
        &run(&["--pyroscope", url, "--push-interval", "0"]),
        "--push-interval",
    );
    one_line_error(
        &run(&["--pyroscope", url, "--tag", "region"]),
        "expected KEY=VALUE",
    );
    one_line_error(&run(&["--pyroscope", url, "--tag", "state=x"]), "--tag");
    one_line_error(&run(&["--pyroscope", url, "--tag", "9x=1"]), "--tag");
    assert!(!marker.exists(), "no target was started");
    // The push options need the server.
    let output = run(&["--push-interval", "5"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--pyroscope"));
}
