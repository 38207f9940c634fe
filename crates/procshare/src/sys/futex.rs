//! Futex waits and wakes on words in shared memory.
//!
//! Always the shared form (no `FUTEX_PRIVATE_FLAG`): the word may be mapped by other processes.
//! Deadlines are [`Deadline`]s (absolute `CLOCK_MONOTONIC` times), so a wait that is
//! interrupted and restarted never waits longer in total.

use super::deadline::Deadline;
use std::io;
use std::sync::atomic::AtomicU32;

pub use super::deadline::now;

/// How a [`wait`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Woken, or the word no longer held `expected`, or a signal: look at the word again.
    Woken,
    /// The deadline passed.
    TimedOut,
}

/// `futex(word, FUTEX_WAIT_BITSET, expected, deadline, NULL, FUTEX_BITSET_MATCH_ANY)`: sleeps
/// while `*word == expected`, until woken or until the absolute monotonic `deadline`.
///
/// Spurious returns happen (EINTR, EAGAIN): callers loop on their own condition.
///
/// # References
/// futex(2)
pub fn wait(word: &AtomicU32, expected: u32, deadline: Deadline) -> io::Result<Wake> {
    let ts = deadline.timespec();
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned u32; `ts_ptr` is null or points to `ts`, alive until the
    // call returns. The kernel only reads both.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT_BITSET,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            libc::FUTEX_BITSET_MATCH_ANY,
        )
    };
    if r == 0 {
        return Ok(Wake::Woken);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ETIMEDOUT) => Ok(Wake::TimedOut),
        Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(Wake::Woken),
        _ => Err(e),
    }
}

/// `futex(word, FUTEX_WAKE, n)`: wakes up to `n` waiters on `word`; returns how many woke.
///
/// # References
/// futex(2)
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    let n = n.min(i32::MAX as u32);
    // SAFETY: `word` is a live aligned u32; FUTEX_WAKE does not dereference it.
    let r = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n) };
    r.max(0) as usize
}
