//! Wires the stages together: options → target → sampler → records → analysis → diagnosis →
//! renderers. Returns the process exit status; errors surface here, never `exit()` deeper.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::agent;
use crate::analysis::{Aggregator, Analysis};
use crate::cli::{Cli, ColorWhen, JsonTo, OutputArgs};
use crate::error::Error;
use crate::gate::{Gate, GATE_EXIT_CODE};
use crate::model::Record;
use crate::options::{Bench, Live, Options, Profiling, Task};
use crate::push::{self, PushConfig};
use crate::recording::{self, replay, RecordingWriter};
use crate::render::terminal::Style;
use crate::report::{self, PushSummary, Report};
use crate::sampler::RecordSink;
use crate::session::{Session, Start};
use crate::target::Signals;
use crate::{diagnosis, output, render};

/// Sends records to the aggregator and, when recording, to the file; with a live view, a copy
/// to its thread.
struct Tee<'a> {
    aggregator: &'a mut Aggregator,
    recording: Option<RecordingWriter<std::io::BufWriter<std::fs::File>>>,
    recording_error: Option<std::io::Error>,
    live: Option<mpsc::Sender<Record>>,
    status: Option<crate::progress::StatusLine>,
    /// `--pyroscope`: cuts the samples into windows for the push thread.
    push: Option<push::Feed>,
}

impl Tee<'_> {
    /// Ends everything beside the aggregator once the run has ended: the status line, the live
    /// view (which gives the terminal back before the report), the push (its last window went
    /// with the End record: it gets a moment to reach the server) and the recording. Returns
    /// what the push delivered and the recording's first write error.
    fn close(&mut self, view: Option<ViewThread>) -> (Option<PushSummary>, Option<std::io::Error>) {
        if let Some(status) = self.status.take() {
            status.finish();
        }
        self.live = None;
        if let Some(view) = view {
            join_view(view);
        }
        let push_summary = self.push.take().map(|feed| feed.finish(push::FLUSH_GRACE));
        if let Some(writer) = self.recording.take() {
            if let Err(e) = writer.finish() {
                eprintln!("gilscope: could not finish the recording: {e}");
            }
        }
        (push_summary, self.recording_error.take())
    }
}

impl RecordSink for Tee<'_> {
    fn record(&mut self, record: &Record) -> std::io::Result<()> {
        self.aggregator.push(record);
        if let Some(feed) = &mut self.push {
            feed.record(record, self.aggregator);
        }
        if let Some(status) = &mut self.status {
            status.record(record);
        }
        if let Some(live) = &self.live {
            if live.send(record.clone()).is_err() {
                self.live = None; // the view is gone; sampling goes on
            }
        }
        if let Some(writer) = &mut self.recording {
            if let Err(e) = writer.record(record) {
                // Keep sampling: the live report must not be lost to a full disk.
                self.recording = None;
                self.recording_error = Some(e);
            }
        }
        Ok(())
    }
}

pub fn run(cli: Cli) -> Result<i32, Error> {
    let Options { color, task } = Options::from_cli_arguments(cli)?;
    match task {
        Task::Profile(profiling) => profile(*profiling, color),
        Task::Bench(plan) => bench(&plan),
        Task::Diff {
            before,
            after,
            json,
            quiet,
        } => diff(&before, &after, json.as_ref(), quiet),
        Task::Report { file, output, gate } => {
            let analysis = replay(&file)?;
            let report = emit(&analysis, &output, color, None)?;
            Ok(gate_exit_code(&gate, &report).unwrap_or(0))
        }
        Task::Agent(options) => {
            agent::run(*options)?;
            Ok(0)
        }
        Task::Completions(shell) => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "gilscope", &mut std::io::stdout());
            Ok(0)
        }
        Task::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut page)
                .and_then(|_| std::io::stdout().write_all(&page))
                .ok();
            Ok(0)
        }
    }
}

/// A run's report: a recording replayed through the same stages as live, or a JSON report.
fn load_report(path: &Path) -> Result<Report, Error> {
    let input_error = |detail: String| Error::RunInput {
        path: path.to_path_buf(),
        detail,
    };
    if recording::is_recording(path).map_err(|e| input_error(e.to_string()))? {
        let analysis = replay(path)?;
        return Ok(report::build(
            &analysis,
            Some(diagnosis::diagnose(&analysis)),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| input_error(e.to_string()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| input_error(format!("neither a recording nor JSON ({e})")))?;
    match value.get("schema").and_then(|s| s.as_str()) {
        Some(report::SCHEMA) => {}
        Some(other) => return Err(input_error(format!("a {other} file, not a report"))),
        None => return Err(input_error("JSON without a \"schema\" key".into())),
    }
    serde_json::from_value(value).map_err(|e| input_error(e.to_string()))
}

/// `gilscope diff`: two runs compared, printed and written as asked.
fn diff(before: &Path, after: &Path, json: Option<&JsonTo>, quiet: bool) -> Result<i32, Error> {
    let (b, a) = (load_report(before)?, load_report(after)?);
    let comparison = crate::diff::compare(
        &b,
        &before.display().to_string(),
        &a,
        &after.display().to_string(),
    );
    if !quiet {
        let mut text = Vec::new();
        // Into memory first: a closed pipe (`| head`) is not an error worth reporting.
        let _ = render::diff::render(&comparison, &mut text);
        if json == Some(&JsonTo::Stdout) {
            let _ = std::io::stderr().write_all(&text);
        } else {
            let _ = std::io::stdout().write_all(&text);
        }
    }
    match json {
        Some(JsonTo::Stdout) => {
            let mut bytes = Vec::new();
            let _ = render::json(&comparison, &mut bytes);
            let _ = std::io::stdout().write_all(&bytes);
        }
        Some(JsonTo::File(path)) => output::write_rendered(path, |b| render::json(&comparison, b))?,
        None => {}
    }
    Ok(0)
}

/// `gilscope bench`: run the plan, print and export. Exit 2 when a run failed.
fn bench(bench: &Bench) -> Result<i32, Error> {
    let Bench {
        plan,
        export_json,
        export_markdown,
    } = bench;
    let mut executor = crate::bench::live::LiveExecutor::new(plan)?;
    executor.show_progress(std::io::stderr().is_terminal());
    let report = crate::bench::run_benchmark(plan, &mut executor);
    executor.finish();
    let mut stdout = std::io::stdout().lock();
    let _ = crate::bench::output::terminal(&report, &mut stdout);
    if let Some(path) = export_json {
        output::write_rendered(path, |b| render::json(&report, b))?;
    }
    if let Some(path) = export_markdown {
        output::write_rendered(path, |b| crate::bench::output::markdown(&report, b))?;
    }
    for e in &report.errors {
        eprintln!("gilscope: error: {e}");
    }
    Ok(if report.errors.is_empty() { 0 } else { 2 })
}

fn profile(profiling: Profiling, color: ColorWhen) -> Result<i32, Error> {
    let Profiling {
        source,
        sampling,
        output,
        recording,
        gate,
        live,
        push,
    } = profiling;
    let (output, recording) = (&output, recording.as_deref());
    let signals = Signals::install().map_err(Error::Signals)?;
    let mut child = None;
    let session = match Session::start(source, &mut child, &sampling.options, sampling.duration)? {
        Start::Sampling(session) => session,
        Start::ExitedFirst(outcome) => {
            eprintln!("gilscope: the target exited before the first sample");
            let mut aggregator = Aggregator::new();
            aggregator.push(&outcome.end_record());
            emit(&aggregator.finish(), output, color, None)?;
            return Ok(outcome.exit_code(child.as_mut()));
        }
    };
    if let Some(path) = &sampling.ready_file {
        // The directory was checked: a failure now is rare, and sampling goes on without it.
        if let Err(e) = std::fs::write(path, b"") {
            eprintln!(
                "gilscope: could not create the ready file {}: {e}",
                path.display()
            );
        }
    }

    let mut aggregator = Aggregator::new();
    let (live_records, view) = match live {
        Live::Top => {
            let (records, view) = start_view(&signals);
            (Some(records), Some(view))
        }
        Live::Quiet | Live::Status => (None, None),
    };
    let push = push
        .as_ref()
        .map(|config| start_push(config, &mut aggregator))
        .transpose()?;
    let mut tee = Tee {
        push,
        aggregator: &mut aggregator,
        recording: recording.map(RecordingWriter::create).transpose()?,
        recording_error: None,
        live: live_records,
        status: (live == Live::Status).then(|| crate::progress::StatusLine::start("sampling")),
    };
    let outcome = session
        .run(&signals, &mut tee)
        .map_err(|source| Error::Output {
            path: recording.map(PathBuf::from).unwrap_or_default(),
            source,
        })?;
    let (push_summary, recording_error) = tee.close(view);
    let report = emit(&aggregator.finish(), output, color, push_summary)?;
    if let (Some(e), Some(path)) = (recording_error, recording) {
        return Err(Error::Output {
            path: path.to_path_buf(),
            source: e,
        });
    }
    // `run` passes the target's status on (with --duration, once it exits); `attach` exits 0.
    let exit_code = outcome.exit_code(child.as_mut());
    Ok(gate_exit_code(&gate, &report).unwrap_or(exit_code))
}

/// [`GATE_EXIT_CODE`] when the report trips the gate, saying why on stderr.
fn gate_exit_code(gate: &Gate, report: &Report) -> Option<i32> {
    let tripped = gate.check(report)?;
    eprintln!("gilscope: gate: {tripped} (exit {GATE_EXIT_CODE})");
    Some(GATE_EXIT_CODE)
}

/// `gilscope top`'s screen, on its own thread, fed a copy of the records.
fn start_view(signals: &Signals) -> (mpsc::Sender<Record>, ViewThread) {
    let (records, received) = mpsc::channel();
    let quit = signals.quit_flag();
    let view = std::thread::spawn(move || crate::top::run(received, quit));
    (records, view)
}

type ViewThread = std::thread::JoinHandle<std::io::Result<()>>;

/// Waits for the live view to give the terminal back; its failure is said once, with a hint.
fn join_view(view: ViewThread) {
    let failure = match view.join() {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!(": {e}")),
        Err(_) => Some(String::new()),
    };
    if let Some(why) = failure {
        eprintln!("gilscope: the live view failed{why} (hint: sampling went on and the report below is whole; `gilscope attach` or `run` give it without the live view)");
    }
}

/// `--pyroscope`: the push thread, and the feed that cuts the records into its windows.
fn start_push(config: &PushConfig, aggregator: &mut Aggregator) -> Result<push::Feed, Error> {
    let transport = push::http::Http::new(&config.url, config.credentials.clone());
    let pusher = push::Pusher::start(config, transport).map_err(Error::PushThread)?;
    Ok(push::Feed::new(config, pusher, aggregator))
}

/// Fails before sampling when an output cannot be written, so no run is wasted.
/// Diagnoses an analysis, prints its report and writes the outputs asked for; returns the
/// report (with what the push delivered, when there was one). Every file is attempted; the first failure is returned after the others are written.
fn emit(
    analysis: &Analysis,
    output: &OutputArgs,
    color: ColorWhen,
    push: Option<PushSummary>,
) -> Result<Report, Error> {
    let verdict = diagnosis::diagnose(analysis);
    let report = Report {
        push,
        ..report::build(analysis, Some(verdict))
    };
    let json_to_stdout = output.json_to_stdout();
    if !output.quiet {
        if json_to_stdout {
            let stderr = std::io::stderr();
            print_terminal(
                &report,
                terminal_style(color, stderr.is_terminal(), output),
                &mut stderr.lock(),
            );
        } else {
            let stdout = std::io::stdout();
            print_terminal(
                &report,
                terminal_style(color, stdout.is_terminal(), output),
                &mut stdout.lock(),
            );
        }
    }
    if json_to_stdout {
        let mut stdout = std::io::stdout().lock();
        render::json(&report, &mut stdout)
            .and_then(|_| stdout.flush())
            .ok();
    }
    // Every file is attempted; the first failure is returned after the others are written.
    let results: Vec<Result<(), Error>> = output
        .outputs()
        .iter()
        .map(|o| o.write(&report, analysis))
        .collect();
    results.into_iter().collect::<Result<(), Error>>()?;
    Ok(report)
}

fn terminal_style(color: ColorWhen, is_terminal: bool, output: &OutputArgs) -> Style {
    Style {
        color: color.enabled(is_terminal),
        threads: output.threads,
    }
}

fn print_terminal(report: &Report, style: Style, out: &mut impl Write) {
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = render::terminal::render(report, style, out);
}
