//! `procshare torture`: worker processes drive every shared structure at once while the
//! controller SIGKILLs or SIGSTOPs a random one every ~50 ms and starts a replacement; the
//! invariants are checked while it runs and once more at the end.
//!
//! ```text
//!  controller (never killed)                       worker slot s, incarnation i (8 threads)
//!  ├─ chaos: SIGKILL / SIGSTOP+SIGCONT, respawn     ├─ 5 flows: Queue, Queue(16), JoinableQueue(32),
//!  ├─ reports queue  <─── (flow, consumer, id) ──── │    SimpleQueue, Pipe — producer or consumer
//!  ├─ problems queue <─── anything a lane saw wrong │    (by slot parity), items 0 B .. 4 MiB
//!  ├─ board (RawArray<u64>) ── read after a death:  ├─ lock: counter += 1 under Lock, holder word
//!  │    producer's last committed seq, consumer's   ├─ event: wait(timeout) vs the published epoch
//!  │    last taken id + IN_GET/DONE, heartbeats     └─ shm: named block + ShareableList under a Lock,
//!  ├─ event set/clear with an epoch                      scratch segments created and unlinked
//!  └─ lock / shm / heartbeat / ledger checks       barrier group: 3 processes loop on one Barrier
//! ```
//!
//! Invariants (a violation makes the run fail, printing the seed and the last events):
//! * every item whose producer recorded it committed is received exactly once — except at most
//!   one per consumer killed inside a get (counted from its board word); items a killed consumer
//!   took but had not reported yet are read from its board word and counted as received;
//! * no torn item (header and payload checksums), per-producer order at every consumer, no item
//!   beyond a dead producer's recorded seq + 1;
//! * lock mutual exclusion (holder word), and `0 <= counter - sum(per-slot counts) <= takeovers
//!   seen` (each holder killed inside may have counted once without its slot knowing);
//! * the named block always matches the ShareableList's seq and checksum under the lock, unless
//!   the locker was told the previous holder died (then it repairs);
//! * an `Event.wait` never times out while the event stayed set; barrier survivors of a killed
//!   party get `Err(PeerDied)` within the hang bound;
//! * no lane of a running, not stopped process makes no progress for longer than the hang bound
//!   (every call has a timeout, or is excused while its structure is empty);
//! * JoinableQueue: after the drain, `unfinished_tasks` is at most the consumers that died before
//!   recording `task_done`, and `join` completes once those are marked done;
//! * at the end no segment the run created is left in `/dev/shm` and the controller's fd count is
//!   back to its baseline.
//!
//! `--sabotage` (hidden) plants one deliberate bug in the workers so a test can see each check
//! fail; `--sabotage dead-record` plants a producer killed mid-put at the end, whose record
//! polling consumers must skip (the `get_nowait` bug this run once found).

mod item;
mod ledger;
mod pool;
mod worker;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ledger::{Flow, CONTROLLER};
use procshare::{
    Barrier, Error, Event, Item, JoinableQueue, Lock, Process, Queue, RawArray, ShareableList,
    SharedMemory, SimpleQueue,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_bytes::ByteBuf;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use worker::*;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How long to run, in minutes (default 1).
    #[arg(long)]
    minutes: Option<f64>,
    /// How long to run, in seconds (for tests; overrides --minutes).
    #[arg(long, hide = true)]
    seconds: Option<f64>,
    /// The seed of the kill schedule, roles' choices and item sizes (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Worker processes (each drives every structure); a barrier group of 3 runs besides.
    #[arg(long, default_value_t = 8)]
    procs: usize,
    /// Mean time between two kills or stops, in milliseconds.
    #[arg(long, default_value_t = 50)]
    kill_every_ms: u64,
    /// A lane of a running process that makes no progress for this long is a hang.
    #[arg(long, default_value_t = 5.0)]
    hang_bound_secs: f64,
    /// Write every event (not only the last 50) to this file.
    #[arg(long, hide = true)]
    log: Option<std::path::PathBuf>,
    /// A deliberate bug in the workers, to show the checks catch it (for tests).
    #[arg(long, hide = true, value_enum, default_value = "none")]
    sabotage: Sabotage,
}

/// A process the controller started: a worker or a barrier member.
struct Member {
    proc: Process,
    slot: usize,
    inc: u32,
    spawned: Instant,
    started: bool,
    stopped_until: Option<Instant>,
    beats: [u64; LANES],
    since: [Instant; LANES],
}

impl Member {
    fn new(proc: Process, slot: usize, inc: u32) -> Member {
        let now = Instant::now();
        Member {
            proc,
            slot,
            inc,
            spawned: now,
            started: false,
            stopped_until: None,
            beats: [0; LANES],
            since: [now; LANES],
        }
    }
}

#[derive(Default)]
struct Stats {
    kills: u64,
    barrier_kills: u64,
    stops: u64,
    respawns: u64,
    checks: u64,
    lock_checks: u64,
    shm_checks: u64,
    shm_repairs: u64,
    event_toggles: u64,
    barrier_breaks: u64,
    barrier_aborts: u64,
    hangs_killed: u64,
    /// Killed processes the kernel took longer than the hang bound to finish off, and the longest.
    slow_exits: u64,
    slowest_exit: Duration,
    /// The longest a lane went without progress (not stopped, not excused), and which.
    max_stall: (Duration, String),
}

/// Threads that take the workers' reports and problems off their queues with a blocking get.
///
/// Not `get_nowait` in the controller's loop: `get_nowait` does not wait to take over a consumer
/// lock from a dead holder, and skips a dead producer's record only after it has been pending
/// 20 ms, so a loop of polls would see later reports late.
struct Pumps {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    reports: crossbeam_channel::Receiver<Result<Report, String>>,
    problems: crossbeam_channel::Receiver<Result<String, String>>,
}

fn pump<T>(
    q: Queue<T>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (std::thread::JoinHandle<()>, crossbeam_channel::Receiver<Result<T, String>>)
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let (tx, rx) = crossbeam_channel::unbounded();
    let t = std::thread::spawn(move || loop {
        // Longer than the queue's 20 ms before it skips a dead producer's record.
        match q.get_timeout(ms(100)) {
            Ok(x) => {
                let _ = tx.send(Ok(x));
            }
            Err(Error::Empty) => {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                std::thread::sleep(ms(10));
            }
        }
    });
    (t, rx)
}

enum BarrierState {
    Running,
    /// A party died: the others must leave with `Err(PeerDied)` before `deadline`.
    Breaking {
        deadline: Instant,
    },
}

struct Torture {
    seed: u64,
    procs: usize,
    bound: Duration,
    kill_every: u64,
    sabotage: Sabotage,
    rng: ChaCha8Rng,
    h: Handles,
    barrier: Barrier,
    barrier_state: BarrierState,
    workers: Vec<Member>,
    members: Vec<Member>,
    flows: [Flow; 5],
    events: VecDeque<String>,
    pumps: Option<Pumps>,
    log: Option<std::io::BufWriter<std::fs::File>>,
    violations: Vec<String>,
    stats: Stats,
    start: Instant,
    epoch: u64,
}

const EVENTS_KEPT: usize = 50;

/// How long a SIGKILLed process may take to be gone before it counts as a violation: far past
/// any teardown, so only a process the kernel never finishes off trips it.
const EXIT_BOUND: Duration = Duration::from_secs(60);

/// The kernel's state letter and wait channel of `pid` (`/proc/<pid>/stat`, `wchan`), for the log.
fn proc_state(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the parenthesised command name, which may itself hold spaces or ')'.
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.split(' ').next()).unwrap_or("?");
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    format!("state {state}, wchan {}", if wchan.is_empty() { "?" } else { wchan.trim() })
}

fn io_err(msg: String) -> Error {
    Error::Io(std::io::Error::other(msg))
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

fn fd_list() -> Vec<String> {
    let Ok(d) = std::fs::read_dir("/proc/self/fd") else { return Vec::new() };
    d.flatten()
        .map(|e| {
            let target = std::fs::read_link(e.path()).map(|p| p.display().to_string());
            format!("{} -> {}", e.file_name().to_string_lossy(), target.unwrap_or_default())
        })
        .collect()
}

/// `/dev/shm` entries (and tracker registrations) of this run still present.
fn our_shm_entries(names: &[String], prefix: &str) -> Vec<String> {
    let mut left = Vec::new();
    let mut look = |dir: &str| {
        if let Ok(d) = std::fs::read_dir(dir) {
            for e in d.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(prefix) || names.contains(&n) {
                    left.push(format!("{dir}/{n}"));
                }
            }
        }
    };
    look("/dev/shm");
    if let Ok(d) = std::fs::read_dir("/dev/shm") {
        for e in d.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("procshare-") && e.path().is_dir() {
                look(&format!("/dev/shm/{n}"));
            }
        }
    }
    left
}

fn signal(pid: u32, sig: rustix::process::Signal) -> std::io::Result<()> {
    let pid =
        rustix::process::Pid::from_raw(pid as i32).ok_or_else(|| std::io::Error::other("pid 0"))?;
    rustix::process::kill_process(pid, sig).map_err(std::io::Error::from)
}

pub fn run(args: Args) -> procshare::Result<()> {
    let seed = args.seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        t.map(|d| d.as_nanos() as u64).unwrap_or(1) % 1_000_000_007
    });
    // The last slot is the one `--sabotage dead-record` plants its items from.
    if args.procs < 2 || args.procs + BARRIER_PARTIES >= MAX_SLOTS {
        return Err(Error::InvalidArgument(format!(
            "--procs must be 2 to {}, not {}",
            MAX_SLOTS - BARRIER_PARTIES - 1,
            args.procs
        )));
    }
    let secs = args.seconds.unwrap_or(args.minutes.unwrap_or(1.0) * 60.0);
    let bound_ok = args.hang_bound_secs.is_finite() && args.hang_bound_secs > 0.0;
    if !secs.is_finite() || secs < 0.0 || !bound_ok {
        return Err(Error::InvalidArgument("durations must be positive numbers".into()));
    }
    let duration = Duration::from_secs_f64(secs);
    let bound = Duration::from_secs_f64(args.hang_bound_secs);
    let prefix = format!("pstort{}_", std::process::id());

    // Warm-up: the first named segment starts this process's tracker reaper (an fd for good),
    // so the fd baseline is taken after it.
    SharedMemory::create_named(&format!("{prefix}warmup"), 64)?.unlink()?;
    let fds_before = fd_count();

    let shm = SharedMemory::create_named(&format!("{prefix}block"), BLOCK)?;
    let list = ShareableList::new(&[Item::Int(0), Item::Int(0), Item::Str(" ".repeat(32))])?;
    let names = vec![shm.name().to_string(), list.name().to_string()];
    let (pipe_tx, pipe_rx) = procshare::pipe()?;
    let h = Handles {
        board: RawArray::new(BOARD_LEN)?,
        queue: Queue::new()?,
        bounded: Queue::bounded(BOUNDED_MAX)?,
        joinable: JoinableQueue::bounded(JOINABLE_MAX)?,
        simple: SimpleQueue::new()?,
        pipe_tx,
        pipe_rx,
        reports: Queue::new()?,
        problems: Queue::new()?,
        lock: Lock::new()?,
        lock_data: RawArray::new(LOCK_DATA_LEN)?,
        event: Event::new()?,
        shm_lock: Lock::new()?,
        shm_name: shm.name().to_string(),
        list_name: list.name().to_string(),
        scratch_prefix: prefix.clone(),
    };
    let mut t = Torture {
        seed,
        procs: args.procs,
        bound,
        kill_every: args.kill_every_ms.max(1),
        sabotage: args.sabotage,
        rng: ChaCha8Rng::seed_from_u64(seed),
        h,
        barrier: Barrier::new(BARRIER_PARTIES)?,
        barrier_state: BarrierState::Running,
        workers: Vec::new(),
        members: Vec::new(),
        flows: Default::default(),
        events: VecDeque::new(),
        pumps: None,
        log: match &args.log {
            Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p)?)),
            None => None,
        },
        violations: Vec::new(),
        stats: Stats::default(),
        start: Instant::now(),
        epoch: 0,
    };
    println!(
        "torture: seed {seed}, {} worker processes + a barrier group of {BARRIER_PARTIES}, {:.0} s, \
         a kill or stop every ~{} ms, hang bound {:.1} s",
        args.procs,
        secs,
        t.kill_every,
        bound.as_secs_f64()
    );
    // The pool lane runs beside the rest, on its own workers and its own chaos.
    let lane = {
        let every = Duration::from_millis(t.kill_every * 4);
        std::thread::spawn(move || pool::run(duration, seed, bound, every))
    };
    let outcome = t.run(duration, &shm, &list);
    let mut summary = t.summary();
    match lane.join() {
        Ok(Ok(st)) => summary += &format!("\n  {}", st.line()),
        Ok(Err(v)) => t.violations.push(format!("pool lane: {v}")),
        Err(_) => t.violations.push("pool lane: it panicked".into()),
    }
    let (mut violations, events) =
        (std::mem::take(&mut t.violations), std::mem::take(&mut t.events));
    if let Err(e) = outcome {
        violations.push(format!("the controller failed: {e}"));
    }
    drop(t);

    // Leaks: everything this run made must be gone once its handles are.
    shm.unlink()?;
    list.shm().unlink()?;
    drop((shm, list));
    let deadline = Instant::now() + bound.max(Duration::from_secs(10));
    let left = loop {
        let left = our_shm_entries(&names, &prefix);
        if left.is_empty() || Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(ms(50));
    };
    if !left.is_empty() {
        violations.push(format!("left in /dev/shm: {}", left.join(" ")));
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    let fds_after = loop {
        let n = fd_count();
        if n == fds_before || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(ms(20));
    };
    if fds_after != fds_before {
        violations
            .push(format!("fd count {fds_after}, baseline {fds_before}: {}", fd_list().join(", ")));
    }
    println!("{summary}");
    println!(
        "  leaks: /dev/shm entries of this run left: {}; fds {fds_after} (baseline {fds_before})",
        left.len()
    );
    if violations.is_empty() {
        println!("torture: every invariant held (seed {seed})");
        return Ok(());
    }
    eprintln!("torture: {} violation(s), seed {seed}:", violations.len());
    for v in violations.iter().take(40) {
        eprintln!("  ! {v}");
    }
    eprintln!("last {} events:", events.len());
    for e in &events {
        eprintln!("  {e}");
    }
    Err(io_err(format!(
        "torture failed with {} violation(s); reproduce with --seed {seed} --procs {}",
        violations.len(),
        args.procs
    )))
}

impl Torture {
    fn log(&mut self, what: String) {
        let line = format!("{:9.3}s {what}", self.start.elapsed().as_secs_f64());
        if let Some(f) = &mut self.log {
            use std::io::Write;
            let _ = writeln!(f, "{line}");
        }
        if self.events.len() == EVENTS_KEPT {
            self.events.pop_front();
        }
        self.events.push_back(line);
    }

    fn violation(&mut self, what: String) {
        self.log(format!("VIOLATION {what}"));
        self.violations.push(what);
    }

    fn spawn_worker(&mut self, slot: usize, inc: u32) -> procshare::Result<Member> {
        self.reset_slot(slot);
        let args = WorkerArgs {
            h: self.h.try_clone()?,
            slot,
            inc,
            seed: self.seed,
            sabotage: self.sabotage,
        };
        let name = format!("torture-w{slot}.{inc}");
        let p = Process::builder().name(name).daemon(true).spawn(args, worker_main)?;
        self.log(format!("spawn w{slot}.{inc} pid {}", p.pid()));
        Ok(Member::new(p, slot, inc))
    }

    fn spawn_barrier_group(&mut self, inc: u32) -> procshare::Result<()> {
        self.barrier = Barrier::new(BARRIER_PARTIES)?;
        for k in 0..BARRIER_PARTIES {
            let slot = self.procs + k;
            self.reset_slot(slot);
            let args = BarrierArgs {
                board: self.h.board.clone(),
                problems: self.h.problems.clone(),
                barrier: self.barrier.clone(),
                slot,
                inc,
                seed: self.seed,
            };
            let name = format!("torture-b{slot}.{inc}");
            let p = Process::builder().name(name).daemon(true).spawn(args, barrier_main)?;
            self.members.push(Member::new(p, slot, inc));
        }
        self.log(format!("barrier group {inc} formed"));
        self.barrier_state = BarrierState::Running;
        Ok(())
    }

    /// A fresh incarnation must not inherit its predecessor's words.
    fn reset_slot(&self, slot: usize) {
        for w in 0..40 {
            self.h.board.set(at(slot, w), 0);
        }
    }

    /// Books what an incarnation left on the board (after it died or finished).
    fn ended(&mut self, slot: usize, inc: u32) {
        let words: Vec<String> = FLOWS
            .iter()
            .map(|&f| format!("{:#x}", self.h.board.get(at(slot, FLOW_WORD + f as usize))))
            .collect();
        self.log(format!("ended {slot}.{inc}: flow words {}", words.join(" ")));
        for flow in FLOWS {
            let w = self.h.board.get(at(slot, FLOW_WORD + flow as usize));
            if produces(slot, flow) {
                self.stats.checks += 1;
                if let Err(e) = self.flows[flow as usize].producer_ended(slot, inc, w) {
                    self.violation(format!("{}: {e}", FLOW_NAMES[flow as usize]));
                }
            } else {
                let live = self
                    .workers
                    .iter()
                    .filter(|m| m.slot != slot && produces(m.slot, flow))
                    .map(|m| {
                        ((m.slot, m.inc), self.h.board.get(at(m.slot, FLOW_WORD + flow as usize)))
                    })
                    .collect();
                self.flows[flow as usize].consumer_ended(
                    slot as u8,
                    inc,
                    w,
                    flow == JOINABLE,
                    live,
                );
            }
        }
    }

    fn run(
        &mut self,
        duration: Duration,
        shm: &SharedMemory,
        list: &ShareableList,
    ) -> procshare::Result<()> {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (t1, reports) = pump(self.h.reports.clone(), stop.clone());
        let (t2, problems) = pump(self.h.problems.clone(), stop.clone());
        self.pumps = Some(Pumps { stop, threads: vec![t1, t2], reports, problems });
        for slot in 0..self.procs {
            let m = self.spawn_worker(slot, 0)?;
            self.workers.push(m);
        }
        self.spawn_barrier_group(0)?;
        let bar = ProgressBar::with_draw_target(
            Some(duration.as_secs().max(1)),
            ProgressDrawTarget::stderr_with_hz(4),
        );
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:12}] {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let end = Instant::now() + duration;
        let mut next_chaos = Instant::now() + ms(self.kill_every);
        let mut next_event = Instant::now();
        let mut next_check = Instant::now();
        let mut next_beat = Instant::now();
        let mut last_tick = Instant::now();
        while Instant::now() < end {
            let now = Instant::now();
            if now - last_tick > ms(500) {
                // The controller itself was not scheduled: nobody else is to blame for that.
                self.log(format!("controller stalled {:?}", now - last_tick));
                for m in self.workers.iter_mut().chain(self.members.iter_mut()) {
                    m.since = [now; LANES];
                }
            }
            last_tick = now;
            self.drain_reports();
            self.resume_due(now);
            if now >= next_event {
                self.toggle_event();
                next_event = now + ms(self.rng.gen_range(5..=60));
            }
            if now >= next_chaos {
                self.chaos()?;
                let k = self.kill_every;
                next_chaos = now + ms(self.rng.gen_range(k / 2..=k + k / 2).max(1));
            }
            self.barrier_tick()?;
            if now >= next_beat {
                self.heartbeats()?;
                next_beat = now + ms(100);
            }
            if now >= next_check {
                self.check_lock(false);
                self.check_shm(shm, list, false);
                self.throttle();
                next_check = now + ms(200);
                bar.set_position(self.start.elapsed().as_secs());
                bar.set_message(self.progress());
            }
            std::thread::sleep(ms(2));
        }
        bar.finish_and_clear();
        self.log("stopping".into());
        self.stop_all(shm, list)
    }

    fn progress(&self) -> String {
        let items: u64 = self.flows.iter().map(|f| f.received).sum();
        format!(
            "kills {} stops {} items {} checks {} violations {}",
            self.stats.kills,
            self.stats.stops,
            items,
            self.stats.checks,
            self.violations.len()
        )
    }

    fn drain_reports(&mut self) {
        let Some(p) = &self.pumps else { return };
        let got: Vec<_> = p.reports.try_iter().collect();
        let problems: Vec<_> = p.problems.try_iter().collect();
        self.book_pumped(got, problems);
    }

    /// Stops the pumps once every worker is gone: each ends when its queue is empty.
    fn stop_pumps(&mut self) {
        let Some(p) = self.pumps.take() else { return };
        p.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in p.threads {
            if t.join().is_err() {
                self.violation("a report pump panicked".into());
            }
        }
        let got: Vec<_> = p.reports.try_iter().collect();
        let problems: Vec<_> = p.problems.try_iter().collect();
        self.book_pumped(got, problems);
    }

    fn book_pumped(
        &mut self,
        reports: Vec<Result<Report, String>>,
        problems: Vec<Result<String, String>>,
    ) {
        for r in reports {
            match r {
                Ok(r) => self.book(r.flow, r.slot, r.inc, r.id),
                Err(e) => self.violation(format!("reading the report queue: {e}")),
            }
        }
        for r in problems {
            match r {
                Ok(p) => self.violation(p),
                Err(e) => self.violation(format!("reading the problem queue: {e}")),
            }
        }
    }

    fn book(&mut self, flow: u8, cslot: u8, cinc: u32, id: u64) {
        let Some(f) = self.flows.get_mut(flow as usize) else {
            self.violation(format!("report names flow {flow}"));
            return;
        };
        self.stats.checks += 1;
        if let Err(e) = f.receive(cslot, cinc, id) {
            self.violation(format!("{}: {e}", FLOW_NAMES[flow as usize]));
        }
    }

    fn toggle_event(&mut self) {
        self.stats.event_toggles += 1;
        if self.epoch.is_multiple_of(2) {
            self.h.event.set();
            // Pairs with the fence after a waiter reads the epoch (`worker::event_waiter`).
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            self.epoch += 1;
            self.h.board.set(EPOCH, self.epoch);
        } else {
            self.epoch += 1;
            self.h.board.set(EPOCH, self.epoch);
            // Pairs with the fence after a waiter's wait returns.
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            self.h.event.clear();
        }
    }

    fn resume_due(&mut self, now: Instant) {
        let mut resumed = Vec::new();
        for m in self.workers.iter_mut().chain(self.members.iter_mut()) {
            if m.stopped_until.is_some_and(|t| now >= t) {
                m.stopped_until = None;
                m.since = [now; LANES];
                resumed.push((m.slot, m.inc, signal(m.proc.pid(), rustix::process::Signal::CONT)));
            }
        }
        for (slot, inc, r) in resumed {
            match r {
                Ok(()) => self.log(format!("SIGCONT {slot}.{inc}")),
                Err(e) => self.violation(format!("SIGCONT to {slot}.{inc}: {e}")),
            }
        }
    }

    fn chaos(&mut self) -> procshare::Result<()> {
        let breaking = matches!(self.barrier_state, BarrierState::Breaking { .. });
        let n = self.workers.len() + if breaking { 0 } else { self.members.len() };
        if n == 0 {
            return Ok(());
        }
        let i = self.rng.gen_range(0..n);
        let any_stopped =
            self.workers.iter().chain(self.members.iter()).any(|m| m.stopped_until.is_some());
        let stop = !any_stopped && self.rng.gen_ratio(1, 5);
        let stop_for = ms(self.rng.gen_range(10..=200));
        let m = if i < self.workers.len() {
            &mut self.workers[i]
        } else {
            &mut self.members[i - self.workers.len()]
        };
        let (slot, inc, pid) = (m.slot, m.inc, m.proc.pid());
        if stop {
            m.stopped_until = Some(Instant::now() + stop_for);
            self.stats.stops += 1;
            match signal(pid, rustix::process::Signal::STOP) {
                Ok(()) => self.log(format!("SIGSTOP {slot}.{inc} for {stop_for:?}")),
                Err(e) => self.violation(format!("SIGSTOP to {slot}.{inc}: {e}")),
            }
            return Ok(());
        }
        if i < self.workers.len() {
            self.kill_worker(i, "SIGKILL")
        } else {
            self.kill_barrier_member(i - self.workers.len())
        }
    }

    /// Kills worker `i`, books what it left, starts its next incarnation.
    fn kill_worker(&mut self, i: usize, why: &str) -> procshare::Result<()> {
        let (slot, inc) = (self.workers[i].slot, self.workers[i].inc);
        let code = self.kill_and_reap(i, false);
        self.stats.kills += 1;
        self.log(format!("{why} w{slot}.{inc} -> {code}"));
        self.ended(slot, inc);
        if inc + 1 >= item::MAX_INC {
            return Err(io_err(format!("slot {slot} ran out of incarnations")));
        }
        let mut tries = 0;
        let m = loop {
            // Under load fork/exec can fail for a moment (EAGAIN); only a lasting failure ends
            // the run.
            match self.spawn_worker(slot, inc + 1) {
                Ok(m) => break m,
                Err(e) if tries < 20 => {
                    tries += 1;
                    self.log(format!("spawn w{slot}.{} failed ({e}); retrying", inc + 1));
                    std::thread::sleep(ms(50));
                }
                Err(e) => return Err(e),
            }
        };
        self.stats.respawns += 1;
        self.workers[i] = m;
        Ok(())
    }

    fn kill_and_reap(&mut self, i: usize, barrier: bool) -> String {
        let bound = self.bound;
        let m = if barrier { &mut self.members[i] } else { &mut self.workers[i] };
        let _ = m.proc.kill();
        m.stopped_until = None;
        let killed = Instant::now();
        let pid = m.proc.pid();
        let r = match m.proc.join_timeout(bound) {
            // A SIGKILLed process runs no more of its own code: what is left is the kernel's
            // teardown (unmapping, closing), which an overloaded machine can stretch past the
            // hang bound (seen: 2 of 12687 kills at load ~60). Record it with the kernel's view of
            // the process, and call it a violation only if the process never goes.
            Ok(None) => {
                let state = proc_state(pid);
                let r = m.proc.join_timeout(EXIT_BOUND.saturating_sub(bound));
                let took = killed.elapsed();
                self.stats.slow_exits += 1;
                self.stats.slowest_exit = self.stats.slowest_exit.max(took);
                self.log(format!(
                    "{pid} took {took:?} to exit after SIGKILL (at {bound:?}: {state})"
                ));
                r
            }
            r => r,
        };
        match r {
            Ok(Some(code)) => format!("exit {code}"),
            Ok(None) => {
                let what = format!("{pid} still alive {EXIT_BOUND:?} after SIGKILL");
                self.violation(what.clone());
                what
            }
            Err(e) => format!("join: {e}"),
        }
    }

    fn kill_barrier_member(&mut self, i: usize) -> procshare::Result<()> {
        let (slot, inc) = (self.members[i].slot, self.members[i].inc);
        let registered = self.h.board.get(at(slot, STARTED)) == inc as u64 + 1;
        let code = self.kill_and_reap(i, true);
        self.stats.kills += 1;
        self.stats.barrier_kills += 1;
        self.log(format!("SIGKILL b{slot}.{inc} -> {code}"));
        self.members.remove(i);
        if !registered {
            // It died before it received the barrier, so no party can know it was one: the
            // barrier's documented limit. Its owner (us) breaks it instead.
            self.stats.barrier_aborts += 1;
            self.barrier.abort();
        }
        // Stopped survivors could not notice; they must, within the bound.
        let now = Instant::now();
        for m in &mut self.members {
            if m.stopped_until.take().is_some() {
                let _ = signal(m.proc.pid(), rustix::process::Signal::CONT);
                m.since = [now; LANES];
            }
        }
        self.barrier_state = BarrierState::Breaking { deadline: now + self.bound };
        Ok(())
    }

    fn barrier_tick(&mut self) -> procshare::Result<()> {
        if let BarrierState::Running = self.barrier_state {
            // Nobody was killed: no member may leave (a broken barrier would make it).
            let gone = self.members.iter_mut().position(|m| {
                m.stopped_until.is_none()
                    && matches!(m.proc.join_timeout(Duration::ZERO), Ok(Some(_)))
            });
            let Some(i) = gone else { return Ok(()) };
            let (slot, inc) = (self.members[i].slot, self.members[i].inc);
            let code = self.members[i].proc.exitcode();
            self.violation(format!(
                "barrier member b{slot}.{inc} left ({code:?}) although no party was killed"
            ));
            self.members.remove(i);
            self.barrier_state = BarrierState::Breaking { deadline: Instant::now() + self.bound };
        }
        let BarrierState::Breaking { deadline } = self.barrier_state else { return Ok(()) };
        let mut i = 0;
        while i < self.members.len() {
            let (slot, inc) = (self.members[i].slot, self.members[i].inc);
            match self.members[i].proc.join_timeout(Duration::ZERO) {
                Ok(Some(code)) => {
                    let saw = self.h.board.get(at(slot, LANE_DONE)) == 1;
                    if code != 0 || !saw {
                        self.violation(format!(
                            "barrier survivor b{slot}.{inc} exited {code} without Err(PeerDied)"
                        ));
                    }
                    self.members.remove(i);
                }
                _ => i += 1,
            }
        }
        if !self.members.is_empty() && Instant::now() > deadline {
            let left: Vec<String> =
                self.members.iter().map(|m| format!("b{}.{}", m.slot, m.inc)).collect();
            self.violation(format!(
                "barrier survivors {} still blocked {:?} after a party died",
                left.join(" "),
                self.bound
            ));
            for k in (0..self.members.len()).rev() {
                self.kill_and_reap(k, true);
                self.members.remove(k);
            }
        }
        if self.members.is_empty() {
            self.stats.barrier_breaks += 1;
            let inc = self.stats.barrier_breaks as u32;
            self.spawn_barrier_group(inc)?;
        }
        Ok(())
    }

    fn heartbeats(&mut self) -> procshare::Result<()> {
        let now = Instant::now();
        let simple_empty = self.h.simple.empty();
        let pipe_empty = !self.h.pipe_rx.poll(Some(Duration::ZERO)).unwrap_or(true);
        let group_forming = self.members.iter().any(|m| !m.started || m.stopped_until.is_some())
            || matches!(self.barrier_state, BarrierState::Breaking { .. });
        let mut hung = Vec::new();
        let mut exited = Vec::new();
        let board = &self.h.board;
        let bound = self.bound;
        let max_stall = &mut self.stats.max_stall;
        for (is_worker, list) in [(true, &mut self.workers), (false, &mut self.members)] {
            for (i, m) in list.iter_mut().enumerate() {
                if m.stopped_until.is_some() {
                    continue;
                }
                if !m.started {
                    if board.get(at(m.slot, STARTED)) == m.inc as u64 + 1 {
                        m.started = true;
                        m.since = [now; LANES];
                    } else if now - m.spawned > bound {
                        hung.push((is_worker, i, "did not start".to_string()));
                    }
                    continue;
                }
                if is_worker && !m.proc.is_alive() {
                    exited.push(i);
                    continue;
                }
                let lanes = if is_worker { LANES } else { 1 };
                for (lane, lane_name) in LANE_NAMES.iter().enumerate().take(lanes) {
                    if board.get(at(m.slot, LANE_DONE + lane)) != 0 {
                        continue;
                    }
                    let b = board.get(at(m.slot, BEAT + lane));
                    let waiting = board.get(at(m.slot, NO_TIMEOUT + lane)) != 0;
                    let excused = (waiting
                        && ((lane == SIMPLE as usize && simple_empty)
                            || (lane == PIPE as usize && pipe_empty)))
                        || (!is_worker && group_forming);
                    let stalled = now - m.since[lane];
                    if stalled > max_stall.0 {
                        *max_stall = (
                            stalled,
                            format!(
                                "{}{}.{} {lane_name}",
                                if is_worker { "w" } else { "b" },
                                m.slot,
                                m.inc
                            ),
                        );
                    }
                    if b != m.beats[lane] || excused {
                        m.beats[lane] = b;
                        m.since[lane] = now;
                    } else if stalled > bound {
                        hung.push((is_worker, i, format!("lane {lane_name} made no progress")));
                        break;
                    }
                }
            }
        }
        self.stats.checks += 1;
        for i in exited {
            let (slot, inc) = (self.workers[i].slot, self.workers[i].inc);
            let code = self.workers[i].proc.join_timeout(Duration::ZERO);
            self.violation(format!("worker w{slot}.{inc} ended by itself: {code:?}"));
            self.kill_worker(i, "reap")?;
        }
        for (is_worker, i, what) in hung {
            let m = if is_worker { &self.workers[i] } else { &self.members[i] };
            let (slot, inc, pid) = (m.slot, m.inc, m.proc.pid());
            self.violation(format!(
                "{}{slot}.{inc} (pid {pid}): {what} for {:?} (the hang bound)",
                if is_worker { "w" } else { "b" },
                bound
            ));
            self.stats.hangs_killed += 1;
            if is_worker {
                self.kill_worker(i, "hung")?;
            }
        }
        Ok(())
    }

    fn check_lock(&mut self, wait: bool) {
        let lock = self.h.lock.clone();
        let g = if wait { lock.lock_timeout(self.bound) } else { lock.try_lock() };
        let g = match g {
            Ok(Some(g)) => g,
            Ok(None) => {
                if wait {
                    self.violation(format!("the counter lock stayed held for {:?}", self.bound));
                }
                return;
            }
            Err(e) => return self.violation(format!("controller lock: {e}")),
        };
        let d = &self.h.lock_data;
        if g.previous_holder_died() {
            d.set(TAKEOVERS, d.get(TAKEOVERS) + 1);
            d.set(HOLDER, 0);
        }
        let holder = d.get(HOLDER);
        let counter = d.get(COUNTER);
        let mine: u64 = (0..MAX_SLOTS).map(|s| d.get(MINE + s)).sum();
        let takeovers = d.get(TAKEOVERS);
        drop(g);
        self.stats.checks += 1;
        self.stats.lock_checks += 1;
        if holder != 0 {
            self.violation(format!("lock free for the controller, but holder word {holder:#x}"));
        }
        if counter < mine || counter - mine > takeovers {
            self.violation(format!(
                "lock counter {counter}, per-slot sum {mine}: more off than the {takeovers} takeovers allow"
            ));
        }
    }

    fn check_shm(&mut self, shm: &SharedMemory, list: &ShareableList, wait: bool) {
        let lock = self.h.shm_lock.clone();
        let g = if wait { lock.lock_timeout(self.bound) } else { lock.try_lock() };
        let g = match g {
            Ok(Some(g)) => g,
            Ok(None) => {
                if wait {
                    self.violation(format!("the shm lock stayed held for {:?}", self.bound));
                }
                return;
            }
            Err(e) => return self.violation(format!("controller shm lock: {e}")),
        };
        self.stats.checks += 1;
        self.stats.shm_checks += 1;
        let mut repair = Ok(());
        if g.previous_holder_died() {
            self.stats.shm_repairs += 1;
            let seq = match list.get(LIST_SEQ) {
                Ok(Item::Int(s)) if s >= 0 => s,
                _ => 0,
            };
            repair = write_block(shm, list, seq, "controller");
        }
        let r = check_block(shm, list);
        drop(g);
        if let Err(e) = repair {
            self.violation(format!("controller repair of the named block: {e}"));
        }
        if let Err(what) = r {
            self.violation(format!("named block under the lock: {what}"));
        }
    }

    /// Raises the flag that holds producers of flows without `qsize` when their backlog grows.
    fn throttle(&mut self) {
        for flow in [SIMPLE, PIPE] {
            let live: u64 = self
                .workers
                .iter()
                .filter(|m| produces(m.slot, flow))
                .map(|m| self.h.board.get(at(m.slot, FLOW_WORD + flow as usize)))
                .sum();
            let backlog = self.flows[flow as usize].backlog(live);
            let high = backlog > UNBOUNDED_HIGH_WATER as u64;
            self.h.board.set(THROTTLE + flow as usize, high as u64);
        }
    }

    /// The end: stop every lane, wake the blocked ones, drain, and run the final checks.
    fn stop_all(&mut self, shm: &SharedMemory, list: &ShareableList) -> procshare::Result<()> {
        let now = Instant::now();
        self.resume_due(now + Duration::from_secs(3600));
        self.h.board.set(PHASE, STOP_PRODUCING);
        self.barrier.abort();
        let deadline = Instant::now() + self.bound;
        loop {
            self.drain_reports();
            let board = &self.h.board;
            let pending: Vec<String> = self
                .workers
                .iter()
                .flat_map(|m| {
                    (0..LANES)
                        .filter(|&l| l >= FLOWS.len() || produces(m.slot, l as u8))
                        .filter(|&l| board.get(at(m.slot, LANE_DONE + l)) == 0)
                        .map(move |l| format!("w{}.{} {}", m.slot, m.inc, LANE_NAMES[l]))
                })
                .collect();
            if pending.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                self.violation(format!(
                    "lanes still running {:?} after stop: {}",
                    self.bound,
                    pending.join(", ")
                ));
                break;
            }
            std::thread::sleep(ms(5));
        }
        self.h.board.set(PHASE, DRAIN);
        for m in &self.workers {
            if !produces(m.slot, SIMPLE) {
                self.h.simple.put(ByteBuf::from(item::sentinel(SIMPLE)))?;
            }
            if !produces(m.slot, PIPE) {
                self.h.pipe_tx.send_bytes(&item::sentinel(PIPE))?;
            }
        }
        let deadline = Instant::now() + self.bound;
        for i in 0..self.workers.len() {
            let (slot, inc) = (self.workers[i].slot, self.workers[i].inc);
            let left = deadline.saturating_duration_since(Instant::now());
            match self.workers[i].proc.join_timeout(left) {
                Ok(Some(0)) => {}
                Ok(Some(code)) => self.violation(format!("w{slot}.{inc} exited {code}")),
                Ok(None) => {
                    self.violation(format!(
                        "w{slot}.{inc} did not exit {:?} after the drain",
                        self.bound
                    ));
                    self.kill_and_reap(i, false);
                }
                Err(e) => self.violation(format!("joining w{slot}.{inc}: {e}")),
            }
            self.ended(slot, inc);
        }
        for i in (0..self.members.len()).rev() {
            let (slot, inc) = (self.members[i].slot, self.members[i].inc);
            match self.members[i].proc.join_timeout(self.bound) {
                Ok(Some(0)) => {}
                other => {
                    self.violation(format!("barrier member b{slot}.{inc} at the end: {other:?}"));
                    self.kill_and_reap(i, true);
                }
            }
        }
        self.stop_pumps();
        if self.sabotage == Sabotage::DeadRecord {
            self.plant_dead_record()?;
        }
        self.drain_leftovers()?;
        for (k, f) in self.flows.iter_mut().enumerate() {
            for p in f.finish(FLOW_NAMES[k]) {
                self.violations.push(p.clone());
                self.events.push_back(format!("VIOLATION {p}"));
            }
        }
        self.stats.checks += self.flows.len() as u64;
        let unfinished = self.h.joinable.unfinished_tasks() as u64;
        let allowed = self.flows[JOINABLE as usize].maybe_not_done;
        if unfinished > allowed {
            self.violation(format!(
                "JoinableQueue: {unfinished} unfinished tasks after the drain, but only {allowed} consumers died before task_done"
            ));
        }
        for _ in 0..unfinished {
            if let Err(e) = self.h.joinable.task_done() {
                self.violation(format!("JoinableQueue task_done for a dead consumer's item: {e}"));
            }
        }
        if let Err(e) = self.h.joinable.join_timeout(self.bound) {
            self.violation(format!("JoinableQueue join after the drain: {e}"));
        }
        self.log(format!("JoinableQueue: {unfinished} items marked done for dead consumers"));
        self.check_lock(true);
        self.check_shm(shm, list, true);
        Ok(())
    }

    /// Leaves a producer's record at the Queue's head with its producer killed mid-copy, and a
    /// committed item behind it (from two incarnations of a slot no worker uses).
    fn plant_dead_record(&mut self) -> procshare::Result<()> {
        let slot = MAX_SLOTS - 1;
        let q = self.h.queue.clone();
        let before = q.qsize();
        let mut p = Process::spawn((q.clone(), item::pack(slot, 0, 1)), big_putter)?;
        let deadline = Instant::now() + self.bound;
        // The reservation counts in qsize while the 64 MiB are copied: kill inside the copy.
        while q.qsize() == before && Instant::now() < deadline {
            std::thread::yield_now();
        }
        p.kill()?;
        p.join()?;
        // Its item is "maybe" (recorded 0); the next incarnation's one is committed.
        let _ = self.flows[QUEUE as usize].producer_ended(slot, 0, 0);
        let id = item::pack(slot, 1, 1);
        q.put(ByteBuf::from(item::make(QUEUE, id, 16)))?;
        let _ = self.flows[QUEUE as usize].producer_ended(slot, 1, 1);
        self.log(format!("planted a dead producer's record before item {id:#x}"));
        Ok(())
    }

    /// What nobody consumed: the controller takes it, with the same checks.
    fn drain_leftovers(&mut self) -> procshare::Result<()> {
        let mut got: Vec<(u8, Vec<u8>)> = Vec::new();
        for flow in [QUEUE, BOUNDED, JOINABLE] {
            let q: Queue<ByteBuf> = match flow {
                QUEUE => self.h.queue.clone(),
                BOUNDED => self.h.bounded.clone(),
                _ => (*self.h.joinable).clone(),
            };
            let mut n = 0;
            // Polls only: a record a dead producer left at the head must be skipped by them
            // too once it has been pending a while (20 ms), so poll for longer than that.
            let mut empty_since: Option<Instant> = None;
            loop {
                match q.get_nowait() {
                    Ok(b) => {
                        got.push((flow, b.into_vec()));
                        empty_since = None;
                    }
                    Err(Error::Empty) => {
                        if empty_since.get_or_insert_with(Instant::now).elapsed() >= ms(200) {
                            break;
                        }
                        std::thread::sleep(ms(5));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
                n += 1;
            }
            // Nobody puts any more, so the polls' Empty should be final; what a waiting get
            // still finds was hidden from them.
            let mut behind = 0;
            loop {
                match q.get_timeout(ms(100)) {
                    Ok(b) => got.push((flow, b.into_vec())),
                    Err(Error::Empty) => break,
                    Err(e) => return Err(e),
                }
                behind += 1;
            }
            if flow == JOINABLE {
                for _ in 0..n + behind {
                    self.h.joinable.task_done()?;
                }
            }
            if behind > 0 {
                self.violation(format!(
                    "{}: get_nowait said Empty after {n} items with {behind} more committed \
                     behind what a dead process left at the head; get_timeout got them",
                    FLOW_NAMES[flow as usize]
                ));
            }
            if q.qsize() != 0 {
                self.violation(format!(
                    "{}: qsize is {} after the drain",
                    FLOW_NAMES[flow as usize],
                    q.qsize()
                ));
            }
        }
        // SimpleQueue::get waits without a timeout, and `empty()` counts a dead producer's
        // record until a get skips it: read up to a marker put now instead.
        self.h.simple.put(ByteBuf::from(item::marker(SIMPLE)))?;
        loop {
            let b = self.h.simple.get()?.into_vec();
            if b == item::marker(SIMPLE) {
                break;
            }
            got.push((SIMPLE, b));
        }
        if !self.h.simple.empty() {
            self.violation("SimpleQueue: not empty after the drain".into());
        }
        while self.h.pipe_rx.poll(Some(Duration::ZERO))? {
            got.push((PIPE, self.h.pipe_rx.recv_bytes()?));
        }
        let mut per_flow = [0usize; 5];
        for (flow, _) in &got {
            per_flow[*flow as usize] += 1;
        }
        self.log(format!("drained by the controller: {per_flow:?}"));
        for (flow, bytes) in got {
            match item::check(flow, &bytes) {
                Ok(0) => {}
                Ok(id) => self.book(flow, CONTROLLER, 0, id),
                Err(what) => self
                    .violation(format!("torn item left on {}: {what}", FLOW_NAMES[flow as usize])),
            }
        }
        Ok(())
    }

    fn summary(&self) -> String {
        let s = &self.stats;
        let mut out = format!(
            "torture: {:.1} s, seed {}\n  kills {} (barrier members {}), stops {}, respawns {}, hung lanes killed {}\n  \
             killed processes slower than the bound to exit {} (slowest {:.1} s)\n  \
             longest a lane went without progress: {:.0} ms ({}; hang bound {:.1} s)\n",
            self.start.elapsed().as_secs_f64(),
            self.seed,
            s.kills,
            s.barrier_kills,
            s.stops,
            s.respawns,
            s.hangs_killed,
            s.slow_exits,
            s.slowest_exit.as_secs_f64(),
            s.max_stall.0.as_secs_f64() * 1000.0,
            s.max_stall.1,
            self.bound.as_secs_f64()
        );
        let mut total = 0;
        for (k, f) in self.flows.iter().enumerate() {
            total += f.received;
            out += &format!(
                "  {:<26} items checked {:>8}, taken by killed consumers {:>4}, consumers killed in a get {:>4}, items lost with them {:>3}\n",
                FLOW_NAMES[k], f.received + f.reconciled, f.reconciled, f.lost_window, f.missing
            );
        }
        let d = &self.h.lock_data;
        out += &format!(
            "  items {total}; lock: counter {} with {} takeovers seen, {} checks; shm: {} checks, {} repairs; \
             event toggles {}; barrier groups broken {} (aborted by us {}); invariant checks {}",
            d.get(COUNTER),
            d.get(TAKEOVERS),
            s.lock_checks,
            s.shm_checks,
            s.shm_repairs,
            s.event_toggles,
            s.barrier_breaks,
            s.barrier_aborts,
            s.checks
        );
        out
    }
}
