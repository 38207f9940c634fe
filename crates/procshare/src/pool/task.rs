//! How a caller learns what became of its tasks: [`TaskError`], the [`Job`] every submission
//! delivers into (the one latch of the pool: blocking waits and iterators all wait on it), and
//! [`TaskHandle`], `apply_async`'s `AsyncResult`.

use super::core::Core;
use crate::codec;
use crate::error::{Error, Result};
use parking_lot::{Condvar, Mutex};
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a [`Pool`](crate::Pool) task did not give a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The task panicked (its message, and where); it is not rerun, and its worker lives on.
    #[error("the task panicked: {0}")]
    Panicked(String),
    /// The task's worker died while running it, on each of `attempts` runs (1 + the pool's
    /// `retries`): `pid` is the last worker's, `signal` the signal that killed it (`None`: it
    /// exited).
    #[error("the worker running the task died (pid {pid}, {}) on each of {attempts} attempt(s)",
        match signal { Some(s) => format!("signal {s}"), None => "exited".to_string() })]
    WorkerDied {
        /// The pid of the worker that died last.
        pid: u32,
        /// The signal that killed it, if one did.
        signal: Option<i32>,
        /// How many times the task was started (each ending in its worker's death).
        attempts: u32,
    },
    /// The task ran longer than the pool's `task_timeout`; its worker was killed and replaced.
    #[error("the task ran past the pool's task_timeout; its worker was killed")]
    TimedOut,
    /// [`TaskHandle::cancel`] (or dropping an unfinished iterator) ended the task.
    #[error("the task was cancelled")]
    Cancelled,
    /// The task's argument or result could not be encoded or decoded.
    #[error("the task's argument or result could not be encoded or decoded: {0}")]
    Codec(String),
    /// The pool was terminated or dropped before the task finished.
    #[error("the pool was terminated before the task finished")]
    Shutdown,
    /// The pool cannot run tasks: its workers keep dying before they are ready (in the
    /// initializer), so it stopped starting them.
    #[error("the pool is broken: {0}")]
    Broken(String),
}

/// What a task came to: its result's encoding, or why there is none.
pub(crate) type Outcome = std::result::Result<Vec<u8>, TaskError>;

/// The outcomes of one submission (one `apply_async`, one `map`), as they arrive.
///
/// Delivery (the collector thread, or a caller that cancels) pushes `(index, outcome)` under
/// the lock and wakes waiters only when as many outcomes are there as they asked for (`want`),
/// so a `map` of 100,000 items wakes its caller once, an `imap` once per item it waits for.
pub(crate) struct Job {
    state: Mutex<JobState>,
    cond: Condvar,
}

struct JobState {
    /// Outcomes delivered and not yet taken, in the order they finished.
    done: VecDeque<(usize, Outcome)>,
    /// Wake waiters once `done` holds this many.
    want: usize,
    /// How many outcomes are still to come.
    remaining: usize,
}

impl Job {
    pub(crate) fn new(total: usize) -> Arc<Job> {
        Arc::new(Job {
            state: Mutex::new(JobState {
                done: VecDeque::new(),
                want: usize::MAX,
                remaining: total,
            }),
            cond: Condvar::new(),
        })
    }

    /// Delivers one task's outcome.
    pub(crate) fn deliver(&self, index: usize, outcome: Outcome) {
        self.deliver_many(std::iter::once((index, outcome)));
    }

    /// Delivers several outcomes under one lock, waking waiters at most once.
    pub(crate) fn deliver_many(&self, outcomes: impl Iterator<Item = (usize, Outcome)>) {
        let mut s = self.state.lock();
        for o in outcomes {
            s.remaining = s.remaining.saturating_sub(1);
            s.done.push_back(o);
        }
        if s.done.len() >= s.want {
            s.want = usize::MAX;
            self.cond.notify_all();
        }
    }

    /// Waits until at least `n` outcomes (at most what is still to come) are there or
    /// `deadline` passes, then hands every delivered outcome to `take`. Returns whether
    /// `n` were there.
    pub(crate) fn wait(
        &self,
        n: usize,
        deadline: Option<Instant>,
        take: &mut dyn FnMut(usize, Outcome),
    ) -> bool {
        let mut s = self.state.lock();
        let n = n.min(s.done.len() + s.remaining);
        while s.done.len() < n {
            s.want = n;
            match deadline {
                None => self.cond.wait(&mut s),
                Some(d) => {
                    if self.cond.wait_until(&mut s, d).timed_out() && s.done.len() < n {
                        return false;
                    }
                }
            }
        }
        for (i, o) in s.done.drain(..) {
            take(i, o);
        }
        true
    }

    /// Whether an outcome is waiting to be taken, or nothing is to come.
    pub(crate) fn has_outcome(&self) -> bool {
        let s = self.state.lock();
        !s.done.is_empty() || s.remaining == 0
    }
}

/// Decodes a task's outcome into its result.
pub(crate) fn decode_outcome<R: DeserializeOwned>(
    outcome: Outcome,
) -> std::result::Result<R, TaskError> {
    let bytes = outcome?;
    codec::decode(&bytes).map_err(|e| TaskError::Codec(format!("the result did not decode: {e}")))
}

/// The pending result of [`Pool::apply_async`](crate::Pool::apply_async) (Python's
/// `AsyncResult`).
///
/// ```no_run
/// fn square(x: u64) -> u64 { x * x }
/// let pool = procshare::Pool::new(2)?;
/// let h = pool.apply_async(square, 7)?;
/// assert_eq!(h.get()?, 49);
/// # Ok::<(), procshare::Error>(())
/// ```
///
/// A handle outliving its pool ends [`TaskError::Shutdown`] (dropping the pool terminates it).
pub struct TaskHandle<R> {
    core: Arc<Core>,
    job: Arc<Job>,
    id: u64,
    /// The outcome, once taken from the job.
    got: Mutex<Option<Outcome>>,
    _result: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for TaskHandle<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskHandle").field("id", &self.id).field("ready", &self.ready()).finish()
    }
}

impl<R> TaskHandle<R> {
    pub(crate) fn new(core: Arc<Core>, job: Arc<Job>, id: u64) -> TaskHandle<R> {
        TaskHandle { core, job, id, got: Mutex::new(None), _result: PhantomData }
    }

    /// Whether the task has finished (`get` will not block).
    pub fn ready(&self) -> bool {
        self.got.lock().is_some() || self.job.has_outcome()
    }

    /// Waits at most `t` for the task to finish; `true`: it has (`get` will not block).
    pub fn wait_timeout(&self, t: Duration) -> bool {
        let mut got = self.got.lock();
        if got.is_some() {
            return true;
        }
        let deadline = Instant::now().checked_add(t);
        self.job.wait(1, deadline, &mut |_, o| *got = Some(o))
    }

    /// Ends the task if it has not finished: a queued task is removed (it never runs), a
    /// running one has its worker killed and replaced. Then the task's outcome is
    /// [`TaskError::Cancelled`]. `false` if it had finished already.
    pub fn cancel(&self) -> bool {
        if self.got.lock().is_some() {
            return false;
        }
        self.core.cancel(self.id)
    }

    fn take(self) -> Outcome {
        let got = self.got.lock().take();
        match got {
            Some(o) => o,
            None => {
                let mut out = None;
                self.job.wait(1, None, &mut |_, o| out = Some(o));
                out.unwrap_or(Err(TaskError::Shutdown))
            }
        }
    }
}

impl<R: DeserializeOwned> TaskHandle<R> {
    /// Waits for the task and returns its result; a failed task is `Err(Error::Task(..))`.
    pub fn get(self) -> Result<R> {
        decode_outcome(self.take()).map_err(Error::Task)
    }
}
