//! Locks and shared arrays, against their baselines in the same run.
//!
//! * uncontended lock + unlock: `procshare::Lock` vs `parking_lot::Mutex` (and `std`);
//! * two contenders for 1 s: `Lock` between two processes vs `parking_lot::Mutex` between two
//!   threads vs Python's `multiprocessing.Lock` between two processes (if `python3` is there);
//! * `Array<f64>` of 10^7 elements summed through its lock vs a `Vec<f64>`.
//!
//! Criterion measures the first and last; a summary at the end prints ratios (medians of
//! interleaved runs). `cargo bench --bench sync -- --warm-up-time 1 --measurement-time 3`.

use criterion::{black_box, Criterion};
use procshare::{Array, Event, Lock, Process, RawArray};
use std::time::{Duration, Instant};

const ARRAY_LEN: usize = 10_000_000;

fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("uncontended lock+unlock");
    let lock = Lock::new().unwrap();
    g.bench_function("procshare::Lock", |b| b.iter(|| drop(black_box(lock.lock().unwrap()))));
    let pl = parking_lot::Mutex::new(());
    g.bench_function("parking_lot::Mutex", |b| b.iter(|| drop(black_box(pl.lock()))));
    let std = std::sync::Mutex::new(());
    g.bench_function("std::sync::Mutex", |b| b.iter(|| drop(black_box(std.lock().unwrap()))));
    g.finish();
}

fn array_sum(c: &mut Criterion) {
    let mut g = c.benchmark_group("sum of 10^7 f64");
    g.sample_size(20);
    let data: Vec<f64> = (0..ARRAY_LEN).map(|i| i as f64).collect();
    let arr = Array::from_slice(&data).unwrap();
    g.bench_function("Array<f64> through its lock", |b| {
        b.iter(|| black_box(arr.lock().iter().sum::<f64>()))
    });
    g.bench_function("Vec<f64>", |b| b.iter(|| black_box(black_box(&data).iter().sum::<f64>())));
    g.finish();
}

/// ns per call of `f`, over `n` calls.
fn ns_per(n: u64, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Counters in shared memory: `[acquisitions, handoffs, last holder]`, updated under the lock.
fn contend(args: (Lock, RawArray<u64>, Event, u64, u64)) {
    let (lock, counts, start, me, millis) = args;
    start.wait(None).unwrap();
    let end = Instant::now() + Duration::from_millis(millis);
    let mut n = 0u64;
    loop {
        {
            let _g = lock.lock().unwrap();
            counts.set(0, counts.get(0) + 1);
            if counts.get(2) != me {
                counts.set(2, me);
                counts.set(1, counts.get(1) + 1);
            }
        }
        n += 1;
        if n % 256 == 0 && Instant::now() >= end {
            break;
        }
    }
}

/// (acquisitions/s, handoffs/s) of two processes contending on one `Lock` for `millis`.
fn procshare_two_processes(millis: u64) -> (f64, f64) {
    let lock = Lock::new().unwrap();
    let counts = RawArray::<u64>::new(3).unwrap();
    let start = Event::new().unwrap();
    let mut kids: Vec<Process> = (1..=2)
        .map(|me| {
            Process::spawn((lock.clone(), counts.clone(), start.clone(), me, millis), contend)
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100)); // both started and waiting
    start.set();
    for k in &mut kids {
        assert_eq!(k.join().unwrap(), 0);
    }
    let secs = millis as f64 / 1000.0;
    (counts.get(0) as f64 / secs, counts.get(1) as f64 / secs)
}

/// The same loop as `contend`, between two threads of this process, around any lock.
fn two_threads<G>(millis: u64, lock: impl Fn() -> G + Sync) -> (f64, f64) {
    let counts = RawArray::<u64>::new(3).unwrap();
    let go = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        for me in 1..=2u64 {
            let (counts, go, lock) = (&counts, &go, &lock);
            s.spawn(move || {
                go.wait();
                let end = Instant::now() + Duration::from_millis(millis);
                let mut n = 0u64;
                loop {
                    {
                        let _g = lock();
                        counts.set(0, counts.get(0) + 1);
                        if counts.get(2) != me {
                            counts.set(2, me);
                            counts.set(1, counts.get(1) + 1);
                        }
                    }
                    n += 1;
                    if n % 256 == 0 && Instant::now() >= end {
                        break;
                    }
                }
            });
        }
    });
    let secs = millis as f64 / 1000.0;
    (counts.get(0) as f64 / secs, counts.get(1) as f64 / secs)
}

const PYTHON: &str = r#"
import multiprocessing as mp, sys, time
def worker(lock, arr, me, dur, start):
    start.wait()
    end = time.perf_counter() + dur
    n = 0
    while True:
        with lock:
            arr[0] += 1
            if arr[2] != me:
                arr[2] = me
                arr[1] += 1
        n += 1
        if n % 256 == 0 and time.perf_counter() >= end:
            break
if __name__ == "__main__":
    dur = float(sys.argv[1])
    lock, arr, start = mp.Lock(), mp.RawArray("q", 3), mp.Event()
    ps = [mp.Process(target=worker, args=(lock, arr, i + 1, dur, start)) for i in range(2)]
    for p in ps: p.start()
    time.sleep(0.3)
    start.set()
    for p in ps: p.join()
    print(arr[0] / dur, arr[1] / dur)
"#;

/// Python's `multiprocessing.Lock` between two processes, or `None` without python3.
fn python_two_processes(millis: u64) -> Option<(f64, f64)> {
    let out = std::process::Command::new("python3")
        .args(["-c", PYTHON, &(millis as f64 / 1000.0).to_string()])
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?;
    let mut it = s.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some((it.next()??, it.next()??))
}

fn summary() {
    println!("\n== summary (medians of interleaved runs; ratios in this run) ==");
    let lock = Lock::new().unwrap();
    let pl = parking_lot::Mutex::new(());
    let n = 5_000_000;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        ours.push(ns_per(n, || drop(black_box(lock.lock().unwrap()))));
        theirs.push(ns_per(n, || drop(black_box(pl.lock()))));
    }
    let (ours, theirs) = (median(ours), median(theirs));
    println!(
        "uncontended lock+unlock: procshare::Lock {ours:.1} ns, parking_lot::Mutex {theirs:.1} ns \
         -> {:.2}x parking_lot (target <= 2x)",
        ours / theirs
    );

    let millis = 1000;
    let (mut ps, mut pt, mut pl2, mut py) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        ps.push(procshare_two_processes(millis));
        pl2.push(two_threads(millis, || pl.lock()));
        pt.push(two_threads(millis, || lock.lock().unwrap()));
    }
    if let Some(r) = python_two_processes(millis) {
        py.push(r);
    }
    let m = |v: &Vec<(f64, f64)>| {
        (median(v.iter().map(|x| x.0).collect()), median(v.iter().map(|x| x.1).collect()))
    };
    let (ps_acq, ps_hand) = m(&ps);
    let (pt_acq, pt_hand) = m(&pt);
    let (pl_acq, pl_hand) = m(&pl2);
    println!(
        "two contenders, 1 s, same loop (medians of 5): acquisitions/s, handoffs/s (holder changes)"
    );
    println!(
        "  procshare::Lock, 2 processes: {:.2}M acq/s, {:.0}k handoffs/s",
        ps_acq / 1e6,
        ps_hand / 1e3
    );
    println!(
        "  procshare::Lock, 2 threads:   {:.2}M acq/s, {:.0}k handoffs/s",
        pt_acq / 1e6,
        pt_hand / 1e3
    );
    println!(
        "  parking_lot::Mutex, 2 threads: {:.2}M acq/s, {:.0}k handoffs/s",
        pl_acq / 1e6,
        pl_hand / 1e3
    );
    println!(
        "  -> procshare (processes) vs parking_lot (threads): {:.2}x acquisitions, {:.2}x \
         handoffs (target >= 0.5x)",
        ps_acq / pl_acq,
        ps_hand / pl_hand.max(1.0)
    );
    if py.is_empty() {
        println!("  python3 not found: no multiprocessing.Lock baseline");
    } else {
        let (py_acq, py_hand) = m(&py);
        println!(
            "  Python mp.Lock, 2 processes:  {:.3}M acq/s, {:.0}k handoffs/s \
             -> procshare {:.1}x acquisitions, {:.1}x handoffs (target >= 20x)",
            py_acq / 1e6,
            py_hand / 1e3,
            ps_acq / py_acq,
            ps_hand / py_hand.max(1.0)
        );
    }

    let data: Vec<f64> = (0..ARRAY_LEN).map(|i| i as f64).collect();
    let arr = Array::from_slice(&data).unwrap();
    let (mut a, mut v) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        a.push(ns_per(1, || {
            black_box(arr.lock().iter().sum::<f64>());
        }));
        v.push(ns_per(1, || {
            black_box(black_box(&data).iter().sum::<f64>());
        }));
    }
    let (a, v) = (median(a), median(v));
    println!(
        "sum of 10^7 f64: Array through its lock {:.1} ms, Vec {:.1} ms -> Array at {:.2}x the \
         Vec's speed (target >= 0.9x)",
        a / 1e6,
        v / 1e6,
        v / a
    );
}

fn main() {
    procshare::init();
    let mut c = Criterion::default().configure_from_args();
    uncontended(&mut c);
    array_sum(&mut c);
    c.final_summary();
    // `cargo bench` passes --bench; `cargo test --benches` does not: keep tests quick.
    // A name filter (a non-flag argument) runs only the matching criterion benchmarks.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filtered = args
        .iter()
        .enumerate()
        .any(|(i, a)| !a.starts_with('-') && (i == 0 || !args[i - 1].ends_with("-time")));
    if args.iter().any(|a| a == "--bench") && !filtered {
        summary();
    }
}
