//! The command line. clap types stay here; the rest of the program sees [`Options`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "gilscope",
    version,
    about = "Why are your Python threads not faster? Samples a CPython process from outside and tells, per thread, how much time it held the GIL, waited for it, ran native code, waited on I/O, slept or waited on a lock, then says what to change.",
    after_help = "Examples:\n  gilscope run -- python3 app.py\n  gilscope attach 4242 --duration 10 --json report.json\n  gilscope record -o app.gilscope -- python3 app.py\n  gilscope report app.gilscope"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Launch a Python program and sample it until it exits; exit with its status.
    Run {
        #[command(flatten)]
        sampling: SamplingArgs,
        #[command(flatten)]
        output: OutputArgs,
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
        /// The process to sample.
        #[arg(value_name = "PID", allow_hyphen_values = true)]
        pid: String,
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
        #[arg(last = true, value_name = "COMMAND", required_unless_present = "pid")]
        command: Vec<String>,
    },
    /// Produce the report from a recording, exactly as it was live.
    Report {
        /// A file written by `gilscope record`.
        file: PathBuf,
        #[command(flatten)]
        output: OutputArgs,
    },
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
}

#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    /// Write the JSON report (schema gilscope.report/1) to FILE, or to stdout with `-`.
    #[arg(long, value_name = "FILE|-")]
    pub json: Option<String>,
    /// Do not print the terminal report.
    #[arg(long, short)]
    pub quiet: bool,
}
