//! `SimpleQueue<T>` — `multiprocessing.SimpleQueue`: put, get, empty, close.

use super::queue::Queue;
use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::Duration;

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
        self.check_open()?;
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

    /// Shuts the queue down for every handle in every process, as [`Queue::shutdown`]: `put` is
    /// `Err(ShutDown)`, `get` drains what is left (nothing with `immediate`) and then returns
    /// `Err(ShutDown)`, and blocked getters wake.
    ///
    /// ```
    /// let q = procshare::SimpleQueue::<u8>::new()?;
    /// q.shutdown(true);
    /// assert!(matches!(q.get(), Err(procshare::Error::ShutDown)));
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn shutdown(&self, immediate: bool) {
        self.queue.shutdown(immediate);
    }

    /// Puts one item given as its encoded bytes (see [`Queue::put_bytes`]).
    pub fn put_bytes(&self, data: &[u8]) -> Result<()> {
        self.queue.put_bytes(data)
    }

    /// Puts encoded bytes only if there is room now (see [`Queue::put_bytes_nowait`]).
    pub fn put_bytes_nowait(&self, data: &[u8]) -> Result<()> {
        self.queue.put_bytes_nowait(data)
    }

    /// Puts encoded bytes, giving up after `timeout` (see [`Queue::put_bytes_timeout`]).
    pub fn put_bytes_timeout(&self, data: &[u8], timeout: Duration) -> Result<()> {
        self.queue.put_bytes_timeout(data, timeout)
    }

    /// Removes the oldest item and returns its encoded bytes (see [`Queue::get_bytes`]).
    pub fn get_bytes(&self) -> Result<Vec<u8>> {
        self.check_open()?;
        self.queue.get_bytes()
    }

    /// [`SimpleQueue::get_bytes`], giving up with `Err(Empty)` after `timeout`.
    pub fn get_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        self.check_open()?;
        self.queue.get_bytes_timeout(timeout)
    }

    /// [`SimpleQueue::get_bytes`] if an item is ready now, else `Err(Empty)`.
    pub fn get_bytes_nowait(&self) -> Result<Vec<u8>> {
        self.check_open()?;
        self.queue.get_bytes_nowait()
    }

    fn check_open(&self) -> Result<()> {
        if self.queue.is_closed() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
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
