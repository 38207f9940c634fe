//! "Computing Pi" (Programmer's Python: Async, ch. "Sharing Data"): N worker processes each sum
//! part of the Leibniz series for pi and add it to a shared `Value<f64>` under its lock, as
//! Python's `with PI.get_lock(): PI.value += part`. The speed-up of two workers over one shows
//! that the processes really run in parallel.
//!
//! Run: `cargo run --release --example computing_pi [WORKERS]` (default: 1, then 2).

use procshare::{Process, Value};
use std::time::Instant;

const TERMS: u64 = 400_000_000;

fn partial_pi(start: u64, end: u64) -> f64 {
    let mut sum = 0.0;
    for k in start..end {
        let term = 1.0 / (2 * k + 1) as f64;
        sum += if k % 2 == 0 { term } else { -term };
    }
    4.0 * sum
}

fn main() -> procshare::Result<()> {
    procshare::init();
    let counts: Vec<u64> = match std::env::args().nth(1) {
        Some(n) => vec![n.parse().map_err(|_| procshare::Error::InvalidArgument(n))?],
        None => vec![1, 2],
    };
    let mut base = None;
    for workers in counts.into_iter().filter(|w| *w > 0) {
        let pi = Value::new(0.0f64)?;
        let t0 = Instant::now();
        let mut procs = Vec::new();
        for w in 0..workers {
            let (start, end) = (TERMS * w / workers, TERMS * (w + 1) / workers);
            procs.push(Process::spawn((start, end, pi.clone()), |(start, end, pi)| {
                let part = partial_pi(start, end);
                *pi.lock() += part;
            })?);
        }
        for p in &mut procs {
            p.join()?;
        }
        let t = t0.elapsed().as_secs_f64();
        let base = *base.get_or_insert(t);
        let pi = pi.get();
        println!(
            "{workers} worker(s): pi = {pi:.15}  error {:.1e}  {t:.3} s  speed-up {:.2}x",
            (pi - std::f64::consts::PI).abs(),
            base / t
        );
    }
    Ok(())
}
