//! One sampling run, as `run`, `attach`, `top`, `record` and the bench's evidence all do it:
//! the target attached (or launched and waited for), its process tree sampled until it ends,
//! and the run's `End` record, with a launched target's own exit status where it has one.

use std::process::Child;
use std::time::Duration;

use crate::error::Error;
use crate::model::{Ending, Record};
use crate::sampler::tree::ProcessTree;
use crate::sampler::{ProcessSampler, RecordSink, Role, SamplerOptions};
use crate::target::{self, Launched, Mode, Signals};

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
    ExitedFirst(Ending),
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub ending: Ending,
    pub duration_s: f64,
}

impl<'a> Session<'a> {
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
            Launched::ExitedFirst(status) => Ok(Start::ExitedFirst(target::ending_of(status))),
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
        sink.record(&Record::End {
            ending: ending.clone(),
            duration_s,
        })?;
        Ok(Outcome { ending, duration_s })
    }
}
