//! The torture run's worker processes: each runs one thread ("lane") per shared structure.
//!
//! Every worker slot drives all five item flows (as producer or consumer, by slot parity), the
//! counter lock, the event and the named shared memory at once, so each SIGKILL lands in the
//! middle of several operations on different structures. A separate group of
//! [`BARRIER_PARTIES`] processes loops on one `Barrier`.
//!
//! What a lane writes to the board (a `RawArray<u64>` the controller reads, also after the
//! worker died) makes the accounting exact:
//!
//! ```text
//! producer word:  the seq of the last item whose put/send returned (stored right after it)
//! consumer word:  prev | IN_GET      before get/recv (prev: the last item taken and reported)
//!                 id                 after get returned item id (the id its header claims,
//!                                    stored before the payload is verified; then reported)
//!                 id | DONE          JoinableQueue: after task_done for id
//! ```
//! A worker killed with `IN_GET` set may have taken one item nobody will ever see; with a bare
//! id, that item may not have reached the report queue (the controller reconciles it at the end);
//! with `DONE`, nothing is pending.

use super::item;
use procshare::{
    Barrier, Connection, Error, Event, Item, JoinableQueue, Lock, Queue, RawArray, ShareableList,
    SharedMemory, SimpleQueue,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::time::Duration;

// Board layout (u64 words).
pub const PHASE: usize = 0;
pub const EPOCH: usize = 1;
/// + flow: set by the controller while a flow without `qsize` holds too many items.
pub const THROTTLE: usize = 2;
const SLOT_BASE: usize = 8;
const SLOT_WORDS: usize = 40;
pub const MAX_SLOTS: usize = 64;
pub const BOARD_LEN: usize = SLOT_BASE + MAX_SLOTS * SLOT_WORDS;
// Within a slot:
pub const STARTED: usize = 0; // the incarnation number once the worker runs (inc + 1)
pub const BEAT: usize = 1; // + lane: a progress counter per lane
pub const FLOW_WORD: usize = 12; // + flow: producer / consumer word (module doc)
pub const LANE_DONE: usize = 20; // + lane: 1 once the lane has finished
pub const NO_TIMEOUT: usize = 30; // + lane: 1 while in a call that has no timeout

pub fn at(slot: usize, word: usize) -> usize {
    SLOT_BASE + slot * SLOT_WORDS + word
}

// Phases.
pub const RUN: u64 = 0;
/// Producers and the other lanes stop; consumers go on so that blocked producers finish.
pub const STOP_PRODUCING: u64 = 1;
/// Consumers stop too.
pub const DRAIN: u64 = 2;

pub const IN_GET: u64 = 1 << 63;
pub const DONE: u64 = 1 << 62;

// Flows.
pub const QUEUE: u8 = 0;
pub const BOUNDED: u8 = 1;
pub const JOINABLE: u8 = 2;
pub const SIMPLE: u8 = 3;
pub const PIPE: u8 = 4;
pub const FLOWS: [u8; 5] = [QUEUE, BOUNDED, JOINABLE, SIMPLE, PIPE];
pub const FLOW_NAMES: [&str; 5] =
    ["Queue", "Queue(maxsize=16)", "JoinableQueue(maxsize=32)", "SimpleQueue", "Pipe"];
pub const BOUNDED_MAX: usize = 16;
pub const JOINABLE_MAX: usize = 32;
/// Producers on unbounded flows wait while the queue holds more than this (memory stays bounded).
pub const UNBOUNDED_HIGH_WATER: usize = 64;

// Lanes: one per flow, then these.
pub const LOCK_LANE: usize = 5;
pub const EVENT_LANE: usize = 6;
pub const SHM_LANE: usize = 7;
pub const LANES: usize = 8;
pub const LANE_NAMES: [&str; LANES] =
    ["queue", "bounded", "joinable", "simple", "pipe", "lock", "event", "shm"];

pub const BARRIER_PARTIES: usize = 3;

/// `lock_data` words: the counter (incremented under `lock`), the holder, the takeovers seen,
/// then each slot's own count of increments.
pub const COUNTER: usize = 0;
pub const HOLDER: usize = 1;
pub const TAKEOVERS: usize = 2;
pub const MINE: usize = 4;
pub const LOCK_DATA_LEN: usize = MINE + MAX_SLOTS;

/// The named block the shm lanes fill, and the `ShareableList` slots that describe it.
pub const BLOCK: usize = 64 * 1024;
pub const LIST_SEQ: usize = 0;
pub const LIST_SUM: usize = 1;
pub const LIST_TAG: usize = 2;

/// Whether `slot` produces (else consumes) on `flow`: alternate, so each flow gets about half
/// the workers on each side.
pub fn produces(slot: usize, flow: u8) -> bool {
    (slot + flow as usize).is_multiple_of(2)
}

/// Every handle a worker needs. `Connection` is not `Clone`: [`Handles::try_clone`].
#[derive(Serialize, Deserialize)]
pub struct Handles {
    pub board: RawArray<u64>,
    pub queue: Queue<ByteBuf>,
    pub bounded: Queue<ByteBuf>,
    pub joinable: JoinableQueue<ByteBuf>,
    pub simple: SimpleQueue<ByteBuf>,
    pub pipe_tx: Connection,
    pub pipe_rx: Connection,
    pub reports: Queue<Report>,
    pub problems: Queue<String>,
    pub lock: Lock,
    pub lock_data: RawArray<u64>,
    pub event: Event,
    pub shm_lock: Lock,
    pub shm_name: String,
    pub list_name: String,
    /// Names of the scratch segments the shm lanes create and unlink start with this.
    pub scratch_prefix: String,
}

impl Handles {
    pub fn try_clone(&self) -> procshare::Result<Handles> {
        Ok(Handles {
            board: self.board.clone(),
            queue: self.queue.clone(),
            bounded: self.bounded.clone(),
            joinable: self.joinable.clone(),
            simple: self.simple.clone(),
            pipe_tx: self.pipe_tx.try_clone()?,
            pipe_rx: self.pipe_rx.try_clone()?,
            reports: self.reports.clone(),
            problems: self.problems.clone(),
            lock: self.lock.clone(),
            lock_data: self.lock_data.clone(),
            event: self.event.clone(),
            shm_lock: self.shm_lock.clone(),
            shm_name: self.shm_name.clone(),
            list_name: self.list_name.clone(),
            scratch_prefix: self.scratch_prefix.clone(),
        })
    }
}

/// A consumer tells the controller which item it took (after recording it on the board).
#[derive(Serialize, Deserialize, Debug, Clone, Copy)]
pub struct Report {
    pub flow: u8,
    pub slot: u8,
    pub inc: u32,
    pub id: u64,
}

/// A deliberate bug in the workers, to show that the checks catch it (`--sabotage`, hidden).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sabotage {
    None,
    /// A Queue consumer drops every 20th item without a trace.
    Lose,
    /// A Queue producer puts every 20th item twice.
    Duplicate,
    /// Lockers increment the counter without the lock now and then.
    Unlocked,
    /// Slot 0's event lane stops making progress after a while.
    Hang,
    /// Not a bug in the workers: at the end the controller leaves the record of a producer
    /// killed mid-put at the head of the Queue, with a committed item behind it — the case of
    /// the `get_nowait` known bug, so that its check is seen to fire.
    DeadRecord,
}

/// Puts one large item (`DeadRecord`): the controller kills this process during the copy.
pub fn big_putter((q, id): (Queue<ByteBuf>, u64)) {
    let _ = q.put(ByteBuf::from(item::make(QUEUE, id, 64 << 20)));
}

#[derive(Serialize, Deserialize)]
pub struct WorkerArgs {
    pub h: Handles,
    pub slot: usize,
    pub inc: u32,
    pub seed: u64,
    pub sabotage: Sabotage,
}

#[derive(Serialize, Deserialize)]
pub struct BarrierArgs {
    pub board: RawArray<u64>,
    pub problems: Queue<String>,
    pub barrier: Barrier,
    pub slot: usize,
    pub inc: u32,
    pub seed: u64,
}

/// What the slot's holder word says: nonzero, names slot and incarnation.
pub fn holder_id(slot: usize, inc: u32) -> u64 {
    ((inc as u64) << 8) | (slot as u64 + 1)
}

/// The bytes of the shm block for a given list seq.
pub fn block_for(seq: i64) -> Vec<u8> {
    let mut b = vec![0u8; BLOCK];
    item::fill(0x5348_4d00_0000_0000 ^ seq as u64, &mut b);
    b
}

/// Whether the block and the list agree. `Err` says how they do not.
pub fn check_block(shm: &SharedMemory, list: &ShareableList) -> Result<i64, String> {
    let seq = match list.get(LIST_SEQ) {
        Ok(Item::Int(s)) => s,
        other => return Err(format!("ShareableList seq slot holds {other:?}")),
    };
    let sum = match list.get(LIST_SUM) {
        Ok(Item::Int(s)) => s,
        other => return Err(format!("ShareableList checksum slot holds {other:?}")),
    };
    let mut buf = vec![0u8; BLOCK];
    shm.read(0, &mut buf).map_err(|e| format!("reading the named block: {e}"))?;
    if seq == 0 && buf.iter().all(|&b| b == 0) && sum == 0 {
        return Ok(0);
    }
    if item::hash(&buf) as i64 != sum {
        return Err(format!("named block does not match the list's checksum (seq {seq})"));
    }
    if buf != block_for(seq) {
        return Err(format!("named block is not the content of seq {seq}"));
    }
    Ok(seq)
}

/// Rewrites block and list for `seq` (a writer's update, or a repair after a holder died).
pub fn write_block(
    shm: &SharedMemory,
    list: &ShareableList,
    seq: i64,
    tag: &str,
) -> procshare::Result<()> {
    let b = block_for(seq);
    // The seq goes last: a reader that sees it under the lock sees the rest.
    list.set(LIST_SEQ, Item::Int(-1))?;
    shm.write(0, &b)?;
    list.set(LIST_SUM, Item::Int(item::hash(&b) as i64))?;
    list.set(LIST_TAG, Item::Str(tag.to_string()))?;
    list.set(LIST_SEQ, Item::Int(seq))
}

struct Lane<'a> {
    a: &'a WorkerArgs,
    lane: usize,
    beats: u64,
    rng: ChaCha8Rng,
}

impl<'a> Lane<'a> {
    fn new(a: &'a WorkerArgs, lane: usize) -> Self {
        let seed = a.seed ^ ((a.slot as u64) << 40) ^ ((a.inc as u64) << 8) ^ lane as u64;
        Lane { a, lane, beats: 0, rng: ChaCha8Rng::seed_from_u64(seed) }
    }
    fn board(&self) -> &RawArray<u64> {
        &self.a.h.board
    }
    fn beat(&mut self) {
        self.beats += 1;
        self.board().set(at(self.a.slot, BEAT + self.lane), self.beats);
    }
    fn phase(&self) -> u64 {
        self.board().get(PHASE)
    }
    fn problem(&self, what: impl std::fmt::Display) {
        let _ = self.a.h.problems.put(format!(
            "worker {}.{} lane {}: {what}",
            self.a.slot, self.a.inc, LANE_NAMES[self.lane]
        ));
    }
    fn no_timeout(&self, on: bool) {
        self.board().set(at(self.a.slot, NO_TIMEOUT + self.lane), on as u64);
    }
    fn pause(&mut self, max_us: u64) {
        let us = self.rng.gen_range(0..=max_us);
        if us > 0 {
            std::thread::sleep(Duration::from_micros(us));
        }
    }
    fn done(&self) {
        self.board().set(at(self.a.slot, LANE_DONE + self.lane), 1);
    }
}

/// 0 B to several MiB: most items small, some across the ring's 256 KiB segments, a few MiB.
fn item_len(rng: &mut ChaCha8Rng) -> usize {
    match rng.gen_range(0..1000) {
        0..=299 => 0,
        300..=799 => rng.gen_range(1..=512),
        800..=979 => rng.gen_range(513..=64 * 1024),
        980..=994 => rng.gen_range(64 * 1024 + 1..=700 * 1024),
        _ => rng.gen_range(1 << 20..=4 << 20),
    }
}

pub fn worker_main(a: WorkerArgs) {
    a.h.board.set(at(a.slot, STARTED), a.inc as u64 + 1);
    std::thread::scope(|s| {
        for flow in FLOWS {
            let a = &a;
            if produces(a.slot, flow) {
                s.spawn(move || producer(Lane::new(a, flow as usize), flow));
            } else {
                s.spawn(move || consumer(Lane::new(a, flow as usize), flow));
            }
        }
        s.spawn(|| locker(Lane::new(&a, LOCK_LANE)));
        s.spawn(|| event_waiter(Lane::new(&a, EVENT_LANE)));
        s.spawn(|| shm_user(Lane::new(&a, SHM_LANE)));
    });
}

fn producer(mut l: Lane<'_>, flow: u8) {
    let h = &l.a.h;
    let word = at(l.a.slot, FLOW_WORD + flow as usize);
    let mut seq = 0u64;
    'items: while l.phase() == RUN {
        seq += 1;
        let id = item::pack(l.a.slot, l.a.inc, seq);
        let len = item_len(&mut l.rng);
        let it = item::make(flow, id, len);
        loop {
            let hold = match flow {
                QUEUE => h.queue.qsize() > UNBOUNDED_HIGH_WATER,
                BOUNDED => h.bounded.full(),
                JOINABLE => h.joinable.full(),
                // No qsize on these: the controller counts their backlog and raises the flag.
                _ => h.board.get(THROTTLE + flow as usize) != 0,
            };
            if hold {
                l.beat();
                if l.phase() != RUN {
                    break 'items;
                }
                std::thread::sleep(ms(2));
                continue;
            }
            let r = match flow {
                QUEUE => h.queue.put(ByteBuf::from(it.clone())),
                BOUNDED => h.bounded.put_timeout(ByteBuf::from(it.clone()), ms(100)),
                JOINABLE => h.joinable.put_timeout(ByteBuf::from(it.clone()), ms(100)),
                SIMPLE => h.simple.put(ByteBuf::from(it.clone())),
                _ => h.pipe_tx.send_bytes(&it),
            };
            l.beat();
            match r {
                Ok(()) => break,
                Err(Error::Full) | Err(Error::Timeout) => {
                    if l.phase() != RUN {
                        // Not put: the recorded seq stays at the previous item.
                        break 'items;
                    }
                }
                Err(e) => {
                    l.problem(format!("put of item {id:#x} failed: {e}"));
                    std::thread::sleep(ms(10));
                }
            }
        }
        if l.a.sabotage == Sabotage::Duplicate && flow == QUEUE && seq.is_multiple_of(20) {
            let _ = h.queue.put(ByteBuf::from(it));
        }
        // A kill between the put returning and this store leaves this item "maybe committed".
        h.board.set(word, seq);
        l.pause(1500);
    }
    l.done();
}

fn consumer(mut l: Lane<'_>, flow: u8) {
    let h = &l.a.h;
    let word = at(l.a.slot, FLOW_WORD + flow as usize);
    let mut last = 0u64;
    let settled = |last: u64| if flow == JOINABLE && last != 0 { last | DONE } else { last };
    while l.phase() < DRAIN {
        h.board.set(word, last | IN_GET);
        let got = match flow {
            QUEUE => h.queue.get_timeout(ms(100)).map(ByteBuf::into_vec),
            BOUNDED => h.bounded.get_timeout(ms(100)).map(ByteBuf::into_vec),
            JOINABLE => h.joinable.get_timeout(ms(100)).map(ByteBuf::into_vec),
            SIMPLE => {
                // No timeout in SimpleQueue::get: the controller excuses this lane while the
                // queue is empty, and wakes it with a sentinel at the end.
                l.no_timeout(true);
                let r = h.simple.get().map(ByteBuf::into_vec);
                l.no_timeout(false);
                r
            }
            _ => match h.pipe_rx.poll(Some(ms(100))) {
                Ok(true) => {
                    // Another reader may take the message first; then recv waits for the next.
                    l.no_timeout(true);
                    let r = h.pipe_rx.recv_bytes();
                    l.no_timeout(false);
                    r
                }
                Ok(false) => Err(Error::Empty),
                Err(e) => Err(e),
            },
        };
        l.beat();
        let bytes = match got {
            Ok(b) => b,
            Err(Error::Empty) | Err(Error::Timeout) => continue,
            Err(e) => {
                l.problem(format!("get failed: {e}"));
                std::thread::sleep(ms(10));
                continue;
            }
        };
        // Record the id before verifying the payload (hashing MiBs takes a while): a kill
        // during the check then leaves an item the controller counts, not a lost one.
        if let Some(claimed) = item::claimed_id(&bytes) {
            if claimed != 0 && !(l.a.sabotage == Sabotage::Lose && flow == QUEUE) {
                h.board.set(word, claimed);
            }
        }
        let id = match item::check(flow, &bytes) {
            Ok(0) => break, // the end-of-run sentinel
            Ok(id) => id,
            Err(what) => {
                l.problem(format!("torn item on {}: {what}", FLOW_NAMES[flow as usize]));
                continue;
            }
        };
        if l.a.sabotage == Sabotage::Lose && flow == QUEUE && item::unpack(id).2.is_multiple_of(20)
        {
            h.board.set(word, last);
            continue;
        }
        h.board.set(word, id);
        let report = Report { flow, slot: l.a.slot as u8, inc: l.a.inc, id };
        if let Err(e) = h.reports.put(report) {
            l.problem(format!("report of {id:#x} failed: {e}"));
        }
        if flow == JOINABLE {
            if let Err(e) = h.joinable.task_done() {
                l.problem(format!("task_done for {id:#x}: {e}"));
            }
            h.board.set(word, id | DONE);
        }
        last = id;
    }
    h.board.set(word, settled(last));
    l.done();
}

/// A non-atomic read-modify-write of a shared counter under the `Lock`, with a holder word
/// that proves mutual exclusion. A holder killed inside leaves the counter at most one ahead of
/// the sum of the per-slot counts; the next locker is told and counts the takeover.
fn locker(mut l: Lane<'_>) {
    let h = &l.a.h;
    let d = &h.lock_data;
    let me = holder_id(l.a.slot, l.a.inc);
    let mine = MINE + l.a.slot;
    while l.phase() == RUN {
        if l.a.sabotage == Sabotage::Unlocked && l.rng.gen_ratio(1, 10) {
            let c = d.get(COUNTER);
            std::thread::yield_now();
            d.set(COUNTER, c + 1);
            d.set(mine, d.get(mine) + 1);
        }
        match h.lock.lock_timeout(ms(100)) {
            Ok(Some(g)) => {
                if g.previous_holder_died() {
                    d.set(TAKEOVERS, d.get(TAKEOVERS) + 1);
                    d.set(HOLDER, 0);
                }
                let was = d.get(HOLDER);
                if was != 0 {
                    l.problem(format!("mutual exclusion broken: holder {was:#x} inside with me"));
                }
                d.set(HOLDER, me);
                let c = d.get(COUNTER);
                for _ in 0..l.rng.gen_range(0..200) {
                    std::hint::spin_loop();
                }
                if l.rng.gen_ratio(1, 20) {
                    std::thread::yield_now();
                }
                d.set(COUNTER, c + 1);
                d.set(mine, d.get(mine) + 1);
                let now = d.get(HOLDER);
                if now != me {
                    l.problem(format!("mutual exclusion broken: holder {now:#x} replaced me"));
                }
                d.set(HOLDER, 0);
                drop(g);
            }
            Ok(None) => {}
            Err(e) => {
                l.problem(format!("lock failed: {e}"));
                std::thread::sleep(ms(10));
            }
        }
        l.beat();
        l.pause(500);
    }
    l.done();
}

/// The controller sets and clears the event and publishes an epoch (odd: set). A wait that
/// times out although the epoch stayed odd throughout missed a set event.
fn event_waiter(mut l: Lane<'_>) {
    let h = &l.a.h;
    let mut waits = 0u64;
    while l.phase() == RUN {
        waits += 1;
        if l.a.sabotage == Sabotage::Hang && l.a.slot == 0 && waits > 20 {
            std::thread::sleep(Duration::from_secs(3600));
        }
        let e0 = h.board.get(EPOCH);
        // Pairs with the controller's fence between `set()` and the odd epoch store.
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let t = ms(l.rng.gen_range(1..=50));
        let r = h.event.wait(Some(t));
        // Pairs with the controller's fence between the even epoch store and `clear()`.
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let e1 = h.board.get(EPOCH);
        match r {
            Ok(false) if e0 == e1 && e0 % 2 == 1 => {
                l.problem(format!("Event.wait timed out while the event was set (epoch {e0})"))
            }
            Ok(_) => {}
            Err(e) => l.problem(format!("Event.wait failed: {e}")),
        }
        l.beat();
    }
    l.done();
}

/// Writers put a new seq's content into the named block and its seq and checksum into the
/// ShareableList under `shm_lock`; readers check that they agree. A locker told that the
/// previous holder died repairs first (the dead writer may have stopped half way). Now and
/// then a scratch segment is created by name and unlinked, so kills also land in the tracker.
fn shm_user(mut l: Lane<'_>) {
    let h = &l.a.h;
    let opened = SharedMemory::open(&h.shm_name)
        .and_then(|shm| ShareableList::open(&h.list_name).map(|list| (shm, list)));
    let (shm, list) = match opened {
        Ok(x) => x,
        Err(e) => {
            l.problem(format!("opening the named segments: {e}"));
            l.done();
            return;
        }
    };
    let tag = format!("w{}.{}", l.a.slot, l.a.inc);
    let mut scratch = 0u64;
    while l.phase() == RUN {
        match h.shm_lock.lock_timeout(ms(100)) {
            Ok(Some(g)) => {
                if g.previous_holder_died() {
                    let seq = match list.get(LIST_SEQ) {
                        Ok(Item::Int(s)) if s >= 0 => s,
                        _ => 0,
                    };
                    if let Err(e) = write_block(&shm, &list, seq, &tag) {
                        l.problem(format!("repairing the named block: {e}"));
                    }
                }
                match check_block(&shm, &list) {
                    Ok(seq) => {
                        if l.rng.gen_ratio(1, 3) {
                            if let Err(e) = write_block(&shm, &list, seq + 1, &tag) {
                                l.problem(format!("writing the named block: {e}"));
                            }
                        }
                    }
                    Err(what) => l.problem(format!("under the lock, no holder died: {what}")),
                }
                drop(g);
            }
            Ok(None) => {}
            Err(e) => l.problem(format!("shm lock failed: {e}")),
        }
        if l.rng.gen_ratio(1, 10) {
            scratch += 1;
            let name = format!("{}{}_{}_{scratch}", h.scratch_prefix, l.a.slot, l.a.inc);
            let size = l.rng.gen_range(1..=64 * 1024);
            let r = SharedMemory::create_named(&name, size).and_then(|s| {
                s.write(0, &[1u8; 1])?;
                s.unlink()
            });
            if let Err(e) = r {
                l.problem(format!("scratch segment {name}: {e}"));
            }
        }
        l.beat();
        l.pause(2000);
    }
    l.done();
}

pub fn barrier_main(a: BarrierArgs) {
    a.board.set(at(a.slot, STARTED), a.inc as u64 + 1);
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed ^ ((a.slot as u64) << 40) ^ a.inc as u64);
    let mut beats = 0u64;
    while a.board.get(PHASE) == RUN {
        match a.barrier.wait() {
            Ok(_) => {
                beats += 1;
                a.board.set(at(a.slot, BEAT), beats);
            }
            Err(Error::PeerDied) => {
                // Broken: a party died (or the run ended); the controller forms a new group.
                a.board.set(at(a.slot, LANE_DONE), 1);
                return;
            }
            Err(e) => {
                let _ = a.problems.put(format!("barrier member {}.{}: {e}", a.slot, a.inc));
                return;
            }
        }
        let us = rng.gen_range(0..=2000);
        std::thread::sleep(Duration::from_micros(us));
    }
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
