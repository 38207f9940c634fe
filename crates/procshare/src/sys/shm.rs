//! Named POSIX shared memory and advisory file locks: `shm_open`, `shm_unlink`, `flock`,
//! `fstat`, `setsid`.

use super::{cvt, retry};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

fn c_name(name: &str) -> io::Result<CString> {
    // POSIX wants the leading slash; callers pass the bare name, as Python's `.name` shows it.
    CString::new(format!("/{name}")).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// `shm_open("/" + name, flags | O_CLOEXEC, mode)`.
///
/// # References
/// shm_open(3)
pub fn open(name: &str, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let c = c_name(name)?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let fd = retry(|| cvt(unsafe { libc::shm_open(c.as_ptr(), flags | libc::O_CLOEXEC, mode) }))?;
    // SAFETY: the descriptor was just returned to us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `shm_unlink("/" + name)`.
///
/// # References
/// shm_unlink(3)
pub fn unlink(name: &str) -> io::Result<()> {
    let c = c_name(name)?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    cvt(unsafe { libc::shm_unlink(c.as_ptr()) }).map(drop)
}

/// What `fstat` says about a file, as far as procshare cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`: tells one incarnation of a name from the next.
    pub ino: u64,
    /// `st_size`.
    pub size: u64,
    /// `st_uid`.
    pub uid: u32,
    /// `st_nlink`: 0 once the file (or directory) was removed.
    pub nlink: u64,
}

/// `fstat(fd)`.
///
/// # References
/// fstat(2)
pub fn stat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a valid out-pointer to a `stat`.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded and filled it.
    let st = unsafe { st.assume_init() };
    Ok(Stat {
        dev: st.st_dev,
        ino: st.st_ino,
        size: st.st_size as u64,
        uid: st.st_uid,
        nlink: st.st_nlink,
    })
}

/// `flock(fd, LOCK_EX | LOCK_NB)`: `Ok(true)` if taken, `Ok(false)` if another open file
/// description holds a lock on the file.
///
/// # References
/// flock(2)
pub fn try_lock(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: no pointers.
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
    // SAFETY: no pointers.
    retry(|| cvt(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) })).map(drop)
}

/// `getuid()`.
pub fn uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
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

/// Where Linux keeps the segment called `name` (glibc and musl map `shm_open` names to files
/// in `/dev/shm`).
pub fn path(name: &str) -> std::path::PathBuf {
    std::path::Path::new("/dev/shm").join(name)
}

/// `link("/dev/shm/" + from, "/dev/shm/" + to)`: gives segment `from` the second name `to`,
/// failing with `AlreadyExists` if `to` is taken — an atomic "create with this name" for a
/// segment that was prepared under another one.
///
/// # References
/// link(2)
pub fn link(from: &str, to: &str) -> io::Result<()> {
    std::fs::hard_link(path(from), path(to))
}
