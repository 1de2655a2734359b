//! A gzipped `profile.proto` (github.com/google/pprof/blob/main/proto/profile.proto) with
//! `thread`, `tid` and `state` labels on every sample, for `go tool pprof`, Grafana Pyroscope
//! and Parca. The messages below are the subset of profile.proto that gilscope fills, with the
//! proto's field numbers.

use std::collections::HashMap;
use std::io::{self, Write};

use flate2::write::GzEncoder;
use prost::Message;

use super::stacks::{stack_counts, StackCount};
use super::words::{thread_label, thread_name};
use crate::analysis::Analysis;
use crate::model::Frame;

#[derive(Clone, PartialEq, Message)]
pub struct Profile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(int64, tag = "1")]
    pub key: i64,
    #[prost(int64, tag = "2")]
    pub str: i64,
    #[prost(int64, tag = "3")]
    pub num: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
}

/// Interns strings; index 0 is "" as the format requires.
#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn get(&mut self, s: &str) -> i64 {
        if self.table.is_empty() {
            self.table.push(String::new());
            self.index.insert(String::new(), 0);
        }
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

/// How the samples are labelled: the thread, its id and its state, under the names each
/// reader expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleLabels {
    /// `--pprof`: `thread` ("name (tid)"), `tid` (a number), `state`.
    File,
    /// Pyroscope keeps only string labels: `thread_name`, `thread_id` (a string), `state`.
    Pyroscope,
}

/// What a profile covers: its start (Unix ns), its length and the time one sample stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub time_nanos: i64,
    pub duration_nanos: i64,
    pub period_nanos: i64,
}

/// Builds the run's profile (not yet encoded).
pub fn profile(analysis: &Analysis) -> Profile {
    let rate = analysis
        .target
        .as_ref()
        .map_or(100.0, |t| t.rate_hz.max(1e-3));
    let span = Span {
        time_nanos: analysis
            .target
            .as_ref()
            .map_or(0, |t| (t.started_unix_s * 1e9) as i64),
        duration_nanos: (analysis.duration_s * 1e9) as i64,
        period_nanos: (1e9 / rate) as i64,
    };
    profile_of(&stack_counts(analysis, None), span, SampleLabels::File)
}

/// Builds a profile of these stacks: two values per sample, the count and the wall time it
/// stands for.
pub fn profile_of(stacks: &[StackCount], span: Span, labels: SampleLabels) -> Profile {
    let mut b = ProfileBuilder::new(labels);
    let sample_type = vec![
        b.value_type("samples", "count"),
        b.value_type("wall", "nanoseconds"),
    ];
    let keys = b.label_keys();
    let samples = stacks
        .iter()
        .map(|sc| b.sample(sc, keys, span.period_nanos))
        .collect();
    let period_type = Some(b.value_type("wall", "nanoseconds"));
    Profile {
        sample_type,
        sample: samples,
        location: b.locations,
        function: b.functions,
        string_table: b.strings.table,
        time_nanos: span.time_nanos,
        duration_nanos: span.duration_nanos,
        period_type,
        period: span.period_nanos,
    }
}

/// The string-table indices of the three sample labels' keys: thread, thread id, state.
#[derive(Clone, Copy)]
struct LabelKeys {
    thread: i64,
    tid: i64,
    state: i64,
}

/// A profile's tables as its samples are added: each distinct frame gets one function and
/// one location.
struct ProfileBuilder<'a> {
    labels: SampleLabels,
    strings: Strings,
    functions: Vec<Function>,
    locations: Vec<Location>,
    location_of: HashMap<(&'a str, &'a str, i32), u64>,
}

impl<'a> ProfileBuilder<'a> {
    fn new(labels: SampleLabels) -> Self {
        ProfileBuilder {
            labels,
            strings: Strings::default(),
            functions: Vec::new(),
            locations: Vec::new(),
            location_of: HashMap::new(),
        }
    }

    fn value_type(&mut self, kind: &str, unit: &str) -> ValueType {
        ValueType {
            r#type: self.strings.get(kind),
            unit: self.strings.get(unit),
        }
    }

    fn label_keys(&mut self) -> LabelKeys {
        let (thread, tid) = match self.labels {
            SampleLabels::File => ("thread", "tid"),
            SampleLabels::Pyroscope => ("thread_name", "thread_id"),
        };
        LabelKeys {
            thread: self.strings.get(thread),
            tid: self.strings.get(tid),
            state: self.strings.get("state"),
        }
    }

    /// The location of `frame`, added on first sight.
    fn location(&mut self, frame: &'a Frame) -> u64 {
        let key = (frame.function.as_str(), frame.file.as_str(), frame.line);
        if let Some(&id) = self.location_of.get(&key) {
            return id;
        }
        let function_id = self.functions.len() as u64 + 1;
        self.functions.push(Function {
            id: function_id,
            name: self.strings.get(&frame.function),
            system_name: self.strings.get(&frame.function),
            filename: self.strings.get(&frame.file),
        });
        let id = self.locations.len() as u64 + 1;
        self.locations.push(Location {
            id,
            line: vec![Line {
                function_id,
                line: frame.line as i64,
            }],
        });
        self.location_of.insert(key, id);
        id
    }

    /// A stack's sample, innermost frame first, with its count, wall time and labels.
    fn sample(&mut self, sc: &StackCount<'a>, keys: LabelKeys, period: i64) -> Sample {
        let location_id = sc.frames.iter().rev().map(|&f| self.location(f)).collect();
        let count = sc.count as i64;
        let (thread, tid) = match self.labels {
            SampleLabels::File => (
                self.strings.get(&thread_label(sc.thread, sc.tid)),
                Label {
                    key: keys.tid,
                    str: 0,
                    num: i64::from(sc.tid.0),
                },
            ),
            SampleLabels::Pyroscope => (
                self.strings.get(&thread_name(sc.thread, sc.tid)),
                Label {
                    key: keys.tid,
                    str: self.strings.get(&sc.tid.to_string()),
                    num: 0,
                },
            ),
        };
        Sample {
            location_id,
            value: vec![count, count.saturating_mul(period)],
            label: vec![
                Label {
                    key: keys.thread,
                    str: thread,
                    num: 0,
                },
                tid,
                Label {
                    key: keys.state,
                    str: self.strings.get(sc.state.name()),
                    num: 0,
                },
            ],
        }
    }
}

pub fn render(analysis: &Analysis, out: &mut impl Write) -> io::Result<()> {
    let mut gz = GzEncoder::new(out, flate2::Compression::default());
    gz.write_all(&profile(analysis).encode_to_vec())?;
    gz.finish()?;
    Ok(())
}
