//! "Computing Pi": worker processes each sum a slice of the Leibniz series
//! `pi = 4 * (1 - 1/3 + 1/5 - 1/7 + ...)` and add their part to a shared `Value<f64>` under its
//! lock (Python's `with PI.get_lock(): PI.value += part`). Run with one worker, then two, and
//! compare the times.

use procshare::{Process, Value};
use std::time::{Duration, Instant};

/// Terms summed: about half a second on one core in a release build (fewer in debug builds).
const TERMS: u64 = if cfg!(debug_assertions) { 20_000_000 } else { 400_000_000 };

/// Sums terms `start..end` of the series (term k is `(-1)^k / (2k + 1)`), times 4.
fn partial_pi(start: u64, end: u64) -> f64 {
    let mut sum = 0.0;
    for k in start..end {
        let term = 1.0 / (2 * k + 1) as f64;
        sum += if k % 2 == 0 { term } else { -term };
    }
    4.0 * sum
}

/// One worker: its slice of the series, added to the shared total.
fn worker((start, end, pi): (u64, u64, Value<f64>)) {
    let part = partial_pi(start, end);
    *pi.lock() += part;
}

/// Runs `workers` processes over `terms` terms; returns pi and the wall time.
fn compute(workers: u64, terms: u64) -> procshare::Result<(f64, Duration)> {
    let pi = Value::new(0.0f64)?;
    let t0 = Instant::now();
    let mut procs = Vec::new();
    for w in 0..workers {
        let (start, end) = (terms * w / workers, terms * (w + 1) / workers);
        procs.push(Process::spawn((start, end, pi.clone()), worker)?);
    }
    for p in &mut procs {
        let code = p.join()?;
        if code != 0 {
            return Err(procshare::Error::InvalidArgument(format!("a worker exited with {code}")));
        }
    }
    Ok((pi.get(), t0.elapsed()))
}

/// Runs the demo: one worker, then two.
pub fn run() -> procshare::Result<()> {
    println!(
        "Computing Pi: 4 * (1 - 1/3 + 1/5 - ...), {TERMS} terms, workers add into a shared Value"
    );
    println!("{:>7}  {:<18}  {:>9}  {:>8}  {:>8}", "workers", "pi", "error", "time", "speed-up");
    let mut one = None;
    for workers in [1, 2] {
        let (pi, t) = compute(workers, TERMS)?;
        let base = *one.get_or_insert(t);
        println!(
            "{workers:>7}  {pi:<18.15}  {:>9.2e}  {:>6.3} s  {:>7.2}x",
            (pi - std::f64::consts::PI).abs(),
            t.as_secs_f64(),
            base.as_secs_f64() / t.as_secs_f64()
        );
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");
    println!("({cores} cores, load average {load}: the speed-up needs an idle core per worker)");
    Ok(())
}
