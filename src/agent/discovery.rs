//! Finding the processes to watch, on a thread of its own so that attaching (py-spy reads
//! the interpreter's binary) never delays a sample: every process in `/proc` whose command
//! line passes `--match` and `--exclude`, not handed over already, and not found not to be
//! Python, is attached to and handed to the sampling loop.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;

use super::board::{Board, UnwatchedEntry};
use super::identity::{EnvLabels, Identity};
use crate::error::Error;
use crate::sampler::{procfs, ProcessSampler, Role, SamplerOptions};

/// A process worth trying to attach to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub pid: u32,
    pub start_ticks: u64,
    /// The program it runs: a process that `exec`s another (a shell script starting Python)
    /// keeps its pid and start time, but not this.
    pub exe: Option<PathBuf>,
    pub command: Vec<String>,
}

/// A process, as far as tries go: the same pid, start time and program.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tried {
    start_ticks: u64,
    exe: Option<PathBuf>,
    tries: u32,
}

/// Which command lines to watch.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only command lines this matches (`--match`).
    pub matching: Option<Regex>,
    /// Never command lines this matches (`--exclude`).
    pub excluding: Option<Regex>,
}

impl Filter {
    pub fn admits(&self, command: &str) -> bool {
        self.matching.as_ref().is_none_or(|re| re.is_match(command))
            && !self
                .excluding
                .as_ref()
                .is_some_and(|re| re.is_match(command))
    }
}

/// How many attaches a Python process gets before it is given up (an interpreter still
/// starting fails the first).
pub const ATTACH_TRIES: u32 = 3;

/// What is known of processes the agent does not watch.
#[derive(Debug, Default)]
pub struct Discovery {
    filter: Filter,
    /// Processes tried, and how many tries each has had (a process handed over counts as out
    /// of tries).
    tried: HashMap<u32, Tried>,
}

/// A Python process attached to, for the sampling loop to watch.
pub struct Attached {
    pub sampler: ProcessSampler,
    pub identity: Identity,
}

/// How the discovery thread works.
pub struct Finding {
    pub filter: Filter,
    pub env: EnvLabels,
    pub sampler: SamplerOptions,
    pub every: Duration,
}

/// The discovery thread: it stops when the receiver of what it finds is dropped.
pub fn spawn(
    finding: Finding,
    board: Arc<Board>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Receiver<Attached>> {
    let (found, receiver) = mpsc::channel();
    std::thread::Builder::new()
        .name("gilscope-discovery".into())
        .spawn(move || {
            let mut discovery = Discovery::new(finding.filter.clone());
            while !stop.load(Ordering::Relaxed) {
                let round = Instant::now();
                for candidate in discovery.candidates() {
                    let Some(attached) = discovery.attach(candidate, &finding, &board) else {
                        continue;
                    };
                    if found.send(attached).is_err() {
                        return;
                    }
                }
                board.keep_unwatched(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
                while round.elapsed() < finding.every && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        })?;
    Ok(receiver)
}

impl Discovery {
    pub fn new(filter: Filter) -> Discovery {
        Discovery {
            filter,
            tried: HashMap::new(),
        }
    }

    /// The processes now running that pass the filter and have tries left.
    pub fn candidates(&mut self) -> Vec<Candidate> {
        let own = std::process::id();
        let mut found = Vec::new();
        let mut alive = Vec::new();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return found;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            alive.push(pid);
            if pid == own {
                continue;
            }
            let Some(stat) = procfs::process_stat(pid).ok() else {
                continue;
            };
            if stat.state == b'Z' || stat.state == b'X' {
                continue;
            }
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            let out_of_tries = self.tried.get(&pid).is_some_and(|tried| {
                tried.start_ticks == stat.start_ticks
                    && tried.exe == exe
                    && tried.tries >= ATTACH_TRIES
            });
            if out_of_tries {
                continue;
            }
            let command = procfs::read_cmdline(pid);
            // Kernel threads have no command line.
            if command.is_empty() || !self.filter.admits(&command.join(" ")) {
                continue;
            }
            found.push(Candidate {
                pid,
                start_ticks: stat.start_ticks,
                exe,
                command,
            });
        }
        self.tried.retain(|pid, _| alive.contains(pid));
        found
    }

    /// Attaches to a candidate. A Python process that cannot be watched is listed on the
    /// board with the reason.
    fn attach(
        &mut self,
        candidate: Candidate,
        finding: &Finding,
        board: &Board,
    ) -> Option<Attached> {
        match ProcessSampler::attach(candidate.pid, &finding.sampler, Role::Root) {
            Ok(sampler) => {
                self.count_try(&candidate, true);
                let identity = Identity::read(candidate.pid, candidate.command, &finding.env);
                Some(Attached { sampler, identity })
            }
            Err(error) => {
                let final_ = matches!(
                    error,
                    Error::NotPython { .. }
                        | Error::NoSuchProcess(_)
                        | Error::Exited(_)
                        | Error::PermissionDenied(_)
                        | Error::UnsupportedPython { .. }
                );
                self.count_try(&candidate, final_);
                let not_python = matches!(
                    error,
                    Error::NotPython { .. } | Error::NoSuchProcess(_) | Error::Exited(_)
                );
                if !not_python {
                    board.unwatched(UnwatchedEntry {
                        pid: candidate.pid,
                        command: candidate.command,
                        reason: error.to_string(),
                        hint: error.hint(),
                    });
                }
                None
            }
        }
    }

    /// Counts an attach: `final_` when the process is not to be tried again (not a Python
    /// process, or attached and handed over).
    fn count_try(&mut self, candidate: &Candidate, final_: bool) {
        let fresh = Tried {
            start_ticks: candidate.start_ticks,
            exe: candidate.exe.clone(),
            tries: 0,
        };
        let tried = self
            .tried
            .entry(candidate.pid)
            .or_insert_with(|| fresh.clone());
        if tried.start_ticks != fresh.start_ticks || tried.exe != fresh.exe {
            *tried = fresh;
        }
        tried.tries = if final_ {
            ATTACH_TRIES
        } else {
            tried.tries + 1
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_and_exclude() {
        let filter = Filter {
            matching: Some(Regex::new(r"gunicorn|app\.py").unwrap()),
            excluding: Some(Regex::new(r"--worker-tmp").unwrap()),
        };
        assert!(filter.admits("python3 app.py"));
        assert!(filter.admits("/venv/bin/gunicorn api:app"));
        assert!(!filter.admits("python3 other.py"));
        assert!(!filter.admits("gunicorn --worker-tmp /dev/shm"));
        assert!(Filter::default().admits("anything"));
    }

    #[test]
    fn this_test_process_is_found_until_given_up() {
        let mut discovery = Discovery::new(Filter::default());
        let me = std::process::id();
        // The agent never lists itself; the parent (cargo's harness or a shell) stands in.
        let parent = std::os::unix::process::parent_id();
        let found = discovery.candidates();
        assert!(found.iter().all(|c| c.pid != me));
        let Some(candidate) = found.into_iter().find(|c| c.pid == parent) else {
            return; // the parent is in another PID namespace
        };
        discovery.count_try(&candidate, false);
        assert!(discovery.candidates().iter().any(|c| c.pid == parent));
        discovery.count_try(&candidate, true);
        assert!(discovery.candidates().iter().all(|c| c.pid != parent));
        // The same process running another program (it exec'd) is tried again.
        let mut before_exec = candidate.clone();
        before_exec.exe = Some(PathBuf::from("/bin/sh"));
        discovery.count_try(&before_exec, true);
        assert!(discovery.candidates().iter().any(|c| c.pid == parent));
    }
}
