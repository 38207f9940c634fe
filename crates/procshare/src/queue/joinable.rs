//! `JoinableQueue<T>` — a [`Queue`] that also counts unfinished tasks across processes.

use super::queue::Queue;
use super::ring::Ring;
use crate::codec::Format;
use crate::error::{Error, Result};
use crate::sys::deadline::Deadline;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const POLL: Duration = Duration::from_millis(50);

/// Python's `multiprocessing.JoinableQueue`: every method of [`Queue`] (through `Deref`), plus
/// [`task_done`](JoinableQueue::task_done) and [`join`](JoinableQueue::join).
///
/// The count of unfinished tasks lives in shared memory: items put (by any process) minus
/// `task_done` calls (by any process). An item whose producer was killed before its `put`
/// finished never counts; an item taken by a consumer that is then killed stays unfinished
/// (nobody can call `task_done` for it), so `join` would wait for it — use `join_timeout`
/// where consumers may die.
///
/// ```no_run
/// use procshare::{JoinableQueue, Process};
/// procshare::init();
/// let q: JoinableQueue<u64> = JoinableQueue::new()?;
/// let mut worker = Process::spawn(q.clone(), |q| {
///     while let Ok(n) = q.get() {
///         let _ = n * n;
///         q.task_done().unwrap();
///     }
/// })?;
/// for n in 0..100 {
///     q.put(n)?;
/// }
/// q.join()?; // every item processed
/// worker.kill()?;
/// # Ok::<(), procshare::Error>(())
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<T> std::ops::Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// An unbounded joinable queue.
    ///
    /// ```
    /// let q = procshare::JoinableQueue::<u8>::new()?;
    /// q.join()?; // nothing unfinished
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        Ok(JoinableQueue { queue: Queue::with_ring(Ring::create(0)?)? })
    }

    /// A joinable queue holding at most `maxsize` items.
    ///
    /// ```
    /// let q = procshare::JoinableQueue::<u8>::bounded(4)?;
    /// assert_eq!(q.maxsize(), 4);
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn bounded(maxsize: usize) -> Result<Self> {
        Ok(JoinableQueue { queue: Queue::with_ring(Ring::create(maxsize)?)? })
    }

    /// A new named joinable queue (see [`Queue::create_named`]): the count of unfinished tasks
    /// lives in the queue, so every process that opens it by name shares it.
    ///
    /// ```
    /// use procshare::{Format, JoinableQueue};
    /// # let name = format!("doc_jq{}", std::process::id());
    /// let q = JoinableQueue::<u32>::create_named(&name, 0, Format::Native)?;
    /// let worker = JoinableQueue::<u32>::open(&name)?;
    /// q.put(1)?;
    /// worker.get()?;
    /// worker.task_done()?;
    /// q.join()?;
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn create_named(name: &str, maxsize: usize, format: Format) -> Result<Self> {
        Ok(JoinableQueue { queue: Queue::create_named(name, maxsize, format)? })
    }

    /// Opens the named queue `name` as a joinable queue (see [`Queue::open`]).
    pub fn open(name: &str) -> Result<Self> {
        Ok(JoinableQueue { queue: Queue::open(name)? })
    }

    /// Marks one item taken with `get` as processed. `Err(TaskDoneTooManyTimes)` if more calls
    /// were made than items put.
    ///
    /// ```
    /// let q = procshare::JoinableQueue::new()?;
    /// q.put(1)?;
    /// q.get()?;
    /// q.task_done()?;
    /// assert!(matches!(q.task_done(), Err(procshare::Error::TaskDoneTooManyTimes)));
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn task_done(&self) -> Result<()> {
        if self.queue.ring().task_done() {
            Ok(())
        } else {
            Err(Error::TaskDoneTooManyTimes)
        }
    }

    /// Items put and not yet marked done (in any process).
    ///
    /// ```
    /// let q = procshare::JoinableQueue::new()?;
    /// q.put('x')?;
    /// assert_eq!(q.unfinished_tasks(), 1);
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn unfinished_tasks(&self) -> usize {
        self.queue.ring().unfinished() as usize
    }

    /// Waits until every item put has been marked done.
    ///
    /// ```
    /// let q = procshare::JoinableQueue::new()?;
    /// q.put(1)?;
    /// q.get()?;
    /// q.task_done()?;
    /// q.join()?;
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn join(&self) -> Result<()> {
        self.join_until(Deadline::NEVER)
    }

    /// Like [`JoinableQueue::join`], but `Err(Timeout)` after `t`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = procshare::JoinableQueue::new()?;
    /// q.put(1)?;
    /// assert!(matches!(q.join_timeout(Duration::from_millis(10)), Err(procshare::Error::Timeout)));
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn join_timeout(&self, t: Duration) -> Result<()> {
        self.join_until(Deadline::after(t))
    }

    fn join_until(&self, deadline: Deadline) -> Result<()> {
        let ring = self.queue.ring();
        // In slices: a consumer that dies skipping a record may not wake us; and after an
        // immediate shutdown, the items of puts that were under way then are ours to discard.
        ring.join_signal()
            .wait_sliced(
                deadline,
                POLL,
                |_| ring.unfinished() == 0,
                |_| {
                    if ring.is_shut_down_immediately() {
                        let _ = ring.discard();
                    }
                    (ring.unfinished() == 0).then_some(())
                },
            )
            .ok_or(Error::Timeout)
    }
}
