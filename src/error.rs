//! Errors the user can act on. Each has a one-line message and a hint with the fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no process with PID {0}")]
    NoSuchProcess(u32),
    #[error("invalid PID {0}")]
    InvalidPid(String),
    #[error("refusing to attach to PID {pid} ({what})")]
    RefusedTarget { pid: u32, what: &'static str },
    #[error("permission denied reading process {0}")]
    PermissionDenied(u32),
    #[error("process {pid} ({exe}) is not a Python process")]
    NotPython { pid: u32, exe: String },
    #[error("Python {version} is not supported")]
    UnsupportedPython { version: String },
    #[error("cannot read CPython {version}'s own offsets table in process {pid}: {detail}")]
    DebugOffsetsUnreadable {
        pid: u32,
        version: String,
        detail: String,
    },
    #[error("cannot find the GIL of CPython {version} in process {pid}: {detail}")]
    GilNotFound {
        pid: u32,
        version: String,
        detail: String,
    },
    #[error("could not read the Python interpreter in process {pid}: {detail}")]
    PythonUnreadable { pid: u32, detail: String },
    #[error("command not found: {0}")]
    CommandNotFound(String),
    #[error("could not start {command}: {source}")]
    Launch {
        command: String,
        source: std::io::Error,
    },
    #[error("process {0} has exited")]
    Exited(u32),
    #[error("invalid value for {option}: {value}")]
    InvalidOption { option: &'static str, value: String },
    #[error("cannot write {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("cannot read recording {path}: {detail}")]
    Recording { path: PathBuf, detail: String },
    #[error("gilscope top needs a terminal, and its output is not one")]
    NotATerminal,
    #[error("cannot start the Pyroscope push thread: {0}")]
    PushThread(std::io::Error),
    #[error("cannot read {path} as a run: {detail}")]
    RunInput { path: PathBuf, detail: String },
    #[error("cannot start the agent's discovery thread: {0}")]
    AgentThread(std::io::Error),
    #[error("cannot serve on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
}

impl Error {
    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            Error::NoSuchProcess(_) => "check the PID with `pgrep -a python`".into(),
            Error::InvalidPid(_) => "a PID is a positive integer no larger than /proc/sys/kernel/pid_max".into(),
            Error::RefusedTarget { .. } => "attach to the Python process you want to measure".into(),
            Error::PermissionDenied(_) => "run as root, or grant CAP_SYS_PTRACE (`sudo setcap cap_sys_ptrace+ep $(which gilscope)`), or as the same user with /proc/sys/kernel/yama/ptrace_scope set to 0".into(),
            Error::NotPython { .. } => "give the PID of a CPython process; for a launcher script, use `gilscope run -- python app.py`".into(),
            Error::UnsupportedPython { .. } => "gilscope reads CPython 3.7 to 3.15 and the free-threaded 3.13t (3.8 to 3.15 and 3.13t tested); run the program with one of those, or a newer gilscope".into(),
            Error::DebugOffsetsUnreadable { .. } => "its _Py_DebugOffsets do not read as that release's own layout (a modified build, or memory being torn down); try again, and if it persists report the build at the project's issue tracker".into(),
            Error::GilNotFound { .. } => "gilscope needs the interpreter's `_PyRuntime` symbol to see the GIL; run the program with a CPython build that exports it (python.org, pyenv and distribution builds do), or use py-spy for stacks alone".into(),
            Error::PythonUnreadable { .. } => "the interpreter may still be starting or shutting down, or a thread may be more than 4096 frames deep (py-spy's limit); try again, or report the Python build at the project's issue tracker".into(),
            Error::CommandNotFound(_) => "check the spelling and your PATH, e.g. `gilscope run -- python3 app.py`".into(),
            Error::Launch { .. } => "check that the command is executable".into(),
            Error::Exited(_) => "it is a zombie, waiting for its parent to collect its exit status: nothing of it is left to sample; attach to a running process".into(),
            Error::InvalidOption { option, .. } => format!("see `gilscope --help` for the values {option} takes"),
            Error::Output { .. } => "check that the directory exists, is writable and has free space".into(),
            Error::Signals(_) => "gilscope could not set up Ctrl-C handling; please report it with your platform".into(),
            Error::Recording { .. } => "give a file written by `gilscope record`; an incomplete file still replays up to its last whole sample".into(),
            Error::NotATerminal => "run it in a terminal, or use `gilscope run` / `gilscope attach` for a printed report".into(),
            Error::PushThread(_) => "the system is out of threads or memory; free some, or run without --pyroscope".into(),
            Error::AgentThread(_) => "the system is out of threads or memory; free some and start the agent again".into(),
            Error::Listen { .. } => "another process may have the port; give a free one with --listen, e.g. --listen 127.0.0.1:9532".into(),
            Error::RunInput { .. } => "give a recording written by `gilscope record` or a JSON report written by `--json` (schema gilscope.report/1)".into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
