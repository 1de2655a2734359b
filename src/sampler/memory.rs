//! Reading the target's memory. gilscope only ever reads: there is no write path.

use std::io;

/// Read access to another process's memory.
pub trait ReadMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<()>;

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
