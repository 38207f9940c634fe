//! A loom model of the lock word: the real algorithm ([`Words`], every CAS of the state table)
//! run on loom's atomics, with a stand-in for the kernel ([`Kernel`]: the futex, the clock and
//! `/proc`), so that loom tries every interleaving and every weak-memory outcome the C11 model
//! allows.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p procshare --release --lib sync::raw::model`.
//!
//! What the stand-in keeps and what it abstracts:
//! - The futex: `wait` compares the word with `expected` and queues the caller atomically with
//!   respect to `wake` (the kernel's hash-bucket lock is a loom `Mutex`); `wake_one` wakes at
//!   most one queued waiter and says whether it did, as `FUTEX_WAKE` does. No spurious wakes
//!   (the algorithm loops on them anyway).
//! - Time: each model thread has its own clock, which moves only while that thread sleeps. A
//!   wait that ends by a wake moves it by `step` (0: sleeps are short, nobody ever starves or
//!   checks the holder; [`CHECK_EVERY`]: every sleep is long, so the starving bit, the hand-off
//!   and the liveness check run on every round). A wait's deadline passes only when the holder
//!   named by the word it sleeps on is dead: a timeout with a live holder only makes the waiter
//!   look again and sleep again, which the `step` runs already cover, while a model in which
//!   timeouts rescued a live lock would hide exactly the lost wake-ups this model looks for.
//!   So a waiter that nobody wakes while its holder lives is reported by loom as a deadlock.
//! - Death: a holder "dies" by stopping for good with the lock held, and the kernel then tells
//!   `thread_start_time` that its tid is gone (`Ok(None)`), publishing (SeqCst) what the thread
//!   wrote before, as an exited process's stores are visible to whoever reads `/proc` after.
//!
//! Properties: mutual exclusion and the lock's Acquire/Release (the protected data is a loom
//! `UnsafeCell`, which fails the model on any access not ordered by the lock); no lost wake-up
//! (loom fails a model in which every thread sleeps); after the holder dies, exactly one waiter
//! is told `owner_died`; the word ends free.

use super::{Acquired, OwnerWord, Spin, StateWord, Words, World, CHECK_EVERY, TID_MASK};
use crate::sys::deadline::Deadline;
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use loom::sync::{Arc, Condvar, Mutex};
use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::time::Duration;

forward_words!(AtomicU32, AtomicU64);

/// Model threads are tids 1..=3 (0 means "nobody" in the word).
const THREADS: usize = 4;

/// The start time `/proc` reports for a live model thread.
fn start_of(tid: u32) -> u64 {
    1000 + tid as u64
}

/// The futex's queue: waiters asleep, and wakes granted but not yet collected.
#[derive(Default)]
struct Queue {
    asleep: usize,
    granted: usize,
}

/// The kernel as the lock sees it: the futex on the state word, and which threads are gone.
struct Kernel {
    queue: Mutex<Queue>,
    cv: Condvar,
    dead: [AtomicBool; THREADS],
}

impl Kernel {
    fn new() -> Kernel {
        Kernel {
            queue: Mutex::new(Queue::default()),
            cv: Condvar::new(),
            dead: std::array::from_fn(|_| AtomicBool::new(false)),
        }
    }

    fn is_dead(&self, tid: u32) -> bool {
        self.dead.get(tid as usize).is_some_and(|d| d.load(Ordering::SeqCst))
    }

    /// Thread `tid` stops for good; sleepers whose deadline can now pass wake up.
    fn die(&self, tid: u32) {
        let _q = self.queue.lock().unwrap();
        self.dead[tid as usize].store(true, Ordering::SeqCst);
        self.cv.notify_all();
    }
}

/// One model thread's view of the world: the shared kernel and its own clock.
struct Thread<'a> {
    kernel: &'a Kernel,
    clock: Cell<Duration>,
    step: Duration,
}

/// A spinning schedule of one look (the real one makes 11: the same transitions, more often).
struct OneLook(Cell<bool>);

impl Spin for OneLook {
    fn is_completed(&self) -> bool {
        self.0.get()
    }
    fn spin(&self) {
        self.0.set(true);
    }
}

impl World for Thread<'_> {
    type State = AtomicU32;
    type Owner = AtomicU64;
    type Spin = OneLook;

    fn now(&self) -> Duration {
        self.clock.get()
    }

    fn spinner(&self) -> OneLook {
        OneLook(Cell::new(false))
    }

    fn wait(&self, word: &AtomicU32, expected: u32, deadline: Deadline) {
        let until = deadline
            .timespec()
            .map(|t| Duration::new(t.tv_sec as u64, t.tv_nsec as u32))
            .expect("the lock always sleeps until its next check");
        let k = self.kernel;
        let mut q = k.queue.lock().unwrap();
        if word.load(Ordering::SeqCst) != expected {
            return; // EAGAIN
        }
        let times_out = || k.is_dead(expected & TID_MASK);
        if times_out() {
            self.clock.set(until);
            return;
        }
        q.asleep += 1;
        loop {
            if q.granted > 0 {
                q.granted -= 1;
                self.clock.set(self.clock.get() + self.step);
                return;
            }
            if times_out() {
                q.asleep -= 1;
                self.clock.set(until);
                return;
            }
            q = k.cv.wait(q).unwrap();
        }
    }

    fn wake_one(&self, _word: &AtomicU32) -> usize {
        let mut q = self.kernel.queue.lock().unwrap();
        if q.asleep == 0 {
            return 0;
        }
        q.asleep -= 1;
        q.granted += 1;
        self.kernel.cv.notify_all();
        1
    }

    fn thread_start_time(&self, tid: u32) -> std::io::Result<Option<u64>> {
        Ok((!self.kernel.is_dead(tid)).then(|| start_of(tid)))
    }
}

/// A lock word in "shared memory", the data it protects, and the kernel.
struct Lock {
    state: AtomicU32,
    owner: AtomicU64,
    kernel: Kernel,
    /// Entries into the critical section.
    data: UnsafeCell<u32>,
}

impl Lock {
    fn new() -> Arc<Lock> {
        Arc::new(Lock {
            state: AtomicU32::new(0),
            owner: AtomicU64::new(0),
            kernel: Kernel::new(),
            data: UnsafeCell::new(0),
        })
    }

    fn thread(&self, step: Duration) -> Thread<'_> {
        Thread { kernel: &self.kernel, clock: Cell::new(Duration::ZERO), step }
    }

    /// Locks as `tid`, enters the critical section, unlocks; whether the holder had died.
    fn enter(&self, tid: u32, step: Duration) -> bool {
        let world = self.thread(step);
        let w = Words { state: &self.state, owner: &self.owner, world: &world };
        let Some(Acquired { owner_died }) = w.lock(tid, start_of(tid), Deadline::NEVER) else {
            panic!("a lock without a deadline gave up");
        };
        // SAFETY (loom checks it): the lock orders every access to `data`.
        self.data.with_mut(|d| unsafe { *d += 1 });
        w.unlock();
        owner_died
    }

    fn entries(&self) -> u32 {
        // SAFETY: every other thread has been joined.
        self.data.with(|d| unsafe { *d })
    }
}

/// `threads` lockers, each entering `rounds` times: all get in, one at a time, nobody sleeps
/// for ever, and the word ends free.
fn lockers(threads: u32, rounds: u32, step: Duration) {
    loom::model(move || {
        let lock = Lock::new();
        let handles: Vec<_> = (1..=threads)
            .map(|tid| {
                let lock = lock.clone();
                loom::thread::spawn(move || {
                    for _ in 0..rounds {
                        assert!(!lock.enter(tid, step), "nobody died");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(lock.entries(), threads * rounds);
        assert_eq!(lock.state.load(Ordering::Relaxed) & TID_MASK, 0, "left held");
    });
}

#[test]
fn two_lockers_short_sleeps() {
    lockers(2, 2, Duration::ZERO);
}

#[test]
fn two_lockers_long_sleeps() {
    lockers(2, 2, CHECK_EVERY);
}

#[test]
fn three_lockers_short_sleeps() {
    lockers(3, 1, Duration::ZERO);
}

#[test]
fn three_lockers_long_sleeps() {
    lockers(3, 1, CHECK_EVERY);
}

/// Thread 1 takes the lock, writes, and dies holding it at any moment while two others wait:
/// exactly one of them is told the holder died, both get in, and the dead holder's write is
/// seen.
fn dead_holder(step: Duration) {
    loom::model(move || {
        let lock = Lock::new();
        {
            let world = lock.thread(step);
            let w = Words { state: &lock.state, owner: &lock.owner, world: &world };
            assert!(w.lock(1, start_of(1), Deadline::NEVER).is_some());
            // SAFETY: held (no other thread yet).
            lock.data.with_mut(|d| unsafe { *d += 1 });
        }
        let waiters: Vec<_> = (2..=3)
            .map(|tid| {
                let lock = lock.clone();
                loom::thread::spawn(move || lock.enter(tid, step))
            })
            .collect();
        lock.kernel.die(1);
        let died = waiters.into_iter().map(|h| h.join().unwrap()).filter(|&d| d).count();
        assert_eq!(died, 1, "exactly one waiter takes over");
        assert_eq!(lock.entries(), 3);
        assert_eq!(lock.state.load(Ordering::Relaxed) & TID_MASK, 0, "left held");
    });
}

#[test]
fn dead_holder_short_sleeps() {
    dead_holder(Duration::ZERO);
}

#[test]
fn dead_holder_long_sleeps() {
    dead_holder(CHECK_EVERY);
}
