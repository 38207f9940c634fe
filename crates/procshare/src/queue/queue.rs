//! `Queue<T>` — `multiprocessing.Queue` on the shared-memory ring.

use super::ring::{GetStatus, PutSlot, PutStatus, Reserved, Ring, MAX_ITEMS};
use crate::codec;
use crate::error::{Error, Result};
use crate::shared::region::Region;
use crate::sync::backoff::Backoff;
use crate::sys::deadline::Deadline;
use crate::sys::futex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How long a waiter spins (checking cheaply) before it sleeps on the futex.
const SPIN: Duration = Duration::from_micros(50);
/// Sleepers wake this often to look for dead peers (so nobody waits on a dead one for long).
const POLL: Duration = Duration::from_millis(20);
/// Items up to this many encoded bytes are copied under the producer lock (one fence per put).
const SMALL: usize = 2048;
/// Items over this many encoded bytes are serialized straight into the queue's memory.
const LARGE: usize = 64 << 10;
/// A record pending this long makes a getter check whether its producer is alive.
const PENDING_CHECK: Duration = Duration::from_millis(20);

/// A waiter's spin phase: until `ready()` or [`SPIN`] after `start`, busy-spin briefly, then
/// give the core away (the peer we wait for may be waiting for it).
fn spin_until(start: Duration, ready: impl Fn() -> bool) {
    let backoff = Backoff::polling();
    while !ready() && futex::now().saturating_sub(start) < SPIN {
        backoff.snooze();
    }
}

#[derive(Default)]
struct Scratch {
    enc: Vec<u8>,
    lens: Vec<usize>,
    slots: Vec<PutSlot>,
    dec: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch buffers (fresh ones if `f` re-enters, e.g. from a
/// `Serialize` impl that itself puts on a queue).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|c| match c.try_borrow_mut() {
        Ok(mut s) => {
            let r = f(&mut s);
            if s.enc.capacity() > 8 << 20 {
                s.enc = Vec::new();
            }
            r
        }
        Err(_) => f(&mut Scratch::default()),
    })
}

/// A FIFO queue between processes (Python's `multiprocessing.Queue`), in shared memory.
///
/// Items are serialized (serde, postcard) in the caller, so `put` reports encoding errors, and
/// copied into a ring in shared memory that every clone of the queue maps — in this process or
/// in any child it was handed to through [`Process`](crate::Process) arguments. No feeder
/// thread, no pipe: an item is in the queue when `put` returns.
///
/// * `maxsize` counts items, like Python. [`Queue::new`] is unbounded: `put` does not block
///   (up to 2^27 items or 64 GiB queued; memory is taken as needed and given back when
///   drained).
/// * Items from one producer come out in the order it put them.
/// * Item size is limited only by [`Queue::max_message_size`] (1 GiB); large items are copied
///   through the same shared memory, at memory bandwidth.
///
/// **Crashes.** Any process may be killed at any instant: an item is delivered whole or not
/// at all; an item whose producer died before `put` finished is dropped; committed items are
/// never lost, except the one a consumer had already taken when it was killed, which is gone
/// with it. Internal locks held by a dead process are taken over within tens of milliseconds.
/// A `put` that fails or panics (say in the item's `Serialize`) leaves nothing behind that
/// others wait for. A producer that is stopped (SIGSTOP) in the middle of a `put` is alive:
/// getters wait for its item, and for the items behind it, until it resumes or dies, with no
/// time bound (skipping a live writer's item could tear the items after it); use `get_timeout`
/// to bound a wait.
///
/// **Hostile peers.** Any process holding the queue can write its shared memory. It cannot
/// resize it (the memfd is sealed), make a getter panic or read out of bounds (every word read
/// from shared memory is checked), or hand a getter an invalid value such as a `String` that
/// is not UTF-8 (items are decoded from a private copy): the worst it can do is garble items,
/// which then arrive as other valid values or as `Err(Codec)`.
///
/// **Fork and spawn.** The queue lives in an anonymous memfd: a child started with either
/// start method and given the queue as (part of) its arguments shares it; the memory is freed
/// when the last process holding it exits.
///
/// ```no_run
/// use procshare::{Process, Queue};
/// procshare::init();
/// let q: Queue<String> = Queue::new()?;
/// let mut child = Process::spawn(q.clone(), |q| {
///     q.put("hello from the child".to_string()).unwrap();
/// })?;
/// assert_eq!(q.get()?, "hello from the child");
/// child.join()?;
/// # Ok::<(), procshare::Error>(())
/// ```
pub struct Queue<T> {
    ring: Ring,
    closed: AtomicBool,
    /// The WRITING record this handle last found at the head, remembered across calls so that
    /// gets which each wait less than [`PENDING_CHECK`] (`get_nowait` in a loop) still get to
    /// check its producer's liveness once it has been pending that long.
    pending: PendingSeen,
    _items: PhantomData<fn(T) -> T>,
}

/// The owner of a pending head record and when this handle first saw it pending. Only a hint
/// for when to pay for a `/proc` read: a record is skipped only if its owner is dead, so a stale
/// or torn pair (two threads of one handle) costs at most an early or late check.
#[derive(Debug, Default)]
struct PendingSeen {
    /// The record's owner value; 0 for none (a live writer's owner holds its pid, never 0).
    owner: AtomicU64,
    /// `futex::now()` in nanoseconds when `owner` was first seen pending.
    since_ns: AtomicU64,
}

impl PendingSeen {
    /// Whether the record seen pending has been pending for `PENDING_CHECK` by `now`.
    fn overdue(&self, now: Duration) -> bool {
        self.owner.load(Ordering::Relaxed) != 0
            && now.saturating_sub(Duration::from_nanos(self.since_ns.load(Ordering::Relaxed)))
                >= PENDING_CHECK
    }

    /// Notes that a record of `owner` is pending at the head at `now`.
    fn saw(&self, owner: u64, now: Duration) {
        if self.owner.load(Ordering::Relaxed) != owner {
            let ns = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
            self.since_ns.store(ns, Ordering::Relaxed);
            self.owner.store(owner, Ordering::Relaxed);
        }
    }

    /// The head moved or the queue is empty: nothing is pending.
    fn clear(&self) {
        // A load first: the get fast path calls this, and a store would dirty the line.
        if self.owner.load(Ordering::Relaxed) != 0 {
            self.owner.store(0, Ordering::Relaxed);
        }
    }
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            ring: self.ring.clone(),
            closed: AtomicBool::new(self.closed.load(Ordering::Relaxed)),
            pending: PendingSeen::default(),
            _items: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("qsize", &self.ring.len())
            .field("maxsize", &self.ring.maxsize())
            .finish()
    }
}

impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (self.ring.region(), self.closed.load(Ordering::Relaxed)).serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (region, closed) = <(Region, bool)>::deserialize(d)?;
        let ring = Ring::from_region(region).map_err(serde::de::Error::custom)?;
        Ok(Queue {
            ring,
            closed: AtomicBool::new(closed),
            pending: PendingSeen::default(),
            _items: PhantomData,
        })
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// An unbounded queue (Python's `Queue()`): `put` never blocks.
    ///
    /// ```
    /// let q = procshare::Queue::<u32>::new()?;
    /// q.put(7)?;
    /// assert_eq!(q.get()?, 7);
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        Self::with_ring(Ring::create(0)?)
    }

    /// A queue holding at most `maxsize` items (`Queue(maxsize)`); 0 means unbounded.
    /// `Err(InvalidArgument)` above 2^27.
    ///
    /// ```
    /// let q = procshare::Queue::<u8>::bounded(1)?;
    /// q.put(1)?;
    /// assert!(q.full());
    /// assert!(matches!(q.put_nowait(2), Err(procshare::Error::Full)));
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn bounded(maxsize: usize) -> Result<Self> {
        Self::with_ring(Ring::create(maxsize)?)
    }

    pub(crate) fn with_ring(ring: Ring) -> Result<Self> {
        Ok(Queue {
            ring,
            closed: AtomicBool::new(false),
            pending: PendingSeen::default(),
            _items: PhantomData,
        })
    }

    pub(crate) fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Puts `item`, waiting for room if the queue is bounded and full.
    /// `Err(Closed)` after [`Queue::close`] on this handle; `Err(Codec)` if `item` cannot be
    /// serialized; `Err(MessageTooLarge)` past [`Queue::max_message_size`].
    ///
    /// ```
    /// let q = procshare::Queue::new()?;
    /// q.put(vec![1, 2, 3])?;
    /// assert_eq!(q.get()?, vec![1, 2, 3]);
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn put(&self, item: T) -> Result<()> {
        self.put_until(&item, Deadline::NEVER)
    }

    /// Like [`Queue::put`], but gives up with `Err(Full)` after `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = procshare::Queue::bounded(1)?;
    /// q.put(1)?;
    /// assert!(matches!(q.put_timeout(2, Duration::from_millis(10)), Err(procshare::Error::Full)));
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<()> {
        self.put_until(&item, Deadline::after(timeout))
    }

    /// Puts `item` only if there is room now, else `Err(Full)`.
    ///
    /// ```
    /// let q = procshare::Queue::bounded(1)?;
    /// q.put_nowait('a')?;
    /// assert!(q.put_nowait('b').is_err());
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn put_nowait(&self, item: T) -> Result<()> {
        self.put_until(&item, Deadline::now())
    }

    /// Puts every item of `items`, in order, with one lock round per batch of reservations:
    /// much cheaper than a `put` each for small items. Blocks while the queue is full. Nothing
    /// is put if any item fails to serialize.
    ///
    /// ```
    /// let q = procshare::Queue::new()?;
    /// q.put_many(0..100u32)?;
    /// assert_eq!(q.qsize(), 100);
    /// assert_eq!(q.get_many(1000)?, (0..100).collect::<Vec<_>>());
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn put_many<I: IntoIterator<Item = T>>(&self, items: I) -> Result<()> {
        self.check_open()?;
        with_scratch(|s| {
            s.enc.clear();
            s.lens.clear();
            for item in items {
                let before = s.enc.len();
                codec::encode_into(&item, &mut s.enc)?;
                s.lens.push(s.enc.len() - before);
            }
            let mut at = 0;
            let mut done = 0;
            while done < s.lens.len() {
                s.slots.clear();
                self.reserve(&s.lens[done..], &mut s.slots, Deadline::NEVER)?;
                debug_assert!(!s.slots.is_empty());
                // On an error the slots not yet committed are abandoned (and getters woken) as
                // `batch` drops.
                let mut batch = Reserved::new(&self.ring, &mut s.slots);
                while batch.next().is_some() {
                    let len = s.lens[done];
                    batch.commit(&s.enc[at..at + len])?;
                    at += len;
                    done += 1;
                }
            }
            Ok(())
        })
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Relaxed) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    fn put_until(&self, item: &T, deadline: Deadline) -> Result<()> {
        self.check_open()?;
        with_scratch(|s| {
            s.enc.clear();
            if !codec::encode_capped(item, &mut s.enc, LARGE)? {
                return self.put_large(item, &mut s.slots, deadline);
            }
            if s.enc.len() <= SMALL {
                return self.put_small(&s.enc, &mut s.slots, deadline);
            }
            s.slots.clear();
            self.reserve(&[s.enc.len()], &mut s.slots, deadline)?;
            Reserved::new(&self.ring, &mut s.slots).commit(&s.enc)
        })
    }

    /// Puts an item whose encoding is over [`LARGE`] bytes: counts its size, reserves, and
    /// serializes it straight into the queue's memory (one copy instead of two).
    ///
    /// The item's `Serialize` runs with the slot reserved: if it fails, gives other bytes than
    /// the first time, or panics, the slot is abandoned (consumers skip it) by the guard's drop,
    /// also while unwinding.
    fn put_large(&self, item: &T, slots: &mut Vec<PutSlot>, deadline: Deadline) -> Result<()> {
        let size = codec::encoded_len(item)?;
        slots.clear();
        self.reserve(&[size], slots, deadline)?;
        let mut slot = Reserved::new(&self.ring, slots);
        let writer = self.ring.slot_writer(slot.next().ok_or(Error::Full)?);
        if codec::encode_to(item, writer)?.unwritten() == 0 {
            slot.commit_written()
        } else {
            Err(Error::Codec("the item serialized to fewer bytes the second time".into()))
        }
    }

    /// Puts an encoded small item (copied under the producer lock), waiting for room until
    /// `deadline`.
    fn put_small(&self, data: &[u8], slots: &mut Vec<PutSlot>, deadline: Deadline) -> Result<()> {
        match self.ring.put_small(data, slots, deadline)? {
            PutStatus::Reserved => Ok(()),
            PutStatus::Busy => Err(Error::Full),
            PutStatus::Full => {
                // Wait for room like any put, then copy outside the lock.
                slots.clear();
                self.reserve(&[data.len()], slots, deadline)?;
                Reserved::new(&self.ring, slots).commit(data)
            }
        }
    }

    /// Reserves at least one of `lens` (as many as fit), waiting for room until `deadline`.
    fn reserve(&self, lens: &[usize], slots: &mut Vec<PutSlot>, deadline: Deadline) -> Result<()> {
        let start = futex::now();
        let mut last_reap = start;
        let has_room = || self.ring.len() < self.ring.maxsize();
        let attempt = |_: bool| {
            match self.ring.start_put(lens, slots, deadline) {
                Ok(PutStatus::Reserved) => return Some(Ok(())),
                Ok(PutStatus::Busy) => return Some(Err(Error::Full)),
                Ok(PutStatus::Full) => {}
                Err(e) => return Some(Err(e)),
            }
            let now = futex::now();
            if deadline.expired_at(now) {
                return None;
            }
            if now.saturating_sub(last_reap) >= PENDING_CHECK {
                // A dead producer's unfinished record holds a slot until a consumer skips it;
                // with no consumer around, skip it ourselves.
                if let Err(e) = self.ring.reap() {
                    return Some(Err(e));
                }
                last_reap = now;
            }
            // Spin first (the sleep below then returns at once if room came).
            spin_until(start, has_room);
            None
        };
        // In slices: the consumer that should make room may die.
        self.ring
            .get_signal()
            .wait_sliced(deadline, POLL, |_| has_room(), attempt)
            .unwrap_or(Err(Error::Full))
    }

    /// Removes and returns the oldest item, waiting for one. `Err(Codec)` if the bytes do not
    /// decode as a `T` (the item is consumed).
    ///
    /// ```
    /// let q = procshare::Queue::new()?;
    /// q.put(1.5f64)?;
    /// assert_eq!(q.get()?, 1.5);
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn get(&self) -> Result<T> {
        self.get_one(Deadline::NEVER)
    }

    /// Like [`Queue::get`], but gives up with `Err(Empty)` after `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = procshare::Queue::<u8>::new()?;
    /// assert!(matches!(q.get_timeout(Duration::from_millis(10)), Err(procshare::Error::Empty)));
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_one(Deadline::after(timeout))
    }

    /// An item if one is ready now, else `Err(Empty)`.
    ///
    /// ```
    /// let q = procshare::Queue::<u8>::new()?;
    /// assert!(q.get_nowait().is_err());
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn get_nowait(&self) -> Result<T> {
        self.get_one(Deadline::now())
    }

    /// Waits for at least one item, then takes up to `max` that are ready, in queue order, with
    /// one lock round. `max == 0` returns an empty `Vec` at once. If one item fails to decode,
    /// the whole batch is consumed and the error returned.
    ///
    /// ```
    /// let q = procshare::Queue::new()?;
    /// q.put_many(["a", "b", "c"].map(String::from))?;
    /// assert_eq!(q.get_many(2)?, ["a", "b"]);
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn get_many(&self, max: usize) -> Result<Vec<T>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut items = Vec::new();
        let mut first_err = None;
        with_scratch(|s| {
            self.get_with(max, Deadline::NEVER, &mut s.dec, &mut |b| match codec::decode(b) {
                Ok(v) => items.push(v),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            })
        })?;
        match first_err {
            Some(e) => Err(e),
            None => Ok(items),
        }
    }

    fn get_one(&self, deadline: Deadline) -> Result<T> {
        let mut item = None;
        with_scratch(|s| {
            self.get_with(1, deadline, &mut s.dec, &mut |b| item = Some(codec::decode(b)))
        })?;
        item.unwrap_or(Err(Error::Empty))
    }

    /// Hands up to `max` items to `sink`, waiting until `deadline` for the first.
    fn get_with(
        &self,
        max: usize,
        deadline: Deadline,
        scratch: &mut Vec<u8>,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<()> {
        // The fast path (an item is there) reads no clock.
        if self.ring.try_get(max, false, deadline, scratch, sink)? == GetStatus::Took {
            // The head moved: a record seen pending before is gone.
            self.pending.clear();
            return Ok(());
        }
        let start = futex::now();
        let head_ready = || self.ring.head_ready();
        let attempt = |_: bool| {
            let now = futex::now();
            // Across calls (see `pending`): a dead producer's record must not starve a consumer
            // that only ever polls briefly.
            let reap = self.pending.overdue(now);
            match self.ring.try_get(max, reap, deadline, scratch, sink) {
                Ok(GetStatus::Took) => {
                    self.pending.clear();
                    return Some(Ok(()));
                }
                Ok(GetStatus::Busy) => return Some(Err(Error::Empty)),
                Ok(GetStatus::Empty) => self.pending.clear(),
                Ok(GetStatus::Pending(owner)) => self.pending.saw(owner, now),
                Err(e) => return Some(Err(e)),
            }
            if !deadline.expired_at(now) {
                spin_until(start, head_ready);
            }
            None
        };
        // In slices: the producer of a pending record may die (then we skip it).
        self.ring
            .put_signal()
            .wait_sliced(deadline, POLL, |_| head_ready(), attempt)
            .unwrap_or(Err(Error::Empty))
    }

    /// Items in the queue: exact, counted in shared memory (an item whose `put` is under way
    /// counts).
    ///
    /// ```
    /// let q = procshare::Queue::new()?;
    /// q.put(())?;
    /// assert_eq!(q.qsize(), 1);
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn qsize(&self) -> usize {
        self.ring.len()
    }

    /// `qsize() == 0`.
    ///
    /// ```
    /// assert!(procshare::Queue::<u8>::new()?.empty());
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Whether a bounded queue holds `maxsize` items (never true for [`Queue::new`] in
    /// practice: its limit is 2^27 items).
    ///
    /// ```
    /// assert!(!procshare::Queue::<u8>::bounded(1)?.full());
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn full(&self) -> bool {
        self.qsize() >= self.ring.maxsize()
    }

    /// The `maxsize` given at creation (0 for unbounded).
    pub fn maxsize(&self) -> usize {
        if self.ring.unbounded() {
            0
        } else {
            self.ring.maxsize().min(MAX_ITEMS)
        }
    }

    /// The largest serialized item the queue carries (1 GiB).
    pub fn max_message_size(&self) -> usize {
        self.ring.item_limit()
    }

    /// This handle can no longer put (`put*` return `Err(Closed)`); it can still get, and other
    /// handles (clones, other processes) are unaffected. Idempotent. Nothing needs flushing:
    /// every `put` that returned is already in shared memory.
    ///
    /// ```
    /// let q = procshare::Queue::new()?;
    /// q.put(1)?;
    /// q.close();
    /// assert!(matches!(q.put(2), Err(procshare::Error::Closed)));
    /// assert_eq!(q.get()?, 1);
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}
