//! The one queue core behind `Queue`, `LifoQueue` and `PriorityQueue`: CPython's
//! `queue.Queue` (`Lib/queue.py`, 3.13) — one mutex, three condition variables
//! (`not_empty`, `not_full`, `all_tasks_done`) — with the discipline left to a [`Container`].
//!
//! Every state change happens under the one mutex, exactly as in `queue.py`, so the
//! ordering of checks (shut down before `Full`, shut down-and-empty before `Empty`, ...) is
//! Python's. Two things are added for speed and are invisible to the semantics:
//! - `len_hint` mirrors the number of items (written under the lock, read without it), so a
//!   thread about to sleep spins briefly first and usually finds work without a futex call;
//! - the waiters count how many threads sleep on each condition, so a `put`/`get` notifies
//!   (a possible syscall) only when someone sleeps.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, VecDeque};
use std::mem;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::sync::backoff::Backoff;
use crate::sys::deadline::Deadline;

/// How many items a bounded queue allocates room for up front; a huge `maxsize` must not
/// allocate a huge buffer before anything is put.
const PREALLOC_LIMIT: usize = 1024;

/// A queue discipline: where `put` stores an item and which item `get` takes.
///
/// The three implementations are `Fifo` (Python's `Queue`), `Lifo` (`LifoQueue`) and
/// `Priority` (`PriorityQueue`).
pub(crate) trait Container: Default {
    /// The item type.
    type Item;
    /// An empty container with room for `n` items.
    fn with_capacity(n: usize) -> Self;
    /// `_put`.
    fn push(&mut self, item: Self::Item);
    /// `_get`: the next item by this discipline.
    fn pop(&mut self) -> Option<Self::Item>;
    /// `_qsize`.
    fn len(&self) -> usize;
}

/// First in, first out.
pub(crate) struct Fifo<T>(VecDeque<T>);

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Fifo(VecDeque::new())
    }
}

impl<T> Container for Fifo<T> {
    type Item = T;
    fn with_capacity(n: usize) -> Self {
        Fifo(VecDeque::with_capacity(n))
    }
    fn push(&mut self, item: T) {
        self.0.push_back(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop_front()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Last in, first out.
pub(crate) struct Lifo<T>(Vec<T>);

impl<T> Default for Lifo<T> {
    fn default() -> Self {
        Lifo(Vec::new())
    }
}

impl<T> Container for Lifo<T> {
    type Item = T;
    fn with_capacity(n: usize) -> Self {
        Lifo(Vec::with_capacity(n))
    }
    fn push(&mut self, item: T) {
        self.0.push(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Smallest first; equal items in put order (a sequence number breaks ties).
pub(crate) struct Priority<T> {
    heap: BinaryHeap<Entry<T>>,
    next_seq: u64,
}

impl<T: Ord> Default for Priority<T> {
    fn default() -> Self {
        Priority { heap: BinaryHeap::new(), next_seq: 0 }
    }
}

/// A heap entry. `BinaryHeap` is a max-heap, so the order is reversed: the greatest entry is
/// the smallest item, and among equal items the one put first.
struct Entry<T> {
    item: T,
    seq: u64,
}

impl<T: Ord> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other.item.cmp(&self.item).then_with(|| other.seq.cmp(&self.seq))
    }
}

impl<T: Ord> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl<T: Ord> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}

impl<T: Ord> Eq for Entry<T> {}

impl<T: Ord> Container for Priority<T> {
    type Item = T;
    fn with_capacity(n: usize) -> Self {
        Priority { heap: BinaryHeap::with_capacity(n), next_seq: 0 }
    }
    fn push(&mut self, item: T) {
        // A u64 sequence cannot wrap: 2^64 puts at one per nanosecond take 584 years.
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        self.heap.push(Entry { item, seq });
    }
    fn pop(&mut self) -> Option<T> {
        self.heap.pop().map(|e| e.item)
    }
    fn len(&self) -> usize {
        self.heap.len()
    }
}

/// Everything guarded by the mutex: `queue.py`'s attributes.
struct State<C> {
    items: C,
    /// 0 = unbounded (Python's `maxsize <= 0`).
    maxsize: usize,
    unfinished_tasks: usize,
    is_shutdown: bool,
    /// Threads sleeping in `get` (on `not_empty`).
    sleeping_getters: usize,
    /// Threads sleeping in `put` (on `not_full`).
    sleeping_putters: usize,
}

impl<C: Container> State<C> {
    fn is_full(&self) -> bool {
        self.maxsize > 0 && self.items.len() >= self.maxsize
    }
}

/// Sleeps on `cv` until notified or `deadline`; whether it timed out. Spurious wakeups are the
/// caller's to handle (it re-checks its condition).
pub(crate) fn wait_on<T>(cv: &Condvar, guard: &mut MutexGuard<'_, T>, deadline: Deadline) -> bool {
    match deadline.remaining() {
        None => {
            cv.wait(guard);
            false
        }
        // parking_lot treats a timeout too large for an `Instant` as "forever".
        Some(left) => cv.wait_for(guard, left).timed_out(),
    }
}

/// The shared queue core.
pub(crate) struct Core<C> {
    state: CachePadded<Mutex<State<C>>>,
    /// Number of items, written under the lock (Relaxed store) and read by spinning threads
    /// without it (Relaxed load); only a hint, every decision is re-made under the lock.
    len_hint: CachePadded<AtomicUsize>,
    /// `is_shutdown`, mirrored like `len_hint` so spinners stop spinning at once.
    shutdown_hint: AtomicBool,
    not_empty: Condvar,
    not_full: Condvar,
    all_tasks_done: Condvar,
}

/// What a bounded wait is waiting for.
#[derive(Clone, Copy)]
enum Want {
    /// An item (a getter).
    Item,
    /// Room (a putter).
    Room,
}

impl<C: Container> Core<C> {
    /// A queue holding at most `maxsize` items; 0 means unbounded, as in Python.
    pub(crate) fn new(maxsize: usize) -> Self {
        Core {
            state: CachePadded::new(Mutex::new(State {
                items: C::with_capacity(maxsize.min(PREALLOC_LIMIT)),
                maxsize,
                unfinished_tasks: 0,
                is_shutdown: false,
                sleeping_getters: 0,
                sleeping_putters: 0,
            })),
            len_hint: CachePadded::new(AtomicUsize::new(0)),
            shutdown_hint: AtomicBool::new(false),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            all_tasks_done: Condvar::new(),
        }
    }

    /// Spin briefly until the hint says `want` might be satisfiable; returns at once when
    /// the queue is shut down. Saves a sleep + wake pair when the other side is just behind.
    fn spin_for(&self, want: Want, maxsize: usize, deadline: Deadline) {
        // A passed deadline (`timeout == 0`): no spinning.
        if deadline.expired() {
            return;
        }
        let backoff = Backoff::new();
        while !backoff.is_completed() {
            if self.shutdown_hint.load(Ordering::Relaxed) {
                return;
            }
            let len = self.len_hint.load(Ordering::Relaxed);
            let ready = match want {
                Want::Item => len > 0,
                Want::Room => maxsize == 0 || len < maxsize,
            };
            if ready {
                return;
            }
            backoff.snooze();
        }
    }

    /// Store the item and wake one getter; the caller checked shutdown and room.
    fn do_put(&self, mut st: MutexGuard<'_, State<C>>, item: C::Item) {
        st.items.push(item);
        // Incremented after the push: a push that panics (a panicking `Ord`) leaves the
        // count unchanged, like Python's failed `_put`.
        st.unfinished_tasks += 1;
        self.len_hint.store(st.items.len(), Ordering::Relaxed);
        let wake = st.sleeping_getters > 0;
        drop(st);
        if wake {
            self.not_empty.notify_one();
        }
    }

    /// Take the next item and wake one putter; the caller checked there is one.
    fn do_get(&self, mut st: MutexGuard<'_, State<C>>) -> Result<C::Item> {
        let item = st.items.pop().ok_or(Error::Empty)?;
        self.len_hint.store(st.items.len(), Ordering::Relaxed);
        let wake = st.sleeping_putters > 0;
        drop(st);
        if wake {
            self.not_full.notify_one();
        }
        Ok(item)
    }

    /// `put(item, block=True, timeout)`; `deadline` may be never.
    fn put_until(&self, item: C::Item, deadline: Deadline) -> Result<()> {
        let mut st = self.state.lock();
        if st.is_shutdown {
            return Err(Error::ShutDown);
        }
        if st.is_full() {
            let maxsize = st.maxsize;
            drop(st);
            self.spin_for(Want::Room, maxsize, deadline);
            st = self.state.lock();
            loop {
                if st.is_shutdown {
                    return Err(Error::ShutDown);
                }
                if !st.is_full() {
                    break;
                }
                st.sleeping_putters += 1;
                let timed_out = wait_on(&self.not_full, &mut st, deadline);
                st.sleeping_putters -= 1;
                if timed_out {
                    if st.is_shutdown {
                        return Err(Error::ShutDown);
                    }
                    if st.is_full() {
                        return Err(Error::Full);
                    }
                    break;
                }
            }
        }
        self.do_put(st, item);
        Ok(())
    }

    /// `get(block=True, timeout)`; `deadline` may be never.
    fn get_until(&self, deadline: Deadline) -> Result<C::Item> {
        let mut st = self.state.lock();
        if st.items.len() == 0 {
            if st.is_shutdown {
                return Err(Error::ShutDown);
            }
            drop(st);
            self.spin_for(Want::Item, 0, deadline);
            st = self.state.lock();
            loop {
                if st.items.len() > 0 {
                    break;
                }
                if st.is_shutdown {
                    return Err(Error::ShutDown);
                }
                st.sleeping_getters += 1;
                let timed_out = wait_on(&self.not_empty, &mut st, deadline);
                st.sleeping_getters -= 1;
                if timed_out {
                    if st.items.len() > 0 {
                        break;
                    }
                    if st.is_shutdown {
                        return Err(Error::ShutDown);
                    }
                    return Err(Error::Empty);
                }
            }
        }
        self.do_get(st)
    }

    pub(crate) fn put(&self, item: C::Item) -> Result<()> {
        self.put_until(item, Deadline::NEVER)
    }

    pub(crate) fn put_timeout(&self, item: C::Item, timeout: Duration) -> Result<()> {
        self.put_until(item, Deadline::after(timeout))
    }

    pub(crate) fn put_nowait(&self, item: C::Item) -> Result<()> {
        let st = self.state.lock();
        if st.is_shutdown {
            return Err(Error::ShutDown);
        }
        if st.is_full() {
            return Err(Error::Full);
        }
        self.do_put(st, item);
        Ok(())
    }

    pub(crate) fn get(&self) -> Result<C::Item> {
        self.get_until(Deadline::NEVER)
    }

    pub(crate) fn get_timeout(&self, timeout: Duration) -> Result<C::Item> {
        self.get_until(Deadline::after(timeout))
    }

    pub(crate) fn get_nowait(&self) -> Result<C::Item> {
        let st = self.state.lock();
        if st.items.len() == 0 {
            return Err(if st.is_shutdown { Error::ShutDown } else { Error::Empty });
        }
        self.do_get(st)
    }

    pub(crate) fn qsize(&self) -> usize {
        self.state.lock().items.len()
    }

    pub(crate) fn full(&self) -> bool {
        self.state.lock().is_full()
    }

    pub(crate) fn maxsize(&self) -> usize {
        self.state.lock().maxsize
    }

    pub(crate) fn set_maxsize(&self, maxsize: usize) {
        let mut st = self.state.lock();
        st.maxsize = maxsize;
        // Room may have appeared (or the bound was lifted); putters re-check.
        let wake = st.sleeping_putters > 0;
        drop(st);
        if wake {
            self.not_full.notify_all();
        }
    }

    pub(crate) fn task_done(&self) -> Result<()> {
        let mut st = self.state.lock();
        if st.unfinished_tasks == 0 {
            return Err(Error::TaskDoneTooManyTimes);
        }
        st.unfinished_tasks -= 1;
        if st.unfinished_tasks == 0 {
            self.all_tasks_done.notify_all();
        }
        Ok(())
    }

    pub(crate) fn join(&self) {
        let mut st = self.state.lock();
        while st.unfinished_tasks > 0 {
            self.all_tasks_done.wait(&mut st);
        }
    }

    pub(crate) fn join_timeout(&self, timeout: Duration) -> Result<()> {
        let deadline = Deadline::after(timeout);
        let mut st = self.state.lock();
        while st.unfinished_tasks > 0 {
            if wait_on(&self.all_tasks_done, &mut st, deadline) && st.unfinished_tasks > 0 {
                return Err(Error::Timeout);
            }
        }
        Ok(())
    }

    pub(crate) fn unfinished_tasks(&self) -> usize {
        self.state.lock().unfinished_tasks
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.state.lock().is_shutdown
    }

    pub(crate) fn shutdown(&self, immediate: bool) {
        let mut st = self.state.lock();
        st.is_shutdown = true;
        self.shutdown_hint.store(true, Ordering::Relaxed);
        // Dropped after the lock is released: an item's `Drop` may touch this queue.
        let mut dropped = None;
        if immediate {
            let n = st.items.len();
            st.unfinished_tasks = st.unfinished_tasks.saturating_sub(n);
            dropped = Some(mem::take(&mut st.items));
            self.len_hint.store(0, Ordering::Relaxed);
            self.all_tasks_done.notify_all();
        }
        self.not_empty.notify_all();
        self.not_full.notify_all();
        drop(st);
        drop(dropped);
    }
}
