//! The command line: clap types only. `app` reads them and hands each stage its plain values.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::diagnosis::VerdictKind;
use crate::gate::Gate;
use crate::model::ThreadState;
use crate::output::Output;

#[derive(Debug, Parser)]
#[command(
    name = "gilscope",
    version,
    about = "Why are your Python threads not faster? Samples a CPython process from outside and tells, per thread, how much time it held the GIL, waited for it, ran native code, waited on I/O, slept or waited on a lock, then says what to change.",
    after_help = "Examples:\n  gilscope run -- python3 app.py\n  gilscope attach 4242 --duration 10 --json report.json\n  gilscope record -o app.gilscope -- python3 app.py\n  gilscope report app.gilscope\n\nReads CPython 3.8 to 3.15 and the free-threaded 3.13t, all tested; the free-threaded 3.14t and 3.15t are read from their own debug offsets but not tested on those builds (their reports say so)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Colour in the terminal report: on a terminal without NO_COLOR set (auto), always, never.
    #[arg(long, global = true, value_enum, default_value_t, value_name = "WHEN")]
    pub color: ColorWhen,
}

/// When to colour the terminal report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorWhen {
    /// On a terminal, unless `NO_COLOR` is set (https://no-color.org).
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorWhen {
    /// Whether to colour output going to a stream that is (or is not) a terminal.
    pub fn enabled(self, is_terminal: bool) -> bool {
        match self {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => {
                is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Launch a Python program and sample it until it exits; exit with its status.
    Run {
        #[command(flatten)]
        sampling: SamplingArgs,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        gate: GateArgs,
        #[command(flatten)]
        push: PushArgs,
        /// The command to run, after `--`.
        #[arg(required = true, last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Sample a running Python process until --duration or Ctrl-C; it keeps running.
    Attach {
        #[command(flatten)]
        sampling: SamplingArgs,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        gate: GateArgs,
        #[command(flatten)]
        push: PushArgs,
        /// The process to sample.
        #[arg(value_name = "PID", allow_hyphen_values = true)]
        pid: String,
    },
    /// A live view of a running process (`top PID`) or a launched one (`top -- COMMAND`):
    /// each thread's states over the last second, the GIL, the hot functions and the verdict
    /// so far, refreshed every second. Keys: q quit, s sort, c last second / since start,
    /// f freeze. On quit, or when the target exits, the usual report is printed.
    Top {
        #[command(flatten)]
        sampling: SamplingArgs,
        #[command(flatten)]
        output: OutputArgs,
        /// The process to watch.
        #[arg(
            value_name = "PID",
            allow_hyphen_values = true,
            conflicts_with = "command"
        )]
        pid: Option<String>,
        /// The command to run and watch, after `--`.
        #[arg(last = true, value_name = "COMMAND", required_unless_present = "pid")]
        command: Vec<String>,
    },
    /// Like `run` (or `attach` with --pid), and also write the raw samples to a file.
    Record {
        /// The recording to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Attach to this PID instead of launching a command.
        #[arg(
            long,
            value_name = "PID",
            allow_hyphen_values = true,
            conflicts_with = "command"
        )]
        pid: Option<String>,
        #[command(flatten)]
        sampling: SamplingArgs,
        #[command(flatten)]
        report: OutputArgs,
        #[command(flatten)]
        gate: GateArgs,
        #[arg(last = true, value_name = "COMMAND", required_unless_present = "pid")]
        command: Vec<String>,
    },
    /// Run FUNCTION sequentially, in threads and in processes, each in a fresh interpreter,
    /// and show the measured table with the GIL evidence of each mode.
    #[command(
        after_help = "Examples:\n  gilscope bench examples/work.py:cpu_work 3000000 --tasks 8\n  gilscope bench mypkg.jobs:resize --tasks-from jobs.py:IMAGES --python python3.12 --python python3.13t"
    )]
    Bench(BenchArgs),
    /// Compare two runs, each a recording or a JSON report: did the change help? Durations,
    /// cores, GIL, thread states and verdicts side by side, the speedup measured against the
    /// one predicted, and the functions whose GIL use changed most.
    #[command(
        after_help = "Examples:\n  gilscope record -o before.gilscope -- python3 app.py\n  gilscope record -o after.gilscope --subprocesses -- python3 app.py --processes\n  gilscope diff before.gilscope after.gilscope --json diff.json"
    )]
    Diff {
        /// The run before the change: a file from `gilscope record`, or a report from `--json`.
        before: PathBuf,
        /// The run after it.
        after: PathBuf,
        /// Also write the comparison as JSON (schema gilscope.diff/1); `-` for stdout.
        #[arg(long, value_name = "FILE", value_parser = parse_json_to)]
        json: Option<JsonTo>,
        /// Do not print the comparison.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print a completion script for a shell, e.g. `gilscope completions bash >
    /// ~/.local/share/bash-completion/completions/gilscope`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `gilscope man | man -l -`.
    Man,
    /// Watch every Python process on this host continuously, and serve their thread states,
    /// GIL and verdicts to Prometheus (`/metrics`) and as JSON (`/processes`). Runs until
    /// SIGTERM or Ctrl-C; needs the privilege `attach` needs.
    #[command(
        after_help = "Examples:\n  gilscope agent --listen 0.0.0.0:9531\n  gilscope agent --match 'gunicorn|celery' --env-label TEAM --max-cpu 0.1\n  curl -s localhost:9531/processes"
    )]
    Agent(AgentArgs),
    /// Produce the report from a recording, exactly as it was live.
    Report {
        /// A file written by `gilscope record`.
        file: PathBuf,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        gate: GateArgs,
    },
}

#[derive(Debug, Args, Clone)]
pub struct AgentArgs {
    /// Where to serve /metrics and /processes.
    #[arg(long, default_value = "127.0.0.1:9531", value_name = "ADDR:PORT")]
    pub listen: String,
    /// Samples per second of each process, at most.
    #[arg(
        long,
        default_value_t = 20.0,
        value_name = "HZ",
        allow_negative_numbers = true
    )]
    pub rate: f64,
    /// The agent's CPU budget, in cores: over it, idle processes are sampled less often,
    /// then every process.
    #[arg(
        long,
        default_value_t = 0.05,
        value_name = "CORES",
        allow_negative_numbers = true
    )]
    pub max_cpu: f64,
    /// Seconds per window: each process's verdict and report cover its last window.
    #[arg(
        long,
        default_value_t = 10.0,
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    pub window: f64,
    /// Seconds between two looks for new processes.
    #[arg(
        long,
        default_value_t = 5.0,
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    pub discover_every: f64,
    /// Watch only processes whose command line matches this regular expression.
    #[arg(long = "match", value_name = "REGEX")]
    pub matching: Option<String>,
    /// Never watch processes whose command line matches this regular expression.
    #[arg(long, value_name = "REGEX")]
    pub exclude: Option<String>,
    /// The environment variable that names a process's service (else: its script's name).
    #[arg(long, default_value = "OTEL_SERVICE_NAME", value_name = "VAR")]
    pub service_env: String,
    /// Copy this environment variable of each process into its `gilscope_process_info`
    /// labels (repeatable), e.g. --env-label TEAM.
    #[arg(long, value_name = "VAR")]
    pub env_label: Vec<String>,
    /// Stop after this many seconds (default: until SIGTERM or Ctrl-C).
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub duration: Option<f64>,
    /// Also push each window's profiles to this Pyroscope server, one series per process
    /// (labels service_name, pid, container_id, pod_uid, --env-label values). Credentials
    /// come from the environment, as for `attach --pyroscope`.
    #[arg(long, value_name = "URL", help_heading = "Pyroscope")]
    pub pyroscope: Option<String>,
    /// An extra series label for the pushed profiles (repeatable), e.g. --tag cluster=eu-1.
    #[arg(
        long,
        value_name = "KEY=VALUE",
        requires = "pyroscope",
        help_heading = "Pyroscope"
    )]
    pub tag: Vec<String>,
}

#[derive(Debug, Args, Clone)]
pub struct BenchArgs {
    /// The function: `FILE.py:FUNCTION` or `module:FUNCTION`.
    #[arg(value_name = "FILE.py:FUNCTION")]
    pub target: String,
    /// Arguments for each call, each read as a Python literal (`3000000`, `'text'`, `[1, 2]`)
    /// or else as a plain string.
    #[arg(value_name = "ARGS", allow_negative_numbers = true)]
    pub args: Vec<String>,
    /// Call the function this many times (with ARGS each time).
    #[arg(long, default_value_t = 8, conflicts_with = "tasks_from")]
    pub tasks: usize,
    /// Take the tasks from an iterable: `FILE.py:NAME`; each item is a tuple of arguments, or
    /// one argument.
    #[arg(long, value_name = "FILE.py:ITERABLE")]
    pub tasks_from: Option<String>,
    /// Workers for the parallel modes [default: the number of cores].
    #[arg(long)]
    pub workers: Option<usize>,
    /// Run each parallel mode with 1, 2, 4 ... up to --workers workers: time, speedup, tasks a
    /// second and speedup per worker at each count, and what gilscope saw in each threaded run
    /// (on a free-threaded build: parallel, object locks, the collector).
    #[arg(long)]
    pub scaling: bool,
    /// Measured runs per mode.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Warm-up runs per mode (the first one is sampled for the GIL evidence).
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Modes to compare, comma-separated [default: sequential,threads,processes, and
    /// interpreters where the interpreter has InterpreterPoolExecutor (3.14+)].
    #[arg(long, value_delimiter = ',')]
    pub modes: Option<Vec<crate::bench::Mode>>,
    /// Interpreter to run with; repeat to compare several.
    #[arg(long = "python", value_name = "PATH", default_values = ["python3"])]
    pub pythons: Vec<PathBuf>,
    /// Give up on a run after this many seconds.
    #[arg(long, default_value_t = 300.0, allow_negative_numbers = true)]
    pub timeout: f64,
    /// Do not sample the warm-up run for GIL evidence.
    #[arg(long)]
    pub no_evidence: bool,
    /// Write the results as JSON (schema gilscope.bench/1).
    #[arg(long, value_name = "FILE")]
    pub export_json: Option<PathBuf>,
    /// Write the results as a Markdown table.
    #[arg(long, value_name = "FILE")]
    pub export_markdown: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct SamplingArgs {
    /// Samples per second.
    #[arg(
        long,
        default_value_t = 100.0,
        value_name = "HZ",
        allow_negative_numbers = true
    )]
    pub rate: f64,
    /// Stop sampling after this many seconds.
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub duration: Option<f64>,
    /// Pause the target while reading its stacks (more exact stacks, slower target). Never
    /// left on: the kernel resumes the target if gilscope dies.
    #[arg(long)]
    pub blocking: bool,
    /// Also sample every descendant process (multiprocessing pools, spawn and forkserver
    /// workers, `subprocess` children), including those started later.
    #[arg(long)]
    pub subprocesses: bool,
    /// Create FILE (empty) once the first sample is taken, so that a script can wait for it
    /// before it starts the work to measure (the Python package's `gilscope.profile()` does).
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
}

/// Continuous push to Grafana Pyroscope. The tenant and basic-auth credentials come from the
/// environment (PYROSCOPE_TENANT_ID, PYROSCOPE_BASIC_AUTH_USER, PYROSCOPE_BASIC_AUTH_PASSWORD),
/// never from the command line.
#[derive(Debug, Args, Clone, Default)]
pub struct PushArgs {
    /// Push each interval's per-thread profile (labels thread_name, thread_id, state) to this
    /// Pyroscope server, e.g. http://pyroscope:4040. Runs until Ctrl-C, SIGTERM, the target's
    /// exit or --duration.
    #[arg(long, value_name = "URL", help_heading = "Pyroscope")]
    pub pyroscope: Option<String>,
    /// Seconds per pushed profile.
    #[arg(
        long,
        default_value_t = 10.0,
        value_name = "SECONDS",
        requires = "pyroscope",
        allow_negative_numbers = true,
        help_heading = "Pyroscope"
    )]
    pub push_interval: f64,
    /// The service_name label (default: the script's name).
    #[arg(
        long,
        value_name = "NAME",
        requires = "pyroscope",
        help_heading = "Pyroscope"
    )]
    pub app_name: Option<String>,
    /// An extra series label (repeatable), e.g. --tag region=eu.
    #[arg(
        long,
        value_name = "KEY=VALUE",
        requires = "pyroscope",
        help_heading = "Pyroscope"
    )]
    pub tag: Vec<String>,
}

/// A gate for CI: after the report, exit with status 3 when it trips.
#[derive(Debug, Args, Clone, Default)]
pub struct GateArgs {
    /// Exit with status 3 when the verdict is one of these kinds (e.g. gil_contention).
    #[arg(long, value_name = "KIND[,KIND...]", value_delimiter = ',', value_parser = parse_verdict_kind)]
    pub fail_on: Vec<VerdictKind>,
    /// Exit with status 3 when a thread waits for the GIL more than this share of its time.
    #[arg(long, value_name = "FRACTION", value_parser = parse_fraction)]
    pub max_gil_wait: Option<f64>,
}

impl GateArgs {
    pub fn gate(&self) -> Gate {
        Gate {
            fail_on: self.fail_on.clone(),
            max_gil_wait: self.max_gil_wait,
        }
    }
}

fn parse_verdict_kind(text: &str) -> Result<VerdictKind, String> {
    VerdictKind::ALL
        .into_iter()
        .find(|k| k.name() == text)
        .ok_or_else(|| {
            let names: Vec<&str> = VerdictKind::ALL.iter().map(|k| k.name()).collect();
            format!("expected one of {}", names.join(", "))
        })
}

/// Where `--json` goes: `-` is stdout, anything else a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonTo {
    Stdout,
    File(PathBuf),
}

impl JsonTo {
    pub fn file(&self) -> Option<&Path> {
        match self {
            JsonTo::Stdout => None,
            JsonTo::File(path) => Some(path),
        }
    }
}

fn parse_json_to(text: &str) -> Result<JsonTo, String> {
    Ok(match text {
        "-" => JsonTo::Stdout,
        path => JsonTo::File(PathBuf::from(path)),
    })
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err("expected a fraction from 0 to 1, e.g. 0.2".into()),
    }
}

#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    /// Write the JSON report (schema gilscope.report/1) to FILE, or to stdout with `-`.
    #[arg(long, value_name = "FILE|-", value_parser = parse_json_to)]
    pub json: Option<JsonTo>,
    /// Do not print the terminal report.
    #[arg(long, short)]
    pub quiet: bool,
    /// List every thread in the terminal report, not one row per group of threads started
    /// with the same function (a pool's workers, a server's request threads).
    #[arg(long)]
    pub threads: bool,
    /// Write the timeline in the Chrome trace-event format (open in ui.perfetto.dev or
    /// chrome://tracing).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Write a flame graph (SVG) whose first level is the thread state.
    #[arg(long, value_name = "FILE.svg")]
    pub flamegraph: Option<PathBuf>,
    /// Draw only the stacks of one state in the flame graph.
    #[arg(long, value_name = "STATE", requires = "flamegraph", value_parser = parse_state)]
    pub flamegraph_state: Option<ThreadState>,
    /// Write a speedscope profile (open in speedscope.app).
    #[arg(long, value_name = "FILE")]
    pub speedscope: Option<PathBuf>,
    /// Write a gzipped pprof profile with thread and state labels (go tool pprof, Pyroscope,
    /// Parca).
    #[arg(long, value_name = "FILE")]
    pub pprof: Option<PathBuf>,
    /// Write a self-contained HTML report (no network needed).
    #[arg(long, value_name = "FILE.html")]
    pub html: Option<PathBuf>,
}

impl OutputArgs {
    /// The files asked for (`--json -` is stdout, not a file: see [`Self::json_to_stdout`]).
    pub fn outputs(&self) -> Vec<Output> {
        let json = self
            .json
            .as_ref()
            .and_then(JsonTo::file)
            .map(|path| Output::Json(path.to_path_buf()));
        let flamegraph = self.flamegraph.clone().map(|path| Output::Flamegraph {
            path,
            only: self.flamegraph_state,
        });
        json.into_iter()
            .chain(self.trace.clone().map(Output::Trace))
            .chain(flamegraph)
            .chain(self.speedscope.clone().map(Output::Speedscope))
            .chain(self.pprof.clone().map(Output::Pprof))
            .chain(self.html.clone().map(Output::Html))
            .collect()
    }

    pub fn json_to_stdout(&self) -> bool {
        self.json == Some(JsonTo::Stdout)
    }
}

/// Parses a thread state by its contract name (`gil`, `gil_wait`, ...).
fn parse_state(text: &str) -> Result<ThreadState, String> {
    ThreadState::ALL
        .into_iter()
        .find(|s| s.name() == text)
        .ok_or_else(|| {
            let names: Vec<&str> = ThreadState::ALL.iter().map(|s| s.name()).collect();
            format!("expected one of {}", names.join(", "))
        })
}
