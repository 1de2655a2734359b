//! What well-known standard-library frames mean: an asyncio event loop waiting or stalled,
//! a process's role in a multiprocessing pool, time spent pickling and sending; and the few
//! frames of Jupyter's kernel that hide the user's code (a cell run from the kernel's own
//! event loop, the kernel's wrapper around every thread). Pure functions of frames, innermost
//! first (as the sampler stores stacks).

use serde::{Deserialize, Serialize};

use crate::model::Frame;

/// The name a thread carries until its Python name is read, where the kernel's is all there
/// is: before 3.14 every thread inherits the interpreter's (`python3.12`); or no name at all.
pub fn is_os_default_thread_name(name: Option<&str>) -> bool {
    name.is_none_or(|name| {
        name.strip_prefix("python")
            .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '.'))
    })
}

/// The name CPython gives its main thread (`threading.main_thread().name`).
pub const MAIN_THREAD_NAME: &str = "MainThread";

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

/// IPython running a cell's code: inside a Jupyter kernel's event loop, the cell is the
/// user's program, not a callback that stalls the loop.
fn is_cell(frame: &Frame) -> bool {
    is(frame, "IPython/core/interactiveshell.py", &["run_code"])
}

fn is_loop(frame: &Frame) -> bool {
    is(
        frame,
        "asyncio/base_events.py",
        &["_run_once", "run_forever"],
    )
}

/// The event-loop position of a stack. A notebook cell that the kernel's loop runs is not in
/// a loop (an event loop the cell itself runs is).
pub fn loop_position<'a>(frames: impl Iterator<Item = &'a Frame> + Clone) -> LoopPosition {
    let innermost = frames.clone().find(|f| is_loop(f) || is_cell(f));
    if !innermost.is_some_and(is_loop) {
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
            || is(f, "loky/process_executor.py", &["_process_worker"])
            || is(f, "billiard/pool.py", &["worker"])
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

/// The frames `threading` runs a new thread through before its target: `_bootstrap`,
/// `_bootstrap_inner` and `Thread.run`, and the wrapper a Jupyter kernel (ipykernel 6.29+)
/// puts around every thread's `run` to route its output.
fn is_thread_bootstrap(frame: &Frame) -> bool {
    is(
        frame,
        "threading.py",
        &["_bootstrap", "_bootstrap_inner", "run"],
    ) || is(frame, "ipykernel/ipkernel.py", &["run_closure"])
}

/// Which library runs a pool's threads, known by a frame of its own in their stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolLibrary {
    Joblib,
    /// `multiprocessing.pool.ThreadPool`.
    MultiprocessingPool,
    /// `concurrent.futures.ThreadPoolExecutor`.
    Executor,
}

/// The pool library a frame belongs to, if any.
pub fn pool_library(frame: &Frame) -> Option<PoolLibrary> {
    if frame.file.contains("/joblib/") {
        Some(PoolLibrary::Joblib)
    } else if frame.file.ends_with("multiprocessing/pool.py") {
        Some(PoolLibrary::MultiprocessingPool)
    } else if frame.file.ends_with("concurrent/futures/thread.py") {
        Some(PoolLibrary::Executor)
    } else {
        None
    }
}

/// A file of code typed into a notebook or IPython: ipykernel names a cell's code
/// `/tmp/ipykernel_PID/HASH.py`, IPython's terminal `<ipython-input-N-HASH>`. Worker processes
/// that import their functions (spawn, forkserver) cannot find these.
pub fn is_notebook_cell(file: &str) -> bool {
    file.contains("/ipykernel_") || file.starts_with("<ipython-input-")
}

/// Frames of the machinery that runs threads, pools and loops (the standard library's,
/// joblib's, billiard's, a Jupyter kernel's thread wrapper): never the user's own code.
pub fn is_thread_machinery(frame: &Frame) -> bool {
    let file = frame.file.as_str();
    file.ends_with("threading.py")
        || file.contains("concurrent/futures/")
        || file.contains("multiprocessing/")
        || file.contains("asyncio/")
        || file.contains("/joblib/")
        || file.contains("billiard/")
        || file.starts_with("<frozen")
        || is_thread_bootstrap(frame)
}

/// The function a thread was started with, in a stack given innermost first: the outermost
/// frame past `threading`'s bootstrap (`Thread(target=f)` gives `f`; a `Thread` subclass its
/// `run`). `None` for a stack that does not start in `threading`'s bootstrap (the main
/// thread's, or one read torn as its thread ended), and for a thread caught starting or
/// ending, still or again in `threading`'s own code.
pub fn start_function<'a>(frames: &[&'a Frame]) -> Option<&'a Frame> {
    if !frames.last().is_some_and(|f| is_thread_bootstrap(f)) {
        return None;
    }
    frames
        .iter()
        .rev()
        .find(|f| !is_thread_bootstrap(f))
        .copied()
        .filter(|f| !in_file(f, &["threading.py"]) && !f.file.is_empty())
}

/// A thread that a pool starts to run itself, not the tasks: it hands tasks out, collects
/// results, feeds a queue or watches the workers. Known by its start function.
pub fn is_pool_helper(start: &Frame) -> bool {
    is(
        start,
        "multiprocessing/pool.py",
        &["_handle_workers", "_handle_tasks", "_handle_results"],
    ) || is(start, "multiprocessing/queues.py", &["_feed"])
        || is(start, "loky/backend/queues.py", &["_feed"])
        || is(
            start,
            "concurrent/futures/process.py",
            &["_queue_management_worker", "run"],
        )
        || is(start, "loky/process_executor.py", &["run"])
        || in_file(
            start,
            &["joblib/pool.py", "multiprocessing/resource_sharer.py"],
        )
}

/// A pool's worker thread between tasks, waiting for the next one: its innermost Python
/// frame is the worker loop itself (the queue it waits on is C), or the queue's `get` called
/// from it. Such a wait is an idle worker, not contention on one of the program's locks.
pub fn waits_for_task<'a>(mut frames: impl Iterator<Item = &'a Frame>) -> bool {
    let is_loop = |f: &Frame| {
        is(f, "concurrent/futures/thread.py", &["_worker"])
            || is(f, "multiprocessing/pool.py", &["worker"])
            || is(f, "billiard/pool.py", &["worker"])
    };
    match frames.next() {
        Some(f) if is_loop(f) => true,
        Some(f) if is(f, "queue.py", &["get"]) || is(f, "threading.py", &["wait"]) => frames
            .find(|f| !in_file(f, &["queue.py", "threading.py"]))
            .is_some_and(is_loop),
        _ => false,
    }
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
    fn a_notebook_cell_is_not_a_stalled_loop_but_a_loop_in_a_cell_is_a_loop() {
        let base = "/v/lib/python3.12/asyncio/base_events.py";
        let shell = "/v/lib/python3.12/site-packages/IPython/core/interactiveshell.py";
        let cell = [
            f("checksum", "/tmp/ipykernel_1/163.py"),
            f("<module>", "/tmp/ipykernel_1/163.py"),
            f("InteractiveShell.run_code", shell),
            f("InteractiveShell.run_cell", shell),
            f("Handle._run", "/v/lib/python3.12/asyncio/events.py"),
            f("BaseEventLoop._run_once", base),
            f("BaseEventLoop.run_forever", base),
        ];
        assert_eq!(loop_position(cell.iter()), LoopPosition::NotALoop);
        let loop_in_cell = [
            f("handler", "/tmp/ipykernel_1/170.py"),
            f("BaseEventLoop._run_once", base),
            f("BaseEventLoop.run_forever", base),
            f("<module>", "/tmp/ipykernel_1/170.py"),
            f("InteractiveShell.run_code", shell),
            f("BaseEventLoop._run_once", base),
        ];
        assert_eq!(loop_position(loop_in_cell.iter()), LoopPosition::Running);
    }

    #[test]
    fn notebook_cells() {
        assert!(is_notebook_cell("/tmp/ipykernel_4242/1632923222.py"));
        assert!(is_notebook_cell("<ipython-input-3-5c1e2f>"));
        assert!(!is_notebook_cell("/home/me/app/work.py"));
    }

    #[test]
    fn a_kernel_thread_starts_where_its_target_does() {
        let wrapped = [
            f("checksum", "/tmp/ipykernel_1/163.py"),
            f("Thread.run", "/v/lib/python3.12/threading.py"),
            f(
                "IPythonKernel._initialize_thread_hooks.<locals>.run_closure",
                "/v/lib/python3.12/site-packages/ipykernel/ipkernel.py",
            ),
            f("Thread._bootstrap_inner", "/v/lib/python3.12/threading.py"),
            f("Thread._bootstrap", "/v/lib/python3.12/threading.py"),
        ];
        let refs: Vec<&Frame> = wrapped.iter().collect();
        assert_eq!(start_function(&refs).unwrap().function, "checksum");
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

    #[test]
    fn thread_starts_helpers_and_idle_workers() {
        let executor_idle = [
            f("_worker", "/x/concurrent/futures/thread.py"),
            f("Thread.run", "/x/threading.py"),
            f("Thread._bootstrap_inner", "/x/threading.py"),
            f("Thread._bootstrap", "/x/threading.py"),
        ];
        let refs: Vec<&Frame> = executor_idle.iter().collect();
        assert_eq!(start_function(&refs).unwrap().function, "_worker");
        assert!(waits_for_task(executor_idle.iter()));
        let running_task = [
            f("render", "app.py"),
            f("_WorkItem.run", "/x/concurrent/futures/thread.py"),
            f("_worker", "/x/concurrent/futures/thread.py"),
        ];
        assert!(!waits_for_task(running_task.iter()));
        let queue_wait = [
            f("Condition.wait", "/x/threading.py"),
            f("Queue.get", "/x/queue.py"),
            f("worker", "/x/multiprocessing/pool.py"),
        ];
        assert!(waits_for_task(queue_wait.iter()));
        let own_queue = [
            f("Condition.wait", "/x/threading.py"),
            f("Queue.get", "/x/queue.py"),
            f("consume", "app.py"),
        ];
        assert!(!waits_for_task(own_queue.iter()), "the program's own queue");
        assert!(is_pool_helper(&f(
            "_handle_results",
            "/x/multiprocessing/pool.py"
        )));
        assert!(!is_pool_helper(&f("worker", "/x/multiprocessing/pool.py")));
        let main = [f("<module>", "app.py")];
        let refs: Vec<&Frame> = main.iter().collect();
        assert!(start_function(&refs).is_none(), "not a thread's stack");
        let ending = [
            f("Thread._delete", "/x/threading.py"),
            f("Thread._bootstrap_inner", "/x/threading.py"),
            f("Thread._bootstrap", "/x/threading.py"),
        ];
        let refs: Vec<&Frame> = ending.iter().collect();
        assert!(start_function(&refs).is_none(), "a thread caught ending");
        let loky = [f(
            "_process_worker",
            "/v/site-packages/joblib/externals/loky/process_executor.py",
        )];
        assert_eq!(descendant_role(loky.iter()), ProcessRole::PoolWorker);
    }
}
