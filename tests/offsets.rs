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

use gilscope::sampler::frames::{FrameWalker, Layout, MAX_FRAMES_WALKED};
use gilscope::sampler::gil::{GilLocator, ThreadRef};
use gilscope::sampler::memory::{ProcessMemory, ReadMemory};
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
    let mut child = Command::new(python)
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

#[test]
fn gil_offsets_match_every_installed_interpreter() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut checked = 0;
    for version in ["3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13"] {
        let Some(py) = common::python(version) else {
            continue;
        };
        let (mut child, line) = start(&py, TARGET);
        let fields: Vec<u64> = line
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect();
        let (runtime, native_id, major, minor) =
            (fields[0], fields[1] as u32, fields[2], fields[3]);
        let mem = ProcessMemory { pid: child.id() };
        let locator = GilLocator::new(&mem, runtime, major, minor).unwrap();
        let gil = locator.main_gil(&mem).unwrap();
        let interval = mem.read_u64(gil).unwrap();
        // The main thread released the GIL to print; once it spins, it holds it.
        let holder_tid = (0..50).find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            let raw = locator.read(&mem, gil).ok()?;
            if !raw.locked {
                return None;
            }
            match locator.holder(&mem, &raw)? {
                ThreadRef::Tid(tid) => Some(tid),
                ThreadRef::Pthread(pthread) => PthreadTidOffset::find(child.id(), &mem)?
                    .tid(&mem, pthread)
                    .ok(),
            }
        });
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            interval, 12_300,
            "CPython {version}: interval at the GIL struct"
        );
        assert_eq!(holder_tid, Some(native_id), "CPython {version}: GIL holder");
        checked += 1;
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

#[test]
fn own_frame_walk_matches_py_spy_on_every_installed_interpreter() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut checked = 0;
    for version in common::REQUIRED {
        let Some(py) = common::python(version) else {
            continue;
        };
        let minor: u64 = version[2..].parse().unwrap();
        let layout = Layout::for_version(minor).expect("a layout for every required version");
        let (mut child, _) = start(&py, STACKS);
        let pid = child.id();
        let signal = |sig: &str| {
            Command::new("kill")
                .args([sig, &pid.to_string()])
                .status()
                .unwrap()
        };
        signal("-STOP");
        // The process is stopped already: py-spy need not pause it.
        let config = py_spy::Config {
            blocking: py_spy::config::LockingStrategy::NonBlocking,
            ..py_spy::Config::default()
        };
        let spy = py_spy::PythonSpy::new(pid as py_spy::Pid, &config);
        let compared = spy.map_err(|e| e.to_string()).and_then(|mut spy| {
            let theirs = spy.get_stack_traces().map_err(|e| e.to_string())?;
            let mem = ProcessMemory { pid };
            let mut walker = FrameWalker::new(layout, spy.addresses.interpreter_address as u64);
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
                    ThreadRef::Tid(tid as u32)
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
