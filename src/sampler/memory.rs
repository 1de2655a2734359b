//! Reading the target's memory. gilscope only ever reads: there is no write path.

use std::io;

/// Read access to another process's memory.
pub trait ReadMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<()>;

    /// Reads `buf.len() / addrs.len()` bytes at each address into consecutive blocks of `buf`;
    /// returns how many blocks, from the first, were read whole.
    fn read_blocks(&self, addrs: &[u64], buf: &mut [u8]) -> usize {
        let Some(size) = buf.len().checked_div(addrs.len()) else {
            return 0;
        };
        let mut whole = 0;
        for (&addr, block) in addrs.iter().zip(buf.chunks_exact_mut(size)) {
            if self.read(addr, block).is_err() {
                break;
            }
            whole += 1;
        }
        whole
    }

    fn read_u64(&self, addr: u64) -> io::Result<u64> {
        let mut buf = [0u8; 8];
        self.read(addr, &mut buf)?;
        Ok(u64::from_le_bytes(buf))
    }

    fn read_u32(&self, addr: u64) -> io::Result<u32> {
        let mut buf = [0u8; 4];
        self.read(addr, &mut buf)?;
        Ok(u32::from_le_bytes(buf))
    }
}

/// A live process, read with `process_vm_readv`.
#[derive(Debug, Clone, Copy)]
pub struct ProcessMemory {
    pub pid: u32,
}

impl ReadMemory for ProcessMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as usize as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: `local` describes `buf`, which we own mutably for the call; the remote
        // iovec is only read by the kernel on the other process's side.
        let n =
            unsafe { libc::process_vm_readv(self.pid as libc::pid_t, &local, 1, &remote, 1, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != buf.len() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short read"));
        }
        Ok(())
    }

    /// One `process_vm_readv` for up to `IOV_MAX` blocks: the kernel stops at the first block
    /// it cannot read.
    fn read_blocks(&self, addrs: &[u64], buf: &mut [u8]) -> usize {
        const IOV_MAX: usize = 1024;
        let Some(size) = buf.len().checked_div(addrs.len()) else {
            return 0;
        };
        if size == 0 {
            return 0;
        }
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: size * addrs.len().min(IOV_MAX),
        };
        let remote: Vec<libc::iovec> = addrs
            .iter()
            .take(IOV_MAX)
            .map(|&addr| libc::iovec {
                iov_base: addr as usize as *mut libc::c_void,
                iov_len: size,
            })
            .collect();
        // SAFETY: `local` covers `remote.len()` blocks of `buf`, which we own mutably for the
        // call; the remote iovecs are only read on the other process's side.
        let n = unsafe {
            libc::process_vm_readv(
                self.pid as libc::pid_t,
                &local,
                1,
                remote.as_ptr(),
                remote.len() as libc::c_ulong,
                0,
            )
        };
        if n < 0 {
            0
        } else {
            n as usize / size
        }
    }
}

#[cfg(test)]
pub mod fake {
    use super::ReadMemory;
    use std::collections::BTreeMap;
    use std::io;

    /// A sparse fake address space for unit tests.
    #[derive(Default)]
    pub struct FakeMemory {
        pub regions: BTreeMap<u64, Vec<u8>>,
    }

    impl FakeMemory {
        pub fn put_u64(&mut self, addr: u64, value: u64) {
            self.regions.insert(addr, value.to_le_bytes().to_vec());
        }
        pub fn put_u32(&mut self, addr: u64, value: u32) {
            self.regions.insert(addr, value.to_le_bytes().to_vec());
        }
    }

    impl ReadMemory for FakeMemory {
        fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
            for (i, byte) in buf.iter_mut().enumerate() {
                let at = addr + i as u64;
                let (start, bytes) = self
                    .regions
                    .range(..=at)
                    .next_back()
                    .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
                *byte = *bytes
                    .get((at - start) as usize)
                    .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_read_in_one_call_up_to_the_first_unreadable_one() {
        let data: Vec<u64> = (0..64).collect();
        let at = |i: usize| &data[i] as *const u64 as u64;
        let me = ProcessMemory {
            pid: std::process::id(),
        };
        let mut buf = [0u8; 24];
        let read = me.read_blocks(&[at(5), at(9), at(60)], &mut buf);
        assert_eq!(read, 3);
        let words: Vec<u64> = buf
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(words, [5, 9, 60]);
        // An unmapped address stops the read there; the blocks before it are whole.
        let read = me.read_blocks(&[at(1), 8, at(2)], &mut buf);
        assert_eq!(read, 1);
        assert_eq!(me.read_blocks(&[], &mut []), 0);
    }
}
