//! The Python worker example (`examples/redis_worker.py`, redis-py only) against a Rust producer
//! on a pickle-format queue: every job answered once, by Python.

mod common;

use common::server;
use procshare::Format;
use procshare_redis::Queue;
use std::process::{Command, Stdio};
use std::time::Duration;

fn python_with_redis() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import redis"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "\n!!!!!!!! SKIPPED: python3 with redis-py is missing; the Python interop test did not \
             run. Install it with `pip install redis` !!!!!!!!\n"
        );
    }
    ok
}

#[test]
fn python_workers_consume_rust_jobs_and_answer() {
    let Some(s) = server() else { return };
    if !python_with_redis() {
        return;
    }
    const N: i64 = 300;
    let jobs: Queue<Option<i64>> =
        Queue::open_with_format(&s.url(), "jobs", Format::Pickle).unwrap();
    let results: Queue<(i64, i64)> =
        Queue::open_with_format(&s.url(), "results", Format::Pickle).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/redis_worker.py");
    let mut workers: Vec<_> = (0..2)
        .map(|_| {
            Command::new("python3").arg(script).arg(s.url()).stdout(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    jobs.put_many((0..N).map(Some)).unwrap();
    let mut got: Vec<(i64, i64)> =
        (0..N).map(|_| results.get_timeout(Duration::from_secs(60)).unwrap()).collect();
    jobs.put_many([None, None]).unwrap();
    for w in &mut workers {
        assert!(w.wait().unwrap().success(), "the Python worker failed");
    }
    got.sort_unstable();
    assert_eq!(got, (0..N).map(|n| (n, n * n)).collect::<Vec<_>>());
    assert!(matches!(results.get_nowait(), Err(procshare::Error::Empty)), "nothing twice");
    // The workers left nothing behind: no lease, no processing list, no consumer entry.
    let keys: Vec<String> =
        redis::cmd("KEYS").arg("procshare:{jobs}:*").query(&mut s.raw()).unwrap();
    assert!(keys.iter().all(|k| !k.contains(":proc:py") && !k.contains(":lease:py")), "{keys:?}");
    jobs.destroy().unwrap();
    results.destroy().unwrap();
}
