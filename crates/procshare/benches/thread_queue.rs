//! Thread queues vs crossbeam-channel, in the same run: items/s through a queue between
//! P producer and C consumer threads (u64 items, N per batch, threads started per batch).
//!
//! Run: `cargo bench -p procshare --bench thread_queue -- --warm-up-time 1 --measurement-time 3`

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use procshare::thread_queue::{LifoQueue, PriorityQueue, Queue, SimpleQueue};

const ITEMS: u64 = 100_000;
const CAPACITY: usize = 1024;

/// Move `ITEMS` items from `producers` threads to `consumers` threads; returns the time from
/// the start of the threads to the last item received.
fn run<Q, P, G>(q: Arc<Q>, producers: u64, consumers: u64, put: P, get: G) -> Duration
where
    Q: Send + Sync + 'static,
    P: Fn(&Q, u64) + Send + Sync + Copy + 'static,
    G: Fn(&Q) -> u64 + Send + Sync + Copy + 'static,
{
    let per_producer = ITEMS / producers;
    let per_consumer = ITEMS / consumers;
    let start = Instant::now();
    let mut handles = Vec::new();
    for p in 0..producers {
        let q = Arc::clone(&q);
        handles.push(thread::spawn(move || {
            for i in 0..per_producer {
                put(&q, p * per_producer + i);
            }
            0
        }));
    }
    for _ in 0..consumers {
        let q = Arc::clone(&q);
        handles.push(thread::spawn(move || {
            let mut sum = 0u64;
            for _ in 0..per_consumer {
                sum = sum.wrapping_add(get(&q));
            }
            sum
        }));
    }
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    std::hint::black_box(total);
    start.elapsed()
}

fn bench_pairs(c: &mut Criterion) {
    for (p, cons) in [(1u64, 1u64), (4, 4)] {
        let mut g = c.benchmark_group(format!("bounded_{p}x{cons}"));
        g.throughput(Throughput::Elements(ITEMS));
        g.sample_size(10);
        g.bench_function(BenchmarkId::new("crossbeam_bounded", CAPACITY), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let (tx, rx) = crossbeam_channel::bounded::<u64>(CAPACITY);
                        run(
                            Arc::new((tx, rx)),
                            p,
                            cons,
                            |q, x| q.0.send(x).unwrap(),
                            |q| q.1.recv().unwrap(),
                        )
                    })
                    .sum()
            })
        });
        g.bench_function(BenchmarkId::new("Queue", CAPACITY), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        run(
                            Arc::new(Queue::bounded(CAPACITY)),
                            p,
                            cons,
                            |q, x| q.put(x).unwrap(),
                            |q| q.get().unwrap(),
                        )
                    })
                    .sum()
            })
        });
        g.bench_function(BenchmarkId::new("LifoQueue", CAPACITY), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        run(
                            Arc::new(LifoQueue::bounded(CAPACITY)),
                            p,
                            cons,
                            |q, x| q.put(x).unwrap(),
                            |q| q.get().unwrap(),
                        )
                    })
                    .sum()
            })
        });
        g.bench_function(BenchmarkId::new("PriorityQueue", CAPACITY), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        run(
                            Arc::new(PriorityQueue::bounded(CAPACITY)),
                            p,
                            cons,
                            |q, x| q.put(x).unwrap(),
                            |q| q.get().unwrap(),
                        )
                    })
                    .sum()
            })
        });
        g.finish();

        let mut g = c.benchmark_group(format!("unbounded_{p}x{cons}"));
        g.throughput(Throughput::Elements(ITEMS));
        g.sample_size(10);
        g.bench_function("crossbeam_unbounded", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let (tx, rx) = crossbeam_channel::unbounded::<u64>();
                        run(
                            Arc::new((tx, rx)),
                            p,
                            cons,
                            |q, x| q.0.send(x).unwrap(),
                            |q| q.1.recv().unwrap(),
                        )
                    })
                    .sum()
            })
        });
        g.bench_function("SimpleQueue", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        run(
                            Arc::new(SimpleQueue::new()),
                            p,
                            cons,
                            |q, x| q.put(x),
                            |q| q.get().unwrap(),
                        )
                    })
                    .sum()
            })
        });
        g.bench_function("Queue_unbounded", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        run(
                            Arc::new(Queue::new()),
                            p,
                            cons,
                            |q, x| q.put(x).unwrap(),
                            |q| q.get().unwrap(),
                        )
                    })
                    .sum()
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench_pairs);
criterion_main!(benches);
