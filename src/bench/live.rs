//! The live executor: runs the shipped driver with the user's interpreter, one fresh process
//! per run, in its own process group so a timeout ends its workers too.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{BenchPlan, Evidence, Executor, Mode, RunFailure, RunOutcome};
use crate::analysis::Aggregator;
use crate::diagnosis::diagnose;
use crate::error::Error;
use crate::model::ThreadState;
use crate::sampler::SamplerOptions;
use crate::session::{Session, Start};
use crate::target::Signals;

const DRIVER: &str = include_str!("driver.py");
/// Evidence is sampled at this rate: the sampled run is an untimed warm-up, and short runs
/// still need enough samples for a verdict.
const EVIDENCE_RATE_HZ: f64 = 1000.0;

pub struct LiveExecutor<'a> {
    plan: &'a BenchPlan,
    driver: PathBuf,
    _dir: tempfile::TempDir,
    signals: Signals,
    /// Which run is on, on stderr when it is a terminal.
    status: Option<indicatif::ProgressBar>,
}

impl<'a> LiveExecutor<'a> {
    /// The driver written to a temporary directory, and the signal handlers installed.
    pub fn new(plan: &'a BenchPlan) -> Result<Self, Error> {
        let unwritable = |source| Error::Output {
            path: std::env::temp_dir(),
            source,
        };
        let dir = tempfile::Builder::new()
            .prefix("gilscope-bench-")
            .tempdir()
            .map_err(unwritable)?;
        let driver = dir.path().join("gilscope_bench_driver.py");
        std::fs::write(&driver, DRIVER).map_err(unwritable)?;
        Ok(LiveExecutor {
            plan,
            driver,
            _dir: dir,
            signals: Signals::install().map_err(Error::Signals)?,
            status: None,
        })
    }

    fn command(&self, python: &Path, mode: Mode, workers: usize) -> Command {
        let mut cmd = Command::new(python);
        cmd.arg(&self.driver)
            .arg(&self.plan.target)
            .arg(mode.name())
            .arg(workers.to_string())
            .arg(serde_json::to_string(&self.plan.args).unwrap_or_else(|_| "[]".into()))
            .arg(self.plan.tasks.to_string())
            .arg(self.plan.tasks_from.as_deref().unwrap_or(""))
            .env("PYTHONHASHSEED", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd
    }
}

/// Waits for `child` until `deadline`; false on timeout, after killing its whole group.
fn wait_until(child: &mut Child, deadline: Instant) -> bool {
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        if Instant::now() >= deadline {
            // SAFETY: kill has no memory-safety preconditions; -pid names the child's group.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn read_all(pipe: Option<impl std::io::Read>) -> String {
    let mut text = String::new();
    if let Some(mut p) = pipe {
        let _ = p.read_to_string(&mut text);
    }
    text
}

/// Samples a launched driver until it exits or the deadline; returns the evidence.
fn sample(child: &mut Child, signals: &Signals, deadline: Instant) -> Option<Evidence> {
    let options = SamplerOptions {
        rate_hz: EVIDENCE_RATE_HZ,
        blocking: false,
        subprocesses: false,
        names_refresh: crate::sampler::THREAD_NAMES_REFRESH,
    };
    let budget = deadline.saturating_duration_since(Instant::now());
    let Start::Sampling(session) = Session::launched(child, &options, Some(budget)).ok()? else {
        return None;
    };
    let mut aggregator = Aggregator::new();
    session.run(signals, &mut aggregator).ok()?;
    let analysis = aggregator.finish();
    let verdict = diagnose(&analysis);
    // The threads that ran tasks: those that held or wanted the GIL or ran native code.
    let workers: Vec<_> = analysis
        .threads
        .iter()
        .filter(|t| t.share(&[ThreadState::Gil, ThreadState::GilWait, ThreadState::Native]) >= 0.2)
        .collect();
    let gil_wait = if workers.is_empty() {
        0.0
    } else {
        workers
            .iter()
            .map(|t| t.fraction(ThreadState::GilWait))
            .sum::<f64>()
            / workers.len() as f64
    };
    Some(Evidence {
        gil_held: analysis.gil_held,
        gil_wait,
        verdict_kind: verdict.kind,
        verdict_headline: verdict.headline,
        confident: verdict.confidence == crate::diagnosis::Confidence::High,
    })
}

impl LiveExecutor<'_> {
    /// Shows which run is on, until [`Self::finish`] (`show`: stderr is a terminal and the
    /// user did not ask for quiet).
    pub fn show_progress(&mut self, show: bool) {
        self.status = show.then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
    }

    /// Clears the status line.
    pub fn finish(&mut self) {
        if let Some(bar) = self.status.take() {
            bar.finish_and_clear();
        }
    }
}

impl Executor for LiveExecutor<'_> {
    fn starting(&mut self, python: &Path, mode: Mode, run: crate::bench::RunNumber) {
        if let Some(bar) = &self.status {
            bar.set_message(format!(
                "{} · {} · {}",
                python.display(),
                mode.name(),
                run.describe()
            ));
        }
    }

    fn unguarded_lines(&mut self, python: &Path) -> Vec<u32> {
        let output = Command::new(python)
            .arg(&self.driver)
            .args(["--check", &self.plan.target])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        let Ok(output) = output else {
            return Vec::new();
        };
        let text = String::from_utf8_lossy(&output.stdout);
        serde_json::from_str::<serde_json::Value>(text.trim())
            .ok()
            .and_then(|v| {
                v["unguarded_lines"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_u64().map(|n| n as u32))
                        .collect()
                })
            })
            .unwrap_or_default()
    }

    fn run(
        &mut self,
        python: &Path,
        mode: Mode,
        workers: usize,
        sampled: bool,
    ) -> Result<RunOutcome, RunFailure> {
        let started = Instant::now();
        let deadline = started + Duration::from_secs_f64(self.plan.timeout_s);
        let mut child =
            self.command(python, mode, workers)
                .spawn()
                .map_err(|e| RunFailure::Setup {
                    detail: format!("cannot run {}: {e}", python.display()),
                })?;
        // Drain the pipes on their own threads: a chatty function must not block on a full pipe.
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let out_reader = std::thread::spawn(move || read_all(stdout));
        let err_reader = std::thread::spawn(move || read_all(stderr));
        let evidence = if sampled {
            sample(&mut child, &self.signals, deadline)
        } else {
            None
        };
        let finished = wait_until(&mut child, deadline);
        let stdout = out_reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        if !finished {
            return Err(RunFailure::Timeout {
                mode: mode.name(),
                timeout_s: self.plan.timeout_s,
            });
        }
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with("{\"ok\""))
            .ok_or_else(|| RunFailure::Setup {
                detail: format!(
                    "the driver gave no result: {}",
                    stderr.lines().last().unwrap_or("no output")
                ),
            })?;
        let unreadable = |e: serde_json::Error| RunFailure::Setup {
            detail: format!("unreadable driver output: {e}"),
        };
        let status: ReplyStatus = serde_json::from_str(line).map_err(unreadable)?;
        if !status.ok {
            let failure: DriverFailure = serde_json::from_str(line).map_err(unreadable)?;
            let detail = failure.message;
            return Err(match failure.error {
                DriverError::UnpicklableFunction => RunFailure::UnpicklableFunction {
                    target: self.plan.target.clone(),
                    detail,
                },
                DriverError::MissingMainGuard => RunFailure::MissingMainGuard { detail },
                DriverError::FunctionRaised => RunFailure::FunctionRaised { detail },
                DriverError::UnpicklableResult => RunFailure::UnpicklableResult { detail },
                DriverError::ModeUnavailable => RunFailure::Unavailable {
                    mode: mode.name(),
                    detail,
                },
                DriverError::Setup => RunFailure::Setup { detail },
            });
        }
        let run: DriverResult = serde_json::from_str(line).map_err(unreadable)?;
        Ok(RunOutcome {
            elapsed_s: run.elapsed_s,
            cores_used: if run.elapsed_s > 0.0 {
                run.cpu_s / run.elapsed_s
            } else {
                0.0
            },
            digest: run.digest,
            arg_bytes: run.arg_bytes,
            pickle_s: run.pickle_s,
            tasks: run.tasks,
            python_version: run.python,
            free_threaded: run.free_threaded,
            gil_enabled: run.gil_enabled,
            evidence,
            start_method: run.start_method,
        })
    }
}

/// The driver's last line (`driver.py`) starts `{"ok": true|false`: which of the two it is.
#[derive(Debug, Deserialize)]
struct ReplyStatus {
    ok: bool,
}

/// A measured run, as the driver reports it.
#[derive(Debug, Deserialize)]
struct DriverResult {
    elapsed_s: f64,
    cpu_s: f64,
    tasks: usize,
    digest: String,
    #[serde(default)]
    arg_bytes: u64,
    #[serde(default)]
    pickle_s: f64,
    python: String,
    free_threaded: bool,
    gil_enabled: bool,
    start_method: Option<String>,
}

/// A run that failed, as the driver reports it.
#[derive(Debug, Deserialize)]
struct DriverFailure {
    error: DriverError,
    message: String,
}

/// The driver's failure kinds that gilscope explains; the others are setup errors (a bad
/// spec, a missing file or function, an import that fails), whose message says it all.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum DriverError {
    UnpicklableFunction,
    MissingMainGuard,
    FunctionRaised,
    UnpicklableResult,
    ModeUnavailable,
    #[serde(other)]
    Setup,
}
