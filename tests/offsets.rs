//! The per-version GIL offsets, checked on each installed interpreter: a target sets a
//! distinctive switch interval and spins on its main thread; gilscope must find that
//! interval at the GIL's first field, see it locked, and map `last_holder` to the very OS
//! thread Python reports.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

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

#[test]
fn gil_offsets_match_every_installed_interpreter() {
    let _guard = common::LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut checked = 0;
    for version in ["3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13"] {
        let Some(py) = common::python(version) else {
            continue;
        };
        let mut child = Command::new(&py)
            .args(["-c", TARGET])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
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
