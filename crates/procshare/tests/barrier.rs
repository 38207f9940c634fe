//! Barrier between real processes: arrival indices, reuse by other processes, a party killed
//! while it waits.

use procshare::{pipe, Barrier, Connection, Error, Process};
use std::time::Duration;

const ROUNDS: usize = 20;

#[test]
fn four_processes_meet_repeatedly() {
    let barrier = Barrier::new(4).unwrap();
    let (mine, theirs) = pipe().unwrap();
    let mut kids: Vec<Process> = (0..4)
        .map(|_| {
            Process::spawn(
                (barrier.clone(), theirs.try_clone().unwrap()),
                |(b, conn): (Barrier, Connection)| {
                    let mut indices = Vec::new();
                    for _ in 0..ROUNDS {
                        indices.push(b.wait().unwrap());
                    }
                    conn.send(&indices).unwrap();
                },
            )
            .unwrap()
        })
        .collect();
    let all: Vec<Vec<usize>> = (0..4).map(|_| mine.recv().unwrap()).collect();
    for round in 0..ROUNDS {
        let mut idx: Vec<usize> = all.iter().map(|v| v[round]).collect();
        idx.sort();
        assert_eq!(idx, vec![0, 1, 2, 3], "round {round}: each arrival index once");
    }
    for k in &mut kids {
        assert_eq!(k.join().unwrap(), 0);
    }
    assert_eq!(barrier.parties(), 4);
    assert!(!barrier.broken());
}

#[test]
fn single_party_and_bad_sizes() {
    let b = Barrier::new(1).unwrap();
    assert_eq!(b.wait().unwrap(), 0);
    assert_eq!(b.wait().unwrap(), 0);
    assert!(Barrier::new(0).is_err());
    assert!(Barrier::new(1 << 20).is_err());
}

/// Waits (bounded) until `n` parties wait on `b`: a child is then inside `wait`.
fn until_waiting(b: &Barrier, n: usize) {
    for _ in 0..10_000 {
        if b.n_waiting() == n {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("{n} parties never arrived");
}

/// A child that waits once and exits normally is done with the barrier: the next round, met
/// by another child, must not count it as a party that died (Python's barrier succeeds). More
/// rounds than the slot table has slots, so slots of exited children are reused; the barrier
/// still detects a party killed mid-wait afterwards.
#[test]
fn rounds_met_by_different_children_succeed() {
    let barrier = Barrier::new(2).unwrap();
    for round in 0..70 {
        let mut kid = Process::spawn(barrier.clone(), |b: Barrier| {
            b.wait().unwrap();
        })
        .unwrap();
        assert!(barrier.wait().is_ok(), "round {round} broke: an exited child counted as dead");
        assert_eq!(kid.join().unwrap(), 0);
    }
    assert!(!barrier.broken());
    let mut victim = Process::spawn(barrier.clone(), |b: Barrier| {
        let _ = b.wait();
    })
    .unwrap();
    until_waiting(&barrier, 1);
    victim.kill().unwrap();
    assert_eq!(victim.join().unwrap(), -9);
    assert!(matches!(barrier.wait(), Err(Error::PeerDied)), "a killed waiter went unnoticed");
}

/// A party killed while it waits was counted in the round: the last arrival must not complete
/// the round as if it had been released, but break the barrier.
#[test]
fn a_party_killed_while_waiting_breaks_the_barrier_for_the_last_arrival() {
    let barrier = Barrier::new(2).unwrap();
    let mut victim = Process::spawn(barrier.clone(), |b: Barrier| {
        let _ = b.wait();
        std::thread::sleep(Duration::from_secs(60));
    })
    .unwrap();
    until_waiting(&barrier, 1);
    victim.kill().unwrap();
    assert_eq!(victim.join().unwrap(), -9);
    assert!(matches!(barrier.wait(), Err(Error::PeerDied)));
    assert!(barrier.broken());
    assert!(matches!(barrier.wait(), Err(Error::PeerDied)), "broken stays broken");
}

/// The same when the others are still waiting: their periodic check breaks it, and the other
/// waiting process is told too.
#[test]
fn a_party_killed_while_waiting_breaks_the_barrier_for_the_waiters() {
    let barrier = Barrier::new(4).unwrap();
    let (mine, theirs) = pipe().unwrap();
    let mut victim = Process::spawn(barrier.clone(), |b: Barrier| {
        let _ = b.wait();
    })
    .unwrap();
    until_waiting(&barrier, 1);
    let mut other =
        Process::spawn((barrier.clone(), theirs), |(b, conn): (Barrier, Connection)| {
            conn.send(&matches!(b.wait(), Err(Error::PeerDied))).unwrap();
        })
        .unwrap();
    until_waiting(&barrier, 2);
    victim.kill().unwrap();
    assert_eq!(victim.join().unwrap(), -9);
    // Not the last arrival (4 parties): only a waiter's check can notice.
    assert!(matches!(barrier.wait(), Err(Error::PeerDied)));
    assert!(mine.recv::<bool>().unwrap(), "the other waiter got PeerDied too");
    assert_eq!(other.join().unwrap(), 0);
}

/// A process that held the barrier and was killed — after a wait or before its first — may be
/// a party a later round needs: the barrier breaks rather than hang (Python's would hang).
#[test]
fn a_party_killed_before_arriving_breaks_the_barrier() {
    let barrier = Barrier::new(3).unwrap();
    let (mine, theirs) = pipe().unwrap();
    // The victim met the others once, then is killed before the second meeting.
    let victim = Process::spawn(
        (barrier.clone(), theirs.try_clone().unwrap()),
        |(b, conn): (Barrier, Connection)| {
            b.wait().unwrap();
            conn.send(&"victim passed").unwrap();
            std::thread::sleep(Duration::from_secs(60));
        },
    )
    .unwrap();
    let mut other =
        Process::spawn((barrier.clone(), theirs), |(b, conn): (Barrier, Connection)| {
            b.wait().unwrap();
            let second = b.wait();
            conn.send(&matches!(second, Err(Error::PeerDied))).unwrap();
        })
        .unwrap();
    barrier.wait().unwrap();
    assert_eq!(mine.recv::<String>().unwrap(), "victim passed");
    let mut victim = victim;
    victim.kill().unwrap();
    assert!(matches!(barrier.wait(), Err(Error::PeerDied)));
    assert!(mine.recv::<bool>().unwrap(), "the other party got PeerDied too");
    assert!(barrier.broken());
    assert!(matches!(barrier.wait(), Err(Error::PeerDied)), "broken stays broken");
    assert_eq!(other.join().unwrap(), 0);
    assert_eq!(victim.join().unwrap(), -9);
}

/// A child that holds `barrier` (registered when it received it) and never arrives; returned
/// once it has started.
fn spawn_idle_party(barrier: &Barrier) -> Process {
    let (mine, theirs) = pipe().unwrap();
    let kid = Process::spawn((barrier.clone(), theirs), |(_b, conn): (Barrier, Connection)| {
        conn.send(&"started").unwrap();
        std::thread::sleep(Duration::from_secs(60));
    })
    .unwrap();
    assert_eq!(mine.recv::<String>().unwrap(), "started");
    kid
}

#[test]
fn a_party_killed_before_its_first_wait_breaks_the_barrier() {
    let barrier = Barrier::new(2).unwrap();
    let mut kid = spawn_idle_party(&barrier);
    kid.kill().unwrap();
    assert!(matches!(barrier.wait(), Err(Error::PeerDied)));
    assert_eq!(kid.join().unwrap(), -9);
}

/// After `reset`, the dead are forgotten: the barrier works with the living.
#[test]
fn reset_forgets_a_dead_holder() {
    let barrier = Barrier::new(2).unwrap();
    let mut kid = spawn_idle_party(&barrier);
    kid.kill().unwrap();
    assert_eq!(kid.join().unwrap(), -9);
    assert!(matches!(barrier.wait(), Err(Error::PeerDied)));
    barrier.reset();
    std::thread::scope(|s| {
        let t = s.spawn(|| barrier.wait());
        assert!(barrier.wait().is_ok());
        assert!(t.join().unwrap().is_ok());
    });
}

#[test]
fn abort_and_reset() {
    let b = Barrier::new(2).unwrap();
    b.abort();
    assert!(b.broken());
    assert!(matches!(b.wait(), Err(Error::PeerDied)));
    b.reset();
    assert!(!b.broken());
    std::thread::scope(|s| {
        s.spawn(|| b.wait().unwrap());
        b.wait().unwrap();
    });
}

#[test]
fn reset_releases_a_waiter_in_another_process_with_an_error() {
    let barrier = Barrier::new(2).unwrap();
    let (mine, theirs) = pipe().unwrap();
    let mut kid = Process::spawn((barrier.clone(), theirs), |(b, conn): (Barrier, Connection)| {
        conn.send(&"waiting").unwrap();
        conn.send(&matches!(b.wait(), Err(Error::PeerDied))).unwrap();
    })
    .unwrap();
    assert_eq!(mine.recv::<String>().unwrap(), "waiting");
    while barrier.n_waiting() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    barrier.reset();
    assert!(mine.recv::<bool>().unwrap(), "the waiter got PeerDied from reset");
    assert_eq!(kid.join().unwrap(), 0);
    assert_eq!(barrier.n_waiting(), 0);
    assert!(!barrier.broken());
}
