//! The target process: launching it or attaching to it, the sampling loop, and signals.
//!
//! `attach`: Ctrl-C or SIGTERM end sampling; the target is left running untouched.
//! `run`: Ctrl-C reaches the target from the terminal as it would without gilscope, so
//! gilscope ignores it and reports when the target exits; SIGTERM and SIGHUP sent to gilscope
//! are passed on to the target.

use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::model::{Ending, Record};
use crate::sampler::tree::ProcessTree;
use crate::sampler::{ProcessSampler, RecordSink, Role, SamplerOptions};

/// Signals received by gilscope, as flags the loop polls.
pub struct Signals {
    interrupt: Arc<AtomicBool>,
    terminate: Arc<AtomicBool>,
    hangup: Arc<AtomicBool>,
    /// Set by gilscope itself (the live view's quit key): stop sampling, in either mode.
    quit: Arc<AtomicBool>,
}

impl Signals {
    pub fn install() -> std::io::Result<Signals> {
        let signals = Signals {
            interrupt: Arc::new(AtomicBool::new(false)),
            terminate: Arc::new(AtomicBool::new(false)),
            hangup: Arc::new(AtomicBool::new(false)),
            quit: Arc::new(AtomicBool::new(false)),
        };
        signal_hook::flag::register(signal_hook::consts::SIGINT, signals.interrupt.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGTERM, signals.terminate.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGHUP, signals.hangup.clone())?;
        Ok(signals)
    }

    /// The flag that stops sampling when set.
    pub fn quit_flag(&self) -> Arc<AtomicBool> {
        self.quit.clone()
    }
}

/// What the sampling loop is attached to, which decides what signals mean.
pub enum Mode {
    Attached,
    Launched { pid: u32 },
}

/// Parses and checks a PID given by the user.
pub fn parse_pid(text: &str) -> Result<u32, Error> {
    let invalid = || Error::InvalidPid(text.to_string());
    let pid: i64 = text.trim().parse().map_err(|_| invalid())?;
    let pid_max: i64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4_194_304);
    if pid <= 0 || pid > pid_max {
        return Err(invalid());
    }
    let pid = pid as u32;
    if pid == 1 {
        return Err(Error::RefusedTarget {
            pid,
            what: "the init process",
        });
    }
    if pid == std::process::id() {
        return Err(Error::RefusedTarget {
            pid,
            what: "gilscope itself",
        });
    }
    Ok(pid)
}

/// Starts `command` with the terminal and environment of gilscope.
pub fn launch(command: &[String]) -> Result<Child, Error> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| Error::CommandNotFound(String::new()))?;
    Command::new(program).args(args).spawn().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::CommandNotFound(program.clone())
        } else {
            Error::Launch {
                command: program.clone(),
                source,
            }
        }
    })
}

/// How long a launched program may take to start its interpreter.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a launched program may run without mapping Python (e.g. `env python3` exec'ing).
const NOT_PYTHON_GRACE: Duration = Duration::from_secs(1);

/// What waiting for a launched program's interpreter gave.
pub enum Launched {
    Attached(Box<ProcessSampler>),
    /// It exited first.
    ExitedFirst(ExitStatus),
}

/// Attaches to a program gilscope launched, waiting for its interpreter to start.
pub fn attach_launched(child: &mut Child, options: &SamplerOptions) -> Result<Launched, Error> {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Ok(Launched::ExitedFirst(status));
        }
        let err = match ProcessSampler::attach(child.id(), options, Role::Root) {
            Ok(sampler) => return Ok(Launched::Attached(Box::new(sampler))),
            Err(e) => e,
        };
        let retry = match &err {
            Error::NotPython { .. } if options.subprocesses => {
                if started.elapsed() < NOT_PYTHON_GRACE {
                    true
                } else {
                    // A shell or launcher: its Python descendants are what matters.
                    return ProcessSampler::attach_without_python(
                        child.id(),
                        options,
                        Role::Root,
                        "the launched program is not Python: its Python descendants are sampled"
                            .into(),
                    )
                    .map(|sampler| Launched::Attached(Box::new(sampler)));
                }
            }
            Error::NotPython { .. } => started.elapsed() < NOT_PYTHON_GRACE,
            Error::PythonUnreadable { .. } | Error::NoSuchProcess(_) => {
                started.elapsed() < STARTUP_TIMEOUT
            }
            _ => false,
        };
        if !retry {
            if let Ok(Some(status)) = child.try_wait() {
                return Ok(Launched::ExitedFirst(status));
            }
            return Err(err);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Ends a launched child gilscope cannot profile: politely, then firmly, and reaps it.
pub fn stop_pid(pid: u32) {
    let pid = pid as libc::pid_t;
    let reaped = || {
        let mut status = 0;
        // SAFETY: waitpid on our own child, with a valid pointer to a local.
        unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) == pid }
    };
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if reaped() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: as above.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

/// The ending that an exit status means.
pub fn ending_of(status: ExitStatus) -> Ending {
    use std::os::unix::process::ExitStatusExt;
    Ending::of_wait_status(status.into_raw())
}

/// The exit status gilscope passes on for a target's ending: its code, or 128 + signal.
pub fn exit_code_of(ending: &Ending) -> i32 {
    match ending {
        Ending::Exited(code) => *code,
        Ending::Killed(sig) => 128 + sig,
        _ => 0,
    }
}

/// Samples until the target ends, `duration` elapses, or a signal says stop. Emits the
/// `Target` record first and `Late` whenever ticks are missed; the caller emits `End` once it
/// knows how the target ended.
pub fn sample_loop(
    tree: &mut ProcessTree,
    rate_hz: f64,
    duration: Option<Duration>,
    mode: &Mode,
    signals: &Signals,
    sink: &mut impl RecordSink,
) -> std::io::Result<(Ending, f64)> {
    sink.record(&Record::Target(tree.root().target_info().clone()))?;
    let interval = Duration::from_secs_f64(1.0 / rate_hz);
    let start = Instant::now();
    let mut next = start;
    let ending = loop {
        if signals.quit.load(Ordering::Relaxed) {
            break Ending::Interrupted;
        }
        match mode {
            Mode::Attached => {
                if signals.interrupt.load(Ordering::Relaxed)
                    || signals.terminate.load(Ordering::Relaxed)
                    || signals.hangup.load(Ordering::Relaxed)
                {
                    break Ending::Interrupted;
                }
            }
            Mode::Launched { pid } => {
                for (flag, sig) in [
                    (&signals.terminate, libc::SIGTERM),
                    (&signals.hangup, libc::SIGHUP),
                ] {
                    if flag.swap(false, Ordering::Relaxed) {
                        // SAFETY: kill has no memory-safety preconditions.
                        unsafe { libc::kill(*pid as libc::pid_t, sig) };
                    }
                }
                // Ctrl-C went to the whole foreground group, the target included.
                signals.interrupt.store(false, Ordering::Relaxed);
            }
        }
        let elapsed = start.elapsed();
        if duration.is_some_and(|d| elapsed >= d) {
            break Ending::DurationElapsed;
        }
        if let Some(ending) = tree.tick(elapsed.as_nanos() as u64, sink)? {
            break ending;
        }
        next += interval;
        let now = Instant::now();
        if now > next {
            let behind = ((now - next).as_secs_f64() / interval.as_secs_f64()) as u32;
            if behind > 0 {
                next += interval * behind;
                // As they happen, so a live view can count them (the aggregator sums them).
                sink.record(&Record::Late { count: behind })?;
            }
        } else {
            std::thread::sleep(next - now);
        }
    };
    if let Some(errors) = tree.stack_errors() {
        sink.record(&errors)?;
    }
    Ok((ending, start.elapsed().as_secs_f64()))
}
