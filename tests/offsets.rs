//! The per-version offsets, checked on each installed interpreter.
//!
//! The GIL: a target sets a distinctive switch interval and spins on its main thread;
//! gilscope must find that interval at the GIL's first field, see it locked, and map
//! `last_holder` to the very OS thread Python reports.
//!
//! The frames: gilscope's own stack walk must give, frame for frame, what py-spy's gives on
//! the same stopped process.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use gilscope::sampler::cpython::debug_offsets::DebugOffsets;
use gilscope::sampler::cpython::frames::{FrameWalker, MAX_FRAMES_WALKED};
use gilscope::sampler::cpython::gil::{GilLocator, ThreadRef};
use gilscope::sampler::cpython::layout::Layout;
use gilscope::sampler::cpython::runtime;
use gilscope::sampler::cpython::versions::fixed_offsets;
use gilscope::sampler::memory::{ProcessMemory, ReadMemory};
use gilscope::sampler::namespace::TargetTid;
use gilscope::sampler::pthread::PthreadTidOffset;

const TARGET: &str = r#"
import ctypes, sys, threading, time
sys.setswitchinterval(0.0123)
rt = ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, "_PyRuntime"))
tid = threading.get_native_id() if hasattr(threading, "get_native_id") else ctypes.CDLL(None).syscall(186)
print(rt, tid, sys.version_info[0], sys.version_info[1], flush=True)
end = time.time() + 20
while time.time() < end:
    pass
"#;

/// Starts `python -c code` and returns it with the first line it prints, once it has.
fn start(python: &Path, code: &str) -> (Child, String) {
    start_command(Command::new(python), code)
}

/// [`start`] with a command prepared by the caller (its environment).
fn start_command(mut command: Command, code: &str) -> (Child, String) {
    let mut child = command
        .args(["-c", code])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

/// The GIL found the way the sampler finds it: `_PyRuntime` from the ELF, and from 3.13 the
/// interpreter's own `_Py_DebugOffsets`.
fn locate(pid: u32, major: u64, minor: u64) -> GilLocator {
    let mem = ProcessMemory { pid };
    let runtime = runtime::find(pid).expect("_PyRuntime in the target's ELF");
    match DebugOffsets::read(&mem, runtime.address) {
        Ok(offsets) => {
            assert!(minor >= 13, "3.{minor} carries no debug offsets");
            assert_eq!(
                (offsets.version.major, offsets.version.minor),
                (major, minor)
            );
            GilLocator::from_debug_offsets(runtime.address, &offsets)
        }
        Err(_) => {
            assert_eq!(major, 3);
            let fixed = fixed_offsets(minor).expect("fixed offsets for every release before 3.13");
            GilLocator::fixed(runtime.address, fixed.gil, fixed.thread_id)
        }
    }
}

/// Checks one interpreter's GIL offsets; `gil_env` is `PYTHON_GIL` for a free-threaded build.
fn check_gil(version: &str, py: &Path, gil_env: Option<&str>) {
    let mut command = Command::new(py);
    if let Some(value) = gil_env {
        command.env("PYTHON_GIL", value);
    }
    let (mut child, line) = start_command(command, TARGET);
    let fields: Vec<u64> = line
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    let (runtime, native_id, major, minor) = (fields[0], fields[1] as u32, fields[2], fields[3]);
    let pid = child.id();
    let mem = ProcessMemory { pid };
    let locator = locate(pid, major, minor);
    assert_eq!(
        runtime::find(pid).map(|r| r.address),
        Some(runtime),
        "CPython {version}: _PyRuntime from the ELF"
    );
    let gil = locator.main_gil(&mem).unwrap();
    // The interval follows `int enabled` in free-threaded builds.
    let interval_at = gil + locator.layout.enabled.map_or(0, |_| 8);
    let interval = mem.read_u64(interval_at).unwrap();
    let gil_enabled = gil_env != Some("0");
    // The main thread released the GIL to print; once it spins, it holds it.
    let holder_tid = (0..50).find_map(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        let raw = locator.read(&mem, gil).ok()?;
        assert_eq!(
            raw.enabled.unwrap_or(true),
            gil_enabled,
            "CPython {version}: enabled"
        );
        if !raw.locked {
            return None;
        }
        match locator.holder(&mem, &raw)? {
            ThreadRef::Tid(tid) => Some(tid),
            ThreadRef::Pthread(pthread) => {
                PthreadTidOffset::find(pid, &mem)?.tid(&mem, pthread).ok()
            }
        }
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        interval, 12_300,
        "CPython {version}: interval at the GIL struct"
    );
    let expected = gil_enabled.then_some(TargetTid(native_id));
    assert_eq!(
        holder_tid, expected,
        "CPython {version} (PYTHON_GIL={gil_env:?}): GIL holder"
    );
}

#[test]
fn gil_offsets_match_every_installed_interpreter() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut checked = 0;
    for version in std::iter::once("3.7").chain(common::REQUIRED) {
        if let Some(py) = common::python(version) {
            check_gil(version, &py, None);
            checked += 1;
        }
    }
    for version in common::FREE_THREADED {
        if let Some(py) = common::python(version) {
            // The GIL disabled (the default), then turned on from the start.
            check_gil(version, &py, Some("0"));
            check_gil(version, &py, Some("1"));
            checked += 1;
        }
    }
    assert!(checked > 0, "no interpreter found");
}

/// Threads in a method (qualified names from 3.11), a closure, a generator, a lambda, a
/// 50-deep recursion, a spinning loop whose line moves, code compiled from a string with a
/// fake file name, and Python called back from C: from libc's `qsort` through a ctypes
/// callback, and from the builtin `map` (the C-stack shim frames of 3.12+).
const STACKS: &str = r#"
import threading, time
class Worker:
    def spin(self):
        x = 0
        while True:
            x += 1
            if x % 3:
                x += 2
def nested():
    def inner():
        time.sleep(1000)
    inner()
def gen():
    yield time.sleep(1000)
def recurse(n):
    if n == 0:
        threading.Event().wait()
    return recurse(n - 1)
exec(compile("def compiled():\n    time.sleep(1000)\n", "<fake file>", "exec"))
import ctypes
COMPARE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
def slow_compare(a, b):
    time.sleep(1000)
    return 0
def through_qsort():
    items = (ctypes.c_int * 2)(2, 1)
    ctypes.CDLL(None).qsort(items, 2, ctypes.sizeof(ctypes.c_int), COMPARE(slow_compare))
def mapped(x):
    time.sleep(1000)
targets = (Worker().spin, nested, lambda: list(gen()), lambda: recurse(50), compiled,
           through_qsort, lambda: list(map(mapped, [1])))
for target in targets:
    threading.Thread(target=target, daemon=True).start()
time.sleep(0.5)
print("ready", flush=True)
time.sleep(1000)
"#;

/// The walk's layout and the main interpreter, found as the sampler finds them.
fn own_layout(pid: u32, minor: u64) -> (Layout, u64) {
    let mem = ProcessMemory { pid };
    let runtime = runtime::find(pid).expect("_PyRuntime");
    match DebugOffsets::read(&mem, runtime.address) {
        Ok(offsets) => (
            Layout::from_debug_offsets(&offsets),
            runtime::main_interpreter(&mem, runtime.address, &offsets).expect("an interpreter"),
        ),
        Err(_) => {
            let layout = fixed_offsets(minor)
                .and_then(|fixed| fixed.frames)
                .expect("a layout for every required version");
            // Before 3.13 the main interpreter is `_PyRuntime.interpreters.main`, whose place
            // py-spy knows: the caller checks it against py-spy's.
            (layout, 0)
        }
    }
}

/// Waits until every thread of `pid` is stopped (state `T`), up to 5 s.
fn await_stopped(pid: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let stopped = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|tasks| {
                tasks.flatten().all(|task| {
                    std::fs::read_to_string(task.path().join("stat"))
                        .ok()
                        .and_then(|stat| {
                            let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
                            Some(state == "T" || state == "t")
                        })
                        .unwrap_or(true)
                })
            })
            .unwrap_or(true);
        if stopped || std::time::Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn own_frame_walk_matches_py_spy_on_every_installed_interpreter() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut checked = 0;
    for version in common::REQUIRED {
        let Some(py) = common::python(version) else {
            continue;
        };
        let minor: u64 = version[2..].parse().unwrap();
        let (mut child, _) = start(&py, STACKS);
        let pid = child.id();
        let signal = |sig: &str| {
            Command::new("kill")
                .args([sig, &pid.to_string()])
                .status()
                .unwrap()
        };
        signal("-STOP");
        // SIGSTOP is delivered to each thread in its own time: a spinning thread may run on
        // for a moment (and move a line) after `kill` returns. Wait until every one is stopped.
        await_stopped(pid);
        // The process is stopped already: py-spy need not pause it.
        let config = py_spy::Config {
            blocking: py_spy::config::LockingStrategy::NonBlocking,
            ..py_spy::Config::default()
        };
        let spy = py_spy::PythonSpy::new(pid as py_spy::Pid, &config);
        let compared = spy.map_err(|e| e.to_string()).and_then(|mut spy| {
            let theirs = spy.get_stack_traces().map_err(|e| e.to_string())?;
            let mem = ProcessMemory { pid };
            let spy_interpreter = spy.addresses.interpreter_address as u64;
            let (layout, interpreter) = own_layout(pid, minor);
            if minor >= 13 {
                assert_eq!(
                    interpreter, spy_interpreter,
                    "CPython {version}: interpreter"
                );
            }
            let mut walker = FrameWalker::new(layout, spy_interpreter);
            let ours = walker
                .walk(&mem, MAX_FRAMES_WALKED, |_| false)
                .map_err(|e| e.to_string())?;
            Ok((theirs, ours))
        });
        signal("-KILL");
        child.wait().unwrap();
        let (theirs, ours) = compared.unwrap_or_else(|e| panic!("CPython {version}: {e}"));
        assert_eq!(ours.len(), theirs.len(), "CPython {version}: threads");
        assert_eq!(
            ours.len(),
            8,
            "CPython {version}: the main thread and seven more"
        );
        for trace in &theirs {
            let thread = trace
                .os_thread_id
                .map_or(ThreadRef::Pthread(trace.thread_id), |tid| {
                    ThreadRef::Tid(TargetTid(tid as u32))
                });
            let walked = ours
                .iter()
                .find(|t| t.thread == thread)
                .unwrap_or_else(|| panic!("CPython {version}: {thread:?} not walked"));
            let theirs: Vec<(&str, &str, i32)> = trace
                .frames
                .iter()
                .map(|f| (f.name.as_str(), f.filename.as_str(), f.line))
                .collect();
            let stack = walked.stack.as_ref().unwrap();
            let ours: Vec<(&str, &str, i32)> = stack
                .frames
                .iter()
                .map(|f| (f.function.as_str(), f.file.as_str(), f.line))
                .collect();
            assert_eq!(ours, theirs, "CPython {version}: {thread:?}");
            assert_eq!(stack.depth, ours.len(), "CPython {version}: depth");
        }
        let all = format!("{ours:?}");
        let expected = [
            "spin",
            "inner",
            "gen",
            "recurse",
            "compiled",
            "<fake file>",
            "slow_compare",
            "through_qsort",
            "mapped",
        ];
        for expected in expected {
            assert!(all.contains(expected), "CPython {version}: {expected}");
        }
        checked += 1;
    }
    assert!(checked > 0, "no interpreter found");
}

/// The same threads on a free-threaded build, which py-spy cannot read: the target prints its
/// own stacks (`sys._current_frames`), then gilscope's walk must find the same frames, and
/// its thread-name reader the names `threading` gave.
#[test]
fn own_frame_walk_matches_the_targets_own_stacks_on_free_threaded_builds() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for version in common::FREE_THREADED {
        let Some(py) = common::python(version) else {
            continue;
        };
        let code = STACKS.replace("print(\"ready\", flush=True)", SELF_REPORT);
        let (mut child, line) = start(&py, &code);
        let pid = child.id();
        let reported: Vec<SelfReported> = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("CPython {version}: {e}: {line}"));
        let mem = ProcessMemory { pid };
        let runtime = runtime::find(pid).expect("_PyRuntime");
        let offsets = DebugOffsets::read(&mem, runtime.address).unwrap();
        assert!(offsets.free_threaded, "CPython {version}: free-threaded");
        let interpreter = runtime::main_interpreter(&mem, runtime.address, &offsets).unwrap();
        let layout = Layout::from_debug_offsets(&offsets);
        let names =
            gilscope::sampler::cpython::objects::ObjectReader::new(&offsets, layout.strings())
                .expect("a name reader")
                .thread_names(&mem, interpreter);
        Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .unwrap();
        await_stopped(pid);
        let ours = FrameWalker::new(layout, interpreter).walk(&mem, MAX_FRAMES_WALKED, |_| false);
        child.kill().unwrap();
        child.wait().unwrap();
        let ours = ours.unwrap();
        assert_eq!(
            ours.len(),
            8,
            "CPython {version}: the main thread and seven more"
        );
        for (tid, name, frames) in &reported {
            assert_eq!(
                names.get(&TargetTid(*tid)),
                Some(name),
                "CPython {version}: name of {tid}"
            );
            if name == "MainThread" {
                continue; // it moved on from printing
            }
            let walked = ours
                .iter()
                .find(|t| t.thread == ThreadRef::Tid(TargetTid(*tid)))
                .unwrap_or_else(|| panic!("CPython {version}: {tid} not walked"));
            let stack = walked.stack.as_ref().unwrap();
            let ours: Vec<(&str, &str)> = stack
                .frames
                .iter()
                .map(|f| (f.function.as_str(), f.file.as_str()))
                .collect();
            let theirs: Vec<(&str, &str)> = frames
                .iter()
                .map(|(function, file, _)| (function.as_str(), file.as_str()))
                .collect();
            assert_eq!(ours, theirs, "CPython {version}: {name}");
            // Lines too, but for the spinning loop, whose line moves.
            if !frames[0].0.ends_with("spin") {
                let lines: Vec<i32> = stack.frames.iter().map(|f| f.line).collect();
                let expected: Vec<i32> = frames.iter().map(|f| f.2).collect();
                assert_eq!(lines, expected, "CPython {version}: {name} lines");
            }
        }
    }
}

/// A thread as the target reports itself: native id, name, (function, file, line) frames.
type SelfReported = (u32, String, Vec<(String, String, i32)>);

/// Prints every thread but the main one as (native id, name, frames innermost first), and
/// the main thread's name, as one JSON line.
const SELF_REPORT: &str = r#"import json, sys
ids = {t.ident: t for t in threading.enumerate()}
out = []
for ident, frame in sys._current_frames().items():
    frames = []
    while frame is not None:
        frames.append((frame.f_code.co_qualname, frame.f_code.co_filename, frame.f_lineno))
        frame = frame.f_back
    t = ids[ident]
    out.append((t.native_id, t.name, frames))
print(json.dumps(out), flush=True)"#;
