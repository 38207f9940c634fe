//! One test per crash-table row: a child arms the row's `crash_point!`, runs the operation and
//! dies there by SIGKILL (a child that does not die there fails the test, so a point that is
//! never reached is caught); then the parent checks what the row promises — the survivors go
//! on, nothing committed is lost, nothing is torn, nothing is leaked.
//!
//! Run with `cargo test -p procshare --features crash-points --test crash_points`.
#![cfg(feature = "crash-points")]

use procshare::{
    Barrier, Condition, Error, Event, Item, JoinableQueue, Lock, Process, Queue, RawValue,
    Semaphore, ShareableList, SharedMemory, SharedMemoryManager, Value,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

mod common;
use common::{pattern, within, Bytes, HANG};

/// Spawns `target(args)` (which arms a crash point and runs the operation) and asserts that it
/// died by SIGKILL, i.e. at the point.
fn dies<A: Serialize + DeserializeOwned>(args: A, target: fn(A)) -> u32 {
    let mut p = Process::spawn(args, target).unwrap();
    let pid = p.pid();
    let code = match p.join_timeout(HANG).unwrap() {
        Some(code) => code,
        None => {
            let _ = p.kill();
            let _ = p.join();
            panic!("the victim hung instead of dying at its crash point");
        }
    };
    assert_eq!(
        code,
        -libc::SIGKILL,
        "the victim was not killed at its crash point (exit code {code}): the point was not \
         reached, or reached another number of times"
    );
    pid
}

fn arm(point: &str, nth: u64) {
    procshare::crash::arm(point, nth);
}

/// Polls `cond` until it holds or [`HANG`] passes (only a bug reaches the bound).
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + HANG;
    while !cond() {
        assert!(Instant::now() < end, "{what}: still not so after {HANG:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn item(len: usize, seed: u8) -> Bytes {
    Bytes(pattern(len, seed))
}

// ---- queue/ring.rs ---------------------------------------------------------------------------

/// `(queue, point, nth, item)`: puts `item` armed at `point`.
fn put_victim((q, point, nth, it): (Queue<Bytes>, String, u64, Bytes)) {
    arm(&point, nth);
    let _ = q.put(it);
}

/// `(queue, point, nth)`: gets one item armed at `point`.
fn get_victim((q, point, nth): (Queue<Bytes>, String, u64)) {
    arm(&point, nth);
    let _ = q.get();
}

/// The queue works after the crash: items put now come out whole, in order, and nothing else.
fn queue_still_works(q: &Queue<Bytes>) {
    let q2 = q.clone();
    within("put and get after the crash", move || {
        for (i, len) in [10, 3000, 300_000, 7].into_iter().enumerate() {
            q2.put(item(len, i as u8)).unwrap();
        }
        for (i, len) in [10, 3000, 300_000, 7].into_iter().enumerate() {
            assert_eq!(q2.get().unwrap(), item(len, i as u8), "item {i} torn or out of order");
        }
    });
    assert!(q.get_nowait().is_err(), "an item the dead process never committed came out");
}

/// A put killed holding the producer lock, before anything reached the ring.
fn put_killed_before_publishing(point: &str, len: usize) {
    let q: Queue<Bytes> = Queue::new().unwrap();
    dies((q.clone(), point.to_owned(), 1, item(len, 99)), put_victim);
    assert_eq!(q.qsize(), 0, "a reservation the dead producer never published is visible");
    queue_still_works(&q);
}

#[test]
fn ring_prod_locked() {
    put_killed_before_publishing("ring.prod_locked", 10);
}

#[test]
fn ring_bump_stored() {
    put_killed_before_publishing("ring.bump_stored", 300_000);
}

#[test]
fn ring_segment_linked() {
    put_killed_before_publishing("ring.segment_linked", 300_000);
}

#[test]
fn ring_header_written() {
    put_killed_before_publishing("ring.header_written", 10);
}

/// A record left WRITING by a dead producer is skipped: the next item comes out, once.
fn dead_writers_record_is_skipped(point: &str, len: usize) {
    let q: Queue<Bytes> = Queue::new().unwrap();
    dies((q.clone(), point.to_owned(), 1, item(len, 99)), put_victim);
    let q2 = q.clone();
    within("put after the crash", move || q2.put(item(5, 1)).unwrap());
    let q2 = q.clone();
    let got = within("get past the dead record", move || q2.get().unwrap());
    assert_eq!(got, item(5, 1), "the dead producer's record was read instead of skipped");
    queue_still_works(&q);
}

#[test]
fn ring_tail_stored() {
    dead_writers_record_is_skipped("ring.tail_stored", 10);
}

#[test]
fn ring_put_unlocked() {
    dead_writers_record_is_skipped("ring.put_unlocked", 100_000);
}

/// `(queue, items)`: puts the encoded `items` in one `put_bytes_many`, killed after the second
/// one's commit.
fn batch_victim((q, items): (Queue<Bytes>, Vec<Vec<u8>>)) {
    arm("ring.batch_committed", 2);
    let slices: Vec<&[u8]> = items.iter().map(|i| i.as_slice()).collect();
    let _ = q.put_bytes_many(&slices);
}

#[test]
fn ring_batch_committed() {
    let q: Queue<Bytes> = Queue::new().unwrap();
    let items: Vec<Bytes> = (0..5).map(|i| item(100 + 1000 * i, i as u8)).collect();
    let enc = items.iter().map(|i| procshare::codec::encode(i).unwrap()).collect();
    dies((q.clone(), enc), batch_victim);
    assert_eq!(q.qsize(), 5, "the batch was reserved in one ring operation");
    let q2 = q.clone();
    within("put after the crash", move || q2.put(item(5, 77)).unwrap());
    let q2 = q.clone();
    let got = within("get the committed part of the batch", move || {
        (0..3).map(|_| q2.get().unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(
        got,
        [items[0].clone(), items[1].clone(), item(5, 77)],
        "committed items lost or dead ones read"
    );
    queue_still_works(&q);
}

#[test]
fn ring_committed_not_woken() {
    let q: Queue<Bytes> = Queue::new().unwrap();
    let q2 = q.clone();
    let getter = std::thread::spawn(move || q2.get_timeout(HANG));
    // Give the getter time to go to sleep; if it has not, the test is only weaker.
    std::thread::sleep(Duration::from_millis(100));
    dies((q.clone(), "wait.before_wake".to_owned(), 1, item(40, 7)), put_victim);
    let got = getter.join().unwrap();
    assert_eq!(got.unwrap(), item(40, 7), "a committed item was lost with its producer");
    queue_still_works(&q);
}

/// A queue of two items whose consumer was killed holding the consumer lock, the first item
/// copied out.
fn consumer_killed_holding_the_lock() -> Queue<Bytes> {
    let q: Queue<Bytes> = Queue::new().unwrap();
    q.put(item(30, 1)).unwrap();
    q.put(item(30, 2)).unwrap();
    dies((q.clone(), "ring.item_copied".to_owned(), 1), get_victim);
    q
}

#[test]
fn ring_item_copied() {
    let q = consumer_killed_holding_the_lock();
    let q2 = q.clone();
    let (a, b) = within("get after the crash", move || (q2.get().unwrap(), q2.get().unwrap()));
    assert_eq!(a, item(30, 1), "the item the dead consumer had copied was lost");
    assert_eq!(b, item(30, 2));
    queue_still_works(&q);
}

/// A consumer killed holding the consumer lock, and survivors that only ever poll with
/// `get_nowait` (as a producer checking a stop queue does): a poll that finds the lock's
/// holder dead takes it over, so the items come out instead of `Err(Empty)` forever.
#[test]
fn nowait_polls_take_over_a_dead_consumers_lock() {
    let q = consumer_killed_holding_the_lock();
    let mut got = Vec::new();
    eventually("get_nowait takes the items", || {
        if let Ok(it) = q.get_nowait() {
            got.push(it);
        }
        got.len() == 2
    });
    assert_eq!(got, [item(30, 1), item(30, 2)]);
    queue_still_works(&q);
}

#[test]
fn ring_head_stored() {
    let q: Queue<Bytes> = Queue::new().unwrap();
    q.put(item(30, 1)).unwrap();
    q.put(item(30, 2)).unwrap();
    dies((q.clone(), "ring.head_stored".to_owned(), 1), get_victim);
    assert_eq!(q.qsize(), 1);
    let q2 = q.clone();
    let b = within("get after the crash", move || q2.get().unwrap());
    assert_eq!(b, item(30, 2), "the consumer took the first item with it; the second is next");
    queue_still_works(&q);
}

fn joinable_get_victim((q, point): (JoinableQueue<Bytes>, String)) {
    arm(&point, 1);
    let _ = q.get();
}

fn joinable_put_victim((q, point, it): (JoinableQueue<Bytes>, String, Bytes)) {
    arm(&point, 1);
    let _ = q.put(it);
}

/// A consumer killed half way through skipping a dead producer's record: the next consumer
/// replays the log, so the item behind it comes out once and `join` counts the dead one as
/// done (a half-applied skip would leave it unfinished forever).
fn skip_killed(point: &str) {
    let q: JoinableQueue<Bytes> = JoinableQueue::new().unwrap();
    dies((q.clone(), "ring.put_unlocked".to_owned(), item(100_000, 9)), joinable_put_victim);
    q.put(item(5, 1)).unwrap();
    dies((q.clone(), point.to_owned()), joinable_get_victim);
    let q2 = q.clone();
    let got = within("get after the crash", move || q2.get().unwrap());
    assert_eq!(got, item(5, 1));
    q.task_done().unwrap();
    q.join_timeout(HANG).expect("the skipped record was not counted: join never returns");
    assert!(q.get_nowait().is_err());
}

#[test]
fn ring_skip_logged() {
    skip_killed("ring.skip_logged");
}

#[test]
fn ring_skip_head_stored() {
    skip_killed("ring.skip_head_stored");
}

fn shutdown_victim((q, point, immediate): (JoinableQueue<Bytes>, String, bool)) {
    arm(&point, 1);
    q.shutdown(immediate);
}

#[test]
fn ring_shutdown_flagged() {
    let q: JoinableQueue<Bytes> = JoinableQueue::new().unwrap();
    let q2 = q.clone();
    let getter = std::thread::spawn(move || q2.get_timeout(HANG));
    // Give the getter time to go to sleep; if it has not, the test is only weaker.
    std::thread::sleep(Duration::from_millis(100));
    dies((q.clone(), "ring.shutdown_flagged".to_owned(), false), shutdown_victim);
    let got = getter.join().unwrap();
    assert!(
        matches!(got, Err(procshare::Error::ShutDown)),
        "a getter asleep when the shutter died was not told: {got:?}"
    );
    // The dead shutter held the producer lock: a put takes it over and sees the flag.
    let q3 = q.clone();
    let put = within("put after the crash", move || q3.put(item(5, 1)));
    assert!(matches!(put, Err(procshare::Error::ShutDown)), "put after shutdown: {put:?}");
}

#[test]
fn ring_shutdown_discard_killed() {
    let q: JoinableQueue<Bytes> = JoinableQueue::new().unwrap();
    for i in 0..3 {
        q.put(item(50, i)).unwrap();
    }
    dies((q.clone(), "ring.skip_logged".to_owned(), true), shutdown_victim);
    // The next get finishes the discard: nothing of what was queued comes out, and every item
    // counts as done.
    let q2 = q.clone();
    let got = within("get after the crash", move || q2.get_timeout(HANG));
    assert!(
        matches!(got, Err(procshare::Error::ShutDown)),
        "an item survived immediate shutdown: {got:?}"
    );
    q.join_timeout(HANG).expect("discarded items were not counted done: join never returns");
}

#[test]
fn ring_getter_killed_asleep() {
    let q: Queue<Bytes> = Queue::new().unwrap();
    dies((q.clone(), "wait.asleep".to_owned(), 1), get_victim);
    let q2 = q.clone();
    let getter = std::thread::spawn(move || q2.get_timeout(HANG));
    std::thread::sleep(Duration::from_millis(50));
    q.put(item(8, 3)).unwrap();
    assert_eq!(getter.join().unwrap().unwrap(), item(8, 3));
    queue_still_works(&q);
}

const BIG: usize = 1 << 20;

fn drain_victim((q, point, n): (Queue<Bytes>, String, usize)) {
    arm(&point, 1);
    for _ in 0..n {
        let _ = q.get();
    }
}

/// A consumer that empties a grown queue trims it and is killed there, holding the producer
/// lock: the next producer takes the lock over and the queue grows again from what is left.
fn trim_killed(point: &str) {
    let q: Queue<Bytes> = Queue::new().unwrap();
    for i in 0..6 {
        q.put(item(BIG, i)).unwrap();
    }
    dies((q.clone(), point.to_owned(), 6), drain_victim);
    assert_eq!(q.qsize(), 0, "the trimming consumer had taken every item");
    let q2 = q.clone();
    within("refill after the crash", move || {
        for i in 0..6 {
            q2.put(item(BIG, 10 + i)).unwrap();
        }
        for i in 0..6 {
            assert_eq!(q2.get().unwrap(), item(BIG, 10 + i), "item torn after a killed trim");
        }
    });
    queue_still_works(&q);
}

#[test]
fn ring_trim_punched() {
    trim_killed("ring.trim_punched");
}

#[test]
fn ring_trim_unlinked() {
    trim_killed("ring.trim_unlinked");
}

#[test]
fn ring_free_popped() {
    let q: Queue<Bytes> = Queue::new().unwrap();
    // Grow and drain here: the trim leaves free segments on the stack.
    for i in 0..6 {
        q.put(item(BIG, i)).unwrap();
    }
    for i in 0..6 {
        assert_eq!(q.get().unwrap(), item(BIG, i));
    }
    // More than the trimmed circle holds: the put pops a free segment.
    dies((q.clone(), "ring.free_popped".to_owned(), 1, item(6 * BIG, 1)), put_victim);
    let q2 = q.clone();
    within("a big put after the crash", move || {
        q2.put(item(6 * BIG, 2)).unwrap();
        assert_eq!(q2.get().unwrap(), item(6 * BIG, 2));
    });
    queue_still_works(&q);
}

// ---- sync/raw.rs (through Lock) --------------------------------------------------------------

fn lock_victim((l, point): (Lock, String)) {
    arm(&point, 1);
    let g = l.lock().unwrap();
    drop(g);
    // Reached only if the point was not: the parent then sees exit code 0.
}

fn next_locker_told(l: &Lock) -> bool {
    let l = l.clone();
    within("lock after the crash", move || l.lock().unwrap().previous_holder_died())
}

#[test]
fn raw_before_cas() {
    let l = Lock::new().unwrap();
    dies((l.clone(), "raw.before_cas".to_owned()), lock_victim);
    assert!(!next_locker_told(&l), "a process that never took the lock was reported dead in it");
}

#[test]
fn raw_cas_won() {
    let l = Lock::new().unwrap();
    dies((l.clone(), "raw.cas_won".to_owned()), lock_victim);
    assert!(next_locker_told(&l));
    assert!(!next_locker_told(&l), "only the first acquirer after the death is told");
}

#[test]
fn raw_locked() {
    let l = Lock::new().unwrap();
    dies((l.clone(), "raw.locked".to_owned()), lock_victim);
    assert!(next_locker_told(&l));
}

#[test]
fn raw_owner_cleared() {
    let l = Lock::new().unwrap();
    dies((l.clone(), "raw.owner_cleared".to_owned()), lock_victim);
    assert!(next_locker_told(&l));
}

fn release_victim((l, held, go): (Lock, Event, Event)) {
    arm("raw.released", 1);
    let g = l.lock().unwrap();
    held.set();
    go.wait(Some(HANG)).unwrap();
    drop(g);
}

#[test]
fn raw_released() {
    let l = Lock::new().unwrap();
    let (held, go) = (Event::new().unwrap(), Event::new().unwrap());
    let args = (l.clone(), held.clone(), go.clone());
    let victim = std::thread::spawn(move || dies(args, release_victim));
    assert!(held.wait(Some(HANG)).unwrap());
    let l2 = l.clone();
    let waiter = std::thread::spawn(move || l2.lock().unwrap().previous_holder_died());
    // Let the waiter go to sleep on the held lock, then release it without the wake.
    std::thread::sleep(Duration::from_millis(100));
    go.set();
    victim.join().unwrap();
    let told = within("the sleeper takes the released lock", move || waiter.join().unwrap());
    assert!(!told, "the lock was released whole: nobody died holding it");
}

// ---- sync/wait.rs, event.rs, semaphore.rs, condition.rs --------------------------------------

fn event_wait_victim((e, point): (Event, String)) {
    arm(&point, 1);
    let _ = e.wait(None);
}

fn event_set_victim(e: Event) {
    arm("wait.before_wake", 1);
    e.set();
}

fn event_still_works(e: &Event) {
    let e2 = e.clone();
    let waiter = std::thread::spawn(move || e2.wait(Some(HANG)).unwrap());
    std::thread::sleep(Duration::from_millis(20));
    e.set();
    assert!(waiter.join().unwrap(), "a waiter missed the set after the crash");
}

#[test]
fn wait_spinning() {
    let e = Event::new().unwrap();
    dies((e.clone(), "wait.spinning".to_owned()), event_wait_victim);
    event_still_works(&e);
}

#[test]
fn wait_asleep() {
    let e = Event::new().unwrap();
    dies((e.clone(), "wait.asleep".to_owned()), event_wait_victim);
    event_still_works(&e);
}

#[test]
fn wait_before_wake() {
    let e = Event::new().unwrap();
    let e2 = e.clone();
    let waiter = std::thread::spawn(move || e2.wait(Some(HANG)).unwrap());
    std::thread::sleep(Duration::from_millis(100));
    dies(e.clone(), event_set_victim);
    assert!(waiter.join().unwrap(), "a sleeper never saw the flag its dead setter stored");
}

#[test]
fn event_set_killed_before_wake() {
    // The same boundary as `wait_before_wake`, checked from a second waiter process too.
    let e = Event::new().unwrap();
    let e2 = e.clone();
    let waiter = std::thread::spawn(move || e2.wait(Some(HANG)).unwrap());
    std::thread::sleep(Duration::from_millis(50));
    dies(e.clone(), event_set_victim);
    assert!(waiter.join().unwrap());
    assert!(e.is_set());
}

#[test]
fn event_waiter_killed_asleep() {
    let e = Event::new().unwrap();
    dies((e.clone(), "wait.asleep".to_owned()), event_wait_victim);
    dies((e.clone(), "wait.asleep".to_owned()), event_wait_victim);
    event_still_works(&e);
    e.clear();
    event_still_works(&e);
}

fn sem_acquire_victim((s, point): (Semaphore, String)) {
    arm(&point, 1);
    let _ = s.acquire();
}

fn sem_release_victim(s: Semaphore) {
    arm("wait.before_wake", 1);
    let _ = s.release();
}

#[test]
fn semaphore_acquired() {
    let s = Semaphore::new(1).unwrap();
    dies((s.clone(), "semaphore.acquired".to_owned()), sem_acquire_victim);
    assert_eq!(s.value(), 0, "the dead process's unit is lost, as in Python");
    s.release().unwrap();
    assert!(s.try_acquire());
}

#[test]
fn semaphore_release_killed_before_wake() {
    let s = Semaphore::new(0).unwrap();
    let s2 = s.clone();
    let waiter = std::thread::spawn(move || s2.acquire_timeout(HANG).unwrap());
    std::thread::sleep(Duration::from_millis(100));
    dies(s.clone(), sem_release_victim);
    assert!(waiter.join().unwrap(), "a sleeper never took the unit its dead releaser gave");
    assert_eq!(s.value(), 0);
}

#[test]
fn semaphore_acquirer_killed_asleep() {
    let s = Semaphore::new(0).unwrap();
    dies((s.clone(), "wait.asleep".to_owned()), sem_acquire_victim);
    assert_eq!(s.value(), 0);
    let s2 = s.clone();
    let waiter = std::thread::spawn(move || s2.acquire_timeout(HANG).unwrap());
    std::thread::sleep(Duration::from_millis(20));
    s.release().unwrap();
    assert!(waiter.join().unwrap());
}

fn cond_lock_victim(c: Condition) {
    arm("raw.locked", 1);
    let _g = c.lock();
}

fn cond_wait_victim(c: Condition) {
    let mut g = c.lock().unwrap();
    arm("wait.asleep", 1);
    let _ = g.wait();
}

fn cond_notify_victim(c: Condition) {
    arm("wait.before_wake", 1);
    c.notify_all();
}

/// A thread that waits on `c` (returns whether it was notified); returns once it is waiting.
fn cond_waiter(c: &Condition) -> std::thread::JoinHandle<bool> {
    let (tx, rx) = std::sync::mpsc::channel();
    let c2 = c.clone();
    let t = std::thread::spawn(move || {
        let mut g = c2.lock().unwrap();
        tx.send(()).unwrap();
        g.wait_timeout(HANG).unwrap()
    });
    rx.recv().unwrap();
    // Taking the lock here waits until the waiter's `wait` released it: it is waiting now.
    let c3 = c.clone();
    within("lock while the waiter waits", move || drop(c3.lock().unwrap()));
    t
}

#[test]
fn condition_holder_killed() {
    let c = Condition::new().unwrap();
    dies(c.clone(), cond_lock_victim);
    let c2 = c.clone();
    assert!(within("lock after the crash", move || c2.lock().unwrap().previous_holder_died()));
}

#[test]
fn condition_notify_killed_before_wake() {
    let c = Condition::new().unwrap();
    let waiter = cond_waiter(&c);
    dies(c.clone(), cond_notify_victim);
    assert!(waiter.join().unwrap(), "a waiter never saw the notify of its dead notifier");
}

#[test]
fn condition_waiter_killed_asleep() {
    let c = Condition::new().unwrap();
    dies(c.clone(), cond_wait_victim);
    let c2 = c.clone();
    let told = within("lock after the crash", move || c2.lock().unwrap().previous_holder_died());
    assert!(!told, "the dead waiter had released the lock before it slept");
    let waiter = cond_waiter(&c);
    c.notify_all();
    assert!(waiter.join().unwrap());
}

// ---- sync/barrier.rs ----------------------------------------------------------------------

fn barrier_victim((b, point): (Barrier, String)) {
    arm(&point, 1);
    let _ = b.wait();
}

/// A party that died in the round: the survivor's wait is broken, not hung.
fn barrier_broken_by(point: &str) {
    let b = Barrier::new(2).unwrap();
    dies((b.clone(), point.to_owned()), barrier_victim);
    let b2 = b.clone();
    let r = within("wait after a party died", move || b2.wait());
    assert!(matches!(r, Err(Error::PeerDied)), "expected a broken barrier, got {r:?}");
}

#[test]
fn barrier_registered() {
    barrier_broken_by("barrier.registered");
}

#[test]
fn barrier_arrived_written() {
    barrier_broken_by("barrier.arrived_written");
}

#[test]
fn barrier_counted() {
    barrier_broken_by("barrier.counted");
}

/// A thread of ours waiting on `b`; returns once it is counted.
fn barrier_waiter(b: &Barrier) -> std::thread::JoinHandle<procshare::Result<usize>> {
    let b2 = b.clone();
    let t = std::thread::spawn(move || b2.wait());
    eventually("the waiter arrives", || b.n_waiting() == 1);
    t
}

#[test]
fn barrier_last_arrived() {
    let b = Barrier::new(2).unwrap();
    let waiter = barrier_waiter(&b);
    dies((b.clone(), "barrier.last_arrived".to_owned()), barrier_victim);
    let r = within("the sleeper sees the new generation", move || waiter.join().unwrap());
    assert_eq!(r.unwrap(), 0, "the round was completed by the dead last arrival");
}

#[test]
fn barrier_released() {
    let b = Barrier::new(2).unwrap();
    let waiter = barrier_waiter(&b);
    dies((b.clone(), "barrier.released".to_owned()), barrier_victim);
    assert_eq!(waiter.join().unwrap().unwrap(), 0);
    let b2 = b.clone();
    let r = within("the next round", move || b2.wait());
    assert!(matches!(r, Err(Error::PeerDied)), "a party died holding the barrier: {r:?}");
}

/// The barrier is not broken: a round between two threads of ours completes.
fn barrier_round_completes(b: &Barrier) {
    let waiter = barrier_waiter(b);
    let b2 = b.clone();
    let mine = within("a round after the crash", move || b2.wait());
    assert!(mine.is_ok(), "{mine:?}");
    assert!(waiter.join().unwrap().is_ok());
}

fn barrier_drop_victim(b: Barrier) {
    b.wait().unwrap();
    arm("barrier.start_cleared", 1);
    drop(b);
}

#[test]
fn barrier_start_cleared() {
    let b = Barrier::new(2).unwrap();
    let waiter = barrier_waiter(&b);
    dies(b.clone(), barrier_drop_victim);
    assert!(waiter.join().unwrap().is_ok());
    barrier_round_completes(&b);
    assert!(!b.broken());
}

fn barrier_claim_victim(_b: Barrier) {
    // Never reached: the handle claims its slot while it is received, and dies there.
}

/// The barrier claims a slot while a received handle is deserialized, before any target code
/// could arm a point; so this middle process arms its own child through the environment (read
/// at the child's first point) and reports whether that child died at the point.
fn barrier_claim_middle(b: Barrier) {
    std::env::set_var("PROCSHARE_CRASH_POINT", "barrier.claimed:1");
    let mut p = Process::spawn(b.clone(), barrier_claim_victim).unwrap();
    let code = p.join_timeout(HANG).unwrap();
    if code.is_none() {
        let _ = p.kill();
    }
    // Our own slot goes back before we exit, so that only the victim's death is in the table.
    drop(b);
    assert_eq!(code, Some(-libc::SIGKILL), "the victim did not die at barrier.claimed");
}

#[test]
fn barrier_claimed() {
    let b = Barrier::new(2).unwrap();
    let mut middle = Process::spawn(b.clone(), barrier_claim_middle).unwrap();
    assert_eq!(middle.join_timeout(HANG).unwrap(), Some(0), "see the middle process's stderr");
    barrier_round_completes(&b);
    assert!(!b.broken(), "a slot whose start was never written is never checked");
}

// ---- shared/region.rs, shm/value.rs ------------------------------------------------------------

fn create_queue_victim(point: String) {
    arm(&point, 1);
    let _q: Queue<u8> = Queue::new().unwrap();
}

fn create_value_victim(point: String) {
    arm(&point, 1);
    let _v = Value::new(0u64).unwrap();
}

#[test]
fn region_before_ready() {
    // The half-made region is a memfd only the dead creator held: it died with it, and nothing
    // was named anywhere. What a survivor can check is that nothing it holds is disturbed.
    let q: Queue<u8> = Queue::new().unwrap();
    q.put(1).unwrap();
    dies("region.before_ready".to_owned(), create_queue_victim);
    assert_eq!(q.get().unwrap(), 1);
}

#[test]
fn value_creator_killed_before_ready() {
    dies("region.before_ready".to_owned(), create_value_victim);
    let v = Value::new(5u64).unwrap();
    assert_eq!(v.get(), 5);
}

fn value_set_victim(v: Value<[u64; 2]>) {
    arm("raw.locked", 1);
    v.set([1, 1]);
}

#[test]
fn value_holder_killed() {
    let v = Value::new([0u64; 2]).unwrap();
    dies(v.clone(), value_set_victim);
    let v2 = v.clone();
    let (told, now) = within("lock after the crash", move || {
        let g = v2.lock();
        (g.previous_holder_died(), *g)
    });
    assert!(told, "the next locker was not told its holder died");
    assert_eq!(now, [0, 0], "the data is as the dead holder left it");
}

fn raw_value_victim(v: RawValue<[u64; 2]>) {
    arm("region.word_stored", 1);
    v.set([7, 7]);
}

#[test]
fn raw_value_half_written() {
    let v = RawValue::new([0u64; 2]).unwrap();
    dies(v.clone(), raw_value_victim);
    assert_eq!(v.get(), [7, 0], "the first word stored, the second not: whole words only");
}

// ---- shm/segment.rs, shm/list.rs, shm/manager.rs ------------------------------------------------

fn shm_write_victim(shm: SharedMemory) {
    arm("segment.written", 1);
    let _ = shm.write(0, b"AAAA");
    let _ = shm.write(4, b"BBBB");
}

#[test]
fn segment_written() {
    let shm = SharedMemory::create(64).unwrap();
    dies(shm.clone(), shm_write_victim);
    let mut buf = [0u8; 8];
    shm.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"AAAA\0\0\0\0");
    shm.unlink().unwrap();
}

fn list_set_victim((sl, point, it): (ShareableList, String, Item)) {
    arm(&point, 1);
    let _ = sl.set(0, it);
}

#[test]
fn list_value_written() {
    let sl = ShareableList::new(&[Item::Int(7), Item::Int(8)]).unwrap();
    dies((sl.clone(), "list.value_written".to_owned(), Item::Float(2.5)), list_set_victim);
    let bits = i64::from_ne_bytes(2.5f64.to_ne_bytes());
    assert_eq!(sl.get(0).unwrap(), Item::Int(bits), "new bytes, old format and code");
    assert_eq!(sl.get(1).unwrap(), Item::Int(8), "a slot outside the one being set changed");
    sl.set(0, Item::Int(1)).unwrap();
    assert_eq!(sl.get(0).unwrap(), Item::Int(1));
    sl.shm().unlink().unwrap();
}

#[test]
fn list_format_written() {
    let sl = ShareableList::new(&[Item::Int(7), Item::Int(8)]).unwrap();
    dies((sl.clone(), "list.format_written".to_owned(), Item::Str("ab".into())), list_set_victim);
    assert!(sl.get(0).is_err(), "a str format under an int code reads as an error");
    assert_eq!(sl.get(1).unwrap(), Item::Int(8));
    sl.set(0, Item::Str("cd".into())).unwrap();
    assert_eq!(sl.get(0).unwrap(), Item::Str("cd".into()));
    sl.shm().unlink().unwrap();
}

fn manager_victim(report: procshare::Connection) {
    let smm = SharedMemoryManager::new().unwrap();
    arm("manager.made", 2);
    let first = smm.shared_memory(64).unwrap();
    report.send(&first.name().to_owned()).unwrap();
    let _second = smm.shared_memory(64);
}

#[test]
fn manager_made() {
    let (rx, tx) = procshare::pipe_simplex().unwrap();
    dies(tx, manager_victim);
    let name: String = rx.recv().unwrap();
    eventually("the dead manager's segment is unlinked", || !shm_path(&name).exists());
}

// ---- shm/tracker.rs -----------------------------------------------------------------------------

fn shm_path(name: &str) -> PathBuf {
    Path::new("/dev/shm").join(name)
}

fn euid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

fn registry_dir(name: &str) -> PathBuf {
    Path::new("/dev/shm").join(format!("procshare-{}", euid())).join(name)
}

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("psm_cp{}_{}{}", std::process::id(), tag, N.fetch_add(1, Ordering::Relaxed))
}

/// Temporary segments a process with `pid` made, still in /dev/shm.
fn temps_of(pid: u32) -> Vec<String> {
    let prefix = format!("procshare-tmp.{pid}.");
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// `(name, point)`: registers a first segment (so this process has a reaper, which sweeps after
/// its death), then creates `name` armed at `point`.
fn create_victim((name, point): (String, String)) {
    let _warm = SharedMemory::create(64).unwrap();
    arm(&point, 1);
    let _ = SharedMemory::create_named(&name, 4096);
}

/// A creation killed half way leaves nothing once the sweep ran: no segment, no temporary
/// segment, no registry entry.
fn create_killed(point: &str) {
    let name = unique("c");
    let pid = dies((name.clone(), point.to_owned()), create_victim);
    eventually("the sweep cleans the half-made segment", || {
        !shm_path(&name).exists() && !registry_dir(&name).exists() && temps_of(pid).is_empty()
    });
    assert!(matches!(SharedMemory::open(&name), Err(Error::NotFound(_))));
}

#[test]
fn tracker_dir_made() {
    create_killed("tracker.dir_made");
}

#[test]
fn tracker_meta_tmp_written() {
    create_killed("tracker.meta_tmp_written");
}

#[test]
fn tracker_meta_creating() {
    create_killed("tracker.meta_creating");
}

#[test]
fn tracker_tmp_made() {
    create_killed("tracker.tmp_made");
}

#[test]
fn tracker_linked() {
    create_killed("tracker.linked");
}

#[test]
fn tracker_meta_ino() {
    create_killed("tracker.meta_ino");
}

#[test]
fn tracker_token_taken() {
    create_killed("tracker.token_taken");
}

fn open_victim(name: String) {
    let _warm = SharedMemory::create(64).unwrap();
    arm("tracker.token_opened", 1);
    let _ = SharedMemory::open(&name);
}

#[test]
fn tracker_token_opened() {
    let name = unique("o");
    let shm = SharedMemory::create_named(&name, 4096).unwrap();
    let pid = dies(name.clone(), open_victim);
    let dir = registry_dir(&name);
    let dead_token = format!("t.{pid}.");
    eventually("the sweep deletes the dead opener's token", || {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .all(|n| !n.starts_with(&dead_token))
    });
    assert!(shm_path(&name).exists(), "the segment still has a live user: us");
    let info = procshare::shm::list_segments().unwrap();
    let me = info.iter().find(|s| s.name == name).expect("still registered");
    assert_eq!(me.alive_users, 1);
    shm.unlink().unwrap();
    assert!(!registry_dir(&name).exists());
}

fn sweep_victim(name: String) {
    // A registry entry whose segment is gone: a persistent segment (no token, no reaper) whose
    // file is removed behind the tracker's back. The `open` below sweeps that one entry only.
    let shm = SharedMemory::create_named_persistent(&name, 4096).unwrap();
    drop(shm);
    std::fs::remove_file(shm_path(&name)).unwrap();
    arm("tracker.sweep_unlinked", 1);
    let _ = SharedMemory::open(&name);
}

#[test]
fn tracker_sweep_unlinked() {
    let name = unique("s");
    dies(name.clone(), sweep_victim);
    assert!(!shm_path(&name).exists());
    // The next sweep (here: our `open` of the name) removes the directory left behind.
    assert!(matches!(SharedMemory::open(&name), Err(Error::NotFound(_))));
    assert!(!registry_dir(&name).exists(), "the next sweep left the dead sweeper's entry");
}
