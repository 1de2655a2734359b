//! Property tests as fuzzers: nothing may panic or allocate without bound on arbitrary input.
//! CI runs the default 256 cases per property; a long run is
//! `PROPTEST_CASES=200000 cargo test --release --test fuzz` (see docs/robustness.md).

use gilscope::analysis::Aggregator;
use gilscope::classify::{classify, syscall_kind, Arch, Observation};
use gilscope::diagnosis::diagnose;
use gilscope::model::{
    Attachment, CpythonThreadStatus, Frame, GilReading, Pid, Record, RunnablePlace, Sample,
    Syscall, TargetInfo, ThreadSample, ThreadState, Tid,
};
use gilscope::recording::RecordingReader;
use gilscope::render;
use gilscope::report;
use gilscope::sampler::procfs::{parse_kernel_stack, parse_schedstat, parse_stat, parse_syscall};
use proptest::prelude::*;

fn syscall() -> impl Strategy<Value = Option<Syscall>> {
    prop_oneof![
        Just(None),
        Just(Some(Syscall::Running)),
        Just(Some(Syscall::NotInSyscall)),
        proptest::sample::select(vec![
            RunnablePlace::OnCpu,
            RunnablePlace::FutexWake,
            RunnablePlace::UserCode,
            RunnablePlace::SyscallExit,
            RunnablePlace::Kernel,
        ])
        .prop_map(|place| Some(Syscall::Runnable(place))),
        (any::<i64>(), any::<[u64; 3]>())
            .prop_map(|(nr, args)| Some(Syscall::Blocked { nr, args })),
        (0i64..500, any::<[u64; 3]>()).prop_map(|(nr, args)| Some(Syscall::Blocked { nr, args })),
    ]
}

fn state() -> impl Strategy<Value = ThreadState> {
    proptest::sample::select(ThreadState::ALL.to_vec())
}

fn record() -> impl Strategy<Value = Record> {
    let thread = (
        1u32..6,
        syscall(),
        proptest::option::of(any::<u64>()),
        proptest::option::of(0u32..8),
        any::<bool>(),
    )
        .prop_map(|(tid, syscall, cpu_ns, stack, python)| ThreadSample {
            tid: Tid(tid),
            syscall,
            cpu_ns,
            stack,
            python,
        });
    let gil = proptest::option::of(
        (
            any::<bool>(),
            proptest::option::of(1u32..6),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(|(locked, holder_tid, switch_number)| GilReading {
                locked,
                holder_tid: holder_tid.map(Tid),
                switch_number,
                enabled: None,
            }),
    );
    prop_oneof![
        (
            // Mostly within 10 s, sometimes anywhere up to u64::MAX (a corrupt clock).
            prop_oneof![4 => 0u64..10_000_000_000, 1 => any::<u64>()],
            proptest::option::of(any::<u64>()),
            gil,
            proptest::collection::vec(thread, 0..6)
        )
            .prop_map(
                |(t_ns, process_cpu_ns, gil, threads)| Record::Sample(Sample {
                    t_ns,
                    process_cpu_ns,
                    gil,
                    threads
                })
            ),
        (any::<u32>(), ".*", ".*", any::<i32>()).prop_map(|(id, function, file, line)| {
            Record::Frame {
                id: id % 10,
                frame: Frame {
                    function,
                    file,
                    line,
                },
            }
        }),
        (any::<u32>(), proptest::collection::vec(any::<u32>(), 0..8)).prop_map(|(id, frames)| {
            Record::Stack {
                id: id % 10,
                frames,
            }
        }),
        (1u32..6, ".*").prop_map(|(tid, name)| Record::ThreadName {
            tid: Tid(tid),
            name
        }),
        proptest::collection::vec((1u32..6, any::<i32>(), any::<bool>()), 0..6).prop_map(
            |threads| Record::ThreadStatuses {
                pid: Pid(1234),
                threads: threads
                    .into_iter()
                    .map(|(tid, state, entering)| CpythonThreadStatus {
                        tid: Tid(tid),
                        attachment: Attachment::from_state(state),
                        entering_critical_section: entering,
                        holds_lock_of: (state % 3 == 0).then(|| "dict".into()),
                    })
                    .collect(),
            }
        ),
        (any::<u32>(), ".*").prop_map(|(frame, text)| Record::SourceLine {
            frame: frame % 12,
            text
        }),
        proptest::collection::vec((any::<u64>(), any::<u64>()), 0..3).prop_map(Record::GilRanges),
        any::<u32>().prop_map(|count| Record::Late { count }),
        (
            prop_oneof![4 => 0u64..10_000_000_000, 1 => any::<u64>()],
            proptest::collection::vec((1u32..6, any::<u64>()), 0..6)
        )
            .prop_map(|(t_ns, threads)| Record::RunDelays {
                pid: Pid(1234),
                t_ns,
                threads: threads.into_iter().map(|(t, d)| (Tid(t), d)).collect()
            }),
        (".*", 0.001f64..1e6, 1u32..64).prop_map(|(command, rate_hz, cores)| Record::Target(
            TargetInfo {
                pid: Pid(1234),
                command: vec![command],
                python: "3.12.1".into(),
                gil: gilscope::model::GilMode::Enabled,
                gil_wait_visible: true,
                notes: vec![],
                rate_hz,
                arch: "x86_64".into(),
                cores,
                started_unix_s: 0.0,
            }
        )),
    ]
}

proptest! {
    #[test]
    fn proc_parsers_take_any_text(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_syscall(&bytes);
        let _ = parse_stat(&bytes);
        let _ = parse_schedstat(&bytes);
        let _ = parse_kernel_stack(&bytes);
    }

    #[test]
    fn proc_parsers_take_near_valid_text(nr in any::<i64>(), a in any::<u64>(), comm in ".*", f in any::<u64>()) {
        let line = format!("{nr} 0x{a:x} 0x{f:x} 0x0 0x0 0x0 0x0 0x1 0x2");
        let _ = parse_syscall(line.as_bytes());
        let stat = format!("1 ({comm}) S {f} 1 1 0 -1 0 0 0 0 0 {a} {f} 0 0 20 0 1 0 {nr} 0");
        let _ = parse_stat(stat.as_bytes());
    }

    #[test]
    fn classifier_takes_any_registers(syscall in syscall(), share in proptest::option::of(any::<f64>()),
                                      holds in any::<bool>(), other_holds in any::<bool>(), entering in any::<bool>(), previous in proptest::option::of(state()),
                                      ranges in proptest::collection::vec((any::<u64>(), any::<u64>()), 0..4),
                                      arch in prop_oneof![Just("x86_64"), Just("aarch64"), Just("riscv64")]) {
        let arch = Arch::from_name(arch);
        let obs = Observation { syscall, cpu_share: share, holds_gil: holds, other_holds_gil: other_holds, gil_ranges: &ranges, previous, arch, entering_critical_section: entering, suspended: entering && holds };
        let s = classify(&obs);
        prop_assert!(ThreadState::ALL.contains(&s));
        if let Some(Syscall::Blocked { nr, .. }) = syscall {
            let _ = syscall_kind(arch, nr);
        }
    }

    #[test]
    fn recording_reader_takes_any_bytes(body in proptest::collection::vec(any::<u8>(), 0..2000), valid_header in any::<bool>()) {
        let mut bytes = if valid_header { b"GILSCOPE\x02\x00\x00\x00".to_vec() } else { Vec::new() };
        bytes.extend(body);
        if let Ok(mut reader) = RecordingReader::new(&bytes[..]) {
            let mut agg = Aggregator::new();
            for _ in 0..10_000 {
                match reader.next_record() {
                    Ok(Some(r)) => agg.push(&r),
                    _ => break,
                }
            }
            let _ = diagnose(&agg.finish());
        }
    }

    #[test]
    fn everything_after_the_sampler_takes_any_records(records in proptest::collection::vec(record(), 0..60)) {
        let mut agg = Aggregator::new();
        for r in &records {
            agg.push(r);
        }
        let analysis = agg.finish();
        let verdict = diagnose(&analysis);
        let report = report::build(&analysis, Some(verdict));
        let mut out = Vec::new();
        render::terminal::render(&report, render::terminal::Style { color: true, threads: false }, &mut out).unwrap();
        render::json(&report, &mut out).unwrap();
        render::trace::render(&analysis, &mut out).unwrap();
        render::speedscope::render(&analysis, &mut out).unwrap();
        render::pprof::render(&analysis, &mut out).unwrap();
        let mut svg = Vec::new();
        render::flamegraph::render(&analysis, None, &mut svg).unwrap();
        render::html::render(&report, &analysis, &String::from_utf8_lossy(&svg), &mut out).unwrap();
    }
}

/// A sample timestamped far past any run (a corrupt clock or file): the recording is refused
/// at that record, and the aggregator, fed it directly, keeps one window per second that had a
/// sample rather than one per second up to it.
#[test]
fn an_absurd_timestamp_is_refused_without_a_large_allocation() {
    use gilscope::recording::{RecordingError, RecordingWriter, MAX_RECORDED_T_NS};
    use gilscope::sampler::RecordSink;
    let sample = |t_ns| {
        Record::Sample(Sample {
            t_ns,
            process_cpu_ns: Some(0),
            gil: None,
            threads: vec![ThreadSample {
                tid: Tid(1),
                syscall: Some(Syscall::Running),
                cpu_ns: Some(0),
                stack: None,
                python: true,
            }],
        })
    };
    let records = [sample(0), sample(10_000_000), sample(u64::MAX / 2)];
    let mut writer = RecordingWriter::new(Vec::new()).unwrap();
    for r in &records {
        writer.record(r).unwrap();
    }
    let bytes = writer.finish().unwrap();
    let mut reader = RecordingReader::new(&bytes[..]).unwrap();
    assert_eq!(reader.next_record().unwrap(), Some(records[0].clone()));
    assert_eq!(reader.next_record().unwrap(), Some(records[1].clone()));
    match reader.next_record() {
        Err(RecordingError::ImplausibleTime { seconds, .. }) => {
            assert!(seconds * 1_000_000_000 > MAX_RECORDED_T_NS)
        }
        other => panic!("expected the absurd time to be refused, got {other:?}"),
    }

    let mut agg = Aggregator::new();
    for r in &records {
        agg.push(r);
    }
    let analysis = agg.finish();
    assert_eq!(analysis.windows.len(), 2, "one window per second sampled");
    let _ = diagnose(&analysis);
}
