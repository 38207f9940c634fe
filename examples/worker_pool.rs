//! A worker pool on a JoinableQueue: the main process puts tasks, four worker processes take
//! them, put results on a second queue and call `task_done`; `join` returns once every task
//! is done, then a `None` per worker sends them home.
//!
//! ```text
//! cargo run --example worker_pool
//! ```

use procshare::{current_process, JoinableQueue, Process, Queue};

const WORKERS: usize = 4;

/// The work: is `n` prime? (deliberately naive, so there is something to share out)
fn is_prime(n: u64) -> bool {
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

/// A task (`None` = go home) and a result: the number, whether it is prime, who found out.
type Tasks = JoinableQueue<Option<u64>>;
type Results = Queue<(u64, bool, String)>;

fn worker((tasks, results): (Tasks, Results)) {
    let me = current_process().name().to_string();
    loop {
        let task = tasks.get().unwrap();
        let Some(n) = task else {
            tasks.task_done().unwrap();
            return;
        };
        results.put((n, is_prime(n), me.clone())).unwrap();
        tasks.task_done().unwrap();
    }
}

fn main() -> procshare::Result<()> {
    procshare::init();
    let tasks: JoinableQueue<Option<u64>> = JoinableQueue::bounded(64)?;
    let results = Queue::new()?;
    let mut workers = (0..WORKERS)
        .map(|_| Process::spawn((tasks.clone(), results.clone()), worker))
        .collect::<procshare::Result<Vec<_>>>()?;

    let numbers: Vec<u64> = (0..2000).map(|i| 1_000_000_007 + 2 * i).collect();
    for &n in &numbers {
        tasks.put(Some(n))?;
    }
    tasks.join()?; // every task has been marked done
    println!("all {} tasks done; {} results queued", numbers.len(), results.qsize());

    let mut per_worker = std::collections::BTreeMap::<String, usize>::new();
    let mut primes = 0;
    for _ in &numbers {
        let (_, prime, who) = results.get()?;
        primes += prime as usize;
        *per_worker.entry(who).or_default() += 1;
    }
    for _ in 0..WORKERS {
        tasks.put(None)?;
    }
    for w in &mut workers {
        w.join()?;
    }
    println!("{primes} primes among {} odd numbers from 1000000007", numbers.len());
    for (who, n) in per_worker {
        println!("  {who}: {n} tasks");
    }
    Ok(())
}
