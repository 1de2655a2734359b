//! Frames and stacks, each given an id once per run.

use std::collections::HashMap;

use crate::model::{Frame, Record};

use super::cpython::frames;
use super::{source, RecordSink, MAX_STACK_DEPTH};

/// Frames and stacks, each given an id once per run. Shared by every process of a run, so ids
/// mean the same in all of them.
#[derive(Debug, Default)]
pub struct Interner {
    frames: HashMap<Frame, u32>,
    stacks: HashMap<Vec<u32>, u32>,
    /// Where each new frame's source line is read from.
    sources: source::SourceFiles,
}

impl Interner {
    /// The id of a stack of `depth` frames of process `pid`, given innermost first (at most
    /// [`MAX_STACK_DEPTH`] of them are kept, then a marker).
    pub(super) fn stack(
        &mut self,
        pid: u32,
        frames: impl IntoIterator<Item = Frame>,
        depth: usize,
        sink: &mut impl RecordSink,
    ) -> std::io::Result<Option<u32>> {
        if depth == 0 {
            return Ok(None);
        }
        let mut ids = Vec::with_capacity(depth.min(MAX_STACK_DEPTH + 1));
        for frame in frames.into_iter().take(MAX_STACK_DEPTH) {
            ids.push(self.frame(pid, frame, sink)?);
        }
        if depth > MAX_STACK_DEPTH {
            let function = if depth > frames::MAX_FRAMES_WALKED {
                format!(
                    "<{}+ more frames>",
                    frames::MAX_FRAMES_WALKED - MAX_STACK_DEPTH
                )
            } else {
                format!("<{} more frames>", depth - MAX_STACK_DEPTH)
            };
            let marker = Frame {
                function,
                file: String::new(),
                line: 0,
            };
            ids.push(self.frame(pid, marker, sink)?);
        }
        if ids.is_empty() {
            return Ok(None);
        }
        if let Some(&id) = self.stacks.get(&ids) {
            return Ok(Some(id));
        }
        let id = self.stacks.len() as u32;
        sink.record(&Record::Stack {
            id,
            frames: ids.clone(),
        })?;
        self.stacks.insert(ids, id);
        Ok(Some(id))
    }

    /// The id of a frame; a new one is sent with its source line.
    pub(super) fn frame(
        &mut self,
        pid: u32,
        frame: Frame,
        sink: &mut impl RecordSink,
    ) -> std::io::Result<u32> {
        if let Some(&id) = self.frames.get(&frame) {
            return Ok(id);
        }
        let id = self.frames.len() as u32;
        sink.record(&Record::Frame {
            id,
            frame: frame.clone(),
        })?;
        if let Some(text) = self.sources.line(pid, &frame.file, frame.line) {
            sink.record(&Record::SourceLine { frame: id, text })?;
        }
        self.frames.insert(frame, id);
        Ok(id)
    }
}
