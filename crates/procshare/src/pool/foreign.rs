//! The pool's supervision for workers that another runtime starts and whose tasks it runs
//! (the Python module's `procshare.Pool`): the same [`Core`] — dispatcher, collector, reaper
//! with pidfds, retries, `task_timeout`, cancel, `max_tasks_per_child`, initializer-death
//! breaking — with two things plugged in:
//!
//! * **starting a worker**: the reaper calls the binding's start function with a
//!   [`ForeignStart`] (the worker's inbox, the results queue, the task table, its slot and
//!   generation: a handle to export into the child) and gets back the pid and a way to learn
//!   the exit code once the pidfd says the process is gone;
//! * **running a task**: the worker calls [`serve`] with a function that turns a task's bytes
//!   into its result's bytes (the binding's own encoding: procshare never looks inside).
//!
//! Every task of a foreign pool is one opaque byte string; its outcome is the bytes the worker
//! returned, or a [[`TaskError`](crate::TaskError)] the supervision decided (`WorkerDied`, `TimedOut`, `Cancelled`,
//! `Shutdown`, `Broken`). All outcomes of a pool go to one stream ([`ForeignPool::wait`]),
//! tagged with the `index` the submitter chose.
//!
//! Owner death: a foreign worker is not necessarily the child of the owner's reaper thread
//! (forkserver), so the parent-death signal cannot be relied on; [`serve`] watches the owner's
//! pidfd from a thread of its own and ends the process the moment the owner is gone.

use super::core;
use super::core::{Args, Call, Config, Core, Exit, Item, Started};
use super::task::{Job, Outcome};
use super::worker::Tasks;
use crate::error::{Error, Result};
use crate::sys::{deadline, poll, proc};
use serde::{Deserialize, Serialize};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a foreign worker is started with: export it into the child (`crate::ffi::export`) and
/// hand it to [`serve`] there.
#[derive(Serialize, Deserialize)]
pub struct ForeignStart {
    tasks: Tasks,
    owner: u32,
}

impl ForeignStart {
    /// The worker slot (0-based) this process fills.
    pub fn slot(&self) -> usize {
        self.tasks.slot()
    }
}

/// A worker the binding started: its pid, and a function that returns its exit code
/// (negative: the signal that killed it), called once the process is gone.
pub struct ForeignChild {
    /// The worker's pid.
    pub pid: u32,
    /// Its exit code, asked once its pidfd is readable.
    pub exit: Box<dyn FnOnce() -> i32 + Send>,
}

/// Starts the worker of a slot: called on the pool's reaper thread.
pub type StartFn = Box<dyn Fn(ForeignStart) -> Result<ForeignChild> + Send + Sync>;

/// Options of a [`ForeignPool`] (as [`crate::PoolBuilder`]'s).
#[derive(Debug, Clone, Default)]
pub struct ForeignConfig {
    /// How many workers.
    pub processes: usize,
    /// Reruns of a task whose worker died.
    pub retries: u32,
    /// A task running longer ends `TimedOut`, its worker killed.
    pub task_timeout: Option<Duration>,
    /// Recycle a worker after this many tasks.
    pub max_tasks: Option<u64>,
}

/// A pool whose workers and tasks belong to another runtime; see the module docs.
pub struct ForeignPool {
    core: Arc<Core>,
    job: Arc<Job>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for ForeignPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForeignPool").field("processes", &self.core.cfg.processes).finish()
    }
}

/// Opaque tasks carry no function: every batch names none.
const CALL: Call = Call { tramp: 0, f: 0 };

impl ForeignPool {
    /// Starts the pool's threads; the reaper starts the workers with `start`.
    pub fn new(cfg: ForeignConfig, start: StartFn) -> Result<ForeignPool> {
        if cfg.processes == 0 {
            return Err(Error::invalid("a pool needs at least one process"));
        }
        let owner = std::process::id();
        let spawner: core::Spawner = Box::new(move |core, slot, gen, inbox, sock| {
            let s = ForeignStart { tasks: Tasks::for_slot(core, slot, gen, inbox, sock), owner };
            let child = start(s)?;
            Ok(Started { pid: child.pid, exit: Exit::Foreign(child.exit) })
        });
        let config = Config {
            processes: cfg.processes,
            retries: cfg.retries,
            task_timeout: cfg.task_timeout,
            max_tasks: cfg.max_tasks.filter(|&n| n > 0),
        };
        let core = Core::new(config, spawner)?;
        let mut threads = Vec::new();
        let c = core.clone();
        threads.push(
            std::thread::Builder::new()
                .name("procshare-pool-collector".into())
                .spawn(move || core::collect(c))?,
        );
        let c = core.clone();
        threads.push(
            std::thread::Builder::new()
                .name("procshare-pool-reaper".into())
                .spawn(move || core::reap(c))?,
        );
        Ok(ForeignPool { core, job: Job::new(usize::MAX), threads: Mutex::new(threads) })
    }

    /// How many workers the pool keeps.
    pub fn processes(&self) -> usize {
        self.core.cfg.processes
    }

    /// Queues one task per byte string, at most `chunksize` per batch; their outcomes come
    /// from [`wait`](Self::wait) tagged `first_index + i`. Returns the first task's id (the
    /// others follow in order), for [`cancel`](Self::cancel).
    pub fn submit(&self, tasks: &[&[u8]], first_index: usize, chunksize: usize) -> Result<u64> {
        let n = tasks.len();
        let mut buf = Vec::with_capacity(tasks.iter().map(|t| t.len()).sum());
        let mut spans = Vec::with_capacity(n);
        for t in tasks {
            let start = buf.len();
            buf.extend_from_slice(t);
            spans.push((start, buf.len()));
        }
        let first = self.core.reserve_ids(n)?;
        let buf = Arc::new(buf);
        let job = &self.job;
        let items = spans.into_iter().enumerate().map(|(i, (start, end))| {
            let args = Args { buf: buf.clone(), start, end, fds: None };
            Item::new(first + i as u64, job.clone(), first_index + i, CALL, args, chunksize)
        });
        self.core.submit(items)?;
        Ok(first)
    }

    /// Waits at most `timeout` for outcomes and returns every one delivered: `(index,
    /// outcome)`.
    pub fn wait(&self, timeout: Duration) -> Vec<(usize, Outcome)> {
        let mut out = Vec::new();
        let deadline = Instant::now().checked_add(timeout);
        self.job.wait(1, deadline, &mut |i, o| out.push((i, o)));
        out
    }

    /// Ends task `id` if it has not finished (queued: removed; running: its worker killed);
    /// its outcome is then `Cancelled`.
    pub fn cancel(&self, id: u64) -> bool {
        self.core.cancel(id)
    }

    /// The pids of the workers running now.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.core.state.lock().worker_pids()
    }

    /// No new tasks; queued ones still run.
    pub fn close(&self) {
        self.core.close();
    }

    /// After [`close`](Self::close): waits for every queued task, then for the workers to
    /// exit; after [`terminate`](Self::terminate): for the workers to be gone.
    pub fn join(&self) -> Result<()> {
        if !self.core.state.lock().is_closed() {
            return Err(Error::invalid("join() needs close() or terminate() first"));
        }
        self.core.drain_and_stop();
        self.join_threads();
        Ok(())
    }

    /// Kills the workers; every unfinished task ends `Shutdown`.
    pub fn terminate(&self) {
        self.core.terminate();
        self.join_threads();
    }

    fn join_threads(&self) {
        let threads: Vec<_> =
            self.threads.lock().unwrap_or_else(|p| p.into_inner()).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }

    /// Why the pool cannot run tasks, if it cannot.
    pub fn broken(&self) -> Option<String> {
        self.core.broken()
    }
}

impl Drop for ForeignPool {
    fn drop(&mut self) {
        let running = !self.threads.lock().unwrap_or_else(|p| p.into_inner()).is_empty();
        if running {
            self.terminate();
        }
    }
}

/// The worker's side: reports ready, then runs tasks with `run` (task bytes → result bytes,
/// written into the `Vec`) until the pool closes the inbox or `max_tasks_per_child` is
/// reached. A thread watches the owner: when it is gone, this process exits at once.
pub fn serve(start: ForeignStart, run: &mut dyn FnMut(&[u8], &mut Vec<u8>)) -> Result<()> {
    let ForeignStart { tasks, owner } = start;
    watch_owner(owner)?;
    tasks.serve(&mut |_, _, args, _fds, out| {
        run(args, out);
        Ok(())
    })
}

/// Ends this process (exit status 1, no cleanup) the moment process `owner` is gone.
fn watch_owner(owner: u32) -> Result<()> {
    let pidfd = match proc::pidfd_open(owner) {
        Ok(fd) => fd,
        // Already gone.
        Err(_) => exit_now(),
    };
    std::thread::Builder::new().name("procshare-pool-owner-watch".into()).spawn(move || loop {
        let r = poll::poll(&[(pidfd.as_fd(), poll::POLLIN)], deadline::Deadline::NEVER);
        if r.is_ok_and(|r| r[0] != 0) {
            exit_now();
        }
    })?;
    Ok(())
}

fn exit_now() -> ! {
    // SAFETY: `_exit` has no preconditions; it ends the process without running anything.
    #[allow(unsafe_code)]
    unsafe {
        libc::_exit(1)
    }
}
