//! `Lock` and `RLock` — `multiprocessing.Lock` / `RLock` with an owner, so a dead holder is
//! not a hang. The lock word is [`RawLock`](super::raw::RawLock); see its module doc for the
//! state table and the crash table.

use super::magic;
use super::raw::RawLock;
use super::region_handle;
use crate::error::{Error, Result};
use crate::shared::region::Region;
use crate::sys::deadline::Deadline;
use std::marker::PhantomData;
use std::time::Duration;

/// A lock shared by processes and threads (`multiprocessing.Lock`).
///
/// Not re-entrant: a thread that locks it twice without unlocking waits for itself (use
/// [`RLock`]). If the holder dies (its process is killed, or its thread ends holding the lock),
/// the next locker takes it over within about 10–60 ms and
/// [`LockGuard::previous_holder_died`] tells it so. The lock is then usable again; the data it
/// protected may be half updated by the dead holder and is the new holder's to check.
///
/// ```
/// use procshare::Lock;
/// let lock = Lock::new()?;
/// {
///     let guard = lock.lock()?;
///     assert!(!guard.previous_holder_died());
///     assert!(lock.try_lock()?.is_none()); // held
/// } // released here
/// assert!(lock.try_lock()?.is_some());
/// # Ok::<(), procshare::Error>(())
/// ```
///
/// Handing it to a child process:
/// ```no_run
/// use procshare::{Lock, Process};
/// procshare::init();
/// let lock = Lock::new()?;
/// let mut child = Process::spawn(lock.clone(), |lock| {
///     let _g = lock.lock().unwrap();
///     println!("child has the lock");
/// })?;
/// child.join()?;
/// # Ok::<(), procshare::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Lock {
    region: Region,
}
region_handle!(Lock, magic::LOCK, RawLock::SIZE);

/// A re-entrant lock (`multiprocessing.RLock`): the thread that holds it may lock it again, and
/// it is free once every guard is dropped. Only the holder may [`release`](RLock::release) it.
///
/// A dead holder is handled as for [`Lock`] (the re-entry depth starts again at one).
///
/// ```
/// use procshare::RLock;
/// let lock = RLock::new()?;
/// let outer = lock.lock()?;
/// let inner = lock.lock()?; // same thread: no wait
/// drop(inner);
/// drop(outer);
/// assert!(lock.release().is_err()); // not held
/// # Ok::<(), procshare::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct RLock {
    region: Region,
}
region_handle!(RLock, magic::RLOCK, RawLock::SIZE);

/// Holds a [`Lock`], [`RLock`] (one level of it) until dropped.
///
/// Not `Send`: the thread that locked is the one that unlocks.
#[must_use = "the lock is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct LockGuard<'a> {
    raw: &'a RawLock,
    reentrant: bool,
    owner_died: bool,
    _not_send: PhantomData<*const ()>,
}

impl LockGuard<'_> {
    /// Whether this acquisition took the lock over from a holder that died holding it.
    ///
    /// Only the first acquirer after the death is told. Whatever the dead holder was changing
    /// may be half done: check or rebuild it before relying on it.
    pub fn previous_holder_died(&self) -> bool {
        self.owner_died
    }
}

impl Drop for LockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.reentrant {
            let d = self.raw.depth();
            if d > 1 {
                self.raw.set_depth(d - 1);
                return;
            }
            self.raw.set_depth(0);
        }
        self.raw.unlock();
    }
}

fn new_region(magic: u64) -> Result<Region> {
    Region::create(magic, RawLock::SIZE, |_| {})
}

impl Lock {
    /// A new, unlocked lock.
    pub fn new() -> Result<Lock> {
        Ok(Lock { region: new_region(magic::LOCK)? })
    }

    #[inline]
    fn raw(&self) -> &RawLock {
        RawLock::at(&self.region, 0)
    }

    #[inline]
    fn guard(&self, owner_died: bool) -> LockGuard<'_> {
        LockGuard { raw: self.raw(), reentrant: false, owner_died, _not_send: PhantomData }
    }

    /// Waits for the lock and holds it until the guard is dropped.
    ///
    /// Returns `Ok` once it has the lock; if the holder died, after taking it over.
    #[inline]
    pub fn lock(&self) -> Result<LockGuard<'_>> {
        let a = self.raw().lock(Deadline::NEVER).ok_or(Error::Timeout)?;
        Ok(self.guard(a.owner_died))
    }

    /// Takes the lock if it is free (or its holder is dead) right now; `Ok(None)` if it is held.
    ///
    /// When the lock is held this also checks that the holder lives (a read of `/proc`, some
    /// microseconds), so polling with `try_lock` gets a dead holder's lock too.
    pub fn try_lock(&self) -> Result<Option<LockGuard<'_>>> {
        Ok(self.raw().try_lock(true).map(|a| self.guard(a.owner_died)))
    }

    /// Waits at most `timeout` for the lock; `Ok(None)` if it stayed held.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<LockGuard<'_>>> {
        Ok(self.raw().lock(Deadline::after(timeout)).map(|a| self.guard(a.owner_died)))
    }

    /// Python's `acquire()`: takes the lock with no guard; pair it with [`Lock::release`].
    ///
    /// Prefer [`Lock::lock`]. Whether the previous holder died is not reported here.
    pub fn acquire(&self) -> Result<()> {
        self.raw().lock(Deadline::NEVER).map(drop).ok_or(Error::Timeout)
    }

    /// Python's `acquire(timeout=t)`: `Ok(false)` if the lock stayed held.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        Ok(self.raw().lock(Deadline::after(timeout)).is_some())
    }

    /// Python's `release()`: frees a lock taken with [`Lock::acquire`] (by any thread or process,
    /// as in Python). Releasing a free lock is an `Err(InvalidArgument)`.
    ///
    /// Do not release a lock that a guard holds: the guard would release it a second time.
    pub fn release(&self) -> Result<()> {
        if !self.raw().is_locked() {
            return Err(Error::invalid("release of an unlocked lock"));
        }
        self.raw().unlock();
        Ok(())
    }

    /// Whether someone holds the lock right now (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.raw().is_locked()
    }
}

impl RLock {
    /// A new, unlocked re-entrant lock.
    pub fn new() -> Result<RLock> {
        Ok(RLock { region: new_region(magic::RLOCK)? })
    }

    #[inline]
    fn raw(&self) -> &RawLock {
        RawLock::at(&self.region, 0)
    }

    #[inline]
    fn guard(&self, owner_died: bool) -> LockGuard<'_> {
        LockGuard { raw: self.raw(), reentrant: true, owner_died, _not_send: PhantomData }
    }

    /// Re-enters if this thread holds the lock; `None` if it does not.
    fn reenter(&self) -> Option<LockGuard<'_>> {
        let raw = self.raw();
        if !raw.held_by_me() {
            return None;
        }
        raw.set_depth(raw.depth().saturating_add(1));
        Some(self.guard(false))
    }

    fn acquired(&self, a: super::raw::Acquired) -> LockGuard<'_> {
        self.raw().set_depth(1);
        self.guard(a.owner_died)
    }

    /// Waits for the lock (at once if this thread holds it already).
    #[inline]
    pub fn lock(&self) -> Result<LockGuard<'_>> {
        if let Some(g) = self.reenter() {
            return Ok(g);
        }
        let a = self.raw().lock(Deadline::NEVER).ok_or(Error::Timeout)?;
        Ok(self.acquired(a))
    }

    /// Takes the lock if it is free, dead-held, or held by this thread; `Ok(None)` otherwise.
    pub fn try_lock(&self) -> Result<Option<LockGuard<'_>>> {
        if let Some(g) = self.reenter() {
            return Ok(Some(g));
        }
        Ok(self.raw().try_lock(true).map(|a| self.acquired(a)))
    }

    /// Waits at most `timeout`; `Ok(None)` if another thread kept it.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<LockGuard<'_>>> {
        if let Some(g) = self.reenter() {
            return Ok(Some(g));
        }
        Ok(self.raw().lock(Deadline::after(timeout)).map(|a| self.acquired(a)))
    }

    /// Python's `acquire()`, without a guard; pair each with [`RLock::release`].
    pub fn acquire(&self) -> Result<()> {
        std::mem::forget(self.lock()?);
        Ok(())
    }

    /// Python's `acquire(timeout=t)`: `Ok(false)` if another thread kept it.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        Ok(self.lock_timeout(timeout)?.map(std::mem::forget).is_some())
    }

    /// Python's `release()`: undoes one [`RLock::acquire`]. `Err(InvalidArgument)` unless the
    /// calling thread holds the lock (Python's "cannot release un-acquired lock").
    pub fn release(&self) -> Result<()> {
        if !self.raw().held_by_me() {
            return Err(Error::invalid("cannot release un-acquired lock"));
        }
        drop(self.guard(false));
        Ok(())
    }

    /// Whether someone holds the lock right now (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.raw().is_locked()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A holder that died with our thread id (tids are reused) left `state = our tid`, a depth,
    /// and an owner record with its own start time. Its lock is not ours to re-enter: we must
    /// take it over as from any dead holder, with the depth starting again at one.
    #[test]
    fn rlock_does_not_reenter_a_dead_holder_with_our_tid() {
        let r = RLock::new().unwrap();
        let (tid, start) = RawLock::me();
        assert_ne!(start, 0, "/proc must tell this thread's start time");
        r.raw().forge_holder(tid, start + 1);
        let g = r.try_lock().unwrap().expect("a dead holder's lock is taken over");
        assert!(g.previous_holder_died(), "re-entered a dead thread's lock as if it were ours");
        drop(g);
        assert!(!r.is_locked(), "the dead holder's depth was inherited");
        assert!(r.release().is_err(), "released a lock this thread does not hold");
    }
}
