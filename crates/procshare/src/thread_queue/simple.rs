//! `SimpleQueue`: Python's `queue.SimpleQueue` — an unbounded FIFO whose `put` never blocks
//! and never fails.
//!
//! Two locks, so producers and consumers rarely meet (after Michael & Scott's two-lock
//! queue, with batches instead of nodes):
//!
//! ```text
//!   put ──► [ tail: Mutex<VecDeque> ]      producers push here
//!                  │  swap the whole buffer when `head` runs dry (O(1))
//!                  ▼
//!   get ◄── [ head: Mutex<VecDeque> ]      consumers pop here
//! ```
//!
//! A consumer takes from `head`; only when `head` is empty does it lock `tail` and swap the
//! two buffers, taking every item put so far in one step. Items are handed out in put order:
//! everything in `head` was put before everything in `tail`. Lock order is always `head`
//! then `tail`. A consumer that finds both empty sleeps on `not_empty` (paired with the
//! `tail` mutex) after releasing `head`, so other consumers' `get_nowait` never waits behind
//! a sleeper.

use std::collections::VecDeque;
use std::fmt;
use std::mem;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use parking_lot::{Condvar, Mutex};

use super::core::wait_on;
use crate::error::{Error, Result};
use crate::sync::backoff::Backoff;
use crate::sys::deadline::Deadline;

/// The producers' side.
struct Tail<T> {
    items: VecDeque<T>,
    /// Consumers asleep on `not_empty`; `put` notifies only when there are some.
    sleepers: usize,
}

/// An unbounded first-in, first-out queue between threads: Python's `queue.SimpleQueue`.
///
/// `put` never blocks and never fails; there is no `maxsize`, `task_done`, `join` or
/// `shutdown`. `Send + Sync` when `T: Send`; share it with `Arc`. With one producer and one
/// consumer the order is exact; with many, each item is delivered to exactly one consumer.
///
/// ```
/// use procshare::thread_queue::SimpleQueue;
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let q = Arc::new(SimpleQueue::new());
/// let producer = {
///     let q = Arc::clone(&q);
///     std::thread::spawn(move || (0..100).for_each(|i| q.put(i)))
/// };
/// let got: Vec<i32> = (0..100).map(|_| q.get().unwrap()).collect();
/// producer.join().unwrap();
/// assert_eq!(got, (0..100).collect::<Vec<_>>());
/// assert!(q.get_timeout(Duration::from_millis(1)).is_err()); // Err(Empty)
/// ```
pub struct SimpleQueue<T> {
    head: CachePadded<Mutex<VecDeque<T>>>,
    tail: CachePadded<Mutex<Tail<T>>>,
    /// `tail.items.len()`, stored under the `tail` lock, read without it by consumers that
    /// spin before sleeping (Relaxed both ways: a hint only, the decision is re-made under
    /// the lock).
    tail_len: CachePadded<AtomicUsize>,
    not_empty: Condvar,
}

impl<T> SimpleQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        SimpleQueue {
            head: CachePadded::new(Mutex::new(VecDeque::new())),
            tail: CachePadded::new(Mutex::new(Tail { items: VecDeque::new(), sleepers: 0 })),
            tail_len: CachePadded::new(AtomicUsize::new(0)),
            not_empty: Condvar::new(),
        }
    }

    /// Put an item at the back. Never blocks (beyond a short lock), never fails.
    pub fn put(&self, item: T) {
        let mut tail = self.tail.lock();
        tail.items.push_back(item);
        self.tail_len.store(tail.items.len(), Ordering::Relaxed);
        let wake = tail.sleepers > 0;
        drop(tail);
        if wake {
            self.not_empty.notify_one();
        }
    }

    /// `put`, under Python's other name; never fails.
    pub fn put_nowait(&self, item: T) {
        self.put(item)
    }

    /// Take an item if there is one now.
    fn try_take(&self) -> Option<T> {
        let mut head = self.head.lock();
        if let Some(item) = head.pop_front() {
            return Some(item);
        }
        let mut tail = self.tail.lock();
        if tail.items.is_empty() {
            return None;
        }
        // `head` is empty, so `tail` keeps its (emptied) allocation for the next puts.
        mem::swap(&mut *head, &mut tail.items);
        self.tail_len.store(0, Ordering::Relaxed);
        drop(tail);
        head.pop_front()
    }

    /// Take the next item, waiting until `deadline`.
    fn take_until(&self, deadline: Deadline) -> Result<T> {
        if let Some(item) = self.try_take() {
            return Ok(item);
        }
        let backoff = Backoff::new();
        while !backoff.is_completed() && !deadline.expired() {
            if self.tail_len.load(Ordering::Relaxed) > 0 {
                if let Some(item) = self.try_take() {
                    return Ok(item);
                }
            }
            backoff.snooze();
        }
        loop {
            if let Some(item) = self.try_take() {
                return Ok(item);
            }
            // Both were empty a moment ago. Sleep only if `tail` is still empty under its
            // lock; `head` can only be refilled from `tail`, so nothing can be missed.
            let mut tail = self.tail.lock();
            if tail.items.is_empty() {
                tail.sleepers += 1;
                let timed_out = wait_on(&self.not_empty, &mut tail, deadline);
                tail.sleepers -= 1;
                if timed_out && tail.items.is_empty() {
                    drop(tail);
                    // One last look: another consumer may have left items in `head`.
                    return self.try_take().ok_or(Error::Empty);
                }
            }
        }
    }

    /// Take the next item, waiting for one. Never fails (the `Result` matches the other
    /// queues: a `SimpleQueue` has no shutdown).
    pub fn get(&self) -> Result<T> {
        self.take_until(Deadline::NEVER)
    }

    /// Take the next item, waiting at most `timeout`, else [`Error::Empty`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.take_until(Deadline::after(timeout))
    }

    /// Take the next item if there is one now, else [`Error::Empty`].
    pub fn get_nowait(&self) -> Result<T> {
        self.try_take().ok_or(Error::Empty)
    }

    /// The number of items now (another thread may change it at once).
    pub fn qsize(&self) -> usize {
        let head = self.head.lock();
        let tail = self.tail.lock();
        head.len() + tail.items.len()
    }

    /// `qsize() == 0`.
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }
}

impl<T> Default for SimpleQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleQueue").field("qsize", &self.qsize()).finish()
    }
}
