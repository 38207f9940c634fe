//! The one waiting mechanism: spin briefly, then sleep on a futex word in shared memory.
//!
//! [`WaitWord`] is a 32-bit word whose meaning belongs to its user (an event flag, a semaphore
//! count, a condition's sequence number, a queue's head...) plus a count of sleepers, so that a
//! change nobody waits for costs no system call. Waiters loop on their own predicate; wakes are
//! hints. Deadlines are [`Deadline`]s (absolute `CLOCK_MONOTONIC` times).
//!
//! Where a peer may die between its change and its wake, or a condition lives outside the word,
//! waiters use [`WaitWord::wait_sliced`], the one sliced wait: look (the caller's `attempt`),
//! sleep at most one slice, look again, until the deadline.
//!
//! Crash table:
//! | killed while ...                 | leaves                          | repaired by            | point |
//! |----------------------------------|---------------------------------|------------------------|-------|
//! | spinning                         | nothing                         | —                      | `wait.spinning` |
//! | asleep (sleepers counted)        | `sleepers` one too high         | nobody: later changes make one harmless `FUTEX_WAKE` each | `wait.asleep` |
//! | changing the word, before `wake` | a change sleepers did not see   | sleepers time out of their slice (callers wait in slices where a peer may die) | `wait.before_wake` |

use super::backoff::Backoff;
use crate::shared::region::shared_struct;
use crate::sys::deadline::Deadline;
use crate::sys::futex::{self, Wake};
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::time::Duration;

shared_struct! {
    /// A futex word in shared memory and the number of processes/threads asleep on it.
    ///
    /// All-zero bytes are a valid, idle `WaitWord` (word 0, nobody asleep).
    #[derive(Debug, Default)]
    pub(crate) struct WaitWord {
        /// The value; meaning defined by the user. Changers store with Release, waiters load
        /// with Acquire.
        word: AtomicU32,
        /// Threads that announced they are going to sleep on `word`. Written SeqCst before a
        /// waiter re-reads `word`; read after a fence by [`WaitWord::wake`] (the Dekker pair).
        sleepers: AtomicU32,
    }
}

impl WaitWord {
    /// The word itself, for the user's loads, stores and CAS.
    pub(crate) fn word(&self) -> &AtomicU32 {
        &self.word
    }

    /// Waits until `ready(word)` holds (`true`) or `deadline` passes (`false`, after one last
    /// look). Spurious wakeups are absorbed here.
    pub(crate) fn wait_until(
        &self,
        deadline: Deadline,
        mut ready: impl FnMut(u32) -> bool,
    ) -> bool {
        let backoff = Backoff::new();
        while !backoff.is_completed() {
            if ready(self.word.load(Ordering::Acquire)) {
                return true;
            }
            crate::crash::crash_point!("wait.spinning");
            backoff.spin();
        }
        loop {
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            // Pairs with the fence in `wake`: either the changer sees us counted, or we see its
            // change here and do not sleep.
            fence(Ordering::SeqCst);
            let v = self.word.load(Ordering::Acquire);
            if ready(v) {
                self.sleepers.fetch_sub(1, Ordering::Relaxed);
                return true;
            }
            if deadline.expired() {
                self.sleepers.fetch_sub(1, Ordering::Relaxed);
                return false;
            }
            crate::crash::crash_point!("wait.asleep");
            let r = futex::wait(&self.word, v, deadline);
            self.sleepers.fetch_sub(1, Ordering::Relaxed);
            match r {
                Ok(Wake::Woken) => {}
                Ok(Wake::TimedOut) => return ready(self.word.load(Ordering::Acquire)),
                // Not expected from FUTEX_WAIT on valid memory; do not busy-loop on it.
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }

    /// The sliced wait: `attempt` looks (takes the item, reads the flag, checks peers); while
    /// it finds nothing (`None`) and `deadline` has not passed, sleeps until `ready(word)` for
    /// at most `every`, then looks again. Returns what `attempt` found, or `None` once the
    /// deadline has passed (after one last look).
    ///
    /// Slices bound what a peer that dies between its change and its wake, or a condition the
    /// word does not carry, can cost a waiter: `every`. `attempt`'s argument says whether the
    /// last slice ran out without `ready` (false on the first look and after a wake), for
    /// checks too costly to make every time (reading `/proc`).
    pub(crate) fn wait_sliced<R>(
        &self,
        deadline: Deadline,
        every: Duration,
        mut ready: impl FnMut(u32) -> bool,
        mut attempt: impl FnMut(bool) -> Option<R>,
    ) -> Option<R> {
        let mut ran_out = false;
        loop {
            if let Some(r) = attempt(ran_out) {
                return Some(r);
            }
            if deadline.expired() {
                return None;
            }
            ran_out = !self.wait_until(deadline.slice(every), &mut ready);
        }
    }

    /// Wakes up to `n` sleepers. Call after changing the word; no system call if nobody sleeps.
    pub(crate) fn wake(&self, n: u32) {
        crate::crash::crash_point!("wait.before_wake");
        // Pairs with the fence in `wait_until` (see `sleepers`).
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) > 0 {
            futex::wake(&self.word, n);
        }
    }

    /// Wakes every sleeper. Call after changing the word.
    pub(crate) fn wake_all(&self) {
        self.wake(u32::MAX);
    }

    /// For a user whose condition lives outside the word (the queue's "an item was committed"):
    /// the word is then only a sequence number. If anyone sleeps, bumps it and wakes them all;
    /// else does nothing (no read-modify-write, no system call). Call after publishing the
    /// change; waiters test the outside condition in their `wait_until` predicate.
    pub(crate) fn bump_wake_all(&self) {
        crate::crash::crash_point!("wait.before_wake");
        // Pairs with the fence in `wait_until` (see `sleepers`).
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) > 0 {
            // Release: a sleeper that sees the new value also sees the change.
            self.word.fetch_add(1, Ordering::Release);
            futex::wake(&self.word, u32::MAX);
        }
    }
}
