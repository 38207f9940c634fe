//! The queue's internal lock: a word in shared memory that names its owner process, so a lock
//! whose holder was killed is taken over by the next process that wants it.
//!
//! Deliberately small and self-contained (it only needs `sys::futex` and `sys::proc`); the
//! general process lock lives in `sync/` and may later replace it.
//!
//! ```text
//!   owner   : AtomicU64   0 = free, else { pid:32 | start_time mod 2^32 :32 } of the holder
//!   seq     : AtomicU32   futex word, bumped by `unlock` when `waiters > 0`
//!   waiters : AtomicU32   processes sleeping (or about to) on `seq`
//! ```
//! Taking the lock is one CAS `0 -> me` (Acquire; its Release partner is the store of 0 in
//! `unlock`). Because the owner's identity is written by that same CAS, there is no instant at
//! which the lock is held by nobody-knows-whom: a waiter that has seen the same owner value for a
//! while checks `/proc/PID/stat`; if that process is gone (or the pid now names a process with a
//! different start time), it CASes `dead owner -> me` and carries on. Only one stealer wins.
//!
//! The data a lock protects must be consistent at every instant its holder could die; the ring
//! ensures that by publishing each critical section with a single atomic store (see `ring.rs`).
//!
//! Crash table:
//! | killed ...                              | leaves                     | repaired by            |
//! |-----------------------------------------|----------------------------|------------------------|
//! | between `waiters += 1` and `-= 1`        | `waiters` one too high     | nobody: unlock makes a |
//! |                                          |                            | needless wake syscall  |
//! | holding the lock                         | `owner` = dead process     | next waiter, ≤ ~30 ms  |
//! | between the CAS and anything else        | same                       | same                   |

use crate::sys::{futex, proc};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// How long a waiter sleeps before looking at the owner's liveness again.
const SLICE: Duration = Duration::from_millis(10);

/// A lock word in shared memory (all-zero bytes = unlocked, no waiters).
#[repr(C)]
pub(crate) struct OwnerLock {
    owner: AtomicU64,
    seq: AtomicU32,
    waiters: AtomicU32,
}

/// How `lock` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Locked {
    /// Acquired normally.
    Yes,
    /// Acquired from a holder that had died.
    Recovered,
    /// The deadline passed first.
    TimedOut,
}

/// This process's owner value (never 0: pids are never 0).
pub(crate) fn me() -> u64 {
    ((proc::current_pid() as u64) << 32) | (proc::current_start_time() & 0xffff_ffff)
}

/// Whether the process named by an owner value (pid, start time mod 2^32) is gone.
pub(crate) fn owner_is_dead(owner: u64) -> bool {
    let pid = (owner >> 32) as u32;
    match proc::start_time(pid) {
        None => true,
        Some(start) => (start & 0xffff_ffff) != (owner & 0xffff_ffff),
    }
}

impl OwnerLock {
    /// One attempt, no waiting.
    pub(crate) fn try_lock(&self) -> bool {
        // Acquire: pairs with the Release store in `unlock`.
        self.owner.compare_exchange(0, me(), Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    /// Takes the lock, waiting until `deadline` (absolute, `futex::now()` clock; `None` = forever).
    pub(crate) fn lock(&self, deadline: Option<Duration>) -> Locked {
        if self.try_lock() {
            return Locked::Yes;
        }
        for i in 0..64 {
            if i < 48 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
            if self.owner.load(Ordering::Relaxed) == 0 && self.try_lock() {
                return Locked::Yes;
            }
        }
        self.lock_slow(deadline)
    }

    #[cold]
    fn lock_slow(&self, deadline: Option<Duration>) -> Locked {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut seen_owner = 0u64;
        let mut seen_since = futex::now();
        let result = loop {
            let seq = self.seq.load(Ordering::SeqCst);
            if self.try_lock() {
                break Locked::Yes;
            }
            let owner = self.owner.load(Ordering::Acquire);
            let now = futex::now();
            if owner != 0 && owner == seen_owner {
                if now.saturating_sub(seen_since) >= SLICE && owner_is_dead(owner) {
                    // Acquire: whatever the dead holder published is visible to us.
                    if self
                        .owner
                        .compare_exchange(owner, me(), Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        break Locked::Recovered;
                    }
                    continue;
                }
            } else {
                seen_owner = owner;
                seen_since = now;
            }
            if deadline.is_some_and(|d| now >= d) {
                break Locked::TimedOut;
            }
            let slice_end = now + SLICE;
            let until = deadline.map_or(slice_end, |d| d.min(slice_end));
            // Errors here (none are expected) just make us poll.
            let _ = futex::wait(&self.seq, seq, Some(until));
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Releases the lock; wakes one sleeper if there is one.
    pub(crate) fn unlock(&self) {
        self.unlock_then(|| {});
    }

    /// Releases the lock, then runs `after_fence` after the full fence that `unlock` needs
    /// anyway (so a caller that must also check another sleeper count pays one fence, not two).
    pub(crate) fn unlock_then(&self, after_fence: impl FnOnce()) {
        // Release: pairs with the Acquire CAS in `try_lock`.
        self.owner.store(0, Ordering::Release);
        // SeqCst fence: orders the store above before reading `waiters`; partner of the SeqCst
        // `waiters += 1` / `seq` load in `lock_slow` (a sleeper either sees owner 0 or is counted).
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::Relaxed) > 0 {
            self.seq.fetch_add(1, Ordering::SeqCst);
            futex::wake(&self.seq, 1);
        }
        after_fence();
    }

    /// The current owner value (0 = free); for tests and diagnostics.
    #[cfg(test)]
    pub(crate) fn owner(&self) -> u64 {
        self.owner.load(Ordering::Relaxed)
    }

    /// Marks the lock as held by `owner` (tests simulate a dead holder with it).
    #[cfg(test)]
    pub(crate) fn force_owner(&self, owner: u64) {
        self.owner.store(owner, Ordering::Release);
    }
}
