//! `Queue`, `LifoQueue` and `PriorityQueue`: thin public faces over the one [`Core`], which
//! differ only in their [`Container`](super::core::Container).

use std::fmt;
use std::time::Duration;

use super::core::{Core, Fifo, Lifo, Priority};
use crate::error::Result;

/// Declares one public queue type over `Core<$container<T>>` with Python's `queue` surface.
macro_rules! thread_queue {
    (
        $(#[$meta:meta])*
        $name:ident, $container:ident $(, $bound:path)?
    ) => {
        $(#[$meta])*
        pub struct $name<T> {
            core: Core<$container<T>>,
        }

        impl<T $(: $bound)?> $name<T> {
            /// An unbounded queue: `put` never blocks (Python's `maxsize=0`).
            pub fn new() -> Self {
                Self { core: Core::new(0) }
            }

            /// A queue holding at most `maxsize` items: `put` blocks while it is full.
            ///
            /// `bounded(0)` is unbounded, as Python's `maxsize=0` is (there is no
            /// zero-capacity rendezvous queue). A huge `maxsize` costs nothing up front: room is
            /// allocated as items arrive.
            pub fn bounded(maxsize: usize) -> Self {
                Self { core: Core::new(maxsize) }
            }

            /// Put an item, waiting for room if the queue is bounded and full.
            ///
            /// Fails only with [`Error::ShutDown`](crate::Error::ShutDown): at once if the queue
            /// was shut down, or when a shutdown wakes this blocked `put`.
            pub fn put(&self, item: T) -> Result<()> {
                self.core.put(item)
            }

            /// Put an item, waiting at most `timeout` for room: [`Error::Full`](crate::Error::Full)
            /// when the time runs out, [`Error::ShutDown`](crate::Error::ShutDown) as for `put`.
            pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<()> {
                self.core.put_timeout(item, timeout)
            }

            /// Put an item only if there is room now, else [`Error::Full`](crate::Error::Full).
            /// A shut-down queue gives [`Error::ShutDown`](crate::Error::ShutDown) even when
            /// not full.
            pub fn put_nowait(&self, item: T) -> Result<()> {
                self.core.put_nowait(item)
            }

            /// Take the next item, waiting for one.
            ///
            /// After a `shutdown(false)` the remaining items are still handed out; once the
            /// queue is empty (or at once after `shutdown(true)`) this gives
            /// [`Error::ShutDown`](crate::Error::ShutDown), and blocked getters wake with it.
            pub fn get(&self) -> Result<T> {
                self.core.get()
            }

            /// Take the next item, waiting at most `timeout`: [`Error::Empty`](crate::Error::Empty)
            /// when the time runs out, [`Error::ShutDown`](crate::Error::ShutDown) as for `get`.
            pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
                self.core.get_timeout(timeout)
            }

            /// Take the next item if there is one now, else [`Error::Empty`](crate::Error::Empty)
            /// ([`Error::ShutDown`](crate::Error::ShutDown) if shut down and empty).
            pub fn get_nowait(&self) -> Result<T> {
                self.core.get_nowait()
            }

            /// The number of items now (another thread may change it at once).
            pub fn qsize(&self) -> usize {
                self.core.qsize()
            }

            /// `qsize() == 0`.
            pub fn empty(&self) -> bool {
                self.qsize() == 0
            }

            /// Bounded and holding `maxsize` items or more; never true when unbounded.
            pub fn full(&self) -> bool {
                self.core.full()
            }

            /// The bound; 0 means unbounded.
            pub fn maxsize(&self) -> usize {
                self.core.maxsize()
            }

            /// Change the bound at run time, as assigning Python's `q.maxsize` does. Items
            /// already in the queue stay; a smaller bound makes `put` wait until enough are
            /// taken, a larger one wakes blocked putters.
            pub fn set_maxsize(&self, maxsize: usize) {
                self.core.set_maxsize(maxsize)
            }

            /// Say that an item taken with `get` has been processed; when every item put has
            /// been, `join` returns.
            /// [`Error::TaskDoneTooManyTimes`](crate::Error::TaskDoneTooManyTimes) when called
            /// more often than items were put (the count is left unchanged). Never
            /// `ShutDown`.
            pub fn task_done(&self) -> Result<()> {
                self.core.task_done()
            }

            /// Wait until every item put has been marked with `task_done` (or dropped by
            /// `shutdown(true)`). Returns at once on a fresh queue; may be called again.
            pub fn join(&self) {
                self.core.join()
            }

            /// `join`, giving up with [`Error::Timeout`](crate::Error::Timeout) after
            /// `timeout`.
            pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
                self.core.join_timeout(timeout)
            }

            /// Items put and not yet marked with `task_done`.
            pub fn unfinished_tasks(&self) -> usize {
                self.core.unfinished_tasks()
            }

            /// Shut the queue down, as Python 3.13's `Queue.shutdown(immediate)`.
            ///
            /// Every later `put` fails with `ShutDown`, and blocked putters wake with it.
            /// - `immediate == false`: `get` keeps handing out the items left, then fails with
            ///   `ShutDown`; `join` still needs a `task_done` per item.
            /// - `immediate == true`: the items left are dropped and `unfinished_tasks`
            ///   lowered by their number, so `join` returns once the items already taken are
            ///   done; every `get` fails with `ShutDown` at once.
            ///
            /// One-way and idempotent; a soft shutdown can be upgraded to an immediate one.
            pub fn shutdown(&self, immediate: bool) {
                self.core.shutdown(immediate)
            }

            /// Whether `shutdown` has been called.
            pub fn is_shutdown(&self) -> bool {
                self.core.is_shutdown()
            }
        }

        impl<T $(: $bound)?> Default for $name<T> {
            fn default() -> Self {
                Self::new()
            }
        }

        impl<T $(: $bound)?> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("qsize", &self.qsize())
                    .field("maxsize", &self.maxsize())
                    .field("unfinished_tasks", &self.unfinished_tasks())
                    .field("is_shutdown", &self.is_shutdown())
                    .finish()
            }
        }
    };
}

thread_queue! {
    /// A first-in, first-out queue between threads: Python's `queue.Queue`.
    ///
    /// Share it with `Arc`; it is `Send + Sync` when `T: Send`. Items come out in the order
    /// they were put. See the [module docs](super) for shutdown and `task_done`/`join`.
    ///
    /// ```
    /// use procshare::thread_queue::Queue;
    /// use std::sync::Arc;
    ///
    /// let q = Arc::new(Queue::bounded(2));
    /// let consumer = {
    ///     let q = Arc::clone(&q);
    ///     std::thread::spawn(move || {
    ///         let mut got = Vec::new();
    ///         while let Ok(x) = q.get() {
    ///             got.push(x);
    ///             q.task_done().unwrap();
    ///         }
    ///         got
    ///     })
    /// };
    /// for i in 0..5 {
    ///     q.put(i).unwrap(); // blocks while 2 items wait
    /// }
    /// q.join(); // every item processed
    /// q.shutdown(false); // the consumer's next get() is Err(ShutDown)
    /// assert_eq!(consumer.join().unwrap(), vec![0, 1, 2, 3, 4]);
    /// ```
    Queue, Fifo
}

thread_queue! {
    /// A last-in, first-out queue (a stack) between threads: Python's `queue.LifoQueue`.
    ///
    /// The same surface as [`Queue`]; `get` takes the item put last.
    ///
    /// ```
    /// use procshare::thread_queue::LifoQueue;
    ///
    /// let q = LifoQueue::new();
    /// for x in [111, 333, 222] {
    ///     q.put(x).unwrap();
    /// }
    /// let order: Vec<i32> = (0..3).map(|_| q.get().unwrap()).collect();
    /// assert_eq!(order, [222, 333, 111]);
    /// ```
    LifoQueue, Lifo
}

thread_queue! {
    /// A priority queue between threads: Python's `queue.PriorityQueue`.
    ///
    /// The same surface as [`Queue`]; `get` takes the smallest item. Unlike Python's (a
    /// plain `heapq`, which promises nothing about ties), equal items come out in the order
    /// they were put, so `(priority, payload)` pairs need no tie-breaking counter — though
    /// with tuples `Ord` compares the payload too; wrap it in a type whose `Ord` looks at the
    /// priority only if put order should decide among equal priorities.
    ///
    /// ```
    /// use procshare::thread_queue::PriorityQueue;
    ///
    /// let q = PriorityQueue::new();
    /// for x in [111, 333, 222] {
    ///     q.put(x).unwrap();
    /// }
    /// let order: Vec<i32> = (0..3).map(|_| q.get().unwrap()).collect();
    /// assert_eq!(order, [111, 222, 333]);
    /// ```
    PriorityQueue, Priority, Ord
}
