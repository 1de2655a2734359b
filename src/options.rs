//! The command line, checked in one place: clap's types become validated options (a PID, a
//! rate, a duration, output directories that exist, a push configuration) before the rest of
//! the program sees them, as samply and hyperfine do (`Options::from_cli_arguments`); `app`
//! only wires the stages.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::agent::{AgentOptions, EnvLabels, Filter};
use crate::bench::BenchPlan;
use crate::cli::{AgentArgs, BenchArgs, Cli, ColorWhen, Command, JsonTo, OutputArgs, SamplingArgs};
use crate::error::Error;
use crate::gate::Gate;
use crate::output;
use crate::push::{Credentials, PushConfig};
use crate::sampler::SamplerOptions;
use crate::session::Source;
use crate::target;

/// What to do, checked, and the colour of what it prints.
pub struct Options {
    pub color: ColorWhen,
    pub task: Task,
}

/// The command, its options checked.
pub enum Task {
    /// `run`, `attach`, `top`, `record`.
    Profile(Box<Profiling>),
    Bench(Bench),
    Diff {
        before: PathBuf,
        after: PathBuf,
        json: Option<JsonTo>,
        quiet: bool,
    },
    Report {
        file: PathBuf,
        output: OutputArgs,
        gate: Gate,
    },
    Agent(Box<AgentOptions>),
    Completions(clap_complete::Shell),
    Man,
}

/// One sampling run: what to sample, how, what to write and what to gate on.
pub struct Profiling {
    pub source: Source,
    pub sampling: Sampling,
    pub output: OutputArgs,
    /// `gilscope record`'s file.
    pub recording: Option<PathBuf>,
    pub gate: Gate,
    pub live: Live,
    pub push: Option<PushConfig>,
}

/// `gilscope bench`: the plan, and where to export the results.
pub struct Bench {
    pub plan: BenchPlan,
    pub export_json: Option<PathBuf>,
    pub export_markdown: Option<PathBuf>,
}

impl Options {
    pub fn from_cli_arguments(cli: Cli) -> Result<Options, Error> {
        let task = match cli.command {
            Command::Run {
                sampling,
                output,
                gate,
                push,
                command,
            } => Profiling {
                gate: gate.gate(),
                push: PushConfig::from_args(&push, Credentials::from_env())?,
                ..Profiling::new(Source::Launch(command), &sampling, output, None)?
            }
            .into(),
            Command::Attach {
                sampling,
                output,
                gate,
                push,
                pid,
            } => Profiling {
                gate: gate.gate(),
                push: PushConfig::from_args(&push, Credentials::from_env())?,
                ..Profiling::new(
                    Source::Attach(target::parse_pid(&pid)?),
                    &sampling,
                    output,
                    None,
                )?
            }
            .into(),
            Command::Top {
                sampling,
                output,
                pid,
                command,
            } => {
                if !std::io::stdout().is_terminal() {
                    return Err(Error::NotATerminal);
                }
                let source = Source::of(pid.as_deref(), command)?;
                Profiling {
                    live: Live::Top,
                    ..Profiling::new(source, &sampling, output, None)?
                }
                .into()
            }
            Command::Record {
                output: path,
                pid,
                sampling,
                report,
                gate,
                command,
            } => {
                let source = Source::of(pid.as_deref(), command)?;
                Profiling {
                    gate: gate.gate(),
                    ..Profiling::new(source, &sampling, report, Some(path))?
                }
                .into()
            }
            Command::Bench(args) => Task::Bench(Bench::from_args(&args)?),
            Command::Diff {
                before,
                after,
                json,
                quiet,
            } => {
                if let Some(path) = json.as_ref().and_then(JsonTo::file) {
                    output::check_dir(path)?;
                }
                Task::Diff {
                    before,
                    after,
                    json,
                    quiet,
                }
            }
            Command::Report { file, output, gate } => {
                check_output_paths(&output, None)?;
                Task::Report {
                    file,
                    output,
                    gate: gate.gate(),
                }
            }
            Command::Agent(args) => Task::Agent(Box::new(agent_options(&args)?)),
            Command::Completions { shell } => Task::Completions(shell),
            Command::Man => Task::Man,
        };
        Ok(Options {
            color: cli.color,
            task,
        })
    }
}

impl From<Profiling> for Task {
    fn from(profiling: Profiling) -> Task {
        Task::Profile(Box::new(profiling))
    }
}

impl Profiling {
    /// A run of `source` that writes `output`: no gate, no push, and the status line where
    /// stderr is a terminal.
    fn new(
        source: Source,
        sampling: &SamplingArgs,
        output: OutputArgs,
        recording: Option<PathBuf>,
    ) -> Result<Profiling, Error> {
        let sampling = Sampling::from_args(sampling)?;
        check_output_paths(&output, recording.as_deref())?;
        if let Some(path) = &sampling.ready_file {
            output::check_dir(path)?;
        }
        Ok(Profiling {
            live: Live::for_output(&output),
            source,
            sampling,
            output,
            recording,
            gate: Gate::default(),
            push: None,
        })
    }
}

/// `gilscope agent`'s options, checked.
fn agent_options(args: &AgentArgs) -> Result<AgentOptions, Error> {
    let invalid = |option: &'static str, value: &str| Error::InvalidOption {
        option,
        value: value.to_string(),
    };
    let listen = args
        .listen
        .parse()
        .map_err(|_| invalid("--listen", &args.listen))?;
    let positive = |option: &'static str, value: f64| {
        (value.is_finite() && value > 0.0)
            .then_some(value)
            .ok_or_else(|| invalid(option, &value.to_string()))
    };
    let rate_hz = positive("--rate", args.rate).and_then(|rate| {
        (rate <= MAX_RATE_HZ)
            .then_some(rate)
            .ok_or_else(|| invalid("--rate", &rate.to_string()))
    })?;
    let regex = |option: &'static str, text: &Option<String>| {
        text.as_deref()
            .map(|text| regex::Regex::new(text).map_err(|_| invalid(option, text)))
            .transpose()
    };
    let window = positive("--window", args.window)?;
    let push = PushConfig::from_args(
        &crate::cli::PushArgs {
            pyroscope: args.pyroscope.clone(),
            push_interval: window.clamp(0.1, 3600.0),
            app_name: None,
            tag: args.tag.clone(),
        },
        Credentials::from_env(),
    )?;
    Ok(AgentOptions {
        push,
        listen,
        rate_hz,
        max_cpu: positive("--max-cpu", args.max_cpu)?,
        window: Duration::from_secs_f64(window),
        discover_every: Duration::from_secs_f64(positive("--discover-every", args.discover_every)?),
        filter: Filter {
            matching: regex("--match", &args.matching)?,
            excluding: regex("--exclude", &args.exclude)?,
        },
        env: EnvLabels {
            service_var: Some(args.service_env.clone()).filter(|v| !v.is_empty()),
            labels: args.env_label.clone(),
        },
        duration: args
            .duration
            .map(|d| positive("--duration", d).map(Duration::from_secs_f64))
            .transpose()?,
    })
}

/// Highest sampling rate accepted.
pub const MAX_RATE_HZ: f64 = 10_000.0;

/// Sampling settings, checked.
pub struct Sampling {
    pub options: SamplerOptions,
    pub duration: Option<Duration>,
    /// Created once the first sample is taken (`--ready-file`).
    pub ready_file: Option<PathBuf>,
}

impl Sampling {
    fn from_args(args: &SamplingArgs) -> Result<Sampling, Error> {
        if !(args.rate.is_finite() && args.rate > 0.0 && args.rate <= MAX_RATE_HZ) {
            return Err(Error::InvalidOption {
                option: "--rate",
                value: format!("{} (must be above 0 and at most {MAX_RATE_HZ})", args.rate),
            });
        }
        let duration = match args.duration {
            Some(d) if !(d.is_finite() && d > 0.0) => {
                return Err(Error::InvalidOption {
                    option: "--duration",
                    value: format!("{d} (must be a positive number of seconds)"),
                })
            }
            Some(d) => Some(Duration::from_secs_f64(d)),
            None => None,
        };
        Ok(Sampling {
            options: SamplerOptions {
                rate_hz: args.rate,
                blocking: args.blocking,
                subprocesses: args.subprocesses,
                names_refresh: crate::sampler::THREAD_NAMES_REFRESH,
            },
            duration,
            ready_file: args.ready_file.clone(),
        })
    }
}

/// How the run is shown while it goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// Nothing until the report.
    Quiet,
    /// A status line on stderr.
    Status,
    /// `gilscope top`'s screen.
    Top,
}

impl Live {
    /// A status line on a terminal, unless `-q`.
    fn for_output(output: &OutputArgs) -> Live {
        if !output.quiet && std::io::stderr().is_terminal() {
            Live::Status
        } else {
            Live::Quiet
        }
    }
}

fn check_output_paths(output: &OutputArgs, recording: Option<&Path>) -> Result<(), Error> {
    for file in output.outputs() {
        output::check_dir(file.path())?;
    }
    if let Some(path) = recording {
        output::check_dir(path)?;
    }
    Ok(())
}

impl Bench {
    /// Checks the target, the counts and the export paths; the plan.
    fn from_args(args: &BenchArgs) -> Result<Bench, Error> {
        let invalid =
            |option: &'static str, value: String| Err(Error::InvalidOption { option, value });
        if !args.target.contains(':') {
            return invalid(
                "FILE.py:FUNCTION",
                format!(
                    "{} (expected FILE.py:FUNCTION or module:FUNCTION)",
                    args.target
                ),
            );
        }
        if args.runs == 0 {
            return invalid("--runs", "0 (at least 1)".into());
        }
        if args.workers == Some(0) {
            return invalid("--workers", "0 (at least 1)".into());
        }
        if !(args.timeout.is_finite() && args.timeout > 0.0) {
            return invalid(
                "--timeout",
                format!("{} (a positive number of seconds)", args.timeout),
            );
        }
        for path in args.export_json.iter().chain(&args.export_markdown) {
            output::check_dir(path)?;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = args.workers.unwrap_or(cores);
        let plan = crate::bench::BenchPlan {
            target: args.target.clone(),
            args: args.args.clone(),
            tasks: args.tasks,
            tasks_from: args.tasks_from.clone(),
            workers,
            worker_counts: if args.scaling {
                crate::bench::scaling_counts(workers)
            } else {
                vec![workers]
            },
            runs: args.runs,
            warmup: args.warmup,
            modes: args.modes.clone().unwrap_or_else(|| {
                use crate::bench::Mode::*;
                vec![Sequential, Threads, Processes, Interpreters]
            }),
            optional_modes: if args.modes.is_some() {
                Vec::new()
            } else {
                vec![crate::bench::Mode::Interpreters]
            },
            pythons: args.pythons.clone(),
            timeout_s: args.timeout,
            evidence: !args.no_evidence,
        };
        Ok(Bench {
            plan,
            export_json: args.export_json.clone(),
            export_markdown: args.export_markdown.clone(),
        })
    }
}
