//! `ShareableList` get/set against CPython's `ShareableList` on the same list (Python opens the
//! list procshare made, by name, in the same run), reported as ratios.
//!
//! `cargo bench -p procshare --bench shm -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, Criterion};
use procshare::{Item, ShareableList, SharedMemory};
use std::process::Command;
use std::time::Duration;

fn items() -> Vec<Item> {
    vec![
        Item::Int(100),
        Item::Float(-273.154),
        Item::Str("howdy".into()),
        Item::Bytes(b"HoWdY".to_vec()),
        Item::Bool(true),
        Item::None,
    ]
}

const PY: &str = r#"
import sys, timeit
from multiprocessing import shared_memory as sm, resource_tracker
sl = sm.ShareableList(name=sys.argv[1])
resource_tracker.unregister(sl.shm._name, 'shared_memory')
n = 200_000
def best(stmt):
    return min(timeit.repeat(stmt, globals={'sl': sl}, number=n, repeat=5)) / n * 1e9
print(best('sl[0]'), best('sl[0] = 7'), best('sl[2]'), best("sl[2] = 'hi'"))
sl.shm.close()
"#;

/// Nanoseconds per op for Python: get int, set int, get str, set str.
fn python(name: &str) -> Option<[f64; 4]> {
    let out = Command::new("python3").arg("-c").arg(PY).arg(name).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let v: Vec<f64> = text.split_whitespace().filter_map(|s| s.parse().ok()).collect();
    v.try_into().ok()
}

fn mean_ns(c: &mut Criterion, id: &str, mut f: impl FnMut()) -> f64 {
    let mut g = c.benchmark_group("shareable_list");
    g.bench_function(id, |b| b.iter(&mut f));
    g.finish();
    // Criterion keeps its estimate on disk; time it once more here for the ratio line.
    let n = 200_000;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        for _ in 0..n {
            f();
        }
        best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
    }
    best
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let sl = ShareableList::new(&items()).expect("create list");
    let rust = [
        mean_ns(&mut c, "get_int", || {
            black_box(sl.get(black_box(0)).ok());
        }),
        mean_ns(&mut c, "set_int", || {
            sl.set(black_box(0), Item::Int(7)).ok();
        }),
        mean_ns(&mut c, "get_str", || {
            black_box(sl.get(black_box(2)).ok());
        }),
        mean_ns(&mut c, "set_str", || {
            sl.set(black_box(2), Item::Str("hi".into())).ok();
        }),
    ];
    let py = python(sl.name());
    let _ = SharedMemory::unlink(sl.shm());
    c.final_summary();
    let names = ["get int", "set int", "get str", "set str"];
    match py {
        Some(py) => {
            println!("\nShareableList, same list, ns/op (best of 5):");
            for i in 0..4 {
                println!(
                    "  {:<8} procshare {:>7.1}  CPython {:>7.1}  ratio {:>6.1}x",
                    names[i],
                    rust[i],
                    py[i],
                    py[i] / rust[i]
                );
            }
        }
        None => println!("python3 not available: no baseline (procshare ns/op: {rust:?})"),
    }
}
