//! A progress bar on a pool job: `Pool::imap` knows its exact length, so indicatif's
//! `ProgressIterator` draws a bar with a count and an ETA, with no counting of our own.
//!
//! `cargo run --release --example pool_progress`

use indicatif::ProgressIterator;
use procshare::Pool;

/// A task worth watching: about 2 ms of work.
fn collatz_steps(n: u64) -> u64 {
    let mut best = 0;
    for start in n * 200..(n + 1) * 200 {
        let (mut x, mut steps) = (start.max(1), 0u64);
        while x != 1 {
            x = if x % 2 == 0 { x / 2 } else { 3 * x + 1 };
            steps += 1;
        }
        best = best.max(steps);
    }
    best
}

fn main() -> procshare::Result<()> {
    procshare::init();
    let pool = Pool::builder().retries(1).build()?;
    let mut longest = 0;
    for steps in pool.imap(collatz_steps, 0..2_000u64).progress() {
        longest = longest.max(steps?);
    }
    println!("longest Collatz run below {}: {longest} steps", 2_000 * 200);
    Ok(())
}
