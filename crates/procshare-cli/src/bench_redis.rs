//! `procshare bench --redis`: procshare-redis against CPython baselines on the same server in
//! the same run — a redis-py `LPUSH`/`BRPOP` loop and a `multiprocessing.managers` Queue over
//! TCP — with 64 B items, 1 -> 1 and 4 -> 4 processes. Uses `$PROCSHARE_REDIS_URL`, else starts
//! a private `redis-server`.

use procshare::{Event, Process};
use procshare_redis::Queue;
use serde::{Deserialize, Serialize};
use std::time::Instant;

#[derive(Serialize, Deserialize)]
struct Item(#[serde(with = "serde_bytes")] Vec<u8>);

#[derive(Serialize, Deserialize)]
struct Job {
    url: String,
    name: String,
    count: usize,
    batch: usize,
}

fn produce((job, go): (Job, Event)) {
    let q: Queue<Option<Item>> = Queue::open(&job.url, &job.name).expect("open");
    let _ = go.wait(None);
    let mut left = job.count;
    while left > 0 {
        let n = left.min(job.batch);
        if job.batch == 1 {
            q.put(Some(Item(vec![7; 64]))).expect("put");
        } else {
            q.put_many((0..n).map(|_| Some(Item(vec![7; 64])))).expect("put_many");
        }
        left -= n;
    }
}

fn consume((job, go): (Job, Event)) {
    let q: Queue<Option<Item>> = Queue::open(&job.url, &job.name).expect("open");
    let _ = go.wait(None);
    loop {
        let got = if job.batch == 1 {
            vec![q.get().expect("get")]
        } else {
            q.get_many(job.batch).expect("get_many")
        };
        if got.iter().any(Option::is_none) {
            // A stop sign may share a batch with items; put back the other signs it carried.
            let stops = got.iter().filter(|i| i.is_none()).count();
            for _ in 1..stops {
                q.put(None).expect("put");
            }
            return;
        }
    }
}

/// Items per second through procshare-redis with `p` producer and `c` consumer processes.
fn ours(url: &str, p: usize, c: usize, total: usize, batch: usize) -> procshare::Result<f64> {
    let name = format!("bench-{}-{p}x{c}-{batch}", std::process::id());
    let q: Queue<Option<Item>> = Queue::open(url, &name)?;
    let go = Event::new()?;
    let job = |count| Job { url: url.into(), name: name.clone(), count, batch };
    let mut producers = (0..p)
        .map(|_| Process::spawn((job(total / p), go.clone()), produce))
        .collect::<procshare::Result<Vec<_>>>()?;
    let mut consumers = (0..c)
        .map(|_| Process::spawn((job(0), go.clone()), consume))
        .collect::<procshare::Result<Vec<_>>>()?;
    // Let every process connect before the clock starts.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let t = Instant::now();
    go.set();
    for pr in &mut producers {
        pr.join()?;
    }
    for _ in 0..c {
        q.put(None)?;
    }
    for co in &mut consumers {
        co.join()?;
    }
    let rate = (total / p * p) as f64 / t.elapsed().as_secs_f64();
    q.destroy()?;
    Ok(rate)
}

const PY: &str = r#"
import multiprocessing as mp, sys, time
mode, url, p, c, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ITEM = b"x" * 64
def rprod(go, key, k):
    import redis; r = redis.Redis.from_url(url); go.wait()
    for _ in range(k): r.lpush(key, ITEM)
def rcons(go, key):
    import redis; r = redis.Redis.from_url(url); go.wait()
    while r.brpop(key)[1] != b"STOP": pass
def mprod(go, q, k):
    go.wait()
    for _ in range(k): q.put(ITEM)
def mcons(go, q):
    go.wait()
    while q.get() != b"STOP": pass
if __name__ == "__main__":
    mp.set_start_method("fork")
    go = mp.Event()
    if mode == "redis":
        import redis; key = "bench-py-%d" % __import__("os").getpid(); r = redis.Redis.from_url(url)
        prods = [mp.Process(target=rprod, args=(go, key, n // p)) for _ in range(p)]
        conss = [mp.Process(target=rcons, args=(go, key)) for _ in range(c)]
        stop = lambda: [r.lpush(key, b"STOP") for _ in range(c)]
    else:
        from multiprocessing.managers import SyncManager
        m = SyncManager(address=("127.0.0.1", 0), authkey=b"bench"); m.start(); q = m.Queue()
        prods = [mp.Process(target=mprod, args=(go, q, n // p)) for _ in range(p)]
        conss = [mp.Process(target=mcons, args=(go, q)) for _ in range(c)]
        stop = lambda: [q.put(b"STOP") for _ in range(c)]
    for x in prods + conss: x.start()
    time.sleep(0.3)
    t = time.perf_counter(); go.set()
    for x in prods: x.join()
    stop()
    for x in conss: x.join()
    print(n // p * p / (time.perf_counter() - t))
"#;

/// Items per second of a CPython baseline (`mode`: "redis" or "manager"); `None` without python3
/// and redis-py.
fn python(mode: &str, url: &str, p: usize, c: usize, total: usize) -> Option<f64> {
    let out = std::process::Command::new("python3")
        .args(["-c", PY, mode, url, &p.to_string(), &c.to_string(), &total.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("python baseline {mode} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Runs the Redis rows and prints them; `quick` shortens every run.
pub fn run(quick: bool) -> procshare::Result<()> {
    let (_server, url) = match std::env::var("PROCSHARE_REDIS_URL") {
        Ok(u) => (None, u),
        Err(_) => {
            let (s, u) = crate::demo::redis::local_server()?;
            (Some(s), u)
        }
    };
    let scale = if quick { 1 } else { 4 };
    println!(
        "procshare bench --redis: 64 B items through the Redis server at {url} (items/s, same run)"
    );
    for (p, c) in [(1, 1), (4, 4)] {
        let single = ours(&url, p, c, 5_000 * scale, 1)?;
        let batched = ours(&url, p, c, 100_000 * scale, 256)?;
        let py = python("redis", &url, p, c, 5_000 * scale);
        let mgr = python("manager", &url, p, c, 2_000 * scale);
        let ratio =
            |b: Option<f64>, x: f64| b.map_or("n/a".to_string(), |b| format!("{:.1}x", x / b));
        let show = |b: Option<f64>| b.map_or("n/a".to_string(), |b| format!("{b:.0}"));
        println!(
            "  {p} -> {c} processes: procshare-redis {single:>8.0}/s, batched (256) {batched:>9.0}/s | \
             redis-py LPUSH/BRPOP {:>8} ({} single, {} batched) | manager Queue {:>7} ({} single, {} batched)",
            show(py),
            ratio(py, single),
            ratio(py, batched),
            show(mgr),
            ratio(mgr, single),
            ratio(mgr, batched),
        );
    }
    Ok(())
}
