//! A continuous push runs for days: a day of samples (8 threads at 20 Hz, the GIL changing
//! hands at every tick, pushed every 10 s to a transport that counts) goes through the same
//! aggregator, windowing, encoding and queue as `--pyroscope`, and the heap it holds stops
//! growing once the timeline's cap is reached. Its own binary: the counting allocator sees
//! this test alone.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gilscope::analysis::Aggregator;
use gilscope::model::{
    Ending, Frame, GilMode, GilReading, Pid, Record, Sample, Syscall, TargetInfo, ThreadSample, Tid,
};
use gilscope::push::{Credentials, Feed, PushConfig, Pusher, Retry, SendError, Transport};

/// Bytes allocated and not yet freed.
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is passed to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Counts the bodies it is given, as a server that accepts everything would.
struct Accepting(Arc<AtomicU64>);

impl Transport for Accepting {
    fn send(&mut self, body: &[u8], _timeout: Duration) -> Result<(), SendError> {
        assert!(!body.is_empty());
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

const GIL: u64 = 0x7f00_0000_1000;
const THREADS: u32 = 8;
const RATE_HZ: u64 = 20;

/// One tick: thread `t` holds the GIL, the others wait for it on its futex.
fn tick(t_ns: u64, n: u64) -> Record {
    let holder = 101 + (n % THREADS as u64) as u32;
    let threads = (0..THREADS)
        .map(|i| {
            let tid = 101 + i;
            let holds = tid == holder;
            ThreadSample {
                tid: Tid(tid),
                syscall: Some(if holds {
                    Syscall::Running
                } else {
                    Syscall::Blocked {
                        nr: 202, // futex
                        args: [GIL + 8, 0, 0],
                    }
                }),
                cpu_ns: Some(n * 6_000_000 + u64::from(i)),
                stack: Some(i % 4),
                python: true,
            }
        })
        .collect();
    Record::Sample(Sample {
        t_ns,
        process_cpu_ns: Some(n * 50_000_000),
        gil: Some(GilReading {
            locked: true,
            holder_tid: Some(Tid(holder)),
            switch_number: Some(n),
            enabled: None,
        }),
        threads,
    })
}

fn prologue() -> Vec<Record> {
    let mut records = vec![
        Record::Target(TargetInfo {
            pid: Pid(100),
            command: vec!["python3".into(), "api.py".into()],
            python: "3.12.4".into(),
            gil: GilMode::Enabled,
            gil_wait_visible: true,
            notes: vec![],
            rate_hz: RATE_HZ as f64,
            arch: "x86_64".into(),
            cores: 2,
            started_unix_s: 1.7e9,
        }),
        Record::GilRanges(vec![(GIL, GIL + 208)]),
    ];
    for id in 0..8u32 {
        records.push(Record::Frame {
            id,
            frame: Frame {
                function: format!("handler_{id}"),
                file: "/srv/api.py".into(),
                line: 10 + id as i32,
            },
        });
    }
    for id in 0..4u32 {
        records.push(Record::Stack {
            id,
            frames: vec![id, id + 4],
        });
    }
    for i in 0..THREADS {
        records.push(Record::ThreadName {
            tid: Tid(101 + i),
            name: format!("worker-{i}"),
        });
    }
    records
}

#[test]
fn a_day_of_pushes_holds_its_memory_flat() {
    let pushed = Arc::new(AtomicU64::new(0));
    let config = PushConfig {
        url: "http://127.0.0.1:9".into(),
        interval: Duration::from_secs(10),
        app_name: None,
        tags: Vec::new(),
        credentials: Credentials::default(),
        retry: Retry::default(),
    };
    let pusher = Pusher::start(&config, Accepting(Arc::clone(&pushed))).unwrap();
    let mut aggregator = Aggregator::new();
    let mut feed = Feed::new(&config, pusher, &mut aggregator);
    let mut feed_record = |record: &Record, aggregator: &mut Aggregator| {
        aggregator.push(record);
        feed.record(record, aggregator);
    };
    for record in prologue() {
        feed_record(&record, &mut aggregator);
    }
    let interval_ns = 1_000_000_000 / RATE_HZ;
    let hour = 3600 * RATE_HZ;
    let mut live_at_hour = Vec::new();
    for n in 0..24 * hour {
        feed_record(&tick(n * interval_ns, n), &mut aggregator);
        if (n + 1) % hour == 0 {
            // Let the push thread take what is queued, so the queue's depth is not measured.
            std::thread::sleep(Duration::from_millis(20));
            live_at_hour.push(LIVE_BYTES.load(Ordering::Relaxed));
        }
    }
    let end = Record::End {
        ending: Ending::Interrupted,
        duration_s: (24 * hour * interval_ns) as f64 / 1e9,
    };
    feed_record(&end, &mut aggregator);
    let stats = feed.finish(Duration::from_secs(5));
    let mb = |b: isize| b as f64 / 1e6;
    let hours: Vec<String> = live_at_hour
        .iter()
        .map(|&b| format!("{:.1}", mb(b)))
        .collect();
    eprintln!("live heap (MB) at each hour: {}", hours.join(" "));
    // A window every 10 s over a day (the last one sent at the end); a few may be dropped
    // when the push thread falls behind a replay this fast.
    assert_eq!(
        stats.windows_pushed + stats.windows_dropped,
        24 * 360,
        "{stats:?}"
    );
    assert_eq!(stats.windows_pushed, pushed.load(Ordering::Relaxed));
    assert!(stats.windows_pushed > 24 * 300, "{stats:?}");
    // The timeline's cap (a million segments) fills in the first hours; from then on the
    // heap is flat: the last twelve hours add less than 1 MB.
    let (at_12, at_24) = (live_at_hour[11], live_at_hour[23]);
    assert!(
        at_24 - at_12 < 1_000_000,
        "the heap grew from {:.1} MB at 12 h to {:.1} MB at 24 h",
        mb(at_12),
        mb(at_24)
    );
    assert!(at_24 < 64_000_000, "{:.1} MB after a day", mb(at_24));
    let analysis = aggregator.finish();
    assert!(analysis.windows.len() <= gilscope::analysis::MAX_WINDOWS);
    assert!(analysis.timeline_truncated);
    let covered_ns: u64 = analysis.windows.iter().map(|w| w.length_ns).sum();
    assert!(
        covered_ns >= 24 * 3600 * 1_000_000_000,
        "the windows cover the day"
    );
}
