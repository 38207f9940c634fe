//! Inputs the fuzz targets in `fuzz/` found (or that their runs pointed at), replayed against
//! the real entry points, in real processes where a crash is the failure.

use procshare::{pipe, Process};
use serde::Deserialize;
use std::time::Duration;

/// A user type that nests as deep as the message says (only decoded, never looked into).
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
enum Tree {
    Leaf,
    Node(Vec<Tree>),
}

/// `Tree::Node(vec![Tree::Node(vec![... Tree::Leaf])])`, `depth` levels, in the native codec:
/// variant 1, length 1, repeated, then variant 0. Two bytes a level.
fn deep_tree(depth: usize) -> Vec<u8> {
    let mut b = [1u8, 1].repeat(depth);
    b.push(0);
    b
}

fn receive_tree(conn: procshare::Connection) {
    // Ok or Err both pass; only a crash (the stack running out) fails the test.
    let _ = conn.recv::<Tree>();
}

/// Found by the `native_recursive` target's seed shape: a hostile peer sends a 2 MB message that
/// nests a recursive type a million levels deep. `recv` must answer `Err`, not overflow the
/// receiver's stack (which kills the whole process with SIGSEGV/SIGABRT).
#[test]
fn native_decode_of_a_deep_recursive_type() {
    let (reader, writer) = pipe().unwrap();
    let mut child = Process::spawn(reader, receive_tree).unwrap();
    writer.send_bytes(&deep_tree(1 << 20)).unwrap();
    let code = match child.join_timeout(Duration::from_secs(120)).unwrap() {
        Some(code) => code,
        None => {
            child.kill().unwrap();
            panic!("the receiver hung on a deep message");
        }
    };
    assert_eq!(code, 0, "the receiver died decoding a deeply nested message");
}
