//! Locks between real processes: mutual exclusion, re-entry, owner death (SIGKILL of the
//! holder, 200 times), waiters woken by a holder's death, timeouts.

use procshare::{pipe, Connection, Lock, Process, RLock, RawValue};
use std::time::Duration;

mod common;

/// Increments per process: 100,000 in release builds, 20,000 in debug builds (slow otherwise).
const INCREMENTS: u64 = if cfg!(debug_assertions) { 20_000 } else { 100_000 };

fn increment(args: (Lock, RawValue<u64>)) {
    let (lock, counter) = args;
    for _ in 0..INCREMENTS {
        let _g = lock.lock().unwrap();
        // A deliberately non-atomic read-modify-write: only the lock makes it exact.
        counter.set(counter.get() + 1);
    }
}

#[test]
fn four_processes_increment_exactly() {
    let lock = Lock::new().unwrap();
    let counter = RawValue::new(0u64).unwrap();
    let mut kids: Vec<Process> = (0..4)
        .map(|_| Process::spawn((lock.clone(), counter.clone()), increment).unwrap())
        .collect();
    for k in &mut kids {
        assert_eq!(k.join().unwrap(), 0);
    }
    assert_eq!(counter.get(), 4 * INCREMENTS);
    assert!(!lock.is_locked());
}

#[test]
fn threads_and_processes_share_one_lock() {
    let lock = Lock::new().unwrap();
    let counter = RawValue::new(0u64).unwrap();
    let mut kid = Process::spawn((lock.clone(), counter.clone()), increment).unwrap();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| increment((lock.clone(), counter.clone())));
        }
    });
    assert_eq!(kid.join().unwrap(), 0);
    assert_eq!(counter.get(), 3 * INCREMENTS);
}

#[test]
fn try_lock_and_timeouts() {
    let lock = Lock::new().unwrap();
    let g = lock.lock().unwrap();
    assert!(!g.previous_holder_died());
    assert!(lock.try_lock().unwrap().is_none());
    assert!(lock.lock_timeout(Duration::from_millis(30)).unwrap().is_none());
    assert!(!lock.acquire_timeout(Duration::from_millis(30)).unwrap());
    // Another process sees it held too, and times out.
    let (mine, theirs) = pipe().unwrap();
    let mut kid = Process::spawn((lock.clone(), theirs), |(lock, conn): (Lock, Connection)| {
        let got = lock.lock_timeout(Duration::from_millis(50)).unwrap().is_some();
        conn.send(&got).unwrap();
    })
    .unwrap();
    assert!(!mine.recv::<bool>().unwrap());
    assert_eq!(kid.join().unwrap(), 0);
    drop(g);
    assert!(lock.try_lock().unwrap().is_some());
}

#[test]
fn acquire_release_like_python() {
    let lock = Lock::new().unwrap();
    assert!(lock.release().is_err(), "releasing an unlocked lock is an error");
    lock.acquire().unwrap();
    assert!(lock.is_locked());
    // Python's Lock may be released by another thread.
    std::thread::scope(|s| {
        s.spawn(|| lock.release().unwrap());
    });
    assert!(!lock.is_locked());
    assert!(lock.release().is_err());
}

#[test]
fn rlock_reentry_and_owner_only_release() {
    let lock = RLock::new().unwrap();
    assert!(lock.release().is_err());
    let a = lock.lock().unwrap();
    let b = lock.lock().unwrap();
    let c = lock.try_lock().unwrap().expect("re-entry never waits");
    // Another thread cannot take it, nor release it.
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(lock.try_lock().unwrap().is_none());
            assert!(lock.release().is_err());
        });
    });
    // Nor can another process.
    let (mine, theirs) = pipe().unwrap();
    let mut kid = Process::spawn((lock.clone(), theirs), |(lock, conn): (RLock, Connection)| {
        let took = lock.try_lock().unwrap().is_some();
        let released = lock.release().is_ok();
        conn.send(&(took, released)).unwrap();
    })
    .unwrap();
    assert_eq!(mine.recv::<(bool, bool)>().unwrap(), (false, false));
    assert_eq!(kid.join().unwrap(), 0);
    drop(c);
    drop(b);
    assert!(lock.is_locked());
    drop(a);
    assert!(!lock.is_locked());
    // acquire/release pairs nest the same way.
    lock.acquire().unwrap();
    lock.acquire().unwrap();
    lock.release().unwrap();
    assert!(lock.is_locked());
    lock.release().unwrap();
    assert!(!lock.is_locked());
    assert!(lock.release().is_err());
}

/// Child: take the lock, say so, then wait to be killed.
fn hold_until_killed(args: (Lock, Connection)) {
    let (lock, conn) = args;
    let g = lock.lock().unwrap();
    conn.send(&true).unwrap();
    std::thread::sleep(Duration::from_secs(60));
    drop(g);
}

#[test]
fn holder_killed_200_times() {
    let lock = Lock::new().unwrap();
    let (mine, theirs) = pipe().unwrap();
    for round in 0..200 {
        let mut kid =
            Process::spawn((lock.clone(), theirs.try_clone().unwrap()), hold_until_killed).unwrap();
        assert!(mine.recv::<bool>().unwrap());
        kid.kill().unwrap();
        // Alternate: reap first (the holder is gone) or not (the holder is a zombie).
        if round % 2 == 0 {
            assert_eq!(kid.join().unwrap(), -9);
        }
        let g = lock.lock().unwrap();
        assert!(g.previous_holder_died(), "round {round}: the guard must say the holder died");
        drop(g);
        let g = lock.lock().unwrap();
        assert!(!g.previous_holder_died(), "only the first acquirer is told");
        drop(g);
        if round % 2 == 1 {
            assert_eq!(kid.join().unwrap(), -9);
        }
    }
}

#[test]
fn waiter_blocked_in_lock_wakes_when_holder_is_killed() {
    let lock = Lock::new().unwrap();
    let (mine, theirs) = pipe().unwrap();
    let mut holder =
        Process::spawn((lock.clone(), theirs.try_clone().unwrap()), hold_until_killed).unwrap();
    assert!(mine.recv::<bool>().unwrap());
    // A waiter in another process, blocked in lock(); it reports what its guard said.
    let mut waiter = Process::spawn((lock.clone(), theirs), |(lock, conn): (Lock, Connection)| {
        conn.send(&false).unwrap(); // "about to block"
        let g = lock.lock().unwrap();
        conn.send(&g.previous_holder_died()).unwrap();
    })
    .unwrap();
    assert!(!mine.recv::<bool>().unwrap());
    std::thread::sleep(Duration::from_millis(100)); // let it block
    holder.kill().unwrap();
    assert!(mine.recv::<bool>().unwrap(), "the waiter got the lock and was told");
    assert_eq!(waiter.join().unwrap(), 0);
    assert_eq!(holder.join().unwrap(), -9);
    assert!(!lock.is_locked());
}

#[test]
fn rlock_holder_killed_is_taken_over() {
    let lock = RLock::new().unwrap();
    let (mine, theirs) = pipe().unwrap();
    let mut kid = Process::spawn((lock.clone(), theirs), |(lock, conn): (RLock, Connection)| {
        let _a = lock.lock().unwrap();
        let _b = lock.lock().unwrap(); // depth 2 when killed
        conn.send(&true).unwrap();
        std::thread::sleep(Duration::from_secs(60));
    })
    .unwrap();
    assert!(mine.recv::<bool>().unwrap());
    kid.kill().unwrap();
    let g = lock.lock().unwrap();
    assert!(g.previous_holder_died());
    drop(g);
    assert!(!lock.is_locked(), "the depth starts again at one after a take-over");
    assert_eq!(kid.join().unwrap(), -9);
}

#[test]
fn thread_that_ends_holding_the_lock_counts_as_dead() {
    let lock = Lock::new().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| std::mem::forget(lock.lock().unwrap()));
    });
    let g = lock.lock().unwrap();
    assert!(g.previous_holder_died());
}

#[test]
fn handles_are_send_sync_clone() {
    common::assert_send_sync_clone::<Lock>();
    common::assert_send_sync_clone::<RLock>();
}

#[test]
fn a_waiter_is_not_starved_by_a_process_that_relocks_at_once() {
    // The child takes and releases the lock in a tight loop until the parent has had it once
    // (or 30 s pass: then the parent was starved and the test fails).
    let lock = Lock::new().unwrap();
    let got_it = procshare::Event::new().unwrap();
    let (mine, theirs) = pipe().unwrap();
    let mut hammer = Process::spawn(
        (lock.clone(), got_it.clone(), theirs),
        |(lock, got_it, conn): (Lock, procshare::Event, Connection)| {
            let end = std::time::Instant::now() + Duration::from_secs(30);
            let mut announced = false;
            while !got_it.is_set() && std::time::Instant::now() < end {
                for _ in 0..1000 {
                    drop(lock.lock().unwrap());
                }
                if !announced {
                    conn.send(&"hammering").unwrap();
                    announced = true;
                }
            }
            conn.send(&got_it.is_set()).unwrap();
        },
    )
    .unwrap();
    assert_eq!(mine.recv::<String>().unwrap(), "hammering");
    drop(lock.lock().unwrap());
    got_it.set();
    assert!(mine.recv::<bool>().unwrap(), "the parent got the lock while the child hammered");
    assert_eq!(hammer.join().unwrap(), 0);
}
