//! The pool rows: tiny tasks through `map`, `imap` (chunksize 1) and `apply_async`, the warm
//! apply round trip, and what a worker's SIGKILL costs (until its task's `Err`, and until its
//! replacement runs a task). A warm 2-worker pool per measurement, as CPython's `Pool(2)` in the
//! script's rows.

use super::native::sample_rtts;
use procshare::{Error, Pool, TaskError, Value};
use std::time::{Duration, Instant};

/// Tasks per `map`/`imap` call (the 100,000) and `apply_async` burst (20,000).
pub const MAP_ITEMS: u64 = 100_000;
pub const APPLY_ITEMS: u64 = 20_000;

fn square(x: u64) -> u64 {
    x * x
}

/// A warm pool of 2 for one measurement, dropped after it: its threads end with it, so later
/// rows (a `Fork` start) find the bench single-threaded again.
fn pool() -> Pool {
    let pool = Pool::new(2).expect("a pool of 2 workers");
    // Warm: both workers started and through their first tasks.
    let _ = pool.map(square, 0..1000u64);
    pool
}

/// Repeats `job` (which runs `per` tasks) for about `dur`; tasks/s.
fn tasks_per_sec(dur: Duration, per: u64, mut job: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while n == 0 || start.elapsed() < dur {
        job();
        n += per;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

pub fn map_rate(dur: Duration) -> f64 {
    let pool = pool();
    tasks_per_sec(dur, MAP_ITEMS, || {
        let r = pool.map(square, 0..MAP_ITEMS).expect("map");
        assert_eq!(r.len() as u64, MAP_ITEMS);
    })
}

pub fn map_chunk100_rate(dur: Duration) -> f64 {
    let pool = pool();
    tasks_per_sec(dur, MAP_ITEMS, || {
        let r = pool.map_chunked(square, 0..MAP_ITEMS, 100).expect("map");
        assert_eq!(r.len() as u64, MAP_ITEMS);
    })
}

pub fn imap_rate(dur: Duration) -> f64 {
    let pool = pool();
    tasks_per_sec(dur, MAP_ITEMS, || {
        let n = pool.imap(square, 0..MAP_ITEMS).filter(|r| r.is_ok()).count();
        assert_eq!(n as u64, MAP_ITEMS);
    })
}

pub fn apply_async_rate(dur: Duration) -> f64 {
    let pool = pool();
    tasks_per_sec(dur, APPLY_ITEMS, || {
        let hs: Vec<_> =
            (0..APPLY_ITEMS).map(|x| pool.apply_async(square, x).expect("apply_async")).collect();
        for h in hs {
            h.get().expect("get");
        }
    })
}

pub fn apply_rtt(dur: Duration) -> [f64; 2] {
    let pool = pool();
    let mut x = 0u64;
    sample_rtts(dur, || {
        x += 1;
        pool.apply(square, x).expect("apply");
    })
}

/// CLOCK_MONOTONIC in ns: the same clock in every process.
fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Stamps the time into `at` and SIGKILLs its own worker.
fn die_stamped(at: Value<u64>) -> u64 {
    at.set(now_ns());
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    std::thread::sleep(Duration::from_secs(10));
    0
}

/// Death → `Err` and death → the replacement's first result, in µs: `[median, p99]` of each.
fn death_samples(dur: Duration) -> ([f64; 2], [f64; 2]) {
    let pool = Pool::new(1).expect("a pool of 1");
    let _ = pool.apply(square, 1);
    let at = Value::new(0u64).expect("a Value");
    let (mut to_err, mut to_next) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while to_err.len() < 5 || (start.elapsed() < dur && to_err.len() < 200) {
        let r = pool.apply(die_stamped, at.clone());
        let died = now_ns();
        assert!(matches!(r, Err(Error::Task(TaskError::WorkerDied { .. }))), "{r:?}");
        pool.apply(square, 2).expect("the replacement's task");
        let next = now_ns();
        to_err.push(died.saturating_sub(at.get()) as f64 / 1e3);
        to_next.push(next.saturating_sub(at.get()) as f64 / 1e3);
    }
    (median_p99(to_err), median_p99(to_next))
}

fn median_p99(mut v: Vec<f64>) -> [f64; 2] {
    v.sort_by(|a, b| a.total_cmp(b));
    [v[v.len() / 2], v[(v.len() * 99 / 100).min(v.len() - 1)]]
}

pub fn death_to_err(dur: Duration) -> [f64; 2] {
    death_samples(dur).0
}

pub fn death_to_replacement(dur: Duration) -> [f64; 2] {
    death_samples(dur).1
}
