//! SIGKILL a random producer or consumer of a Queue at a random moment, again and again, while
//! the others run; the queue must keep working, never return a torn item, and deliver every
//! committed item exactly once.

use procshare::{Connection, Event, Process, Queue};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

mod common;
use common::{Bytes, HANG};

#[derive(Serialize, Deserialize)]
enum Msg {
    Item { id: u32, seq: u32, data: Bytes },
    Stop,
}

#[derive(Serialize, Deserialize, Debug)]
enum Report {
    Got { consumer: u32, id: u32, seq: u32 },
    Torn { id: u32, seq: u32 },
    ProducerDone { id: u32, count: u32 },
}

/// Deterministic content: mostly small, some spanning several 256 KiB segments, so kills land
/// in the middle of long copies too.
fn payload(id: u32, seq: u32) -> Bytes {
    let len = match seq % 61 {
        0 => 600_000,
        1..=4 => 9_000,
        n => (n * 7) as usize,
    };
    let mut x = (id as u64) << 32 | seq as u64 | 1;
    Bytes(
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect(),
    )
}

fn producer((q, id, stop, report): (Queue<Msg>, u32, Queue<()>, Connection)) {
    let mut seq = 0u32;
    loop {
        q.put(Msg::Item { id, seq, data: payload(id, seq) }).unwrap();
        seq += 1;
        if seq % 16 == 0 && stop.get_nowait().is_ok() {
            report.send(&Report::ProducerDone { id, count: seq }).unwrap();
            return;
        }
    }
}

fn consumer((q, consumer, report): (Queue<Msg>, u32, Connection)) {
    loop {
        match q.get().unwrap() {
            Msg::Item { id, seq, data } => {
                if data != payload(id, seq) {
                    report.send(&Report::Torn { id, seq }).unwrap();
                }
                report.send(&Report::Got { consumer, id, seq }).unwrap();
            }
            Msg::Stop => return,
        }
    }
}

/// `p`'s exit code, or a failed test (instead of a hung suite) if it runs past [`HANG`].
fn finishes(p: &mut Process, what: &str) -> i32 {
    match p.join_timeout(HANG).unwrap() {
        Some(code) => code,
        None => {
            let _ = p.kill();
            let _ = p.join();
            panic!("{what} did not exit within {HANG:?}");
        }
    }
}

#[derive(Default)]
struct Log {
    got: Vec<(u32, u32, u32)>,
    torn: Vec<(u32, u32)>,
    done: HashMap<u32, u32>,
    max_gap: Duration,
}

#[test]
fn random_kills_never_tear_lose_or_duplicate() {
    // 500 kills in release builds; 200 in debug builds (every step there is ~20x slower).
    let iterations = if cfg!(debug_assertions) { 200 } else { 500 };
    let q: Queue<Msg> = Queue::bounded(256).unwrap();
    let stop: Queue<()> = Queue::new().unwrap();
    let (rx, tx) = procshare::pipe_simplex().unwrap();

    let log = Arc::new(Mutex::new(Log::default()));
    let gots = Arc::new(AtomicUsize::new(0));
    let killing = Arc::new(AtomicBool::new(true));
    let collector = {
        let (log, gots, killing) = (log.clone(), gots.clone(), killing.clone());
        std::thread::spawn(move || {
            let mut last = Instant::now();
            while let Ok(r) = rx.recv::<Report>() {
                let mut l = log.lock().unwrap();
                match r {
                    Report::Got { consumer, id, seq } => {
                        let now = Instant::now();
                        if killing.load(Ordering::Relaxed) {
                            l.max_gap = l.max_gap.max(now - last);
                        }
                        last = now;
                        l.got.push((consumer, id, seq));
                        gots.fetch_add(1, Ordering::Relaxed);
                    }
                    Report::Torn { id, seq } => l.torn.push((id, seq)),
                    Report::ProducerDone { id, count } => {
                        l.done.insert(id, count);
                    }
                }
            }
        })
    };

    let mut next_id = 0u32;
    let mut spawn = |producer_role: bool| -> (bool, u32, Process) {
        next_id += 1;
        let conn = tx.try_clone().unwrap();
        let p = if producer_role {
            Process::spawn((q.clone(), next_id, stop.clone(), conn), producer).unwrap()
        } else {
            Process::spawn((q.clone(), next_id, conn), consumer).unwrap()
        };
        (producer_role, next_id, p)
    };
    // Slots 0, 1: producers; 2, 3: consumers. Remember each producer's id.
    let mut procs: Vec<(bool, u32, Process)> = Vec::new();
    for i in 0..4 {
        procs.push(spawn(i < 2));
    }
    let mut killed_producers = HashSet::new();
    let mut consumer_kills = 0usize;
    let mut rng = rand::thread_rng();
    for _ in 0..iterations {
        let slot = rng.gen_range(0..4);
        let before = gots.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..3000)));
        let (is_producer, id, p) = &mut procs[slot];
        p.kill().unwrap();
        assert_eq!(p.join().unwrap(), -9);
        if *is_producer {
            killed_producers.insert(*id);
        } else {
            consumer_kills += 1;
        }
        let role = *is_producer;
        procs[slot] = spawn(role);
        // The queue keeps flowing (a generous bound, only so that a bug fails instead of
        // hanging the suite).
        let t = Instant::now();
        while gots.load(Ordering::Relaxed) < before + 5 {
            assert!(t.elapsed() < Duration::from_secs(30), "no progress after a kill");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    killing.store(false, Ordering::Relaxed);

    // Wind down: producers stop on a token each, then consumers on a Stop each.
    for _ in 0..2 {
        stop.put(()).unwrap();
    }
    let mut surviving = Vec::new();
    for (is_producer, id, p) in &mut procs {
        if *is_producer {
            assert_eq!(finishes(p, "a producer given its stop token"), 0);
            surviving.push(*id);
        }
    }
    for _ in 0..2 {
        q.put(Msg::Stop).unwrap();
    }
    for (is_producer, _, p) in &mut procs {
        if !*is_producer {
            assert_eq!(finishes(p, "a consumer given Stop"), 0);
        }
    }
    drop(tx);
    collector.join().unwrap();

    let log = log.lock().unwrap();
    assert!(log.torn.is_empty(), "torn items: {:?}", log.torn);
    let mut seen = HashSet::new();
    let mut per: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut last: HashMap<(u32, u32), u32> = HashMap::new();
    for &(c, id, seq) in &log.got {
        assert!(seen.insert((id, seq)), "({id}, {seq}) delivered twice");
        if let Some(&prev) = last.get(&(c, id)) {
            assert!(prev < seq, "consumer {c} got {id}/{seq} after {id}/{prev}");
        }
        last.insert((c, id), seq);
        per.entry(id).or_default().push(seq);
    }
    // Items missing below the highest one received from each producer (and, for producers
    // that finished, below their count): only those a killed consumer had taken.
    let mut missing = 0usize;
    for (&id, seqs) in &per {
        let upto = match log.done.get(&id) {
            Some(&count) => count,
            None => seqs.iter().max().map_or(0, |m| m + 1),
        };
        missing += upto as usize - seqs.len();
    }
    for id in &surviving {
        assert!(log.done.contains_key(id), "surviving producer {id} did not finish");
        if !per.contains_key(id) {
            missing += log.done[id] as usize;
        }
    }
    eprintln!(
        "{iterations} kills ({} producers, {consumer_kills} consumers); {} items delivered; \
         {missing} taken by killed consumers; longest gap between deliveries while killing: {:?}",
        killed_producers.len(),
        log.got.len(),
        log.max_gap
    );
    assert!(
        missing <= consumer_kills,
        "{missing} items lost, but only {consumer_kills} consumers were killed"
    );

    // The queue still works, and is empty.
    q.put(Msg::Stop).unwrap();
    assert!(matches!(q.get().unwrap(), Msg::Stop));
    assert!(q.empty());
}

/// In the child: the queue it puts on and the event it sets once its big put is under way.
static MID_PUT: OnceLock<(Queue<Item>, Event)> = OnceLock::new();

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Item {
    Text(String),
    Big(Stalling),
}

/// A 64 MiB item (serialized straight into the queue's memory) whose `Serialize`, in the child,
/// stops once its slot is reserved (the queue counts it), so the kill lands mid-put every time.
#[derive(Debug, PartialEq)]
struct Stalling(Vec<u8>);

impl Serialize for Stalling {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if let Some((q, under_way)) = MID_PUT.get() {
            if q.qsize() > 0 {
                under_way.set();
                // The parent kills us here; the sleep only bounds a broken test.
                std::thread::sleep(Duration::from_secs(120));
            }
        }
        serde_bytes::Bytes::new(&self.0).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Stalling {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Stalling(serde_bytes::ByteBuf::deserialize(d)?.into_vec()))
    }
}

fn big_putter((q, under_way): (Queue<Item>, Event)) {
    MID_PUT.set((q.clone(), under_way)).ok().unwrap();
    q.put(Item::Big(Stalling(vec![7; 64 << 20]))).unwrap();
}

/// Regression: the record of a producer killed mid-put was only skipped by a get that itself
/// waited `PENDING_CHECK` (20 ms) in one call, so a consumer polling with `get_nowait` (or
/// `get_timeout` below 20 ms) never got the committed items behind it.
#[test]
fn short_polls_skip_the_record_of_a_producer_killed_mid_put() {
    for timeout in [None, Some(Duration::from_millis(2))] {
        let q: Queue<Item> = Queue::new().unwrap();
        let under_way = Event::new().unwrap();
        let mut child = Process::spawn((q.clone(), under_way.clone()), big_putter).unwrap();
        let started = under_way.wait(Some(Duration::from_secs(30)));
        child.kill().unwrap();
        assert!(started.unwrap(), "the child never got mid-put");
        assert_eq!(child.join().unwrap(), -9);
        q.put(Item::Text("after".into())).unwrap();
        let start = Instant::now();
        let got = loop {
            let r = match timeout {
                None => q.get_nowait(),
                Some(t) => q.get_timeout(t),
            };
            match r {
                Ok(item) => break item,
                Err(procshare::Error::Empty) => {}
                Err(e) => panic!("get failed: {e}"),
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{timeout:?} polls never got past the dead producer's record"
            );
            std::thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(got, Item::Text("after".into()));
        assert!(q.empty());
    }
}
