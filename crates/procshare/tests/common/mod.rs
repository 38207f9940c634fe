//! Helpers shared by the integration tests (`mod common;` in each file that uses them): bounded
//! waits, the machine's `python3` as a peer, TCP addresses, and test payloads.

// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use procshare::{Address, Item};
use serde::{Deserialize, Serialize};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Bound on waits that only a bug (a hang, a lost wake-up, a deadlock) reaches.
pub const HANG: Duration = Duration::from_secs(60);

/// Runs `f` on a thread and fails the test (instead of hanging) if it does not finish within
/// [`HANG`].
pub fn within<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(HANG) {
        Ok(r) => r,
        Err(_) => panic!("{what}: did not finish (deadlock, lost wake-up or a stuck peer)"),
    }
}

/// A `python3` command when the machine has one that can `import module`; otherwise `None`,
/// with a note on stderr that `skipped` is skipped (interop tests pass without Python).
pub fn python3(module: &str, skipped: &str) -> Option<Command> {
    let ok = Command::new("python3")
        .arg("-c")
        .arg(format!("import {module}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some(Command::new("python3"))
    } else {
        eprintln!("NOTE: python3 with {module} not found: skipping {skipped}");
        None
    }
}

/// Starts `python3 -c script` with its stdin and stdout piped to us.
pub fn spawn_python(script: &str) -> Child {
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A TCP address on the loopback with a port the kernel picks.
pub fn localhost() -> Address {
    Address::Tcp("127.0.0.1:0".parse().unwrap())
}

/// The port of a TCP address (tests bind only [`localhost`]).
pub fn port(a: &Address) -> u16 {
    match a {
        Address::Tcp(s) => s.port(),
        Address::Unix(_) => unreachable!(),
    }
}

/// A byte buffer that serializes as one byte string (one memcpy), not as a sequence of u8.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bytes(#[serde(with = "serde_bytes")] pub Vec<u8>);

/// `len` bytes that differ with `seed` and with the position, so a torn, shifted or swapped
/// copy compares unequal.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// The items of CPython's `test_shared_memory_ShareableList_basics`, one of each type.
pub fn shareable_list_basics() -> Vec<Item> {
    vec![
        Item::Str("howdy".into()),
        Item::Bytes(b"HoWdY".to_vec()),
        Item::Float(-273.154),
        Item::Int(100),
        Item::None,
        Item::Bool(true),
        Item::Int(42),
    ]
}

/// Fails to compile unless `T` is a handle that can be sent, shared and cloned across threads.
pub fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
