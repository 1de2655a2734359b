//! `gilscope bench`: the user's function run sequentially, in threads and in processes (and
//! more), each in a fresh interpreter, timed side by side, checked for equal results, with the
//! GIL evidence of each mode.
//!
//! [`run_benchmark`] is a pure function of an [`Executor`]: the live one spawns the Python
//! driver; tests use a mock, so the statistics and the table are deterministic.

pub mod live;
pub mod output;
mod runs;

pub use runs::{run_benchmark, LARGE_ARGS_BYTES, MIN_CPU_MEASURE_S};

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How the tasks are spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Sequential,
    Threads,
    Processes,
    Interpreters,
    Asyncio,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Sequential => "sequential",
            Mode::Threads => "threads",
            Mode::Processes => "processes",
            Mode::Interpreters => "interpreters",
            Mode::Asyncio => "asyncio",
        }
    }
}

/// What to benchmark, checked.
#[derive(Debug, Clone)]
pub struct BenchPlan {
    /// `FILE.py:FUNCTION` or `module:FUNCTION`.
    pub target: String,
    pub args: Vec<String>,
    pub tasks: usize,
    pub tasks_from: Option<String>,
    pub workers: usize,
    /// The worker counts each parallel mode runs with: `[workers]`, or with `--scaling`
    /// [`scaling_counts`].
    pub worker_counts: Vec<usize>,
    pub runs: usize,
    pub warmup: usize,
    pub modes: Vec<Mode>,
    /// Modes left out without a word where the interpreter lacks them (defaults, not asked for).
    pub optional_modes: Vec<Mode>,
    pub pythons: Vec<PathBuf>,
    pub timeout_s: f64,
    /// Sample the first warm-up run of each in-process mode for GIL evidence.
    pub evidence: bool,
}

/// `--scaling`'s worker counts: 1, 2, 4 ... below `workers`, then `workers`.
pub fn scaling_counts(workers: usize) -> Vec<usize> {
    let mut counts: Vec<usize> = std::iter::successors(Some(1usize), |n| n.checked_mul(2))
        .take_while(|&n| n < workers)
        .collect();
    counts.push(workers.max(1));
    counts
}

/// The GIL evidence of one sampled run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub gil_held: Option<f64>,
    /// Mean GIL-wait share of the threads that ran the tasks.
    pub gil_wait: f64,
    pub verdict_kind: crate::diagnosis::VerdictKind,
    pub verdict_headline: String,
    /// The verdict stands on enough evidence (a run too short for one says so instead).
    #[serde(default)]
    pub confident: bool,
}

/// One run of the driver.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// The timed section (all tasks in this mode).
    pub elapsed_s: f64,
    /// Cores busy during the timed section: CPU time of the driver and its workers over
    /// the elapsed time.
    pub cores_used: f64,
    pub digest: String,
    pub arg_bytes: u64,
    pub pickle_s: f64,
    /// The number of tasks the driver ran (from `--tasks` or the iterable).
    pub tasks: usize,
    pub python_version: String,
    pub free_threaded: bool,
    pub gil_enabled: bool,
    pub evidence: Option<Evidence>,
    /// How `processes` started its workers (multiprocessing's start method).
    pub start_method: Option<String>,
}

/// Why a run produced no time. Each names the cause and the fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunFailure {
    #[error("{target} cannot be sent to worker processes ({detail})")]
    UnpicklableFunction { target: String, detail: String },
    #[error("the module starts processes when imported ({detail})")]
    MissingMainGuard { detail: String },
    #[error("the function raised {detail}")]
    FunctionRaised { detail: String },
    #[error("a {mode} run took longer than --timeout {timeout_s} s")]
    Timeout { mode: &'static str, timeout_s: f64 },
    #[error("the results cannot be pickled back from the workers ({detail})")]
    UnpicklableResult { detail: String },
    #[error("{mode} is not available on this interpreter ({detail})")]
    Unavailable { mode: &'static str, detail: String },
    #[error("{detail}")]
    Setup { detail: String },
}

impl RunFailure {
    pub fn hint(&self) -> &'static str {
        match self {
            RunFailure::UnpicklableFunction { .. } => "define the function at the top level of a module (not a lambda, a nested function or one typed at the interactive prompt)",
            RunFailure::MissingMainGuard { .. } => "put the code that starts work under `if __name__ == \"__main__\":`",
            RunFailure::FunctionRaised { .. } => "fix the function or its arguments; try it once by hand first",
            RunFailure::Timeout { .. } => "a task hangs or is slower than expected: check it, or raise --timeout",
            RunFailure::UnpicklableResult { .. } => "return plain data (numbers, strings, lists, dicts) rather than open files, locks or generators",
            RunFailure::Unavailable { .. } => "leave this mode out (--modes), or use an interpreter that has it",
            RunFailure::Setup { .. } => "check FILE.py:FUNCTION, the arguments and --python",
        }
    }
}

/// Runs the driver once. `sampled`: record GIL evidence while it runs.
pub trait Executor {
    /// The target file's lines that run code at import, read without importing it.
    fn unguarded_lines(&mut self, python: &std::path::Path) -> Vec<u32>;

    fn run(
        &mut self,
        python: &std::path::Path,
        mode: Mode,
        workers: usize,
        sampled: bool,
    ) -> Result<RunOutcome, RunFailure>;

    /// Told before each run: the interpreter, the mode, and which run of how many (the
    /// warm-ups first).
    fn starting(&mut self, _python: &std::path::Path, _mode: Mode, _run: RunNumber) {}
}

/// Which run of a mode is starting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunNumber {
    /// From 1, warm-ups included.
    pub index: usize,
    pub warmups: usize,
    pub runs: usize,
}

impl RunNumber {
    /// `warm-up 1 of 1`, `run 3 of 5`.
    pub fn describe(&self) -> String {
        if self.index <= self.warmups {
            format!("warm-up {} of {}", self.index, self.warmups)
        } else {
            format!("run {} of {}", self.index - self.warmups, self.runs)
        }
    }
}

/// One row of the table: an interpreter and a mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    pub python: String,
    pub python_version: String,
    pub free_threaded: bool,
    pub mode: Mode,
    pub workers: usize,
    pub median_s: Option<f64>,
    pub min_s: Option<f64>,
    pub max_s: Option<f64>,
    /// Median of sequential over median of this mode, on the same interpreter.
    pub speedup: Option<f64>,
    /// The speedup's spread: fastest sequential over slowest run, to slowest sequential over
    /// fastest run.
    pub speedup_min: Option<f64>,
    pub speedup_max: Option<f64>,
    pub cores_used: Option<f64>,
    pub gil_held: Option<f64>,
    pub gil_wait: Option<f64>,
    /// What gilscope made of the sampled run (in-process modes), where it had enough evidence.
    #[serde(default)]
    pub verdict: Option<crate::diagnosis::VerdictKind>,
    /// Tasks finished a second (median run).
    #[serde(default)]
    pub tasks_per_s: Option<f64>,
    /// Same results as sequential (`None` when there is nothing to compare).
    pub correct: Option<bool>,
    pub error: Option<String>,
    pub times_s: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub python: String,
    pub mode: Mode,
    pub speedup: f64,
    pub text: String,
    /// The verdict of the threaded run, from its GIL evidence.
    pub threads_verdict: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub schema: String,
    pub target: String,
    pub args: Vec<String>,
    pub tasks: usize,
    pub workers: usize,
    pub runs: usize,
    pub warmup: usize,
    /// Each parallel mode ran at several worker counts (`--scaling`).
    #[serde(default)]
    pub scaling: bool,
    pub results: Vec<BenchResult>,
    pub recommendation: Option<Recommendation>,
    pub warnings: Vec<String>,
    /// One-line errors, with their hints.
    pub errors: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

    /// Replays scripted outcomes: times per (python, mode), in order.
    struct Mock {
        times: HashMap<(String, Mode), Vec<f64>>,
        digests: HashMap<Mode, String>,
        failures: HashMap<Mode, RunFailure>,
        calls: Vec<(Mode, bool)>,
        workers: Vec<(Mode, usize)>,
    }

    impl Mock {
        fn new(times: &[(Mode, &[f64])]) -> Mock {
            Mock {
                times: times
                    .iter()
                    .map(|(m, t)| (("py".to_string(), *m), t.to_vec()))
                    .collect(),
                digests: HashMap::new(),
                failures: HashMap::new(),
                calls: Vec::new(),
                workers: Vec::new(),
            }
        }
    }

    impl Executor for Mock {
        fn unguarded_lines(&mut self, _python: &Path) -> Vec<u32> {
            vec![]
        }

        fn run(
            &mut self,
            python: &Path,
            mode: Mode,
            workers: usize,
            sampled: bool,
        ) -> Result<RunOutcome, RunFailure> {
            self.calls.push((mode, sampled));
            self.workers.push((mode, workers));
            if let Some(f) = self.failures.get(&mode) {
                return Err(f.clone());
            }
            let queue = self
                .times
                .get_mut(&(python.display().to_string(), mode))
                .unwrap();
            let elapsed_s = queue.remove(0);
            Ok(RunOutcome {
                elapsed_s,
                cores_used: if mode == Mode::Processes { 2.0 } else { 1.0 },
                digest: self
                    .digests
                    .get(&mode)
                    .cloned()
                    .unwrap_or_else(|| "same".into()),
                arg_bytes: 0,
                pickle_s: 0.0,
                tasks: 4,
                python_version: "3.12.1".into(),
                free_threaded: false,
                gil_enabled: true,
                evidence: sampled.then(|| Evidence {
                    gil_held: Some(0.99),
                    gil_wait: 0.7,
                    verdict_kind: crate::diagnosis::VerdictKind::GilContention,
                    verdict_headline: "GIL contention".into(),
                    confident: true,
                }),
                start_method: (mode == Mode::Processes).then(|| "fork".into()),
            })
        }
    }

    fn plan(modes: &[Mode]) -> BenchPlan {
        BenchPlan {
            target: "work.py:f".into(),
            args: vec!["10".into()],
            tasks: 4,
            tasks_from: None,
            workers: 2,
            worker_counts: vec![2],
            runs: 3,
            warmup: 1,
            modes: modes.to_vec(),
            optional_modes: vec![Mode::Interpreters],
            pythons: vec!["py".into()],
            timeout_s: 10.0,
            evidence: true,
        }
    }

    use Mode::*;

    #[test]
    fn statistics_and_recommendation() {
        let mut mock = Mock::new(&[
            (Sequential, &[9.0, 2.0, 2.2, 2.1]),
            (Threads, &[9.0, 2.3, 2.4, 2.5]),
            (Processes, &[9.0, 1.0, 1.2, 1.1]),
        ]);
        let report = run_benchmark(&plan(&[Sequential, Threads, Processes]), &mut mock);
        let row = |m: Mode| report.results.iter().find(|r| r.mode == m).unwrap();
        // The warm-up (9.0) is not counted.
        assert_eq!(row(Sequential).median_s, Some(2.1));
        assert_eq!(row(Sequential).min_s, Some(2.0));
        assert_eq!(row(Sequential).max_s, Some(2.2));
        let p = row(Processes);
        assert!((p.speedup.unwrap() - 2.1 / 1.1).abs() < 1e-12);
        assert!((p.speedup_min.unwrap() - 2.0 / 1.2).abs() < 1e-12);
        assert!((p.speedup_max.unwrap() - 2.2 / 1.0).abs() < 1e-12);
        assert_eq!(p.correct, Some(true));
        assert_eq!(p.cores_used, Some(2.0));
        assert_eq!(p.gil_held, None, "processes are not sampled");
        assert_eq!(row(Threads).gil_held, Some(0.99));
        let rec = report.recommendation.unwrap();
        assert_eq!(rec.mode, Processes);
        assert_eq!(
            rec.threads_verdict.as_deref(),
            Some("GIL contention (gil_contention)")
        );
        // Only the first warm-up of in-process modes is sampled.
        let sampled: Vec<_> = mock.calls.iter().filter(|c| c.1).map(|c| c.0).collect();
        assert_eq!(sampled, [Sequential, Threads]);
        assert!(report.errors.is_empty());
    }

    #[test]
    fn scaling_counts_double_up_to_the_workers() {
        assert_eq!(scaling_counts(0), [1]);
        assert_eq!(scaling_counts(1), [1]);
        assert_eq!(scaling_counts(2), [1, 2]);
        assert_eq!(scaling_counts(4), [1, 2, 4]);
        assert_eq!(scaling_counts(6), [1, 2, 4, 6]);
    }

    #[test]
    fn scaling_runs_each_parallel_mode_at_each_count() {
        let mut mock = Mock::new(&[
            (Sequential, &[9.0, 2.0, 2.0, 2.0]),
            (Threads, &[9.0, 2.0, 2.0, 2.0, 9.0, 1.0, 1.0, 1.0]),
            (Processes, &[9.0, 2.1, 2.1, 2.1, 9.0, 1.3, 1.3, 1.3]),
        ]);
        let plan = BenchPlan {
            worker_counts: vec![1, 2],
            ..plan(&[Sequential, Threads, Processes])
        };
        let report = run_benchmark(&plan, &mut mock);
        assert!(report.scaling);
        let shape: Vec<(Mode, usize)> =
            report.results.iter().map(|r| (r.mode, r.workers)).collect();
        assert_eq!(
            shape,
            [
                (Sequential, 1),
                (Threads, 1),
                (Threads, 2),
                (Processes, 1),
                (Processes, 2)
            ]
        );
        let threads2 = &report.results[2];
        assert_eq!(threads2.speedup, Some(2.0));
        assert_eq!(threads2.tasks_per_s, Some(4.0));
        assert_eq!(
            threads2.verdict,
            Some(crate::diagnosis::VerdictKind::GilContention),
            "each threaded count is sampled"
        );
        assert_eq!(report.results[4].verdict, None, "processes are not sampled");
        let sampled_threads = mock.calls.iter().filter(|c| c == &&(Threads, true)).count();
        assert_eq!(sampled_threads, 2);
        assert!(mock.workers.contains(&(Processes, 2)) && mock.workers.contains(&(Threads, 1)));
        // Rows at different counts are not compared for noise: threads at 1 and sequential
        // took the same time, and that is the point of the table.
        assert!(
            report.warnings.iter().all(|w| !w.contains("noise")),
            "{:?}",
            report.warnings
        );
        let mut table = Vec::new();
        output::terminal(&report, &mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert!(
            table.contains("per worker") && table.contains("tasks/s") && table.contains("seen"),
            "{table}"
        );
        assert!(
            table.contains("threads           2  1.00 s  1.00 s  1.00 s  2.00x (2.00-2.00)        1.00      4.0"),
            "{table}"
        );
    }

    #[test]
    fn overlapping_times_warn_of_noise() {
        let mut mock = Mock::new(&[
            (Sequential, &[1.0, 2.0, 2.2, 2.1]),
            (Threads, &[1.0, 2.15, 2.4, 2.3]),
        ]);
        let report = run_benchmark(&plan(&[Sequential, Threads]), &mut mock);
        assert!(report
            .warnings
            .iter()
            .any(|w| w.contains("sequential and threads") && w.contains("noise")));
    }

    #[test]
    fn different_results_are_an_error_not_a_speedup() {
        let mut mock = Mock::new(&[
            (Sequential, &[1.0, 2.0, 2.0, 2.0]),
            (Threads, &[1.0, 1.0, 1.0, 1.0]),
        ]);
        mock.digests.insert(Threads, "other".into());
        let report = run_benchmark(&plan(&[Sequential, Threads]), &mut mock);
        assert_eq!(report.results[1].correct, Some(false));
        assert!(report.errors[0].contains("results differ from sequential"));
        assert_eq!(report.recommendation.unwrap().mode, Sequential);
    }

    #[test]
    fn failures() {
        let mut mock = Mock::new(&[
            (Sequential, &[1.0, 2.0, 2.0, 2.0]),
            (Threads, &[1.0, 1.5, 1.5, 1.5]),
        ]);
        mock.failures.insert(
            Processes,
            RunFailure::UnpicklableFunction {
                target: "work.py:f".into(),
                detail: "lambda".into(),
            },
        );
        mock.failures.insert(
            Interpreters,
            RunFailure::Unavailable {
                mode: "interpreters",
                detail: "3.14+".into(),
            },
        );
        let report = run_benchmark(
            &plan(&[Sequential, Threads, Processes, Interpreters]),
            &mut mock,
        );
        assert_eq!(
            report.results.len(),
            3,
            "an unavailable default mode leaves no row"
        );
        assert_eq!(report.errors.len(), 1);
        assert!(report.errors[0]
            .starts_with("processes on py: work.py:f cannot be sent to worker processes"));
        assert!(report.errors[0].contains("hint: define the function at the top level"));
        assert_eq!(report.recommendation.unwrap().mode, Threads);

        let mut mock = Mock::new(&[]);
        mock.failures.insert(
            Sequential,
            RunFailure::FunctionRaised {
                detail: "ValueError: boom".into(),
            },
        );
        let report = run_benchmark(&plan(&[Sequential, Threads, Processes]), &mut mock);
        assert_eq!(
            report.errors.len(),
            1,
            "no baseline: the other modes do not run"
        );
        assert_eq!(mock.calls.len(), 1);
        assert!(report.recommendation.is_none());
    }

    #[test]
    fn table_and_markdown() {
        let mut mock = Mock::new(&[
            (Sequential, &[1.0, 2.0, 2.2, 2.1]),
            (Processes, &[1.0, 1.0, 1.2, 1.1]),
        ]);
        let report = run_benchmark(&plan(&[Sequential, Processes]), &mut mock);
        let mut table = Vec::new();
        output::terminal(&report, &mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert!(table.contains("py (3.12.1)"), "{table}");
        assert!(
            table.contains("processes   1.10 s  1.00 s  1.20 s  1.91x (1.67-2.20)   2.00"),
            "{table}"
        );
        assert!(
            table
                .contains("Recommendation: processes with 2 workers: 1.91x faster than sequential"),
            "{table}"
        );
        let mut md = Vec::new();
        output::markdown(&report, &mut md).unwrap();
        let md = String::from_utf8(md).unwrap();
        assert!(
            md.contains(
                "| processes | 1.10 s | 1.00 s | 1.20 s | 1.91x (1.67-2.20) | 2.00 | - | - | yes |"
            ),
            "{md}"
        );
        let mut json = Vec::new();
        crate::render::json(&report, &mut json).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let r = &v["results"][1];
        for key in [
            "python",
            "mode",
            "workers",
            "median_s",
            "min_s",
            "max_s",
            "speedup",
            "cores_used",
            "gil_held",
            "correct",
        ] {
            assert!(r.get(key).is_some(), "missing {key}");
        }
        assert_eq!(r["mode"], "processes");
        assert_eq!(v["recommendation"]["mode"], "processes");
    }
}
