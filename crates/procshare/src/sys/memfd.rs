//! Anonymous shared memory files: `memfd_create`, sizes and seals.

use super::{cvt, retry};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)`: a new empty anonymous file.
///
/// The name only shows in `/proc/PID/fd`; it need not be unique.
///
/// # References
/// memfd_create(2)
pub fn create(name: &str) -> io::Result<OwnedFd> {
    let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let fd = cvt(unsafe {
        libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })
    .map_err(|e| super::limits::descriptor(e, "a shared-memory file"))?;
    // SAFETY: the kernel just returned this descriptor to us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `ftruncate(fd, len)`.
///
/// # References
/// ftruncate(2)
pub fn set_len(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    let len = i64::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: integer arguments only, no memory lent to the kernel; the descriptor is
    // borrowed, so it stays open for the call.
    retry(|| cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), len) })).map(drop)
}

/// `fstat(fd).st_size`.
///
/// # References
/// fstat(2)
pub fn len(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a valid out-pointer to a `stat`.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded and filled it.
    let st = unsafe { st.assume_init() };
    Ok(st.st_size as u64)
}

/// Every seal: the file's size and contents can no longer change.
pub const SEAL_ALL: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// `fcntl(fd, F_ADD_SEALS, seals)`.
///
/// # References
/// fcntl(2), memfd_create(2)
pub fn add_seals(fd: BorrowedFd<'_>, seals: libc::c_int) -> io::Result<()> {
    // SAFETY: integer arguments only, no memory lent to the kernel; the descriptor is
    // borrowed, so it stays open for the call.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) }).map(drop)
}

/// `fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len)`: frees the
/// file's pages in the range (they read as zeros afterwards, in every mapping of it), without
/// mapping them first.
///
/// # References
/// fallocate(2)
pub fn punch_hole(fd: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    // SAFETY: integer arguments only, no memory lent to the kernel; the descriptor is
    // borrowed, so it stays open for the call.
    retry(|| cvt(unsafe { libc::fallocate(fd.as_raw_fd(), mode, offset, len) })).map(drop)
}

/// `fcntl(fd, F_GET_SEALS)`.
pub fn seals(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: integer arguments only, no memory lent to the kernel; the descriptor is
    // borrowed, so it stays open for the call.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) })
}

/// `pwrite(fd, data, offset)` until all of `data` is written.
///
/// # References
/// pwrite(2)
pub fn write_all_at(fd: BorrowedFd<'_>, mut data: &[u8], mut offset: u64) -> io::Result<()> {
    while !data.is_empty() {
        let n = retry(|| {
            // SAFETY: `data` is a live slice; the kernel reads at most `data.len()` bytes from
            // it; `fd` is a borrowed open descriptor.
            super::cvt_size(unsafe {
                libc::pwrite(
                    fd.as_raw_fd(),
                    data.as_ptr().cast(),
                    data.len(),
                    offset as libc::off_t,
                )
            })
        })?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        data = &data[n..];
        offset += n as u64;
    }
    Ok(())
}

/// `pread(fd, buf, offset)` until `buf` is full.
///
/// # References
/// pread(2)
pub fn read_exact_at(fd: BorrowedFd<'_>, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = retry(|| {
            // SAFETY: `buf` is a live mutable slice; the kernel writes at most `buf.len()`
            // bytes; `fd` is a borrowed open descriptor.
            super::cvt_size(unsafe {
                libc::pread(
                    fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    offset as libc::off_t,
                )
            })
        })?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}
