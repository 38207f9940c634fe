//! `procshare bench`: procshare against baselines measured in the same run, as ratios.
//!
//! Each scenario runs ours and its baseline alternately for several rounds and reports the
//! medians. Baselines are the in-process or raw-OS ceilings a user could pick instead
//! (crossbeam-channel between threads, an OS pipe with one write per message, parking_lot,
//! memcpy) and, with `--python`, CPython's `multiprocessing` measured by a script run now.

use procshare::{
    pipe, pipe_simplex, thread_queue, Connection, Event, Lock, Process, Queue, RawArray,
    StartMethod,
};
use serde::Serialize;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `procshare bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Short rounds (a few seconds in all) instead of the full run.
    #[arg(long)]
    quick: bool,
    /// Also write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also draw the ratios as an SVG bar chart in FILE.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Also measure CPython's multiprocessing (needs python3) and report ratios against it.
    #[arg(long)]
    python: bool,
    /// Measure only procshare-redis against redis-py and a manager Queue (bench_redis.rs).
    #[arg(long)]
    redis: bool,
}

/// One line of the report.
#[derive(Debug, Serialize)]
struct Row {
    scenario: String,
    unit: &'static str,
    ours: f64,
    baseline: String,
    baseline_value: f64,
    /// ours / baseline, oriented so that > 1 means procshare is better.
    ratio: f64,
}

struct Plan {
    rounds: usize,
    duration: Duration,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs `ours` and `base` alternately and returns their medians.
fn compare(
    plan: &Plan,
    ours: &mut dyn FnMut(Duration) -> f64,
    base: &mut dyn FnMut(Duration) -> f64,
) -> (f64, f64) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..plan.rounds {
        a.push(ours(plan.duration));
        b.push(base(plan.duration));
    }
    (median(a), median(b))
}

fn row(
    scenario: &str,
    unit: &'static str,
    baseline: &str,
    (ours, base): (f64, f64),
    higher_better: bool,
) -> Row {
    let ratio = if higher_better { ours / base } else { base / ours };
    Row {
        scenario: scenario.into(),
        unit,
        ours,
        baseline: baseline.into(),
        baseline_value: base,
        ratio,
    }
}

// ---- pipes -----------------------------------------------------------------------------

fn pipe_sender((tx, size): (Connection, usize)) {
    let msg = vec![7u8; size];
    while tx.send_bytes(&msg).is_ok() {}
}

/// Messages/s (or bytes/s with `bytes`) through a procshare pipe from a child process.
fn pipe_rate(size: usize, dur: Duration) -> f64 {
    let (rx, tx) = pipe_simplex().expect("pipe");
    let mut child = Process::spawn((tx, size), pipe_sender).expect("spawn");
    let mut buf = vec![0u8; size];
    // Let the child start before the clock does.
    rx.recv_bytes_into(&mut buf).expect("recv");
    let (n, elapsed) = count_for(dur, || {
        rx.recv_bytes_into(&mut buf).expect("recv");
    });
    drop(rx);
    let _ = child.join();
    n as f64 / elapsed
}

/// An OS pipe from a child process writing `size`-byte messages, one `write` each.
fn os_pipe_rate(size: usize, dur: Duration) -> f64 {
    let mut child = Command::new("/proc/self/exe")
        .args(["__bench-child", "write", &size.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().expect("stdout");
    let mut buf = vec![0u8; size];
    out.read_exact(&mut buf).expect("read");
    let (n, elapsed) = count_for(dur, || out.read_exact(&mut buf).expect("read"));
    drop(out);
    let _ = child.wait();
    n as f64 / elapsed
}

/// Calls `step` until `dur` has passed; returns the count and the seconds taken.
fn count_for(dur: Duration, mut step: impl FnMut()) -> (u64, f64) {
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        for _ in 0..64 {
            step();
        }
        n += 64;
        if start.elapsed() >= dur {
            return (n, start.elapsed().as_secs_f64());
        }
    }
}

fn pipe_echo(c: Connection) {
    let mut b = [0u8; 64];
    while let Ok(n) = c.recv_bytes_into(&mut b) {
        if c.send_bytes(&b[..n]).is_err() {
            break;
        }
    }
}

/// Median round trip of an 8-byte message through a duplex pipe and back, in µs.
fn pipe_rtt(dur: Duration) -> f64 {
    let (here, there) = pipe().expect("pipe");
    let mut child = Process::spawn(there, pipe_echo).expect("spawn");
    let mut b = [0u8; 8];
    let rtts = sample_rtts(dur, || {
        here.send_bytes(&[1u8; 8]).expect("send");
        here.recv_bytes_into(&mut b).expect("recv");
    });
    drop(here);
    let _ = child.join();
    rtts
}

fn os_pipe_rtt(dur: Duration) -> f64 {
    let mut child = Command::new("/proc/self/exe")
        .args(["__bench-child", "echo", "8"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut tx = child.stdin.take().expect("stdin");
    let mut rx = child.stdout.take().expect("stdout");
    let mut b = [0u8; 8];
    let rtt = sample_rtts(dur, || {
        tx.write_all(&[1u8; 8]).expect("write");
        rx.read_exact(&mut b).expect("read");
    });
    drop((tx, rx));
    let _ = child.wait();
    rtt
}

/// The median duration of `round_trip`, in µs, sampled for about `dur`.
fn sample_rtts(dur: Duration, mut round_trip: impl FnMut()) -> f64 {
    for _ in 0..100 {
        round_trip();
    }
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < dur {
        let t = Instant::now();
        round_trip();
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    median(samples)
}

/// The hidden `__bench-child` helper: a plain OS-pipe peer with no procshare in the path.
pub fn child(mode: &str, size: usize) {
    let mut buf = vec![7u8; size];
    let mut out = std::io::stdout().lock();
    match mode {
        "write" => while out.write_all(&buf).and_then(|()| out.flush()).is_ok() {},
        "echo" => {
            let mut input = std::io::stdin().lock();
            while input.read_exact(&mut buf).is_ok() {
                if out.write_all(&buf).and_then(|()| out.flush()).is_err() {
                    break;
                }
            }
        }
        _ => {}
    }
}

/// Single-threaded memcpy bandwidth in bytes/s: 1 MiB blocks from a 256 MiB source (out of
/// cache, as a queue's or pipe's data is).
fn memcpy_rate(dur: Duration) -> f64 {
    const BLOCK: usize = 1 << 20;
    let src = vec![3u8; 256 * BLOCK];
    let mut dst = vec![0u8; BLOCK];
    let mut i = 0;
    let (n, elapsed) = count_for(dur, || {
        dst.copy_from_slice(&src[i * BLOCK..(i + 1) * BLOCK]);
        std::hint::black_box(&dst);
        i = (i + 1) % 256;
    });
    n as f64 * BLOCK as f64 / elapsed
}

// ---- process queues --------------------------------------------------------------------

/// A byte payload that serializes as one byte string (a plain `Vec<u8>` goes through serde
/// element by element, ~100× slower for large items), shared so the producer pays no copy of
/// its own: the one copy is into the ring.
#[derive(Clone)]
struct Item(Arc<Vec<u8>>);

impl Serialize for Item {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Item {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde_bytes::ByteBuf::deserialize(d).map(|b| Item(Arc::new(b.into_vec())))
    }
}

/// Puts `size`-byte items until `stop` is set.
fn queue_producer((q, stop, size): (Queue<Item>, Event, usize)) {
    let item = Item(Arc::new(vec![7u8; size]));
    while !stop.is_set() {
        for _ in 0..64 {
            if q.put_timeout(item.clone(), Duration::from_millis(10)).is_err() {
                break;
            }
        }
    }
}

/// Items/s from one producer process to this process through a bounded procshare Queue.
fn queue_rate(size: usize, dur: Duration) -> f64 {
    let q = Queue::<Item>::bounded(1024).expect("queue");
    let stop = Event::new().expect("event");
    let mut child = Process::spawn((q.clone(), stop.clone(), size), queue_producer).expect("spawn");
    q.get().expect("get");
    let (n, elapsed) = count_for(dur, || {
        q.get().expect("get");
    });
    stop.set();
    while q.get_timeout(Duration::from_millis(50)).is_ok() {}
    let _ = child.join();
    n as f64 / elapsed
}

fn queue_consumer((q, stop, report): (Queue<Item>, Event, Connection)) {
    let mut n = 0u64;
    while !stop.is_set() {
        if q.get_timeout(Duration::from_millis(10)).is_ok() {
            n += 1;
        }
    }
    let _ = report.send(&n);
}

/// Items/s with 2 producer and 2 consumer processes on one Queue.
fn queue_2x2_rate(dur: Duration) -> f64 {
    let q = Queue::<Item>::bounded(1024).expect("queue");
    let stop_producers = Event::new().expect("event");
    let stop_consumers = Event::new().expect("event");
    let (results, report) = pipe().expect("pipe");
    let mut kids = Vec::new();
    for _ in 0..2 {
        kids.push(
            Process::spawn(
                (q.clone(), stop_consumers.clone(), report.try_clone().expect("clone")),
                queue_consumer,
            )
            .expect("spawn"),
        );
        kids.push(
            Process::spawn((q.clone(), stop_producers.clone(), 64usize), queue_producer)
                .expect("spawn"),
        );
    }
    std::thread::sleep(dur);
    stop_consumers.set();
    let total: u64 = (0..2).map(|_| results.recv::<u64>().unwrap_or(0)).sum();
    stop_producers.set();
    while q.get_timeout(Duration::from_millis(50)).is_ok() {}
    for k in &mut kids {
        let _ = k.join();
    }
    total as f64 / dur.as_secs_f64()
}

fn queue_echo((inbox, outbox): (Queue<u64>, Queue<u64>)) {
    while let Ok(v) = inbox.get() {
        if v == u64::MAX || outbox.put(v).is_err() {
            break;
        }
    }
}

/// Median round trip through two queues and a child process, in µs.
fn queue_rtt(dur: Duration) -> f64 {
    let (ping, pong) = (Queue::<u64>::new().expect("queue"), Queue::<u64>::new().expect("queue"));
    let mut child = Process::spawn((ping.clone(), pong.clone()), queue_echo).expect("spawn");
    let rtt = sample_rtts(dur, || {
        ping.put(1).expect("put");
        pong.get().expect("get");
    });
    let _ = ping.put(u64::MAX);
    let _ = child.join();
    rtt
}

/// The in-process ceiling: crossbeam's bounded channel between two threads, same items.
fn crossbeam_items_rate(size: usize, dur: Duration) -> f64 {
    let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(1024);
    let producer = std::thread::spawn(move || {
        let item = vec![7u8; size];
        while tx.send(item.clone()).is_ok() {}
    });
    let (n, elapsed) = count_for(dur, || {
        std::hint::black_box(rx.recv().expect("recv"));
    });
    drop(rx);
    let _ = producer.join();
    n as f64 / elapsed
}

// ---- processes -------------------------------------------------------------------------

/// Median time to start a process and join it, in µs (`Spawn` or `Fork`).
fn spawn_cost(method: StartMethod, dur: Duration) -> f64 {
    sample_rtts(dur.min(Duration::from_millis(500)), || {
        let mut p = Process::builder().start_method(method).spawn((), |()| {}).expect("spawn");
        p.join().expect("join");
    })
}

// ---- locks -----------------------------------------------------------------------------

type LockArgs = (Lock, RawArray<u64>, u64, u64);

/// Contends for the lock until told to stop; counts acquisitions and owner changes.
fn lock_worker((lock, shared, me, millis): LockArgs) {
    let end = Instant::now() + Duration::from_millis(millis);
    while Instant::now() < end {
        for _ in 0..64 {
            let _g = lock.lock().expect("lock");
            shared.set(0, shared.get(0) + 1);
            if shared.get(1) != me {
                shared.set(1, me);
                shared.set(2, shared.get(2) + 1);
            }
        }
    }
}

/// Acquisitions/s of one procshare Lock contended by two processes.
fn lock_rate(dur: Duration) -> f64 {
    let lock = Lock::new().expect("lock");
    let shared = RawArray::<u64>::new(3).expect("array");
    let millis = dur.as_millis() as u64;
    let mut kids: Vec<Process> = (1..=2)
        .map(|me| {
            Process::spawn((lock.clone(), shared.clone(), me, millis), lock_worker).expect("spawn")
        })
        .collect();
    for k in &mut kids {
        let _ = k.join();
    }
    shared.get(0) as f64 / dur.as_secs_f64()
}

/// The same with a parking_lot Mutex between two threads.
fn parking_lot_rate(dur: Duration) -> f64 {
    let m = std::sync::Arc::new(parking_lot::Mutex::new([0u64; 3]));
    let threads: Vec<_> = (1..=2u64)
        .map(|me| {
            let m = m.clone();
            std::thread::spawn(move || {
                let end = Instant::now() + dur;
                while Instant::now() < end {
                    for _ in 0..64 {
                        let mut s = m.lock();
                        s[0] += 1;
                        if s[1] != me {
                            s[1] = me;
                            s[2] += 1;
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let total = m.lock()[0];
    total as f64 / dur.as_secs_f64()
}

// ---- thread queues ---------------------------------------------------------------------

fn thread_queue_rate(dur: Duration) -> f64 {
    let q = Arc::new(thread_queue::Queue::<u64>::bounded(1024));
    let producer = {
        let q = q.clone();
        std::thread::spawn(move || {
            let mut i = 0;
            // Blocking puts, as crossbeam's `send` below; shutdown ends them.
            while q.put(i).is_ok() {
                i += 1;
            }
        })
    };
    let (n, elapsed) = count_for(dur, || {
        q.get().expect("get");
    });
    q.shutdown(true);
    let _ = producer.join();
    n as f64 / elapsed
}

fn crossbeam_rate(dur: Duration) -> f64 {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(1024);
    let producer = std::thread::spawn(move || {
        let mut i = 0;
        while tx.send(i).is_ok() {
            i += 1;
        }
    });
    let (n, elapsed) = count_for(dur, || {
        rx.recv().expect("recv");
    });
    drop(rx);
    let _ = producer.join();
    n as f64 / elapsed
}

// ---- python ----------------------------------------------------------------------------

const PYTHON: &str = r#"
import json, sys, time, threading, queue, multiprocessing as mp
DUR = float(sys.argv[1])

def sender(conn, size):
    m = b'x' * size
    try:
        while True: conn.send_bytes(m)
    except Exception: pass

def pipe_rate(size):
    r, w = mp.Pipe(False)
    p = mp.Process(target=sender, args=(w, size)); p.start(); w.close()
    r.recv_bytes(); n = 0; t = time.perf_counter()
    while True:
        for _ in range(64): r.recv_bytes()
        n += 64
        if time.perf_counter() - t >= DUR: break
    e = time.perf_counter() - t; r.close(); p.terminate(); p.join()
    return n / e

def qsender(q, stop):
    m = b'x' * 64
    while not stop.is_set():
        try: q.put(m, timeout=0.01)
        except Exception: pass

def queue_rate(q):
    stop = mp.Event()
    p = mp.Process(target=qsender, args=(q, stop)); p.start()
    q.get(); n = 0; t = time.perf_counter()
    while True:
        for _ in range(64): q.get()
        n += 64
        if time.perf_counter() - t >= DUR: break
    e = time.perf_counter() - t; stop.set()
    try:
        while True: q.get(timeout=0.2)
    except Exception: pass
    p.join(); return n / e

def qconsumer(q, stop, total):
    n = 0
    while not stop.is_set():
        try:
            q.get(timeout=0.01); n += 1
        except Exception: pass
    with total.get_lock(): total.value += n

def queue_2x2():
    q, stop_p, stop_c, total = mp.Queue(1024), mp.Event(), mp.Event(), mp.Value('q', 0)
    ps = [mp.Process(target=qsender, args=(q, stop_p)) for _ in range(2)]
    cs = [mp.Process(target=qconsumer, args=(q, stop_c, total)) for _ in range(2)]
    for p in ps + cs: p.start()
    time.sleep(DUR); stop_c.set()
    for c in cs: c.join()
    stop_p.set()
    try:
        while True: q.get(timeout=0.2)
    except Exception: pass
    for p in ps: p.join()
    return total.value / DUR

def locker(lock, arr, me, dur):
    end = time.perf_counter() + dur
    while time.perf_counter() < end:
        for _ in range(64):
            with lock: arr[0] += 1

def lock_rate():
    lock, arr = mp.Lock(), mp.RawArray('q', 3)
    ps = [mp.Process(target=locker, args=(lock, arr, i, DUR)) for i in range(2)]
    for p in ps: p.start()
    for p in ps: p.join()
    return arr[0] / DUR

def ff_rate():
    try:
        from faster_fifo import Queue as FFQueue
    except ImportError:
        return None
    return queue_rate(FFQueue(1 << 20))

def noop(): pass

def spawn_cost():
    ctx = mp.get_context('spawn')
    ts = []
    for _ in range(5):
        t = time.perf_counter(); p = ctx.Process(target=noop); p.start(); p.join()
        ts.append(time.perf_counter() - t)
    ts.sort(); return ts[len(ts) // 2] * 1e6

def tq_rate():
    q = queue.Queue(1024); stop = False
    def prod():
        i = 0
        while not stop:
            try: q.put(i, timeout=0.01); i += 1
            except queue.Full: pass
    th = threading.Thread(target=prod); th.start()
    n = 0; t = time.perf_counter()
    while True:
        for _ in range(64): q.get()
        n += 64
        if time.perf_counter() - t >= DUR: break
    e = time.perf_counter() - t; stop = True
    th.join(timeout=1)
    return n / e

if __name__ == '__main__':
    print(json.dumps({'pipe_64': pipe_rate(64), 'pipe_1m': pipe_rate(1 << 20) * (1 << 20),
                      'queue_64': queue_rate(mp.Queue(1024)), 'queue_2x2': queue_2x2(), 'lock': lock_rate(),
                      'thread_queue': tq_rate(), 'faster_fifo': ff_rate(), 'spawn_us': spawn_cost()}))
"#;

fn python(dur: Duration) -> Option<serde_json::Value> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(PYTHON)
        .arg(dur.as_secs_f64().to_string())
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("python3 failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

// ---- report ----------------------------------------------------------------------------

fn human(v: f64, unit: &str) -> String {
    match unit {
        "msg/s" | "ops/s" => format!("{:.3} M{unit}", v / 1e6),
        "B/s" => format!("{:.2} GiB/s", v / (1u64 << 30) as f64),
        _ => format!("{v:.2} {unit}"),
    }
}

/// One scenario of the report: how procshare does it and the baseline it is compared with.
struct Scenario {
    name: &'static str,
    unit: &'static str,
    /// More is better (a rate), or less (a latency, a cost).
    higher_better: bool,
    ours: fn(Duration) -> f64,
    baseline: &'static str,
    base: fn(Duration) -> f64,
}

const PIPE_64: Scenario = Scenario {
    name: "pipe 64 B, 1 process -> 1",
    unit: "msg/s",
    higher_better: true,
    ours: |d| pipe_rate(64, d),
    baseline: "OS pipe, 1 write/msg",
    base: |d| os_pipe_rate(64, d),
};
const PIPE_RTT: Scenario = Scenario {
    name: "pipe ping-pong 8 B (median RTT)",
    unit: "µs",
    higher_better: false,
    ours: pipe_rtt,
    baseline: "OS pipe pair",
    base: os_pipe_rtt,
};
const PIPE_1MIB: Scenario = Scenario {
    name: "pipe 1 MiB, 1 process -> 1",
    unit: "B/s",
    higher_better: true,
    ours: |d| pipe_rate(1 << 20, d) * (1 << 20) as f64,
    baseline: "memcpy (1 thread)",
    base: memcpy_rate,
};
const QUEUE_64: Scenario = Scenario {
    name: "Queue 64 B, 1 process -> 1",
    unit: "msg/s",
    higher_better: true,
    ours: |d| queue_rate(64, d),
    baseline: "crossbeam bounded, 2 threads",
    base: |d| crossbeam_items_rate(64, d),
};
const QUEUE_2X2: Scenario = Scenario {
    name: "Queue 64 B, 2 -> 2 processes",
    unit: "msg/s",
    higher_better: true,
    ours: queue_2x2_rate,
    baseline: "crossbeam bounded, 1 -> 1 threads",
    base: |d| crossbeam_items_rate(64, d),
};
const QUEUE_RTT: Scenario = Scenario {
    name: "Queue ping-pong (median RTT)",
    unit: "µs",
    higher_better: false,
    ours: queue_rtt,
    baseline: "procshare pipe ping-pong",
    base: pipe_rtt,
};
const QUEUE_1MIB: Scenario = Scenario {
    name: "Queue 1 MiB, 1 process -> 1",
    unit: "B/s",
    higher_better: true,
    ours: |d| queue_rate(1 << 20, d) * (1 << 20) as f64,
    baseline: "memcpy (1 thread)",
    base: memcpy_rate,
};
const SPAWN: Scenario = Scenario {
    name: "Process spawn + join (median)",
    unit: "µs",
    higher_better: false,
    ours: |d| spawn_cost(StartMethod::Spawn, d),
    baseline: "procshare fork + join",
    base: |d| spawn_cost(StartMethod::Fork, d),
};
const LOCK: Scenario = Scenario {
    name: "Lock, 2 processes contending",
    unit: "ops/s",
    higher_better: true,
    ours: lock_rate,
    baseline: "parking_lot, 2 threads",
    base: parking_lot_rate,
};
const THREAD_QUEUE: Scenario = Scenario {
    name: "thread_queue::Queue 1 -> 1 threads",
    unit: "msg/s",
    higher_better: true,
    ours: thread_queue_rate,
    baseline: "crossbeam bounded(1024)",
    base: crossbeam_rate,
};

/// The scenarios, in report order.
const SCENARIOS: [Scenario; 10] = [
    PIPE_64,
    PIPE_RTT,
    PIPE_1MIB,
    QUEUE_64,
    QUEUE_2X2,
    QUEUE_RTT,
    QUEUE_1MIB,
    SPAWN,
    LOCK,
    THREAD_QUEUE,
];

/// A CPython baseline (`--python`) of a scenario: its name and its key in [`PYTHON`]'s JSON.
struct PythonBaseline {
    scenario: Scenario,
    baseline: &'static str,
    key: &'static str,
    /// Measured only when an optional package is installed: no row without it (the others
    /// report NaN when missing).
    optional: bool,
}

/// A CPython baseline that is always measured.
const fn py_baseline(
    scenario: Scenario,
    baseline: &'static str,
    key: &'static str,
) -> PythonBaseline {
    PythonBaseline { scenario, baseline, key, optional: false }
}

/// The CPython baselines, in report order.
const PYTHON_BASELINES: [PythonBaseline; 8] = [
    py_baseline(PIPE_64, "Python mp.Pipe send_bytes", "pipe_64"),
    py_baseline(PIPE_1MIB, "Python mp.Pipe send_bytes", "pipe_1m"),
    py_baseline(QUEUE_64, "Python mp.Queue", "queue_64"),
    PythonBaseline {
        scenario: QUEUE_64,
        baseline: "Python faster_fifo",
        key: "faster_fifo",
        optional: true,
    },
    py_baseline(SPAWN, "Python spawn Process + join", "spawn_us"),
    py_baseline(QUEUE_2X2, "Python mp.Queue 2 -> 2", "queue_2x2"),
    py_baseline(LOCK, "Python mp.Lock", "lock"),
    py_baseline(THREAD_QUEUE, "Python queue.Queue", "thread_queue"),
];

/// Runs every scenario and prints the table (and JSON / SVG when asked).
pub fn run(args: Args) -> procshare::Result<()> {
    if args.redis {
        return crate::bench_redis::run(args.quick);
    }
    let plan = if args.quick {
        Plan { rounds: 1, duration: Duration::from_millis(300) }
    } else {
        Plan { rounds: 3, duration: Duration::from_secs(1) }
    };
    let mut rows = Vec::new();
    let mut say = |r: Row| {
        println!(
            "{:<34} {:>16}   vs {:<28} {:>16}   ratio {:>6.2}x",
            r.scenario,
            human(r.ours, r.unit),
            r.baseline,
            human(r.baseline_value, r.unit),
            r.ratio
        );
        rows.push(r);
    };
    println!(
        "procshare bench: {} round(s) of {:?} each, medians; ratio > 1 means procshare is better",
        plan.rounds, plan.duration
    );

    // Each scenario's median for procshare, kept for its Python rows.
    let mut ours = Vec::with_capacity(SCENARIOS.len());
    for s in &SCENARIOS {
        let (mut run_ours, mut run_base) = (s.ours, s.base);
        let measured = compare(&plan, &mut run_ours, &mut run_base);
        say(row(s.name, s.unit, s.baseline, measured, s.higher_better));
        ours.push((s.name, measured.0));
    }

    if args.python {
        match python(plan.duration) {
            Some(py) => {
                for p in &PYTHON_BASELINES {
                    let s = &p.scenario;
                    let value = match py.get(p.key).and_then(|v| v.as_f64()) {
                        Some(v) => v,
                        None if p.optional => continue,
                        None => f64::NAN,
                    };
                    let mine =
                        ours.iter().find(|(name, _)| *name == s.name).map_or(f64::NAN, |o| o.1);
                    say(row(s.name, s.unit, p.baseline, (mine, value), s.higher_better));
                }
            }
            None => eprintln!("python3 is not available: no Python baselines"),
        }
    }

    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&rows)
            .map_err(|e| procshare::Error::Codec(e.to_string()))?;
        std::fs::write(path, json)?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        plot(&rows, path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn plot(rows: &[Row], path: &std::path::Path) -> procshare::Result<()> {
    use plotters::prelude::*;
    let err = |e: String| procshare::Error::Io(std::io::Error::other(e));
    let labels: Vec<String> =
        rows.iter().map(|r| format!("{} vs {}", r.scenario, r.baseline)).collect();
    let max = rows.iter().map(|r| r.ratio).filter(|r| r.is_finite()).fold(1.0f64, f64::max) * 1.1;
    let height = 120 + 40 * rows.len() as u32;
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("procshare / baseline (higher is better for procshare)", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(520)
        .build_cartesian_2d(0.0..max, (0..rows.len()).into_segmented())
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .y_labels(rows.len())
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            let color = if r.ratio >= 1.0 { GREEN.mix(0.7) } else { RED.mix(0.7) };
            Rectangle::new(
                [(0.0, SegmentValue::Exact(i)), (r.ratio.min(max), SegmentValue::Exact(i + 1))],
                color.filled(),
            )
        }))
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}
