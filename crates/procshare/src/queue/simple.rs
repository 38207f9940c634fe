//! `SimpleQueue<T>` — `multiprocessing.SimpleQueue`: put, get, empty, close.

use super::queue::Queue;
use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Python's `multiprocessing.SimpleQueue`: an unbounded [`Queue`] with the small surface
/// (`put`, `get`, `empty`, `close`). Same shared-memory ring, same crash guarantees.
///
/// After [`SimpleQueue::close`], this handle's `put` and `get` return `Err(Closed)` (Python
/// raises `OSError`); other handles are unaffected.
///
/// ```no_run
/// use procshare::{Process, SimpleQueue};
/// procshare::init();
/// let q = SimpleQueue::new()?;
/// let mut p = Process::spawn(q.clone(), |q| q.put(42u32).unwrap())?;
/// assert_eq!(q.get()?, 42);
/// p.join()?;
/// # Ok::<(), procshare::Error>(())
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct SimpleQueue<T> {
    queue: Queue<T>,
}

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// A new, empty queue.
    ///
    /// ```
    /// let q = procshare::SimpleQueue::<String>::new()?;
    /// assert!(q.empty());
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        Ok(SimpleQueue { queue: Queue::new()? })
    }

    /// Puts `item` (serialized here: encoding errors are returned). Never blocks.
    ///
    /// ```
    /// let q = procshare::SimpleQueue::new()?;
    /// q.put((1, "one".to_string()))?;
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn put(&self, item: T) -> Result<()> {
        self.queue.put(item)
    }

    /// Removes and returns the oldest item, waiting for one.
    ///
    /// ```
    /// let q = procshare::SimpleQueue::new()?;
    /// q.put(3)?;
    /// assert_eq!(q.get()?, 3);
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn get(&self) -> Result<T> {
        if self.queue.is_closed() {
            return Err(Error::Closed);
        }
        self.queue.get()
    }

    /// Whether the queue holds no item.
    ///
    /// ```
    /// let q = procshare::SimpleQueue::new()?;
    /// q.put(())?;
    /// assert!(!q.empty());
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn empty(&self) -> bool {
        self.queue.empty()
    }

    /// This handle can no longer put or get; idempotent.
    ///
    /// ```
    /// let q = procshare::SimpleQueue::<u8>::new()?;
    /// q.close();
    /// assert!(q.put(1).is_err());
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn close(&self) {
        self.queue.close();
    }
}
