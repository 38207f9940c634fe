//! Hostile and misbehaving peers of pipes and `Listener`/`connect`, played by real processes:
//! silent and trickling clients, a server that never speaks, clones after a refused message,
//! empty messages. (Peers scribbling on a pipe's rings: `pipe_ring.rs`.)

use procshare::pipe::connect_timeout;
use procshare::{connect, pipe, Address, Connection, Error, Listener, Process};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod common;
use common::{localhost, port, python3, spawn_python, within, HANG};

const KEY: &[u8] = b"hostile-pipe-key";

/// Runs `listener.accept()` on a thread and waits for it at most [`HANG`].
fn accept_bounded(listener: &std::sync::Arc<Listener>) -> Connection {
    let l = listener.clone();
    within("accept behind a silent or slow peer", move || l.accept()).unwrap()
}

fn recv_bounded<T: serde::de::DeserializeOwned>(c: &Connection) -> T {
    assert!(c.poll(Some(HANG)).unwrap(), "no word from the child");
    c.recv().unwrap()
}

/// A client that connects and then never sends a byte.
fn silent_client((port, ready): (u16, Connection)) {
    let _s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    ready.send(&"connected").unwrap();
    std::thread::sleep(Duration::from_secs(600));
}

/// A client that sends one byte of a handshake frame a minute.
fn one_byte_a_minute((port, ready): (u16, Connection)) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(&[0]).unwrap();
    ready.send(&"connected").unwrap();
    for b in [0, 0, 20].into_iter().chain(std::iter::repeat(b'a')) {
        std::thread::sleep(Duration::from_secs(60));
        if s.write_all(&[b]).is_err() {
            return;
        }
    }
}

fn good_client(port: u16) {
    let c = connect(&Address::Tcp(([127, 0, 0, 1], port).into()), Some(KEY)).unwrap();
    c.send_bytes(b"good").unwrap();
}

#[test]
fn silent_and_trickling_clients_do_not_block_accept() {
    let listener = std::sync::Arc::new(Listener::bind(localhost(), Some(KEY)).unwrap());
    // Far longer than the test: the good client must get in while the others still hold
    // their handshakes open, not because they timed out.
    listener.set_handshake_timeout(Duration::from_secs(3600));
    let port = port(&listener.address());
    let (ready_r, ready_w) = pipe().unwrap();
    // The bad peers connect first, so they are first in the kernel's backlog.
    let mut silent = Process::spawn((port, ready_w.try_clone().unwrap()), silent_client).unwrap();
    assert_eq!(recv_bounded::<String>(&ready_r), "connected");
    let mut slow = Process::spawn((port, ready_w.try_clone().unwrap()), one_byte_a_minute).unwrap();
    assert_eq!(recv_bounded::<String>(&ready_r), "connected");
    let mut good = Process::spawn(port, good_client).unwrap();
    let conn = accept_bounded(&listener);
    assert_eq!(conn.recv_bytes().unwrap(), b"good");
    assert_eq!(good.join().unwrap(), 0);
    // A second good client while the bad ones are still pending.
    let mut good = Process::spawn(port, good_client).unwrap();
    assert_eq!(accept_bounded(&listener).recv_bytes().unwrap(), b"good");
    assert_eq!(good.join().unwrap(), 0);
    silent.kill().unwrap();
    slow.kill().unwrap();
    assert_eq!(silent.join().unwrap(), -libc::SIGKILL);
    assert_eq!(slow.join().unwrap(), -libc::SIGKILL);
}

/// Connects, then reads until the server hangs up (or writes a byte every 50 ms until it
/// cannot), and reports that it was dropped.
fn dropped_client((port, trickle, report): (u16, bool, Connection)) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    report.send(&"connected").unwrap();
    if trickle {
        // A 20-byte frame, one byte at a time: never finished before the deadline.
        let frame = [&[0u8, 0, 0, 20][..], &[b'a'; 20]].concat();
        for b in frame.iter().cycle() {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    } else {
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
    report.send(&"dropped").unwrap();
}

#[test]
fn handshake_deadline_drops_silent_and_slow_peers_only() {
    let listener = std::sync::Arc::new(Listener::bind(localhost(), Some(KEY)).unwrap());
    listener.set_handshake_timeout(Duration::from_millis(300));
    assert_eq!(listener.handshake_timeout(), Duration::from_millis(300));
    let port = port(&listener.address());
    let (report_r, report_w) = pipe().unwrap();
    let mut silent =
        Process::spawn((port, false, report_w.try_clone().unwrap()), dropped_client).unwrap();
    let mut slow =
        Process::spawn((port, true, report_w.try_clone().unwrap()), dropped_client).unwrap();
    let (tx, rx) = mpsc::channel();
    let l = listener.clone();
    std::thread::spawn(move || {
        let _ = tx.send(l.accept());
    });
    // Both are dropped by the running accept, which goes on waiting.
    let said: Vec<String> = (0..4).map(|_| recv_bounded(&report_r)).collect();
    assert_eq!(said.iter().filter(|s| *s == "dropped").count(), 2, "{said:?}");
    assert_eq!(silent.join().unwrap(), 0);
    assert_eq!(slow.join().unwrap(), 0);
    assert!(rx.try_recv().is_err(), "accept returned without a good peer");
    let mut good = Process::spawn(port, good_client).unwrap();
    let conn = rx.recv_timeout(HANG).expect("accept stuck").unwrap();
    assert_eq!(conn.recv_bytes().unwrap(), b"good");
    assert_eq!(good.join().unwrap(), 0);
}

#[test]
fn python_silent_client_does_not_block_accept() {
    if python3("multiprocessing.connection", "this test").is_none() {
        return;
    }
    let listener = std::sync::Arc::new(Listener::bind(localhost(), Some(KEY)).unwrap());
    listener.set_handshake_timeout(Duration::from_secs(3600));
    let port = port(&listener.address());
    // Without an authkey, CPython's Client does no handshake: it connects and, here, waits
    // (until its stdin closes, so it cannot outlive this test).
    let silent = format!(
        "from multiprocessing.connection import Client\nimport sys\n\
         c = Client(('127.0.0.1', {port}))\nprint('connected', flush=True)\nsys.stdin.read()\n"
    );
    let mut silent = spawn_python(&silent);
    let mut line = [0u8; 10];
    silent.stdout.as_mut().unwrap().read_exact(&mut line).unwrap();
    assert_eq!(&line, b"connected\n");
    let key = std::str::from_utf8(KEY).unwrap();
    let good = format!(
        "from multiprocessing.connection import Client\n\
         c = Client(('127.0.0.1', {port}), authkey=b'{key}')\n\
         c.send_bytes(b'python good')\nprint(c.recv_bytes().decode(), flush=True)\n"
    );
    let good = Command::new("python3").arg("-c").arg(good).stdout(Stdio::piped()).spawn().unwrap();
    let conn = accept_bounded(&listener);
    assert_eq!(conn.recv_bytes().unwrap(), b"python good");
    conn.send_bytes(b"welcome").unwrap();
    let out = good.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"welcome\n");
    silent.kill().unwrap();
    silent.wait().unwrap();
}

/// A server that accepts and then never says a word.
fn mute_server(report: Connection) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    report.send(&l.local_addr().unwrap().port()).unwrap();
    let _held = l.accept().unwrap();
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn connect_to_a_server_that_never_speaks_times_out() {
    let (r, w) = pipe().unwrap();
    let mut server = Process::spawn(w, mute_server).unwrap();
    let port: u16 = recv_bounded(&r);
    let addr = Address::Tcp(([127, 0, 0, 1], port).into());
    let r = connect_timeout(&addr, Some(KEY), Duration::from_millis(300));
    assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
    server.kill().unwrap();
    server.join().unwrap();

    // A listener that is bound (the kernel completes the connection) but never accepts.
    let dir = std::env::temp_dir().join(format!("procshare-hostile-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sock");
    let listener = Listener::bind(Address::Unix(path.clone()), Some(KEY)).unwrap();
    let r = connect_timeout(&Address::Unix(path), Some(KEY), Duration::from_millis(300));
    assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
    let r = connect_timeout(&listener.address(), Some(KEY), Duration::ZERO);
    assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
    drop(listener);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn big_then_next(c: Connection) {
    c.send_bytes(&[7u8; 1000]).unwrap();
    c.send_bytes(b"next").unwrap();
}

fn stream_client(port: u16) {
    big_then_next(connect(&Address::Tcp(([127, 0, 0, 1], port).into()), None).unwrap());
}

/// One handle refuses a too-large message; a clone of it must then receive that message, not
/// a torn remainder (stream) or the message after it (SEQPACKET).
fn check_clones_after_refusal(a: Connection) {
    let b = a.try_clone().unwrap();
    a.set_max_message_size(100);
    match a.recv_bytes() {
        Err(Error::MessageTooLarge { size: 1000, limit: 100 }) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(b.poll(Some(Duration::ZERO)).unwrap(), "the refused message is ready for the clone");
    assert_eq!(b.recv_bytes().unwrap(), vec![7u8; 1000]);
    assert_eq!(a.recv_bytes().unwrap(), b"next");
    assert!(matches!(b.recv_bytes(), Err(Error::Eof)));
}

#[test]
fn stream_clones_after_a_refused_oversized_frame() {
    let listener = Listener::bind(localhost(), None).unwrap();
    let mut child = Process::spawn(port(&listener.address()), stream_client).unwrap();
    let a = listener.accept().unwrap();
    assert_eq!(child.join().unwrap(), 0);
    check_clones_after_refusal(a);
}

#[test]
fn pipe_clones_after_a_refused_oversized_message() {
    let (a, w) = pipe().unwrap();
    let mut child = Process::spawn(w, big_then_next).unwrap();
    assert_eq!(child.join().unwrap(), 0);
    check_clones_after_refusal(a);
}

fn send_empties(c: Connection) {
    c.send_bytes(b"").unwrap();
    c.send(&()).unwrap();
    c.send_bytes(b"x").unwrap();
    c.send_bytes(b"").unwrap();
    c.send(&Vec::<u8>::new()).unwrap();
    c.send_pickle(&()).unwrap();
}

fn check_empties(c: &Connection) {
    assert_eq!(c.recv_bytes().unwrap(), b"");
    c.recv::<()>().unwrap();
    assert_eq!(c.recv_bytes().unwrap(), b"x");
    assert_eq!(c.recv_bytes().unwrap(), b"");
    assert_eq!(c.recv::<Vec<u8>>().unwrap(), Vec::<u8>::new());
    c.recv_pickle::<()>().unwrap();
    assert!(matches!(c.recv_bytes(), Err(Error::Eof)));
}

#[test]
fn empty_messages_are_messages_across_processes() {
    let (a, w) = pipe().unwrap();
    let mut child = Process::spawn(w, send_empties).unwrap();
    // Read while the child may still be writing, then after it left.
    check_empties(&a);
    assert_eq!(child.join().unwrap(), 0);

    let listener = Listener::bind(localhost(), Some(KEY)).unwrap();
    let mut child = Process::spawn(port(&listener.address()), |port: u16| {
        let addr = Address::Tcp(([127, 0, 0, 1], port).into());
        send_empties(connect(&addr, Some(KEY)).unwrap());
    })
    .unwrap();
    let c = listener.accept().unwrap();
    check_empties(&c);
    assert_eq!(child.join().unwrap(), 0);
}
