//! `put_bytes`/`get_bytes` on the queues (issue 12, item 2) and `Format::Pickle` queues
//! (issue 14, item 2): the raw record payload, and pickles that the machine's `python3` reads
//! and writes — a Rust `Queue<T>` on a pickle queue writes what `pickle.loads` reads, and reads
//! Python's pickles data-only, bounded.

mod common;

use procshare::{codec, Error, Format, JoinableQueue, Process, Queue, SimpleQueue};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

fn unique(tag: &str) -> String {
    format!("pb{}{tag}", std::process::id())
}

/// Runs `python3 -c script` with `input` on stdin; its stdout, or `None` without python3.
fn python(script: &str, input: &[u8]) -> Option<Vec<u8>> {
    let mut cmd = common::python3("pickle", "the python3 part of this test")?;
    let mut child =
        cmd.arg("-c").arg(script).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3 failed");
    Some(out.stdout)
}

const LOADS: &str = "import pickle,sys; print(repr(pickle.loads(sys.stdin.buffer.read())))";

#[test]
fn native_bytes_are_the_items_encoding() {
    let q = Queue::<(u32, String)>::new().unwrap();
    let item = (7, "seven".to_string());
    q.put_bytes(&codec::encode(&item).unwrap()).unwrap();
    assert_eq!(q.get().unwrap(), item);
    q.put(item.clone()).unwrap();
    assert_eq!(q.get_bytes().unwrap(), codec::encode(&item).unwrap());
    // Bytes that are no T: the getter is told, the queue goes on.
    q.put_bytes(b"\xff\xff\xff\xff\xff\xff").unwrap();
    assert!(matches!(q.get(), Err(Error::Codec(_))));
    q.put(item.clone()).unwrap();
    assert_eq!(q.get().unwrap(), item);
    // Empty payloads are items too.
    let raw = Queue::<()>::new().unwrap();
    raw.put_bytes(b"").unwrap();
    assert_eq!(raw.qsize(), 1);
    raw.get().unwrap();
}

#[test]
fn bytes_variants_wait_and_give_up_like_put_and_get() {
    let q = Queue::<u8>::bounded(1).unwrap();
    assert!(matches!(q.get_bytes_nowait(), Err(Error::Empty)));
    assert!(matches!(q.get_bytes_timeout(Duration::from_millis(10)), Err(Error::Empty)));
    q.put_bytes_nowait(b"\x01").unwrap();
    assert!(matches!(q.put_bytes_nowait(b"\x02"), Err(Error::Full)));
    assert!(matches!(q.put_bytes_timeout(b"\x02", Duration::from_millis(10)), Err(Error::Full)));
    assert_eq!(q.get_bytes_timeout(Duration::from_secs(5)).unwrap(), b"\x01");
    q.close();
    assert!(matches!(q.put_bytes(b"\x03"), Err(Error::Closed)));

    let s = SimpleQueue::<u8>::new().unwrap();
    s.put_bytes(b"\x04").unwrap();
    s.put_bytes_nowait(b"\x05").unwrap();
    s.put_bytes_timeout(b"\x06", Duration::from_secs(1)).unwrap();
    assert_eq!(s.get_bytes().unwrap(), b"\x04");
    assert_eq!(s.get_bytes_nowait().unwrap(), b"\x05");
    assert_eq!(s.get_bytes_timeout(Duration::from_secs(1)).unwrap(), b"\x06");
    s.close();
    assert!(matches!(s.get_bytes(), Err(Error::Closed)));

    let j = JoinableQueue::<u8>::new().unwrap();
    j.put_bytes(b"\x07").unwrap();
    assert_eq!(j.unfinished_tasks(), 1);
    assert_eq!(j.get_bytes().unwrap(), b"\x07");
    j.task_done().unwrap();
}

#[test]
fn large_payloads_arrive_whole() {
    // Over the in-lock copy size, over the in-place size, and over the size at which the
    // getter's copy buffer is given back.
    let q = Queue::<Vec<u8>>::new().unwrap();
    for len in [3000usize, 200 << 10, 9 << 20] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        q.put_bytes(&data).unwrap();
        let got = q.get_bytes().unwrap();
        assert_eq!(got.len(), len);
        assert!(got == data, "{len} bytes garbled");
    }
}

fn child_gets_bytes(q: Queue<String>) {
    let b = q.get_bytes().unwrap();
    q.put_bytes(&b).unwrap();
    q.put_bytes(b"").unwrap();
}

#[test]
fn bytes_cross_processes() {
    let q = Queue::<String>::new().unwrap();
    q.put("through a child".into()).unwrap();
    let mut p = Process::spawn(q.clone(), child_gets_bytes).unwrap();
    assert_eq!(p.join_timeout(Duration::from_secs(30)).unwrap(), Some(0));
    assert_eq!(q.get().unwrap(), "through a child");
    assert_eq!(q.get_bytes().unwrap(), b"");
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Job {
    id: i64,
    name: String,
    weights: Vec<f64>,
    done: bool,
    parent: Option<i64>,
}

#[test]
fn a_pickle_queue_writes_what_python_reads() {
    let q = Queue::<Job>::create_named(&unique("py1"), 0, Format::Pickle).unwrap();
    assert_eq!(q.format(), Format::Pickle);
    let job =
        Job { id: -3, name: "naïve".into(), weights: vec![0.5, 2.0], done: true, parent: None };
    q.put(job.clone()).unwrap();
    let bytes = q.get_bytes().unwrap();
    assert!(bytes.first() == Some(&0x80), "a binary pickle");
    let Some(out) = python(LOADS, &bytes) else { return };
    assert_eq!(
        String::from_utf8(out).unwrap().trim(),
        "{'id': -3, 'name': 'naïve', 'weights': [0.5, 2.0], 'done': True, 'parent': None}"
    );
    // A tuple and a map, as Python sees them.
    let q2 = Queue::<(i32, String, BTreeMap<String, u8>)>::create_named(
        &unique("py2"),
        0,
        Format::Pickle,
    )
    .unwrap();
    q2.put((1, "a".into(), BTreeMap::from([("k".to_string(), 9)]))).unwrap();
    let out = python(LOADS, &q2.get_bytes().unwrap()).unwrap();
    assert_eq!(String::from_utf8(out).unwrap().trim(), "(1, 'a', {'k': 9})");
    // Opened by name, the format is the queue's.
    assert_eq!(Queue::<Job>::open(q.name().unwrap()).unwrap().format(), Format::Pickle);
}

#[test]
fn a_pickle_queue_reads_what_python_writes() {
    let q = Queue::<Job>::create_named(&unique("py3"), 0, Format::Pickle).unwrap();
    let script = "import pickle,sys; sys.stdout.buffer.write(pickle.dumps({'id': 12, \
                  'name': 'from python', 'weights': [1.5], 'done': False, 'parent': 4}, \
                  protocol=int(sys.argv[1])))";
    for protocol in ["2", "4", "5"] {
        let Some(mut cmd) = common::python3("pickle", "the python3 part of this test") else {
            return;
        };
        let out = cmd.arg("-c").arg(script).arg(protocol).output().unwrap();
        assert!(out.status.success());
        q.put_bytes(&out.stdout).unwrap();
        assert_eq!(
            q.get().unwrap(),
            Job {
                id: 12,
                name: "from python".into(),
                weights: vec![1.5],
                done: false,
                parent: Some(4)
            },
            "protocol {protocol}"
        );
    }
    // Python's bytes arrive as bytes.
    let qb = Queue::<(serde_bytes::ByteBuf, i64)>::create_named(&unique("py4"), 0, Format::Pickle)
        .unwrap();
    let out = python(
        "import pickle,sys; sys.stdout.buffer.write(pickle.dumps((b'\\x00raw', 2**40), protocol=5))",
        b"",
    )
    .unwrap();
    qb.put_bytes(&out).unwrap();
    let (b, n) = qb.get().unwrap();
    assert_eq!((b.as_slice(), n), (&b"\x00raw"[..], 1 << 40));
}

#[test]
fn a_hostile_pickle_is_an_error_never_code() {
    let q = Queue::<String>::create_named(&unique("evil"), 0, Format::Pickle).unwrap();
    let marker = std::env::temp_dir().join(unique("pwned"));
    // What `pickle.dumps` of an object with a malicious __reduce__ gives: os.system(...).
    let evil = format!("cos\nsystem\n(S'touch {}'\ntR.", marker.display());
    q.put_bytes(evil.as_bytes()).unwrap();
    assert!(matches!(q.get(), Err(Error::Codec(_))));
    assert!(!marker.exists(), "the pickle ran code");
    // A pickle that claims a huge string is refused before anything that size is allocated.
    let mut huge = b"\x80\x05\x8e".to_vec();
    huge.extend_from_slice(&(1u64 << 40).to_le_bytes());
    huge.extend_from_slice(b"abc");
    q.put_bytes(&huge).unwrap();
    assert!(matches!(q.get(), Err(Error::Codec(_))));
    // The queue goes on.
    q.put("fine".into()).unwrap();
    assert_eq!(q.get().unwrap(), "fine");
}
