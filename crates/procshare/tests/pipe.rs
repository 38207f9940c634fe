//! `Connection`, `pipe`, `pipe_simplex`, `wait`: within one process and across real processes.

use procshare::{pipe, pipe_simplex, wait, Connection, Error, Process};
use std::collections::HashSet;
use std::time::Duration;

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn connection_is_send_and_sync() {
    assert_send_sync::<Connection>();
}

#[test]
fn duplex_both_ways_in_order() {
    let (a, b) = pipe().unwrap();
    assert!(a.readable() && a.writable() && b.readable() && b.writable());
    for i in 0..1000u32 {
        a.send(&i).unwrap();
    }
    for i in 0..1000u32 {
        assert_eq!(b.recv::<u32>().unwrap(), i);
    }
    b.send(&"back").unwrap();
    assert_eq!(a.recv::<String>().unwrap(), "back");
}

#[test]
fn simplex_directions_are_enforced() {
    let (r, w) = pipe_simplex().unwrap();
    assert!(r.readable() && !r.writable());
    assert!(!w.readable() && w.writable());
    let e = r.send(&1u8).unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");
    assert!(r.send_bytes(b"x").is_err());
    let e = w.recv::<u8>().unwrap_err();
    assert!(e.to_string().contains("write-only"), "{e}");
    assert!(w.recv_bytes().is_err());
    assert!(w.poll(Some(Duration::ZERO)).is_err());
    w.send(&7u8).unwrap();
    assert_eq!(r.recv::<u8>().unwrap(), 7);
    drop(w);
    assert!(matches!(r.recv::<u8>(), Err(Error::Eof)));
}

#[test]
fn messages_are_never_merged_and_empty_ones_count() {
    let (a, b) = pipe().unwrap();
    for m in [&b"a"[..], b"b", b"", b"cd", b""] {
        a.send_bytes(m).unwrap();
    }
    for m in [&b"a"[..], b"b", b"", b"cd", b""] {
        assert!(b.poll(Some(Duration::ZERO)).unwrap());
        assert_eq!(b.recv_bytes().unwrap(), m);
    }
    assert!(!b.poll(Some(Duration::ZERO)).unwrap());
    // An empty serde value is a message too.
    a.send(&()).unwrap();
    b.recv::<()>().unwrap();
}

#[test]
fn eof_after_peer_closes_keeps_earlier_messages() {
    let (a, b) = pipe().unwrap();
    a.send(&1u8).unwrap();
    a.send(&2u8).unwrap();
    a.close().unwrap();
    assert!(b.poll(Some(Duration::ZERO)).unwrap());
    assert_eq!(b.recv::<u8>().unwrap(), 1);
    assert_eq!(b.recv::<u8>().unwrap(), 2);
    // EOF counts as ready, and stays EOF.
    assert!(b.poll(None).unwrap());
    assert!(matches!(b.recv::<u8>(), Err(Error::Eof)));
    assert!(matches!(b.recv_bytes(), Err(Error::Eof)));
}

#[test]
fn send_to_gone_peer_is_an_error_not_sigpipe() {
    let (a, b) = pipe().unwrap();
    drop(b);
    let e = a.send(&1u8).unwrap_err();
    match e {
        Error::Io(io) => assert_eq!(io.kind(), std::io::ErrorKind::BrokenPipe),
        other => panic!("unexpected {other}"),
    }
    assert!(a.send_bytes(&vec![0u8; 1 << 20]).is_err());
}

#[test]
fn garbage_is_a_codec_error() {
    let (a, b) = pipe().unwrap();
    a.send_bytes(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).unwrap();
    assert!(matches!(b.recv::<String>(), Err(Error::Codec(_))));
    a.send(&(1u8, 2u8)).unwrap();
    assert!(matches!(b.recv::<(u8, u8, u64)>(), Err(Error::Codec(_))));
    a.send(&"ok").unwrap();
    assert_eq!(b.recv::<String>().unwrap(), "ok");
}

#[test]
fn recv_bytes_max_leaves_the_message_readable() {
    let (a, b) = pipe().unwrap();
    let big = vec![5u8; 100];
    a.send_bytes(&big).unwrap();
    match b.recv_bytes_max(10) {
        Err(Error::MessageTooLarge { size, limit }) => assert_eq!((size, limit), (100, 10)),
        other => panic!("unexpected {other:?}"),
    }
    assert!(b.poll(Some(Duration::ZERO)).unwrap());
    assert_eq!(b.recv_bytes_max(100).unwrap(), big);
    // Out of band too.
    let huge = vec![6u8; 1 << 20];
    a.send_bytes(&huge).unwrap();
    assert!(matches!(b.recv_bytes_max(1 << 19), Err(Error::MessageTooLarge { .. })));
    assert_eq!(b.recv_bytes().unwrap(), huge);
}

#[test]
fn recv_bytes_into_hands_back_the_whole_message() {
    let (a, b) = pipe().unwrap();
    let long: Vec<u8> = (0..110u8).collect();
    a.send_bytes(&long).unwrap();
    let mut small = [0u8; 40];
    match b.recv_bytes_into(&mut small) {
        Err(Error::BufferTooShort(m)) => assert_eq!(m, long),
        other => panic!("unexpected {other:?}"),
    }
    a.send_bytes(&[1, 2, 3, 4]).unwrap();
    let mut buf = [0u8; 10];
    assert_eq!(b.recv_bytes_into(&mut buf).unwrap(), 4);
    assert_eq!(buf, [1, 2, 3, 4, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn max_message_size_is_checked_before_sending() {
    let (a, b) = pipe().unwrap();
    assert!(a.max_message_size() >= 1 << 30);
    a.set_max_message_size(1000);
    assert!(matches!(
        a.send_bytes(&[0u8; 1001]),
        Err(Error::MessageTooLarge { size: 1001, limit: 1000 })
    ));
    assert!(matches!(a.send(&vec![0u8; 2000]), Err(Error::MessageTooLarge { .. })));
    a.send_bytes(&[0u8; 1000]).unwrap();
    // The receiver's own limit refuses without losing the message.
    b.set_max_message_size(10);
    assert!(matches!(b.recv_bytes(), Err(Error::MessageTooLarge { size: 1000, limit: 10 })));
    b.set_max_message_size(1 << 30);
    assert_eq!(b.recv_bytes().unwrap().len(), 1000);
    // try_clone keeps the limit.
    assert_eq!(a.try_clone().unwrap().max_message_size(), 1000);
}

#[test]
fn poll_timeouts() {
    let (a, b) = pipe().unwrap();
    assert!(!b.poll(Some(Duration::ZERO)).unwrap());
    assert!(!b.poll(Some(Duration::from_millis(20))).unwrap());
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        a.send(&1u8).unwrap();
        a
    });
    assert!(b.poll(None).unwrap());
    assert!(b.poll(Some(Duration::from_millis(1))).unwrap());
    assert_eq!(b.recv::<u8>().unwrap(), 1);
    drop(t.join().unwrap());
    assert!(b.poll(Some(Duration::ZERO)).unwrap());
}

#[test]
fn wait_on_ten_connections() {
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..10 {
        let (r, w) = pipe_simplex().unwrap();
        readers.push(r);
        writers.push(w);
    }
    let refs: Vec<&Connection> = readers.iter().collect();
    assert!(wait(&refs, Some(Duration::ZERO)).unwrap().is_empty());
    assert!(wait(&refs, Some(Duration::from_millis(20))).unwrap().is_empty());
    writers[3].send(&3u8).unwrap();
    writers[7].send(&7u8).unwrap();
    assert_eq!(wait(&refs, None).unwrap(), vec![3, 7]);
    assert_eq!(readers[3].recv::<u8>().unwrap(), 3);
    assert_eq!(wait(&refs, Some(Duration::from_secs(5))).unwrap(), vec![7]);
    // A closed peer counts as ready.
    writers.remove(0);
    let ready = wait(&refs, Some(Duration::from_secs(5))).unwrap();
    assert_eq!(ready, vec![0, 7]);
    // A child process sending wakes a blocked wait.
    let w9 = writers.pop().unwrap();
    let mut p = Process::spawn(w9, |w: Connection| {
        std::thread::sleep(Duration::from_millis(30));
        w.send(&9u8).unwrap();
    })
    .unwrap();
    assert_eq!(readers[7].recv::<u8>().unwrap(), 7);
    let ready = wait(&refs[1..], None).unwrap();
    assert_eq!(ready, vec![8]);
    p.join().unwrap();
    let (_r, w) = pipe_simplex().unwrap();
    assert!(wait(&[&w], Some(Duration::ZERO)).is_err());
}

mod common;
use common::pattern;

#[test]
fn sizes_round_trip_across_processes() {
    let sizes = [0usize, 1, 1024, 64 * 1024, 1 << 20, (1 << 20) + 1, 16 << 20, 200 << 20];
    let (parent, child) = pipe().unwrap();
    let mut p = Process::spawn(child, |c: Connection| {
        // Echo every message back.
        while let Ok(m) = c.recv_bytes() {
            c.send_bytes(&m).unwrap();
        }
    })
    .unwrap();
    for (i, &n) in sizes.iter().enumerate() {
        let m = pattern(n, i as u8);
        parent.send_bytes(&m).unwrap();
        let back = parent.recv_bytes().unwrap();
        assert_eq!(back.len(), n);
        assert!(back == m, "message of {n} bytes came back changed");
    }
    // Objects too, above and below the inline limit.
    let (pp, cc) = pipe().unwrap();
    let mut q = Process::spawn(cc, |c: Connection| {
        while let Ok(v) = c.recv::<Vec<u64>>() {
            c.send(&v.iter().sum::<u64>()).unwrap();
        }
    })
    .unwrap();
    for n in [0usize, 10, 100_000, 1 << 20, 4 << 20] {
        let v: Vec<u64> = (0..n as u64).collect();
        pp.send(&v).unwrap();
        assert_eq!(pp.recv::<u64>().unwrap(), v.iter().sum::<u64>());
    }
    drop((parent, pp));
    assert_eq!(p.join().unwrap(), 0);
    assert_eq!(q.join().unwrap(), 0);
}

#[test]
fn four_writers_four_readers_each_message_once() {
    const PER_WRITER: u32 = 2000;
    let (rx, tx) = pipe_simplex().unwrap();
    let (results_rx, results_tx) = pipe_simplex().unwrap();
    let mut procs = Vec::new();
    for w in 0..4u32 {
        procs.push(
            Process::spawn((tx.try_clone().unwrap(), w), |(tx, w): (Connection, u32)| {
                for i in 0..PER_WRITER {
                    // Mix small and out-of-band messages.
                    let pad = if i % 200 == 0 { 1_100_000 } else { (i % 50) as usize };
                    tx.send(&(w, i, vec![w as u8; pad])).unwrap();
                }
            })
            .unwrap(),
        );
    }
    for _ in 0..4 {
        procs.push(
            Process::spawn(
                (rx.try_clone().unwrap(), results_tx.try_clone().unwrap()),
                |(rx, out): (Connection, Connection)| {
                    let mut got = Vec::new();
                    while let Ok((w, i, pad)) = rx.recv::<(u32, u32, Vec<u8>)>() {
                        assert!(pad.iter().all(|&b| b == w as u8));
                        got.push((w, i));
                    }
                    out.send(&got).unwrap();
                },
            )
            .unwrap(),
        );
    }
    drop((tx, rx, results_tx));
    let mut seen = HashSet::new();
    let mut total = 0;
    for _ in 0..4 {
        let got: Vec<(u32, u32)> = results_rx.recv().unwrap();
        // Within one reader, each writer's messages keep their order.
        for w in 0..4 {
            let mine: Vec<u32> = got.iter().filter(|m| m.0 == w).map(|m| m.1).collect();
            assert!(mine.windows(2).all(|p| p[0] < p[1]));
        }
        total += got.len();
        seen.extend(got);
    }
    assert_eq!(total, 4 * PER_WRITER as usize);
    assert_eq!(seen.len(), total, "a message arrived twice");
    for mut p in procs {
        assert_eq!(p.join().unwrap(), 0);
    }
}

#[test]
fn writer_killed_mid_stream_leaves_only_whole_messages() {
    const SIZE: usize = 50 << 20;
    let (rx, tx) = pipe_simplex().unwrap();
    let mut writer = Process::spawn(tx, |tx: Connection| {
        let mut i = 0u8;
        loop {
            let mut m = vec![i; SIZE];
            m[0] = i;
            tx.send_bytes(&m).unwrap();
            i = i.wrapping_add(1);
        }
    })
    .unwrap();
    let mut received = 0;
    while received < 2 {
        let m = rx.recv_bytes().unwrap();
        assert_eq!(m.len(), SIZE);
        assert!(m.iter().all(|&b| b == m[0]));
        received += 1;
    }
    writer.kill().unwrap();
    assert_eq!(writer.join().unwrap(), -9);
    loop {
        match rx.recv_bytes() {
            Ok(m) => {
                assert_eq!(m.len(), SIZE, "a partial message after the writer died");
                assert!(m.iter().all(|&b| b == m[0]), "a torn message after the writer died");
            }
            Err(Error::Eof) => break,
            Err(e) => panic!("unexpected {e}"),
        }
    }
}

#[test]
fn threads_share_one_end() {
    let (a, b) = pipe().unwrap();
    let b = std::sync::Arc::new(b);
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || {
                let mut n = Vec::new();
                while let Ok(x) = b.recv::<u32>() {
                    if x == u32::MAX {
                        break;
                    }
                    n.push(x);
                }
                n
            })
        })
        .collect();
    for i in 0..10_000u32 {
        a.send(&i).unwrap();
    }
    for _ in 0..4 {
        a.send(&u32::MAX).unwrap();
    }
    let mut all: Vec<u32> = readers.into_iter().flat_map(|t| t.join().unwrap()).collect();
    all.sort_unstable();
    assert_eq!(all, (0..10_000).collect::<Vec<_>>());
}

/// End-of-file and broken pipe between handles in this process, with and without a poll
/// before (a poll reads the liveness socket's doorbell bytes too), and with clones.
#[test]
fn eof_and_broken_pipe_with_clones_and_polls() {
    // (A bound, not ZERO: a child that another test is starting holds our sockets until it
    // runs its exec, and the peer's HUP waits for that.)
    let soon = Some(common::HANG);
    for polled_first in [false, true] {
        let (a, b) = pipe().unwrap();
        let a2 = a.try_clone().unwrap();
        a.send(&1u8).unwrap();
        if polled_first {
            assert!(b.poll(Some(Duration::ZERO)).unwrap());
        }
        assert_eq!(b.recv::<u8>().unwrap(), 1);
        drop(a);
        a2.send(&2u8).unwrap();
        assert_eq!(b.recv::<u8>().unwrap(), 2);
        drop(a2);
        assert!(b.poll(soon).unwrap(), "the peer's end is closed: EOF is ready");
        assert!(matches!(b.recv::<u8>(), Err(Error::Eof)));
        let e = b.send(&3u8).unwrap_err();
        assert!(matches!(e, Error::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe));
    }
    // The peer end dropped before anything was sent or polled.
    let (a, b) = pipe().unwrap();
    drop(b);
    assert!(a.poll(soon).unwrap());
    assert!(matches!(a.recv::<u8>(), Err(Error::Eof)));
}
