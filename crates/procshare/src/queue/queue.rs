//! `Queue<T>` — `multiprocessing.Queue` on the shared-memory ring.

use super::ring::{
    GetStatus, PutSlot, PutStatus, Reserved, Ring, FORMAT_NATIVE, FORMAT_PICKLE, MAGIC, MAX_ITEMS,
    RING_LEN,
};
use crate::codec::{self, Format};
use crate::error::{Error, Result};
use crate::shared::handles::{RecvFd, SendFd};
use crate::shared::region::{Region, HEADER_LEN};
use crate::shm::tracker;
use crate::sync::backoff::Backoff;
use crate::sys::deadline::{Deadline, Wait};
use crate::sys::futex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::RefCell;
use std::marker::PhantomData;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
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
/// How long `open` waits for a queue whose creator is still writing its header.
const OPEN_WAIT: Duration = Duration::from_millis(200);

/// A waiter's spin phase: until `ready()` or [`SPIN`] after `start`, busy-spin briefly, then
/// give the core away (the peer we wait for may be waiting for it).
fn spin_until(start: Duration, ready: impl Fn() -> bool) {
    let backoff = Backoff::polling();
    while !ready() && futex::now().saturating_sub(start) < SPIN {
        backoff.snooze();
    }
}

/// `Err(Full)` unless all `wanted` items were put (a wait without a deadline always ends so).
fn all_put(put: usize, wanted: usize) -> Result<()> {
    if put == wanted {
        Ok(())
    } else {
        Err(Error::Full)
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
/// when the last process holding it exits. A named queue ([`Queue::create_named`]) lives in a
/// `/dev/shm` file that unrelated processes [`Queue::open`] by name; a child given it as an
/// argument gets the same file (and its name) and keeps it alive as an opener does.
///
/// **Formats and bytes.** Items are native (postcard) unless a named queue was created with
/// [`Format::Pickle`]: then `put` writes a pickle (protocol 3) that Python's `pickle.loads`
/// reads and `get` reads pickles data-only, bounded by [`Queue::max_message_size`], as
/// [`Connection::recv_pickle`](crate::Connection::recv_pickle) does. [`Queue::put_bytes`] and
/// [`Queue::get_bytes`] carry an item's encoded bytes as they are.
///
/// **Shutdown.** [`Queue::shutdown`] has Python 3.13's `queue.Queue.shutdown` semantics, for
/// every handle in every process.
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
    /// The ring's item format, read once from its header (fixed at creation).
    format: Format,
    /// The name of a named queue ([`Queue::create_named`], [`Queue::open`]).
    name: Option<Arc<str>>,
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
            format: self.format,
            name: self.name.clone(),
            closed: AtomicBool::new(self.closed.load(Ordering::Relaxed)),
            pending: PendingSeen::default(),
            _items: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("qsize", &self.ring.len())
            .field("maxsize", &self.ring.maxsize())
            .finish()
    }
}

/// A handle travels as the ring's descriptor, the name of a named queue, and `closed`. An
/// anonymous queue's descriptor is a sealed memfd, checked as every region is; a named queue's
/// is its `/dev/shm` file, checked like one opened by name (a regular file of this user's), and
/// the receiving process registers as a user of the name, as for [`crate::SharedMemory`].
impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let fd = SendFd(self.ring.region().fd());
        (self.name.as_deref(), fd, self.closed.load(Ordering::Relaxed)).serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let (name, RecvFd(fd), closed) = <(Option<String>, RecvFd, bool)>::deserialize(d)?;
        let ring = match &name {
            None => Region::open(fd, MAGIC).and_then(Ring::from_region),
            Some(name) => (|| {
                let name = tracker::check_name(name)?;
                let ino = tracker::check_own_file(fd.as_fd(), name)?;
                let ring = Ring::from_region(Region::open_named(fd, MAGIC, OPEN_WAIT)?)?;
                tracker::attach(name, ino)?;
                Ok(ring)
            })(),
        }
        .map_err(D::Error::custom)?;
        let mut q = Queue::with_ring(ring).map_err(D::Error::custom)?;
        q.name = name.map(Arc::from);
        q.closed = AtomicBool::new(closed);
        Ok(q)
    }
}

impl<T> Queue<T> {
    pub(crate) fn with_ring(ring: Ring) -> Result<Self> {
        let format = match ring.format()? {
            FORMAT_PICKLE => Format::Pickle,
            _ => Format::Native,
        };
        Ok(Queue {
            ring,
            format,
            name: None,
            closed: AtomicBool::new(false),
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

    pub(crate) fn ring(&self) -> &Ring {
        &self.ring
    }

    /// A new queue called `name` that unrelated processes (Rust, or Python with the `procshare`
    /// module) reach with [`Queue::open`]; `maxsize` as in [`Queue::bounded`] (0: unbounded),
    /// `format` how its items are encoded ([`Format::Pickle`] to share it with Python).
    /// `Err(AlreadyExists)` if anything has that name in `/dev/shm` already; names are checked
    /// as [`SharedMemory`](crate::SharedMemory)'s (at most 30 bytes, no `/` but a leading one).
    ///
    /// The queue lives in `/dev/shm/<name>` for as long as any process that created or opened it
    /// lives (dropping the handles does not end it), and is removed after the last one dies,
    /// SIGKILL included — the rule of named `SharedMemory`; `procshare shm ls` lists it.
    ///
    /// ```
    /// use procshare::{Format, Queue};
    /// # let name = format!("doc_q{}", std::process::id());
    /// let q = Queue::<String>::create_named(&name, 0, Format::Native)?;
    /// let other = Queue::<String>::open(&name)?; // in any process of this user
    /// q.put("hi".into())?;
    /// assert_eq!(other.get()?, "hi");
    /// assert_eq!(other.name(), Some(name.as_str()));
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn create_named(name: &str, maxsize: usize, format: Format) -> Result<Self> {
        let bare = tracker::check_name(name)?;
        if maxsize > MAX_ITEMS {
            return Err(Error::invalid(format!(
                "maxsize {maxsize} is larger than the most a queue can hold ({MAX_ITEMS})"
            )));
        }
        let fd = tracker::create_queue(bare, HEADER_LEN + RING_LEN)?;
        let ino = tracker::check_own_file(fd.as_fd(), bare)?;
        let fmt = match format {
            Format::Native => FORMAT_NATIVE,
            Format::Pickle => FORMAT_PICKLE,
        };
        let ring = Ring::create_in(fd, maxsize, fmt).inspect_err(|_| {
            let _ = tracker::unlink(bare, ino);
        })?;
        let mut q = Self::with_ring(ring)?;
        q.name = Some(Arc::from(bare));
        Ok(q)
    }

    /// Opens the named queue `name` (made by [`Queue::create_named`] in any process of this
    /// user, or by Python's `procshare.Queue(name=...)`); its `maxsize` and [`Format`] are the
    /// creator's. `Err(NotFound)` if there is none; `Err` if what has that name is not a
    /// procshare queue, is another user's, or is a symlink (never followed). This process then
    /// keeps the queue alive until it exits.
    ///
    /// ```
    /// assert!(matches!(
    ///     procshare::Queue::<u8>::open("no_such_queue"),
    ///     Err(procshare::Error::NotFound(_))
    /// ));
    /// ```
    pub fn open(name: &str) -> Result<Self> {
        let bare = tracker::check_name(name)?;
        let fd = tracker::open(bare)?;
        let ring = Region::open_named(fd, MAGIC, OPEN_WAIT)
            .and_then(Ring::from_region)
            .map_err(|e| Error::invalid(format!("{bare:?} is not a procshare queue: {e}")))?;
        let mut q = Self::with_ring(ring)?;
        q.name = Some(Arc::from(bare));
        Ok(q)
    }

    /// The name of a named queue; `None` for one made by [`Queue::new`]/[`Queue::bounded`].
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// How the queue's items are encoded: [`Format::Native`] unless it was created named with
    /// [`Format::Pickle`].
    pub fn format(&self) -> Format {
        self.format
    }

    /// Shuts the queue down for every handle in every process (Python 3.13's
    /// `queue.Queue.shutdown`): afterwards every `put*` is `Err(ShutDown)`; `get*` return what
    /// is left, then `Err(ShutDown)`; callers blocked in `put` or `get` anywhere wake up and
    /// return that. With `immediate`, what is left is discarded instead, counted as done for a
    /// [`JoinableQueue`](crate::JoinableQueue)'s `join` (which returns once the items taken
    /// before are marked done), and every get is `Err(ShutDown)` at once. One-way: a later
    /// `shutdown(true)` upgrades a soft one; nothing undoes it.
    ///
    /// ```
    /// let q = procshare::Queue::new()?;
    /// q.put(1)?;
    /// q.shutdown(false);
    /// assert!(matches!(q.put(2), Err(procshare::Error::ShutDown)));
    /// assert_eq!(q.get()?, 1);
    /// assert!(matches!(q.get(), Err(procshare::Error::ShutDown)));
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn shutdown(&self, immediate: bool) {
        self.ring.shut_down(immediate);
    }

    /// Puts one item given as its encoded bytes, with no codec: on a [`Format::Pickle`] queue a
    /// pickle (what Python's `pickle.dumps` gives, which a `Queue<T>` then reads as a `T`), on a
    /// native queue the native encoding of an item. The bytes are whatever the caller says: a
    /// getter decoding them as `T` gets `Err(Codec)` for bytes that are not one. Waits for room
    /// like [`Queue::put`]; `Err(MessageTooLarge)` past [`Queue::max_message_size`].
    ///
    /// ```
    /// let q = procshare::Queue::<u8>::new()?;
    /// q.put_bytes(b"\x07")?; // the native encoding of 7u8
    /// assert_eq!(q.get()?, 7);
    /// q.put(9)?;
    /// assert_eq!(q.get_bytes()?, b"\x09");
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn put_bytes(&self, data: &[u8]) -> Result<()> {
        self.put_bytes_until(data, Wait::Until(Deadline::NEVER))
    }

    /// [`Queue::put_bytes`], giving up with `Err(Full)` after `timeout`.
    pub fn put_bytes_timeout(&self, data: &[u8], timeout: Duration) -> Result<()> {
        self.put_bytes_until(data, Wait::For(timeout))
    }

    /// [`Queue::put_bytes`] only if there is room now, else `Err(Full)`.
    pub fn put_bytes_nowait(&self, data: &[u8]) -> Result<()> {
        self.put_bytes_until(data, Wait::Until(Deadline::now()))
    }

    /// Removes the oldest item and returns its encoded bytes, undecoded (a pickle on a
    /// [`Format::Pickle`] queue); waits for one like [`Queue::get`].
    pub fn get_bytes(&self) -> Result<Vec<u8>> {
        self.get_bytes_until(Wait::Until(Deadline::NEVER))
    }

    /// [`Queue::get_bytes`], giving up with `Err(Empty)` after `timeout`.
    pub fn get_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        self.get_bytes_until(Wait::For(timeout))
    }

    /// [`Queue::get_bytes`] if an item is ready now, else `Err(Empty)`.
    pub fn get_bytes_nowait(&self) -> Result<Vec<u8>> {
        self.get_bytes_until(Wait::Until(Deadline::now()))
    }

    /// Waits for at least one item, then removes up to `max` that are ready, in queue order, with
    /// one lock round, and returns their encoded bytes undecoded (as [`Queue::get_bytes`] does
    /// one): what `get_many` is for a caller that decodes items itself. `max == 0` returns an
    /// empty `Vec` at once.
    ///
    /// ```
    /// let q = procshare::Queue::<u8>::new()?;
    /// q.put_many([1, 2, 3])?;
    /// assert_eq!(q.get_bytes_many(2)?, [b"\x01", b"\x02"]);
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn get_bytes_many(&self, max: usize) -> Result<Vec<Vec<u8>>> {
        self.get_bytes_many_until(max, Deadline::NEVER)
    }

    /// [`Queue::get_bytes_many`], giving up with `Err(Empty)` if no item came within `timeout`
    /// (`Duration::ZERO`: only what is ready now).
    pub fn get_bytes_many_timeout(&self, max: usize, timeout: Duration) -> Result<Vec<Vec<u8>>> {
        self.get_bytes_many_until(max, Deadline::after(timeout))
    }

    /// Up to `max` items' bytes, each lent to `sink` (no copy of its own), waiting at most
    /// `timeout` for the first: `Err(Empty)` if none came. The pool's collector reads reports
    /// so.
    pub(crate) fn get_bytes_each(
        &self,
        max: usize,
        timeout: Duration,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<usize> {
        let mut n = 0;
        with_scratch(|s| {
            self.get_with(max, Wait::For(timeout), &mut s.dec, &mut |b| {
                n += 1;
                sink(b)
            })
        })?;
        if n == 0 {
            return Err(Error::Empty);
        }
        Ok(n)
    }

    fn get_bytes_many_until(&self, max: usize, deadline: Deadline) -> Result<Vec<Vec<u8>>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut items = Vec::new();
        with_scratch(|s| {
            self.get_with(max, Wait::Until(deadline), &mut s.dec, &mut |b| items.push(b.to_vec()))
        })?;
        if items.is_empty() {
            return Err(Error::Empty);
        }
        Ok(items)
    }

    fn put_bytes_until(&self, data: &[u8], wait: Wait) -> Result<()> {
        self.check_open()?;
        with_scratch(|s| self.put_encoded(data, &mut s.slots, wait))
    }

    fn get_bytes_until(&self, wait: Wait) -> Result<Vec<u8>> {
        // The payload is copied into `buf` and left there, except when it is so large that the
        // ring frees its copy buffer after the sink (then the sink keeps its own copy).
        let mut buf = Vec::new();
        let mut got = false;
        let mut big = None;
        self.get_with(1, wait, &mut buf, &mut |b| {
            got = true;
            if b.len() > 8 << 20 {
                big = Some(b.to_vec());
            }
        })?;
        match (big, got) {
            (Some(v), _) => Ok(v),
            (None, true) => Ok(buf),
            (None, false) => Err(Error::Empty),
        }
    }

    /// Decodes one item in the queue's format (pickles data-only, bounded by the item limit).
    #[inline]
    fn decode(&self, bytes: &[u8]) -> Result<T> {
        match self.format {
            Format::Native => codec::decode(bytes),
            Format::Pickle => codec::pickle_decode_limited(bytes, self.ring.item_limit()),
        }
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
        self.put_until(&item, Wait::Until(Deadline::NEVER))
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
        self.put_until(&item, Wait::For(timeout))
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
        self.put_until(&item, Wait::Until(Deadline::now()))
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
                self.format.encode_into(&item, &mut s.enc)?;
                s.lens.push(s.enc.len() - before);
            }
            let enc = s.enc.as_slice();
            let mut at = 0;
            let put = self.put_runs(&s.lens, &mut s.slots, Deadline::NEVER, |len| {
                at += len;
                &enc[at - len..at]
            })?;
            all_put(put, s.lens.len())
        })
    }

    /// Puts several items given as their encoded bytes (as [`Queue::put_bytes`] does one), in
    /// order, each run of them that fits reserved with one lock round of the ring: what
    /// `put_many` is for a caller that encodes items itself (the Python module's `put_many`).
    /// Waits while the queue is full. An item over [`Queue::max_message_size`] is
    /// `Err(MessageTooLarge)` before anything is put.
    ///
    /// ```
    /// let q = procshare::Queue::<u8>::new()?;
    /// q.put_bytes_many(&[b"\x01", b"\x02", b"\x03"])?;
    /// assert_eq!(q.get_many(10)?, [1, 2, 3]);
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn put_bytes_many(&self, items: &[&[u8]]) -> Result<()> {
        all_put(self.put_bytes_many_until(items, Deadline::NEVER)?, items.len())
    }

    /// [`Queue::put_bytes_many`], waiting at most `timeout` for room (`Duration::ZERO`: only what
    /// fits now): returns how many items, from the first, were put — all of them, or fewer when
    /// the queue stayed full until the timeout (then 0 is possible and the caller decides
    /// whether that is `Full`). Items after the first one that did not fit are not put.
    /// `Err(ShutDown)` or `Err(Closed)` may come after some of the items were put.
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = procshare::Queue::<u8>::bounded(2)?;
    /// assert_eq!(q.put_bytes_many_timeout(&[b"\x01", b"\x02", b"\x03"], Duration::ZERO)?, 2);
    /// assert_eq!(q.put_bytes_many_timeout(&[b"\x03"], Duration::ZERO)?, 0);
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn put_bytes_many_timeout(&self, items: &[&[u8]], timeout: Duration) -> Result<usize> {
        self.put_bytes_many_until(items, Deadline::after(timeout))
    }

    fn put_bytes_many_until(&self, items: &[&[u8]], deadline: Deadline) -> Result<usize> {
        self.check_open()?;
        with_scratch(|s| {
            s.lens.clear();
            s.lens.extend(items.iter().map(|i| i.len()));
            let mut next = items.iter();
            self.put_runs(&s.lens, &mut s.slots, deadline, |_| next.next().copied().unwrap_or(&[]))
        })
    }

    /// Puts records of the lengths `lens`, in order, whose payloads `piece` gives one after the
    /// other (asked once each, with its length): each run that fits is reserved with one lock
    /// round, then copied and committed. Returns how many were put: all, or fewer when room did
    /// not come before `deadline`.
    fn put_runs<'d>(
        &self,
        lens: &[usize],
        slots: &mut Vec<PutSlot>,
        deadline: Deadline,
        mut piece: impl FnMut(usize) -> &'d [u8],
    ) -> Result<usize> {
        let limit = self.ring.item_limit();
        if let Some(&big) = lens.iter().find(|&&l| l > limit) {
            return Err(Error::MessageTooLarge { size: big, limit });
        }
        let mut done = 0;
        while done < lens.len() {
            slots.clear();
            match self.reserve(&lens[done..], slots, deadline) {
                Ok(()) => {}
                Err(Error::Full) => break,
                Err(e) => return Err(e),
            }
            debug_assert!(!slots.is_empty());
            // On an error the slots not yet committed are abandoned (and getters woken) as
            // `batch` drops.
            let mut batch = Reserved::new(&self.ring, slots);
            while batch.next().is_some() {
                batch.commit(piece(lens[done]))?;
                done += 1;
            }
        }
        Ok(done)
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Relaxed) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    fn put_until(&self, item: &T, wait: Wait) -> Result<()> {
        self.check_open()?;
        if self.format == Format::Pickle {
            let enc = codec::pickle_encode(item)?;
            return with_scratch(|s| self.put_encoded(&enc, &mut s.slots, wait));
        }
        with_scratch(|s| {
            s.enc.clear();
            if !codec::encode_capped(item, &mut s.enc, LARGE)? {
                return self.put_large(item, &mut s.slots, wait.deadline());
            }
            self.put_encoded(&s.enc, &mut s.slots, wait)
        })
    }

    /// Puts one encoded item, waiting for room as `wait` says.
    fn put_encoded(&self, data: &[u8], slots: &mut Vec<PutSlot>, wait: Wait) -> Result<()> {
        if data.len() <= SMALL {
            return self.put_small(data, slots, wait);
        }
        slots.clear();
        self.reserve(&[data.len()], slots, wait.deadline())?;
        Reserved::new(&self.ring, slots).commit(data)
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

    /// Puts an encoded small item (copied under the producer lock), waiting for room as `wait`
    /// says.
    fn put_small(&self, data: &[u8], slots: &mut Vec<PutSlot>, wait: Wait) -> Result<()> {
        // The fast path (the lock is free, there is room) reads no clock.
        let mut status = self.ring.put_small(data, slots, wait.first_look())?;
        if status == PutStatus::Reserved {
            return Ok(());
        }
        let deadline = wait.deadline();
        if status == PutStatus::Busy && deadline != wait.first_look() {
            // The lock was busy at the first look: wait for it this time.
            status = self.ring.put_small(data, slots, deadline)?;
        }
        match status {
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
        // Shut down: look again (and be refused).
        let has_room = || self.ring.len() < self.ring.maxsize() || self.ring.is_shut_down();
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
        self.get_one(Wait::Until(Deadline::NEVER))
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
        self.get_one(Wait::For(timeout))
    }

    /// An item if one is ready now, else `Err(Empty)`.
    ///
    /// ```
    /// let q = procshare::Queue::<u8>::new()?;
    /// assert!(q.get_nowait().is_err());
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn get_nowait(&self) -> Result<T> {
        self.get_one(Wait::Until(Deadline::now()))
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
            self.get_with(max, Wait::Until(Deadline::NEVER), &mut s.dec, &mut |b| match self
                .decode(b)
            {
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

    fn get_one(&self, wait: Wait) -> Result<T> {
        let mut item = None;
        with_scratch(|s| self.get_with(1, wait, &mut s.dec, &mut |b| item = Some(self.decode(b))))?;
        item.unwrap_or(Err(Error::Empty))
    }

    /// Hands up to `max` items to `sink`, waiting for the first as `wait` says.
    fn get_with(
        &self,
        max: usize,
        wait: Wait,
        scratch: &mut Vec<u8>,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<()> {
        if self.ring.is_shut_down_immediately() {
            // Items committed by puts that were under way at the shutdown go too.
            let _ = self.ring.discard();
            return Err(Error::ShutDown);
        }
        // The fast path (an item is there) reads no clock.
        if self.ring.try_get(max, false, wait.first_look(), scratch, sink)? == GetStatus::Took {
            // The head moved: a record seen pending before is gone.
            self.pending.clear();
            return Ok(());
        }
        let deadline = wait.deadline();
        let start = futex::now();
        // Shut down with nothing left (not even an item being written): look again, and stop.
        let head_ready =
            || self.ring.head_ready() || (self.ring.is_shut_down() && self.ring.len() == 0);
        let attempt = |_: bool| {
            // Read before looking at the ring: the flag is set under the producer lock, so a
            // flag seen here means every put that will ever be is in the tail we read next.
            let shut = self.ring.is_shut_down();
            if shut && self.ring.is_shut_down_immediately() {
                let _ = self.ring.discard();
                return Some(Err(Error::ShutDown));
            }
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
                Ok(GetStatus::Empty) if shut => return Some(Err(Error::ShutDown)),
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
