//! A work queue on Redis, shared by Rust and Python workers.
//!
//! ```text
//! cargo run -p procshare-redis --example redis_queue [URL] [--python]
//! ```
//! The producer puts jobs 0..N on the pickle-format queue "jobs" and collects `(n, n²)` from
//! "results". Without `--python` it starts two Rust worker processes; with it, run
//! `python3 examples/redis_worker.py URL` (once or more) instead and they do the work.

use procshare::{Format, Process};
use procshare_redis::Queue;
use std::time::Duration;

const N: i64 = 1000;
const WORKERS: usize = 2;

fn worker(url: String) {
    let jobs: Queue<Option<i64>> = Queue::open_with_format(&url, "jobs", Format::Pickle).unwrap();
    let results: Queue<(i64, i64)> =
        Queue::open_with_format(&url, "results", Format::Pickle).unwrap();
    while let Some(n) = jobs.get().unwrap() {
        results.put((n, n * n)).unwrap();
    }
}

fn main() -> procshare::Result<()> {
    procshare::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let python = args.iter().any(|a| a == "--python");
    let url = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "redis://127.0.0.1:6379/0".into());
    let jobs: Queue<Option<i64>> = Queue::open_with_format(&url, "jobs", Format::Pickle)?;
    let results: Queue<(i64, i64)> = Queue::open_with_format(&url, "results", Format::Pickle)?;
    let mut workers = Vec::new();
    if python {
        println!("waiting for Python workers: python3 examples/redis_worker.py {url}");
    } else {
        for _ in 0..WORKERS {
            workers.push(Process::spawn(url.clone(), worker)?);
        }
    }
    jobs.put_many((0..N).map(Some))?;
    let mut sum = 0;
    for _ in 0..N {
        let (n, sq) = results.get_timeout(Duration::from_secs(600))?;
        assert_eq!(sq, n * n);
        sum += sq;
    }
    // One stop sign per worker (Python ones too: run as many as you started, or more).
    jobs.put_many((0..WORKERS).map(|_| None))?;
    for w in &mut workers {
        w.join()?;
    }
    println!("{N} jobs done, sum of squares {sum}");
    Ok(())
}
