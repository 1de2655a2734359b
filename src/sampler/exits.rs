//! Exit statuses of processes gilscope did not start. Only a parent can `wait` for a child,
//! and a pool's parent reaps a dead worker at once, so `/proc` rarely shows the zombie and
//! its status. The kernel's process-events connector (netlink, `CONFIG_PROC_EVENTS`) reports
//! every exit with its status; it needs `CAP_NET_ADMIN`. Without it, a descendant's ending
//! is "exited", without the status.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_CONNECTOR: i32 = 11;
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;
const NLMSG_HEADER: usize = 16;
const CN_MSG_HEADER: usize = 20;
/// `what`, `cpu`, `timestamp_ns` before the event data.
const PROC_EVENT_HEADER: usize = 16;
/// Statuses kept for processes not asked about yet: a bound, since every exit on the machine
/// is reported.
const MAX_KEPT: usize = 4096;

/// Listens for process exits.
pub struct ExitWatcher {
    socket: OwnedFd,
    statuses: HashMap<u32, i32>,
    buf: Vec<u8>,
}

impl ExitWatcher {
    /// `None` where the connector is unavailable or not permitted.
    pub fn open() -> Option<ExitWatcher> {
        // SAFETY: plain socket creation; the descriptor is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                NETLINK_CONNECTOR,
            )
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_nl is plain data; zeroed is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        addr.nl_groups = CN_IDX_PROC;
        // SAFETY: `addr` is a valid sockaddr_nl of the size given.
        let bound = unsafe {
            libc::bind(
                socket.as_raw_fd(),
                &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if bound != 0 {
            return None;
        }
        let mut msg = Vec::with_capacity(NLMSG_HEADER + CN_MSG_HEADER + 4);
        let total = (NLMSG_HEADER + CN_MSG_HEADER + 4) as u32;
        msg.extend_from_slice(&total.to_ne_bytes());
        msg.extend_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
        msg.extend_from_slice(&0u16.to_ne_bytes()); // flags
        msg.extend_from_slice(&0u32.to_ne_bytes()); // seq
        msg.extend_from_slice(&std::process::id().to_ne_bytes());
        msg.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
        msg.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes()); // seq
        msg.extend_from_slice(&0u32.to_ne_bytes()); // ack
        msg.extend_from_slice(&4u16.to_ne_bytes()); // len
        msg.extend_from_slice(&0u16.to_ne_bytes()); // flags
        msg.extend_from_slice(&PROC_CN_MCAST_LISTEN.to_ne_bytes());
        // SAFETY: `msg` is a valid buffer of the length given.
        let sent = unsafe {
            libc::send(
                socket.as_raw_fd(),
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                0,
            )
        };
        if sent != msg.len() as isize {
            return None;
        }
        Some(ExitWatcher {
            socket,
            statuses: HashMap::new(),
            buf: vec![0u8; 8192],
        })
    }

    /// Reads the pending events, keeping the exit status of each process `wanted` says yes to.
    pub fn poll(&mut self, wanted: impl Fn(u32) -> bool) {
        loop {
            // SAFETY: `buf` is a valid writable buffer of the length given.
            let n = unsafe {
                libc::recv(
                    self.socket.as_raw_fd(),
                    self.buf.as_mut_ptr() as *mut libc::c_void,
                    self.buf.len(),
                    0,
                )
            };
            if n <= 0 {
                return; // EAGAIN: nothing pending (or ENOBUFS: events were dropped)
            }
            for (pid, status) in parse_exits(&self.buf[..n as usize]) {
                if wanted(pid) && self.statuses.len() < MAX_KEPT {
                    self.statuses.insert(pid, status);
                }
            }
        }
    }

    /// The wait status of `pid`, if its exit was seen.
    pub fn take(&mut self, pid: u32) -> Option<i32> {
        self.statuses.remove(&pid)
    }
}

/// The (pid, wait status) of each process exit in a netlink datagram. Thread exits (a thread
/// other than the group leader) are left out.
pub fn parse_exits(datagram: &[u8]) -> Vec<(u32, i32)> {
    let u32_at = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    let mut exits = Vec::new();
    let mut rest = datagram;
    while let Some(len) = u32_at(rest, 0) {
        let len = len as usize;
        if len < NLMSG_HEADER || len > rest.len() {
            break;
        }
        let msg = &rest[..len];
        let event = NLMSG_HEADER + CN_MSG_HEADER;
        if u32_at(msg, event) == Some(PROC_EVENT_EXIT) {
            let data = event + PROC_EVENT_HEADER;
            if let (Some(pid), Some(tgid), Some(code)) = (
                u32_at(msg, data),
                u32_at(msg, data + 4),
                u32_at(msg, data + 8),
            ) {
                if pid == tgid {
                    exits.push((pid, code as i32));
                }
            }
        }
        // Messages are 4-byte aligned.
        let next = (len + 3) & !3;
        rest = rest.get(next..).unwrap_or(&[]);
    }
    exits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit_message(pid: u32, tgid: u32, status: u32) -> Vec<u8> {
        let mut m = Vec::new();
        let len = (NLMSG_HEADER + CN_MSG_HEADER + PROC_EVENT_HEADER + 24) as u32;
        m.extend_from_slice(&len.to_ne_bytes());
        m.extend_from_slice(&[0u8; 12]);
        m.extend_from_slice(&[0u8; CN_MSG_HEADER]);
        m.extend_from_slice(&PROC_EVENT_EXIT.to_ne_bytes());
        m.extend_from_slice(&[0u8; 12]);
        for v in [pid, tgid, status, 17, 1, 1] {
            m.extend_from_slice(&v.to_ne_bytes());
        }
        m
    }

    #[test]
    fn exits_of_processes_not_threads() {
        let mut d = exit_message(100, 100, 9);
        d.extend(exit_message(101, 100, 0));
        d.extend(exit_message(200, 200, 3 << 8));
        assert_eq!(parse_exits(&d), vec![(100, 9), (200, 3 << 8)]);
        assert_eq!(parse_exits(&d[..10]), vec![]);
        assert_eq!(parse_exits(&[0xff; 64]), vec![]);
    }

    #[test]
    fn sees_a_killed_child_when_permitted() {
        let Some(mut watcher) = ExitWatcher::open() else {
            eprintln!("SKIPPED: no process-events connector (needs CAP_NET_ADMIN)");
            return;
        };
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id();
        child.kill().unwrap();
        child.wait().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let mut status = None;
        while status.is_none() && std::time::Instant::now() < deadline {
            watcher.poll(|p| p == pid);
            status = watcher.take(pid);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(status, Some(libc::SIGKILL));
    }
}
