//! `Pool` with real worker processes: results, failures, deaths (SIGKILL at random moments and
//! in every task), timeouts, cancel, recycling, handles in tasks and initializers, owner death.

mod common;

use common::within;
use procshare::{Error, Lock, Pool, Process, Queue, TaskError, Value};
use std::time::{Duration, Instant};

fn square(x: u64) -> u64 {
    x * x
}

fn pid_of(_: ()) -> u32 {
    std::process::id()
}

fn die(_: ()) -> u32 {
    sigkill(std::process::id());
    unreachable!("SIGKILL to ourselves returned")
}

fn sigkill(pid: u32) {
    // SAFETY: kill(2) with integer arguments only.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn panics(x: u32) -> u32 {
    if x == 3 {
        panic!("three is right out");
    }
    x
}

fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < common::HANG, "{what}: never happened");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn alive(pid: u32) -> bool {
    // A zombie is dead for our purpose; /proc/<pid>/stat's state field says Z.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn map_apply_and_imap_give_every_result_in_order() {
    let pool = Pool::new(2).unwrap();
    let n = 10_000u64;
    let want: Vec<u64> = (0..n).map(|x| x * x).collect();
    assert_eq!(pool.map(square, 0..n).unwrap(), want);
    assert_eq!(pool.map_chunked(square, 0..n, 7).unwrap(), want);
    assert_eq!(pool.map(square, Vec::<u64>::new()).unwrap(), Vec::<u64>::new());
    assert_eq!(pool.apply(square, 9).unwrap(), 81);
    let handles: Vec<_> = (0..2000u64).map(|x| pool.apply_async(square, x).unwrap()).collect();
    for (x, h) in handles.into_iter().enumerate() {
        assert_eq!(h.get().unwrap(), (x * x) as u64);
    }
    let it = pool.imap(square, 0..500u64);
    assert_eq!(it.size_hint(), (500, Some(500)));
    let got: Vec<u64> = it.map(|r| r.unwrap()).collect();
    assert_eq!(got, want[..500]);
    let mut seen: Vec<(usize, u64)> =
        pool.imap_unordered(square, 0..500u64).map(|(i, r)| (i, r.unwrap())).collect();
    seen.sort();
    assert_eq!(seen, (0..500).map(|i| (i, want[i])).collect::<Vec<_>>());
    assert_eq!(pool.processes(), 2);
}

#[test]
fn many_tiny_tasks_through_imap_and_apply_async_all_complete() {
    // Workers that run dry take batches back from each other: that race must lose nothing.
    let pool = Pool::new(2).unwrap();
    for _ in 0..3 {
        let n = within("imap of tiny tasks", {
            let it = pool.imap(square, 0..50_000u64);
            move || it.map(|r| r.unwrap()).sum::<u64>()
        });
        assert_eq!(n, (0..50_000u64).map(|x| x * x).sum::<u64>());
        let hs: Vec<_> = (0..5000u64).map(|x| pool.apply_async(square, x).unwrap()).collect();
        assert!(hs.into_iter().enumerate().all(|(x, h)| h.get().unwrap() == (x * x) as u64));
    }
}

#[test]
fn a_panicking_task_fails_alone_and_its_worker_lives_on() {
    let pool = Pool::new(1).unwrap();
    let before = pool.apply(pid_of, ()).unwrap();
    match pool.apply(panics, 3) {
        Err(Error::Task(TaskError::Panicked(m))) => {
            assert!(m.contains("three is right out"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(pool.apply(pid_of, ()).unwrap(), before, "the worker was replaced");
    // map: the first failure fails the call; imap yields each outcome.
    assert!(matches!(pool.map(panics, 0..6), Err(Error::Task(TaskError::Panicked(_)))));
    let outcomes: Vec<_> = pool.imap(panics, 0..6).collect();
    assert_eq!(outcomes.iter().filter(|o| o.is_err()).count(), 1);
    assert!(outcomes[3].is_err());
}

#[test]
fn a_task_that_always_kills_its_worker_ends_worker_died_after_its_retries() {
    let pool = Pool::builder().processes(2).retries(2).build().unwrap();
    let h = pool.apply_async(die, ()).unwrap();
    let others: Vec<_> = (0..50u64).map(|x| pool.apply_async(square, x).unwrap()).collect();
    match within("the dying task", move || h.get()) {
        Err(Error::Task(TaskError::WorkerDied { signal, attempts, pid })) => {
            assert_eq!(attempts, 3);
            assert_eq!(signal, Some(libc::SIGKILL));
            assert!(pid > 0);
        }
        other => panic!("{other:?}"),
    }
    for (x, h) in others.into_iter().enumerate() {
        assert_eq!(h.get().unwrap(), (x * x) as u64, "another task was lost");
    }
    // The pool still has its workers.
    assert_eq!(pool.map(square, 0..100u64).unwrap().len(), 100);
}

/// Dies the first time (the shared counter says so), succeeds on the rerun.
fn die_once((runs, x): (Value<u32>, u64)) -> u64 {
    let first = {
        let mut r = runs.lock();
        *r += 1;
        *r == 1
    };
    if first {
        die(());
    }
    x * 2
}

#[test]
fn a_rerun_after_a_death_gives_the_result_and_handles_reach_tasks() {
    let runs = Value::new(0u32).unwrap();
    let pool = Pool::builder().processes(2).retries(1).build().unwrap();
    assert_eq!(pool.apply(die_once, (runs.clone(), 21)).unwrap(), 42);
    assert_eq!(runs.get(), 2);
}

#[test]
fn random_sigkills_during_a_long_map_with_retries_lose_nothing() {
    let pool = Pool::builder().processes(2).retries(20).build().unwrap();
    let n = 3000u64;
    let pids = pool.worker_pids();
    let killer_pool_pids = std::sync::Arc::new(std::sync::Mutex::new(pids));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (p, s) = (killer_pool_pids.clone(), stop.clone());
    let killer = std::thread::spawn(move || {
        let mut kills = 0;
        while !s.load(std::sync::atomic::Ordering::Relaxed) && kills < 15 {
            std::thread::sleep(Duration::from_millis(30));
            // Alternate between the workers, whichever are alive now.
            let pids = p.lock().unwrap().clone();
            if let Some(pid) = pids.get(kills % pids.len().max(1)) {
                sigkill(*pid);
                kills += 1;
            }
        }
        kills
    });
    let pool = std::sync::Arc::new(pool);
    let pl = pool.clone();
    let refresher = std::thread::spawn(move || {
        for _ in 0..400 {
            *killer_pool_pids.lock().unwrap() = pl.worker_pids();
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let got = within("map under kills", {
        let pool = pool.clone();
        move || pool.map_chunked(sleep_then_square, 0..n, 10).unwrap()
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let kills = killer.join().unwrap();
    refresher.join().unwrap();
    assert!(kills > 0);
    assert_eq!(got, (0..n).map(|x| x * x).collect::<Vec<_>>());
}

fn sleep_then_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_micros(200));
    x * x
}

#[test]
fn a_task_past_task_timeout_ends_timed_out_and_the_pool_goes_on() {
    let pool =
        Pool::builder().processes(1).task_timeout(Duration::from_millis(200)).build().unwrap();
    let before = pool.apply(pid_of, ()).unwrap();
    let t = Instant::now();
    assert!(matches!(pool.apply(sleep_ms, 30_000), Err(Error::Task(TaskError::TimedOut))));
    assert!(t.elapsed() < Duration::from_secs(20));
    assert_ne!(pool.apply(pid_of, ()).unwrap(), before, "the worker was not replaced");
    assert_eq!(pool.apply(sleep_ms, 1).unwrap(), 1);
}

#[test]
fn cancel_removes_a_queued_task_and_kills_a_running_one() {
    let pool = Pool::new(1).unwrap();
    let before = pool.apply(pid_of, ()).unwrap();
    let running = pool.apply_async(sleep_ms, 30_000).unwrap();
    let queued = pool.apply_async(sleep_ms, 30_000).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(queued.cancel());
    assert!(running.cancel());
    assert!(matches!(queued.get(), Err(Error::Task(TaskError::Cancelled))));
    assert!(matches!(running.get(), Err(Error::Task(TaskError::Cancelled))));
    let after = pool.apply(pid_of, ()).unwrap();
    assert_ne!(after, before, "the running task's worker was not replaced");
    let done = pool.apply_async(square, 3).unwrap();
    assert!(done.wait_timeout(common::HANG));
    assert!(done.ready());
    assert!(!done.cancel(), "a finished task cannot be cancelled");
    assert_eq!(done.get().unwrap(), 9);
}

#[test]
fn max_tasks_per_child_recycles_workers() {
    let pool = Pool::builder().processes(1).max_tasks_per_child(3).build().unwrap();
    let pids: Vec<u32> = (0..9).map(|_| pool.apply(pid_of, ()).unwrap()).collect();
    for run in pids.chunks(3) {
        assert!(run.iter().all(|&p| p == run[0]), "{pids:?}");
    }
    assert_ne!(pids[0], pids[3]);
    assert_ne!(pids[3], pids[6]);
}

fn init_worker((q, lock, greeting): (Queue<String>, Lock, String)) {
    let _held = lock.lock().unwrap();
    q.put(format!("{greeting} from {}", std::process::id())).unwrap();
}

fn put_into((q, x): (Queue<u64>, u64)) -> u64 {
    q.put(x).unwrap();
    x
}

#[test]
fn handles_reach_the_initializer_and_the_tasks() {
    let hello = Queue::<String>::new().unwrap();
    let lock = Lock::new().unwrap();
    let pool = Pool::builder()
        .processes(2)
        .initializer(init_worker, (hello.clone(), lock.clone(), "ready".to_string()))
        .build()
        .unwrap();
    for _ in 0..2 {
        assert!(hello.get_timeout(common::HANG).unwrap().starts_with("ready from "));
    }
    let q = Queue::<u64>::new().unwrap();
    let got = pool.map(put_into, (0..20u64).map(|x| (q.clone(), x))).unwrap();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    let mut put: Vec<u64> = (0..20).map(|_| q.get_timeout(common::HANG).unwrap()).collect();
    put.sort();
    assert_eq!(put, (0..20).collect::<Vec<_>>());
}

#[test]
fn tasks_with_handles_mixed_with_plain_ones_and_cancelled_lose_nothing() {
    let pool = Pool::new(2).unwrap();
    let q = Queue::<u64>::new().unwrap();
    let mut with = Vec::new();
    let mut plain = Vec::new();
    for x in 0..60u64 {
        with.push(pool.apply_async(put_into, (q.clone(), x)).unwrap());
        plain.push(pool.apply_async(sleep_ms, x % 3).unwrap());
    }
    // Cancel some of each, wherever they are now.
    let cancelled_with: Vec<bool> = with.iter().step_by(7).map(|h| h.cancel()).collect();
    for h in plain.iter().step_by(5) {
        h.cancel();
    }
    let mut ok = 0;
    for h in with {
        match within("a task with a handle", move || h.get()) {
            Ok(_) => ok += 1,
            Err(Error::Task(TaskError::Cancelled)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    for h in plain {
        match within("a plain task", move || h.get()) {
            Ok(_) | Err(Error::Task(TaskError::Cancelled)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    // Every task that says it ran put its value, once.
    let mut got = Vec::new();
    while let Ok(v) = q.get_timeout(Duration::from_millis(200)) {
        got.push(v);
    }
    let mut dedup = got.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), got.len(), "a task ran twice: {got:?}");
    assert!(got.len() >= ok, "{} puts for {ok} results", got.len());
    assert!(cancelled_with.iter().any(|&c| c));
    assert_eq!(pool.apply(square, 6).unwrap(), 36);
}

fn init_dies(_: ()) {
    die(());
}

#[test]
fn a_worker_that_keeps_dying_in_its_initializer_breaks_the_pool_with_a_clear_error() {
    let pool = Pool::builder().processes(1).initializer(init_dies, ()).build().unwrap();
    let h = pool.apply_async(square, 2).unwrap();
    match within("the broken pool's task", move || h.get()) {
        Err(Error::Task(TaskError::Broken(m))) => assert!(m.contains("initializer"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(pool.broken().is_some());
    assert!(matches!(pool.apply(square, 2), Err(Error::Task(TaskError::Broken(_)))));
}

#[test]
fn close_join_runs_what_was_queued_and_terminate_ends_the_rest() {
    let mut pool = Pool::new(2).unwrap();
    let hs: Vec<_> = (0..20u64).map(|x| pool.apply_async(sleep_ms, x).unwrap()).collect();
    let pids = pool.worker_pids();
    pool.close();
    assert!(pool.apply(square, 1).is_err());
    pool.join().unwrap();
    for (x, h) in hs.into_iter().enumerate() {
        assert_eq!(h.get().unwrap(), x as u64);
    }
    eventually("workers exit after join", || pids.iter().all(|&p| !alive(p)));

    let mut pool = Pool::new(2).unwrap();
    let long = pool.apply_async(sleep_ms, 30_000).unwrap();
    assert!(matches!(Pool::new(1).unwrap().join(), Err(Error::InvalidArgument(_))));
    pool.terminate().unwrap();
    assert!(matches!(long.get(), Err(Error::Task(TaskError::Shutdown))));
    pool.join().unwrap();
}

#[test]
fn an_argument_that_cannot_encode_is_the_callers_err() {
    let pool = Pool::new(1).unwrap();
    let (a, _b) = procshare::pipe().unwrap();
    // A Connection has no descriptor-free encoding, but it is a handle: it travels. A map
    // whose key is not a string cannot encode in postcard? It can; use a failing Serialize.
    struct Bad;
    impl serde::Serialize for Bad {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("refused"))
        }
    }
    impl<'de> serde::Deserialize<'de> for Bad {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            Ok(Bad)
        }
    }
    fn takes_bad(_: Bad) -> u8 {
        0
    }
    assert!(matches!(pool.apply(takes_bad, Bad), Err(Error::Codec(_))));
    drop(a);
    assert_eq!(pool.apply(square, 4).unwrap(), 16);
}

fn returns_bad(_: ()) -> BadResult {
    BadResult
}

struct BadResult;
impl serde::Serialize for BadResult {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("no"))
    }
}
impl<'de> serde::Deserialize<'de> for BadResult {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(BadResult)
    }
}

#[test]
fn a_result_that_cannot_encode_ends_its_task_codec() {
    let pool = Pool::new(1).unwrap();
    assert!(matches!(pool.apply(returns_bad, ()), Err(Error::Task(TaskError::Codec(_)))));
    assert_eq!(pool.apply(square, 5).unwrap(), 25);
}

fn owner((report, _x): (Queue<Vec<u32>>, u8)) {
    let pool = Pool::new(2).unwrap();
    eventually("workers up", || pool.worker_pids().len() == 2);
    let _h = pool.apply_async(sleep_ms, 60_000).unwrap();
    report.put(pool.worker_pids()).unwrap();
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn workers_die_with_their_owner_even_when_it_is_sigkilled() {
    let report = Queue::<Vec<u32>>::new().unwrap();
    let mut p = Process::spawn((report.clone(), 0u8), owner).unwrap();
    let pids = report.get_timeout(common::HANG).unwrap();
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&p| alive(p)));
    p.kill().unwrap();
    p.join().unwrap();
    let t = Instant::now();
    eventually("workers gone after the owner's SIGKILL", || pids.iter().all(|&p| !alive(p)));
    eprintln!("workers gone {:?} after the owner's death", t.elapsed());
}

#[test]
fn fork_and_zero_processes_are_refused() {
    assert!(Pool::builder().start_method(procshare::StartMethod::Fork).build().is_err());
    assert!(Pool::new(0).is_err());
}
