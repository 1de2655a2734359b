//! The one place where findings become words: each [`Finding`] gets its headline, evidence,
//! advice and code snippet here, and each [`Forecast`] its assumptions.

mod interpreter;
mod pools;
mod threads;

use crate::analysis::queries::HotFunction;
use crate::analysis::SHORT_OF_CPUS_MIN;
use crate::model::Frame;
use crate::words::{self, file_name, pct, place};

use super::findings::{
    Assumption, Diagnosis, Finding, Forecast, GroupWords, Load, PhaseLabel, PhaseSpan, PoolLoad,
    StartMethod,
};
use super::{Phase, Prediction, Verdict, VerdictKind, FREE_THREADED_EFFICIENCY};
use interpreter::{free_threaded, gc_pauses, gil_turned_on, object_lock_contention};
use pools::{ipc_overhead, pool_parallel, pool_underused, result_bottleneck};
use threads::{
    cpu_saturated, event_loop_blocked, gil_contention, idle, io_bound, lock_contention, mixed,
    native_parallel, no_rule_fits, not_enough_evidence, single_thread_cpu, unmapped_holder,
};

/// The verdict, in words, of what the rules found.
pub(super) fn verdict(d: &Diagnosis) -> Verdict {
    let mut v = Verdict {
        kind: d.finding.kind(),
        headline: String::new(),
        evidence: Vec::new(),
        advice: Vec::new(),
        snippet: None,
        predicted_speedup: None,
        confidence: d.finding.confidence(),
        phases: d.phases.iter().map(phase).collect(),
    };
    write(&mut v, &d.finding);
    if let Some((start_s, end_s)) = d.during {
        v.headline = format!("From {start_s:.0} s to {end_s:.0} s: {}", v.headline);
    }
    if let Some((pid, command)) = &d.within {
        v.headline = format!("In PID {pid} ({command}): {}", v.headline);
    }
    v
}

/// Writes the finding's headline, evidence, advice, snippet and prediction into `v`.
fn write(v: &mut Verdict, finding: &Finding) {
    match finding {
        Finding::NotEnoughEvidence(f) => not_enough_evidence(v, f),
        Finding::UnmappedHolder(f) => unmapped_holder(v, f),
        Finding::NoRuleFits(f) => no_rule_fits(v, f),
        Finding::GilContention(f) => gil_contention(v, f),
        Finding::Mixed(f) => mixed(v, f),
        Finding::NativeParallel(f) => native_parallel(v, f),
        Finding::SingleThreadCpu(f) => single_thread_cpu(v, f),
        Finding::LockContention(f) => lock_contention(v, f),
        Finding::IoBound(f) => io_bound(v, f),
        Finding::CpuSaturated(f) => cpu_saturated(v, f),
        Finding::Idle(f) => idle(v, f),
        Finding::EventLoopBlocked(f) => event_loop_blocked(v, f),
        Finding::IpcOverhead(f) => ipc_overhead(v, f),
        Finding::ResultBottleneck(f) => result_bottleneck(v, f),
        Finding::PoolUnderused(f) => pool_underused(v, f),
        Finding::PoolParallel(f) => pool_parallel(v, f),
        Finding::FreeThreaded(f) => free_threaded(v, f),
        Finding::GilTurnedOn(f) => gil_turned_on(v, f),
        Finding::GcPauses(f) => gc_pauses(v, f),
        Finding::ObjectLockContention(f) => object_lock_contention(v, f),
    }
}

/// A group as the evidence names it: `MainThread`, `4 threads (crunch-*)`, or for threads that
/// come and go (one per request), `712 threads of Thread-* (process_request_thread), 2.1 at a
/// time`.
fn group_phrase(g: &GroupWords) -> String {
    if let Some(rate) = g.started_per_s {
        format!(
            "{} of {} ({rate:.0} started a second, {:.1} at a time)",
            words::count(g.threads, "thread"),
            g.label,
            g.at_once
        )
    } else if g.threads == 1 {
        g.label.clone()
    } else if g.label.contains('(') {
        format!("{} {} threads", g.threads, g.label)
    } else {
        format!("{} ({})", words::count(g.threads, "thread"), g.label)
    }
}

/// Groups joined into one phrase: `4 threads (crunch-*) and MainThread`.
fn groups_phrase(groups: &[GroupWords]) -> String {
    let phrases: Vec<String> = groups.iter().map(group_phrase).collect();
    match phrases.as_slice() {
        [] => "no thread".into(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Whether `groups` name a single thread, which takes a verb in the singular.
fn one_thread(groups: &[GroupWords]) -> bool {
    matches!(groups, [g] if g.threads == 1)
}

/// The verb for `groups`: `singular` for a single thread, else `plural`.
fn verb<'a>(groups: &[GroupWords], singular: &'a str, plural: &'a str) -> &'a str {
    if one_thread(groups) {
        singular
    } else {
        plural
    }
}

/// `each waited 71%` for several threads, `it waited 71%` for one.
fn each_waited(threads: f64, wait: f64) -> String {
    if threads < 1.5 {
        format!("it waited {}", pct(wait))
    } else {
        format!("each waited {}", pct(wait))
    }
}

fn phase(p: &PhaseSpan) -> Phase {
    Phase {
        start_s: p.start_s,
        end_s: p.end_s,
        kind: p.kind,
        headline: match p.label {
            PhaseLabel::Character => character(p.kind).into(),
            PhaseLabel::GilDisabled => "the GIL disabled: threads run in parallel".into(),
            PhaseLabel::GilOn => format!("the GIL on: {}", character(p.kind)),
        },
    }
}

/// A phase's character in a few words.
fn character(kind: VerdictKind) -> &'static str {
    match kind {
        VerdictKind::GilContention => "Python threads contend for the GIL",
        VerdictKind::SingleThreadCpu => "one thread runs Python",
        VerdictKind::NativeParallel => "native code runs without the GIL",
        VerdictKind::IoBound => "threads wait on I/O or sleep",
        VerdictKind::LockContention => "threads wait on the program's locks",
        VerdictKind::Idle => "mostly idle",
        VerdictKind::CpuSaturated => "every core busy",
        VerdictKind::IpcOverhead => "processes busy moving data",
        VerdictKind::FreeThreaded => "threads run Python in parallel",
        VerdictKind::Mixed => "I/O threads wait for the GIL",
        VerdictKind::PoolParallel => "a process pool busy on every core",
        VerdictKind::PoolUnderused => "a process pool with idle workers",
        VerdictKind::EventLoopBlocked => "an event loop blocked",
        VerdictKind::GcPauses => "the garbage collector running",
        VerdictKind::ObjectLockContention => "threads take turns on a shared object's lock",
        VerdictKind::Inconclusive => "no clear character",
    }
}

fn prediction(f: &Forecast) -> Prediction {
    Prediction {
        processes: f.processes,
        threads: f.threads,
        free_threaded: f.free_threaded,
        fix: f.fix,
        assumptions: f.assumptions.iter().map(|a| assumption(*a)).collect(),
    }
}

fn assumption(a: Assumption) -> String {
    match a {
        Assumption::GcRemoved { share } => format!(
            "an upper bound: the collector's {} of the run gone ({:.1}x); `gc.freeze()` removes the long-lived heap from each collection, fewer cycles make them rarer",
            pct(share),
            1.0 / (1.0 - share).max(0.05)
        ),
        Assumption::ParallelShare { parallel, workers } => format!(
            "{} of the run had several busy threads and is spread over {workers} cores; the other {} stays serial",
            pct(parallel),
            pct(1.0 - parallel)
        ),
        Assumption::EvenSplit => "the work divides evenly among the workers and shares no state".into(),
        Assumption::WorkerStartup { method, seconds } => match method {
            StartMethod::Fork => format!("the pool's workers forked, {seconds:.2} s in all (estimate)"),
            StartMethod::Forkserver => format!(
                "the pool's workers started from a forkserver (the default from 3.14), {seconds:.2} s in all; more when the program imports large libraries (estimate)"
            ),
        },
        Assumption::PicklingUnmeasured => {
            "pickling of arguments and results not measured: assumed small (estimate)".into()
        }
        Assumption::FreeThreadedSpeed => format!(
            "a free-threaded build runs Python at about {} of the default build's speed (estimate)",
            pct(FREE_THREADED_EFFICIENCY)
        ),
        Assumption::SplitFirst { cores } => format!(
            "an upper bound: the work must first be split into at least {cores} independent parts"
        ),
        Assumption::NativeAlreadyParallel => {
            "the native work already runs without the GIL on every core it can use".into()
        }
        Assumption::WaitsOutside => "the waits are outside the process: neither processes nor a free-threaded build shorten them".into(),
        Assumption::LockStays => "the lock stays as it is: only changing the locking helps".into(),
        Assumption::EveryCoreBusy => "every core is already busy".into(),
        Assumption::EveryCoreBusyWithWork => "every core is already busy with the work".into(),
        Assumption::ObjectLockRemoved { running, cores } => format!(
            "a floor: with its own object each thread works all the time, not {} of it, on {cores:.0} cores; a contended object also makes each update slower, which the fix removes too",
            pct(running)
        ),
        Assumption::AllCoresBusy {
            cores,
            busy_workers,
        } => format!(
            "an upper bound: all {cores} cores kept busy, against {busy_workers:.1} busy workers today"
        ),
    }
}

/// "1.0 of 2 cores used".
/// "1.0 of 2 cores used", and how many threads waited for a CPU when the machine was short.
fn core_line(load: &Load) -> String {
    let mut line = format!("{} used", words::of_cores(load.cores_used, load.cores, 1));
    if let Some(waiting) = load
        .threads_waiting_for_cpu
        .filter(|&w| w >= SHORT_OF_CPUS_MIN)
    {
        line.push_str(&format!(
            ", with {waiting:.1} threads on average runnable and waiting for a CPU"
        ));
    }
    line
}

/// "the GIL was held 95% of the time; 1.0 of 2 cores used", which most rules give.
fn gil_and_cores(load: &Load) -> String {
    format!(
        "the GIL was held {} of the time; {}",
        pct(load.gil_held),
        core_line(load)
    )
}

fn pool_line(pool: &PoolLoad) -> String {
    let mut line = format!(
        "{:.1} workers alive on average, {:.1} of them busy on a CPU; {} used by the whole process tree",
        pool.concurrent_workers,
        pool.busy_workers,
        words::of_cores(pool.cores_used, pool.cores, 1)
    );
    let (start, end) = pool.lifetime;
    let outside = (pool.run_s - (end - start)).max(0.0);
    if pool.run_s > 0.0 && outside / pool.run_s >= POOL_OUTSIDE_NOTE_MIN {
        let serial = outside / pool.run_s;
        line.push_str(&format!(
            "; judged over the pool's life, {start:.1}-{end:.1} s: the other {outside:.1} s of the run ({}) ran outside it, which caps the whole run's speedup at {:.1}x",
            pct(serial),
            1.0 / serial
        ));
    }
    line
}

/// The share of a run outside its pool's lifetime worth naming.
const POOL_OUTSIDE_NOTE_MIN: f64 = 0.1;

/// "the asyncio loop in MainThread", or "in its thread" for a nameless one.
fn thread_or_its(thread: Option<&str>) -> &str {
    thread.unwrap_or("its thread")
}

/// `function (file:line)`, the file's directory dropped.
fn location(frame: &Frame) -> String {
    place(&frame.function, &frame.file, frame.line)
}

/// `title`, then the `lines` under it; nothing when there are none.
fn titled(advice: &mut Vec<String>, title: &str, lines: Vec<String>) {
    if !lines.is_empty() {
        advice.push(title.into());
        advice.extend(lines);
    }
}

fn hot_lines(hot: &[HotFunction], what: &str) -> Vec<String> {
    hot.iter()
        .map(|h| {
            format!(
                "- {}:{} `{}` ({} of {what})",
                file_name(&h.file),
                h.line,
                h.function,
                pct(h.fraction)
            )
        })
        .collect()
}

/// `Waiting threads run: work (app.py:8), ...`, where the entry points are known.
fn waiting_threads_run(advice: &mut Vec<String>, entries: &[Frame]) {
    let entries = entry_places(entries);
    if !entries.is_empty() {
        advice.push(format!("Waiting threads run: {}", entries.join(", ")));
    }
}

/// The entry points' places, sorted, each once.
fn entry_places(entries: &[Frame]) -> Vec<String> {
    let mut names: Vec<String> = entries.iter().map(location).collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::findings::{
        GilTurnedOn, Idle, Mixed, NativeParallel, NoRuleFits, SingleThreadCpu, Span,
    };
    use crate::diagnosis::Confidence;
    use crate::model::ExtensionModule;
    use crate::model::Pid;

    fn load() -> Load {
        Load {
            gil_held: 0.97,
            cores_used: 1.04,
            cores: 2,
            threads_waiting_for_cpu: None,
        }
    }

    fn alone(finding: Finding) -> Diagnosis {
        Diagnosis {
            finding,
            during: None,
            within: None,
            phases: Vec::new(),
        }
    }

    #[test]
    fn a_child_judged_in_a_phase_names_both_in_order() {
        let mut d = alone(Finding::Idle(Idle { load: load() }));
        d.during = Some((1.2, 3.6));
        d.within = Some((Pid(42), "python app.py".into()));
        let v = verdict(&d);
        assert_eq!(
            v.headline,
            "In PID 42 (python app.py): From 1 s to 4 s: Idle: the program was mostly waiting, with no thread busy"
        );
        assert_eq!(v.evidence, ["1.0 of 2 cores used"]);
    }

    #[test]
    fn one_thread_takes_the_singular_and_several_the_plural() {
        let group = |label: &str, threads| GroupWords {
            label: label.into(),
            threads,
            at_once: threads as f64,
            started_per_s: None,
        };
        let mixed = |io: GroupWords, python: GroupWords| {
            verdict(&alone(Finding::Mixed(Mixed {
                io_groups: vec![io],
                io_wait: 0.65,
                python_groups: vec![python],
                python_wait: 0.6,
                load: load(),
                hot: Vec::new(),
                forecast: None,
            })))
        };
        let v = mixed(group("MainThread", 1), group("asyncio_*", 6));
        assert_eq!(
            v.headline,
            "Mixed: MainThread waits on I/O while 6 threads (asyncio_*) run Python and hold the GIL"
        );
        assert!(
            v.evidence[0].starts_with("MainThread does I/O or sleeps, yet waits 65% of its time"),
            "{}",
            v.evidence[0]
        );
        let v = mixed(group("fetch-*", 3), group("crunch", 1));
        assert_eq!(
            v.headline,
            "Mixed: 3 threads (fetch-*) wait on I/O while crunch runs Python and holds the GIL"
        );
    }

    #[test]
    fn a_script_with_one_thread_has_no_others_waiting() {
        let busy = |others| {
            verdict(&alone(Finding::SingleThreadCpu(SingleThreadCpu {
                thread: "MainThread".into(),
                on_cpu: 1.0,
                holding: 1.0,
                others,
                load: load(),
                entry: None,
                hot: Vec::new(),
                forecast: Forecast::unchanged(Assumption::EvenSplit),
            })))
            .headline
        };
        assert_eq!(
            busy(0.0),
            "One thread does all the work: MainThread is busy and no other thread takes part"
        );
        assert_eq!(
            busy(3.0),
            "One thread does all the work: MainThread is busy while the others wait"
        );
    }

    #[test]
    fn more_native_threads_than_busy_cores_is_saturation() {
        let native = |oversubscribed| {
            verdict(&alone(Finding::NativeParallel(NativeParallel {
                threads: 4.0,
                native: 0.9,
                wait: 0.01,
                oversubscribed,
                load: load(),
                hot: Vec::new(),
                forecast: Forecast::unchanged(Assumption::NativeAlreadyParallel),
            })))
        };
        let (fits, over) = (native(false), native(true));
        assert_eq!(fits.kind, VerdictKind::NativeParallel);
        assert_eq!(over.kind, VerdictKind::CpuSaturated);
        assert_eq!(over.advice.len(), fits.advice.len() + 1);
        assert!(over.advice[1].contains("2 workers (one per core)"));
    }

    #[test]
    fn no_rule_fits_lists_the_spread_and_is_not_trusted() {
        let v = verdict(&alone(Finding::NoRuleFits(NoRuleFits {
            groups: vec![
                GroupWords {
                    label: "fetch-*".into(),
                    threads: 3,
                    at_once: 3.0,
                    started_per_s: None,
                },
                GroupWords {
                    label: "Thread-* (process_request_thread)".into(),
                    threads: 400,
                    at_once: 1.2,
                    started_per_s: Some(100.0),
                },
            ],
            shares: vec![
                (crate::model::ThreadState::Io, 0.31),
                (crate::model::ThreadState::Lock, 0.25),
            ],
            load: load(),
        })));
        assert_eq!(v.kind, VerdictKind::Inconclusive);
        assert_eq!(v.confidence, Confidence::Low);
        assert!(v.predicted_speedup.is_none());
        assert_eq!(
            v.evidence[0],
            "3 threads (fetch-*) and 400 threads of Thread-* (process_request_thread) (100 started a second, 1.2 at a time) spend on average: io 31%, lock 25%"
        );
    }

    #[test]
    fn a_gil_turned_on_mid_run_splits_the_phases_in_words() {
        let d = Diagnosis {
            phases: vec![
                PhaseSpan {
                    start_s: 0.0,
                    end_s: 1.5,
                    kind: VerdictKind::FreeThreaded,
                    label: PhaseLabel::GilDisabled,
                },
                PhaseSpan {
                    start_s: 1.5,
                    end_s: 3.0,
                    kind: VerdictKind::GilContention,
                    label: PhaseLabel::GilOn,
                },
            ],
            ..alone(Finding::GilTurnedOn(GilTurnedOn {
                modules: vec![ExtensionModule {
                    name: "gil_ext".into(),
                    file: String::new(),
                }],
                at_s: 1.5,
                contended: true,
                before: None,
                after: Span {
                    seconds: 1.5,
                    cores: 1.0,
                    gil_held: 0.99,
                    gil_wait: 0.6,
                },
                cores: 2,
            }))
        };
        let v = verdict(&d);
        assert_eq!(v.kind, VerdictKind::GilContention);
        assert_eq!(v.headline, "Free-threaded CPython, but importing `gil_ext` turned the GIL back on at 1.5 s: the threads now take turns on it");
        let phases: Vec<&str> = v.phases.iter().map(|p| p.headline.as_str()).collect();
        assert_eq!(
            phases,
            [
                "the GIL disabled: threads run in parallel",
                "the GIL on: Python threads contend for the GIL"
            ]
        );
        // No "before" span: the GIL was on from the first window.
        assert_eq!(v.evidence.len(), 2);
    }

    #[test]
    fn every_assumption_is_a_sentence_of_its_own() {
        let all = [
            Assumption::ParallelShare {
                parallel: 0.9,
                workers: 2.0,
            },
            Assumption::EvenSplit,
            Assumption::WorkerStartup {
                method: StartMethod::Fork,
                seconds: 0.01,
            },
            Assumption::WorkerStartup {
                method: StartMethod::Forkserver,
                seconds: 0.07,
            },
            Assumption::PicklingUnmeasured,
            Assumption::FreeThreadedSpeed,
            Assumption::SplitFirst { cores: 2 },
            Assumption::NativeAlreadyParallel,
            Assumption::WaitsOutside,
            Assumption::LockStays,
            Assumption::EveryCoreBusy,
            Assumption::EveryCoreBusyWithWork,
            Assumption::AllCoresBusy {
                cores: 2,
                busy_workers: 0.96,
            },
        ];
        let words: std::collections::HashSet<String> = all.iter().map(|a| assumption(*a)).collect();
        assert_eq!(words.len(), all.len());
        assert!(words.contains(
            "90% of the run had several busy threads and is spread over 2 cores; the other 10% stays serial"
        ));
        assert!(
            words.contains("an upper bound: all 2 cores kept busy, against 1.0 busy workers today")
        );
    }
}
