//! File-descriptor flags.

use super::cvt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `fcntl(fd, F_SETFD, ...)`: sets or clears `FD_CLOEXEC`.
///
/// # References
/// fcntl(2)
pub fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    set_cloexec_raw(fd.as_raw_fd(), on)
}

/// [`set_cloexec`] on a raw descriptor; async-signal-safe, for use between `fork` and `exec`.
pub fn set_cloexec_raw(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD take no pointers; a bad fd is reported as EBADF.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    let new = if on { flags | libc::FD_CLOEXEC } else { flags & !libc::FD_CLOEXEC };
    if new != flags {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, new) })?;
    }
    Ok(())
}

/// Takes ownership of a raw descriptor received from the kernel or a parent process.
///
/// Returns `None` for negative values. The caller promises nothing else owns `fd`; callers in
/// this crate only pass descriptors fresh from `recvmsg` or handed over at process start.
pub fn own(fd: RawFd) -> Option<OwnedFd> {
    if fd < 0 {
        return None;
    }
    // SAFETY: see the doc comment: the descriptor is open and owned by nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fstat(fd)`.
///
/// # References
/// fstat(2)
pub fn stat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a valid out-pointer to a `stat`.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded and filled it.
    Ok(unsafe { st.assume_init() })
}

/// Whether `fd` is an open descriptor of this process (`fcntl(fd, F_GETFD)` succeeds).
///
/// # References
/// fcntl(2)
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD takes no pointers; a closed fd is reported as EBADF.
    fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0
}
