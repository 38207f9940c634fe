//! Process pools — `multiprocessing.Pool`, `concurrent.futures.ProcessPoolExecutor` — where a
//! dead worker costs one task, never the pool.
//!
//! ```no_run
//! fn square(x: u64) -> u64 { x * x }
//!
//! fn main() -> procshare::Result<()> {
//!     procshare::init();
//!     let pool = procshare::Pool::builder().processes(2).retries(1).build()?;
//!     assert_eq!(pool.map(square, 0..10u64)?, (0..10u64).map(|x| x * x).collect::<Vec<_>>());
//!     let h = pool.apply_async(square, 12)?;
//!     assert_eq!(h.get()?, 144);
//!     Ok(())
//! }
//! ```
//!
//! # How it is built
//!
//! One more room above `process` and `queue`: workers are procshare processes, tasks and
//! reports travel through procshare queues (crash-safe rings), and the one thing the pool adds
//! in shared memory is the **task table** (`pool/table.rs`), in which each worker names the task
//! it runs before it runs it.
//!
//! ```text
//!  owner process                                             worker processes (spawned)
//!  +---------------------------------------------+
//!  | callers (any thread): submit -> backlog ----+--batch--> inbox[0] --> worker 0 --+
//!  |   dispatch under the state lock: fewest-    |           inbox[1] --> worker 1 --+
//!  |   loaded worker, at most ~2 ms of its work  |                                   |
//!  |   (WINDOW_WORK_NS) beyond the task it runs  |  task table (memfd):              | report per task
//!  |                                             |   slot i: task id + 1, started ns |  (OK | PANICKED
//!  | collector thread: <-------------------------+--- results queue <----------------+   | CODEC | READY)
//!  |   report -> the task's Job (the latch every |         ^
//!  |   handle and iterator waits on); a DIED     |         | DIED (slot, gen, pid, exit code)
//!  |   notice -> the death's decisions           |         |
//!  | reaper thread: poll(pidfds, bell, next   ---+---------+
//!  |   task deadline): starts workers (their parent thread: PR_SET_PDEATHSIG),
//!  |   reaps them, kills those past task_timeout
//!  +---------------------------------------------+
//! ```
//!
//! * **What a worker holds** is known exactly, in two places. The owner keeps, per worker, the
//!   tasks it sent and has no report for, in the order sent (which is the order the worker runs
//!   them). The worker writes the task's id into its table slot (`record`) before running it.
//!   A report is committed to the results queue before the next task is recorded.
//! * **A death** is learnt from the worker's pidfd (poll(2) readiness, the moment the kernel
//!   reaps its threads: no polling interval) by the reaper, which reaps it and *queues* a
//!   `DIED` notice on the results queue. The queue is FIFO over reservations, so the collector
//!   sees every report the worker committed before the notice. Then, of the tasks the worker
//!   held: the one its slot names (if its report never came) is charged an attempt and rerun
//!   (up to `retries`) or ends `WorkerDied`; the others never started and go back to the front
//!   of the backlog, in order, uncharged. A replacement is started in the slot, with a new
//!   generation number, so reports from the dead one's generation are told apart.
//! * **Chunks** (`map`'s `chunksize`) are batches: a death inside one costs the one task it was
//!   running; the finished ones were reported one by one, the rest go back to the queue.
//! * **Balance**: a worker that runs out of work takes back, through its inbox, the batches a
//!   busier worker has not started yet (`take_back`: the owner is its inbox's only other
//!   consumer), so one slow task never holds others while a worker is idle. `cancel` of a task
//!   still in an inbox uses the same take-back; one a worker has taken is ended by killing it.
//! * **Timeouts**: the reaper reads each slot's task and start time and kills a worker whose
//!   task is past `task_timeout`; that task ends `TimedOut` (not rerun).
//! * **Owner death**: workers are started from the reaper thread with a parent-death signal
//!   (SIGKILL), so they die with the owner's last thread, SIGKILL of the owner included.
//!
//! Crash table (SIGKILL at each step; "owner" = the process that made the pool):
//! | killed between ...                                | leaves                                   | repaired by                                 | point |
//! |---------------------------------------------------|------------------------------------------|---------------------------------------------|-------|
//! | worker: start and its initializer's end           | a worker that never got ready            | reaper: replaced; its tasks go back uncharged; 2 per worker (at least 3) in a row break the pool | `pool.worker_started` |
//! | worker: initializer's end and the READY report    | same                                     | same                                        | `pool.initialized` |
//! | worker: taking a batch and recording its first task | tasks taken, none recorded             | all go back, uncharged (none ran)           | `pool.batch_taken` |
//! | worker: recording a task and running it           | the task recorded, not run               | charged an attempt (it may not have begun), rerun or `WorkerDied` | `pool.task_recorded` |
//! | worker: running a task and committing its report  | the task ran, no report                  | charged and rerun (the one rerun a death costs) | `pool.task_ran` |
//! | worker: committing a report and recording the next | the report; the slot names a reported task | that task is done; the rest go back uncharged | `pool.result_sent` |
//! | owner: a batch in an inbox, the owner's record of it | workers run on; the owner is gone        | workers die with the owner (parent-death signal) | `pool.batch_sent` |
//! | owner: a worker reaped and its DIED notice queued | the owner is gone with the pool          | the other workers die with it               | `pool.death_reaped` |
//! | owner: the DIED notice read and its decisions     | same                                     | same                                        | `pool.death_seen` |
//!
//! Not killed but failing: a task that panics is reported `PANICKED` (its worker lives on); an
//! argument that does not encode is the caller's `Err`, one that does not decode in the worker
//! and a result that does not encode are `CODEC` reports (the worker lives on); a result that
//! does not decode in the caller is that task's `Codec`. A worker *stopped* (SIGSTOP) holds its
//! task until it resumes or `task_timeout` kills it.
//!
//! What crosses into a worker: the task's argument (serde-encoded; procshare handles inside it
//! travel as descriptors on the worker's own socket, so such a task goes alone to an idle
//! worker, nothing is sent behind it and its batch is never taken back), and for the initializer, its argument as a `Process` argument. Workers are started
//! with [`StartMethod::Spawn`]: `StartMethod::Fork` is refused, since the pool's own threads
//! would make every later fork unsound.

mod core;
#[doc(hidden)]
pub mod foreign;
mod iter;
mod table;
mod task;
mod wire;
mod worker;

pub use iter::{Imap, ImapUnordered};
pub use task::{TaskError, TaskHandle};

use self::core::{Args, Call, Config, Core, Exit, Item, Spawner, Started};
use self::task::{decode_outcome, Job};
use self::worker::{run, worker_main, Tasks, Trampoline, WorkerStart};
use crate::codec;
use crate::error::{Error, Result};
use crate::process::{code_offset, Process, StartMethod};
use crate::shared::handles;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A pool of worker processes (`multiprocessing.Pool`).
///
/// Every method takes `&self` but `join` and `terminate`; share a pool between threads with
/// `Arc`. Dropping the pool terminates it (running tasks are killed; see [`Pool::terminate`]).
pub struct Pool {
    core: Arc<Core>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("processes", &self.core.cfg.processes).finish()
    }
}

/// Options for a [`Pool`]: see [`Pool::builder`].
pub struct PoolBuilder {
    processes: Option<usize>,
    method: StartMethod,
    init: Option<Spawner>,
    max_tasks: Option<u64>,
    retries: u32,
    task_timeout: Option<Duration>,
}

impl std::fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("retries", &self.retries)
            .field("task_timeout", &self.task_timeout)
            .finish()
    }
}

fn start<IA: Serialize + DeserializeOwned + Clone>(
    core: &Core,
    slot: usize,
    gen: u64,
    inbox: crate::Queue<()>,
    sock: worker::FdArg,
    init: Option<(isize, IA)>,
) -> Result<Started> {
    let start = WorkerStart { tasks: Tasks::for_slot(core, slot, gen, inbox, sock), init };
    let p = Process::builder()
        .name(format!("PoolWorker-{}", slot + 1))
        .daemon(true)
        .spawn(start, worker_main::<IA>)?;
    Ok(Started { pid: p.pid(), exit: Exit::Process(p) })
}

impl PoolBuilder {
    /// How many worker processes (default: [`std::thread::available_parallelism`]).
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// How workers start. Only [`StartMethod::Spawn`] (the default) is supported: the pool's
    /// threads make forking unsound, so `Fork` makes [`build`](Self::build) fail.
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = method;
        self
    }

    /// `init(args)` runs once in each worker (and each replacement) before its first task.
    /// `args` may hold procshare handles (`Queue`, `Value`, `Lock`, ...), cloned for each
    /// worker. A worker that dies in its initializer is replaced; 2 such deaths per worker (at
    /// least 3) in a row, with no worker getting ready in between,
    /// break the pool (every call then fails with [`TaskError::Broken`]).
    pub fn initializer<A>(mut self, init: fn(A), args: A) -> Self
    where
        A: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let f = code_offset(init as usize);
        self.init = Some(Box::new(move |core, slot, gen, inbox, sock| {
            start(core, slot, gen, inbox, sock, Some((f, args.clone())))
        }));
        self
    }

    /// Recycle a worker after it ran this many tasks (default: never).
    pub fn max_tasks_per_child(mut self, n: u64) -> Self {
        self.max_tasks = (n > 0).then_some(n);
        self
    }

    /// How many times a task whose worker died is rerun before it ends
    /// [`TaskError::WorkerDied`] (default 0).
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// A task running longer is ended [`TaskError::TimedOut`] and its worker killed and
    /// replaced (default: no limit).
    pub fn task_timeout(mut self, t: Duration) -> Self {
        self.task_timeout = Some(t);
        self
    }

    /// Starts the pool's threads and workers. Returns once they are being started; tasks queue
    /// meanwhile.
    pub fn build(self) -> Result<Pool> {
        if self.method == StartMethod::Fork {
            return Err(Error::invalid(
                "Pool workers start with StartMethod::Spawn: the pool's own threads would make \
                 every fork after the first unsound",
            ));
        }
        let processes = match self.processes {
            Some(0) => return Err(Error::invalid("a pool needs at least one process")),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let spawner: Spawner = match self.init {
            Some(f) => f,
            None => Box::new(|core, slot, gen, inbox, sock| {
                start::<()>(core, slot, gen, inbox, sock, None)
            }),
        };
        let cfg = Config {
            processes,
            retries: self.retries,
            task_timeout: self.task_timeout,
            max_tasks: self.max_tasks,
        };
        let core = Core::new(cfg, spawner)?;
        let mut threads = Vec::new();
        let c = core.clone();
        threads.push(
            std::thread::Builder::new()
                .name("procshare-pool-collector".into())
                .spawn(move || self::core::collect(c))?,
        );
        let c = core.clone();
        threads.push(
            std::thread::Builder::new()
                .name("procshare-pool-reaper".into())
                .spawn(move || self::core::reap(c))?,
        );
        Ok(Pool { core, threads })
    }
}

/// Encodes one argument: its bytes appended to `buf`, and the descriptors of handles in it.
fn encode_arg<A: Serialize>(a: &A, buf: &mut Vec<u8>) -> Result<Option<Vec<std::os::fd::OwnedFd>>> {
    let (r, fds) = handles::export(|| codec::encode_into(a, buf));
    r?;
    Ok((!fds.is_empty()).then_some(fds))
}

fn call_of<A: DeserializeOwned, R: Serialize>(f: fn(A) -> R) -> Call {
    Call { tramp: code_offset(run::<A, R> as Trampoline as usize), f: code_offset(f as usize) }
}

impl Pool {
    /// A pool of `processes` workers with the default options.
    pub fn new(processes: usize) -> Result<Pool> {
        Pool::builder().processes(processes).build()
    }

    /// Options: processes, start method, initializer, max tasks per child, retries, task
    /// timeout.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// fn warm_up(greeting: String) { eprintln!("{greeting}"); }
    /// let pool = procshare::Pool::builder()
    ///     .processes(4)
    ///     .initializer(warm_up, "ready".to_string())
    ///     .retries(1)
    ///     .task_timeout(Duration::from_secs(60))
    ///     .build()?;
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            processes: None,
            method: StartMethod::Spawn,
            init: None,
            max_tasks: None,
            retries: 0,
            task_timeout: None,
        }
    }

    /// How many workers the pool keeps.
    pub fn processes(&self) -> usize {
        self.core.cfg.processes
    }

    /// The pids of the workers running now (a dead one's replacement may still be starting).
    pub fn worker_pids(&self) -> Vec<u32> {
        let s = self.core.state.lock();
        s.worker_pids()
    }

    /// Queues `items` as one job of tasks of `f`, at most `chunksize` per batch.
    fn submit_all<A, R, I>(
        &self,
        f: fn(A) -> R,
        items: I,
        chunksize: Option<usize>,
    ) -> Result<(Arc<Job>, u64, usize)>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        let call = call_of(f);
        let mut buf = Vec::new();
        let mut spans = Vec::new();
        let mut with_fds = Vec::new();
        for a in items {
            let start = buf.len();
            let fds = encode_arg(&a, &mut buf)?;
            spans.push((start, buf.len()));
            with_fds.push(fds.map(Arc::new));
        }
        let n = spans.len();
        let chunk = chunksize.unwrap_or_else(|| {
            // Python's default: about four chunks per worker.
            let per = n.div_ceil(4 * self.processes());
            per.max(1)
        });
        let job = Job::new(n);
        let first = self.core.reserve_ids(n)?;
        let buf = Arc::new(buf);
        let items = spans.into_iter().zip(with_fds).enumerate().map(|(i, ((start, end), fds))| {
            let args = Args { buf: buf.clone(), start, end, fds };
            Item::new(first + i as u64, job.clone(), i, call, args, chunk)
        });
        self.core.submit(items)?;
        Ok((job, first, n))
    }

    /// Runs `f(args)` in a worker and waits for its result (`Pool.apply`); a failed task is
    /// `Err(Error::Task(..))`.
    pub fn apply<A, R>(&self, f: fn(A) -> R, args: A) -> Result<R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.apply_async(f, args)?.get()
    }

    /// Queues `f(args)` and returns its handle at once (`Pool.apply_async`). An argument that
    /// cannot be encoded is an `Err` here.
    pub fn apply_async<A, R>(&self, f: fn(A) -> R, args: A) -> Result<TaskHandle<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let (job, id, _) = self.submit_all(f, std::iter::once(args), Some(usize::MAX))?;
        Ok(TaskHandle::new(self.core.clone(), job, id))
    }

    /// `f` over `items` in the workers, results in input order (`Pool.map`), with Python's
    /// default chunksize (about four batches per worker). The first failed task (in input
    /// order) fails the call; the other tasks still ran.
    pub fn map<A, R, I>(&self, f: fn(A) -> R, items: I) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        self.map_with(f, items, None)
    }

    /// [`map`](Self::map) with `chunksize` tasks per batch at most.
    pub fn map_chunked<A, R, I>(&self, f: fn(A) -> R, items: I, chunksize: usize) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        self.map_with(f, items, Some(chunksize.max(1)))
    }

    fn map_with<A, R, I>(&self, f: fn(A) -> R, items: I, chunksize: Option<usize>) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        let (job, _, n) = self.submit_all(f, items, chunksize)?;
        let mut outcomes: Vec<Option<task::Outcome>> = (0..n).map(|_| None).collect();
        job.wait(n, None, &mut |i, o| {
            if let Some(slot) = outcomes.get_mut(i) {
                *slot = Some(o);
            }
        });
        outcomes
            .into_iter()
            .map(|o| decode_outcome(o.unwrap_or(Err(TaskError::Shutdown))).map_err(Error::Task))
            .collect()
    }

    /// `f` over `items`, yielding each result in input order as it is ready (`Pool.imap`,
    /// chunksize 1). Its `size_hint` is exact, so a progress bar can count it.
    pub fn imap<A, R, I>(&self, f: fn(A) -> R, items: I) -> Imap<R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        Imap::new(self.core.clone(), self.submit_all(f, items, Some(1)))
    }

    /// `f` over `items`, yielding `(input index, outcome)` as tasks finish
    /// (`Pool.imap_unordered`, chunksize 1); exact `size_hint`.
    pub fn imap_unordered<A, R, I>(&self, f: fn(A) -> R, items: I) -> ImapUnordered<R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        ImapUnordered::new(self.core.clone(), self.submit_all(f, items, Some(1)))
    }

    /// No new tasks from now on; queued ones still run (`Pool.close`).
    pub fn close(&self) {
        self.core.close();
    }

    /// After [`close`](Self::close): waits for every queued task, then for every worker to
    /// exit. After [`terminate`](Self::terminate): waits for the workers to be gone.
    /// `Err(InvalidArgument)` if neither was called (Python's `ValueError`).
    pub fn join(&mut self) -> Result<()> {
        {
            let s = self.core.state.lock();
            if !s.is_closed() {
                return Err(Error::invalid("join() needs close() or terminate() first"));
            }
        }
        self.core.drain_and_stop();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        Ok(())
    }

    /// Kills the workers now; every unfinished task ends [`TaskError::Shutdown`]
    /// (`Pool.terminate`).
    pub fn terminate(&mut self) -> Result<()> {
        self.core.terminate();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        Ok(())
    }

    /// Why the pool cannot run tasks, if it cannot (see [`PoolBuilder::initializer`]).
    pub fn broken(&self) -> Option<String> {
        self.core.broken()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            let _ = self.terminate();
        }
    }
}
