//! Attaching: checking the maps, identifying the interpreter with py-spy and its own runtime,
//! locating the GIL.

use std::collections::{HashMap, HashSet};

use py_spy::config::LockingStrategy;
use py_spy::PythonSpy;

use crate::error::Error;
use crate::model::{GilMode, Pid, TargetInfo};

use super::cores;
use super::cpython::debug_offsets::{DebugOffsets, DebugOffsetsError};
use super::cpython::frames::FrameWalker;
use super::cpython::gil::GilLocator;
use super::cpython::layout::Layout;
use super::cpython::objects::ObjectReader;
use super::cpython::versions::fixed_offsets;
use super::memory::ProcessMemory;
use super::namespace::TidMap;
use super::procfs::{self, ProcFile};
use super::pthread::PthreadTidOffset;
use super::{cpython, NameClock, PreviousTick, ProcessSampler, PythonReader, Role, SamplerOptions};

fn py_spy_config(options: &SamplerOptions) -> py_spy::Config {
    py_spy::Config {
        blocking: if options.blocking {
            LockingStrategy::Lock
        } else {
            LockingStrategy::NonBlocking
        },
        ..py_spy::Config::default()
    }
}

/// The target's `_PyRuntime` and, from 3.13, the debug offsets it carries. A release whose
/// table gilscope does not know, or a table that reads implausibly, is refused here.
fn read_runtime(
    pid: u32,
    mem: &ProcessMemory,
) -> Result<
    (
        Option<cpython::runtime::RuntimeSymbol>,
        Option<DebugOffsets>,
    ),
    Error,
> {
    let Some(runtime) = cpython::runtime::find(pid) else {
        return Ok((None, None));
    };
    let described = match DebugOffsets::read(mem, runtime.address) {
        Ok(offsets) => Some(offsets),
        // Before 3.13: py-spy tells the version.
        Err(DebugOffsetsError::NoCookie | DebugOffsetsError::Read(_)) => None,
        Err(DebugOffsetsError::UnknownRelease { version, build }) => {
            return Err(Error::UnsupportedPython {
                version: format!("{version}{build}"),
            })
        }
        Err(e @ DebugOffsetsError::Implausible(version)) => {
            return Err(Error::DebugOffsetsUnreadable {
                pid,
                version: version.to_string(),
                detail: e.to_string(),
            })
        }
    };
    Ok((Some(runtime), described))
}

/// py-spy where it reads the build, and the version (text and minor): from py-spy, or from
/// the debug offsets where py-spy cannot read the build. py-spy does not know the
/// free-threaded object layout, yet its attach sometimes passes its checks on such a build
/// (then it reads no thread names): it is never used there.
fn identify(
    pid: u32,
    spy: anyhow::Result<PythonSpy>,
    described: Option<&DebugOffsets>,
) -> Result<(Option<PythonSpy>, String, u64), Error> {
    match (spy, described) {
        (_, Some(offsets)) if offsets.free_threaded => {
            Ok((None, offsets.version.to_string(), offsets.version.minor))
        }
        (Ok(spy), _) => {
            let v = &spy.version;
            let text = format!("{}.{}.{}", v.major, v.minor, v.patch);
            if v.major != 3 || v.minor < 7 {
                return Err(Error::UnsupportedPython { version: text });
            }
            let minor = v.minor;
            Ok((Some(spy), text, minor))
        }
        (Err(_), Some(offsets)) => Ok((None, offsets.version.to_string(), offsets.version.minor)),
        (Err(e), None) => Err(classify_spy_error(pid, e)),
    }
}

/// The GIL's locator. Without it a thread waiting for the GIL looks like any lock wait and
/// one holding it like native code: every verdict would be wrong, so refuse rather than
/// mislead.
fn locate_gil(
    pid: u32,
    runtime: Option<&cpython::runtime::RuntimeSymbol>,
    described: Option<&DebugOffsets>,
    version: &str,
    minor: u64,
) -> Result<GilLocator, Error> {
    let not_found = |detail: String| Error::GilNotFound {
        pid,
        version: version.to_string(),
        detail,
    };
    match (runtime, described) {
        (Some(rt), Some(offsets)) => Ok(GilLocator::from_debug_offsets(rt.address, offsets)),
        (Some(rt), None) => match fixed_offsets(minor) {
            Some(fixed) => Ok(GilLocator::fixed(rt.address, fixed.gil, fixed.thread_id)),
            None if minor >= 13 => Err(not_found("its `_Py_DebugOffsets` cannot be read".into())),
            None => Err(not_found(format!("CPython 3.{minor} is not supported"))),
        },
        (None, _) => Err(not_found("it exports no `_PyRuntime` symbol".into())),
    }
}

/// What the run is about, before anything Python is known: a process without Python.
fn describe(pid: u32, options: &SamplerOptions) -> TargetInfo {
    TargetInfo {
        pid: Pid(pid),
        command: procfs::read_cmdline(pid),
        python: String::new(),
        gil: GilMode::Enabled,
        gil_wait_visible: false,
        notes: Vec::new(),
        rate_hz: options.rate_hz,
        arch: std::env::consts::ARCH.into(),
        cores: cores::available_to(pid),
        started_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
    }
}

impl ProcessSampler {
    /// Attaches to the Python process `pid` without pausing it.
    pub fn attach(pid: u32, options: &SamplerOptions, role: Role) -> Result<ProcessSampler, Error> {
        check_python_maps(pid)?;
        let mem = ProcessMemory { pid };
        // py-spy first: it fails (and the caller retries) until the interpreter is loaded, so
        // its success says `_PyRuntime` is there to be read next. Reading the runtime first (to
        // skip py-spy on a free-threaded build) races a launched target's libpython loading
        // between the two looks; `identify` drops py-spy on such a build instead.
        let spy = PythonSpy::new(pid as py_spy::Pid, &py_spy_config(options));
        let (runtime, described) = read_runtime(pid, &mem)?;
        let (spy, version_text, minor) = identify(pid, spy, described.as_ref())?;
        let gil = locate_gil(
            pid,
            runtime.as_ref(),
            described.as_ref(),
            &version_text,
            minor,
        )?;
        let interpreter = match (&spy, &runtime, &described) {
            (Some(spy), _, _) => Some(spy.addresses.interpreter_address as u64),
            (None, Some(rt), Some(offsets)) => {
                cpython::runtime::main_interpreter(&mem, rt.address, offsets)
            }
            // Without py-spy a target is read only through its debug offsets (see identify).
            _ => None,
        }
        .ok_or_else(|| Error::PythonUnreadable {
            pid,
            detail: "the interpreter has not started yet".into(),
        })?;
        let layout = match &described {
            Some(offsets) => Some(Layout::from_debug_offsets(offsets)),
            None => fixed_offsets(minor).and_then(|fixed| fixed.frames),
        };
        // py-spy pauses the target for its walk in blocking mode; gilscope's walk never does.
        let walker = layout
            .filter(|_| !options.blocking || spy.is_none())
            .map(|layout| FrameWalker::new(layout, interpreter));
        let objects = match (&described, &layout) {
            (Some(offsets), Some(layout)) => ObjectReader::new(offsets, layout.strings()),
            _ => None,
        };
        let gc_flag = cpython::gc::collecting_flag(
            fixed_offsets(minor).and_then(|fixed| fixed.gc_collecting),
            runtime.as_ref().map(|rt| rt.address),
            interpreter,
            described.as_ref(),
        );
        let python = PythonReader {
            gc_flag,
            gc_was: None,
            pthread_tid: PthreadTidOffset::find(pid, &mem),
            main_gil: gil.main_gil(&mem).ok(),
            gil_ranges: Vec::new(),
            gil_ranges_read: None,
            gil_was_enabled: None,
            gil_enabled_at: None,
            spy,
            walker,
            objects,
            interpreter,
            gil,
        };
        let info = TargetInfo {
            gil: if python.gil.free_threaded {
                GilMode::Disabled
            } else {
                GilMode::Enabled
            },
            gil_wait_visible: !python.gil.free_threaded,
            notes: python.limits(options, minor, &version_text),
            python: version_text,
            ..describe(pid, options)
        };
        ProcessSampler::new(pid, role, info, Some(python), options)
    }

    /// Attaches to a process that does not run Python: its threads' kernel states, no stacks.
    pub fn attach_without_python(
        pid: u32,
        options: &SamplerOptions,
        role: Role,
        note: String,
    ) -> Result<ProcessSampler, Error> {
        let info = TargetInfo {
            notes: vec![note],
            ..describe(pid, options)
        };
        ProcessSampler::new(pid, role, info, None, options)
    }

    fn new(
        pid: u32,
        role: Role,
        info: TargetInfo,
        python: Option<PythonReader>,
        options: &SamplerOptions,
    ) -> Result<ProcessSampler, Error> {
        let tid_map = TidMap::for_process(pid);
        let mut info = info;
        if tid_map.translates() {
            info.notes.push("the target runs in its own PID namespace (a container): the thread ids in its memory are translated through /proc/PID/task/TID/status (NSpid)".into());
        }
        let gone = |_| Error::NoSuchProcess(pid);
        let process_stat = ProcFile::open(&format!("/proc/{pid}/stat")).map_err(gone)?;
        let mut buf = vec![0u8; 4096];
        let start_ticks = process_stat
            .read(&mut buf)
            .ok()
            .and_then(procfs::parse_stat)
            .ok_or(Error::NoSuchProcess(pid))?
            .start_ticks;
        Ok(ProcessSampler {
            pid,
            role,
            python,
            name_clock: NameClock::new(options.names_refresh),
            did_not_run: HashSet::new(),
            kernels: Vec::new(),
            mem: ProcessMemory { pid },
            start_ticks,
            process_stat,
            ns_per_tick: procfs::ns_per_tick(),
            threads: HashMap::new(),
            tids: Vec::new(),
            pthread_cache: HashMap::new(),
            names: HashMap::new(),
            info,
            buf,
            stack_errors: 0,
            last_stack_error: String::new(),
            previous: PreviousTick::default(),
            relist: true,
            tid_map,
            run_delays_sent_ns: None,
        })
    }
}

/// Fails fast, with a clear error, on a process that maps no Python.
fn check_python_maps(pid: u32) -> Result<(), Error> {
    let maps = match std::fs::read_to_string(format!("/proc/{pid}/maps")) {
        Ok(maps) => maps,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(Error::PermissionDenied(pid))
        }
        Err(_) => return Err(Error::NoSuchProcess(pid)),
    };
    let exited = std::fs::read(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| procfs::parse_stat(&stat))
        .is_some_and(|s| s.state == b'Z' || s.state == b'X');
    if exited {
        return Err(Error::Exited(pid));
    }
    let has_python = maps.lines().any(|line| {
        line.rsplit('/')
            .next()
            .is_some_and(|name| name.starts_with("python") || name.starts_with("libpython"))
    });
    if has_python {
        Ok(())
    } else {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "?".into());
        Err(Error::NotPython { pid, exe })
    }
}

fn classify_spy_error(pid: u32, err: anyhow::Error) -> Error {
    let text = format!("{err:#}");
    if text.contains("Permission denied") || text.contains("Operation not permitted") {
        Error::PermissionDenied(pid)
    } else {
        Error::PythonUnreadable {
            pid,
            detail: text.lines().next().unwrap_or("").to_string(),
        }
    }
}
