//! The owner's side of the pool: the dispatcher (any caller's thread, under the state lock),
//! the collector thread (reports in, outcomes out, and the decisions a death calls for) and
//! the reaper thread (starts workers, learns their deaths from their pidfds, enforces
//! `task_timeout`). See `pool/mod.rs` for the whole picture and the crash table.

use super::table::Table;
use super::task::{Job, Outcome, TaskError};
use super::wire::{self, Report};
use super::worker::FdArg;
use crate::crash::crash_point;
use crate::error::{Error, Result};
use crate::process::Process;
use crate::queue::Queue;
use crate::sys::{deadline, poll, proc, socket};
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

/// A worker is handed at most about this much work beyond the task it runs (from its tasks'
/// measured run times), so a slow task holds few others behind it.
const WINDOW_WORK_NS: u64 = 2_000_000;
/// ... and at least this many tasks, at most this many.
const WINDOW_MIN: usize = 2;
const WINDOW_MAX: usize = 4096;
/// Workers that die before their initializer returns, this many times in a row (with no worker
/// of the pool getting ready in between), per worker slot and at least 3, break the pool. Per
/// slot: a few workers killed from outside while they start (a busy machine, an OOM killer)
/// must not break a healthy pool; an initializer that kills every worker does it quickly.
const INIT_DEATHS_PER_SLOT: u32 = 2;
const INIT_DEATHS_MIN: u32 = 3;

/// Which function a task runs: its trampoline `run::<A, R>` and the `fn(A) -> R`, as code
/// offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Call {
    pub tramp: isize,
    pub f: isize,
}

/// A task's encoded argument: a range of a buffer that a whole submission shares.
#[derive(Clone)]
pub(crate) struct Args {
    pub buf: Arc<Vec<u8>>,
    pub start: usize,
    pub end: usize,
    /// Descriptors of the procshare handles inside the argument (rare; such a task travels
    /// alone, to an idle worker).
    pub fds: Option<Arc<Vec<OwnedFd>>>,
}

impl Args {
    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
}

/// One task, from submission to outcome.
pub(crate) struct Item {
    pub id: u64,
    pub job: Arc<Job>,
    /// Its index in the job (the input position for `map`).
    pub index: usize,
    pub call: Call,
    pub args: Args,
    /// At most this many tasks travel in one batch with it (`chunksize`).
    pub chunk: usize,
    /// Runs that ended in its worker's death.
    attempts: u32,
    /// Its outcome was delivered (cancelled while a worker held it): a result is dropped.
    finished: bool,
}

impl Item {
    pub(crate) fn new(
        id: u64,
        job: Arc<Job>,
        index: usize,
        call: Call,
        args: Args,
        chunk: usize,
    ) -> Item {
        Item { id, job, index, call, args, chunk: chunk.max(1), attempts: 0, finished: false }
    }
}

/// What the owner knows of one worker slot.
struct Worker {
    /// Bumped for each process started in the slot; reports carry it.
    gen: u64,
    pid: u32,
    /// `None` while no process runs in the slot (starting, or gone).
    live: Option<Live>,
    /// Tasks sent to this worker whose outcome has not come, in the order sent (= the order it
    /// runs them).
    sent: VecDeque<Item>,
    /// Tasks it may still be sent (`max_tasks_per_child`).
    budget: Option<u64>,
    ready: bool,
    /// We killed it, because of this task: `(id, what the task ends as)`.
    kill_reason: Option<(u64, TaskError)>,
    /// Moving average of its tasks' run time.
    avg_ns: u64,
}

struct Live {
    inbox: Queue<()>,
    sock: OwnedFd,
    pidfd: Arc<OwnedFd>,
}

impl Worker {
    /// It was sent a task with handles (its descriptors already wait on the worker's socket):
    /// nothing is sent behind it, and nothing is taken back from it.
    fn holds_fds(&self) -> bool {
        self.sent.iter().any(|it| it.args.fds.is_some())
    }

    fn window(&self) -> usize {
        if self.avg_ns == 0 {
            return WINDOW_MIN;
        }
        ((WINDOW_WORK_NS / self.avg_ns.max(1)) as usize).clamp(WINDOW_MIN, WINDOW_MAX)
    }
}

/// The state every owner thread shares, under one lock.
pub(crate) struct State {
    next_id: u64,
    backlog: VecDeque<Item>,
    workers: Vec<Worker>,
    /// Tasks submitted whose outcome has not been delivered.
    pending: usize,
    closed: bool,
    /// No more workers are started (join or terminate under way).
    stopping: bool,
    terminated: bool,
    broken: Option<String>,
    init_deaths: u32,
    batch: Vec<u8>,
    /// While the collector handles a run of reports: the outcomes to deliver once it has let
    /// go of the state lock (one job lock per job and run, not per task).
    deferred: Option<Vec<(Arc<Job>, usize, Outcome)>>,
}

pub(crate) enum Cmd {
    Spawn(usize),
    Stop { kill: bool },
}

/// How the reaper starts the worker of a slot (the builder's choice of initializer and start
/// method lives in it).
pub(crate) type Spawner =
    Box<dyn Fn(&Core, usize, u64, Queue<()>, FdArg) -> Result<Started> + Send + Sync>;

/// A worker process just started: its pid, and how to learn its exit code once its pidfd
/// says it is gone.
pub(crate) struct Started {
    pub pid: u32,
    pub exit: Exit,
}

/// How the reaper learns a dead worker's exit code (negative: the signal that killed it).
pub(crate) enum Exit {
    /// A procshare process (the Rust pool): joined.
    Process(Process),
    /// A process started by someone else (the Python pool: a `multiprocessing` process, maybe
    /// not even our child under forkserver): whoever started it tells.
    Foreign(Box<dyn FnOnce() -> i32 + Send>),
}

impl Exit {
    fn code(self) -> i32 {
        match self {
            Exit::Process(mut p) => p.join().unwrap_or(-libc::SIGKILL),
            Exit::Foreign(f) => f(),
        }
    }
}

pub(crate) struct Config {
    pub processes: usize,
    pub retries: u32,
    pub task_timeout: Option<Duration>,
    pub max_tasks: Option<u64>,
}

/// Everything the pool's threads and handles share.
pub(crate) struct Core {
    pub(crate) state: Mutex<State>,
    /// Notified when `pending` falls to 0 (`join`).
    idle: Condvar,
    pub(crate) results: Queue<()>,
    pub(crate) table: Table,
    pub(crate) cfg: Config,
    cmds: Mutex<VecDeque<Cmd>>,
    /// Rung (one byte) to wake the reaper: `[0]` is written, `[1]` polled.
    bell: (OwnedFd, OwnedFd),
    spawner: Spawner,
}

impl Core {
    pub(crate) fn new(cfg: Config, spawner: Spawner) -> Result<Arc<Core>> {
        let n = cfg.processes;
        let workers = (0..n)
            .map(|_| Worker {
                gen: 0,
                pid: 0,
                live: None,
                sent: VecDeque::new(),
                budget: None,
                ready: false,
                kill_reason: None,
                avg_ns: 0,
            })
            .collect();
        Ok(Arc::new(Core {
            state: Mutex::new(State {
                next_id: 1,
                backlog: VecDeque::new(),
                workers,
                pending: 0,
                closed: false,
                stopping: false,
                terminated: false,
                broken: None,
                init_deaths: 0,
                batch: Vec::new(),
                deferred: None,
            }),
            idle: Condvar::new(),
            results: Queue::new()?,
            table: Table::create(n)?,
            cmds: Mutex::new((0..n).map(Cmd::Spawn).collect()),
            bell: socket::seqpacket_pair()?,
            cfg,
            spawner,
        }))
    }

    fn command(&self, cmd: Cmd) {
        self.cmds.lock().push_back(cmd);
        let _ = socket::send_record(self.bell.0.as_fd(), &[&[1u8]], &[], true);
    }

    /// Ids for `n` new tasks; `Err` once the pool takes no more.
    pub(crate) fn reserve_ids(&self, n: usize) -> Result<u64> {
        let mut s = self.state.lock();
        s.check_open()?;
        let first = s.next_id;
        s.next_id += n as u64;
        Ok(first)
    }

    /// Queues tasks (ids from [`reserve_ids`]) and hands out what the workers can take now.
    pub(crate) fn submit(&self, items: impl IntoIterator<Item = Item>) -> Result<()> {
        let mut s = self.state.lock();
        s.check_open()?;
        let before = s.backlog.len();
        s.backlog.extend(items);
        s.pending += s.backlog.len() - before;
        s.dispatch();
        Ok(())
    }

    /// `TaskHandle::cancel`: see there.
    pub(crate) fn cancel(&self, id: u64) -> bool {
        let mut s = self.state.lock();
        if let Some(pos) = s.backlog.iter().position(|it| it.id == id) {
            if let Some(it) = s.backlog.remove(pos) {
                s.finish(it, Err(TaskError::Cancelled));
                self.notify_idle(&s);
            }
            return true;
        }
        let Some(w) =
            s.workers.iter().position(|w| w.sent.iter().any(|it| it.id == id && !it.finished))
        else {
            return false;
        };
        // Still in its inbox? Take back what the worker has not taken, drop the task, and
        // queue the rest again (in front, in order).
        if s.take_back(w, Some(id)) {
            self.notify_idle(&s);
            return true;
        }
        // The worker has it (running, or about to): kill the worker.
        let worker = &mut s.workers[w];
        if let Some(it) = worker.sent.iter_mut().find(|it| it.id == id) {
            it.finished = true;
            it.job.deliver(it.index, Err(TaskError::Cancelled));
        }
        worker.kill_reason = Some((id, TaskError::Cancelled));
        if let Some(live) = &worker.live {
            let _ = proc::pidfd_send_signal(live.pidfd.as_fd(), libc::SIGKILL);
        }
        s.pending = s.pending.saturating_sub(1);
        self.notify_idle(&s);
        true
    }

    /// Drops the queued tasks of `job` (an iterator dropped before its end).
    pub(crate) fn forget_job(&self, job: &Arc<Job>) {
        let mut s = self.state.lock();
        let before = s.backlog.len();
        s.backlog.retain(|it| !Arc::ptr_eq(&it.job, job));
        let gone = before - s.backlog.len();
        s.pending = s.pending.saturating_sub(gone);
        self.notify_idle(&s);
    }

    fn notify_idle(&self, s: &State) {
        if s.pending == 0 {
            self.idle.notify_all();
        }
    }

    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
    }

    /// `Pool::join` after `close`: waits for every task, then stops the workers.
    pub(crate) fn drain_and_stop(&self) {
        let mut s = self.state.lock();
        while s.pending > 0 && !s.terminated && s.broken.is_none() {
            self.idle.wait(&mut s);
        }
        s.stopping = true;
        drop(s);
        self.command(Cmd::Stop { kill: false });
    }

    /// `Pool::terminate`: every unfinished task ends `Shutdown`, the workers are killed.
    pub(crate) fn terminate(&self) {
        let mut s = self.state.lock();
        s.closed = true;
        s.stopping = true;
        s.terminated = true;
        s.fail_all(TaskError::Shutdown);
        self.idle.notify_all();
        drop(s);
        self.command(Cmd::Stop { kill: true });
    }

    pub(crate) fn broken(&self) -> Option<String> {
        self.state.lock().broken.clone()
    }
}

impl State {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    pub(crate) fn worker_pids(&self) -> Vec<u32> {
        self.workers.iter().filter(|w| w.live.is_some()).map(|w| w.pid).collect()
    }

    fn check_open(&self) -> Result<()> {
        if let Some(why) = &self.broken {
            return Err(Error::Task(TaskError::Broken(why.clone())));
        }
        if self.closed {
            return Err(Error::invalid("the pool is closed (close or terminate was called)"));
        }
        Ok(())
    }

    /// Delivers an unfinished task's outcome.
    fn finish(&mut self, it: Item, outcome: Outcome) {
        if !it.finished {
            self.pending = self.pending.saturating_sub(1);
            match &mut self.deferred {
                Some(d) => d.push((it.job, it.index, outcome)),
                None => it.job.deliver(it.index, outcome),
            }
        }
    }

    fn fail_all(&mut self, why: TaskError) {
        let mut all: Vec<Item> = self.backlog.drain(..).collect();
        for w in &mut self.workers {
            all.extend(w.sent.drain(..));
        }
        for it in all {
            self.finish(it, Err(why.clone()));
        }
    }

    /// Hands queued tasks to workers with room, fewest-loaded first.
    fn dispatch(&mut self) {
        while !self.backlog.is_empty() {
            let Some(w) = self.pick_worker() else { return };
            let first = &self.backlog[0];
            let with_fds = first.args.fds.is_some();
            if with_fds && !self.workers[w].sent.is_empty() {
                // A task with handles waits for an idle worker (`w` is the least loaded).
                return;
            }
            let worker = &self.workers[w];
            let mut room = worker.window().saturating_sub(worker.sent.len()).max(1);
            if let Some(b) = worker.budget {
                room = room.min(b as usize);
            }
            let call = first.call;
            let chunk = first.chunk;
            let n = if with_fds {
                1
            } else {
                self.backlog
                    .iter()
                    .take(room.min(chunk))
                    .take_while(|it| it.call == call && it.args.fds.is_none())
                    .count()
            };
            if self.send(w, n).is_err() {
                // The worker's inbox refused (it is going away): its death will bring it back.
                return;
            }
        }
    }

    fn pick_worker(&self) -> Option<usize> {
        self.workers
            .iter()
            .enumerate()
            .filter(|(_, w)| {
                w.live.is_some()
                    && w.budget != Some(0)
                    && w.sent.len() < w.window()
                    && !w.holds_fds()
            })
            .min_by_key(|(_, w)| w.sent.len())
            .map(|(i, _)| i)
    }

    /// Sends the first `n` queued tasks to worker `w` as one batch.
    fn send(&mut self, w: usize, n: usize) -> Result<()> {
        let mut batch = std::mem::take(&mut self.batch);
        let first = &self.backlog[0];
        let fds = first.args.fds.clone();
        let nfds = fds.as_ref().map_or(0, |f| f.len() as u32);
        wire::start_batch(first.call.tramp, first.call.f, nfds, &mut batch);
        for it in self.backlog.iter().take(n) {
            wire::push_item(it.id, it.args.bytes(), &mut batch)?;
        }
        let worker = &mut self.workers[w];
        let live = worker.live.as_ref().ok_or(Error::Closed)?;
        if let Some(fds) = &fds {
            for group in fds.chunks(socket::MAX_FDS) {
                let borrowed: Vec<_> = group.iter().map(|f| f.as_fd()).collect();
                socket::send_record(live.sock.as_fd(), &[&[0u8]], &borrowed, false)?;
            }
        }
        let r = live.inbox.put_bytes(&batch);
        self.batch = batch;
        r?;
        crash_point!("pool.batch_sent");
        let worker = &mut self.workers[w];
        if let Some(b) = &mut worker.budget {
            *b = b.saturating_sub(n as u64);
        }
        worker.sent.extend(self.backlog.drain(..n));
        Ok(())
    }

    /// Takes back the batches worker `w` has not taken from its inbox and queues their tasks
    /// again in front (dropping task `drop`, which ends `Cancelled`). Whether `drop` was among
    /// them.
    fn take_back(&mut self, w: usize, drop: Option<u64>) -> bool {
        if self.workers[w].holds_fds() {
            return false;
        }
        let Some(live) = &self.workers[w].live else { return false };
        let mut ids = Vec::new();
        while let Ok(msg) = live.inbox.get_bytes_nowait() {
            if let Ok(mut b) = wire::Batch::decode(&msg) {
                while let Some(Ok((id, _))) = b.next_item() {
                    ids.push(id);
                }
            }
        }
        if ids.is_empty() {
            return false;
        }
        // Not always the tail of `sent`: the worker may take a later batch while we take an
        // earlier one. What it runs keeps its order in `sent`.
        let worker = &mut self.workers[w];
        let mut back = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(pos) = worker.sent.iter().position(|it| it.id == id) {
                back.extend(worker.sent.remove(pos));
            }
        }
        if let Some(b) = &mut worker.budget {
            *b += back.len() as u64;
        }
        let mut found = false;
        for it in back.into_iter().rev() {
            if Some(it.id) == drop {
                found = true;
                self.finish(it, Err(TaskError::Cancelled));
            } else {
                self.backlog.push_front(it);
            }
        }
        self.dispatch();
        found
    }

    /// A report from a worker (or the reaper's death notice).
    fn on_report(&mut self, core: &Core, r: Report, payload: &[u8]) {
        let slot = r.slot as usize;
        let Some(worker) = self.workers.get_mut(slot) else { return };
        if worker.gen != r.gen {
            return;
        }
        match r.kind {
            wire::READY => {
                worker.ready = true;
                self.init_deaths = 0;
            }
            wire::OK | wire::PANICKED | wire::CODEC => {
                if worker.sent.front().map(|it| it.id) != Some(r.id) {
                    return;
                }
                let Some(it) = worker.sent.pop_front() else { return };
                if r.ns != 0 {
                    // 0: that report carries no timing (see `worker::TIME_EVERY`).
                    worker.avg_ns =
                        if worker.avg_ns == 0 { r.ns } else { (worker.avg_ns * 7 + r.ns) / 8 };
                }
                let outcome = match r.kind {
                    wire::OK => Ok(payload.to_vec()),
                    wire::PANICKED => {
                        Err(TaskError::Panicked(String::from_utf8_lossy(payload).into_owned()))
                    }
                    _ => Err(TaskError::Codec(String::from_utf8_lossy(payload).into_owned())),
                };
                self.finish(it, outcome);
                if self.workers[slot].sent.is_empty() && self.backlog.is_empty() {
                    self.balance(slot);
                }
                self.dispatch();
            }
            wire::DIED => self.on_death(core, slot, r.ns as u32, r.id as i64 as i32),
            _ => {}
        }
    }

    /// Worker `idle` ran out of work: take back queued batches from the busiest worker, so a
    /// slow task does not hold others while a worker waits.
    fn balance(&mut self, idle: usize) {
        let busiest = (0..self.workers.len())
            .filter(|&w| {
                w != idle && self.workers[w].sent.len() > 1 && !self.workers[w].holds_fds()
            })
            .max_by_key(|&w| self.workers[w].sent.len());
        if let Some(w) = busiest {
            self.take_back(w, None);
        }
    }

    /// Worker `slot` (process `pid`) ended with Python exit code `code`.
    fn on_death(&mut self, core: &Core, slot: usize, pid: u32, code: i32) {
        crash_point!("pool.death_seen");
        let running = core.table.running(slot).map(|(id, _)| id);
        let retries = core.cfg.retries;
        let worker = &mut self.workers[slot];
        worker.live = None;
        let kill = worker.kill_reason.take();
        let ready = worker.ready;
        let sent: Vec<Item> = worker.sent.drain(..).collect();
        let signal = (code < 0).then_some(-code);
        let mut again = Vec::new();
        for mut it in sent {
            if it.finished {
                continue;
            }
            if Some(it.id) != running {
                again.push(it);
                continue;
            }
            match &kill {
                Some((id, why)) if *id == it.id => self.finish(it, Err(why.clone())),
                // We killed it for another task (which had just finished): not this one's fault.
                Some(_) => again.push(it),
                None => {
                    it.attempts += 1;
                    if it.attempts > retries {
                        let attempts = it.attempts;
                        self.finish(it, Err(TaskError::WorkerDied { pid, signal, attempts }));
                    } else {
                        again.push(it);
                    }
                }
            }
        }
        for it in again.into_iter().rev() {
            self.backlog.push_front(it);
        }
        if !ready && kill.is_none() {
            self.init_deaths += 1;
            let limit = (INIT_DEATHS_PER_SLOT * self.workers.len() as u32).max(INIT_DEATHS_MIN);
            if self.init_deaths >= limit && self.broken.is_none() {
                let how = match signal {
                    Some(s) => format!("killed by signal {s}"),
                    None => format!("exit code {code}"),
                };
                self.broken = Some(format!(
                    "{} workers in a row died before their initializer returned (the last: pid \
                     {pid}, {how}); no more are started",
                    limit
                ));
                self.stopping = true;
                let why = TaskError::Broken(self.broken.clone().unwrap_or_default());
                self.fail_all(why);
            }
        }
        if !self.stopping {
            core.command(Cmd::Spawn(slot));
        }
        self.dispatch();
    }

    /// A new process runs in `slot`.
    fn install(&mut self, slot: usize, pid: u32, live: Live, max_tasks: Option<u64>) {
        let w = &mut self.workers[slot];
        w.pid = pid;
        w.live = Some(live);
        w.ready = false;
        w.budget = max_tasks;
        w.kill_reason = None;
        self.dispatch();
    }
}

/// The collector thread: reports in, outcomes out.
pub(crate) fn collect(core: Arc<Core>) {
    // The reports of one wake-up, copied back to back into one buffer (no allocation each).
    let mut arena: Vec<u8> = Vec::new();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut deliveries = Vec::new();
    loop {
        arena.clear();
        spans.clear();
        let got = core.results.get_bytes_each(256, Duration::from_secs(1), &mut |b| {
            let start = arena.len();
            arena.extend_from_slice(b);
            spans.push((start, arena.len()));
        });
        match got {
            Ok(_) => {}
            Err(Error::Empty) => continue,
            Err(_) => return,
        }
        let mut s = core.state.lock();
        s.deferred = Some(std::mem::take(&mut deliveries));
        let mut stop = false;
        for &(a, b) in &spans {
            let Some((r, payload)) = Report::decode(&arena[a..b]) else { continue };
            if r.kind == wire::STOP {
                stop = true;
                continue;
            }
            s.on_report(&core, r, payload);
        }
        deliveries = s.deferred.take().unwrap_or_default();
        core.notify_idle(&s);
        drop(s);
        deliver_grouped(&mut deliveries);
        if stop {
            return;
        }
    }
}

/// Delivers outcomes, one job lock per run of the same job.
fn deliver_grouped(d: &mut Vec<(Arc<Job>, usize, Outcome)>) {
    let mut it = d.drain(..).peekable();
    while let Some((job, i, o)) = it.next() {
        let mut run = vec![(i, o)];
        while let Some((_, _, _)) = it.peek().filter(|(j, _, _)| Arc::ptr_eq(j, &job)) {
            if let Some((_, i, o)) = it.next() {
                run.push((i, o));
            }
        }
        job.deliver_many(run.into_iter());
    }
}

/// The reaper thread: starts workers (it is their parent thread, so their parent-death signal
/// fires when it ends, with the pool or the owner), learns their deaths from pidfds and kills
/// those past `task_timeout`.
pub(crate) fn reap(core: Arc<Core>) {
    struct Child {
        pid: u32,
        exit: Exit,
        pidfd: Arc<OwnedFd>,
        gen: u64,
    }
    let n = core.cfg.processes;
    let mut children: Vec<Option<Child>> = (0..n).map(|_| None).collect();
    let mut stopping = false;
    let mut report = Vec::new();
    loop {
        let cmds: Vec<Cmd> = core.cmds.lock().drain(..).collect();
        for cmd in cmds {
            match cmd {
                Cmd::Spawn(slot)
                    if !stopping && children.get(slot).is_some_and(|c| c.is_none()) =>
                {
                    match start_worker(&core, slot) {
                        Ok((started, pidfd, gen)) => {
                            let Started { pid, exit } = started;
                            children[slot] = Some(Child { pid, exit, pidfd, gen })
                        }
                        Err(e) => {
                            // Counted like a worker that died before it was ready (exit code 1).
                            eprintln!("procshare pool: cannot start a worker: {e}");
                            let gen = core.state.lock().workers[slot].gen;
                            std::thread::sleep(Duration::from_millis(10));
                            Report { kind: wire::DIED, slot: slot as u32, gen, id: 1, ns: 0 }
                                .encode_into(&[], &mut report);
                            let _ = core.results.put_bytes(&report);
                        }
                    }
                }
                Cmd::Spawn(_) => {}
                Cmd::Stop { kill } => {
                    stopping = true;
                    for c in children.iter().flatten() {
                        if kill {
                            let _ = proc::pidfd_send_signal(c.pidfd.as_fd(), libc::SIGKILL);
                        }
                    }
                    let s = core.state.lock();
                    for w in &s.workers {
                        if let Some(live) = &w.live {
                            live.inbox.shutdown(false);
                        }
                    }
                }
            }
        }
        if stopping && children.iter().all(|c| c.is_none()) {
            Report { kind: wire::STOP, slot: 0, gen: 0, id: 0, ns: 0 }
                .encode_into(&[], &mut report);
            let _ = core.results.put_bytes(&report);
            return;
        }
        // Wait for a death, a command, or the next task deadline.
        let mut deadline = deadline::Deadline::NEVER;
        if let Some(t) = core.cfg.task_timeout {
            let now = deadline::now();
            deadline = deadline::Deadline::after(t);
            for (slot, c) in children.iter().enumerate() {
                let Some(c) = c else { continue };
                let Some((id, started)) = core.table.running(slot) else { continue };
                let due = Duration::from_nanos(started).saturating_add(t);
                if due <= now {
                    let mut s = core.state.lock();
                    let w = &mut s.workers[slot];
                    let held = w.gen == c.gen && w.sent.front().is_some_and(|it| it.id == id);
                    if held && w.kill_reason.is_none() {
                        w.kill_reason = Some((id, TaskError::TimedOut));
                        let _ = proc::pidfd_send_signal(c.pidfd.as_fd(), libc::SIGKILL);
                    }
                } else {
                    deadline = deadline.min(deadline::Deadline::at(due));
                }
            }
        }
        let mut fds = vec![(core.bell.1.as_fd(), poll::POLLIN)];
        let mut slots = Vec::new();
        for (slot, c) in children.iter().enumerate() {
            if let Some(c) = c {
                fds.push((c.pidfd.as_fd(), poll::POLLIN));
                slots.push(slot);
            }
        }
        let Ok(revents) = poll::poll(&fds, deadline) else { continue };
        drop(fds);
        if revents[0] != 0 {
            let mut buf = [0u8; 64];
            while socket::recv_nonblocking(core.bell.1.as_fd(), &mut buf).is_ok_and(|n| n > 0) {}
        }
        for (k, &slot) in slots.iter().enumerate() {
            if revents[k + 1] == 0 {
                continue;
            }
            let Some(c) = children[slot].take() else { continue };
            let (pid, gen) = (c.pid, c.gen);
            let code = c.exit.code();
            crash_point!("pool.death_reaped");
            Report {
                kind: wire::DIED,
                slot: slot as u32,
                gen,
                id: code as i64 as u64,
                ns: pid as u64,
            }
            .encode_into(&[], &mut report);
            let _ = core.results.put_bytes(&report);
        }
    }
}

/// Starts the process of `slot`'s next generation and installs it.
fn start_worker(core: &Core, slot: usize) -> Result<(Started, Arc<OwnedFd>, u64)> {
    let gen = {
        let mut s = core.state.lock();
        let w = &mut s.workers[slot];
        w.gen += 1;
        w.ready = false;
        w.gen
    };
    core.table.reset(slot);
    let inbox = Queue::<()>::new()?;
    let (ours, theirs) = socket::seqpacket_pair()?;
    let started = (core.spawner)(core, slot, gen, inbox.clone(), FdArg(theirs))?;
    let pidfd = Arc::new(proc::pidfd_open(started.pid)?);
    let mut s = core.state.lock();
    if s.stopping {
        let _ = proc::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
    }
    let pid = started.pid;
    s.install(slot, pid, Live { inbox, sock: ours, pidfd: pidfd.clone() }, core.cfg.max_tasks);
    Ok((started, pidfd, gen))
}
