//! Queue benchmarks: procshare's process Queue between real processes, against
//! `crossbeam_channel::bounded` between two threads and `memcpy`, in the same run.
//! (Python's `multiprocessing.Queue` is measured by `python_ipc_baseline.py`; see the README.)
//!
//! ```text
//! cargo bench -p procshare --bench queue -- --warm-up-time 1 --measurement-time 3
//! ```

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use procshare::{Process, Queue};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An immutable byte buffer that serializes as bytes and clones cheaply (so producers do not
/// pay a copy per put just to own the item).
#[derive(Clone)]
struct Payload(Arc<[u8]>);

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Payload;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Payload, E> {
                Ok(Payload(v.into()))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// `put` then `get` of one item in one thread: the CPU cost of a round trip through the ring,
/// free of the scheduling noise of the cross-process groups (a loaded machine swamps those).
fn put_get_one_thread(size: usize) -> impl FnMut(u64) -> Duration {
    let q: Queue<Item> = Queue::new().unwrap();
    let item = Payload(vec![7u8; size].into());
    move |n| {
        let start = Instant::now();
        for _ in 0..n {
            q.put(Some(item.clone())).unwrap();
            std::hint::black_box(q.get().unwrap());
        }
        start.elapsed()
    }
}

/// Work queue item: a payload, or the end-of-round marker.
type Item = Option<Payload>;

/// Items per `put_many` / `get_many` in the batched variant (1 = plain `put` / `get`).
type Batch = usize;

fn producer((q, go, done, size, batch): (Queue<Item>, Queue<u64>, Queue<()>, usize, Batch)) {
    let item = Payload(vec![7u8; size].into());
    while let Ok(n) = go.get() {
        if batch == 1 {
            for _ in 0..n {
                q.put(Some(item.clone())).unwrap();
            }
        } else {
            let mut left = n as usize;
            while left > 0 {
                let k = left.min(batch);
                q.put_many(std::iter::repeat(Some(item.clone())).take(k)).unwrap();
                left -= k;
            }
        }
        done.put(()).unwrap();
    }
}

fn consumer((q, go, acks, batch): (Queue<Item>, Queue<()>, Queue<u64>, Batch)) {
    while go.get().is_ok() {
        let mut n = 0u64;
        'round: loop {
            if batch == 1 {
                match q.get().unwrap() {
                    Some(_item) => n += 1,
                    None => break 'round,
                }
            } else {
                for item in q.get_many(batch).unwrap() {
                    match item {
                        Some(_item) => n += 1,
                        // The marker comes after every item (the batched variant has one
                        // consumer, so nothing follows it).
                        None => break 'round,
                    }
                }
            }
        }
        acks.put(n).unwrap();
    }
}

/// `p` producer and `c` consumer processes on one queue; `round(n)` moves `n` items through.
struct Mpmc {
    q: Queue<Item>,
    prod_go: Queue<u64>,
    prod_done: Queue<()>,
    cons_go: Queue<()>,
    acks: Queue<u64>,
    procs: Vec<Process>,
    p: u64,
    c: usize,
}

impl Mpmc {
    fn new(p: usize, c: usize, size: usize, maxsize: usize, batch: Batch) -> Mpmc {
        let q = Queue::bounded(maxsize).unwrap();
        let (prod_go, prod_done) = (Queue::new().unwrap(), Queue::new().unwrap());
        let (cons_go, acks) = (Queue::new().unwrap(), Queue::new().unwrap());
        let mut procs = Vec::new();
        for _ in 0..p {
            let args = (q.clone(), prod_go.clone(), prod_done.clone(), size, batch);
            procs.push(Process::spawn(args, producer).unwrap());
        }
        for _ in 0..c {
            let args = (q.clone(), cons_go.clone(), acks.clone(), batch);
            procs.push(Process::spawn(args, consumer).unwrap());
        }
        Mpmc { q, prod_go, prod_done, cons_go, acks, procs, p: p as u64, c }
    }

    fn round(&self, n: u64) -> Duration {
        let per = n.div_ceil(self.p).max(1);
        for _ in 0..self.c {
            self.cons_go.put(()).unwrap();
        }
        let start = Instant::now();
        for _ in 0..self.p {
            self.prod_go.put(per).unwrap();
        }
        for _ in 0..self.p {
            self.prod_done.get().unwrap();
        }
        for _ in 0..self.c {
            self.q.put(None).unwrap();
        }
        let mut total = 0;
        for _ in 0..self.c {
            total += self.acks.get().unwrap();
        }
        let t = start.elapsed();
        assert_eq!(total, per * self.p);
        t
    }
}

impl Drop for Mpmc {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.join();
        }
    }
}

fn crossbeam_round(n: u64) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<[u8; 64]>(4096);
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..n {
                tx.send([7u8; 64]).unwrap();
            }
        });
        for _ in 0..n {
            std::hint::black_box(rx.recv().unwrap());
        }
    });
    start.elapsed()
}

fn small_items(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue_64B");
    g.throughput(Throughput::Elements(1));
    let one = Mpmc::new(1, 1, 64, 4096, 1);
    g.bench_function("procshare_1p1c", |b| b.iter_custom(|n| one.round(n)));
    drop(one);
    let two = Mpmc::new(2, 2, 64, 4096, 1);
    g.bench_function("procshare_2p2c", |b| b.iter_custom(|n| two.round(n)));
    drop(two);
    let batched = Mpmc::new(1, 1, 64, 4096, 64);
    g.bench_function("procshare_1p1c_batch64", |b| b.iter_custom(|n| batched.round(n)));
    drop(batched);
    g.bench_function("crossbeam_bounded_threads", |b| b.iter_custom(crossbeam_round));
    let mut one_thread = put_get_one_thread(64);
    g.bench_function("procshare_put_get_one_thread", |b| b.iter_custom(&mut one_thread));
    g.finish();
}

fn large_items(c: &mut Criterion) {
    const MIB: usize = 1 << 20;
    let mut g = c.benchmark_group("queue_1MiB");
    g.throughput(Throughput::Bytes(MIB as u64));
    g.sample_size(10);
    let one = Mpmc::new(1, 1, MIB, 16, 1);
    g.bench_function("procshare_1p1c", |b| b.iter_custom(|n| one.round(n)));
    drop(one);
    let mut one_thread = put_get_one_thread(MIB);
    g.bench_function("procshare_put_get_one_thread", |b| b.iter_custom(&mut one_thread));
    let src = vec![1u8; MIB];
    let mut dst = vec![0u8; MIB];
    g.bench_with_input(BenchmarkId::new("memcpy", "1MiB"), &(), |b, _| {
        b.iter(|| {
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&mut dst);
        })
    });
    // The same copy with both buffers out of cache (1 MiB chunks of 256 MiB buffers), as the
    // queue's are when items are in flight.
    let big_src = vec![1u8; 256 * MIB];
    let mut big_dst = vec![0u8; 256 * MIB];
    let mut at = 0;
    g.bench_with_input(BenchmarkId::new("memcpy_cold", "1MiB"), &(), |b, _| {
        b.iter(|| {
            at = (at + MIB) % (256 * MIB);
            big_dst[at..at + MIB].copy_from_slice(std::hint::black_box(&big_src[at..at + MIB]));
            std::hint::black_box(&mut big_dst);
        })
    });
    g.finish();
}

fn echo((ping, pong): (Queue<u64>, Queue<u64>)) {
    while let Ok(x) = ping.get() {
        pong.put(x).unwrap();
    }
}

fn ping_pong(c: &mut Criterion) {
    let (ping, pong) = (Queue::new().unwrap(), Queue::new().unwrap());
    let mut peer = Process::spawn((ping.clone(), pong.clone()), echo).unwrap();
    // The median, which criterion's summary line does not show: measured here directly.
    let mut rtts: Vec<Duration> = (0..20_000u64)
        .map(|i| {
            let t = Instant::now();
            ping.put(i).unwrap();
            assert_eq!(pong.get().unwrap(), i);
            t.elapsed()
        })
        .collect();
    rtts.sort();
    eprintln!(
        "queue ping-pong round trip: median {:?}, p90 {:?}, p99 {:?}",
        rtts[rtts.len() / 2],
        rtts[rtts.len() * 9 / 10],
        rtts[rtts.len() * 99 / 100]
    );
    c.bench_function("queue_pingpong_rtt", |b| {
        b.iter(|| {
            ping.put(1).unwrap();
            pong.get().unwrap()
        })
    });
    let _ = peer.kill();
    let _ = peer.join();
}

criterion_group!(benches, small_items, large_items, ping_pong);
criterion_main!(benches);
