//! `Listener`/`connect`: CPython's framing and authkey handshake, proven against the machine's
//! `python3` as a peer no one here wrote, plus hostile-peer input.

use procshare::{connect, Address, Error, Listener};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

mod common;
use common::{localhost, port};

fn python() -> Option<Command> {
    common::python3("multiprocessing.connection", "the CPython interop part")
}

#[test]
fn python_client_talks_to_our_listener() {
    let Some(mut py) = python() else { return };
    let listener = Listener::bind(localhost(), Some(b"secret")).unwrap();
    let script = format!(
        r#"
from multiprocessing.connection import Client
c = Client(('127.0.0.1', {}), authkey=b'secret')
c.send_bytes(b'hello from python')
c.send((7, 'seven', 7.5, True, None))
c.send_bytes(b'')
print(repr(c.recv_bytes()))
print(repr(c.recv()))
c.close()
"#,
        port(&listener.address())
    );
    let child = py.arg("-c").arg(script).stdout(Stdio::piped()).spawn().unwrap();
    let conn = listener.accept().unwrap();
    assert_eq!(conn.recv_bytes().unwrap(), b"hello from python");
    let t: (i64, String, f64, bool, Option<i64>) = conn.recv_pickle().unwrap();
    assert_eq!(t, (7, "seven".into(), 7.5, true, None));
    assert_eq!(conn.recv_bytes().unwrap(), b"");
    conn.send_bytes(b"hello from rust").unwrap();
    conn.send_pickle(&(1i64, "two", vec![3.5f64])).unwrap();
    assert!(matches!(conn.recv_bytes(), Err(Error::Eof)));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let out = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out, "b'hello from rust'\n(1, 'two', [3.5])\n");
}

#[test]
fn our_client_talks_to_python_listener() {
    let Some(mut py) = python() else { return };
    let script = r#"
import sys
from multiprocessing.connection import Listener
with Listener(('127.0.0.1', 0), authkey=b'k3y') as l:
    print(l.address[1], flush=True)
    with l.accept() as c:
        m = c.recv_bytes()
        c.send_bytes(m[::-1])
        c.send({'answer': 42})
        c.send_bytes(bytes(range(256)) * 100000)
        print(repr(c.recv()), flush=True)
"#;
    let mut child = py.arg("-c").arg(script).stdout(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let port: u16 = line.trim().parse().unwrap();
    let addr = Address::Tcp(format!("127.0.0.1:{port}").parse().unwrap());
    let conn = connect(&addr, Some(b"k3y")).unwrap();
    conn.send_bytes(b"abc").unwrap();
    assert_eq!(conn.recv_bytes().unwrap(), b"cba");
    let m: std::collections::HashMap<String, i64> = conn.recv_pickle().unwrap();
    assert_eq!(m["answer"], 42);
    let big = conn.recv_bytes().unwrap();
    assert_eq!(big.len(), 25_600_000);
    assert!(big.chunks(256).all(|c| c.iter().enumerate().all(|(i, &b)| b == i as u8)));
    conn.send_pickle(&vec![Some(1i64), None]).unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "[1, None]\n");
    assert!(child.wait().unwrap().success());
}

#[test]
fn wrong_authkey_fails_both_ways() {
    let Some(mut py) = python() else { return };
    let listener = Listener::bind(localhost(), Some(b"right")).unwrap();
    let script = format!(
        r#"
from multiprocessing.connection import Client, AuthenticationError
try:
    Client(('127.0.0.1', {}), authkey=b'wrong')
    print('connected')
except AuthenticationError:
    print('refused')
"#,
        port(&listener.address())
    );
    let child = py.arg("-c").arg(script).stdout(Stdio::piped()).spawn().unwrap();
    // As Python's `accept`: a peer with the wrong key is an `AuthenticationFailed`.
    assert!(matches!(listener.accept(), Err(Error::AuthenticationFailed)));
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "refused\n");

    // Rust to Rust: refused on both sides; the listener goes on accepting good clients.
    let addr = listener.address();
    let t = std::thread::spawn(move || {
        let bad = connect(&addr, Some(b"nope")).map(drop);
        connect(&addr, Some(b"right")).unwrap().send_bytes(b"second").unwrap();
        bad
    });
    assert!(matches!(listener.accept(), Err(Error::AuthenticationFailed)));
    assert_eq!(listener.accept().unwrap().recv_bytes().unwrap(), b"second");
    assert!(matches!(t.join().unwrap(), Err(Error::AuthenticationFailed)));
}

#[test]
fn rust_to_rust_over_unix_socket_with_empty_key() {
    let dir = std::env::temp_dir().join(format!("procshare-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sock");
    let listener = Listener::bind(Address::Unix(path.clone()), Some(b"")).unwrap();
    assert_eq!(listener.address(), Address::Unix(path.clone()));
    let addr = listener.address();
    let t = std::thread::spawn(move || {
        let c = connect(&addr, Some(b"")).unwrap();
        c.send(&vec![1u64; 3_000_000]).unwrap();
        c.recv::<String>().unwrap()
    });
    let c = listener.accept().unwrap();
    assert_eq!(c.recv::<Vec<u64>>().unwrap(), vec![1u64; 3_000_000]);
    c.send(&"done").unwrap();
    assert_eq!(t.join().unwrap(), "done");
    drop(listener);
    assert!(!path.exists(), "the socket file is removed with the listener");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn hostile_headers_are_errors_not_allocations() {
    let listener = Listener::bind(localhost(), None).unwrap();
    let Address::Tcp(sa) = listener.address() else { unreachable!() };
    let mut raw = TcpStream::connect(sa).unwrap();
    let conn = listener.accept().unwrap();
    // A frame claiming 1 TiB: refused before anything is allocated, and the header is kept.
    raw.write_all(&(-1i32).to_be_bytes()).unwrap();
    raw.write_all(&(1u64 << 40).to_be_bytes()).unwrap();
    match conn.recv_bytes() {
        Err(Error::MessageTooLarge { size, limit }) => {
            assert_eq!(size, 1 << 40);
            assert_eq!(limit, conn.max_message_size());
        }
        other => panic!("unexpected {other:?}"),
    }
    drop(raw);
    let mut raw = TcpStream::connect(sa).unwrap();
    let conn = listener.accept().unwrap();
    // A negative length other than -1.
    raw.write_all(&(-5i32).to_be_bytes()).unwrap();
    assert!(matches!(conn.recv_bytes(), Err(Error::Codec(_))));
    // A frame cut short by the peer leaving.
    let mut raw = TcpStream::connect(sa).unwrap();
    let conn = listener.accept().unwrap();
    raw.write_all(&10i32.to_be_bytes()).unwrap();
    raw.write_all(b"abc").unwrap();
    drop(raw);
    let e = conn.recv_bytes().unwrap_err();
    assert!(e.to_string().contains("end of file during message"), "{e}");
    // A challenge that is not one.
    let l2 = Listener::bind(localhost(), None).unwrap();
    let addr = l2.address();
    let t = std::thread::spawn(move || connect(&addr, Some(b"k")).map(drop));
    let c = l2.accept().unwrap();
    c.send_bytes(&[b'x'; 300]).unwrap();
    assert!(matches!(t.join().unwrap(), Err(Error::AuthenticationFailed)));
}

#[test]
fn stream_connection_passes_to_a_child_process() {
    let listener = Listener::bind(localhost(), None).unwrap();
    let addr = listener.address();
    let client = connect(&addr, None).unwrap();
    let server = listener.accept().unwrap();
    let mut p = procshare::Process::spawn(client, |c: procshare::Connection| {
        let x: u32 = c.recv().unwrap();
        c.send(&(x * 2)).unwrap();
    })
    .unwrap();
    server.send(&21u32).unwrap();
    assert_eq!(server.recv::<u32>().unwrap(), 42);
    assert_eq!(p.join().unwrap(), 0);
}

#[test]
fn accept_timeout_gives_up_then_takes_the_next_peer() {
    use std::time::{Duration, Instant};
    let listener = Listener::bind(localhost(), Some(b"k")).unwrap();
    let start = Instant::now();
    assert!(matches!(listener.accept_timeout(Duration::from_millis(50)), Err(Error::Timeout)));
    assert!(start.elapsed() >= Duration::from_millis(50));
    let addr = listener.address();
    let client = std::thread::spawn(move || {
        let c = connect(&addr, Some(b"k")).unwrap();
        c.send_bytes(b"late").unwrap();
        c
    });
    // Slices, as a binding waits: a handshake spanning several calls still completes.
    let conn = loop {
        match listener.accept_timeout(Duration::from_millis(1)) {
            Err(Error::Timeout) => continue,
            r => break r.unwrap(),
        }
    };
    assert_eq!(conn.recv_bytes().unwrap(), b"late");
    drop(client.join().unwrap());
}
