//! Queue, JoinableQueue and SimpleQueue between real processes.

use procshare::{Error, JoinableQueue, Process, Queue, SimpleQueue};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashSet;
use std::time::Duration;

mod common;
use common::Bytes;

fn pattern(len: usize, seed: u8) -> Bytes {
    Bytes(common::pattern(len, seed))
}

const SEG: usize = 256 << 10; // the ring's segment size

#[test]
fn put_get_sizes_and_predicates() {
    let q: Queue<u32> = Queue::new().unwrap();
    assert!(q.empty());
    assert!(!q.full());
    assert_eq!(q.qsize(), 0);
    assert_eq!(q.maxsize(), 0);
    for i in 0..5 {
        q.put(i).unwrap();
    }
    assert_eq!(q.qsize(), 5);
    assert!(!q.empty());
    assert_eq!(q.get().unwrap(), 0);
    assert_eq!(q.get_nowait().unwrap(), 1);
    assert_eq!(q.get_timeout(Duration::from_millis(10)).unwrap(), 2);
    assert_eq!(q.get_many(10).unwrap(), vec![3, 4]);
    assert!(q.get_many(0).unwrap().is_empty());
    assert!(matches!(q.get_nowait(), Err(Error::Empty)));
    assert!(matches!(q.get_timeout(Duration::from_millis(30)), Err(Error::Empty)));
    assert!(q.max_message_size() >= 1 << 30);
}

#[test]
fn bounded_full_and_timeouts() {
    let q: Queue<String> = Queue::bounded(2).unwrap();
    assert_eq!(q.maxsize(), 2);
    q.put_nowait("a".into()).unwrap();
    q.put_timeout("b".into(), Duration::from_millis(5)).unwrap();
    assert!(q.full());
    assert!(matches!(q.put_nowait("c".into()), Err(Error::Full)));
    assert!(matches!(q.put_timeout("c".into(), Duration::from_millis(30)), Err(Error::Full)));
    assert_eq!(q.get().unwrap(), "a");
    q.put_nowait("c".into()).unwrap();
    assert_eq!(q.get_many(5).unwrap(), ["b", "c"]);
    assert!(matches!(Queue::<u8>::bounded(usize::MAX), Err(Error::InvalidArgument(_))));
}

#[test]
fn blocked_put_wakes_when_a_child_gets() {
    let q: Queue<u64> = Queue::bounded(1).unwrap();
    q.put(1).unwrap();
    let mut child = Process::spawn(q.clone(), |q| {
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(q.get().unwrap(), 1);
    })
    .unwrap();
    q.put(2).unwrap(); // blocks until the child took 1
    assert_eq!(child.join().unwrap(), 0);
    assert_eq!(q.get().unwrap(), 2);
}

#[test]
fn close_stops_this_handle_only() {
    let q: Queue<i32> = Queue::new().unwrap();
    let other = q.clone();
    q.put(1).unwrap();
    q.close();
    q.close();
    assert!(matches!(q.put(2), Err(Error::Closed)));
    assert!(matches!(q.put_nowait(2), Err(Error::Closed)));
    assert!(matches!(q.put_many([2, 3]), Err(Error::Closed)));
    other.put(4).unwrap();
    assert_eq!(q.get().unwrap(), 1);
    assert_eq!(other.get().unwrap(), 4);
}

#[test]
fn items_of_edge_sizes_cross_processes() {
    let sizes = [0usize, 1, SEG - 1, SEG, SEG + 1, 3 * SEG, 100 << 20];
    let q: Queue<Bytes> = Queue::new().unwrap();
    let back: Queue<Bytes> = Queue::new().unwrap();
    let mut child = Process::spawn((q.clone(), back.clone()), |(q, back)| {
        // Echo everything back.
        for _ in 0..7 {
            back.put(q.get().unwrap()).unwrap();
        }
    })
    .unwrap();
    for (i, &n) in sizes.iter().enumerate() {
        q.put(pattern(n, i as u8)).unwrap();
    }
    for (i, &n) in sizes.iter().enumerate() {
        let got = back.get().unwrap();
        assert_eq!(got.0.len(), n);
        assert!(got == pattern(n, i as u8), "item of {n} bytes came back different");
    }
    assert_eq!(child.join().unwrap(), 0);
}

#[test]
fn unit_items_and_threads_share_a_queue() {
    let q: Queue<()> = Queue::new().unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..1000 {
                    q.put(()).unwrap();
                }
            });
        }
    });
    assert_eq!(q.qsize(), 4000);
    let mut n = 0;
    while q.get_nowait().is_ok() {
        n += 1;
    }
    assert_eq!(n, 4000);
}

fn producer((q, id, n): (Queue<(u8, u32)>, u8, u32)) {
    let mut batch = Vec::new();
    for i in 0..n {
        // Mix single puts and batches.
        if i % 37 == 0 {
            q.put_many(batch.drain(..)).unwrap();
            q.put((id, i)).unwrap();
        } else {
            batch.push((id, i));
            if batch.len() == 16 {
                q.put_many(batch.drain(..)).unwrap();
            }
        }
    }
    q.put_many(batch).unwrap();
}

type Items = Queue<(u8, u32)>;

fn consumer((q, out): (Items, Queue<Vec<(u8, u32)>>)) {
    let mut got = Vec::new();
    loop {
        let items = q.get_many(64).unwrap();
        let mut stops = 0;
        for it in items {
            if it.0 == u8::MAX {
                stops += 1;
            } else {
                got.push(it);
            }
        }
        if stops > 0 {
            // One sentinel per consumer: hand back the ones meant for the others.
            for _ in 1..stops {
                q.put((u8::MAX, 0)).unwrap();
            }
            break;
        }
    }
    out.put(got).unwrap();
}

#[test]
fn four_producers_four_consumers_exactly_once_in_order() {
    // 1,000,000 items in release builds; fewer in debug builds (which are ~20x slower).
    let per_producer: u32 = if cfg!(debug_assertions) { 25_000 } else { 250_000 };
    let q: Queue<(u8, u32)> = Queue::bounded(10_000).unwrap();
    let out: Queue<Vec<(u8, u32)>> = Queue::new().unwrap();
    let mut consumers: Vec<_> =
        (0..4).map(|_| Process::spawn((q.clone(), out.clone()), consumer).unwrap()).collect();
    let mut producers: Vec<_> = (0..4u8)
        .map(|id| Process::spawn((q.clone(), id, per_producer), producer).unwrap())
        .collect();
    for p in &mut producers {
        assert_eq!(p.join().unwrap(), 0);
    }
    for _ in 0..4 {
        q.put((u8::MAX, 0)).unwrap();
    }
    let mut seen = HashSet::new();
    for _ in 0..4 {
        let got = out.get().unwrap();
        let mut last = [None::<u32>; 4];
        for (id, i) in got {
            let l = &mut last[id as usize];
            assert!(l.map_or(true, |l| l < i), "producer {id}: {i} after {l:?}");
            *l = Some(i);
            assert!(seen.insert((id, i)), "({id}, {i}) delivered twice");
        }
    }
    assert_eq!(seen.len(), 4 * per_producer as usize);
    for c in &mut consumers {
        assert_eq!(c.join().unwrap(), 0);
    }
    assert!(q.empty());
}

#[test]
fn unbounded_queue_absorbs_a_gigabyte_with_a_stalled_consumer() {
    let q: Queue<Bytes> = Queue::new().unwrap();
    let (go_recv, go_send) = procshare::pipe_simplex().unwrap();
    let mut consumer = Process::spawn((q.clone(), go_recv), |(q, go)| {
        go.recv::<()>().unwrap(); // stalled until the producer is done
        let mut total = 0usize;
        for i in 0..256u32 {
            let b = q.get().unwrap();
            assert_eq!(b.0[0], i as u8);
            total += b.0.len();
        }
        assert_eq!(total, 1 << 30);
    })
    .unwrap();
    let item = vec![0u8; 4 << 20];
    for i in 0..256u32 {
        let mut b = item.clone();
        b[0] = i as u8;
        // Must never find the queue full.
        q.put_nowait(Bytes(b)).unwrap();
    }
    assert_eq!(q.qsize(), 256);
    // Many small items too: far more than one segment holds.
    for i in 0..200_000u32 {
        q.put_nowait(Bytes(i.to_le_bytes().to_vec())).unwrap();
    }
    let before = rss_shmem_kib();
    assert!(before > 1 << 20, "RssShmem {before} KiB after putting 1 GiB");
    go_send.send(&()).unwrap();
    assert_eq!(consumer.join().unwrap(), 0);
    for i in 0..200_000u32 {
        assert_eq!(q.get().unwrap().0, i.to_le_bytes());
    }
    assert!(q.empty());
    // Drained: the memory went back to the system (also out of this process's mapping).
    let after = rss_shmem_kib();
    assert!(after < before - (900 << 10), "RssShmem {before} KiB before, {after} KiB after");
}

/// This process's resident shared memory (`RssShmem` in /proc/self/status), in KiB.
fn rss_shmem_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("RssShmem:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

struct Unserializable;
impl Serialize for Unserializable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this value refuses to be serialized"))
    }
}
impl<'de> Deserialize<'de> for Unserializable {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(Unserializable)
    }
}

#[test]
fn encoding_and_decoding_errors_are_errors() {
    let q: Queue<Unserializable> = Queue::new().unwrap();
    assert!(matches!(q.put(Unserializable), Err(Error::Codec(_))));
    assert!(matches!(q.put_many([Unserializable]), Err(Error::Codec(_))));
    assert!(q.empty());

    // A value that serializes fine but does not decode: the get in the child returns Err,
    // and the queue goes on.
    let q: Queue<Picky> = Queue::new().unwrap();
    q.put(Picky(0xff)).unwrap();
    q.put(Picky(7)).unwrap();
    let mut child = Process::spawn(q.clone(), |q| {
        assert!(matches!(q.get(), Err(Error::Codec(_))));
        assert_eq!(q.get().unwrap().0, 7);
    })
    .unwrap();
    assert_eq!(child.join().unwrap(), 0);
}

/// Refuses to decode 0xff.
struct Picky(u8);
impl Serialize for Picky {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.0)
    }
}
impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u8::deserialize(d)? {
            0xff => Err(serde::de::Error::custom("0xff is not allowed")),
            v => Ok(Picky(v)),
        }
    }
}

#[test]
fn joinable_queue_join_across_processes() {
    let q: JoinableQueue<u32> = JoinableQueue::new().unwrap();
    let results: Queue<u32> = Queue::new().unwrap();
    let workers: Vec<_> = (0..3)
        .map(|_| {
            Process::spawn((q.clone(), results.clone()), |(q, results)| loop {
                let n = q.get().unwrap();
                if n == u32::MAX {
                    q.task_done().unwrap();
                    return;
                }
                std::thread::sleep(Duration::from_micros(200));
                results.put(n * 2).unwrap();
                q.task_done().unwrap();
            })
            .unwrap()
        })
        .collect();
    for n in 0..300 {
        q.put(n).unwrap();
    }
    q.join().unwrap();
    assert_eq!(q.unfinished_tasks(), 0);
    assert_eq!(results.qsize(), 300);
    let mut all = results.get_many(1000).unwrap();
    all.sort();
    assert_eq!(all, (0..300).map(|n| n * 2).collect::<Vec<_>>());
    for _ in &workers {
        q.put(u32::MAX).unwrap();
    }
    q.join().unwrap();
    for mut w in workers {
        assert_eq!(w.join().unwrap(), 0);
    }
    assert!(matches!(q.task_done(), Err(Error::TaskDoneTooManyTimes)));
    q.put(1).unwrap();
    assert!(matches!(q.join_timeout(Duration::from_millis(20)), Err(Error::Timeout)));
    q.get().unwrap();
    q.task_done().unwrap();
    q.join_timeout(Duration::from_millis(20)).unwrap();
}

#[test]
fn simple_queue() {
    let q: SimpleQueue<String> = SimpleQueue::new().unwrap();
    assert!(q.empty());
    let mut child = Process::spawn(q.clone(), |q| {
        for i in 0..10 {
            q.put(format!("item {i}")).unwrap();
        }
    })
    .unwrap();
    for i in 0..10 {
        assert_eq!(q.get().unwrap(), format!("item {i}"));
    }
    assert!(q.empty());
    assert_eq!(child.join().unwrap(), 0);
    q.close();
    assert!(matches!(q.put("x".into()), Err(Error::Closed)));
    assert!(matches!(q.get(), Err(Error::Closed)));
}

#[test]
fn fork_children_share_the_queue() {
    // Fork needs a single-threaded parent: the test thread's process has several.
    let mut parent = Process::spawn((), |()| {
        let q: Queue<u32> = Queue::new().unwrap();
        let mut child = Process::builder()
            .start_method(procshare::StartMethod::Fork)
            .spawn(q.clone(), |q| q.put(99).unwrap())
            .unwrap();
        assert_eq!(q.get().unwrap(), 99);
        assert_eq!(child.join().unwrap(), 0);
    })
    .unwrap();
    assert_eq!(parent.join().unwrap(), 0, "see the child's stderr");
}

#[test]
fn handles_are_send_sync_clone() {
    common::assert_send_sync_clone::<Queue<String>>();
    common::assert_send_sync_clone::<JoinableQueue<Vec<u8>>>();
    common::assert_send_sync_clone::<SimpleQueue<u8>>();
}

fn memfds_open() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().contains("memfd:"))
        .count()
}

#[test]
fn no_memfd_outlives_its_queues() {
    // In a child of its own, so other tests' queues do not count.
    let mut checker = Process::spawn((), |()| {
        let before = memfds_open();
        {
            let q: Queue<Bytes> = Queue::new().unwrap();
            let j: JoinableQueue<u8> = JoinableQueue::new().unwrap();
            let s: SimpleQueue<u8> = SimpleQueue::new().unwrap();
            let mut p = Process::spawn((q.clone(), j.clone(), s.clone()), |(q, j, s)| {
                q.put(pattern(3 * SEG, 1)).unwrap();
                j.put(1).unwrap();
                s.put(2).unwrap();
            })
            .unwrap();
            assert_eq!(p.join().unwrap(), 0);
            assert_eq!(q.get().unwrap(), pattern(3 * SEG, 1));
            assert!(memfds_open() > before);
        }
        assert_eq!(memfds_open(), before);
    })
    .unwrap();
    assert_eq!(checker.join().unwrap(), 0);
}

/// Serializes to a different length each time (so the size counted before reserving is wrong).
struct Shifty(std::cell::Cell<usize>);
impl Serialize for Shifty {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.0.get();
        self.0.set(if n > 100_000 { n - 5_000 } else { n + 5_000 });
        s.serialize_bytes(&vec![1u8; n])
    }
}
impl<'de> Deserialize<'de> for Shifty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let b = Bytes::deserialize(d)?;
        Ok(Shifty(std::cell::Cell::new(b.0.len())))
    }
}

#[test]
fn a_large_item_that_changes_size_while_serialized_is_an_error() {
    let q: Queue<Shifty> = Queue::new().unwrap();
    for start in [100_000, 200_000] {
        assert!(matches!(q.put(Shifty(std::cell::Cell::new(start))), Err(Error::Codec(_))));
    }
    // The abandoned records are skipped; the queue goes on.
    assert!(matches!(q.get_nowait(), Err(Error::Empty)));
    let ok = Shifty(std::cell::Cell::new(50));
    q.put(ok).unwrap();
    assert_eq!(q.get().unwrap().0.get(), 50);
    assert!(q.empty());
}
