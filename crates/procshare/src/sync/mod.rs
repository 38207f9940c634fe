//! Locks and other synchronisation between processes: [`Lock`], [`RLock`], [`Semaphore`],
//! [`BoundedSemaphore`], [`Event`], [`Condition`], [`Barrier`].
//!
//! Python's `multiprocessing.Lock` is an ownerless semaphore: when a process dies holding it,
//! every other process waits forever. procshare's locks are futex words in shared memory that
//! know their owner (thread id and start time), so a dead holder costs the others a short delay
//! (tens of milliseconds), never a hang, and the next holder is told
//! ([`LockGuard::previous_holder_died`]).
//!
//! Layers, as in parking_lot: `backoff` is the one spinning schedule, `raw` holds the lock word
//! and its state table, `wait` the one waiting mechanism (spin, then `FUTEX_WAIT` on a shared
//! word, sleepers counted so that a change nobody waits for makes no system call); the public
//! types are thin handles on a shared-memory region.
//!
//! For other modules (queues, `Value`), the crate-internal API is:
//! * `raw::RawLock` — 16 bytes, all-zero = unlocked, 8-aligned, at any offset of a `Region`
//!   (`RawLock::at(&region, offset)`): `lock(deadline) -> Option<Acquired>` (takes over from a
//!   dead holder and says so in `Acquired::owner_died`), `try_lock(check_owner)`, `unlock()`.
//! * `wait::WaitWord` — 8 bytes, all-zero = idle: a futex word plus a sleeper count;
//!   `wait_until(deadline, |word| ready)` and `wake(n)` / `wake_all()` after changing the word
//!   (no syscall when nobody sleeps), or `bump_wake_all()` when the condition lives outside the
//!   word (the queue's ring: no read-modify-write when nobody sleeps). Wait in slices (`wait_sliced(deadline, CHECK_EVERY, ready, attempt)`)
//!   wherever a peer that should wake you may die, and check that peer between slices.
//!
//! Every handle is `Send + Sync + Clone` (a clone is another handle on the same object) and can
//! be passed to a child in [`Process`](crate::Process) arguments; it works the same between
//! threads of one process. The object lives as long as any process holds a handle.
//!
//! **fork vs spawn**: with either start method the child's handle is the same object (the memory
//! is shared, not copied). A lock held by the parent when it forks stays held by the parent's
//! thread; the child does not own it.

pub(crate) mod backoff;
pub(crate) mod raw;
pub(crate) mod wait;

mod barrier;
mod condition;
mod event;
mod lock;
mod semaphore;

pub use barrier::Barrier;
pub use condition::{Condition, ConditionGuard};
pub use event::Event;
pub use lock::{Lock, LockGuard, RLock};
pub use semaphore::{BoundedSemaphore, Semaphore};

use crate::error::{Error, Result};
use crate::shared::region::Region;

/// Region kinds (`Region` magic numbers), one per object type.
pub(crate) mod magic {
    pub(crate) const LOCK: u64 = u64::from_le_bytes(*b"psLock\0\0");
    pub(crate) const RLOCK: u64 = u64::from_le_bytes(*b"psRLock\0");
    pub(crate) const SEMAPHORE: u64 = u64::from_le_bytes(*b"psSema\0\0");
    pub(crate) const BOUNDED_SEMAPHORE: u64 = u64::from_le_bytes(*b"psBSema\0");
    pub(crate) const EVENT: u64 = u64::from_le_bytes(*b"psEvent\0");
    pub(crate) const CONDITION: u64 = u64::from_le_bytes(*b"psCond\0\0");
    pub(crate) const BARRIER: u64 = u64::from_le_bytes(*b"psBarr\0\0");
}

/// Checks a region received from another process: right kind, big enough for `len` bytes.
pub(crate) fn check_region(region: Region, magic: u64, len: usize) -> Result<Region> {
    let region = region.expect(magic)?;
    if region.mapped_len() < len {
        return Err(Error::invalid("shared region is too small for its object"));
    }
    Ok(region)
}

/// Implements Serialize/Deserialize for a handle `$ty { region }` whose payload is `$len` bytes.
macro_rules! region_handle {
    ($ty:ident, $magic:expr, $len:expr) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                self.region.serialize(s)
            }
        }
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let region = crate::shared::region::Region::deserialize(d)?;
                let region = crate::sync::check_region(region, $magic, $len)
                    .map_err(<D::Error as serde::de::Error>::custom)?;
                Ok($ty { region })
            }
        }
    };
}
pub(crate) use region_handle;
