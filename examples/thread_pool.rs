//! A pool of worker threads fed by a `procshare::thread_queue::Queue`, as in the `queue`
//! module docs' example: the main thread puts jobs, `join` waits until every job is done,
//! then `shutdown` sends the workers home.
//!
//! Run: `cargo run --example thread_pool`

use std::sync::Arc;
use std::thread;

use procshare::thread_queue::{Queue, SimpleQueue};
use procshare::Error;

/// A job: is `n` prime?
fn is_prime(n: u64) -> bool {
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

fn main() -> procshare::Result<()> {
    procshare::init();

    const WORKERS: usize = 4;
    // Bounded: the producer waits when the workers fall behind, instead of piling up jobs.
    let jobs: Arc<Queue<u64>> = Arc::new(Queue::bounded(64));
    let results: Arc<SimpleQueue<(u64, bool)>> = Arc::new(SimpleQueue::new());

    let workers: Vec<_> = (0..WORKERS)
        .map(|id| {
            let (jobs, results) = (Arc::clone(&jobs), Arc::clone(&results));
            thread::spawn(move || {
                let mut done = 0usize;
                loop {
                    match jobs.get() {
                        Ok(n) => {
                            results.put((n, is_prime(n)));
                            done += 1;
                            // Every get is matched by a task_done, or join never returns.
                            jobs.task_done().expect("one task_done per get");
                        }
                        // After shutdown, get drains what is left, then says ShutDown.
                        Err(Error::ShutDown) => break,
                        Err(e) => panic!("worker {id}: {e}"),
                    }
                }
                done
            })
        })
        .collect();

    let numbers = 1_000_000u64..1_000_200;
    for n in numbers.clone() {
        jobs.put(n)?;
    }
    jobs.join(); // every job put so far has been processed
    jobs.shutdown(false);

    let per_worker: Vec<usize> =
        workers.into_iter().map(|w| w.join().expect("worker panicked")).collect();

    let mut primes: Vec<u64> = std::iter::from_fn(|| results.get_nowait().ok())
        .filter(|&(_, prime)| prime)
        .map(|(n, _)| n)
        .collect();
    primes.sort_unstable();
    println!(
        "{} jobs done by {WORKERS} workers ({per_worker:?} each); {} primes in {numbers:?}: {primes:?}",
        per_worker.iter().sum::<usize>(),
        primes.len(),
    );
    assert_eq!(per_worker.iter().sum::<usize>(), numbers.count());
    Ok(())
}
