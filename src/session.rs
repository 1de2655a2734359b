//! One sampling run, as `run`, `attach`, `top`, `record` and the bench's evidence all do it:
//! the target attached (or launched and waited for), its process tree sampled until it ends,
//! the run's `End` record, and the exit status to pass on: a launched target's own.

use std::process::Child;
use std::time::Duration;

use crate::error::Error;
use crate::model::{Ending, Record};
use crate::sampler::tree::ProcessTree;
use crate::sampler::{ProcessSampler, RecordSink, Role, SamplerOptions};
use crate::target::{self, Launched, Mode, Signals};

/// Where the target comes from.
pub enum Source {
    Launch(Vec<String>),
    Attach(u32),
}

impl Source {
    /// A PID to attach to, else the command to launch.
    pub fn of(pid: Option<&str>, command: Vec<String>) -> Result<Source, Error> {
        Ok(match pid {
            Some(pid) => Source::Attach(target::parse_pid(pid)?),
            None => Source::Launch(command),
        })
    }
}

/// A target being sampled.
pub struct Session<'a> {
    tree: ProcessTree,
    /// The launched target, whose status only `wait` tells for sure.
    child: Option<&'a mut Child>,
    mode: Mode,
    rate_hz: f64,
    duration: Option<Duration>,
}

/// How a session on a launched program starts.
pub enum Start<'a> {
    Sampling(Box<Session<'a>>),
    /// The program exited before its interpreter could be read.
    ExitedFirst(Outcome),
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub ending: Ending,
    pub duration_s: f64,
}

impl Outcome {
    /// The run's last record.
    pub fn end_record(&self) -> Record {
        Record::End {
            ending: self.ending.clone(),
            duration_s: self.duration_s,
        }
    }

    /// The status gilscope exits with: a launched target's own (waited for, when sampling
    /// stopped before it exited: `--duration`, Ctrl-C), 0 after an attach.
    pub fn exit_code(&self, launched: Option<&mut Child>) -> i32 {
        let Some(child) = launched else {
            return 0;
        };
        if !matches!(self.ending, Ending::Exited(_) | Ending::Killed(_)) {
            if let Ok(status) = child.wait() {
                return target::exit_code_of(&target::ending_of(status));
            }
        }
        target::exit_code_of(&self.ending)
    }
}

impl<'a> Session<'a> {
    /// Attaches to the target, or launches it (into `child`) and waits for its interpreter. A
    /// launched program that cannot be profiled is stopped: gilscope leaves nothing behind.
    pub fn start(
        source: Source,
        child: &'a mut Option<Child>,
        options: &SamplerOptions,
        duration: Option<Duration>,
    ) -> Result<Start<'a>, Error> {
        match source {
            Source::Attach(pid) => Session::attach(pid, options, duration)
                .map(|session| Start::Sampling(Box::new(session))),
            Source::Launch(command) => {
                let launched = child.insert(target::launch(&command)?);
                let pid = launched.id();
                let started = Session::launched(launched, options, duration);
                if started.is_err() {
                    target::stop_pid(pid);
                }
                started
            }
        }
    }

    /// Attaches to a running process.
    pub fn attach(
        pid: u32,
        options: &SamplerOptions,
        duration: Option<Duration>,
    ) -> Result<Session<'a>, Error> {
        let sampler = ProcessSampler::attach(pid, options, Role::Root)?;
        Ok(Session::new(
            sampler,
            None,
            Mode::Attached,
            options,
            duration,
        ))
    }

    /// Waits for a launched program's interpreter and attaches to it. On an error the program
    /// is left as it is: the caller decides whether it runs on.
    pub fn launched(
        child: &'a mut Child,
        options: &SamplerOptions,
        duration: Option<Duration>,
    ) -> Result<Start<'a>, Error> {
        match target::attach_launched(child, options)? {
            Launched::Attached(sampler) => {
                let mode = Mode::Launched { pid: child.id() };
                Ok(Start::Sampling(Box::new(Session::new(
                    *sampler,
                    Some(child),
                    mode,
                    options,
                    duration,
                ))))
            }
            Launched::ExitedFirst(status) => Ok(Start::ExitedFirst(Outcome {
                ending: target::ending_of(status),
                duration_s: 0.0,
            })),
        }
    }

    fn new(
        sampler: ProcessSampler,
        child: Option<&'a mut Child>,
        mode: Mode,
        options: &SamplerOptions,
        duration: Option<Duration>,
    ) -> Session<'a> {
        Session {
            tree: ProcessTree::new(sampler, options.clone()),
            child,
            mode,
            rate_hz: options.rate_hz,
            duration,
        }
    }

    /// Samples until the target ends, the duration elapses or a signal says stop; then sends
    /// the `End` record. A launched target that exited is reaped, and its status is the ending.
    pub fn run(self, signals: &Signals, sink: &mut impl RecordSink) -> std::io::Result<Outcome> {
        let Session {
            mut tree,
            child,
            mode,
            rate_hz,
            duration,
        } = self;
        let (mut ending, duration_s) =
            target::sample_loop(&mut tree, rate_hz, duration, &mode, signals, sink)?;
        drop(tree);
        let target_ended = matches!(
            ending,
            Ending::TargetGone | Ending::Exited(_) | Ending::Killed(_)
        );
        if let (Some(child), true) = (child, target_ended) {
            if let Ok(status) = child.wait() {
                ending = target::ending_of(status);
            }
        }
        let outcome = Outcome { ending, duration_s };
        sink.record(&outcome.end_record())?;
        Ok(outcome)
    }
}
