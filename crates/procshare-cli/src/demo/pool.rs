//! "Computing Pi" on a `Pool` with `retries(1)`: the Leibniz series cut into tasks, summed by
//! `Pool::map`; midway one worker is SIGKILLed. The task it was running is rerun on its
//! replacement, every other task runs once, and pi comes out bit for bit the same as a sum in
//! one process (the parts are added in input order, whoever computed them).

use procshare::{Array, Pool};
use std::time::{Duration, Instant};

const TASKS: usize = 16;
const TERMS: u64 = if cfg!(debug_assertions) { 16_000_000 } else { 320_000_000 };

/// Sums terms `start..end` of `4 * (1 - 1/3 + 1/5 - ...)`; counts its runs and notes its pid.
fn part((i, start, end, runs, pids): (usize, u64, u64, Array<u32>, Array<u32>)) -> f64 {
    runs.lock()[i] += 1;
    pids.set(i, std::process::id());
    let mut sum = 0.0;
    for k in start..end {
        let term = 1.0 / (2 * k + 1) as f64;
        sum += if k % 2 == 0 { term } else { -term };
    }
    4.0 * sum
}

fn slices() -> impl Iterator<Item = (usize, u64, u64)> {
    (0..TASKS).map(|i| (i, TERMS * i as u64 / TASKS as u64, TERMS * (i as u64 + 1) / TASKS as u64))
}

pub fn run() -> procshare::Result<()> {
    println!("Computing Pi on a Pool of 2 with retries(1): {TERMS} terms in {TASKS} tasks; one worker is SIGKILLed midway");
    let pool = Pool::builder().processes(2).retries(1).build()?;
    let runs = Array::<u32>::new(TASKS)?;
    let pids = Array::<u32>::new(TASKS)?;
    let t0 = Instant::now();
    let killer = {
        let (runs, pids) = (runs.clone(), pids.clone());
        std::thread::spawn(move || -> Option<(u32, usize)> {
            // Midway: once half the tasks have started, kill the worker of the newest one.
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                let started: Vec<usize> = (0..TASKS).filter(|&i| runs.get(i) > 0).collect();
                if started.len() >= TASKS / 2 {
                    let victim = *started.last()?;
                    let pid = pids.get(victim);
                    let p = rustix::process::Pid::from_raw(pid as i32)?;
                    rustix::process::kill_process(p, rustix::process::Signal::KILL).ok()?;
                    return Some((pid, victim));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            None
        })
    };
    let args: Vec<_> = slices().map(|(i, s, e)| (i, s, e, runs.clone(), pids.clone())).collect();
    let parts = pool.map_chunked(part, args, 1)?;
    let took = t0.elapsed();
    let killed = killer.join().ok().flatten();
    let pi: f64 = parts.iter().sum();
    let serial: f64 = slices()
        .map(|(i, s, e)| part((i, s, e, Array::new(TASKS).unwrap(), Array::new(TASKS).unwrap())))
        .sum();
    if let Some((pid, task)) = killed {
        println!("  SIGKILLed worker pid {pid} while it ran task {task}");
    }
    for i in 0..TASKS {
        let n = runs.get(i);
        if n != 1 {
            println!(
                "  task {i:>2} ran {n} times (rerun after its worker died; last on pid {})",
                pids.get(i)
            );
        }
    }
    let once = (0..TASKS).filter(|&i| runs.get(i) == 1).count();
    println!(
        "  {once} of {TASKS} tasks ran exactly once; the pool now has workers {:?}",
        pool.worker_pids()
    );
    println!(
        "  pi = {pi:.15} in {:.3} s; a single process's sum: {serial:.15} ({})",
        took.as_secs_f64(),
        if pi.to_bits() == serial.to_bits() { "identical, bit for bit" } else { "DIFFERENT" }
    );
    if pi.to_bits() != serial.to_bits() {
        return Err(procshare::Error::InvalidArgument(
            "the pool's pi differs from the serial sum".into(),
        ));
    }
    Ok(())
}
