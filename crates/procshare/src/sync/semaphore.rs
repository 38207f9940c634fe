//! `Semaphore` and `BoundedSemaphore` — a count in a [`WaitWord`]. No owner: like Python's, a
//! process that dies after `acquire` never gives its unit back.
//!
//! Layout: `{ count: WaitWord (8 bytes) | start value: u32 | pad: u32 }`.
//!
//! Crash table: `acquire` and `release` are one CAS each on the count; a SIGKILL before it
//! changes nothing, after it the change is complete.
//! | killed ...                          | leaves                     | repaired by | point |
//! |-------------------------------------|----------------------------|-------------|-------|
//! | `acquire`: after its CAS            | a unit held by a dead process | nobody: lost, as in Python | `semaphore.acquired` |
//! | `release`: after its CAS, before the wake | the count up, sleepers asleep | their next check ([`CHECK_EVERY`]) takes the unit | `wait.before_wake` |
//! | asleep in `acquire`                 | the sleeper count one high | nobody: a harmless extra `FUTEX_WAKE` per later release | `wait.asleep` |

use super::magic;
use super::raw::CHECK_EVERY;
use super::region_handle;
use super::wait::WaitWord;
use crate::error::{Error, Result};
use crate::shared::region::{shared_struct, Region};
use crate::sys::deadline::Deadline;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Python's `SEM_VALUE_MAX` on Linux.
const MAX_VALUE: u32 = i32::MAX as u32;

shared_struct! {
    struct SemaphoreWords {
        /// The count. Acquire CAS pairs with the Release of `release`.
        count: WaitWord,
        /// The start value, for `BoundedSemaphore`; fixed at creation.
        start: AtomicU32,
        _pad: AtomicU32,
    }
}
const SIZE: usize = std::mem::size_of::<SemaphoreWords>();

fn words(region: &Region) -> &SemaphoreWords {
    region.at::<SemaphoreWords>(0)
}

fn create(magic: u64, value: usize) -> Result<Region> {
    let value = u32::try_from(value)
        .ok()
        .filter(|v| *v <= MAX_VALUE)
        .ok_or_else(|| Error::invalid(format!("semaphore value {value} exceeds {MAX_VALUE}")))?;
    let region = Region::create(magic, SIZE, |_| {})?;
    let w = words(&region);
    w.count.word().store(value, Ordering::Relaxed);
    w.start.store(value, Ordering::Relaxed);
    Ok(region)
}

fn try_acquire(w: &SemaphoreWords) -> bool {
    let taken =
        w.count.word().fetch_update(Ordering::Acquire, Ordering::Relaxed, |c| c.checked_sub(1));
    if taken.is_ok() {
        crate::crash::crash_point!("semaphore.acquired");
    }
    taken.is_ok()
}

fn acquire(w: &SemaphoreWords, deadline: Deadline) -> bool {
    // In slices, so a releaser killed between its increment and its wake costs a delay.
    w.count
        .wait_sliced(deadline, CHECK_EVERY, |c| c > 0, |_| try_acquire(w).then_some(()))
        .is_some()
}

fn release(w: &SemaphoreWords, bound: u32) -> Result<()> {
    w.count
        .word()
        .fetch_update(Ordering::Release, Ordering::Relaxed, |c| (c < bound).then_some(c + 1))
        .map_err(|_| Error::invalid("semaphore or lock released too many times"))?;
    w.count.wake(1);
    Ok(())
}

macro_rules! semaphore {
    ($(#[$doc:meta])* $ty:ident, $magic:expr, bounded = $bounded:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $ty {
            region: Region,
        }
        region_handle!($ty, $magic, SIZE);

        impl $ty {
            /// A new semaphore holding `value` units (at most `i32::MAX`, else `InvalidArgument`).
            pub fn new(value: usize) -> Result<$ty> {
                Ok($ty { region: create($magic, value)? })
            }

            fn words(&self) -> &SemaphoreWords {
                words(&self.region)
            }

            /// Takes one unit, waiting as long as it takes.
            pub fn acquire(&self) -> Result<()> {
                acquire(self.words(), Deadline::NEVER);
                Ok(())
            }

            /// Takes one unit, waiting at most `timeout`: `Ok(false)` if none came.
            pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
                Ok(acquire(self.words(), Deadline::after(timeout)))
            }

            /// Takes one unit if there is one now (Python's `acquire(block=False)`).
            pub fn try_acquire(&self) -> bool {
                try_acquire(self.words())
            }

            /// Gives one unit back and wakes one waiter.
            pub fn release(&self) -> Result<()> {
                let bound = if $bounded {
                    self.words().start.load(Ordering::Relaxed).min(MAX_VALUE)
                } else {
                    MAX_VALUE
                };
                release(self.words(), bound)
            }

            /// The units available right now (a snapshot; Python's `get_value()`).
            pub fn value(&self) -> usize {
                self.words().count.word().load(Ordering::Relaxed) as usize
            }
        }
    };
}

semaphore!(
    /// A counting semaphore shared by processes and threads (`multiprocessing.Semaphore`).
    ///
    /// It has no owner: any thread or process may release, and units taken by a process that
    /// dies are not given back. Releasing past `i32::MAX` units is an `Err(InvalidArgument)`.
    ///
    /// ```
    /// use procshare::Semaphore;
    /// let sem = Semaphore::new(2)?;
    /// sem.acquire()?;
    /// sem.acquire()?;
    /// assert!(!sem.acquire_timeout(std::time::Duration::from_millis(10))?);
    /// sem.release()?;
    /// assert!(sem.try_acquire());
    /// # Ok::<(), procshare::Error>(())
    /// ```
    Semaphore,
    magic::SEMAPHORE,
    bounded = false
);

semaphore!(
    /// A semaphore that refuses to go above its start value (`multiprocessing.BoundedSemaphore`):
    /// such a `release` is an `Err(InvalidArgument)` and changes nothing.
    ///
    /// ```
    /// use procshare::BoundedSemaphore;
    /// let sem = BoundedSemaphore::new(1)?;
    /// assert!(sem.release().is_err()); // already at its start value
    /// sem.acquire()?;
    /// sem.release()?;
    /// # Ok::<(), procshare::Error>(())
    /// ```
    BoundedSemaphore,
    magic::BOUNDED_SEMAPHORE,
    bounded = true
);
