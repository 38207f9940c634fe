//! Pipes on shared-memory rings (`pipe/ring.rs`), as real processes: liveness through the
//! kernel socket (SIGKILL included), the poll(2) doorbell across processes and next to stream
//! connections, a refused message readable in another process, the writer's memory bound, and a
//! hostile peer that scribbles on the rings.

use procshare::{connect, pipe, pipe_simplex, wait, Address, Connection, Error, Listener, Process};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::{localhost, port, within, HANG};

fn sleeper((c, ready): (Connection, Connection)) {
    ready.send(&"ready").unwrap();
    std::thread::sleep(Duration::from_secs(600));
    drop(c);
}

#[test]
fn a_sigkilled_peer_gives_eof_to_a_blocked_recv_and_broken_pipe_to_a_sender() {
    let (a, b) = pipe().unwrap();
    let (ready_r, ready_w) = pipe_simplex().unwrap();
    let mut child = Process::spawn((b, ready_w), sleeper).unwrap();
    assert!(ready_r.poll(Some(HANG)).unwrap());
    assert_eq!(ready_r.recv::<String>().unwrap(), "ready");
    a.send(&1u8).unwrap();
    let a = Arc::new(a);
    let blocked = {
        let a = a.clone();
        std::thread::spawn(move || a.recv::<u8>())
    };
    // Let the receive go to sleep on the futex (if it has not yet, it finds the peer gone).
    std::thread::sleep(Duration::from_millis(50));
    child.kill().unwrap();
    assert_eq!(child.join().unwrap(), -libc::SIGKILL);
    let r = within("recv blocked when the peer was killed", move || blocked.join().unwrap());
    assert!(matches!(r, Err(Error::Eof)), "{r:?}");
    // The sender learns it within its liveness look; each send before that is accepted.
    let a2 = a.clone();
    let e = within("send to a killed peer", move || loop {
        if let Err(e) = a2.send_bytes(&[0u8; 64]) {
            return e;
        }
    });
    match e {
        Error::Io(io) => assert_eq!(io.kind(), std::io::ErrorKind::BrokenPipe),
        other => panic!("unexpected {other}"),
    }
    // And stays so; the receive side stays at end-of-file.
    assert!(a.send(&1u8).is_err());
    assert!(matches!(a.recv::<u8>(), Err(Error::Eof)));
    assert!(a.poll(Some(Duration::ZERO)).unwrap());
}

fn late_sender((pipe_w, port): (Connection, u16)) {
    let stream = connect(&Address::Tcp(([127, 0, 0, 1], port).into()), None).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    pipe_w.send(&"pipe").unwrap();
    // Wait for the parent's go before using the stream, so the order is known.
    assert_eq!(stream.recv::<String>().unwrap(), "go");
    stream.send(&"stream").unwrap();
    assert_eq!(stream.recv::<String>().unwrap(), "bye");
}

#[test]
fn wait_sleeping_in_poll_is_woken_by_a_pipe_writer_in_another_process_and_by_a_stream() {
    let listener = Listener::bind(localhost(), None).unwrap();
    let (r1, w1) = pipe_simplex().unwrap();
    let (idle_a, idle_b) = pipe().unwrap();
    let mut child = Process::spawn((w1, port(&listener.address())), late_sender).unwrap();
    let stream = listener.accept().unwrap();
    let conns = [&idle_a, &r1, &stream];
    // Nothing yet; then only the pipe (its writer rings the doorbell for this poll(2)).
    assert!(wait(&conns, Some(Duration::ZERO)).unwrap().is_empty());
    assert_eq!(wait(&conns, Some(HANG)).unwrap(), vec![1]);
    assert_eq!(r1.recv::<String>().unwrap(), "pipe");
    stream.send(&"go").unwrap();
    assert_eq!(wait(&conns, Some(HANG)).unwrap(), vec![2]);
    assert_eq!(stream.recv::<String>().unwrap(), "stream");
    stream.send(&"bye").unwrap();
    // The child exits: its pipe end closes, which is ready (end-of-file).
    assert_eq!(child.join().unwrap(), 0);
    let ready = wait(&conns, Some(HANG)).unwrap();
    assert!(ready.contains(&1), "{ready:?}");
    assert!(matches!(r1.recv::<String>(), Err(Error::Eof)));
    drop(idle_b);
    assert!(wait(&[&idle_a], Some(HANG)).unwrap() == vec![0]);
}

#[test]
fn many_pollers_in_threads_all_see_every_message_taken_once() {
    let (r, w) = pipe_simplex().unwrap();
    let r = Arc::new(r);
    let got = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (r, got) = (r.clone(), got.clone());
            std::thread::spawn(move || loop {
                // poll, then a receive that may find another thread took it: ask again.
                assert!(r.poll(Some(HANG)).unwrap(), "a poller slept past a message");
                match r.recv::<u32>() {
                    Ok(u32::MAX) | Err(Error::Eof) => return,
                    Ok(_) => {
                        got.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => panic!("{e}"),
                }
            })
        })
        .collect();
    let mut p = Process::spawn(w, |w: Connection| {
        for i in 0..2000u32 {
            w.send(&i).unwrap();
            if i % 64 == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        for _ in 0..4 {
            w.send(&u32::MAX).unwrap();
        }
    })
    .unwrap();
    assert_eq!(p.join().unwrap(), 0);
    for t in threads {
        within("a poller thread", move || t.join().unwrap());
    }
    assert_eq!(got.load(Ordering::Relaxed), 2000);
}

#[test]
fn a_refused_message_stays_readable_by_another_process() {
    let (r, w) = pipe_simplex().unwrap();
    w.send_bytes(&[9u8; 100]).unwrap();
    match r.recv_bytes_max(10) {
        Err(Error::MessageTooLarge { size: 100, limit: 10 }) => {}
        other => panic!("unexpected {other:?}"),
    }
    let mut child = Process::spawn(r.try_clone().unwrap(), |r: Connection| {
        assert_eq!(r.recv_bytes().unwrap(), vec![9u8; 100]);
    })
    .unwrap();
    assert_eq!(child.join().unwrap(), 0);
    assert!(!r.poll(Some(Duration::ZERO)).unwrap());
}

#[test]
fn a_writer_without_a_reader_stops_at_the_budget_instead_of_filling_memory() {
    const MIB: usize = 1 << 20;
    let (r, w) = pipe_simplex().unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let writer = {
        let sent = sent.clone();
        std::thread::spawn(move || {
            let m = vec![3u8; MIB];
            for _ in 0..200 {
                w.send_bytes(&m).unwrap();
                sent.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // A 4 MiB budget: the writer blocks once the ring spans more than 16 segments of 256 KiB,
    // each 1 MiB message taking 4 of them (and a bit of a fifth).
    let limit = 6;
    within("the writer reaching the budget", {
        let sent = sent.clone();
        move || {
            while sent.load(Ordering::Relaxed) < 3 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let n = sent.load(Ordering::Relaxed);
    assert!(n <= limit, "{n} MiB sent into a pipe nobody reads");
    for _ in 0..200 {
        assert_eq!(r.recv_bytes().unwrap().len(), MIB);
    }
    within("the writer", move || writer.join().unwrap());
}

/// This process's memfds named "procshare" (a pipe's region: control words and both rings).
fn region_memfds() -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let path = entry.unwrap().path();
        let Ok(target) = std::fs::read_link(&path) else { continue };
        if target.to_str() == Some("/memfd:procshare (deleted)") {
            out.push(path);
        }
    }
    out
}

fn scribbler((c, seed): (Connection, u64)) {
    use std::os::unix::fs::FileExt;
    c.send(&"before").unwrap();
    let fds = region_memfds();
    assert!(!fds.is_empty(), "found no memfd");
    let mut x = seed | 1;
    for path in fds {
        let f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
        // The region header (64 bytes) is left alone: a peer cannot resize or remap, and
        // `Region` only reads it when a handle arrives. Everything after is fair game: ring
        // headers, links, the first segment's records, the control words. (In a pipe's
        // region: the control words and both ring headers in 64 .. 4096, ring 0's links from
        // 4096, ring 1's links and ring 0's first segments in 1 .. 3 MiB.)
        let mut buf = vec![0u8; 2 << 20];
        for b in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes());
        }
        let _ = f.write_all_at(&buf[..4096 - 64], 64);
        let _ = f.write_all_at(&buf, 1 << 20);
        let _ = f.write_all_at(&buf[..64 << 10], 4096);
    }
    let _ = c.send(&"after");
}

#[test]
fn a_peer_scribbling_on_the_rings_gives_errors_or_values_never_a_panic_or_hang() {
    for seed in 1..4u64 {
        let (a, b) = pipe().unwrap();
        let mut child = Process::spawn((b, seed * 0x9e37_79b9), scribbler).unwrap();
        // The child scribbles while we may be receiving, and exits: its end closes.
        let a = within("receiving from a scribbler", move || {
            for _ in 0..50 {
                match a.recv_bytes() {
                    Err(Error::Eof) => break,
                    Ok(_) | Err(Error::Codec(_)) | Err(Error::Io(_)) => {}
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            let _ = a.poll(Some(Duration::ZERO));
            let _ = a.send(&"to a scribbled ring");
            a
        });
        assert_eq!(child.join().unwrap(), 0);
        drop(a);
    }
}
