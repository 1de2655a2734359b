//! The speedscope file format (https://www.speedscope.app/file-format-schema.json): one sampled
//! profile per thread, each stack rooted in its thread state.

use std::collections::HashMap;
use std::io::{self, Write};

use serde_json::json;

use super::colors::style;
use super::stacks::{stack_counts, thread_label};
use crate::analysis::Analysis;
use crate::model::Tid;

/// One thread's sampled profile: stacks as frame indices, with their sample counts.
struct ThreadProfile {
    tid: Tid,
    name: String,
    samples: Vec<Vec<usize>>,
    weights: Vec<u64>,
}

pub fn render(analysis: &Analysis, out: &mut impl Write) -> io::Result<()> {
    let mut frames: Vec<serde_json::Value> = Vec::new();
    let mut frame_index: HashMap<(String, String, i32), usize> = HashMap::new();
    let mut index_of = |name: &str, file: &str, line: i32| -> usize {
        let key = (name.to_string(), file.to_string(), line);
        *frame_index.entry(key).or_insert_with(|| {
            frames.push(if file.is_empty() {
                json!({"name": name})
            } else {
                json!({"name": name, "file": file, "line": line})
            });
            frames.len() - 1
        })
    };
    let mut by_thread: Vec<ThreadProfile> = Vec::new();
    for sc in stack_counts(analysis, None) {
        if by_thread.last().is_none_or(|t| t.tid != sc.tid) {
            by_thread.push(ThreadProfile {
                tid: sc.tid,
                name: thread_label(sc.thread, sc.tid),
                samples: Vec::new(),
                weights: Vec::new(),
            });
        }
        let mut stack = vec![index_of(style(sc.state).label, "", 0)];
        stack.extend(
            sc.frames
                .iter()
                .map(|f| index_of(&f.function, &f.file, f.line)),
        );
        if let Some(thread) = by_thread.last_mut() {
            thread.samples.push(stack);
            thread.weights.push(sc.count);
        }
    }
    let profiles: Vec<_> = by_thread
        .into_iter()
        .map(|t| {
            let total: u64 = t.weights.iter().sum();
            json!({"type": "sampled", "name": t.name, "unit": "none", "startValue": 0,
                   "endValue": total, "samples": t.samples, "weights": t.weights})
        })
        .collect();
    let name = analysis
        .target
        .as_ref()
        .map_or("gilscope".to_string(), |t| {
            format!("gilscope: {}", t.command.join(" "))
        });
    let file = json!({
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": frames},
        "profiles": profiles,
        "name": name,
        "activeProfileIndex": 0,
        "exporter": concat!("gilscope ", env!("CARGO_PKG_VERSION")),
    });
    serde_json::to_writer(&mut *out, &file)?;
    writeln!(out)
}
