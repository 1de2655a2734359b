//! Each verdict rule on a recorded run (CPython 3.12, 2 cores), replayed with no live process.
//! The recordings were made with `gilscope record -o tests/recordings/NAME.gilscope --
//! python3.12 tests/workloads/NAME.py 1.5`.

mod common;

use gilscope::analysis::Aggregator;
use gilscope::diagnosis::{diagnose, Verdict, VerdictKind};
use gilscope::model::{GilMode, Record};
use gilscope::recording::RecordingReader;

fn verdict(name: &str) -> Verdict {
    diagnose(&gilscope::recording::replay(&common::recording(name)).unwrap())
}

#[test]
fn gil_contention_names_the_function_and_predicts() {
    let v = verdict("cpu_threads");
    assert_eq!(v.kind, VerdictKind::GilContention);
    assert!(
        v.evidence[0].starts_with("4 threads (worker-*) ran Python"),
        "{:?}",
        v.evidence
    );
    let advice = v.advice.join("\n");
    assert!(advice.contains("cpu_threads.py:"), "{advice}");
    assert!(advice.contains("multiprocessing.Pool"), "{advice}");
    assert!(advice.contains("__main__"), "{advice}");
    let p = v.predicted_speedup.unwrap();
    let processes = p.processes.unwrap();
    // At most the cores over the cores the threads used (0.99 of 2 here), less the pool's start.
    assert!((1.4..=2.05).contains(&processes), "{processes}");
    assert_eq!(p.threads, Some(1.0));
    assert!(p.assumptions.iter().any(|a| a.contains("estimate")));
}

#[test]
fn io_bound() {
    let v = verdict("io_threads");
    assert_eq!(v.kind, VerdictKind::IoBound);
    assert!(v.advice.join(" ").contains("asyncio"));
}

#[test]
fn native_threads_already_work() {
    let v = verdict("native_threads");
    assert!(matches!(
        v.kind,
        VerdictKind::NativeParallel | VerdictKind::CpuSaturated
    ));
    assert!(v.headline.contains("Threads already work"));
}

#[test]
fn single_thread_cpu() {
    let v = verdict("one_busy");
    assert_eq!(v.kind, VerdictKind::SingleThreadCpu);
    assert!(v.advice[0].starts_with("Split the work"));
    assert!(v.advice.join(" ").contains("one_busy.py:"));
}

#[test]
fn lock_contention_names_where_they_wait() {
    let v = verdict("lock_sleep");
    assert_eq!(v.kind, VerdictKind::LockContention);
    let advice = v.advice.join("\n");
    assert!(advice.contains("Where the threads wait"), "{advice}");
    assert!(advice.contains("lock_sleep.py:"), "{advice}");
}

#[test]
fn python_and_native_threads_contend() {
    assert_eq!(verdict("mixed_cpu_native").kind, VerdictKind::GilContention);
}

#[test]
fn io_threads_beside_cpu_threads_are_mixed() {
    let v = verdict("io_and_cpu");
    assert_eq!(v.kind, VerdictKind::Mixed);
    assert!(v.advice[0].contains("ProcessPoolExecutor"));
}

#[test]
fn phases_are_reported_separately() {
    let v = verdict("phases");
    assert_eq!(v.kind, VerdictKind::GilContention, "{}", v.headline);
    let kinds: Vec<_> = v.phases.iter().map(|p| p.kind).collect();
    assert_eq!(kinds, [VerdictKind::IoBound, VerdictKind::GilContention]);
    assert!((v.phases[0].end_s - 3.0).abs() <= 1.0, "{:?}", v.phases);
    // Judged by its CPU phase, the process's figures are the phase's: the compute threads
    // kept the GIL held throughout it (over the whole run, with the I/O phase, about half).
    assert!(v.headline.starts_with("From 3 s to 6 s"), "{}", v.headline);
    let held: f64 = v.evidence[0]
        .split("the GIL was held ")
        .nth(1)
        .and_then(|rest| rest.split('%').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no GIL held in {:?}", v.evidence));
    assert!(held >= 90.0, "{}", v.evidence[0]);
}

#[test]
fn too_few_samples_is_not_enough_evidence() {
    let mut reader = RecordingReader::open(&common::recording("cpu_threads")).unwrap();
    let mut aggregator = Aggregator::new();
    let mut samples = 0;
    while let Some(record) = reader.next_record().unwrap() {
        if matches!(record, gilscope::model::Record::Sample(_)) {
            samples += 1;
            if samples > 20 {
                break;
            }
        }
        aggregator.push(&record);
    }
    let v = diagnose(&aggregator.finish());
    assert_eq!(v.kind, VerdictKind::Inconclusive);
    assert!(
        v.headline.starts_with("Not enough evidence: 20 samples"),
        "{}",
        v.headline
    );
    assert_eq!(v.confidence, gilscope::diagnosis::Confidence::Low);
}

#[test]
fn replay_is_deterministic() {
    let a = gilscope::recording::replay(&common::recording("mixed_cpu_native")).unwrap();
    let b = gilscope::recording::replay(&common::recording("mixed_cpu_native")).unwrap();
    assert_eq!(a, b);
    assert_eq!(diagnose(&a), diagnose(&b));
}

/// A synthetic free-threaded run: four threads busy on the CPU, the GIL `locked` as given.
fn free_threaded_run(gil_locked: bool) -> gilscope::analysis::Analysis {
    use gilscope::model::{GilReading, Sample, Syscall, ThreadSample};
    let mut agg = Aggregator::new();
    agg.push(&Record::Target(common::synthetic_target(
        "3.13.0",
        GilMode::Disabled,
        4,
    )));
    for i in 0..200u64 {
        let t = i * 10_000_000;
        agg.push(&gilscope::model::Record::Sample(Sample {
            t_ns: t,
            process_cpu_ns: Some(t * 4),
            gil: Some(GilReading {
                locked: gil_locked,
                holder_tid: None,
                switch_number: Some(0),
                enabled: Some(gil_locked),
            }),
            threads: (1..=4)
                .map(|tid| ThreadSample {
                    tid: gilscope::model::Tid(tid),
                    syscall: Some(Syscall::Running),
                    cpu_ns: Some(t),
                    stack: None,
                    python: true,
                })
                .collect(),
        }));
    }
    agg.finish()
}

#[test]
fn free_threaded_build() {
    let v = diagnose(&free_threaded_run(false));
    assert_eq!(v.kind, VerdictKind::FreeThreaded);
    assert!(
        v.headline.contains("threads run Python in parallel"),
        "{}",
        v.headline
    );
    let v = diagnose(&free_threaded_run(true));
    assert_eq!(v.kind, VerdictKind::FreeThreaded);
    assert!(v.headline.contains("turned back on"), "{}", v.headline);
    assert!(v.advice.join(" ").contains("PYTHON_GIL"));
}

/// Cyclic garbage beside a large live heap (tests/workloads/gc_heavy.py, CPython 3.12): the
/// collector ran in most samples, whatever the threads did.
#[test]
fn a_run_dominated_by_the_collector_is_gc_pauses() {
    let v = verdict("gc_heavy");
    assert_eq!(v.kind, VerdictKind::GcPauses, "{}", v.headline);
    assert!(
        v.evidence[0].contains("collecting in 8"),
        "{:?}",
        v.evidence
    );
    let advice = v.advice.join("\n");
    assert!(advice.contains("gc.freeze()"), "{advice}");
    assert!(
        advice.contains("gc_heavy.py:"),
        "where it allocates: {advice}"
    );
    let p = v.predicted_speedup.unwrap();
    assert_eq!(p.processes, Some(1.0), "processes would collect too");
}

/// `--subprocesses` recordings: a pool's parent and workers, replayed.
#[test]
fn a_working_pool_says_so() {
    let v = verdict("pool_good");
    assert_eq!(v.kind, VerdictKind::PoolParallel, "{}", v.headline);
    assert!(v.headline.contains("process pool works"), "{}", v.headline);
    let evidence = v.evidence.join("\n");
    assert!(evidence.contains("burn (pool_good.py)"), "{evidence}");
}

#[test]
fn pickling_large_arguments_is_ipc_overhead() {
    let v = verdict("pool_pickle");
    assert_eq!(v.kind, VerdictKind::IpcOverhead, "{}", v.headline);
    // The measured share of pickling and sending is in the headline.
    assert!(
        v.headline.contains("% of the CPU time goes to pickling"),
        "{}",
        v.headline
    );
    let advice = v.advice.join("\n");
    assert!(advice.contains("chunksize"), "{advice}");
    assert!(advice.contains("shared_memory"), "{advice}");
}

#[test]
fn one_worker_on_two_cores_is_an_underused_pool() {
    let v = verdict("pool_underused");
    assert_eq!(v.kind, VerdictKind::PoolUnderused, "{}", v.headline);
    assert!(
        v.headline.contains("1 worker for 2 cores"),
        "{}",
        v.headline
    );
    assert!(v.advice[0].contains("Pool(2)"), "{:?}", v.advice);
}

#[test]
fn a_sleeping_coroutine_blocks_the_loop() {
    let v = verdict("asyncio_blocking");
    assert_eq!(v.kind, VerdictKind::EventLoopBlocked, "{}", v.headline);
    assert!(v.headline.contains("blocking calls"), "{}", v.headline);
    let advice = v.advice.join("\n");
    assert!(advice.contains("asyncio.to_thread"), "{advice}");
    assert!(advice.contains("- handle ("), "{advice}");
}

#[test]
fn a_waiting_loop_is_healthy_io() {
    let v = verdict("asyncio_healthy");
    assert_eq!(v.kind, VerdictKind::IoBound, "{}", v.headline);
    assert!(
        v.evidence.iter().any(|e| e.contains("it is not blocked")),
        "{:?}",
        v.evidence
    );
}

/// The per-process section of a tree: roles, and each worker's own GIL.
#[test]
fn a_tree_reports_each_process() {
    let analysis = gilscope::recording::replay(&common::recording("pool_good")).unwrap();
    let report = gilscope::report::diagnosed(&analysis);
    let roles: Vec<&str> = report.processes.iter().map(|p| p.role.name()).collect();
    assert_eq!(roles, ["parent", "pool worker", "pool worker"]);
    for worker in &report.processes[1..] {
        let held = worker.gil_held.unwrap();
        assert!(held > 0.6, "a busy worker holds its own GIL: {held}");
        assert!(!worker.threads.is_empty());
    }
    let mut text = Vec::new();
    gilscope::render::terminal::render(
        &report,
        gilscope::render::terminal::Style {
            color: false,
            threads: false,
        },
        &mut text,
    )
    .unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("3 processes:"), "{text}");
    assert!(text.contains("pool worker"), "{text}");
}

/// Four busy threads and a GIL held by a thread id none of them has (a PID namespace not
/// translated): no thread can be shown holding it, so no verdict is built on it.
#[test]
fn a_gil_held_by_an_unmapped_thread_gives_no_verdict() {
    use gilscope::model::{GilReading, Record, Sample, Syscall, ThreadSample};
    let mut agg = Aggregator::new();
    agg.push(&Record::Target(common::synthetic_target(
        "3.12.1",
        GilMode::Enabled,
        2,
    )));
    for i in 0..300u64 {
        let t = i * 10_000_000;
        agg.push(&Record::Sample(Sample {
            t_ns: t,
            process_cpu_ns: Some(t),
            gil: Some(GilReading {
                locked: true,
                holder_tid: Some(gilscope::model::Tid(7)), // the namespace's id, not gilscope's
                switch_number: Some(i),
                enabled: None,
            }),
            threads: (100..104)
                .map(|tid| ThreadSample {
                    tid: gilscope::model::Tid(tid),
                    syscall: Some(Syscall::Running),
                    cpu_ns: Some(t / 4),
                    stack: None,
                    python: true,
                })
                .collect(),
        }));
    }
    let v = diagnose(&agg.finish());
    assert_eq!(v.kind, VerdictKind::Inconclusive, "{}", v.headline);
    assert_eq!(
        v.headline,
        "Cannot tell: the GIL was held 100% of the time by a thread gilscope could not map"
    );
    assert!(v.advice.join(" ").contains("PID namespace"));
    assert_eq!(v.confidence, gilscope::diagnosis::Confidence::Low);
}

/// A free-threaded run whose GIL an import turns on at 1 s: parallel, then one thread holds it
/// while three wait on it. The verdict names the module and the moment, and splits the phases.
#[test]
fn a_gil_turned_back_on_names_the_module_and_splits_the_run() {
    use gilscope::model::{ExtensionModule, GilReading, Record, Sample, Syscall, ThreadSample};
    let mut agg = Aggregator::new();
    agg.push(&Record::Target(common::synthetic_target(
        "3.13.5",
        GilMode::Disabled,
        2,
    )));
    agg.push(&Record::GilRanges(vec![(0x1000, 0x1000 + 216)]));
    let on_at = 100u64;
    for i in 0..300u64 {
        let t = i * 10_000_000;
        let on = i >= on_at;
        if i == on_at {
            agg.push(&Record::GilEnabled {
                t_ns: t,
                modules: vec![ExtensionModule {
                    name: "legacy_ext".into(),
                    file: "/app/legacy_ext.so".into(),
                }],
            });
        }
        let holder = 1 + (i % 4) as u32;
        agg.push(&Record::Sample(Sample {
            t_ns: t,
            process_cpu_ns: Some(if on {
                on_at * 20_000_000 + (t - on_at * 10_000_000)
            } else {
                t * 2
            }),
            gil: Some(GilReading {
                locked: on,
                holder_tid: on.then_some(gilscope::model::Tid(holder)),
                switch_number: Some(i),
                enabled: Some(on),
            }),
            threads: (1..=4u32)
                .map(|tid| ThreadSample {
                    tid: gilscope::model::Tid(tid),
                    syscall: Some(if !on || tid == holder {
                        Syscall::Running
                    } else {
                        Syscall::Blocked {
                            nr: 202,
                            args: [0x1000 + 72, 0, 0],
                        }
                    }),
                    cpu_ns: Some(t / 2),
                    stack: None,
                    python: true,
                })
                .collect(),
        }));
    }
    let v = diagnose(&agg.finish());
    assert_eq!(v.kind, VerdictKind::GilContention, "{}", v.headline);
    assert_eq!(
        v.headline,
        "Free-threaded CPython, but importing `legacy_ext` turned the GIL back on at 1.0 s: the threads now take turns on it"
    );
    assert!(v.evidence.join("\n").contains("/app/legacy_ext.so"));
    assert!(v.advice.join(" ").contains("PYTHON_GIL=0"));
    let kinds: Vec<VerdictKind> = v.phases.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [VerdictKind::FreeThreaded, VerdictKind::GilContention]
    );
}
