//! Thread queues: the intent of CPython's `Lib/test/test_queue.py` (3.13, with shutdown),
//! `test_deque`'s maxlen tests, property tests against a sequential model, and a stress run
//! (nothing lost or duplicated).
//!
//! Sleeps below only make it likely that a thread is already blocked when the main thread
//! acts; no assertion depends on them, and nothing asserts a duration.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtOrd};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use procshare::thread_queue::{Deque, LifoQueue, PriorityQueue, Queue, SimpleQueue};
use procshare::Error;
use proptest::prelude::*;

mod common;
use common::{within, HANG};

const SHORT: Duration = Duration::from_millis(20);

fn is_shutdown<T: std::fmt::Debug>(r: procshare::Result<T>) -> bool {
    matches!(r, Err(Error::ShutDown))
}

/// The one surface the three disciplines share, so each test runs on all three.
trait AnyQueue: Send + Sync + 'static {
    fn mk(maxsize: usize) -> Self;
    fn put(&self, x: i64) -> procshare::Result<()>;
    fn put_timeout(&self, x: i64, t: Duration) -> procshare::Result<()>;
    fn put_nowait(&self, x: i64) -> procshare::Result<()>;
    fn get(&self) -> procshare::Result<i64>;
    fn get_timeout(&self, t: Duration) -> procshare::Result<i64>;
    fn get_nowait(&self) -> procshare::Result<i64>;
    fn qsize(&self) -> usize;
    fn empty(&self) -> bool;
    fn full(&self) -> bool;
    fn task_done(&self) -> procshare::Result<()>;
    fn join(&self);
    fn unfinished_tasks(&self) -> usize;
    fn shutdown(&self, immediate: bool);
    fn set_maxsize(&self, n: usize);
}

macro_rules! any_queue {
    ($t:ident) => {
        impl AnyQueue for $t<i64> {
            fn mk(maxsize: usize) -> Self {
                if maxsize == 0 {
                    $t::new()
                } else {
                    $t::bounded(maxsize)
                }
            }
            fn put(&self, x: i64) -> procshare::Result<()> {
                $t::put(self, x)
            }
            fn put_timeout(&self, x: i64, t: Duration) -> procshare::Result<()> {
                $t::put_timeout(self, x, t)
            }
            fn put_nowait(&self, x: i64) -> procshare::Result<()> {
                $t::put_nowait(self, x)
            }
            fn get(&self) -> procshare::Result<i64> {
                $t::get(self)
            }
            fn get_timeout(&self, t: Duration) -> procshare::Result<i64> {
                $t::get_timeout(self, t)
            }
            fn get_nowait(&self) -> procshare::Result<i64> {
                $t::get_nowait(self)
            }
            fn qsize(&self) -> usize {
                $t::qsize(self)
            }
            fn empty(&self) -> bool {
                $t::empty(self)
            }
            fn full(&self) -> bool {
                $t::full(self)
            }
            fn task_done(&self) -> procshare::Result<()> {
                $t::task_done(self)
            }
            fn join(&self) {
                $t::join(self)
            }
            fn unfinished_tasks(&self) -> usize {
                $t::unfinished_tasks(self)
            }
            fn shutdown(&self, immediate: bool) {
                $t::shutdown(self, immediate)
            }
            fn set_maxsize(&self, n: usize) {
                $t::set_maxsize(self, n)
            }
        }
    };
}
any_queue!(Queue);
any_queue!(LifoQueue);
any_queue!(PriorityQueue);

/// `#[test]`s named `$name_queue`, `$name_lifo`, `$name_priority` running `$body::<Q>()`.
macro_rules! for_each_discipline {
    ($($name:ident),* $(,)?) => {
        mod fifo { $(#[test] fn $name() { super::$name::<procshare::thread_queue::Queue<i64>>() })* }
        mod lifo { $(#[test] fn $name() { super::$name::<procshare::thread_queue::LifoQueue<i64>>() })* }
        mod priority { $(#[test] fn $name() { super::$name::<procshare::thread_queue::PriorityQueue<i64>>() })* }
    };
}

for_each_discipline!(
    basic_full_empty_and_blocking,
    task_done_too_many_times,
    join_with_workers,
    nowait,
    shrinking_queue,
    zero_and_huge_maxsize,
    shutdown_empty,
    shutdown_nonempty,
    shutdown_immediate,
    shutdown_allowed_transitions,
    shutdown_all_methods_in_one_thread,
    shutdown_immediate_all_methods_in_one_thread,
    shutdown_get_racing_getters,
    shutdown_immediate_get_racing_getters,
    shutdown_blocked_putters,
    shutdown_pending_get,
    shutdown_join,
    shutdown_immediate_join,
    shutdown_immediate_put_join,
    shutdown_get_task_done_join,
    shutdown_all_methods_in_many_threads,
    shutdown_immediate_all_methods_in_many_threads,
    timeouts_at_the_extremes,
);

// ---------------------------------------------------------------------------------------------
// Ordering (test_basic's `simple_queue_test`).

fn drain<Q: AnyQueue>(q: &Q) -> Vec<i64> {
    std::iter::from_fn(|| q.get_nowait().ok()).collect()
}

#[test]
fn order_of_each_discipline() {
    let fifo = Queue::new();
    let lifo = LifoQueue::new();
    let prio = PriorityQueue::new();
    for x in [111, 333, 222] {
        AnyQueue::put(&fifo, x).unwrap();
        AnyQueue::put(&lifo, x).unwrap();
        AnyQueue::put(&prio, x).unwrap();
    }
    assert_eq!(drain(&fifo), [111, 333, 222]);
    assert_eq!(drain(&lifo), [222, 333, 111]);
    assert_eq!(drain(&prio), [111, 222, 333]);
}

/// Ordered by `key` only, so equal keys are distinguishable by `id`.
#[derive(Debug, Clone, Copy)]
struct Keyed {
    key: u8,
    id: u32,
}
impl PartialEq for Keyed {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for Keyed {}
impl PartialOrd for Keyed {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Keyed {
    fn cmp(&self, o: &Self) -> Ordering {
        self.key.cmp(&o.key)
    }
}

#[test]
fn priority_queue_is_stable() {
    let q = PriorityQueue::new();
    let keys = [3u8, 1, 3, 2, 1, 3, 2, 1];
    for (id, &key) in keys.iter().enumerate() {
        q.put(Keyed { key, id: id as u32 }).unwrap();
    }
    let out: Vec<(u8, u32)> =
        std::iter::from_fn(|| q.get_nowait().ok()).map(|k| (k.key, k.id)).collect();
    assert_eq!(out, [(1, 1), (1, 4), (1, 7), (2, 3), (2, 6), (3, 0), (3, 2), (3, 5)]);
}

// ---------------------------------------------------------------------------------------------
// test_basic, test_queue_task_done, test_queue_join, test_nowait, test_shrinking_queue.

fn basic_full_empty_and_blocking<Q: AnyQueue>() {
    let q = Arc::new(Q::mk(3));
    assert!(q.empty() && !q.full() && q.qsize() == 0);
    for x in [111, 333, 222] {
        q.put(x).unwrap();
    }
    assert!(q.full() && !q.empty() && q.qsize() == 3);
    assert!(matches!(q.put_nowait(444), Err(Error::Full)));
    assert!(matches!(q.put_timeout(444, SHORT), Err(Error::Full)));
    assert!(matches!(q.put_timeout(444, Duration::ZERO), Err(Error::Full)));
    assert_eq!(q.qsize(), 3);

    // A put blocked on a full queue is released by a get in another thread.
    let putter = {
        let q = Arc::clone(&q);
        thread::spawn(move || q.put(444))
    };
    thread::sleep(SHORT);
    let first = q.get().unwrap();
    within("blocked put", move || putter.join().unwrap()).unwrap();
    assert_eq!(q.qsize(), 3);
    let mut all = vec![first];
    all.extend(drain(&*q));
    all.sort();
    assert_eq!(all, [111, 222, 333, 444]);
    assert!(matches!(q.get_nowait(), Err(Error::Empty)));
    assert!(matches!(q.get_timeout(SHORT), Err(Error::Empty)));
    assert!(matches!(q.get_timeout(Duration::ZERO), Err(Error::Empty)));

    // A get blocked on an empty queue is released by a put in another thread.
    let getter = {
        let q = Arc::clone(&q);
        thread::spawn(move || q.get())
    };
    thread::sleep(SHORT);
    q.put(555).unwrap();
    assert_eq!(within("blocked get", move || getter.join().unwrap()).unwrap(), 555);

    // A timed get succeeds when an item arrives in time.
    let getter = {
        let q = Arc::clone(&q);
        thread::spawn(move || q.get_timeout(HANG))
    };
    thread::sleep(SHORT);
    q.put(666).unwrap();
    assert_eq!(within("timed get", move || getter.join().unwrap()).unwrap(), 666);
}

fn task_done_too_many_times<Q: AnyQueue>() {
    let q = Q::mk(0);
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooManyTimes)));
    q.put(1).unwrap();
    assert_eq!(q.unfinished_tasks(), 1);
    q.get().unwrap();
    q.task_done().unwrap();
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooManyTimes)));
    assert_eq!(q.unfinished_tasks(), 0);
}

fn join_with_workers<Q: AnyQueue>() {
    let q = Arc::new(Q::mk(0));
    q.join(); // fresh queue: at once
    let total = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (q, total) = (Arc::clone(&q), Arc::clone(&total));
            thread::spawn(move || {
                while let Ok(x) = q.get() {
                    if x < 0 {
                        q.task_done().unwrap();
                        break;
                    }
                    total.fetch_add(x as usize, AtOrd::SeqCst);
                    q.task_done().unwrap();
                }
            })
        })
        .collect();
    for round in 0..2 {
        for i in 0..100 {
            q.put(i).unwrap();
        }
        let q2 = Arc::clone(&q);
        within("join", move || q2.join());
        assert_eq!(total.load(AtOrd::SeqCst), 4950 * (round + 1));
    }
    q.put(-1).unwrap();
    q.put(-1).unwrap();
    for w in workers {
        within("worker exit", move || w.join().unwrap());
    }
    q.join();
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooManyTimes)));
}

fn nowait<Q: AnyQueue>() {
    let q = Q::mk(3);
    for i in 0..3 {
        q.put_nowait(i).unwrap();
    }
    assert!(matches!(q.put_nowait(3), Err(Error::Full)));
    for _ in 0..3 {
        q.get_nowait().unwrap();
    }
    assert!(matches!(q.get_nowait(), Err(Error::Empty)));
}

fn shrinking_queue<Q: AnyQueue>() {
    let q = Q::mk(3);
    q.put(1).unwrap();
    q.put(2).unwrap();
    q.put(3).unwrap();
    assert!(q.full());
    q.set_maxsize(2);
    assert!(q.full());
    assert!(matches!(q.put_nowait(4), Err(Error::Full)));
    q.get().unwrap();
    assert!(matches!(q.put_nowait(4), Err(Error::Full)));
    q.set_maxsize(0); // unbounded
    assert!(!q.full());
    q.put_nowait(4).unwrap();
    q.put_nowait(5).unwrap();
    assert_eq!(q.qsize(), 4);
}

fn zero_and_huge_maxsize<Q: AnyQueue>() {
    // 0 is unbounded, as in Python.
    let q = Q::mk(0);
    for i in 0..10_000 {
        q.put_nowait(i).unwrap();
    }
    assert!(!q.full());
    // A huge bound allocates nothing up front and never reports full.
    let q = Q::mk(usize::MAX);
    for i in 0..10_000 {
        q.put_nowait(i).unwrap();
    }
    assert!(!q.full());
    assert_eq!(q.qsize(), 10_000);
    let q = Q::mk(1);
    q.put(1).unwrap();
    assert!(q.full());
}

fn timeouts_at_the_extremes<Q: AnyQueue>() {
    // A timeout too large for `Instant` means "forever", and must neither panic nor spin.
    let q = Arc::new(Q::mk(1));
    q.put_timeout(1, Duration::MAX).unwrap();
    assert_eq!(q.get_timeout(Duration::MAX).unwrap(), 1);
    let getter = {
        let q = Arc::clone(&q);
        thread::spawn(move || q.get_timeout(Duration::MAX))
    };
    thread::sleep(SHORT);
    q.put(2).unwrap();
    assert_eq!(within("get_timeout(MAX)", move || getter.join().unwrap()).unwrap(), 2);
}

// ---------------------------------------------------------------------------------------------
// Shutdown (3.13): test_shutdown_* .

fn shutdown_empty<Q: AnyQueue>() {
    let q = Q::mk(0);
    q.shutdown(false);
    assert!(is_shutdown(q.put(1)));
    assert!(is_shutdown(q.get()));
    assert!(is_shutdown(q.get_nowait()));
    assert!(is_shutdown(q.get_timeout(SHORT)));
}

fn shutdown_nonempty<Q: AnyQueue>() {
    let q = Q::mk(0);
    q.put(1).unwrap();
    q.shutdown(false);
    assert_eq!(q.get().unwrap(), 1);
    assert!(is_shutdown(q.get()));
}

fn shutdown_immediate<Q: AnyQueue>() {
    let q = Q::mk(0);
    q.put(1).unwrap();
    q.shutdown(true);
    assert!(is_shutdown(q.get()));
    assert_eq!(q.qsize(), 0);
    assert_eq!(q.unfinished_tasks(), 0);
    q.join();
}

fn shutdown_allowed_transitions<Q: AnyQueue>() {
    let q = Q::mk(0);
    q.put(1).unwrap();
    q.shutdown(false);
    q.shutdown(false);
    assert_eq!(q.qsize(), 1);
    q.shutdown(true); // upgrade: drops the item
    assert_eq!(q.qsize(), 0);
    q.shutdown(true);
    q.shutdown(false);
    assert!(is_shutdown(q.put(2)));
    assert!(is_shutdown(q.get_nowait()));
}

fn shutdown_all_methods_in_one_thread<Q: AnyQueue>() {
    let q = Q::mk(2);
    q.put(1).unwrap();
    q.put(2).unwrap();
    q.shutdown(false);
    // ShutDown comes before Full, even for put_nowait.
    assert!(is_shutdown(q.put(3)));
    assert!(is_shutdown(q.put_nowait(3)));
    assert!(is_shutdown(q.put_timeout(3, SHORT)));
    assert!(q.get().is_ok());
    assert!(q.get_nowait().is_ok());
    q.task_done().unwrap();
    q.task_done().unwrap();
    assert!(is_shutdown(q.get()));
    assert!(is_shutdown(q.get_nowait()));
    assert!(is_shutdown(q.get_timeout(SHORT)));
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooManyTimes)));
    q.join();
    assert!(q.empty() && !q.full());
}

fn shutdown_immediate_all_methods_in_one_thread<Q: AnyQueue>() {
    let q = Q::mk(2);
    q.put(1).unwrap();
    q.put(2).unwrap();
    q.shutdown(true);
    assert!(is_shutdown(q.put(3)));
    assert!(is_shutdown(q.put_nowait(3)));
    assert!(is_shutdown(q.get()));
    assert!(is_shutdown(q.get_nowait()));
    assert!(is_shutdown(q.get_timeout(SHORT)));
    // The two dropped items settled their tasks.
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooManyTimes)));
    q.join();
    assert_eq!(q.qsize(), 0);
}

/// 3 getters racing for 2 items: exactly one ends with ShutDown (soft) / all three after an
/// immediate shutdown of a queue nobody emptied.
fn racing_getters<Q: AnyQueue>(immediate: bool) {
    let q = Arc::new(Q::mk(0));
    let start = Arc::new(std::sync::Barrier::new(4));
    let getters: Vec<_> = (0..3)
        .map(|_| {
            let (q, start) = (Arc::clone(&q), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                q.get()
            })
        })
        .collect();
    start.wait();
    thread::sleep(SHORT); // likely all three are blocked now
    q.put(1).unwrap();
    q.put(2).unwrap();
    q.shutdown(immediate);
    let results: Vec<_> =
        getters.into_iter().map(|g| within("getter", move || g.join().unwrap())).collect();
    let shut = results.iter().filter(|r| matches!(r, Err(Error::ShutDown))).count();
    let got = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(shut + got, 3, "{results:?}");
    if immediate {
        // Items not yet taken at the shutdown were dropped.
        assert!(shut >= 1);
        assert_eq!(q.unfinished_tasks(), got);
    } else {
        assert_eq!(shut, 1, "{results:?}");
        assert_eq!(q.unfinished_tasks(), 2);
    }
    assert_eq!(q.qsize(), 0);
}

fn shutdown_get_racing_getters<Q: AnyQueue>() {
    racing_getters::<Q>(false)
}

fn shutdown_immediate_get_racing_getters<Q: AnyQueue>() {
    racing_getters::<Q>(true)
}

fn shutdown_blocked_putters<Q: AnyQueue>() {
    for immediate in [false, true] {
        let q = Arc::new(Q::mk(1));
        q.put(0).unwrap();
        let putters: Vec<_> = (0..3)
            .map(|i| {
                let q = Arc::clone(&q);
                thread::spawn(move || if i == 0 { q.put_timeout(i, HANG) } else { q.put(i) })
            })
            .collect();
        thread::sleep(SHORT);
        q.shutdown(immediate);
        for p in putters {
            assert!(is_shutdown(within("blocked putter", move || p.join().unwrap())));
        }
        assert_eq!(q.qsize(), if immediate { 0 } else { 1 });
    }
}

fn shutdown_pending_get<Q: AnyQueue>() {
    for immediate in [false, true] {
        let q = Arc::new(Q::mk(0));
        let getters: Vec<_> = (0..2)
            .map(|i| {
                let q = Arc::clone(&q);
                thread::spawn(move || if i == 0 { q.get() } else { q.get_timeout(HANG) })
            })
            .collect();
        thread::sleep(SHORT);
        q.shutdown(immediate);
        for g in getters {
            assert!(is_shutdown(within("pending get", move || g.join().unwrap())));
        }
    }
}

fn shutdown_join<Q: AnyQueue>() {
    // Soft: a joiner waits until the remaining items are taken and done.
    let q = Arc::new(Q::mk(0));
    q.put(1).unwrap();
    q.put(2).unwrap();
    q.shutdown(false);
    let done = Arc::new(AtomicBool::new(false));
    let joiner = {
        let (q, done) = (Arc::clone(&q), Arc::clone(&done));
        thread::spawn(move || {
            q.join();
            done.store(true, AtOrd::SeqCst);
        })
    };
    thread::sleep(SHORT);
    assert!(!done.load(AtOrd::SeqCst), "join returned with 2 tasks unfinished");
    q.get().unwrap();
    q.task_done().unwrap();
    q.get().unwrap();
    assert!(!done.load(AtOrd::SeqCst), "join returned with 1 task unfinished");
    q.task_done().unwrap();
    within("joiner", move || joiner.join().unwrap());
    assert!(done.load(AtOrd::SeqCst));
}

fn shutdown_immediate_join<Q: AnyQueue>() {
    let q = Arc::new(Q::mk(0));
    q.put(1).unwrap();
    q.put(2).unwrap();
    let joiner = {
        let q = Arc::clone(&q);
        thread::spawn(move || q.join())
    };
    thread::sleep(SHORT);
    q.shutdown(true);
    within("joiner", move || joiner.join().unwrap());
    assert_eq!(q.unfinished_tasks(), 0);
}

fn shutdown_immediate_put_join<Q: AnyQueue>() {
    // Items taken before an immediate shutdown still need their task_done.
    let q = Arc::new(Q::mk(0));
    for i in 0..3 {
        q.put(i).unwrap();
    }
    q.get().unwrap();
    q.shutdown(true);
    assert_eq!(q.unfinished_tasks(), 1);
    let joiner = {
        let q = Arc::clone(&q);
        thread::spawn(move || q.join())
    };
    thread::sleep(SHORT);
    assert!(!joiner.is_finished(), "join returned with a taken item not done");
    q.task_done().unwrap();
    within("joiner", move || joiner.join().unwrap());
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooManyTimes)));
}

fn shutdown_get_task_done_join<Q: AnyQueue>() {
    let q = Arc::new(Q::mk(2));
    q.put(1).unwrap();
    q.put(2).unwrap();
    q.shutdown(false);
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                let mut n = 0;
                while q.get().is_ok() {
                    q.task_done().unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let q2 = Arc::clone(&q);
    within("join", move || q2.join());
    let n: i32 = workers.into_iter().map(|w| within("worker", move || w.join().unwrap())).sum();
    assert_eq!(n, 2);
}

/// test_shutdown_(immediate_)all_methods_in_many_threads: 4 writers, 6 readers, 2 joiners,
/// one shutdown. Every reader ends with ShutDown; every joiner returns.
fn all_methods_in_many_threads<Q: AnyQueue>(immediate: bool) {
    const N: i64 = 1 << 14;
    let q = Arc::new(Q::mk(64));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                for i in 0..N {
                    if q.put(w * N + i).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..6)
        .map(|_| {
            let q = Arc::clone(&q);
            thread::spawn(move || loop {
                match q.get() {
                    Ok(_) => q.task_done().unwrap(),
                    Err(e) => return e,
                }
            })
        })
        .collect();
    let joiners: Vec<_> = (0..2)
        .map(|_| {
            let q = Arc::clone(&q);
            thread::spawn(move || q.join())
        })
        .collect();
    thread::sleep(SHORT);
    q.shutdown(immediate);
    for w in writers {
        within("writer", move || w.join().unwrap());
    }
    for r in readers {
        let e = within("reader", move || r.join().unwrap());
        assert!(matches!(e, Error::ShutDown), "{e:?}");
    }
    for j in joiners {
        within("joiner", move || j.join().unwrap());
    }
    assert_eq!(q.qsize(), 0);
    assert_eq!(q.unfinished_tasks(), 0);
}

fn shutdown_all_methods_in_many_threads<Q: AnyQueue>() {
    all_methods_in_many_threads::<Q>(false)
}

fn shutdown_immediate_all_methods_in_many_threads<Q: AnyQueue>() {
    all_methods_in_many_threads::<Q>(true)
}

// ---------------------------------------------------------------------------------------------
// Items' lifetimes, panics, auto traits.

#[test]
fn immediate_shutdown_drops_items_outside_the_lock() {
    /// An item whose drop uses the queue it was in: must not deadlock.
    struct Reentrant(Arc<Queue<Reentrant>>, Arc<AtomicUsize>);
    impl Drop for Reentrant {
        fn drop(&mut self) {
            let _ = self.0.qsize();
            self.1.fetch_add(1, AtOrd::SeqCst);
        }
    }
    let q = Arc::new(Queue::new());
    let dropped = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        q.put(Reentrant(Arc::clone(&q), Arc::clone(&dropped))).unwrap();
    }
    let q2 = Arc::clone(&q);
    within("shutdown(true)", move || q2.shutdown(true));
    assert_eq!(dropped.load(AtOrd::SeqCst), 3);
}

#[test]
fn get_hands_over_the_only_reference() {
    let item = Arc::new(5);
    let q = Queue::new();
    q.put(Arc::clone(&item)).unwrap();
    let got = q.get().unwrap();
    drop(got);
    assert_eq!(Arc::strong_count(&item), 1);
    let s = SimpleQueue::new();
    s.put(Arc::clone(&item));
    drop(s.get().unwrap());
    assert_eq!(Arc::strong_count(&item), 1);
}

/// FailingQueueTest: an `Ord` that panics inside `put`/`get` leaves the queue usable and a
/// failed put does not count a task.
#[test]
fn panicking_ord_leaves_queue_usable() {
    static ARMED: AtomicBool = AtomicBool::new(false);
    #[derive(Debug, PartialEq, Eq)]
    struct Touchy(i32);
    impl PartialOrd for Touchy {
        fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Touchy {
        fn cmp(&self, o: &Self) -> Ordering {
            if ARMED.load(AtOrd::SeqCst) {
                panic!("comparison failed");
            }
            self.0.cmp(&o.0)
        }
    }
    let q = PriorityQueue::new();
    q.put(Touchy(2)).unwrap();
    q.put(Touchy(1)).unwrap();
    ARMED.store(true, AtOrd::SeqCst);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| q.put(Touchy(0))));
    assert!(r.is_err());
    ARMED.store(false, AtOrd::SeqCst);
    // The lock is free and the failed put did not count.
    assert_eq!(q.unfinished_tasks(), 2);
    let mut got: Vec<i32> = std::iter::from_fn(|| q.get_nowait().ok()).map(|t| t.0).collect();
    got.sort();
    // The item whose comparison panicked may or may not be stored (heap sift unwinding keeps
    // it); either way nothing else is lost.
    assert!(got == [1, 2] || got == [0, 1, 2], "{got:?}");
    q.put(Touchy(7)).unwrap();
    assert_eq!(q.get().unwrap().0, 7);
}

#[test]
fn all_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Queue<String>>();
    check::<LifoQueue<String>>();
    check::<PriorityQueue<String>>();
    check::<SimpleQueue<String>>();
    check::<Deque<String>>();
}

// ---------------------------------------------------------------------------------------------
// SimpleQueue (BaseSimpleQueueTest).

#[test]
fn simple_queue_basic() {
    let q = Arc::new(SimpleQueue::new());
    assert!(q.empty());
    assert_eq!(q.qsize(), 0);
    q.put(1);
    q.put_nowait(2);
    assert_eq!(q.qsize(), 2);
    assert!(!q.empty());
    assert_eq!(q.get().unwrap(), 1);
    q.put(3); // lands behind 2 even though 2 has moved to the consumers' side
    assert_eq!(q.get_nowait().unwrap(), 2);
    assert_eq!(q.get_timeout(SHORT).unwrap(), 3);
    assert!(matches!(q.get_nowait(), Err(Error::Empty)));
    assert!(matches!(q.get_timeout(SHORT), Err(Error::Empty)));
    assert!(matches!(q.get_timeout(Duration::ZERO), Err(Error::Empty)));
    let getter = {
        let q = Arc::clone(&q);
        thread::spawn(move || q.get())
    };
    thread::sleep(SHORT);
    q.put(4);
    assert_eq!(within("blocked get", move || getter.join().unwrap()).unwrap(), 4);
    let getter = {
        let q = Arc::clone(&q);
        thread::spawn(move || q.get_timeout(Duration::MAX))
    };
    thread::sleep(SHORT);
    q.put(5);
    assert_eq!(within("timed get", move || getter.join().unwrap()).unwrap(), 5);
}

#[test]
fn simple_queue_order_one_producer_one_consumer() {
    let q = Arc::new(SimpleQueue::new());
    let n = 100_000u32;
    let producer = {
        let q = Arc::clone(&q);
        thread::spawn(move || (0..n).for_each(|i| q.put(i)))
    };
    let got = within("consumer", {
        let q = Arc::clone(&q);
        move || (0..n).map(|_| q.get().unwrap()).collect::<Vec<_>>()
    });
    producer.join().unwrap();
    assert!(got.iter().copied().eq(0..n));
}

/// test_many_threads(_nonblock, _timeout): every item arrives exactly once.
#[test]
fn simple_queue_many_threads_each_get_flavour() {
    for flavour in 0..3 {
        let q = Arc::new(SimpleQueue::new());
        let (producers, consumers, per) = (8usize, 8usize, 5_000usize);
        let total = producers * per;
        let taken = Arc::new(AtomicUsize::new(0));
        let seen: Arc<Vec<AtomicBool>> =
            Arc::new((0..total).map(|_| AtomicBool::new(false)).collect());
        let mut hs = Vec::new();
        for p in 0..producers {
            let q = Arc::clone(&q);
            hs.push(thread::spawn(move || (0..per).for_each(|i| q.put(p * per + i))));
        }
        for _ in 0..consumers {
            let (q, taken, seen) = (Arc::clone(&q), Arc::clone(&taken), Arc::clone(&seen));
            hs.push(thread::spawn(move || {
                while taken.load(AtOrd::SeqCst) < total {
                    let r = match flavour {
                        0 => q.get_timeout(Duration::from_millis(5)),
                        1 => q.get_nowait(),
                        _ => q.get_timeout(Duration::ZERO),
                    };
                    match r {
                        Ok(x) => {
                            assert!(!seen[x].swap(true, AtOrd::SeqCst), "{x} twice");
                            taken.fetch_add(1, AtOrd::SeqCst);
                        }
                        Err(Error::Empty) => thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
            }));
        }
        for h in hs {
            within("thread", move || h.join().unwrap());
        }
        assert!(seen.iter().all(|s| s.load(AtOrd::SeqCst)));
        assert!(q.empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Deque (test_deque: test_maxlen, test_maxlen_zero, test_len).

#[test]
fn deque_basics() {
    let d = Deque::new();
    assert_eq!(d.maxlen(), None);
    assert!(d.is_empty());
    assert_eq!(d.pop(), None);
    assert_eq!(d.pop_left(), None);
    d.append(2);
    d.append(3);
    d.append_left(1);
    assert_eq!(d.len(), 3);
    assert_eq!(d.to_vec(), [1, 2, 3]);
    assert_eq!(format!("{d:?}"), "deque([1, 2, 3])");
    assert_eq!(d.pop(), Some(3));
    assert_eq!(d.pop_left(), Some(1));
    d.clear();
    assert!(d.is_empty());
}

#[test]
fn deque_maxlen_drops_from_the_other_end() {
    let d = Deque::with_maxlen(3);
    assert_eq!(d.maxlen(), Some(3));
    for i in 0..10 {
        d.append(i);
    }
    assert_eq!(d.to_vec(), [7, 8, 9]);
    assert_eq!(format!("{d:?}"), "deque([7, 8, 9], maxlen=3)");
    d.append_left(6);
    assert_eq!(d.to_vec(), [6, 7, 8]);
    d.append_left(5);
    assert_eq!(d.to_vec(), [5, 6, 7]);
    assert_eq!(d.len(), 3);

    let zero = Deque::with_maxlen(0);
    for i in 0..5 {
        zero.append(i);
        zero.append_left(i);
    }
    assert!(zero.is_empty());
    assert_eq!(zero.pop(), None);

    let huge = Deque::with_maxlen(usize::MAX);
    (0..1000).for_each(|i| huge.append(i));
    assert_eq!(huge.len(), 1000);
}

#[test]
fn deque_evicted_items_are_dropped() {
    let item = Arc::new(());
    let d = Deque::with_maxlen(1);
    d.append(Arc::clone(&item));
    d.append(Arc::clone(&item));
    assert_eq!(Arc::strong_count(&item), 2);
    d.clear();
    assert_eq!(Arc::strong_count(&item), 1);
}

// ---------------------------------------------------------------------------------------------
// Property tests: each queue against a sequential model.

#[derive(Debug, Clone)]
enum Op {
    Put(u8),
    PutNowait(u8),
    PutTimeoutZero(u8),
    Get,
    GetNowait,
    GetTimeoutZero,
    TaskDone,
    Qsize,
    Shutdown(bool),
    SetMaxsize(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u8>().prop_map(|k| Op::Put(k % 4)),
        2 => any::<u8>().prop_map(|k| Op::PutNowait(k % 4)),
        1 => any::<u8>().prop_map(|k| Op::PutTimeoutZero(k % 4)),
        3 => Just(Op::Get),
        2 => Just(Op::GetNowait),
        1 => Just(Op::GetTimeoutZero),
        2 => Just(Op::TaskDone),
        1 => Just(Op::Qsize),
        1 => prop::bool::weighted(0.3).prop_map(Op::Shutdown),
        1 => (0usize..5).prop_map(Op::SetMaxsize),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Discipline {
    Fifo,
    Lifo,
    Priority,
}

/// queue.py, sequentially.
struct Model {
    d: Discipline,
    items: Vec<Keyed>,
    maxsize: usize,
    unfinished: usize,
    shutdown: bool,
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Ok,
    Item(u32),
    Full,
    Empty,
    ShutDown,
    TooMany,
    Size(usize),
    WouldBlock,
}

impl Model {
    fn full(&self) -> bool {
        self.maxsize > 0 && self.items.len() >= self.maxsize
    }
    fn put(&mut self, x: Keyed, block: bool) -> Outcome {
        if self.shutdown {
            return Outcome::ShutDown;
        }
        if self.full() {
            return if block { Outcome::WouldBlock } else { Outcome::Full };
        }
        self.items.push(x);
        self.unfinished += 1;
        Outcome::Ok
    }
    fn get(&mut self, block: bool) -> Outcome {
        if self.items.is_empty() {
            return if self.shutdown {
                Outcome::ShutDown
            } else if block {
                Outcome::WouldBlock
            } else {
                Outcome::Empty
            };
        }
        let i = match self.d {
            Discipline::Fifo => 0,
            Discipline::Lifo => self.items.len() - 1,
            // The first of the smallest: stable.
            Discipline::Priority => {
                (0..self.items.len()).min_by_key(|&i| (self.items[i].key, i)).unwrap_or(0)
            }
        };
        Outcome::Item(self.items.remove(i).id)
    }
}

trait KeyedQueue {
    fn mk(maxsize: usize) -> Self;
    fn run(&self, op: &Op, id: u32) -> Outcome;
}

fn outcome<T>(r: procshare::Result<T>, f: impl FnOnce(T) -> Outcome) -> Outcome {
    match r {
        Ok(x) => f(x),
        Err(Error::Full) => Outcome::Full,
        Err(Error::Empty) => Outcome::Empty,
        Err(Error::ShutDown) => Outcome::ShutDown,
        Err(Error::TaskDoneTooManyTimes) => Outcome::TooMany,
        Err(e) => panic!("unexpected {e}"),
    }
}

macro_rules! keyed_queue {
    ($t:ident) => {
        impl KeyedQueue for $t<Keyed> {
            fn mk(maxsize: usize) -> Self {
                $t::bounded(maxsize)
            }
            fn run(&self, op: &Op, id: u32) -> Outcome {
                let ok = |()| Outcome::Ok;
                let item = |k: Keyed| Outcome::Item(k.id);
                match *op {
                    Op::Put(key) => outcome(self.put(Keyed { key, id }), ok),
                    Op::PutNowait(key) => outcome(self.put_nowait(Keyed { key, id }), ok),
                    Op::PutTimeoutZero(key) => {
                        outcome(self.put_timeout(Keyed { key, id }, Duration::ZERO), ok)
                    }
                    Op::Get => outcome(self.get(), item),
                    Op::GetNowait => outcome(self.get_nowait(), item),
                    Op::GetTimeoutZero => outcome(self.get_timeout(Duration::ZERO), item),
                    Op::TaskDone => outcome(self.task_done(), ok),
                    Op::Qsize => Outcome::Size(self.qsize()),
                    Op::Shutdown(i) => {
                        self.shutdown(i);
                        Outcome::Ok
                    }
                    Op::SetMaxsize(n) => {
                        self.set_maxsize(n);
                        Outcome::Ok
                    }
                }
            }
        }
    };
}
keyed_queue!(Queue);
keyed_queue!(LifoQueue);
keyed_queue!(PriorityQueue);

fn check_against_model<Q: KeyedQueue>(d: Discipline, maxsize: usize, ops: &[Op]) {
    let q = Q::mk(maxsize);
    let mut m = Model { d, items: Vec::new(), maxsize, unfinished: 0, shutdown: false };
    for (id, op) in ops.iter().enumerate() {
        let id = id as u32;
        let expected = match *op {
            Op::Put(key) => m.put(Keyed { key, id }, true),
            Op::PutNowait(key) | Op::PutTimeoutZero(key) => m.put(Keyed { key, id }, false),
            Op::Get => m.get(true),
            Op::GetNowait => m.get(false),
            Op::GetTimeoutZero => m.get(false),
            Op::TaskDone => {
                if m.unfinished == 0 {
                    Outcome::TooMany
                } else {
                    m.unfinished -= 1;
                    Outcome::Ok
                }
            }
            Op::Qsize => Outcome::Size(m.items.len()),
            Op::Shutdown(immediate) => {
                m.shutdown = true;
                if immediate {
                    m.unfinished = m.unfinished.saturating_sub(m.items.len());
                    m.items.clear();
                }
                Outcome::Ok
            }
            Op::SetMaxsize(n) => {
                m.maxsize = n;
                Outcome::Ok
            }
        };
        if expected == Outcome::WouldBlock {
            continue; // a blocking call the model knows would wait forever
        }
        let got = q.run(op, id);
        assert_eq!(got, expected, "op #{id} {op:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn queue_matches_model(maxsize in 0usize..5, ops in prop::collection::vec(op(), 0..80)) {
        check_against_model::<Queue<Keyed>>(Discipline::Fifo, maxsize, &ops);
    }

    #[test]
    fn lifo_queue_matches_model(maxsize in 0usize..5, ops in prop::collection::vec(op(), 0..80)) {
        check_against_model::<LifoQueue<Keyed>>(Discipline::Lifo, maxsize, &ops);
    }

    #[test]
    fn priority_queue_matches_model(maxsize in 0usize..5, ops in prop::collection::vec(op(), 0..80)) {
        check_against_model::<PriorityQueue<Keyed>>(Discipline::Priority, maxsize, &ops);
    }

    #[test]
    fn simple_queue_matches_model(ops in prop::collection::vec(prop::option::of(any::<u16>()), 0..200)) {
        // Some(x): put x; None: get_nowait.
        let q = SimpleQueue::new();
        let mut m = VecDeque::new();
        for op in ops {
            match op {
                Some(x) => { q.put(x); m.push_back(x); }
                None => {
                    let got = q.get_nowait().ok();
                    prop_assert_eq!(got, m.pop_front());
                }
            }
            prop_assert_eq!(q.qsize(), m.len());
        }
    }

    #[test]
    fn deque_matches_model(
        maxlen in prop::option::of(0usize..5),
        ops in prop::collection::vec((0u8..6, any::<u16>()), 0..100),
    ) {
        let d = match maxlen { Some(n) => Deque::with_maxlen(n), None => Deque::new() };
        let mut m: VecDeque<u16> = VecDeque::new();
        for (op, x) in ops {
            match op {
                0 => {
                    d.append(x);
                    m.push_back(x);
                    if maxlen.is_some_and(|n| m.len() > n) { m.pop_front(); }
                }
                1 => {
                    d.append_left(x);
                    m.push_front(x);
                    if maxlen.is_some_and(|n| m.len() > n) { m.pop_back(); }
                }
                2 => prop_assert_eq!(d.pop(), m.pop_back()),
                3 => prop_assert_eq!(d.pop_left(), m.pop_front()),
                4 => { d.clear(); m.clear(); }
                _ => prop_assert_eq!(d.len(), m.len()),
            }
            prop_assert_eq!(d.to_vec(), m.iter().copied().collect::<Vec<_>>());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Stress: 4 producer and 4 consumer threads, each moving `per_thread` items; nothing lost or
// duplicated. Full size (1,000,000 per thread) in release builds and in the ignored test;
// 100,000 per thread in debug builds so `cargo test` stays quick.

fn default_stress_size() -> usize {
    if cfg!(debug_assertions) {
        100_000
    } else {
        1_000_000
    }
}

fn stress<Q: Send + Sync + 'static>(
    q: Q,
    per_thread: usize,
    put: fn(&Q, usize),
    get: fn(&Q) -> Option<usize>,
) {
    const SIDES: usize = 4;
    let total = SIDES * per_thread;
    let q = Arc::new(q);
    let seen: Arc<Vec<AtomicBool>> = Arc::new((0..total).map(|_| AtomicBool::new(false)).collect());
    let mut hs = Vec::new();
    for p in 0..SIDES {
        let q = Arc::clone(&q);
        hs.push(thread::spawn(move || {
            for i in 0..per_thread {
                put(&q, p * per_thread + i);
            }
        }));
    }
    for _ in 0..SIDES {
        let (q, seen) = (Arc::clone(&q), Arc::clone(&seen));
        hs.push(thread::spawn(move || {
            for _ in 0..per_thread {
                let x = get(&q).expect("get failed");
                assert!(x < total, "{x} was never put");
                assert!(!seen[x].swap(true, AtOrd::Relaxed), "{x} delivered twice");
            }
        }));
    }
    for h in hs {
        h.join().unwrap();
    }
    assert!(seen.iter().all(|s| s.load(AtOrd::Relaxed)), "an item was lost");
}

fn stress_all(per_thread: usize) {
    stress(Queue::bounded(1024), per_thread, |q, x| q.put(x).unwrap(), |q| q.get().ok());
    stress(Queue::new(), per_thread, |q, x| q.put(x).unwrap(), |q| q.get().ok());
    stress(LifoQueue::bounded(1024), per_thread, |q, x| q.put(x).unwrap(), |q| q.get().ok());
    stress(PriorityQueue::bounded(1024), per_thread, |q, x| q.put(x).unwrap(), |q| q.get().ok());
    stress(SimpleQueue::new(), per_thread, |q, x| q.put(x), |q| q.get().ok());
    stress(
        Deque::with_maxlen(usize::MAX),
        per_thread,
        |d, x| d.append(x),
        |d| loop {
            match d.pop_left() {
                Some(x) => return Some(x),
                None => thread::yield_now(),
            }
        },
    );
}

#[test]
fn stress_nothing_lost_or_duplicated() {
    stress_all(default_stress_size());
}

#[test]
#[ignore = "full size: 4+4 threads x 1,000,000 items per queue; run with --release --ignored"]
fn stress_full_size() {
    stress_all(1_000_000);
}
