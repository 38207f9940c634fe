//! `Event` — a flag in a [`WaitWord`]: 0 clear, 1 set.
//!
//! Crash table: `set` and `clear` are single stores; a SIGKILL leaves the flag either changed or
//! not.
//! | killed ...                          | leaves                     | repaired by | point |
//! |-------------------------------------|----------------------------|-------------|-------|
//! | `set`: after the store, before the wake | the flag set, sleepers asleep | their next check ([`CHECK_EVERY`]) sees the flag | `wait.before_wake` |
//! | asleep in `wait`                    | the sleeper count one high | nobody: a harmless extra `FUTEX_WAKE` per later `set` | `wait.asleep` |

use super::magic;
use super::raw::CHECK_EVERY;
use super::region_handle;
use super::wait::WaitWord;
use crate::error::Result;
use crate::shared::region::Region;
use crate::sys::deadline::Deadline;
use std::sync::atomic::Ordering;
use std::time::Duration;

const SIZE: usize = std::mem::size_of::<WaitWord>();

/// A flag processes wait for (`multiprocessing.Event`): [`set`](Event::set) wakes every
/// waiter, in every process; [`clear`](Event::clear) makes later waiters wait again.
///
/// ```
/// use procshare::Event;
/// use std::time::Duration;
/// let ev = Event::new()?;
/// assert!(!ev.wait(Some(Duration::from_millis(10)))?); // timed out
/// ev.set();
/// assert!(ev.wait(None)?);
/// # Ok::<(), procshare::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Event {
    region: Region,
}
region_handle!(Event, magic::EVENT, SIZE);

impl Event {
    /// A new, clear event.
    pub fn new() -> Result<Event> {
        Ok(Event { region: Region::create(magic::EVENT, SIZE, |_| {})? })
    }

    fn ww(&self) -> &WaitWord {
        self.region.at::<WaitWord>(0)
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        // Release: pairs with the Acquire load of the waiters.
        self.ww().word().store(1, Ordering::Release);
        self.ww().wake_all();
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.ww().word().store(0, Ordering::Relaxed);
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.ww().word().load(Ordering::Acquire) != 0
    }

    /// Waits until the flag is set (`Ok(true)`), or `timeout` passes (`Ok(false)`); `None`
    /// waits as long as it takes.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        // In slices, so a setter killed between its store and its wake costs a delay.
        let set = self.ww().wait_sliced(
            Deadline::from_timeout(timeout),
            CHECK_EVERY,
            |v| v != 0,
            |_| self.is_set().then_some(()),
        );
        Ok(set.is_some())
    }
}
