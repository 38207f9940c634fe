//! The measurements of procshare itself and of the baselines that need no extra crate: an OS pipe
//! (one write per message), memcpy, crossbeam-channel and parking_lot between threads.

use procshare::{
    pipe, pipe_simplex, thread_queue, Connection, Event, Lock, Process, Queue, RawArray,
    StartMethod,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Calls `step` until `dur` has passed; returns the count and the seconds taken.
pub fn count_for(dur: Duration, mut step: impl FnMut()) -> (u64, f64) {
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

/// Messages/s of `step` (one message each) for about `dur`.
pub fn rate_for(dur: Duration, step: impl FnMut()) -> f64 {
    let (n, elapsed) = count_for(dur, step);
    n as f64 / elapsed
}

/// The median and the 99th percentile of `round_trip`, in µs, sampled for about `dur` after a
/// warm-up of 100 round trips.
pub fn sample_rtts(dur: Duration, mut round_trip: impl FnMut()) -> [f64; 2] {
    for _ in 0..100 {
        round_trip();
    }
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < dur || samples.len() < 100 {
        let t = Instant::now();
        round_trip();
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let p99 = samples[(samples.len() * 99 / 100).min(samples.len() - 1)];
    [samples[samples.len() / 2], p99]
}

// ---- pipes -----------------------------------------------------------------------------

fn pipe_sender((tx, size): (Connection, usize)) {
    let msg = vec![7u8; size];
    while tx.send_bytes(&msg).is_ok() {}
}

/// Messages/s through a procshare pipe from a child process.
pub fn pipe_rate(size: usize, dur: Duration) -> f64 {
    let (rx, tx) = pipe_simplex().expect("pipe");
    let mut child = Process::spawn((tx, size), pipe_sender).expect("spawn");
    let mut buf = vec![0u8; size];
    // Let the child start before the clock does.
    rx.recv_bytes_into(&mut buf).expect("recv");
    let rate = rate_for(dur, || {
        rx.recv_bytes_into(&mut buf).expect("recv");
    });
    drop(rx);
    let _ = child.join();
    rate
}

fn pipe_reader((rx, stop, report): (Connection, Event, Connection)) {
    let mut buf = [0u8; 64];
    let mut n = 0u64;
    while !stop.is_set() {
        if rx.poll(Some(Duration::from_millis(10))).unwrap_or(false)
            && rx.recv_bytes_into(&mut buf).is_ok()
        {
            n += 1;
        }
    }
    let _ = report.send(&n);
}

/// Messages/s with 2 writer and 2 reader processes sharing the two ends of one pipe.
pub fn pipe_2x2_rate(dur: Duration) -> f64 {
    let (rx, tx) = pipe_simplex().expect("pipe");
    let stop = Event::new().expect("event");
    let (results, report) = pipe().expect("pipe");
    let mut kids = Vec::new();
    for _ in 0..2 {
        let reader =
            (rx.try_clone().expect("clone"), stop.clone(), report.try_clone().expect("clone"));
        kids.push(Process::spawn(reader, pipe_reader).expect("spawn"));
        kids.push(
            Process::spawn((tx.try_clone().expect("clone"), 64usize), pipe_sender).expect("spawn"),
        );
    }
    drop(tx);
    std::thread::sleep(dur);
    stop.set();
    let total: u64 = (0..2).map(|_| results.recv::<u64>().unwrap_or(0)).sum();
    // The writers stop once no reader end is left.
    drop(rx);
    for k in &mut kids {
        let _ = k.join();
    }
    total as f64 / dur.as_secs_f64()
}

/// An OS pipe from a child process writing `size`-byte messages, one `write` each.
pub fn os_pipe_rate(size: usize, dur: Duration) -> f64 {
    let mut child = Command::new("/proc/self/exe")
        .args(["__bench-child", "write", &size.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().expect("stdout");
    let mut buf = vec![0u8; size];
    out.read_exact(&mut buf).expect("read");
    let rate = rate_for(dur, || out.read_exact(&mut buf).expect("read"));
    drop(out);
    let _ = child.wait();
    rate
}

fn pipe_echo(c: Connection) {
    let mut b = [0u8; 64];
    while let Ok(n) = c.recv_bytes_into(&mut b) {
        if c.send_bytes(&b[..n]).is_err() {
            break;
        }
    }
}

/// Round trips of an 8-byte message through a duplex pipe and back, in µs.
pub fn pipe_rtt(dur: Duration) -> [f64; 2] {
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

pub fn os_pipe_rtt(dur: Duration) -> [f64; 2] {
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
        #[cfg(feature = "peers")]
        "procspawn" => super::peers::procspawn_child(size),
        _ => {}
    }
}

/// Single-threaded memcpy bandwidth in bytes/s: 1 MiB blocks from a 256 MiB source (out of
/// cache, as a queue's or pipe's data is).
pub fn memcpy_rate(dur: Duration) -> f64 {
    const BLOCK: usize = 1 << 20;
    let src = vec![3u8; 256 * BLOCK];
    let mut dst = vec![0u8; BLOCK];
    let mut i = 0;
    let rate = rate_for(dur, || {
        dst.copy_from_slice(&src[i * BLOCK..(i + 1) * BLOCK]);
        std::hint::black_box(&dst);
        i = (i + 1) % 256;
    });
    rate * BLOCK as f64
}

// ---- process queues --------------------------------------------------------------------

/// The tuned byte payload: it serializes as one byte string (a plain `Vec<u8>` goes through
/// serde element by element), shared so the producer pays no copy of its own: the one copy is
/// into the ring.
#[derive(Clone)]
pub struct Item(Arc<Vec<u8>>);

impl Serialize for Item {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde_bytes::ByteBuf::deserialize(d).map(|b| Item(Arc::new(b.into_vec())))
    }
}

/// The "small serde struct" of the item-type rows (48 bytes of fields).
#[derive(Clone, Serialize, Deserialize)]
pub struct Order {
    id: u64,
    price: f64,
    qty: u32,
    side: bool,
    symbol: String,
}

/// Puts `item` until `stop` is set.
fn producer<T: Serialize + DeserializeOwned + Clone>((q, stop, item): (Queue<T>, Event, T)) {
    while !stop.is_set() {
        for _ in 0..64 {
            if q.put_timeout(item.clone(), Duration::from_millis(10)).is_err() {
                break;
            }
        }
    }
}

/// Items/s from one producer process to this process through a bounded procshare Queue.
fn typed_queue_rate<T: Serialize + DeserializeOwned + Clone>(item: T, dur: Duration) -> f64 {
    let q = Queue::<T>::bounded(1024).expect("queue");
    let stop = Event::new().expect("event");
    let mut child = Process::spawn((q.clone(), stop.clone(), item), producer::<T>).expect("spawn");
    q.get().expect("get");
    let rate = rate_for(dur, || {
        std::hint::black_box(q.get().expect("get"));
    });
    stop.set();
    while q.get_timeout(Duration::from_millis(50)).is_ok() {}
    let _ = child.join();
    rate
}

pub fn queue_rate(size: usize, dur: Duration) -> f64 {
    typed_queue_rate(Item(Arc::new(vec![7u8; size])), dur)
}

pub fn queue_vec_rate(dur: Duration) -> f64 {
    typed_queue_rate(vec![7u8; 64], dur)
}

pub fn queue_string_rate(dur: Duration) -> f64 {
    typed_queue_rate("x".repeat(64), dur)
}

pub fn queue_struct_rate(dur: Duration) -> f64 {
    let order = Order { id: 7, price: 101.25, qty: 300, side: true, symbol: "PROCSHARE-A".into() };
    typed_queue_rate(order, dur)
}

fn typed_sender((tx, size): (Connection, usize)) {
    let msg = vec![7u8; size];
    while tx.send(&msg).is_ok() {}
}

/// Messages/s of `Connection::send(&Vec<u8>)` / `recv::<Vec<u8>>()` from a child process.
pub fn pipe_send_vec_rate(dur: Duration) -> f64 {
    let (rx, tx) = pipe_simplex().expect("pipe");
    let mut child = Process::spawn((tx, 64usize), typed_sender).expect("spawn");
    rx.recv::<Vec<u8>>().expect("recv");
    let rate = rate_for(dur, || {
        std::hint::black_box(rx.recv::<Vec<u8>>().expect("recv"));
    });
    drop(rx);
    let _ = child.join();
    rate
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
pub fn queue_2x2_rate(dur: Duration) -> f64 {
    let q = Queue::<Item>::bounded(1024).expect("queue");
    let stop_producers = Event::new().expect("event");
    let stop_consumers = Event::new().expect("event");
    let (results, report) = pipe().expect("pipe");
    let item = Item(Arc::new(vec![7u8; 64]));
    let mut kids = Vec::new();
    for _ in 0..2 {
        let consumer = (q.clone(), stop_consumers.clone(), report.try_clone().expect("clone"));
        kids.push(Process::spawn(consumer, queue_consumer).expect("spawn"));
        let args = (q.clone(), stop_producers.clone(), item.clone());
        kids.push(Process::spawn(args, producer::<Item>).expect("spawn"));
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

/// Round trips through two queues and a child process, in µs.
pub fn queue_rtt(dur: Duration) -> [f64; 2] {
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

// ---- threads (the in-process references) ----------------------------------------------

/// crossbeam's bounded channel between two threads, `size`-byte `Vec` items.
pub fn crossbeam_items_rate(size: usize, dur: Duration) -> f64 {
    let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(1024);
    let producer = std::thread::spawn(move || {
        let item = vec![7u8; size];
        while tx.send(item.clone()).is_ok() {}
    });
    let rate = rate_for(dur, || {
        std::hint::black_box(rx.recv().expect("recv"));
    });
    drop(rx);
    let _ = producer.join();
    rate
}

/// crossbeam bounded with 2 producer and 2 consumer threads, 64-byte items.
pub fn crossbeam_2x2_rate(dur: Duration) -> f64 {
    let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(1024);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producers: Vec<_> = (0..2)
        .map(|_| {
            let tx = tx.clone();
            std::thread::spawn(move || while tx.send(vec![7u8; 64]).is_ok() {})
        })
        .collect();
    drop(tx);
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (rx, stop) = (rx.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if rx.recv_timeout(Duration::from_millis(10)).is_ok() {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    drop(rx);
    std::thread::sleep(dur);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let total: u64 = consumers.into_iter().map(|c| c.join().unwrap_or(0)).sum();
    for p in producers {
        let _ = p.join();
    }
    total as f64 / dur.as_secs_f64()
}

/// Round trips of a u64 between two threads over two crossbeam bounded(1) channels, in µs.
pub fn crossbeam_rtt(dur: Duration) -> [f64; 2] {
    let (ping_tx, ping_rx) = crossbeam_channel::bounded::<u64>(1);
    let (pong_tx, pong_rx) = crossbeam_channel::bounded::<u64>(1);
    let echo = std::thread::spawn(move || {
        while let Ok(v) = ping_rx.recv() {
            if pong_tx.send(v).is_err() {
                break;
            }
        }
    });
    let rtt = sample_rtts(dur, || {
        ping_tx.send(1).expect("send");
        pong_rx.recv().expect("recv");
    });
    drop(ping_tx);
    let _ = echo.join();
    rtt
}

pub fn thread_queue_rate(dur: Duration) -> f64 {
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
    let rate = rate_for(dur, || {
        q.get().expect("get");
    });
    q.shutdown(true);
    let _ = producer.join();
    rate
}

pub fn crossbeam_rate(dur: Duration) -> f64 {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(1024);
    let producer = std::thread::spawn(move || {
        let mut i = 0;
        while tx.send(i).is_ok() {
            i += 1;
        }
    });
    let rate = rate_for(dur, || {
        rx.recv().expect("recv");
    });
    drop(rx);
    let _ = producer.join();
    rate
}

// ---- processes -------------------------------------------------------------------------

/// Median time to start a process and join it, in µs (`Spawn` or `Fork`).
pub fn spawn_cost(method: StartMethod, dur: Duration) -> f64 {
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < dur.min(Duration::from_millis(500)) || samples.len() < 3 {
        let t = Instant::now();
        let mut p = Process::builder().start_method(method).spawn((), |()| {}).expect("spawn");
        p.join().expect("join");
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    median(samples)
}

/// Median time to make a handle with `make` and drop it again, in µs (a handle's whole cost
/// to a program that makes many: its system calls, mappings and page faults).
fn create_cost<T>(dur: Duration, mut make: impl FnMut() -> T) -> f64 {
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < dur.min(Duration::from_millis(500)) || samples.len() < 100 {
        let t = Instant::now();
        drop(make());
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    median(samples)
}

/// `pipe()` made and dropped, median µs.
pub fn pipe_create_cost(dur: Duration) -> f64 {
    create_cost(dur, || procshare::pipe().expect("pipe"))
}

/// `Queue::new()` made and dropped, median µs.
pub fn queue_create_cost(dur: Duration) -> f64 {
    create_cost(dur, || Queue::<u64>::new().expect("queue"))
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
pub fn lock_rate(dur: Duration) -> f64 {
    let lock = Lock::new().expect("lock");
    let shared = RawArray::<u64>::new(3).expect("array");
    let millis = dur.as_millis().max(1) as u64;
    let mut kids: Vec<Process> = (1..=2)
        .map(|me| {
            Process::spawn((lock.clone(), shared.clone(), me, millis), lock_worker).expect("spawn")
        })
        .collect();
    for k in &mut kids {
        let _ = k.join();
    }
    shared.get(0) as f64 / (millis as f64 / 1e3)
}

/// The same with a parking_lot Mutex between two threads.
pub fn parking_lot_rate(dur: Duration) -> f64 {
    let m = Arc::new(parking_lot::Mutex::new([0u64; 3]));
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
