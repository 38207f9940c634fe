//! The pool lane of `procshare torture`: a `Pool` of 3 workers with `retries(2)` runs a stream
//! of tasks while a chaos thread SIGKILLs a random worker, or SIGSTOPs it for 10..200 ms, every
//! ~`every`. Invariant: every task id ends exactly once — `Ok` with its right value, run at most
//! `retries + 1` times, or `WorkerDied` after `retries + 1` attempts — and no outcome waits longer
//! than the hang bound.

use procshare::{Pool, RawArray, TaskError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const RETRIES: u32 = 2;
const WORKERS: usize = 3;
/// Task ids are counted modulo this in the shared run counts.
const CAP: usize = 1 << 20;
const BATCH: u64 = 256;

static RUNS: OnceLock<RawArray<u32>> = OnceLock::new();

fn init(runs: RawArray<u32>) {
    let _ = RUNS.set(runs);
}

/// A task: counts its run, works 0..2 ms (a function of its id), returns `3 id + 1`.
fn task(id: u64) -> u64 {
    if let Some(runs) = RUNS.get() {
        let i = id as usize % CAP;
        runs.set(i, runs.get(i) + 1);
    }
    let spin = Duration::from_micros((id.wrapping_mul(2654435761) >> 7) % 2000);
    let t = Instant::now();
    while t.elapsed() < spin {
        std::hint::spin_loop();
    }
    3 * id + 1
}

/// What the lane did, for the summary.
#[derive(Default, Debug)]
pub struct Stats {
    pub tasks: u64,
    pub ok: u64,
    pub died: u64,
    pub reruns: u64,
    pub kills: u64,
    pub stops: u64,
    pub longest_wait: Duration,
}

impl Stats {
    pub fn line(&self) -> String {
        format!(
            "pool lane: {} tasks, {} ok, {} WorkerDied after {} attempts, {} reruns; workers SIGKILLed {}, SIGSTOPped {}; longest wait for an outcome {:.0} ms",
            self.tasks,
            self.ok,
            self.died,
            RETRIES + 1,
            self.reruns,
            self.kills,
            self.stops,
            self.longest_wait.as_secs_f64() * 1000.0
        )
    }
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// Runs the lane for `duration`; `Err` names the first violation.
pub fn run(
    duration: Duration,
    seed: u64,
    bound: Duration,
    every: Duration,
) -> Result<Stats, String> {
    let runs = RawArray::<u32>::new(CAP).map_err(|e| e.to_string())?;
    let pool = Arc::new(
        Pool::builder()
            .processes(WORKERS)
            .retries(RETRIES)
            .initializer(init, runs.clone())
            .build()
            .map_err(|e| e.to_string())?,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (kills, stops) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let chaos = {
        let (pool, stop, kills, stops) = (pool.clone(), stop.clone(), kills.clone(), stops.clone());
        std::thread::spawn(move || {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9001);
            while !stop.load(Ordering::Relaxed) {
                // In slices: a run with rare kills (a large --kill-every-ms) must still end on time.
                let until = Instant::now() + every.mul_f64(rng.gen_range(0.2..1.8));
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(
                        Duration::from_millis(20)
                            .min(until.saturating_duration_since(Instant::now())),
                    );
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let pids = pool.worker_pids();
                if pids.is_empty() {
                    continue;
                }
                let pid = pids[rng.gen_range(0..pids.len())];
                if rng.gen_bool(0.7) {
                    signal(pid, rustix::process::Signal::KILL);
                    kills.fetch_add(1, Ordering::Relaxed);
                } else {
                    signal(pid, rustix::process::Signal::STOP);
                    stops.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(rng.gen_range(10..200)));
                    signal(pid, rustix::process::Signal::CONT);
                }
            }
        })
    };
    let mut st = Stats::default();
    let start = Instant::now();
    let mut next = 0u64;
    let result = (|| {
        while start.elapsed() < duration {
            let ids: Vec<u64> = (next..next + BATCH).collect();
            next += BATCH;
            let mut seen = vec![false; ids.len()];
            let mut last = Instant::now();
            for (i, outcome) in pool.imap_unordered(task, ids.clone()) {
                let waited = last.elapsed();
                last = Instant::now();
                st.longest_wait = st.longest_wait.max(waited);
                if waited > bound {
                    return Err(format!("an outcome took {waited:?}, past the hang bound"));
                }
                let id = *ids.get(i).ok_or_else(|| format!("outcome for index {i} of {BATCH}"))?;
                if std::mem::replace(&mut seen[i], true) {
                    return Err(format!("task {id} ended twice"));
                }
                let ran = runs.get(id as usize % CAP);
                match outcome {
                    Ok(v) if v == 3 * id + 1 && (1..=RETRIES + 1).contains(&ran) => {
                        st.ok += 1;
                        st.reruns += u64::from(ran - 1);
                    }
                    Ok(v) => return Err(format!("task {id} gave {v} after {ran} runs")),
                    Err(TaskError::WorkerDied { attempts, .. })
                        if attempts == RETRIES + 1 && ran <= attempts =>
                    {
                        st.died += 1;
                    }
                    Err(e) => return Err(format!("task {id} ended {e} after {ran} runs")),
                }
                st.tasks += 1;
            }
            if let Some(i) = seen.iter().position(|s| !s) {
                return Err(format!("task {} never ended", ids[i]));
            }
        }
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    let _ = chaos.join();
    st.kills = kills.load(Ordering::Relaxed);
    st.stops = stops.load(Ordering::Relaxed);
    // Workers stopped at the end must not keep the pool's drop waiting.
    for pid in pool.worker_pids() {
        signal(pid, rustix::process::Signal::CONT);
    }
    result.map(|()| st)
}
