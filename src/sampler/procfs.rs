//! `/proc` readers. Parsers are pure functions of the text; [`ThreadFiles`] keeps each
//! thread's files open and re-reads them with `pread`, so a tick costs no `open`.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::model::{RunnablePlace, Syscall, Tid};

/// Parses `/proc/PID/task/TID/syscall`: `running`, `-1 sp pc`, or `nr a0 .. a5 sp pc`.
pub fn parse_syscall(text: &[u8]) -> Option<Syscall> {
    let text = std::str::from_utf8(text).ok()?.trim();
    if text == "running" {
        return Some(Syscall::Running);
    }
    let mut fields = text.split_ascii_whitespace();
    let nr: i64 = fields.next()?.parse().ok()?;
    if nr < 0 {
        return Some(Syscall::NotInSyscall);
    }
    let mut args = [0u64; 3];
    for arg in &mut args {
        let hex = fields.next()?;
        *arg = u64::from_str_radix(hex.strip_prefix("0x")?, 16).ok()?;
    }
    Some(Syscall::Blocked { nr, args })
}

/// Where a runnable thread's kernel stack (`/proc/PID/task/TID/stack`, one `[<0>] function+0x..`
/// line per frame, innermost first) puts it. The names cover the kernels since 5.10 on x86-64
/// and arm64; an unknown stack is [`RunnablePlace::Kernel`].
pub fn parse_kernel_stack(text: &[u8]) -> RunnablePlace {
    let Ok(text) = std::str::from_utf8(text) else {
        return RunnablePlace::Kernel;
    };
    let functions = text
        .lines()
        .filter_map(|line| line.split_ascii_whitespace().nth(1))
        .map(|f| f.split('+').next().unwrap_or(f));
    let mut place = RunnablePlace::OnCpu;
    for function in functions {
        place = RunnablePlace::Kernel;
        if function.contains("futex") {
            return RunnablePlace::FutexWake;
        }
        if function.starts_with("irqentry_exit_to_user_mode") || function == "el0_interrupt" {
            return RunnablePlace::UserCode;
        }
        if function.contains("exit_to_user_mode") || function.starts_with("el0_svc") {
            return RunnablePlace::SyscallExit;
        }
    }
    place
}

/// The fields gilscope needs from `/proc/PID/stat` or `/proc/PID/task/TID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub state: u8,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// Start time after boot, in clock ticks: with the PID, it names a process uniquely.
    pub start_ticks: u64,
    /// Threads in the process (for a thread's own stat, of its process).
    pub num_threads: u64,
    /// The wait status of a process that exited and awaits its parent's `wait` (a zombie).
    pub exit_code: Option<i32>,
}

/// Parses a `stat` line. The command name may hold spaces and parentheses, so the fields are
/// counted from the last `)`.
pub fn parse_stat(text: &[u8]) -> Option<Stat> {
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(text.get(close + 1..)?).ok()?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().take(50).collect();
    // fields[0] is field 3 (state); utime is field 14, stime 15, num_threads 20, starttime 22,
    // exit_code 52 (Linux 3.5+).
    let state = *fields.first()?.as_bytes().first()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let num_threads: u64 = fields.get(17)?.parse().ok()?;
    let start_ticks: u64 = fields.get(19)?.parse().ok()?;
    Some(Stat {
        state,
        cpu_ticks: utime.checked_add(stime)?,
        start_ticks,
        num_threads,
        exit_code: fields
            .get(49)
            .and_then(|f| f.parse().ok())
            .filter(|_| state == b'Z'),
    })
}

/// A process's command line, its arguments split at NULs (empty for a kernel thread, or
/// when it cannot be read).
pub fn read_cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            bytes
                .split(|&b| b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Lists the children of every thread of `pid` into `out` (pids, not cleared first), from
/// the `children` files (`CONFIG_PROC_CHILDREN`).
pub fn list_children(pid: u32, out: &mut Vec<u32>) -> io::Result<()> {
    let mut tids = Vec::new();
    list_threads(pid, &mut tids)?;
    for tid in tids {
        // A thread that exited meanwhile has no file left: it has no children either.
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/children")) {
            out.extend(
                text.split_ascii_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    Ok(())
}

/// Every process's parent, from a scan of `/proc`: the fallback for kernels without
/// `children` files.
pub fn parent_map() -> io::Result<Vec<(u32, u32)>> {
    let mut pairs = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = std::fs::read(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|text| parse_parent(&text))
        {
            pairs.push((pid, ppid));
        }
    }
    Ok(pairs)
}

/// The parent pid (field 4) of a `stat` line.
pub fn parse_parent(text: &[u8]) -> Option<u32> {
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(text.get(close + 1..)?).ok()?;
    rest.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// What `schedstat` says of a thread's time on a CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuUse {
    /// On-CPU nanoseconds (first field). The kernel adds a running slice only at a scheduler
    /// tick or when the thread leaves the CPU, so this lags a thread that is running now.
    pub ns: u64,
    /// Nanoseconds runnable but waiting on a run queue for a CPU (second field); like `ns`,
    /// added as the thread gets onto a CPU.
    pub run_delay_ns: u64,
    /// Slices run (third field): counted as the thread gets onto a CPU, so it never lags.
    pub slices: u64,
}

/// Parses `schedstat`: on-CPU nanoseconds, wait nanoseconds, slices run.
pub fn parse_schedstat(text: &[u8]) -> Option<CpuUse> {
    let mut fields = std::str::from_utf8(text).ok()?.split_ascii_whitespace();
    let ns = fields.next()?.parse().ok()?;
    let run_delay_ns = fields.next()?.parse().ok()?;
    let slices = fields.next()?.parse().ok()?;
    Some(CpuUse {
        ns,
        run_delay_ns,
        slices,
    })
}

/// Nanoseconds per clock tick of `stat`'s time fields.
pub fn ns_per_tick() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        1_000_000_000 / hz as u64
    } else {
        10_000_000
    }
}

/// An open `/proc` file, re-read from offset 0 each time.
#[derive(Debug)]
pub struct ProcFile(File);

impl ProcFile {
    pub fn open(path: &str) -> io::Result<ProcFile> {
        File::open(path).map(ProcFile)
    }

    /// Reads the whole file into `buf` (no allocation) and returns the filled part.
    pub fn read<'a>(&self, buf: &'a mut [u8]) -> io::Result<&'a [u8]> {
        let n = self.0.read_at(buf, 0)?;
        Ok(&buf[..n])
    }
}

/// The files of one thread, opened once.
#[derive(Debug)]
pub struct ThreadFiles {
    syscall: ProcFile,
    schedstat: ProcFile,
    /// Its kernel stack, read only when it is runnable; `None` once unreadable (it takes
    /// `CAP_SYS_ADMIN`).
    stack: Option<ProcFile>,
}

/// What one read of a thread's files gave.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadKernelState {
    pub syscall: Option<Syscall>,
    pub cpu: Option<CpuUse>,
}

impl ThreadFiles {
    pub fn open(pid: u32, tid: Tid) -> io::Result<ThreadFiles> {
        let base = format!("/proc/{pid}/task/{tid}");
        Ok(ThreadFiles {
            syscall: ProcFile::open(&format!("{base}/syscall"))?,
            schedstat: ProcFile::open(&format!("{base}/schedstat"))?,
            stack: ProcFile::open(&format!("{base}/stack")).ok(),
        })
    }

    /// Reads the thread's state; a field is `None` when the thread is gone or unreadable.
    pub fn read(&mut self, buf: &mut [u8]) -> ThreadKernelState {
        let cpu = self.read_cpu(buf);
        self.read_syscall(buf, cpu)
    }

    /// On-CPU nanoseconds so far: the cheaper of the two reads.
    pub fn read_cpu(&self, buf: &mut [u8]) -> Option<CpuUse> {
        self.schedstat.read(buf).ok().and_then(parse_schedstat)
    }

    /// The syscall the thread is in, with an already read `cpu`; for a runnable thread, where
    /// its kernel stack puts it, where readable.
    pub fn read_syscall(&mut self, buf: &mut [u8], cpu: Option<CpuUse>) -> ThreadKernelState {
        let mut syscall = self.syscall.read(buf).ok().and_then(parse_syscall);
        if let (Some(Syscall::Running), Some(stack)) = (syscall, &self.stack) {
            match stack.read(buf) {
                Ok(text) => syscall = Some(Syscall::Runnable(parse_kernel_stack(text))),
                // Not permitted (or gone): the thread's other reads tell which.
                Err(_) => self.stack = None,
            }
        }
        ThreadKernelState { syscall, cpu }
    }
}

/// Lists the thread ids of a process into `out` (cleared first).
pub fn list_threads(pid: u32, out: &mut Vec<Tid>) -> io::Result<()> {
    out.clear();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        if let Some(tid) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) {
            out.push(Tid(tid));
        }
    }
    Ok(())
}

/// Reads a process's `stat`.
pub fn process_stat(pid: u32) -> io::Result<Stat> {
    let text = std::fs::read(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad stat line"))
}

/// Reads a thread's `comm` (its OS name).
pub fn thread_comm(pid: u32, tid: Tid) -> Option<String> {
    let text = std::fs::read(format!("/proc/{pid}/task/{tid}/comm")).ok()?;
    Some(String::from_utf8_lossy(&text).trim_end().to_string())
}

/// A path of the target's, as the target sees it: through its root (`/proc/PID/root`), which
/// is a container's own file system when the target runs in another mount namespace.
pub fn in_target_root(pid: u32, path: &std::path::Path) -> std::path::PathBuf {
    let relative = path.strip_prefix("/").unwrap_or(path);
    std::path::Path::new(&format!("/proc/{pid}/root")).join(relative)
}

/// The contents of the file the target mapped at `map`: through `/proc/PID/map_files` (the
/// very file mapped, even if its path was replaced or exists only in another mount
/// namespace), else through the target's root.
pub fn read_mapped_file(pid: u32, map: &proc_maps::MapRange) -> io::Result<Vec<u8>> {
    let start = map.start();
    let end = start + map.size();
    std::fs::read(format!("/proc/{pid}/map_files/{start:x}-{end:x}")).or_else(|_| {
        let path = map
            .filename()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "an anonymous mapping"))?;
        std::fs::read(in_target_root(pid, path))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_lines() {
        assert_eq!(parse_syscall(b"running\n"), Some(Syscall::Running));
        assert_eq!(
            parse_syscall(b"-1 0x7ffd5e8 0x7f00\n"),
            Some(Syscall::NotInSyscall)
        );
        assert_eq!(
            parse_syscall(b"202 0x7f1c2a4b0048 0x189 0x0 0x0 0x0 0xffffffff 0x7ffd 0x7f\n"),
            Some(Syscall::Blocked {
                nr: 202,
                args: [0x7f1c2a4b0048, 0x189, 0]
            })
        );
        assert_eq!(parse_syscall(b""), None);
        assert_eq!(parse_syscall(b"202 zz"), None);
        assert_eq!(parse_syscall(b"202 0x1"), None);
    }

    #[test]
    fn stat_with_hostile_comm() {
        let line =
            b"1234 (evil) (S 1 2) R 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 5 0 777 0 0";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.state, b'R');
        assert_eq!(stat.cpu_ticks, 300);
        assert_eq!(stat.start_ticks, 777);
        assert_eq!(stat.num_threads, 5);
        assert_eq!(stat.exit_code, None);
        assert_eq!(parse_parent(line), Some(1));
        assert_eq!(parse_stat(b"1234 (x) S 1"), None);
        assert_eq!(parse_stat(b"no paren"), None);
    }

    #[test]
    fn kernel_stacks() {
        use RunnablePlace::*;
        assert_eq!(parse_kernel_stack(b""), OnCpu);
        let futex = b"[<0>] futex_do_wait+0x4a/0x70\n[<0>] __futex_wait+0x8e/0xf0\n[<0>] futex_wait+0x6b/0x110\n[<0>] do_futex+0xc5/0x190\n";
        assert_eq!(parse_kernel_stack(futex), FutexWake);
        let preempted = b"[<0>] irqentry_exit_to_user_mode+0x1b2/0x1d0\n[<0>] asm_sysvec_apic_timer_interrupt+0x1a/0x20\n";
        assert_eq!(parse_kernel_stack(preempted), UserCode);
        let exit = b"[<0>] exit_to_user_mode_loop+0xa4/0x130\n[<0>] do_syscall_64+0x1f6/0x230\n[<0>] entry_SYSCALL_64_after_hwframe+0x76/0x7e\n";
        assert_eq!(parse_kernel_stack(exit), SyscallExit);
        assert_eq!(
            parse_kernel_stack(b"[<0>] handle_mm_fault+0x1/0x2\n"),
            Kernel
        );
        assert_eq!(parse_kernel_stack(b"\xff"), Kernel);
    }

    #[test]
    fn schedstat_line() {
        assert_eq!(
            parse_schedstat(b"123456 789 10\n"),
            Some(CpuUse {
                ns: 123456,
                run_delay_ns: 789,
                slices: 10
            })
        );
        assert_eq!(parse_schedstat(b"123456 789\n"), None);
        assert_eq!(parse_schedstat(b"x"), None);
    }

    #[test]
    fn reads_own_thread() {
        let pid = std::process::id();
        // SAFETY: gettid has no preconditions.
        let tid = Tid(unsafe { libc::gettid() } as u32);
        let mut files = ThreadFiles::open(pid, tid).unwrap();
        // The kernel accounts run time at ticks and switches: run for a few ticks first.
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(30) {
            std::hint::black_box(0u64);
        }
        let mut buf = [0u8; 512];
        let state = files.read(&mut buf);
        // A thread reading its own syscall file is inside that very pread.
        assert!(
            matches!(state.syscall, Some(Syscall::Blocked { nr, .. }) if nr == libc::SYS_pread64),
            "{:?}",
            state.syscall
        );
        let cpu = state.cpu.unwrap();
        assert!(cpu.ns > 0 && cpu.slices > 0, "{cpu:?}");
    }
}
