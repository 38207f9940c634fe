//! Queues between threads — Python's `queue` module and `collections.deque`.
//!
//! | Python | procshare |
//! |---|---|
//! | `queue.Queue(maxsize)` | [`Queue::bounded`] (`Queue::new()` is unbounded) |
//! | `queue.LifoQueue` | [`LifoQueue`] |
//! | `queue.PriorityQueue` | [`PriorityQueue`] (stable: equal items in put order) |
//! | `queue.SimpleQueue` | [`SimpleQueue`] |
//! | `collections.deque(maxlen=n)` | [`Deque::with_maxlen`] |
//! | `put(x, block=False)` / `get(block=False)` | `put_nowait` / `get_nowait` |
//! | `put(x, timeout=t)` / `get(timeout=t)` | `put_timeout` / `get_timeout` |
//! | `queue.Full` / `queue.Empty` / `queue.ShutDown` | [`Error::Full`] / [`Error::Empty`] / [`Error::ShutDown`] |
//! | `ValueError` from `task_done()` | [`Error::TaskDoneTooManyTimes`] |
//!
//! These are plain in-process structures (no serialization); they are not shared with child
//! processes — use [`crate::queue`] for that. A spawned child gets nothing of them (they are
//! not procshare handles and cannot be `Process` arguments); a forked child gets a private
//! copy of the memory, including items, but none of the parent's other threads — a lock some
//! other thread held at the fork stays held in the child, so do not touch a thread queue in a
//! child forked while other threads used it. `Queue`, `LifoQueue` and `PriorityQueue` are
//! one core (CPython's mutex and three conditions) over three containers, so they behave
//! identically apart from the order of `get`.
//!
//! # `task_done`, `join` and `shutdown` (Python 3.13)
//!
//! Every `put` counts an unfinished task; `task_done` settles one; `join` waits until none
//! are left. `shutdown(false)` refuses new items and lets consumers drain the rest, after
//! which `get` fails with [`Error::ShutDown`]; `shutdown(true)` also drops the items left
//! (settling their tasks) so a `join` returns once the items already taken are done:
//!
//! ```
//! use procshare::{thread_queue::Queue, Error};
//!
//! let q = Queue::new();
//! q.put("a").unwrap();
//! q.put("b").unwrap();
//! assert_eq!(q.get().unwrap(), "a");
//! q.shutdown(true); // "b" is dropped
//! assert!(matches!(q.put("c"), Err(Error::ShutDown)));
//! assert!(matches!(q.get(), Err(Error::ShutDown)));
//! assert_eq!(q.unfinished_tasks(), 1); // "a" was taken before the shutdown
//! q.task_done().unwrap();
//! q.join(); // returns at once
//! ```
//!
//! # Differences from Python
//! - `bounded(0)` is unbounded, as `maxsize=0` is in Python.
//! - Timeouts are [`Duration`](std::time::Duration)s, so Python's `ValueError` for a negative
//!   timeout cannot happen; a timeout too large to represent waits forever.
//! - `PriorityQueue` is stable (Python's heap is not), and compares with `Ord`, so an item
//!   that cannot be compared is a compile error rather than a `TypeError`.
//! - An `Ord` or `Drop` that panics leaves the queue usable (the lock does not poison).
//! - Extras: `join_timeout`, `maxsize`/`set_maxsize` (Python's mutable `maxsize`),
//!   `is_shutdown`, `Deque::to_vec`.

mod core;
mod deque;
mod queues;
mod simple;

pub use deque::Deque;
pub use queues::{LifoQueue, PriorityQueue, Queue};
pub use simple::SimpleQueue;

#[allow(unused_imports)] // links in the docs above
use crate::error::Error;
