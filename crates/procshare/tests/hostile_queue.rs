//! Hostile and misbehaving peers of a Queue (and of the other objects in shared regions), as
//! real processes: one that tries to resize the shared memory under the others, one that
//! scribbles on items while they are taken, a producer whose `Serialize` panics mid-put, and
//! one stopped (SIGSTOP) mid-put.

use procshare::{Error, Event, Lock, Process, Queue, Value};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// This process's procshare shared regions (queues, locks, values): its memfds named
/// "procshare", as `(path to reopen, size)`.
fn region_memfds() -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let path = entry.unwrap().path();
        let Ok(target) = std::fs::read_link(&path) else { continue };
        if target.to_str() == Some("/memfd:procshare (deleted)") {
            let size = std::fs::metadata(&path).unwrap().len();
            out.push((path, size));
        }
    }
    out
}

/// Kills process `pid` if the test fails while it runs (a stopped or endless child would
/// otherwise outlive the test).
struct KillIfPanicking(u32);

impl Drop for KillIfPanicking {
    fn drop(&mut self) {
        if std::thread::panicking() {
            signal("-KILL", self.0);
        }
    }
}

fn reopen(path: &PathBuf) -> File {
    OpenOptions::new().read(true).write(true).open(path).unwrap()
}

#[test]
fn a_child_cannot_resize_a_queue_lock_or_value_under_the_others() {
    let q: Queue<String> = Queue::new().unwrap();
    let lock = Lock::new().unwrap();
    let value: Value<u64> = Value::new(41).unwrap();
    q.put("still here".to_string()).unwrap();
    let mut child = Process::spawn((q.clone(), lock.clone(), value.clone()), |(q, l, v)| {
        let fds = region_memfds();
        assert!(fds.len() >= 3, "found only {} region memfds", fds.len());
        let mut resized = Vec::new();
        for (path, size) in &fds {
            let f = reopen(path);
            for len in [0, size / 2, size + 4096] {
                match f.set_len(len) {
                    // EPERM: the seals refuse it.
                    Err(e) if e.raw_os_error() == Some(EPERM) => {}
                    other => {
                        // Put the size back so the parent fails by assertion, not by SIGBUS.
                        let _ = f.set_len(*size);
                        resized.push(format!("{path:?} to {len}: {other:?}"));
                    }
                }
            }
        }
        assert!(resized.is_empty(), "resized: {resized:?}");
        // The handles still work in the attacker too.
        drop(l.lock().unwrap());
        assert_eq!(v.get(), 41);
        assert_eq!(q.qsize(), 1);
    })
    .unwrap();
    assert_eq!(child.join().unwrap(), 0);
    assert_eq!(q.get_timeout(Duration::from_secs(5)).unwrap(), "still here");
    drop(lock.lock().unwrap());
    value.set(42);
    assert_eq!(value.get(), 42);
}

/// errno EPERM (the tests do without a libc dependency).
const EPERM: i32 = 1;

/// String items whose ring records fill exactly one 256 KiB segment (32-byte header, 3-byte
/// length prefix, text), so each starts at a segment's first byte; the consumer spends tens of
/// microseconds checking the text before it copies it, a wide window for the attacker.
const SEG: u64 = 256 << 10;
const TEXT_LEN: usize = SEG as usize - 32 - 3;
/// File offset of the ring's segment 0 (`queue/ring.rs`: region header, queue header page, link
/// table of 2^18 u32).
const SEG0: u64 = 4096 + (1 << 20);

fn flipper((q, stop): (Queue<String>, Event)) {
    // The queue's memfd is the largest region we hold (64 GiB sparse).
    let (path, _) = region_memfds().into_iter().max_by_key(|&(_, size)| size).unwrap();
    let f = reopen(&path);
    let _keep = q;
    let mut round = 0u64;
    while !stop.is_set() {
        // Early text bytes (checked first, copied first: the longest check-to-copy gap) of the
        // records in the segments the ring cycles through; never a record header.
        let bytes = if round % 2 == 0 { [b'a'; 8] } else { [0xff; 8] };
        for seg in 0..3 {
            f.write_all_at(&bytes, SEG0 + seg * SEG + 40).unwrap();
        }
        round += 1;
    }
}

#[test]
fn a_peer_flipping_string_bytes_never_yields_a_string_that_is_not_utf8() {
    let q: Queue<String> = Queue::new().unwrap();
    let stop = Event::new().unwrap();
    let mut child = Process::spawn((q.clone(), stop.clone()), flipper).unwrap();
    let _cleanup = KillIfPanicking(child.pid());
    let text = "a".repeat(TEXT_LEN);
    let (mut valid, mut refused, mut not_utf8) = (0u32, 0u32, 0u32);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) || valid + refused == 0 {
        q.put(text.clone()).unwrap();
        match q.get_timeout(Duration::from_secs(10)) {
            Ok(s) if std::str::from_utf8(s.as_bytes()).is_ok() => valid += 1,
            Ok(_) => not_utf8 += 1,
            Err(Error::Codec(_)) => refused += 1,
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    stop.set();
    assert_eq!(child.join().unwrap(), 0);
    eprintln!("{valid} valid, {refused} refused as invalid UTF-8, {not_utf8} not UTF-8");
    assert_eq!(not_utf8, 0, "got Strings that are not UTF-8 ({valid} valid, {refused} refused)");
}

/// What a `Tricky` item does once it is mid-put (its slot reserved: the queue counts it).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Trick {
    None = 0,
    Panic = 1,
    StopSelf = 2,
}

/// The queue a child puts `Tricky` items on (so their `Serialize` can tell it is mid-put).
static WATCHED: OnceLock<Queue<Tricky>> = OnceLock::new();

/// A large item (serialized straight into the queue's memory) that misbehaves in its
/// `Serialize` once its slot is reserved.
#[derive(Debug, PartialEq)]
struct Tricky {
    trick: Trick,
    data: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Wire(u8, #[serde(with = "serde_bytes")] Vec<u8>);

impl Serialize for Tricky {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if WATCHED.get().is_some_and(|q| q.qsize() > 0) {
            match self.trick {
                Trick::None => {}
                Trick::Panic => panic!("this Serialize panics once its slot is reserved"),
                Trick::StopSelf => {
                    // SIGSTOP ourselves; we go on here once the parent sends SIGCONT.
                    let pid = std::process::id().to_string();
                    let st = std::process::Command::new("kill").args(["-STOP", &pid]).status();
                    assert!(st.unwrap().success());
                }
            }
        }
        (self.trick as u8, serde_bytes::Bytes::new(&self.data)).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Tricky {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Wire(t, data) = Wire::deserialize(d)?;
        let trick = match t {
            0 => Trick::None,
            1 => Trick::Panic,
            _ => Trick::StopSelf,
        };
        Ok(Tricky { trick, data })
    }
}

fn big(trick: Trick) -> Tricky {
    Tricky { trick, data: (0..600_000u32).map(|i| (i % 251) as u8).collect() }
}

fn small(tag: u8) -> Tricky {
    Tricky { trick: Trick::None, data: vec![tag; 3] }
}

fn panicking_producer((q, done): (Queue<Tricky>, Event)) {
    WATCHED.set(q.clone()).ok().unwrap();
    let q2 = q.clone();
    // The panic kills this thread only: the process (the record's owner) lives on.
    let r = std::thread::spawn(move || q2.put(big(Trick::Panic))).join();
    assert!(r.is_err(), "the put should have panicked");
    q.put(small(1)).unwrap();
    // Stay alive while the parent takes the item behind the abandoned one.
    assert!(done.wait(Some(Duration::from_secs(30))).unwrap());
}

#[test]
fn a_put_that_panicked_in_a_live_process_does_not_block_consumers() {
    let q: Queue<Tricky> = Queue::new().unwrap();
    let done = Event::new().unwrap();
    let mut child = Process::spawn((q.clone(), done.clone()), panicking_producer).unwrap();
    let got = q.get_timeout(Duration::from_secs(10));
    done.set();
    assert_eq!(got.unwrap(), small(1));
    assert_eq!(child.join().unwrap(), 0);
    assert_eq!(q.qsize(), 0);
}

/// Waits (bounded) until process `pid` is stopped.
fn wait_stopped(pid: u32) {
    let start = Instant::now();
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let state = stat[stat.rfind(')').unwrap() + 1..].split_whitespace().next().unwrap();
        if state == "T" {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "child never stopped ({state})");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal(sig: &str, pid: u32) {
    let st = std::process::Command::new("kill").args([sig, &pid.to_string()]).status();
    assert!(st.unwrap().success());
}

fn stopping_producer(q: Queue<Tricky>) {
    WATCHED.set(q.clone()).ok().unwrap();
    q.put(big(Trick::StopSelf)).unwrap();
}

/// The documented choice: a producer stopped mid-put is a live producer; consumers wait for its
/// item (FIFO), `get_timeout` gives `Err(Empty)` meanwhile, and nothing is lost or reordered.
/// Once it resumes its item comes out first; if it is killed instead, its item is skipped.
#[test]
fn a_stopped_producer_holds_its_item_until_it_resumes_or_dies() {
    for kill_it in [false, true] {
        let q: Queue<Tricky> = Queue::new().unwrap();
        let mut child = Process::spawn(q.clone(), stopping_producer).unwrap();
        let _cleanup = KillIfPanicking(child.pid());
        wait_stopped(child.pid());
        q.put(small(2)).unwrap();
        assert_eq!(q.qsize(), 2);
        assert!(matches!(q.get_timeout(Duration::from_millis(300)), Err(Error::Empty)));
        if kill_it {
            child.kill().unwrap();
            assert_eq!(child.join().unwrap(), -9);
        } else {
            signal("-CONT", child.pid());
            assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap(), big(Trick::StopSelf));
            assert_eq!(child.join().unwrap(), 0);
        }
        assert_eq!(q.get_timeout(Duration::from_secs(10)).unwrap(), small(2));
        assert_eq!(q.qsize(), 0);
    }
}
