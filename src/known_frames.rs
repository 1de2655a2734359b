//! What well-known standard-library frames mean: an asyncio event loop waiting or stalled,
//! a process's role in a multiprocessing pool, time spent pickling and sending. Pure functions
//! of frames, innermost first (as the sampler stores stacks).

use serde::{Deserialize, Serialize};

use crate::model::Frame;

fn in_file(frame: &Frame, suffixes: &[&str]) -> bool {
    suffixes.iter().any(|s| frame.file.ends_with(s))
}

/// The function's own name: 3.11+ give qualified names (`SimpleQueue.get`).
fn bare_name(frame: &Frame) -> &str {
    frame.function.rsplit('.').next().unwrap_or(&frame.function)
}

fn is(frame: &Frame, file_suffix: &str, functions: &[&str]) -> bool {
    in_file(frame, &[file_suffix]) && functions.contains(&bare_name(frame))
}

/// Where an asyncio event loop thread stood at one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopPosition {
    /// Not inside an event loop.
    NotALoop,
    /// In the selector, waiting for events: the healthy place to be.
    Waiting,
    /// Inside the loop but not in its selector: running a callback or coroutine step.
    Running,
}

/// The event-loop position of a stack.
pub fn loop_position<'a>(frames: impl Iterator<Item = &'a Frame> + Clone) -> LoopPosition {
    let in_loop = frames
        .clone()
        .any(|f| is(f, "asyncio/base_events.py", &["_run_once", "run_forever"]));
    if !in_loop {
        return LoopPosition::NotALoop;
    }
    // The selector call sits right under `_run_once`: `select` in selectors.py.
    let waiting = frames
        .take_while(|f| !is(f, "asyncio/base_events.py", &["_run_once"]))
        .all(|f| in_file(f, &["selectors.py"]));
    if waiting {
        LoopPosition::Waiting
    } else {
        LoopPosition::Running
    }
}

/// Files of the asyncio machinery itself, skipped when naming the code responsible.
fn is_asyncio_machinery(frame: &Frame) -> bool {
    frame.file.contains("/asyncio/") || frame.file.ends_with("contextvars.py")
}

/// The coroutine or callback that the loop was running: the frame nearest the loop that is not
/// asyncio's own, in a stack given innermost first.
pub fn loop_culprit<'a>(frames: &[&'a Frame]) -> Option<&'a Frame> {
    let run = frames
        .iter()
        .position(|f| is(f, "asyncio/events.py", &["_run"]))
        .or_else(|| {
            frames
                .iter()
                .position(|f| is(f, "asyncio/base_events.py", &["_run_once"]))
        })?;
    frames[..run]
        .iter()
        .rev()
        .find(|f| !is_asyncio_machinery(f))
        .copied()
}

/// What a process is in a run, from the frames its threads were seen in. In JSON, its
/// [`ProcessRole::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProcessRole {
    /// The process gilscope launched or attached to, with no descendants sampled.
    #[serde(rename = "main")]
    Main,
    /// The process gilscope launched or attached to, with descendants.
    #[serde(rename = "parent")]
    Parent,
    /// A `multiprocessing.Pool` or `ProcessPoolExecutor` worker.
    #[serde(rename = "pool worker")]
    PoolWorker,
    /// Another `multiprocessing.Process`.
    #[serde(rename = "multiprocessing child")]
    MultiprocessingChild,
    /// multiprocessing's forkserver or resource tracker: helpers, not workers.
    #[serde(rename = "multiprocessing helper")]
    Helper,
    /// Any other descendant (`subprocess`, a shell, ...).
    #[serde(rename = "child")]
    Child,
}

impl ProcessRole {
    pub fn name(self) -> &'static str {
        match self {
            ProcessRole::Main => "main",
            ProcessRole::Parent => "parent",
            ProcessRole::PoolWorker => "pool worker",
            ProcessRole::MultiprocessingChild => "multiprocessing child",
            ProcessRole::Helper => "multiprocessing helper",
            ProcessRole::Child => "child",
        }
    }
}

/// The role of a descendant whose threads were seen in `frames` (any order).
pub fn descendant_role<'a>(frames: impl Iterator<Item = &'a Frame>) -> ProcessRole {
    let mut role = ProcessRole::Child;
    for f in frames {
        if is(f, "multiprocessing/pool.py", &["worker"])
            || is(f, "concurrent/futures/process.py", &["_process_worker"])
        {
            return ProcessRole::PoolWorker;
        }
        if in_file(
            f,
            &[
                "multiprocessing/forkserver.py",
                "multiprocessing/resource_tracker.py",
                "multiprocessing/semaphore_tracker.py",
            ],
        ) && bare_name(f) == "main"
        {
            role = ProcessRole::Helper;
        } else if role == ProcessRole::Child && is(f, "multiprocessing/process.py", &["_bootstrap"])
        {
            role = ProcessRole::MultiprocessingChild;
        }
    }
    role
}

/// Pickling and moving bytes between processes: multiprocessing's and concurrent.futures'
/// queue and connection code, and pickle itself.
pub fn is_ipc(frame: &Frame) -> bool {
    is(
        frame,
        "multiprocessing/reduction.py",
        &["dumps", "loads", "dump"],
    ) || is(
        frame,
        "multiprocessing/connection.py",
        &[
            "send",
            "send_bytes",
            "_send_bytes",
            "_send",
            "recv",
            "recv_bytes",
            "_recv_bytes",
            "_recv",
        ],
    ) || is(frame, "multiprocessing/queues.py", &["_feed", "put", "get"])
        || in_file(frame, &["/pickle.py", "/copyreg.py", "/_compat_pickle.py"])
}

/// The thread of a pool's parent that collects results.
pub fn is_result_handler(frame: &Frame) -> bool {
    is(frame, "multiprocessing/pool.py", &["_handle_results"])
        || is(
            frame,
            "concurrent/futures/process.py",
            &["process_result_item", "_queue_management_worker"],
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(function: &str, file: &str) -> Frame {
        Frame {
            function: function.into(),
            file: file.into(),
            line: 1,
        }
    }

    #[test]
    fn loop_positions() {
        let base = "/usr/lib/python3.12/asyncio/base_events.py";
        let waiting = [
            f("select", "/usr/lib/python3.12/selectors.py"),
            f("_run_once", base),
            f("run_forever", base),
            f("main", "app.py"),
        ];
        assert_eq!(loop_position(waiting.iter()), LoopPosition::Waiting);
        let stalled = [
            f("handler", "app.py"),
            f("_run", "/usr/lib/python3.12/asyncio/events.py"),
            f("_run_once", base),
            f("run_forever", base),
        ];
        assert_eq!(loop_position(stalled.iter()), LoopPosition::Running);
        let refs: Vec<&Frame> = stalled.iter().collect();
        assert_eq!(
            loop_culprit(&refs).map(|f| f.function.as_str()),
            Some("handler")
        );
        assert_eq!(
            loop_position([f("work", "app.py")].iter()),
            LoopPosition::NotALoop
        );
    }

    #[test]
    fn roles() {
        let worker = [
            f("worker", "/x/multiprocessing/pool.py"),
            f("_bootstrap", "/x/multiprocessing/process.py"),
        ];
        assert_eq!(descendant_role(worker.iter()), ProcessRole::PoolWorker);
        let helper = [f("main", "/x/multiprocessing/resource_tracker.py")];
        assert_eq!(descendant_role(helper.iter()), ProcessRole::Helper);
        let plain = [f("_bootstrap", "/x/multiprocessing/process.py")];
        assert_eq!(
            descendant_role(plain.iter()),
            ProcessRole::MultiprocessingChild
        );
        assert_eq!(descendant_role([].iter()), ProcessRole::Child);
    }

    #[test]
    fn ipc_frames() {
        assert!(is_ipc(&f("dumps", "/x/multiprocessing/reduction.py")));
        assert!(is_ipc(&f(
            "_send_bytes",
            "/x/multiprocessing/connection.py"
        )));
        assert!(!is_ipc(&f("dumps", "/app/json_tools.py")));
        // 3.11+ qualify names with their class.
        assert!(is_ipc(&f(
            "SimpleQueue.get",
            "/x/multiprocessing/queues.py"
        )));
        let waiting = [
            f("_PollLikeSelector.select", "/x/selectors.py"),
            f("BaseEventLoop._run_once", "/x/asyncio/base_events.py"),
        ];
        assert_eq!(loop_position(waiting.iter()), LoopPosition::Waiting);
    }
}
