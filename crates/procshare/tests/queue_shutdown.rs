//! `shutdown(immediate)` on `Queue`, `JoinableQueue` and `SimpleQueue` (issue 14, item 3):
//! Python 3.13 `queue.Queue.shutdown` semantics, across real processes — a shutdown in one
//! process wakes getters, putters and joiners blocked in others.

use procshare::{pipe, Connection, Error, Format, JoinableQueue, Process, Queue, SimpleQueue};
use std::time::Duration;

/// Joins a child, killing it (and failing) if it hangs: a blocked caller that shutdown did not
/// wake.
fn join(mut p: Process) -> i32 {
    match p.join_timeout(Duration::from_secs(30)).unwrap() {
        Some(code) => code,
        None => {
            p.kill().unwrap();
            let _ = p.join();
            panic!("the child stayed blocked after the shutdown (killed after 30 s)");
        }
    }
}

/// Lets a child get into its blocking call before the shutdown comes (if it is late, the test
/// still passes: the call then sees the shutdown at once — the blocked case is the usual one).
fn settle(ready: &Connection) {
    ready.recv::<()>().unwrap();
    std::thread::sleep(Duration::from_millis(200));
}

#[test]
fn soft_shutdown_refuses_puts_and_drains_gets() {
    let q = Queue::<u32>::bounded(4).unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    let other = q.clone();
    q.shutdown(false);
    for r in [q.put(3), other.put_nowait(3), q.put_timeout(3, Duration::from_millis(1))] {
        assert!(matches!(r, Err(Error::ShutDown)), "{r:?}");
    }
    assert!(matches!(q.put_many([5, 6]), Err(Error::ShutDown)));
    assert!(matches!(q.put_bytes(b"\x05"), Err(Error::ShutDown)));
    assert_eq!(other.get().unwrap(), 1);
    assert_eq!(q.get_nowait().unwrap(), 2);
    // Empty and shut down: ShutDown, before Empty, whatever the blocking mode.
    assert!(matches!(q.get(), Err(Error::ShutDown)));
    assert!(matches!(q.get_nowait(), Err(Error::ShutDown)));
    assert!(matches!(q.get_timeout(Duration::from_secs(5)), Err(Error::ShutDown)));
    assert!(matches!(q.get_many(3), Err(Error::ShutDown)));
    assert!(matches!(q.get_bytes(), Err(Error::ShutDown)));
    // Idempotent, and an upgrade to immediate is allowed.
    q.shutdown(false);
    q.shutdown(true);
    assert!(matches!(q.get(), Err(Error::ShutDown)));
}

#[test]
fn immediate_shutdown_discards_and_counts_the_items_done() {
    let q = JoinableQueue::<u32>::new().unwrap();
    for i in 0..5 {
        q.put(i).unwrap();
    }
    // Fetched before the shutdown: still needs its task_done.
    assert_eq!(q.get().unwrap(), 0);
    q.shutdown(true);
    assert_eq!(q.qsize(), 0);
    assert!(matches!(q.get_nowait(), Err(Error::ShutDown)));
    assert_eq!(q.unfinished_tasks(), 1);
    assert!(matches!(q.join_timeout(Duration::from_millis(50)), Err(Error::Timeout)));
    q.task_done().unwrap();
    q.join_timeout(Duration::from_secs(20)).unwrap();
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooManyTimes)));
}

#[test]
fn a_soft_shutdown_keeps_join_waiting_for_task_done() {
    let q = JoinableQueue::<u32>::new().unwrap();
    q.put(7).unwrap();
    q.shutdown(false);
    assert!(matches!(q.join_timeout(Duration::from_millis(50)), Err(Error::Timeout)));
    assert_eq!(q.get().unwrap(), 7);
    q.task_done().unwrap();
    q.join_timeout(Duration::from_secs(20)).unwrap();
}

/// Blocks in `get` on an empty queue; exits 0 if the shutdown ended it with `ShutDown`.
fn blocked_getter((q, ready): (Queue<u32>, Connection)) {
    ready.send(&()).unwrap();
    match q.get() {
        Err(Error::ShutDown) => {}
        other => panic!("get ended with {other:?}, not ShutDown"),
    }
}

#[test]
fn shutdown_wakes_getters_blocked_in_other_processes() {
    let q = Queue::<u32>::new().unwrap();
    let mut children = Vec::new();
    for _ in 0..2 {
        let (ready, there) = pipe().unwrap();
        children.push(Process::spawn((q.clone(), there), blocked_getter).unwrap());
        settle(&ready);
    }
    q.shutdown(false);
    for c in children {
        assert_eq!(join(c), 0, "see the child's stderr");
    }
}

/// Blocks in `put` on a full queue; exits 0 if the shutdown ended it with `ShutDown`.
fn blocked_putter((q, ready): (Queue<u32>, Connection)) {
    ready.send(&()).unwrap();
    match q.put(2) {
        Err(Error::ShutDown) => {}
        other => panic!("put ended with {other:?}, not ShutDown"),
    }
}

#[test]
fn shutdown_wakes_putters_blocked_in_other_processes() {
    let q = Queue::<u32>::bounded(1).unwrap();
    q.put(1).unwrap();
    let (ready, there) = pipe().unwrap();
    let c = Process::spawn((q.clone(), there), blocked_putter).unwrap();
    settle(&ready);
    q.shutdown(false);
    assert_eq!(join(c), 0, "see the child's stderr");
    // The item queued before stays for the getters.
    assert_eq!(q.get().unwrap(), 1);
    assert!(matches!(q.get(), Err(Error::ShutDown)));
}

/// Blocks in `join` while items are queued; exits 0 once `join` returned `Ok`.
fn blocked_joiner((q, ready): (JoinableQueue<u32>, Connection)) {
    ready.send(&()).unwrap();
    q.join().unwrap();
}

#[test]
fn immediate_shutdown_releases_joiners_in_other_processes() {
    let q = JoinableQueue::<u32>::bounded(10).unwrap();
    q.put_many(0..3).unwrap();
    let (ready, there) = pipe().unwrap();
    let c = Process::spawn((q.clone(), there), blocked_joiner).unwrap();
    settle(&ready);
    q.shutdown(true);
    assert_eq!(join(c), 0, "see the child's stderr");
    assert_eq!(q.unfinished_tasks(), 0);
}

/// Shuts the queue down from another process.
fn shut_it((q, immediate): (Queue<u32>, bool)) {
    q.shutdown(immediate);
}

#[test]
fn a_shutdown_in_another_process_holds_for_every_handle() {
    let q = Queue::<u32>::new().unwrap();
    q.put(1).unwrap();
    assert_eq!(join(Process::spawn((q.clone(), false), shut_it).unwrap()), 0);
    assert!(matches!(q.put(2), Err(Error::ShutDown)));
    assert_eq!(q.get().unwrap(), 1);
    assert!(matches!(q.get(), Err(Error::ShutDown)));

    let q = Queue::<u32>::new().unwrap();
    q.put(1).unwrap();
    assert_eq!(join(Process::spawn((q.clone(), true), shut_it).unwrap()), 0);
    assert!(matches!(q.get(), Err(Error::ShutDown)), "immediate: the item was discarded");
    assert_eq!(q.qsize(), 0);
}

fn open_and_shut(name: String) {
    Queue::<u32>::open(&name).unwrap().shutdown(false);
}

#[test]
fn an_unrelated_process_shuts_a_named_queue_down() {
    let name = format!("pq{}shut", std::process::id());
    let q = Queue::<u32>::create_named(&name, 0, Format::Pickle).unwrap();
    let (ready, there) = pipe().unwrap();
    let getter = Process::spawn((q.clone(), there), blocked_getter).unwrap();
    settle(&ready);
    assert_eq!(join(Process::spawn(name, open_and_shut).unwrap()), 0);
    assert_eq!(join(getter), 0, "see the child's stderr");
}

/// `SimpleQueue::get` blocked in a child; exits 0 on `ShutDown`.
fn blocked_simple_getter((q, ready): (SimpleQueue<String>, Connection)) {
    ready.send(&()).unwrap();
    assert_eq!(q.get().unwrap(), "left");
    match q.get() {
        Err(Error::ShutDown) => {}
        other => panic!("get ended with {other:?}, not ShutDown"),
    }
}

#[test]
fn simple_queue_shutdown() {
    let q = SimpleQueue::<String>::new().unwrap();
    q.put("left".into()).unwrap();
    q.shutdown(false);
    let (ready, there) = pipe().unwrap();
    let c = Process::spawn((q.clone(), there), blocked_simple_getter).unwrap();
    ready.recv::<()>().unwrap();
    assert_eq!(join(c), 0, "see the child's stderr");
    assert!(matches!(q.put("more".into()), Err(Error::ShutDown)));

    // Blocked first, shut down after.
    let q = SimpleQueue::<String>::new().unwrap();
    q.put("left".into()).unwrap();
    let (ready, there) = pipe().unwrap();
    let c = Process::spawn((q.clone(), there), blocked_simple_getter).unwrap();
    settle(&ready);
    q.shutdown(false);
    assert_eq!(join(c), 0, "see the child's stderr");

    let q = SimpleQueue::<u8>::new().unwrap();
    q.put(1).unwrap();
    q.shutdown(true);
    assert!(matches!(q.get(), Err(Error::ShutDown)));
    assert!(q.empty());
}

/// Puts as fast as it can until the shutdown refuses it, then reports how many went in.
fn flood((q, done): (JoinableQueue<u64>, Connection)) {
    let mut n = 0u64;
    loop {
        match q.put(n) {
            Ok(()) => n += 1,
            Err(Error::ShutDown) => break,
            Err(e) => panic!("put: {e}"),
        }
    }
    done.send(&n).unwrap();
}

#[test]
fn immediate_shutdown_under_load_loses_no_count() {
    // Producers racing the shutdown: every item is either discarded (counted done) or was
    // taken before; `join` returns once the taken ones are done, and nothing is left behind.
    let q = JoinableQueue::<u64>::bounded(64).unwrap();
    let mut producers = Vec::new();
    let mut dones = Vec::new();
    for _ in 0..2 {
        let (here, there) = pipe().unwrap();
        producers.push(Process::spawn((q.clone(), there), flood).unwrap());
        dones.push(here);
    }
    let mut taken = 0;
    while taken < 200 {
        if q.get_timeout(Duration::from_secs(20)).is_ok() {
            taken += 1;
        }
    }
    q.shutdown(true);
    for p in producers {
        assert_eq!(join(p), 0, "see the child's stderr");
    }
    let put: u64 = dones.iter().map(|d| d.recv::<u64>().unwrap()).sum();
    assert!(put >= 200);
    // A put that had reserved its slot before the shutdown commits after the discard; the
    // next get (or join) discards it.
    assert!(matches!(q.get_nowait(), Err(Error::ShutDown)));
    assert_eq!(q.unfinished_tasks(), 200, "the discarded items count as done, the taken not");
    for _ in 0..200 {
        q.task_done().unwrap();
    }
    q.join_timeout(Duration::from_secs(20)).unwrap();
    assert!(matches!(q.get_nowait(), Err(Error::ShutDown)));
}
