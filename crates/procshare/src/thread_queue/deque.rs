//! `Deque`: Python's `collections.deque` — appends and pops at both ends, each one atomic,
//! with an optional `maxlen` past which the opposite end is dropped.

use std::collections::VecDeque;
use std::fmt;

use parking_lot::Mutex;

/// How many items a bounded deque allocates room for up front.
const PREALLOC_LIMIT: usize = 1024;

/// A double-ended queue shared between threads: Python's `collections.deque`.
///
/// Each operation is atomic; compound check-then-act sequences (`is_empty` then `pop`) are
/// not, exactly as in Python — use the `Option` that `pop` returns instead. A deque made with
/// [`with_maxlen`](Deque::with_maxlen) never holds more than `maxlen` items: appending to a
/// full one drops an item from the other end (`append` drops the leftmost, `append_left` the
/// rightmost), and `with_maxlen(0)` stays empty. `Send + Sync` when `T: Send`.
///
/// ```
/// use procshare::thread_queue::Deque;
///
/// let last3 = Deque::with_maxlen(3);
/// for i in 1..=5 {
///     last3.append(i);
/// }
/// assert_eq!(last3.to_vec(), [3, 4, 5]);
/// last3.append_left(0); // full: 5 falls off the right
/// assert_eq!(last3.to_vec(), [0, 3, 4]);
/// assert_eq!(last3.pop(), Some(4));
/// assert_eq!(last3.pop_left(), Some(0));
/// assert_eq!(last3.len(), 1);
/// ```
pub struct Deque<T> {
    items: Mutex<VecDeque<T>>,
    maxlen: Option<usize>,
}

impl<T> Deque<T> {
    /// An unbounded deque (`maxlen=None`).
    pub fn new() -> Self {
        Deque { items: Mutex::new(VecDeque::new()), maxlen: None }
    }

    /// A deque of at most `maxlen` items. A huge `maxlen` allocates nothing up front.
    pub fn with_maxlen(maxlen: usize) -> Self {
        Deque {
            items: Mutex::new(VecDeque::with_capacity(maxlen.min(PREALLOC_LIMIT))),
            maxlen: Some(maxlen),
        }
    }

    /// The bound given to [`with_maxlen`](Deque::with_maxlen), `None` if unbounded.
    pub fn maxlen(&self) -> Option<usize> {
        self.maxlen
    }

    /// Add `item` at the right end; if the deque is full, the leftmost item is dropped.
    pub fn append(&self, item: T) {
        let evicted = {
            let mut items = self.items.lock();
            match self.maxlen {
                Some(0) => Some(item),
                Some(max) if items.len() >= max => {
                    let evicted = items.pop_front();
                    items.push_back(item);
                    evicted
                }
                _ => {
                    items.push_back(item);
                    None
                }
            }
        };
        // Dropped outside the lock: its `Drop` may touch this deque.
        drop(evicted);
    }

    /// Add `item` at the left end; if the deque is full, the rightmost item is dropped.
    pub fn append_left(&self, item: T) {
        let evicted = {
            let mut items = self.items.lock();
            match self.maxlen {
                Some(0) => Some(item),
                Some(max) if items.len() >= max => {
                    let evicted = items.pop_back();
                    items.push_front(item);
                    evicted
                }
                _ => {
                    items.push_front(item);
                    None
                }
            }
        };
        drop(evicted);
    }

    /// Remove and return the rightmost item; `None` when empty (Python's `IndexError`).
    pub fn pop(&self) -> Option<T> {
        self.items.lock().pop_back()
    }

    /// Remove and return the leftmost item; `None` when empty.
    pub fn pop_left(&self) -> Option<T> {
        self.items.lock().pop_front()
    }

    /// The number of items now.
    pub fn len(&self) -> usize {
        self.items.lock().len()
    }

    /// `len() == 0`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Remove every item.
    pub fn clear(&self) {
        let old = std::mem::take(&mut *self.items.lock());
        drop(old);
    }

    /// A copy of the items, left to right.
    pub fn to_vec(&self) -> Vec<T>
    where
        T: Clone,
    {
        self.items.lock().iter().cloned().collect()
    }
}

impl<T> Default for Deque<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for Deque<T> {
    /// Python's repr: `deque([7, 8, 9], maxlen=3)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items = self.items.lock();
        write!(f, "deque(")?;
        f.debug_list().entries(items.iter()).finish()?;
        if let Some(max) = self.maxlen {
            write!(f, ", maxlen={max}")?;
        }
        write!(f, ")")
    }
}

impl<T> FromIterator<T> for Deque<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Deque { items: Mutex::new(iter.into_iter().collect()), maxlen: None }
    }
}
