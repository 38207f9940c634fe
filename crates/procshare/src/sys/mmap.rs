//! Shared memory mappings: `mmap(MAP_SHARED)` / `munmap`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

/// A `MAP_SHARED`, read-write mapping of a whole file, unmapped on drop.
///
/// The memory may change at any time under other processes' writes, so it is only ever handed
/// out as a raw pointer; the layers above decide how to read it (atomics, volatile copies).
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value; concurrent access goes
// through raw pointers whose users synchronise with atomics.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` only exposes the pointer and length.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0)`.
    ///
    /// `len` must be non-zero.
    ///
    /// # References
    /// mmap(2)
    pub fn map(fd: BorrowedFd<'_>, len: usize) -> io::Result<Mapping> {
        Mapping::map_at(fd, 0, len)
    }

    /// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED, fd, offset)`: `len` bytes of the file
    /// from `offset` (a multiple of the page size). Out of address space or of mappings is an
    /// error naming `RLIMIT_AS` and `vm.max_map_count` ([`super::limits::mapping`]).
    ///
    /// `len` must be non-zero.
    ///
    /// # References
    /// mmap(2)
    pub fn map_at(fd: BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<Mapping> {
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let off = libc::off_t::try_from(offset).ok().filter(|o| o % page_size() as i64 == 0);
        let (Some(off), true) = (off, len != 0) else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        // SAFETY: a fresh mapping at an address the kernel picks; no existing memory is touched.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd.as_raw_fd(), off)
        };
        if ptr == libc::MAP_FAILED {
            return Err(super::limits::mapping(io::Error::last_os_error(), len));
        }
        Ok(Mapping {
            ptr: NonNull::new(ptr.cast()).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?,
            len,
        })
    }

    /// The first byte of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The mapped length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Copies `buf.len()` bytes at `offset` of the mapping into `buf` (a plain copy: bytes
    /// other processes write meanwhile may be torn, as with Python's `buf`). `InvalidInput` if
    /// the range is not inside the mapping.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> io::Result<()> {
        self.check(offset, buf.len())?;
        // SAFETY: `offset .. offset + buf.len()` is inside this live mapping (checked above),
        // so valid for reads of `u8` (any bits are valid); `buf` is a distinct `&mut` slice,
        // so the ranges do not overlap; `u8` needs no alignment.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(offset),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        Ok(())
    }

    /// Copies `data` to `offset` of the mapping (a plain copy, as `read_at`). `InvalidInput`
    /// if the range is not inside the mapping (nothing is written then).
    pub fn write_at(&self, offset: usize, data: &[u8]) -> io::Result<()> {
        self.check(offset, data.len())?;
        // SAFETY: `offset .. offset + data.len()` is inside this live, writable mapping (checked
        // above); `data` cannot overlap it unless a caller of an `unsafe` slice accessor broke
        // its promise; `u8` needs no alignment.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(offset), data.len())
        };
        Ok(())
    }

    fn check(&self, offset: usize, len: usize) -> io::Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(io::Error::from(io::ErrorKind::InvalidInput)),
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping made by `map` and not unmapped since.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// `sysconf(_SC_PAGESIZE)`.
pub fn page_size() -> usize {
    // SAFETY: integer arguments only, no memory lent to the kernel: nothing to uphold.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n <= 0 {
        4096
    } else {
        n as usize
    }
}
