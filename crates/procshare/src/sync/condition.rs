//! `Condition` — its own [`RawLock`] plus a sequence number in a [`WaitWord`] that every
//! notify bumps; a waiter sleeps until the number moves.
//!
//! Layout: `{ lock: RawLock (16 bytes) | seq: WaitWord (8 bytes) }`.
//!
//! Crash table (the lock's own rows are [`RawLock`]'s):
//! | killed ...                          | leaves                     | repaired by | point |
//! |-------------------------------------|----------------------------|-------------|-------|
//! | holding the lock                    | the lock held by a dead process | the next locker (also a waiter re-taking it after a notify) takes it over and is told | `raw.locked` |
//! | `notify`: after the bump, before the wake | waiters asleep       | their next check ([`CHECK_EVERY`]) sees the bump | `wait.before_wake` |
//! | asleep in `wait`                    | the sleeper count one high | nobody: a harmless extra `FUTEX_WAKE` | `wait.asleep` |

use super::magic;
use super::raw::{RawLock, CHECK_EVERY};
use super::region_handle;
use super::wait::WaitWord;
use crate::error::{Error, Result};
use crate::shared::region::Region;
use crate::sys::deadline::Deadline;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::time::Duration;

const SEQ: usize = RawLock::SIZE;
const SIZE: usize = SEQ + std::mem::size_of::<WaitWord>();

/// A condition variable with its own lock, shared by processes (`multiprocessing.Condition`).
///
/// Take the lock with [`lock`](Condition::lock), check your predicate, and
/// [`wait`](ConditionGuard::wait) on the guard while it is false; another process changes the
/// state under the lock and calls [`notify`](Condition::notify). Wakeups may be spurious (a
/// `notify(1)` can wake more than one waiter): always wait in a loop on the predicate.
///
/// ```no_run
/// use procshare::{Condition, Process, Value};
/// procshare::init();
/// let cond = Condition::new()?;
/// let ready = Value::new(0u32)?;
/// let mut child = Process::spawn((cond.clone(), ready.clone()), |(cond, ready)| {
///     let _g = cond.lock().unwrap();
///     ready.set(1);
///     cond.notify_all();
/// })?;
/// let mut g = cond.lock()?;
/// while ready.get() == 0 {
///     g.wait()?;
/// }
/// drop(g);
/// child.join()?;
/// # Ok::<(), procshare::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Condition {
    region: Region,
}
region_handle!(Condition, magic::CONDITION, SIZE);

/// Holds a [`Condition`]'s lock until dropped; [`wait`](ConditionGuard::wait) releases it while
/// it sleeps.
#[must_use = "the lock is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct ConditionGuard<'a> {
    cond: &'a Condition,
    owner_died: bool,
    _not_send: PhantomData<*const ()>,
}

impl Condition {
    /// A new condition with a new, unlocked lock.
    pub fn new() -> Result<Condition> {
        Ok(Condition { region: Region::create(magic::CONDITION, SIZE, |_| {})? })
    }

    fn raw(&self) -> &RawLock {
        RawLock::at(&self.region, 0)
    }

    fn seq(&self) -> &WaitWord {
        self.region.at::<WaitWord>(SEQ)
    }

    fn guard(&self, owner_died: bool) -> ConditionGuard<'_> {
        ConditionGuard { cond: self, owner_died, _not_send: PhantomData }
    }

    /// Takes the condition's lock (taking it over if its holder died).
    pub fn lock(&self) -> Result<ConditionGuard<'_>> {
        let a = self.raw().lock(Deadline::NEVER).ok_or(Error::Timeout)?;
        Ok(self.guard(a.owner_died))
    }

    /// Takes the lock if it is free now; `Ok(None)` if it is held.
    pub fn try_lock(&self) -> Result<Option<ConditionGuard<'_>>> {
        Ok(self.raw().try_lock(true).map(|a| self.guard(a.owner_died)))
    }

    /// Waits at most `timeout` for the lock; `Ok(None)` if it stayed held.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<ConditionGuard<'_>>> {
        Ok(self.raw().lock(Deadline::after(timeout)).map(|a| self.guard(a.owner_died)))
    }

    /// Wakes up to `n` waiters (in any process). Callable with or without the lock held;
    /// Python requires it held, and holding it is what makes the waiter's predicate check safe.
    pub fn notify(&self, n: usize) {
        if n == 0 {
            return;
        }
        // Release: pairs with the Acquire load in `wait_until`.
        self.seq().word().fetch_add(1, Ordering::Release);
        self.seq().wake(u32::try_from(n).unwrap_or(u32::MAX));
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.seq().word().fetch_add(1, Ordering::Release);
        self.seq().wake_all();
    }
}

impl ConditionGuard<'_> {
    /// Whether taking the lock (at first, or again after a wait) took it over from a holder
    /// that died holding it; the protected state may be half updated.
    pub fn previous_holder_died(&self) -> bool {
        self.owner_died
    }

    /// Releases the lock, sleeps until notified, and takes the lock again.
    pub fn wait(&mut self) -> Result<()> {
        self.wait_deadline(Deadline::NEVER);
        Ok(())
    }

    /// Like [`wait`](ConditionGuard::wait) but for at most `timeout`: `Ok(false)` if it timed
    /// out (the lock is held again either way).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<bool> {
        Ok(self.wait_deadline(Deadline::after(timeout)))
    }

    fn wait_deadline(&mut self, deadline: Deadline) -> bool {
        let cond = self.cond;
        let seq = cond.seq().word().load(Ordering::Acquire);
        cond.raw().unlock();
        let notified = cond
            .seq()
            .wait_sliced(
                deadline,
                CHECK_EVERY,
                |v| v != seq,
                |_| (cond.seq().word().load(Ordering::Acquire) != seq).then_some(()),
            )
            .is_some();
        // No deadline for re-locking (so it always succeeds): the guard must come back holding
        // the lock.
        self.owner_died = cond.raw().lock(Deadline::NEVER).is_some_and(|a| a.owner_died);
        notified
    }
}

impl Drop for ConditionGuard<'_> {
    fn drop(&mut self) {
        self.cond.raw().unlock();
    }
}
