//! `redis-server` killed and restarted (AOF on) under running producers and consumers: the
//! clients reconnect by themselves, and nothing whose `put` returned `Ok` is lost.

mod common;

use common::server_aof;
use procshare::Process;
use procshare_redis::{JoinableQueue, Options, Queue};
use std::collections::HashSet;
use std::time::Duration;

const N: u32 = 3000;

fn opts() -> Options {
    // Long enough to ride out the restart, short enough that a lost server fails the test.
    Options::new().connect_timeout(Duration::from_secs(20))
}

fn produce((url, acked): (String, Queue<u32>)) {
    let q: Queue<u32> = Queue::open_with(&url, "rs", &opts()).unwrap();
    let mut n = 0;
    for i in 0..N {
        q.put(i).unwrap();
        n = i + 1;
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    acked.put(n).unwrap();
}

fn consume((url, out): (String, Queue<Vec<u32>>)) {
    let q: Queue<u32> = Queue::open_with(&url, "rs", &opts()).unwrap();
    let mut got = Vec::new();
    loop {
        let i = q.get().unwrap();
        if i == u32::MAX {
            break;
        }
        got.push(i);
    }
    out.put(got).unwrap();
}

#[test]
fn server_restart_mid_run_loses_nothing_acknowledged() {
    let Some(mut s) = server_aof() else { return };
    let url = s.url();
    let q: Queue<u32> = Queue::open_with(&url, "rs", &opts()).unwrap();
    let results: Queue<Vec<u32>> = Queue::open_with(&url, "rs-out", &opts()).unwrap();
    let acks: Queue<u32> = Queue::open_with(&url, "rs-acks", &opts()).unwrap();
    let mut producer = Process::spawn((url.clone(), acks.clone()), produce).unwrap();
    let mut consumers: Vec<Process> =
        (0..2).map(|_| Process::spawn((url.clone(), results.clone()), consume).unwrap()).collect();
    // Let work flow, then crash the server twice.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(400));
        s.kill();
        std::thread::sleep(Duration::from_millis(300));
        s.start();
    }
    assert_eq!(producer.join().unwrap(), 0, "the producer rode out the restarts");
    assert_eq!(acks.get_timeout(Duration::from_secs(60)).unwrap(), N);
    for _ in 0..2 {
        q.put(u32::MAX).unwrap();
    }
    let mut all = Vec::new();
    for _ in 0..2 {
        all.extend(results.get_timeout(Duration::from_secs(60)).unwrap());
    }
    for c in &mut consumers {
        assert_eq!(c.join().unwrap(), 0, "the consumers rode out the restarts");
    }
    let unique: HashSet<u32> = all.iter().copied().collect();
    assert_eq!(unique.len(), N as usize, "every acknowledged put arrived");
    assert_eq!(all.len(), N as usize, "and none twice (retries are de-duplicated)");
    q.destroy().unwrap();
}

fn work((url, done): (String, Queue<u32>)) {
    let q: JoinableQueue<Option<u32>> = JoinableQueue::open_with(&url, "rj", &opts()).unwrap();
    while let Some(i) = q.get().unwrap() {
        done.put(i).unwrap();
        q.task_done().unwrap();
    }
    q.task_done().unwrap();
}

#[test]
fn joinable_survives_a_restart_and_join_still_returns() {
    let Some(mut s) = server_aof() else { return };
    let url = s.url();
    let q: JoinableQueue<Option<u32>> = JoinableQueue::open_with(&url, "rj", &opts()).unwrap();
    let done: Queue<u32> = Queue::open_with(&url, "rj-done", &opts()).unwrap();
    let mut workers: Vec<Process> =
        (0..2).map(|_| Process::spawn((url.clone(), done.clone()), work).unwrap()).collect();
    for i in 0..N {
        q.put(Some(i)).unwrap();
        if i == N / 3 {
            s.kill();
            std::thread::sleep(Duration::from_millis(300));
            s.start();
        }
    }
    q.join().unwrap();
    let mut seen = HashSet::new();
    loop {
        match done.get_nowait() {
            Ok(i) => seen.insert(i),
            Err(procshare::Error::Empty) => break,
            Err(e) => panic!("{e}"),
        };
    }
    assert_eq!(seen.len(), N as usize, "every item was processed at least once");
    for _ in 0..2 {
        q.put(None).unwrap();
    }
    for w in &mut workers {
        assert_eq!(w.join().unwrap(), 0);
    }
    q.destroy().unwrap();
}

#[test]
fn nowait_after_a_restart_reconnects_instead_of_failing() {
    let Some(mut s) = server_aof() else { return };
    let q: Queue<u32> = Queue::open(&s.url(), "nw").unwrap();
    q.put(1).unwrap();
    // The handle's pooled connection dies with the server; the item survives in the AOF.
    s.kill();
    s.start();
    assert_eq!(q.get_nowait().unwrap(), 1);
    q.put_nowait(2).unwrap();
    assert_eq!(q.get_nowait().unwrap(), 2);
    q.destroy().unwrap();
}
