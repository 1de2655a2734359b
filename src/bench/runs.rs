//! Running the plan: each mode's runs, their statistics and warnings, the comparison with the
//! sequential run, and the recommendation.

use std::path::Path;

use crate::diagnosis::VerdictKind;

use super::{
    BenchPlan, BenchReport, BenchResult, Evidence, Executor, Mode, Recommendation, RunFailure,
    RunNumber, RunOutcome,
};

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Shorter runs are below the resolution of process CPU time: no cores figure for them.
pub const MIN_CPU_MEASURE_S: f64 = 0.02;

/// Arguments above this size per task (pickled) get a warning: pickling starts to matter.
pub const LARGE_ARGS_BYTES: u64 = 1 << 20;

/// Runs the plan. Pure given the executor.
pub fn run_benchmark(plan: &BenchPlan, executor: &mut dyn Executor) -> BenchReport {
    let mut results = Vec::new();
    let mut notes = Notes::default();
    let mut threads_verdict = None;
    let mut threads_kind = None;
    let mut tasks_run = plan.tasks;
    if let Some(warning) = import_time_warning(plan, executor) {
        notes.warnings.push(warning);
    }
    for python in &plan.pythons {
        let label = python.display().to_string();
        let mut rows: Vec<(BenchResult, Option<String>)> = Vec::new();
        let most = plan
            .worker_counts
            .iter()
            .copied()
            .max()
            .unwrap_or(plan.workers);
        'modes: for &mode in &plan.modes {
            let counts = if mode == Mode::Sequential {
                &[1][..]
            } else {
                &plan.worker_counts[..]
            };
            for &workers in counts {
                let runs = run_mode(plan, executor, python, mode, workers, &mut notes);
                if let Some(tasks) = runs.tasks {
                    tasks_run = tasks;
                }
                if let Some(e @ RunFailure::Unavailable { .. }) = &runs.failure {
                    if !plan.optional_modes.contains(&mode) {
                        notes.warnings.push(format!("{e}: skipped"));
                    }
                    continue 'modes;
                }
                if let Some(e) = &runs.failure {
                    let line = format!("{} on {label}: {e} (hint: {})", mode.name(), e.hint());
                    // A mode the user did not ask for (interpreters, where available) that
                    // fails is a warning: the modes asked for still answer the question.
                    if plan.optional_modes.contains(&mode) {
                        notes.warnings.push(format!("{line}; left out"));
                    } else {
                        notes.errors.push(line);
                    }
                }
                if let (Mode::Threads, Some(e), None, true) =
                    (mode, &runs.evidence, &threads_verdict, workers == most)
                {
                    threads_verdict = Some(format!(
                        "{} ({})",
                        e.verdict_headline,
                        e.verdict_kind.name()
                    ));
                    threads_kind = e.confident.then_some(e.verdict_kind);
                }
                let failed = runs.failure.is_some();
                rows.push(runs.into_row(&label, mode, workers));
                // Without a sequential baseline there is nothing to compare: stop here.
                if failed && mode == Mode::Sequential {
                    break 'modes;
                }
                if failed {
                    continue 'modes;
                }
            }
        }
        compare_to_sequential(&mut rows, &label, &mut notes.errors);
        notes.warnings.extend(noise_warnings(&rows, &label, most));
        results.extend(rows.into_iter().map(|(r, _)| r));
    }
    let recommendation = recommend(&results, threads_kind).map(|r| Recommendation {
        threads_verdict,
        ..r
    });
    BenchReport {
        schema: "gilscope.bench/1".into(),
        target: plan.target.clone(),
        args: plan.args.clone(),
        tasks: tasks_run,
        workers: plan.workers,
        runs: plan.runs,
        warmup: plan.warmup,
        scaling: plan.worker_counts.len() > 1,
        results,
        recommendation,
        warnings: notes.warnings,
        errors: notes.errors,
    }
}

/// What a benchmark says besides its results.
#[derive(Default)]
struct Notes {
    warnings: Vec<String>,
    errors: Vec<String>,
}

/// Code the target runs at import, which every worker process runs again.
fn import_time_warning(plan: &BenchPlan, executor: &mut dyn Executor) -> Option<String> {
    let lines = executor.unguarded_lines(plan.pythons.first()?);
    (!lines.is_empty()).then(|| {
        format!(
            "{} runs code at import (line {}): if that code starts work or processes, put it under `if __name__ == \"__main__\":`",
            plan.target.split(':').next().unwrap_or(""),
            lines.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        )
    })
}

/// The runs of one mode on one interpreter.
#[derive(Default)]
struct ModeRuns {
    times: Vec<f64>,
    cores: Vec<f64>,
    digest: Option<String>,
    evidence: Option<Evidence>,
    version: String,
    free_threaded: bool,
    failure: Option<RunFailure>,
    /// The tasks the first run did.
    tasks: Option<usize>,
}

/// Runs one mode `warmup + runs` times (the first sampled for evidence, where it applies),
/// stopping at the first failure.
fn run_mode(
    plan: &BenchPlan,
    executor: &mut dyn Executor,
    python: &Path,
    mode: Mode,
    workers: usize,
    notes: &mut Notes,
) -> ModeRuns {
    let label = python.display().to_string();
    let mut runs = ModeRuns::default();
    for i in 0..plan.warmup + plan.runs {
        let sampled =
            plan.evidence && i == 0 && mode != Mode::Processes && mode != Mode::Interpreters;
        let number = RunNumber {
            index: i + 1,
            warmups: plan.warmup,
            runs: plan.runs,
        };
        executor.starting(python, mode, number);
        let run = match executor.run(python, mode, workers, sampled) {
            Ok(run) => run,
            Err(e) => {
                runs.failure = Some(e);
                break;
            }
        };
        runs.version = run.python_version.clone();
        runs.free_threaded = run.free_threaded;
        if let Some(e) = run.evidence.clone() {
            runs.evidence = Some(e);
        }
        if i == 0 {
            runs.tasks = Some(run.tasks);
            notes
                .warnings
                .extend(first_run_warnings(&label, mode, &run));
        }
        if i >= plan.warmup {
            runs.times.push(run.elapsed_s);
            if run.elapsed_s >= MIN_CPU_MEASURE_S {
                runs.cores.push(run.cores_used);
            }
        }
        runs.digest = Some(run.digest);
    }
    runs
}

/// What the first run of processes tells about their cost: a start method that starts fresh
/// interpreters, arguments that are large to pickle.
fn first_run_warnings(label: &str, mode: Mode, run: &RunOutcome) -> Vec<String> {
    let mut warnings = Vec::new();
    if mode != Mode::Processes {
        return warnings;
    }
    if let Some(method) = run.start_method.as_deref().filter(|m| *m != "fork") {
        warnings.push(format!(
            "processes on {label} start their workers with `{method}` (multiprocessing's default there): each worker starts a fresh interpreter, and the measured time includes it"
        ));
    }
    if run.tasks > 0 {
        let per_task = run.arg_bytes / run.tasks as u64;
        if per_task >= LARGE_ARGS_BYTES {
            warnings.push(format!(
                "each task's arguments pickle to {:.1} MB ({:.1} ms per task to pickle, measured): processes pay this for every task; pass file paths or use multiprocessing.shared_memory",
                per_task as f64 / 1e6,
                run.pickle_s / run.tasks as f64 * 1e3
            ));
        }
    }
    warnings
}

impl ModeRuns {
    /// The result row, with the digest to check against sequential (none after a failure).
    fn into_row(
        mut self,
        label: &str,
        mode: Mode,
        workers: usize,
    ) -> (BenchResult, Option<String>) {
        let times = &mut self.times;
        times.sort_by(f64::total_cmp);
        self.cores.sort_by(f64::total_cmp);
        let stat = |f: fn(&[f64]) -> f64| (!times.is_empty()).then(|| f(times));
        let row = BenchResult {
            python: label.to_string(),
            python_version: self.version,
            free_threaded: self.free_threaded,
            mode,
            workers,
            median_s: stat(median),
            min_s: stat(|t| t[0]),
            max_s: stat(|t| t[t.len() - 1]),
            speedup: None,
            speedup_min: None,
            speedup_max: None,
            cores_used: (!self.cores.is_empty()).then(|| median(&self.cores)),
            gil_held: self.evidence.as_ref().and_then(|e| e.gil_held),
            gil_wait: self.evidence.as_ref().map(|e| e.gil_wait),
            verdict: self
                .evidence
                .as_ref()
                .filter(|e| e.confident)
                .map(|e| e.verdict_kind),
            tasks_per_s: stat(median)
                .zip(self.tasks)
                .filter(|&(m, _)| m > 0.0)
                .map(|(m, tasks)| tasks as f64 / m),
            correct: None,
            error: self.failure.as_ref().map(|e| format!("{e}")),
            times_s: self.times,
        };
        let digest = if self.failure.is_none() {
            self.digest
        } else {
            None
        };
        (row, digest)
    }
}

/// Speedups and correctness against this interpreter's sequential row.
fn compare_to_sequential(
    rows: &mut [(BenchResult, Option<String>)],
    label: &str,
    errors: &mut Vec<String>,
) {
    let seq = rows.iter().find(|r| r.0.mode == Mode::Sequential).cloned();
    for (row, digest) in rows.iter_mut() {
        if let (Some((s, seq_digest)), Some(m)) = (&seq, row.median_s) {
            if let (Some(sm), Some(smin), Some(smax), Some(min), Some(max)) =
                (s.median_s, s.min_s, s.max_s, row.min_s, row.max_s)
            {
                row.speedup = Some(sm / m);
                row.speedup_min = Some(smin / max);
                row.speedup_max = Some(smax / min);
            }
            if let (Some(a), Some(b)) = (digest.as_ref(), seq_digest.as_ref()) {
                row.correct = Some(a == b);
                if a != b {
                    errors.push(format!(
                        "{} on {label}: the results differ from sequential (hint: the function depends on shared state or order; fix that before trusting any speedup)",
                        row.mode.name()
                    ));
                }
            }
        }
    }
}

/// Modes whose time ranges overlap cannot be told apart. Rows are compared at one worker
/// count (sequential with the most workers).
fn noise_warnings(rows: &[(BenchResult, Option<String>)], label: &str, most: usize) -> Vec<String> {
    let mut warnings = Vec::new();
    let count = |r: &BenchResult| {
        if r.mode == Mode::Sequential {
            most
        } else {
            r.workers
        }
    };
    for i in 0..rows.len() {
        for j in i + 1..rows.len() {
            let (a, b) = (&rows[i].0, &rows[j].0);
            if count(a) != count(b) {
                continue;
            }
            if let (Some(amin), Some(amax), Some(bmin), Some(bmax)) =
                (a.min_s, a.max_s, b.min_s, b.max_s)
            {
                if amin <= bmax && bmin <= amax {
                    warnings.push(format!(
                        "{} and {} on {label} are within noise of each other (their times overlap); more --runs would tell them apart",
                        a.mode.name(),
                        b.mode.name()
                    ));
                }
            }
        }
    }
    warnings
}

/// Why no parallel mode beat sequential, from what gilscope saw in the threaded run.
fn why_sequential(threads_kind: Option<VerdictKind>) -> &'static str {
    match threads_kind {
        Some(VerdictKind::ObjectLockContention) => {
            "the threads take turns on the lock of an object the tasks share"
        }
        Some(VerdictKind::GilContention) => "the threads take turns on the GIL",
        Some(VerdictKind::LockContention) => "the threads wait on a lock of the program's own",
        Some(VerdictKind::GcPauses) => "the garbage collector takes much of the time",
        _ => "the tasks may be too small for their overhead",
    }
}

/// The fastest correct mode over all interpreters.
fn recommend(results: &[BenchResult], threads_kind: Option<VerdictKind>) -> Option<Recommendation> {
    let best = results
        .iter()
        .filter(|r| r.error.is_none() && r.correct != Some(false))
        .filter_map(|r| Some((r, r.median_s?)))
        .min_by(|a, b| a.1.total_cmp(&b.1))?
        .0;
    let speedup = best.speedup.unwrap_or(1.0);
    let text = if best.mode == Mode::Sequential {
        format!(
            "none of the parallel modes beat sequential: {}",
            why_sequential(threads_kind)
        )
    } else {
        format!(
            "{} with {} workers: {:.2}x faster than sequential",
            best.mode.name(),
            best.workers,
            speedup
        )
    };
    Some(Recommendation {
        python: best.python.clone(),
        mode: best.mode,
        speedup,
        text,
        threads_verdict: None,
    })
}
