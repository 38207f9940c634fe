//! Condition between real processes: producer/consumer, notify counts, timeouts, a notifier
//! killed holding the condition's lock.

use procshare::{pipe, Condition, Connection, Process, RawArray};
use std::time::Duration;

/// A one-slot-at-a-time buffer of 8 items: `[count, head, items...]` guarded by `cond`.
const CAP: usize = 8;
const ITEMS: u64 = 500;

fn producer(args: (Condition, RawArray<u64>)) {
    let (cond, buf) = args;
    for i in 1..=ITEMS {
        let mut g = cond.lock().unwrap();
        while buf.get(0) as usize == CAP {
            g.wait().unwrap();
        }
        let (count, head) = (buf.get(0) as usize, buf.get(1) as usize);
        buf.set(2 + (head + count) % CAP, i);
        buf.set(0, count as u64 + 1);
        cond.notify_all();
    }
}

#[test]
fn producer_consumer_across_processes() {
    let cond = Condition::new().unwrap();
    let buf = RawArray::<u64>::new(2 + CAP).unwrap();
    let mut kid = Process::spawn((cond.clone(), buf.clone()), producer).unwrap();
    let mut got = Vec::new();
    while got.len() < ITEMS as usize {
        let mut g = cond.lock().unwrap();
        while buf.get(0) == 0 {
            g.wait().unwrap();
        }
        let (count, head) = (buf.get(0) as usize, buf.get(1) as usize);
        got.push(buf.get(2 + head));
        buf.set(1, ((head + 1) % CAP) as u64);
        buf.set(0, count as u64 - 1);
        cond.notify_all();
    }
    assert_eq!(got, (1..=ITEMS).collect::<Vec<_>>());
    assert_eq!(kid.join().unwrap(), 0);
}

#[test]
fn wait_timeout_returns_false_and_holds_the_lock_again() {
    let cond = Condition::new().unwrap();
    let mut g = cond.lock().unwrap();
    assert!(!g.wait_timeout(Duration::from_millis(20)).unwrap());
    assert!(cond.try_lock().unwrap().is_none(), "the lock is held again");
    drop(g);
    assert!(cond.try_lock().unwrap().is_some());
}

#[test]
fn notify_wakes_a_waiter_in_another_process() {
    let cond = Condition::new().unwrap();
    let (mine, theirs) = pipe().unwrap();
    let mut kid =
        Process::spawn((cond.clone(), theirs), |(cond, conn): (Condition, Connection)| {
            let mut g = cond.lock().unwrap();
            conn.send(&false).unwrap(); // sent under the lock: the parent's notify comes after wait
            let notified = g.wait_timeout(Duration::from_secs(30)).unwrap();
            conn.send(&notified).unwrap();
        })
        .unwrap();
    assert!(!mine.recv::<bool>().unwrap());
    // Taking the lock means the child is inside wait (it released the lock there).
    let g = cond.lock().unwrap();
    cond.notify(1);
    drop(g);
    assert!(mine.recv::<bool>().unwrap());
    assert_eq!(kid.join().unwrap(), 0);
}

#[test]
fn lock_held_by_a_killed_process_is_taken_over() {
    let cond = Condition::new().unwrap();
    let (mine, theirs) = pipe().unwrap();
    let mut kid =
        Process::spawn((cond.clone(), theirs), |(cond, conn): (Condition, Connection)| {
            let _g = cond.lock().unwrap();
            conn.send(&true).unwrap();
            std::thread::sleep(Duration::from_secs(60));
        })
        .unwrap();
    assert!(mine.recv::<bool>().unwrap());
    kid.kill().unwrap();
    let g = cond.lock().unwrap();
    assert!(g.previous_holder_died());
    drop(g);
    assert_eq!(kid.join().unwrap(), -9);
}
