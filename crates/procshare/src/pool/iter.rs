//! `imap` and `imap_unordered`: iterators over a job's outcomes as they arrive.

use super::core::Core;
use super::task::{decode_outcome, Job, Outcome, TaskError};
use crate::error::Result;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, VecDeque};
use std::marker::PhantomData;
use std::sync::Arc;

/// What both iterators share: the job, how many outcomes it has, and those taken but not yet
/// yielded.
struct Outcomes {
    core: Arc<Core>,
    job: Option<Arc<Job>>,
    total: usize,
    yielded: usize,
    /// `Err` from the submission itself: yielded once as the first item, then the end.
    failed: Option<TaskError>,
}

impl Outcomes {
    fn new(core: Arc<Core>, submitted: Result<(Arc<Job>, u64, usize)>) -> Outcomes {
        match submitted {
            Ok((job, _, total)) => {
                Outcomes { core, job: Some(job), total, yielded: 0, failed: None }
            }
            Err(e) => {
                let why = match e {
                    crate::Error::Task(t) => t,
                    crate::Error::Codec(m) => TaskError::Codec(m),
                    other => TaskError::Broken(other.to_string()),
                };
                Outcomes { core, job: None, total: 1, yielded: 0, failed: Some(why) }
            }
        }
    }

    fn left(&self) -> usize {
        self.total - self.yielded
    }

    /// Waits for at least one more outcome and hands every delivered one to `take`.
    fn wait_more(&self, take: &mut dyn FnMut(usize, Outcome)) {
        if let Some(job) = &self.job {
            job.wait(1, None, take);
        }
    }
}

impl Drop for Outcomes {
    fn drop(&mut self) {
        if let Some(job) = &self.job {
            if self.yielded < self.total {
                self.core.forget_job(job);
            }
        }
    }
}

/// The results of [`Pool::imap`](crate::Pool::imap), in input order: each item is the task's
/// result or why it failed. `size_hint` is exact. Dropping it early drops the tasks not yet
/// handed to a worker.
pub struct Imap<R> {
    o: Outcomes,
    ahead: BTreeMap<usize, Outcome>,
    _r: PhantomData<fn() -> R>,
}

impl<R> Imap<R> {
    pub(crate) fn new(core: Arc<Core>, submitted: Result<(Arc<Job>, u64, usize)>) -> Imap<R> {
        Imap { o: Outcomes::new(core, submitted), ahead: BTreeMap::new(), _r: PhantomData }
    }
}

impl<R: DeserializeOwned> Iterator for Imap<R> {
    type Item = std::result::Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.o.left() == 0 {
            return None;
        }
        if let Some(why) = self.o.failed.take() {
            self.o.yielded = self.o.total;
            return Some(Err(why));
        }
        let want = self.o.yielded;
        while !self.ahead.contains_key(&want) {
            let ahead = &mut self.ahead;
            self.o.wait_more(&mut |i, out| {
                ahead.insert(i, out);
            });
        }
        self.o.yielded += 1;
        self.ahead.remove(&want).map(decode_outcome)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.o.left(), Some(self.o.left()))
    }
}

impl<R: DeserializeOwned> ExactSizeIterator for Imap<R> {}

/// The results of [`Pool::imap_unordered`](crate::Pool::imap_unordered) as tasks finish:
/// `(input index, outcome)`. `size_hint` is exact.
pub struct ImapUnordered<R> {
    o: Outcomes,
    ready: VecDeque<(usize, Outcome)>,
    _r: PhantomData<fn() -> R>,
}

impl<R> ImapUnordered<R> {
    pub(crate) fn new(
        core: Arc<Core>,
        submitted: Result<(Arc<Job>, u64, usize)>,
    ) -> ImapUnordered<R> {
        ImapUnordered { o: Outcomes::new(core, submitted), ready: VecDeque::new(), _r: PhantomData }
    }
}

impl<R: DeserializeOwned> Iterator for ImapUnordered<R> {
    type Item = (usize, std::result::Result<R, TaskError>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.o.left() == 0 {
            return None;
        }
        if let Some(why) = self.o.failed.take() {
            self.o.yielded = self.o.total;
            return Some((0, Err(why)));
        }
        while self.ready.is_empty() {
            let ready = &mut self.ready;
            self.o.wait_more(&mut |i, out| ready.push_back((i, out)));
        }
        self.o.yielded += 1;
        self.ready.pop_front().map(|(i, o)| (i, decode_outcome(o)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.o.left(), Some(self.o.left()))
    }
}

impl<R: DeserializeOwned> ExactSizeIterator for ImapUnordered<R> {}
