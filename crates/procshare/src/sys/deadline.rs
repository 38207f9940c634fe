//! [`Deadline`] — when a wait gives up: an absolute `CLOCK_MONOTONIC` time, or never.
//!
//! Every wait in the crate takes one. A user's relative timeout becomes a deadline once, at the
//! API boundary ([`Deadline::after`], [`Deadline::from_timeout`]); below that, loops that wait
//! again after a wakeup, an `EINTR` or a slice never wait longer in total.
//!
//! Why `CLOCK_MONOTONIC` as a `Duration` since boot, not `std::time::Instant`: on Linux both are
//! the same clock, but only the raw value goes straight into `FUTEX_WAIT_BITSET`'s absolute
//! timespec (no "remaining" to compute and round), and it means the same in every process, so
//! it can live in shared memory. `Instant` users (`Condvar::wait_timeout`) get [`remaining`].
//!
//! [`remaining`]: Deadline::remaining

use std::time::Duration;

/// `clock_gettime(CLOCK_MONOTONIC)` as a `Duration` since an arbitrary epoch (boot).
///
/// The same clock in every process of the machine, so deadlines can be stored in shared memory.
///
/// # References
/// clock_gettime(2)
pub fn now() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// An absolute [`now`] time after which a wait gives up, or never.
///
/// Ordered by time, with "never" after every time, so [`min`](Ord::min) picks the one that
/// comes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Deadline {
    /// `None`: never.
    at: Option<Duration>,
}

impl Deadline {
    /// Never passes: waits as long as it takes.
    pub const NEVER: Deadline = Deadline { at: None };

    /// A deadline that has passed already: one look, no waiting (the `_nowait` calls). Reads
    /// no clock (any time since boot has passed).
    pub fn now() -> Deadline {
        Deadline { at: Some(Duration::ZERO) }
    }

    /// `timeout` from now (saturating: an absurd timeout is as good as never).
    pub fn after(timeout: Duration) -> Deadline {
        Deadline { at: Some(now().saturating_add(timeout)) }
    }

    /// A user's timeout: `None` waits forever.
    pub fn from_timeout(timeout: Option<Duration>) -> Deadline {
        timeout.map_or(Deadline::NEVER, Deadline::after)
    }

    /// The absolute monotonic time `at` (a [`now`] value).
    pub fn at(at: Duration) -> Deadline {
        Deadline { at: Some(at) }
    }

    /// Whether the deadline has passed.
    pub fn expired(self) -> bool {
        self.at.is_some_and(|d| now() >= d)
    }

    /// Whether the deadline has passed by `now` (a [`now`] value the caller already read).
    pub fn expired_at(self, now: Duration) -> bool {
        self.at.is_some_and(|d| now >= d)
    }

    /// Time left (zero once passed); `None` for never.
    pub fn remaining(self) -> Option<Duration> {
        self.at.map(|d| d.saturating_sub(now()))
    }

    /// This deadline moved `by` later (time spent elsewhere that must not count).
    pub fn delayed(self, by: Duration) -> Deadline {
        Deadline { at: self.at.map(|d| d.saturating_add(by)) }
    }

    /// The earlier of this deadline and `every` from now: the end of the next slice of a wait
    /// that must look at something else (a peer's liveness) every `every`.
    pub fn slice(self, every: Duration) -> Deadline {
        self.min(Deadline::after(every))
    }

    /// The absolute `CLOCK_MONOTONIC` timespec for `FUTEX_WAIT_BITSET`; `None` for never.
    pub fn timespec(self) -> Option<libc::timespec> {
        self.at.map(|d| libc::timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        })
    }

    /// `poll(2)`'s relative timeout in milliseconds: -1 for never, else the time left rounded
    /// up (a poll that returns before the deadline would spin).
    pub fn poll_millis(self) -> libc::c_int {
        match self.remaining() {
            None => -1,
            Some(left) => left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int,
        }
    }
}

/// A wait's bound before the wait starts: a [`Wait::For`] timeout is turned into a deadline
/// only when the call has to wait, so a call that can go at once reads no clock. (Measured: the
/// `clock_gettime` of `Deadline::after` was 15 % of a producer's time putting 64-byte items
/// with `put_timeout` to a consumer in another thread.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Until this deadline.
    Until(Deadline),
    /// For this long once the first look has failed.
    For(Duration),
}

impl Wait {
    /// The deadline of the first look: for a timeout, one that has passed (look, do not wait).
    pub fn first_look(self) -> Deadline {
        match self {
            Wait::Until(d) => d,
            Wait::For(_) => Deadline::now(),
        }
    }

    /// The deadline of the wait after a first look failed: a timeout is counted from now.
    /// Call once per call and keep it, so that a wait that loops never waits longer in all.
    pub fn deadline(self) -> Deadline {
        match self {
            Wait::Until(d) => d,
            Wait::For(t) => Deadline::after(t),
        }
    }
}

impl PartialOrd for Deadline {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Deadline {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self.at, other.at) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(_), None) => std::cmp::Ordering::Less,
            (Some(a), Some(b)) => a.cmp(&b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_comes_after_every_time_and_min_picks_the_first() {
        let soon = Deadline::after(Duration::from_millis(5));
        let later = Deadline::after(Duration::from_secs(5));
        assert_eq!(soon.min(Deadline::NEVER), soon);
        assert_eq!(Deadline::NEVER.min(later), later);
        assert_eq!(later.min(soon), soon);
        assert!(Deadline::NEVER > later);
    }

    #[test]
    fn expiry_remaining_and_poll_timeouts() {
        assert!(Deadline::now().expired());
        assert_eq!(Deadline::now().remaining(), Some(Duration::ZERO));
        assert_eq!(Deadline::now().poll_millis(), 0);
        assert!(!Deadline::NEVER.expired());
        assert_eq!(Deadline::NEVER.remaining(), None);
        assert_eq!(Deadline::NEVER.poll_millis(), -1);
        assert!(Deadline::NEVER.timespec().is_none());
        let d = Deadline::after(Duration::from_secs(60));
        assert!(!d.expired());
        assert!(d.poll_millis() > 59_000);
        // Absurd timeouts saturate instead of overflowing.
        assert!(!Deadline::after(Duration::MAX).expired());
        assert_eq!(Deadline::from_timeout(None), Deadline::NEVER);
        // A slice never ends after the deadline it slices.
        assert_eq!(Deadline::now().slice(Duration::from_secs(1)).remaining(), Some(Duration::ZERO));
    }

    #[test]
    fn a_timeout_looks_once_without_waiting_then_counts_from_when_it_must_wait() {
        let wait = Wait::For(Duration::from_secs(60));
        assert!(wait.first_look().expired());
        let before = now();
        let d = wait.deadline();
        assert!(d >= Deadline::at(before + Duration::from_secs(60)));
        assert!(d <= Deadline::after(Duration::from_secs(60)));
        for d in [Deadline::NEVER, Deadline::now(), Deadline::after(Duration::from_secs(1))] {
            assert_eq!(Wait::Until(d).first_look(), d);
            assert_eq!(Wait::Until(d).deadline(), d);
        }
    }
}
