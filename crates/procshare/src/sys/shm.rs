//! Named POSIX shared memory and advisory file locks: the `/dev/shm` directory, `flock`,
//! `setsid`.
//!
//! Segment names are opened with [`Dir`] methods relative to a descriptor of `/dev/shm` (where
//! glibc's and musl's `shm_open` put them), with `O_NOFOLLOW | O_NONBLOCK`, rather than through
//! `shm_open`: glibc's adds `O_NOFOLLOW` but not `O_NONBLOCK`, so another user's FIFO at a
//! segment name would hang the opener.

use super::dir::Dir;
use super::{cvt, retry};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

pub use super::dir::{euid, stat};

/// Where Linux keeps named segments.
pub const SHM_DIR: &str = "/dev/shm";

/// `open("/dev/shm", O_DIRECTORY | ...)`: the directory segment names live in (a trusted
/// system path, so a symlink to it, as some systems have, is followed).
pub fn dir() -> io::Result<Dir> {
    Dir::open(std::path::Path::new(SHM_DIR))
}

/// `flock(fd, LOCK_EX | LOCK_NB)`: `Ok(true)` if taken, `Ok(false)` if another open file
/// description holds a lock on the file.
///
/// # References
/// flock(2)
pub fn try_lock(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: integer arguments only, no memory lent to the kernel; the descriptor is
    // borrowed, so it stays open for the call.
    match retry(|| cvt(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) })) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `flock(fd, LOCK_EX)`: waits for an exclusive lock (released by `flock(LOCK_UN)`, by closing
/// the last descriptor of the open file description, or by the holder's death).
///
/// # References
/// flock(2)
pub fn lock(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: integer arguments only, no memory lent to the kernel; the descriptor is
    // borrowed, so it stays open for the call.
    retry(|| cvt(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) })).map(drop)
}

/// `setsid()` then `signal(SIGINT/SIGTERM/SIGHUP, SIG_IGN)`: detaches a helper process from the
/// terminal so that Ctrl-C aimed at its parent does not kill it before it has cleaned up.
///
/// # References
/// setsid(2), signal(2)
pub fn detach_and_ignore_signals() {
    // SAFETY: no pointers; SIG_IGN is a valid disposition for these signals.
    unsafe {
        libc::setsid();
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
}
