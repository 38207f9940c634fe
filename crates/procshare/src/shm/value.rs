//! `Value`, `Array`, `RawValue`, `RawArray` — `multiprocessing.sharedctypes`: plain-data values
//! in a shared region, with (or, for the `Raw` kinds, without) their own process-shared lock.
//!
//! ```text
//!  payload of the Region
//!  0                16      24          28           32             64
//!  +----------------+-------+-----------+------------+--------------+--------------------
//!  | RawLock        | len   | elem size | elem align | pad          | len elements of T
//!  +----------------+-------+-----------+------------+--------------+--------------------
//! ```
//! The header is written before the region is published and never changes; a handle received
//! from another process re-checks it against its own `T` (size, alignment, length fits) and
//! refuses a mismatch with an error.
//!
//! **Why a lock and not a seqlock** for `get`/`set`: the lock is needed anyway for
//! [`Value::lock`] (a `&mut T` into shared memory), a writer through that guard would have to
//! bump a sequence too, and a writer killed mid-write would leave a seqlock odd forever (readers
//! spinning) unless it had the owner-death machinery a lock already has. An uncontended
//! lock + copy + unlock costs tens of nanoseconds. So a multi-word `T` is never read torn
//! through the safe API of `Value`/`Array`.
//!
//! Crash table:
//! | killed ...                      | leaves                                   | repaired by | point |
//! |---------------------------------|------------------------------------------|-------------|-------|
//! | creating, before `READY`        | a memfd only the creator held            | the kernel, with the creator | `region.before_ready` |
//! | holding the lock (get/set/guard)| the lock held; the data maybe half written | the next locker takes the lock over and is told (`previous_holder_died`); the data is as the dead holder left it | `raw.locked` |
//! | `RawValue`/`RawArray` `set`     | the element maybe half written (whole words: each is one atomic store) | nobody: raw means no lock, as in Python | `region.word_stored` |
//!
//! No `unsafe` here. The data is plain old data (`T: Pod`: any bit pattern is a valid `T`), at
//! offset 64 of the payload, `len * size_of::<T>()` bytes, checked against the region's length
//! on creation and on receipt; `T`'s alignment is at most 64 (checked), so every element is
//! aligned. `Value`/`Array` touch the data only through [`LockedData`] (the lock word's layer),
//! which holds the region's lock, so the `&T`/`&mut T` the guards hand out alias nothing (other
//! processes go through the same lock). `RawValue`/`RawArray` copy element by element with
//! `Region::load_bytes`/`store_bytes`: relaxed atomic loads and stores of the widest width the
//! element's size and alignment allow, so racing copies may mix old and new parts of a
//! multi-word element, but are not data races.

use crate::error::{Error, Result};
use crate::shared::region::Region;
use crate::sync::raw::{LockedData, RawLock};
use bytemuck::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

const VALUE: u64 = u64::from_le_bytes(*b"psValue\0");
const ARRAY: u64 = u64::from_le_bytes(*b"psArray\0");
const RAW_VALUE: u64 = u64::from_le_bytes(*b"psRValue");
const RAW_ARRAY: u64 = u64::from_le_bytes(*b"psRArray");

const LEN_AT: usize = RawLock::SIZE;
const SIZE_AT: usize = LEN_AT + 8;
const ALIGN_AT: usize = SIZE_AT + 4;
const DATA_AT: usize = 64;

/// The shared part of every kind: a region holding `len` elements of `T`.
struct Shared<T> {
    region: Region,
    len: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared { region: self.region.clone(), len: self.len, _t: PhantomData }
    }
}

impl<T> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("len", &self.len).finish()
    }
}

impl<T: Pod> Shared<T> {
    fn create(magic: u64, len: usize, init: &[T]) -> Result<Self> {
        if std::mem::align_of::<T>() > DATA_AT {
            return Err(Error::invalid(
                "element types aligned to more than 64 bytes are not supported",
            ));
        }
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .and_then(|b| b.checked_add(DATA_AT))
            .ok_or_else(|| Error::invalid(format!("an array of {len} elements is too large")))?;
        let region = Region::create(magic, bytes, |r| {
            // The header fields are in the payload's first 64 bytes; `init` (empty or `len`
            // long) fits at DATA_AT. Nobody else sees the region yet.
            r.at::<AtomicU64>(LEN_AT).store(len as u64, Ordering::Relaxed);
            r.at::<AtomicU32>(SIZE_AT).store(std::mem::size_of::<T>() as u32, Ordering::Relaxed);
            r.at::<AtomicU32>(ALIGN_AT).store(std::mem::align_of::<T>() as u32, Ordering::Relaxed);
            r.store_bytes(DATA_AT, bytemuck::cast_slice::<T, u8>(init));
        })?;
        Ok(Shared { region, len, _t: PhantomData })
    }

    /// Checks a region received from another process against `T`.
    fn open(region: Region, magic: u64) -> Result<Self> {
        let region = region.expect(magic)?;
        let bad = || Error::invalid("shared value holds another element type or length");
        if region.mapped_len() < DATA_AT {
            return Err(bad());
        }
        // Within the first 64 bytes of the payload (checked just above); read once, as
        // atomics: a peer could write them.
        let (len, size, align) = (
            region.at::<AtomicU64>(LEN_AT).load(Ordering::Relaxed),
            region.at::<AtomicU32>(SIZE_AT).load(Ordering::Relaxed),
            region.at::<AtomicU32>(ALIGN_AT).load(Ordering::Relaxed),
        );
        if size as usize != std::mem::size_of::<T>() || align as usize != std::mem::align_of::<T>()
        {
            return Err(bad());
        }
        let len = usize::try_from(len).map_err(|_| bad())?;
        let fits = len
            .checked_mul(std::mem::size_of::<T>())
            .and_then(|b| b.checked_add(DATA_AT))
            .is_some_and(|b| b <= region.mapped_len());
        if !fits {
            return Err(bad());
        }
        Ok(Shared { region, len, _t: PhantomData })
    }

    fn lock(&self) -> &RawLock {
        RawLock::at(&self.region, 0)
    }

    /// Takes the lock; the guard's data. Panics if this thread holds it already (it could only
    /// wait for itself: no other thread can release it).
    fn guard(&self) -> (LockedData<'_, T>, bool) {
        if self.lock().held_by_me() {
            panic!(
                "procshare: this thread already holds this Value/Array's lock (use the guard you \
                 hold instead of calling get/set/lock again)"
            );
        }
        LockedData::lock(&self.region, DATA_AT, self.len)
    }

    /// Byte offset of element `i` in the payload.
    fn elem_at(&self, i: usize) -> usize {
        DATA_AT + i * std::mem::size_of::<T>()
    }

    /// Copies element `i` with atomic accesses (no lock). `i < len` is the caller's to check.
    fn load_raw(&self, i: usize) -> T {
        debug_assert!(i < self.len);
        let mut out = T::zeroed();
        self.region.load_bytes(self.elem_at(i), bytemuck::bytes_of_mut(&mut out));
        out
    }

    fn store_raw(&self, i: usize, v: T) {
        debug_assert!(i < self.len);
        self.region.store_bytes(self.elem_at(i), bytemuck::bytes_of(&v));
    }

    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.region.serialize(s)
    }
}

fn out_of_range(i: usize, len: usize) -> Error {
    Error::invalid(format!("index {i} out of range for an array of length {len}"))
}

// ---------------------------------------------------------------------------------------------

/// A `T` in shared memory with its own process-shared lock (`multiprocessing.Value`).
///
/// [`get`](Value::get) and [`set`](Value::set) each hold the lock, so a `T` of several words is
/// never seen half written. For read-modify-write, hold the lock: `*v.lock() += 1` (Python's
/// `with v.get_lock(): v.value += 1`). If a process dies holding the lock, the next locker
/// takes it over and [`ValueGuard::previous_holder_died`] says so; the value is whatever the dead
/// holder left.
///
/// The lock is not re-entrant (a re-entrant one could not hand out `&mut T` soundly): calling
/// `get`, `set` or `lock` while this thread holds the value's guard panics with a message,
/// rather than waiting forever for itself.
///
/// A clone is another handle on the same value; pass it to children as a
/// [`Process`](crate::Process) argument (spawn or fork alike: the memory is shared).
///
/// ```
/// use procshare::Value;
/// let v = Value::new(1.5f64)?;
/// v.set(2.5);
/// *v.lock() += 1.0;
/// assert_eq!(v.get(), 3.5);
/// # Ok::<(), procshare::Error>(())
/// ```
pub struct Value<T> {
    shared: Shared<T>,
}

/// A `[T]` in shared memory with its own process-shared lock (`multiprocessing.Array`).
///
/// Every element access holds the lock; [`lock`](Array::lock) holds it for a whole pass over the
/// slice (the fast way to read or update many elements). See [`Value`] about dead holders and
/// about calling `get`/`set`/`lock` while holding the guard (a panic, not a hang).
///
/// `get`/`set` with an index past the end panic, like slice indexing (the index is the caller's
/// bug); [`try_get`](Array::try_get)/[`try_set`](Array::try_set) return `Err(InvalidArgument)`
/// instead.
///
/// ```
/// use procshare::Array;
/// let a = Array::from_slice(&[1u32, 2, 3])?;
/// a.set(0, 10);
/// a.lock().iter_mut().for_each(|x| *x *= 2);
/// assert_eq!(a.to_vec(), vec![20, 4, 6]);
/// # Ok::<(), procshare::Error>(())
/// ```
pub struct Array<T> {
    shared: Shared<T>,
}

/// A `T` in shared memory with no lock (`multiprocessing.RawValue`): each `get`/`set` copies
/// with atomic word-sized accesses, so a `T` of several words may be read half old, half new
/// when another process sets it at the same time. Use [`Value`] unless you synchronise yourself.
///
/// ```
/// use procshare::RawValue;
/// let v = RawValue::new(7u64)?;
/// v.set(8);
/// assert_eq!(v.get(), 8);
/// # Ok::<(), procshare::Error>(())
/// ```
pub struct RawValue<T> {
    shared: Shared<T>,
}

/// A `[T]` in shared memory with no lock (`multiprocessing.RawArray`); see [`RawValue`].
/// Out-of-range `get`/`set` panic like slice indexing; `try_get`/`try_set` return `Err`.
///
/// ```
/// use procshare::RawArray;
/// let a = RawArray::<i32>::new(3)?;
/// a.set(2, -1);
/// assert_eq!(a.to_vec(), vec![0, 0, -1]);
/// # Ok::<(), procshare::Error>(())
/// ```
pub struct RawArray<T> {
    shared: Shared<T>,
}

macro_rules! handle_impls {
    ($ty:ident, $magic:expr) => {
        impl<T> Clone for $ty<T> {
            fn clone(&self) -> Self {
                $ty { shared: self.shared.clone() }
            }
        }
        impl<T: Pod + std::fmt::Debug> std::fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty)).field("len", &self.shared.len).finish()
            }
        }
        impl<T: Pod> Serialize for $ty<T> {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                self.shared.serialize(s)
            }
        }
        impl<'de, T: Pod> Deserialize<'de> for $ty<T> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let region = Region::deserialize(d)?;
                let shared = Shared::open(region, $magic).map_err(serde::de::Error::custom)?;
                Ok($ty { shared })
            }
        }
    };
}
handle_impls!(Value, VALUE);
handle_impls!(Array, ARRAY);
handle_impls!(RawValue, RAW_VALUE);
handle_impls!(RawArray, RAW_ARRAY);

/// Holds a [`Value`]'s lock; derefs to the value. Not `Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ValueGuard<'a, T> {
    data: LockedData<'a, T>,
    owner_died: bool,
}

/// Holds an [`Array`]'s lock; derefs to the whole slice. Not `Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ArrayGuard<'a, T> {
    data: LockedData<'a, T>,
    owner_died: bool,
}

impl<T: Pod> Value<T> {
    /// A new shared value holding `v`.
    pub fn new(v: T) -> Result<Self> {
        Ok(Value { shared: Shared::create(VALUE, 1, &[v])? })
    }

    /// A copy of the value (under the lock).
    pub fn get(&self) -> T {
        *self.lock()
    }

    /// Replaces the value (under the lock).
    pub fn set(&self, v: T) {
        *self.lock() = v;
    }

    /// Takes the value's lock; the guard derefs to the value.
    pub fn lock(&self) -> ValueGuard<'_, T> {
        let (data, owner_died) = self.shared.guard();
        ValueGuard { data, owner_died }
    }
}

impl<T: Pod> Array<T> {
    /// A new shared array of `len` zeroed elements.
    pub fn new(len: usize) -> Result<Self> {
        Ok(Array { shared: Shared::create(ARRAY, len, &[])? })
    }

    /// A new shared array holding a copy of `data`.
    pub fn from_slice(data: &[T]) -> Result<Self> {
        Ok(Array { shared: Shared::create(ARRAY, data.len(), data)? })
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shared.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.shared.len == 0
    }

    /// A copy of element `i` (under the lock).
    ///
    /// # Panics
    /// If `i >= len()`, like slice indexing; [`try_get`](Array::try_get) returns an `Err`.
    pub fn get(&self, i: usize) -> T {
        self.lock()[i]
    }

    /// Sets element `i` (under the lock).
    ///
    /// # Panics
    /// If `i >= len()`, like slice indexing; [`try_set`](Array::try_set) returns an `Err`.
    pub fn set(&self, i: usize, v: T) {
        self.lock()[i] = v;
    }

    /// Element `i`, or `Err(InvalidArgument)` if `i >= len()`.
    pub fn try_get(&self, i: usize) -> Result<T> {
        self.lock().get(i).copied().ok_or_else(|| out_of_range(i, self.len()))
    }

    /// Sets element `i`, or `Err(InvalidArgument)` if `i >= len()`.
    pub fn try_set(&self, i: usize, v: T) -> Result<()> {
        let mut g = self.lock();
        let len = g.len();
        *g.get_mut(i).ok_or_else(|| out_of_range(i, len))? = v;
        Ok(())
    }

    /// Takes the array's lock; the guard derefs to the whole slice.
    pub fn lock(&self) -> ArrayGuard<'_, T> {
        let (data, owner_died) = self.shared.guard();
        ArrayGuard { data, owner_died }
    }

    /// A copy of the whole array (under the lock).
    pub fn to_vec(&self) -> Vec<T> {
        self.lock().to_vec()
    }
}

impl<T: Pod> RawValue<T> {
    /// A new shared value holding `v`, with no lock.
    pub fn new(v: T) -> Result<Self> {
        Ok(RawValue { shared: Shared::create(RAW_VALUE, 1, &[v])? })
    }

    /// A copy of the value (may be torn by a concurrent `set` of a multi-word `T`).
    pub fn get(&self) -> T {
        self.shared.load_raw(0)
    }

    /// Replaces the value.
    pub fn set(&self, v: T) {
        self.shared.store_raw(0, v)
    }
}

impl<T: Pod> RawArray<T> {
    /// A new shared array of `len` zeroed elements, with no lock.
    pub fn new(len: usize) -> Result<Self> {
        Ok(RawArray { shared: Shared::create(RAW_ARRAY, len, &[])? })
    }

    /// A new shared array holding a copy of `data`, with no lock.
    pub fn from_slice(data: &[T]) -> Result<Self> {
        Ok(RawArray { shared: Shared::create(RAW_ARRAY, data.len(), data)? })
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shared.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.shared.len == 0
    }

    /// A copy of element `i`.
    ///
    /// # Panics
    /// If `i >= len()`, like slice indexing.
    pub fn get(&self, i: usize) -> T {
        self.try_get(i).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Sets element `i`.
    ///
    /// # Panics
    /// If `i >= len()`, like slice indexing.
    pub fn set(&self, i: usize, v: T) {
        self.try_set(i, v).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Element `i`, or `Err(InvalidArgument)` if `i >= len()`.
    pub fn try_get(&self, i: usize) -> Result<T> {
        if i >= self.len() {
            return Err(out_of_range(i, self.len()));
        }
        Ok(self.shared.load_raw(i))
    }

    /// Sets element `i`, or `Err(InvalidArgument)` if `i >= len()`.
    pub fn try_set(&self, i: usize, v: T) -> Result<()> {
        if i >= self.len() {
            return Err(out_of_range(i, self.len()));
        }
        self.shared.store_raw(i, v);
        Ok(())
    }

    /// A copy of the whole array (element by element; not a snapshot if others write).
    pub fn to_vec(&self) -> Vec<T> {
        (0..self.len()).map(|i| self.shared.load_raw(i)).collect()
    }
}

impl<T> ValueGuard<'_, T> {
    /// Whether taking the lock took it over from a holder that died holding it (the value may
    /// be half updated).
    pub fn previous_holder_died(&self) -> bool {
        self.owner_died
    }
}

impl<T> ArrayGuard<'_, T> {
    /// Whether taking the lock took it over from a holder that died holding it (the array may
    /// be half updated).
    pub fn previous_holder_died(&self) -> bool {
        self.owner_died
    }
}

impl<T> Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // A Value holds exactly one element.
        &self.data.as_slice()[0]
    }
}

impl<T> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.data.as_mut_slice()[0]
    }
}

impl<T> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.data.as_slice()
    }
}

impl<T> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.data.as_mut_slice()
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ValueGuard").field(&**self).finish()
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ArrayGuard").field(&&**self).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A holder that died with our thread id (tids are reused) must not make this live thread
    /// look like the holder: the guard's "do I hold it" check panicked here before it compared
    /// start times too. A dead holder's lock is taken over instead.
    #[test]
    fn a_dead_holder_with_our_tid_is_taken_over_not_a_panic() {
        let v = Value::new(41u64).unwrap();
        let (tid, start) = RawLock::me();
        assert_ne!(start, 0, "/proc must tell this thread's start time");
        v.shared.lock().forge_holder(tid, start + 1);
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut g = v.lock();
            *g += 1;
        }));
        assert!(got.is_ok(), "a live thread was taken for a dead holder with its tid");
        assert_eq!(v.get(), 42);
        assert!(!v.shared.lock().is_locked());
    }
}
