//! One test per row of the pool's crash table (`src/pool/mod.rs`): a worker (or the owner) is
//! SIGKILLed at the row's step, then what the row promises is checked: which tasks are charged,
//! that every other task completes exactly once, that the pool goes on, or (owner rows) that
//! the workers die with their owner.
//!
//! Run with `cargo test -p procshare --features crash-points --test crash_points_pool`.
#![cfg(feature = "crash-points")]

mod common;

use common::{within, HANG};
use procshare::{Error, Pool, Process, Queue, TaskError, Value};
use std::time::{Duration, Instant};

/// Arms the first worker that runs this initializer (the shared claim says which) to die at
/// the `nth` pass of `point`; the other workers and every replacement run normally.
fn arm_first_worker((claim, point, nth): (Value<u32>, String, u64)) {
    let mine = {
        let mut c = claim.lock();
        *c += 1;
        *c == 1
    };
    if mine {
        procshare::crash::arm(&point, nth);
    }
}

/// Counts its runs per input in `runs` (index x), returns x + 1.
fn counted((runs, x): (procshare::Array<u32>, usize)) -> usize {
    // Long enough that both workers take part.
    std::thread::sleep(Duration::from_millis(2));
    let mut r = runs.lock();
    r[x] += 1;
    x + 1
}

/// A pool of 2 whose first worker dies at `point`'s `nth` pass; runs 40 counted tasks and
/// returns their outcomes and how often each ran.
fn run_with_a_worker_killed_at(
    point: &str,
    nth: u64,
    retries: u32,
) -> (Vec<Result<usize, TaskError>>, Vec<u32>) {
    let claim = Value::new(0u32).unwrap();
    let pool = Pool::builder()
        .processes(2)
        .retries(retries)
        .initializer(arm_first_worker, (claim.clone(), point.to_string(), nth))
        .build()
        .unwrap();
    let runs = procshare::Array::<u32>::new(40).unwrap();
    let outcomes = within("tasks around a worker's death", {
        let runs = runs.clone();
        move || {
            let hs: Vec<_> =
                (0..40).map(|x| pool.apply_async(counted, (runs.clone(), x)).unwrap()).collect();
            let out: Vec<_> = hs
                .into_iter()
                .map(|h| match h.get() {
                    Ok(v) => Ok(v),
                    Err(Error::Task(t)) => Err(t),
                    Err(e) => panic!("{e}"),
                })
                .collect();
            // The pool goes on after the death.
            assert_eq!(pool.map(counted_free, 0..10).unwrap(), (1..11).collect::<Vec<_>>());
            out
        }
    });
    // Two workers and the armed one's replacement ran the initializer: the death happened.
    assert!(claim.get() >= 3, "the armed worker did not die at {point}");
    (outcomes, runs.to_vec())
}

fn counted_free(x: usize) -> usize {
    x + 1
}

fn all_ok_once(outcomes: &[Result<usize, TaskError>], runs: &[u32]) {
    for (x, o) in outcomes.iter().enumerate() {
        assert_eq!(o, &Ok(x + 1), "task {x}");
    }
    assert!(runs.iter().all(|&r| r == 1), "a task ran twice or never: {runs:?}");
}

/// Exactly one task was charged the death: with no retries it ends `WorkerDied` (and never
/// reported a result), every other task ran once and is right.
fn one_charged(outcomes: &[Result<usize, TaskError>], runs: &[u32]) {
    let died: Vec<usize> = (0..outcomes.len()).filter(|&x| outcomes[x].is_err()).collect();
    assert_eq!(died.len(), 1, "{outcomes:?}");
    assert!(matches!(
        outcomes[died[0]],
        Err(TaskError::WorkerDied { attempts: 1, signal: Some(9), .. })
    ));
    for (x, o) in outcomes.iter().enumerate() {
        if x != died[0] {
            assert_eq!(o, &Ok(x + 1));
            assert_eq!(runs[x], 1, "task {x} ran {} times", runs[x]);
        }
    }
}

#[test]
fn pool_initialized() {
    // Dead between its initializer and READY: nothing charged, all complete once.
    let (o, r) = run_with_a_worker_killed_at("pool.initialized", 1, 0);
    all_ok_once(&o, &r);
}

#[test]
fn pool_batch_taken() {
    // Dead holding batches it took but never recorded: all go back uncharged.
    let (o, r) = run_with_a_worker_killed_at("pool.batch_taken", 2, 0);
    all_ok_once(&o, &r);
}

#[test]
fn pool_task_recorded() {
    // Recorded, not run: charged (no retries: WorkerDied), never ran.
    let (o, r) = run_with_a_worker_killed_at("pool.task_recorded", 3, 0);
    one_charged(&o, &r);
    let died = o.iter().position(|x| x.is_err()).unwrap();
    assert_eq!(r[died], 0);
    // With a retry, every task completes; the charged one ran exactly once.
    let (o, r) = run_with_a_worker_killed_at("pool.task_recorded", 3, 1);
    all_ok_once(&o, &r);
}

#[test]
fn pool_task_ran() {
    // Ran, no report: charged; with a retry it runs a second time (the one rerun a death costs).
    let (o, r) = run_with_a_worker_killed_at("pool.task_ran", 3, 0);
    one_charged(&o, &r);
    let died = o.iter().position(|x| x.is_err()).unwrap();
    assert_eq!(r[died], 1);
    let (o, r) = run_with_a_worker_killed_at("pool.task_ran", 3, 1);
    assert!(o.iter().enumerate().all(|(x, v)| v == &Ok(x + 1)), "{o:?}");
    assert_eq!(r.iter().filter(|&&n| n == 2).count(), 1, "{r:?}");
    assert!(r.iter().all(|&n| n == 1 || n == 2));
}

#[test]
fn pool_result_sent() {
    // Reported, then dead: that task is done, nothing is charged.
    let (o, r) = run_with_a_worker_killed_at("pool.result_sent", 3, 0);
    all_ok_once(&o, &r);
}

fn square(x: u64) -> u64 {
    x * x
}

fn build_broken(q: Queue<String>) {
    // Every worker (and replacement) inherits the arming and dies before its initializer.
    std::env::set_var("PROCSHARE_CRASH_POINT", "pool.worker_started:1");
    let pool = Pool::new(1).unwrap();
    let r = pool.apply(square, 3);
    q.put(format!("{r:?}")).unwrap();
}

#[test]
fn pool_worker_started() {
    let q = Queue::<String>::new().unwrap();
    let mut p = Process::spawn(q.clone(), build_broken).unwrap();
    let r = q.get_timeout(HANG).unwrap();
    assert!(r.contains("Broken") && r.contains("initializer"), "{r}");
    assert_eq!(p.join().unwrap(), 0);
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn die(_: ()) -> u64 {
    // SAFETY: kill(2) with integer arguments only.
    unsafe { libc::kill(std::process::id() as libc::pid_t, libc::SIGKILL) };
    0
}

/// The owner: builds a pool, reports its workers, arms itself at `point` and makes it pass.
fn owner((q, point): (Queue<Vec<u32>>, String)) {
    let pool = Pool::new(2).unwrap();
    let t = Instant::now();
    while pool.worker_pids().len() < 2 {
        assert!(t.elapsed() < HANG);
        std::thread::sleep(Duration::from_millis(5));
    }
    q.put(pool.worker_pids()).unwrap();
    procshare::crash::arm(&point, 1);
    if point == "pool.batch_sent" {
        let _ = pool.apply(square, 2);
    } else {
        let _ = pool.apply(die, ());
    }
    std::thread::sleep(Duration::from_secs(120));
}

fn owner_killed_at(point: &str) {
    let q = Queue::<Vec<u32>>::new().unwrap();
    let mut p = Process::spawn((q.clone(), point.to_string()), owner).unwrap();
    let pids = q.get_timeout(HANG).unwrap();
    assert_eq!(
        p.join_timeout(HANG).unwrap(),
        Some(-libc::SIGKILL),
        "the owner did not die at {point}"
    );
    let t = Instant::now();
    while pids.iter().any(|&w| alive(w)) {
        assert!(t.elapsed() < HANG, "workers outlived their owner");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn pool_batch_sent() {
    owner_killed_at("pool.batch_sent");
}

#[test]
fn pool_death_reaped() {
    owner_killed_at("pool.death_reaped");
}

#[test]
fn pool_death_seen() {
    owner_killed_at("pool.death_seen");
}
