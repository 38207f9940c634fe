//! Process identity, liveness, signals and reaping.
//!
//! A pid alone does not name a process: pids are reused. procshare names a process by
//! `(pid, start time)`, the start time being field 22 of `/proc/PID/stat` (clock ticks since
//! boot), which never changes for a process and differs for a later process with the same pid
//! unless both start in the same tick.

use super::{cvt, retry};
use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Once;

static PID: AtomicU32 = AtomicU32::new(0);
static START: AtomicU64 = AtomicU64::new(0);
/// Bumped in every child right after `fork`, so thread-local caches know they are stale.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();

extern "C" fn after_fork_in_child() {
    // Only atomics: this runs in the child between fork and whatever comes next.
    PID.store(0, Ordering::Relaxed);
    START.store(0, Ordering::Relaxed);
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

fn register_atfork() {
    ATFORK.call_once(|| {
        // SAFETY: the handler is an `extern "C" fn()` that only touches atomics.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
}

/// `getpid()`, cached (the cache is reset in a forked child).
pub fn current_pid() -> u32 {
    let p = PID.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    register_atfork();
    // SAFETY: getpid cannot fail.
    let p = unsafe { libc::getpid() } as u32;
    PID.store(p, Ordering::Relaxed);
    p
}

/// This process's start time (see the module doc), cached like [`current_pid`].
pub fn current_start_time() -> u64 {
    let s = START.load(Ordering::Relaxed);
    if s != 0 {
        return s;
    }
    let s = start_time(current_pid()).unwrap_or(1);
    START.store(s, Ordering::Relaxed);
    s
}

thread_local! {
    static TID: Cell<(u64, u32)> = const { Cell::new((u64::MAX, 0)) };
}

/// `gettid()`, cached per thread (refreshed after `fork`, where the thread's id changes).
pub fn current_tid() -> u32 {
    register_atfork();
    let generation = FORK_GENERATION.load(Ordering::Relaxed);
    TID.with(|c| {
        let (g, t) = c.get();
        if g == generation {
            return t;
        }
        // SAFETY: gettid cannot fail.
        let t = unsafe { libc::gettid() } as u32;
        c.set((generation, t));
        t
    })
}

/// The start time of process `pid` (field 22 of `/proc/PID/stat`), or `None` if there is no such
/// process, it is a zombie, or `/proc` cannot tell (see [`super::owner::thread_start_time`],
/// the one parser, for callers that must tell "dead" from "unknown").
pub fn start_time(pid: u32) -> Option<u64> {
    super::owner::thread_start_time(pid).ok().flatten()
}

/// Whether the process `(pid, start_time)` still runs (a zombie counts as dead).
pub fn is_alive(pid: u32, start: u64) -> bool {
    start_time(pid) == Some(start)
}

/// `kill(pid, sig)`.
///
/// # References
/// kill(2)
pub fn kill(pid: u32, sig: libc::c_int) -> io::Result<()> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    if pid <= 0 {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    // SAFETY: integer arguments only, no memory lent to the kernel: nothing to uphold.
    cvt(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// `pidfd_open(pid, 0)`: a descriptor that becomes readable when `pid` exits.
///
/// # References
/// pidfd_open(2)
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only, no memory lent to the kernel; the new descriptor
    // is taken into an OwnedFd below only if the call succeeded.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a fresh descriptor (opened O_CLOEXEC by definition).
    Ok(unsafe { OwnedFd::from_raw_fd(r as libc::c_int) })
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`: signals the process `pidfd` names, which cannot
/// be another process that reused its pid. A process that has exited already is `ESRCH`.
///
/// # References
/// pidfd_send_signal(2)
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: a live descriptor, an integer and a null siginfo (allowed: "as kill(2)").
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `waitpid(pid, &status, WNOHANG or 0)`: `Some(status)` once the child has exited and been
/// reaped, `None` if it still runs (only with `nohang`).
///
/// # References
/// waitpid(2)
pub fn waitpid(pid: u32, nohang: bool) -> io::Result<Option<libc::c_int>> {
    let mut status: libc::c_int = 0;
    let flags = if nohang { libc::WNOHANG } else { 0 };
    // SAFETY: `status` is a valid out-pointer.
    let r = retry(|| cvt(unsafe { libc::waitpid(pid as libc::pid_t, &mut status, flags) }))?;
    Ok(if r == 0 { None } else { Some(status) })
}

/// Python's `exitcode` for a wait status: the exit code, or `-signum` if a signal killed it.
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFSIGNALED(status) {
        -libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    }
}

/// `prctl(PR_SET_PDEATHSIG, sig)`: deliver `sig` to this process when its parent thread exits.
///
/// # References
/// prctl(2)
pub fn set_parent_death_signal(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: integer arguments only, no memory lent to the kernel: nothing to uphold.
    cvt(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) }).map(drop)
}

/// `getppid()`.
pub fn parent_pid() -> u32 {
    // SAFETY: cannot fail.
    unsafe { libc::getppid() as u32 }
}

/// How many threads this process has (entries of `/proc/self/task`).
///
/// # References
/// proc(5) (`/proc/pid/task`)
pub fn thread_count() -> io::Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir("/proc/self/task")? {
        entry?;
        n += 1;
    }
    Ok(n)
}

/// `getauxval(AT_SECURE) != 0`: this process runs with more privilege than whoever started it
/// (set-user-ID, set-group-ID, file capabilities, an LSM transition), so its environment is
/// the starter's to choose and must not steer it.
///
/// # References
/// getauxval(3), ld.so(8) ("secure-execution mode")
pub fn is_secure_exec() -> bool {
    // SAFETY: no pointers; an unknown type yields 0.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// The executable mappings of this process's own program file: `(start, end)` address ranges
/// from the lines of `/proc/self/maps` with `x` permission whose file (device and inode) is
/// that of the mapping holding `probe` (an address in the program's code).
///
/// # References
/// proc(5) (`/proc/pid/maps`)
pub fn own_text_ranges(probe: usize) -> io::Result<Vec<(usize, usize)>> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc/self/maps format");
    // `start-end perms offset dev inode [path]`
    let mut lines = Vec::new();
    for line in maps.lines() {
        let mut f = line.split_ascii_whitespace();
        let (range, perms, _off, dev, ino) = (f.next(), f.next(), f.next(), f.next(), f.next());
        let (Some(range), Some(perms), Some(dev), Some(ino)) = (range, perms, dev, ino) else {
            return Err(bad());
        };
        let (a, b) = range.split_once('-').ok_or_else(bad)?;
        let a = usize::from_str_radix(a, 16).map_err(|_| bad())?;
        let b = usize::from_str_radix(b, 16).map_err(|_| bad())?;
        let ino: u64 = ino.parse().map_err(|_| bad())?;
        lines.push((a, b, perms.as_bytes().get(2) == Some(&b'x'), dev, ino));
    }
    let &(_, _, _, dev, ino) = lines
        .iter()
        .find(|&&(a, b, x, _, ino)| x && ino != 0 && (a..b).contains(&probe))
        .ok_or_else(|| io::Error::other("the program's code is not a file mapping"))?;
    Ok(lines
        .iter()
        .filter(|&&(_, _, x, d, i)| x && d == dev && i == ino)
        .map(|&(a, b, ..)| (a, b))
        .collect())
}

/// The result of [`fork`].
pub enum Forked {
    /// In the parent: the child's pid.
    Parent(u32),
    /// In the child.
    Child,
}

/// `fork()`.
///
/// # Safety
/// In a multi-threaded parent the child may only rely on memory no other thread was changing;
/// see fork(2). procshare's `StartMethod::Fork` documents this for users.
///
/// # References
/// fork(2)
pub unsafe fn fork() -> io::Result<Forked> {
    register_atfork();
    // SAFETY: the caller upholds fork's contract (see above).
    let r = cvt(unsafe { libc::fork() })?;
    Ok(if r == 0 { Forked::Child } else { Forked::Parent(r as u32) })
}

/// `_exit(code)`: ends the process without running atexit handlers or destructors.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is always safe to call.
    unsafe { libc::_exit(code) }
}
