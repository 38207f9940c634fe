//! Thread queues vs crossbeam-channel, in the same run: items/s through a queue between
//! P producer and C consumer threads (u64 items, N per batch, threads started per batch).
//!
//! Run: `cargo bench -p procshare --bench thread_queue -- --warm-up-time 1 --measurement-time 3`
//!
//! On a shared, noisy machine criterion's one-after-the-other groups drift; for the ratios,
//! `PROCSHARE_RATIOS=1 cargo bench -p procshare --bench thread_queue` instead runs each pair
//! interleaved (A, B, B, A, ...) for a number of rounds, prints the median of the per-round
//! ratios, and measures Python's `queue.Queue` between two threads (if `python3` is on the
//! PATH) before and after.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
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

/// Python's `queue.Queue` between two threads: items/s, median of 5 runs of 200,000 items.
const PYTHON_QUEUE: &str = r#"
import queue, threading, time
N = 200_000
def run(maxsize):
    q = queue.Queue(maxsize)
    def prod():
        for i in range(N): q.put(i)
    def cons():
        for _ in range(N): q.get()
    t0 = time.perf_counter()
    a = threading.Thread(target=prod); b = threading.Thread(target=cons)
    a.start(); b.start(); a.join(); b.join()
    return N / (time.perf_counter() - t0)
print(sorted(run(1024) for _ in range(5))[2])
"#;

fn python_queue_rate() -> Option<f64> {
    let out = std::process::Command::new("python3").args(["-c", PYTHON_QUEUE]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

type Run = Box<dyn Fn() -> Duration>;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Interleaved rounds of `ours` and `theirs`; prints and returns (median ratio of times,
/// median items/s of ours).
fn ratio(name: &str, ours: Run, theirs: Run, rounds: usize) -> (f64, f64) {
    let (mut ratios, mut rates) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let (a, b) = if r % 2 == 0 {
            let a = ours();
            (a, theirs())
        } else {
            let b = theirs();
            (ours(), b)
        };
        ratios.push(a.as_secs_f64() / b.as_secs_f64());
        rates.push(ITEMS as f64 / a.as_secs_f64());
    }
    let (r, rate) = (median(&mut ratios), median(&mut rates));
    println!("{name:<48} time ratio {r:5.2}x   ours {:6.1} M items/s", rate / 1e6);
    (r, rate)
}

fn ratios() {
    const ROUNDS: usize = 31;
    let py_before = python_queue_rate();
    let mut queue_1x1 = 0.0;
    for (p, c) in [(1u64, 1u64), (4, 4)] {
        let (_, rate) = ratio(
            &format!("Queue::bounded({CAPACITY}) / crossbeam bounded, {p}x{c}"),
            Box::new(move || {
                run(
                    Arc::new(Queue::bounded(CAPACITY)),
                    p,
                    c,
                    |q, x| q.put(x).unwrap(),
                    |q| q.get().unwrap(),
                )
            }),
            Box::new(move || {
                let (tx, rx) = crossbeam_channel::bounded::<u64>(CAPACITY);
                run(Arc::new((tx, rx)), p, c, |q, x| q.0.send(x).unwrap(), |q| q.1.recv().unwrap())
            }),
            ROUNDS,
        );
        if p == 1 {
            queue_1x1 = rate;
        }
        ratio(
            &format!("SimpleQueue / crossbeam unbounded, {p}x{c}"),
            Box::new(move || {
                run(Arc::new(SimpleQueue::new()), p, c, |q, x| q.put(x), |q| q.get().unwrap())
            }),
            Box::new(move || {
                let (tx, rx) = crossbeam_channel::unbounded::<u64>();
                run(Arc::new((tx, rx)), p, c, |q, x| q.0.send(x).unwrap(), |q| q.1.recv().unwrap())
            }),
            ROUNDS,
        );
    }
    let py_after = python_queue_rate();
    match (py_before, py_after) {
        (Some(a), Some(b)) => {
            let py = (a + b) / 2.0;
            println!(
                "Python queue.Queue(1024) 1x1 threads: {:.0}k items/s (before {:.0}k, after {:.0}k); \
                 Queue::bounded({CAPACITY}) 1x1 is {:.0}x that",
                py / 1e3,
                a / 1e3,
                b / 1e3,
                queue_1x1 / py
            );
        }
        _ => println!("python3 not found: no Python baseline"),
    }
}

criterion_group!(benches, bench_pairs);

fn main() {
    if std::env::var_os("PROCSHARE_RATIOS").is_some() {
        ratios();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
