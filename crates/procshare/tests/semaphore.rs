//! Semaphore and BoundedSemaphore between real processes.

use procshare::{pipe, BoundedSemaphore, Connection, Process, RawValue, Semaphore};
use std::time::Duration;

#[test]
fn counts_and_timeouts() {
    let sem = Semaphore::new(3).unwrap();
    assert_eq!(sem.value(), 3);
    for _ in 0..3 {
        sem.acquire().unwrap();
    }
    assert_eq!(sem.value(), 0);
    assert!(!sem.try_acquire());
    assert!(!sem.acquire_timeout(Duration::from_millis(30)).unwrap());
    sem.release().unwrap();
    sem.release().unwrap();
    assert_eq!(sem.value(), 2);
    // An unbounded semaphore may go past its start value.
    for _ in 0..5 {
        sem.release().unwrap();
    }
    assert_eq!(sem.value(), 7);
    assert!(Semaphore::new(usize::MAX).is_err());
}

#[test]
fn bounded_release_past_start_is_an_error() {
    let sem = BoundedSemaphore::new(2).unwrap();
    assert!(sem.release().is_err());
    assert_eq!(sem.value(), 2);
    sem.acquire().unwrap();
    sem.release().unwrap();
    assert!(sem.release().is_err());
    assert_eq!(sem.value(), 2);
}

#[test]
fn at_most_n_processes_inside() {
    // 4 processes, 2 units: the number inside (counted under the semaphore with a RawValue
    // updated by CAS-free increments guarded by a second, binary semaphore) never exceeds 2.
    let sem = Semaphore::new(2).unwrap();
    let mutex = BoundedSemaphore::new(1).unwrap();
    let inside = RawValue::new(0u32).unwrap();
    let max = RawValue::new(0u32).unwrap();
    let mut kids: Vec<Process> = (0..4)
        .map(|_| {
            Process::spawn(
                (sem.clone(), mutex.clone(), inside.clone(), max.clone()),
                |(sem, mutex, inside, max)| {
                    for _ in 0..200 {
                        sem.acquire().unwrap();
                        mutex.acquire().unwrap();
                        let n = inside.get() + 1;
                        inside.set(n);
                        max.set(max.get().max(n));
                        mutex.release().unwrap();
                        std::thread::yield_now();
                        mutex.acquire().unwrap();
                        inside.set(inside.get() - 1);
                        mutex.release().unwrap();
                        sem.release().unwrap();
                    }
                },
            )
            .unwrap()
        })
        .collect();
    for k in &mut kids {
        assert_eq!(k.join().unwrap(), 0);
    }
    assert!(max.get() <= 2 && max.get() >= 1);
    assert_eq!(inside.get(), 0);
    assert_eq!(sem.value(), 2);
}

#[test]
fn release_in_one_process_wakes_a_waiter_in_another() {
    let sem = Semaphore::new(0).unwrap();
    let (mine, theirs) = pipe().unwrap();
    let mut kid = Process::spawn((sem.clone(), theirs), |(sem, conn): (Semaphore, Connection)| {
        conn.send(&0u8).unwrap();
        sem.acquire().unwrap();
        conn.send(&1u8).unwrap();
    })
    .unwrap();
    assert_eq!(mine.recv::<u8>().unwrap(), 0);
    assert!(!mine.poll(Some(Duration::from_millis(50))).unwrap(), "it waits");
    sem.release().unwrap();
    assert_eq!(mine.recv::<u8>().unwrap(), 1);
    assert_eq!(kid.join().unwrap(), 0);
}
