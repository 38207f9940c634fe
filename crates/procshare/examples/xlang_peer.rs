//! The Rust side of the cross-language tests (crates/procshare-py/tests/test_cross_language.py):
//! a producer or consumer on a named `Format::Pickle` queue that Python processes share.
//!
//! ```text
//! xlang_peer produce <name> <tag> <n> [maxsize]   create the queue, print "ready", wait for a
//!                                                 line on stdin, put n records, shutdown(false)
//! xlang_peer consume <name>                       open the queue, get until ShutDown, print
//!                                                 "item <tag> <seq>" per record, then "done <count>"
//! xlang_peer joinable-produce <name> <tag> <n>    create a JoinableQueue, print "ready", wait for
//!                                                 a line, put n records, join(), print "joined"
//! xlang_peer joinable-consume <name>              open a JoinableQueue, get + task_done until
//!                                                 ShutDown, printing as consume does
//! xlang_peer blocked-get <name>                   open, print "blocked", get: prints "shutdown"
//!                                                 when a Python process shuts the queue down
//! xlang_peer blocked-put <name>                   open a full queue, print "blocked", put: the
//!                                                 same
//! ```
//!
//! A record is one tuple covering the native types Python maps to int, float, str, bytes,
//! list, tuple, dict and None, every field derived from `(tag, seq)` so the receiver checks it
//! (Python's `record()` in the test builds the same). A record that is not the one expected
//! exits with status 2 and says why on stderr.
//!
//! Build: `cargo build -p procshare --example xlang_peer` (the test does it once per run).

use procshare::{Error, Format, JoinableQueue, Queue};
use serde_bytes::ByteBuf;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::process::exit;

/// `(tag, seq, int, float, str, bytes, list, tuple, dict, None or int)`.
type Record = (
    String,
    i64,
    i64,
    f64,
    String,
    ByteBuf,
    Vec<i64>,
    (i64, String),
    BTreeMap<String, i64>,
    Option<i64>,
);

fn record(tag: &str, seq: i64) -> Record {
    let dict = BTreeMap::from([("seq".to_string(), seq), ("neg".to_string(), -seq)]);
    (
        tag.to_string(),
        seq,
        seq * 7 - 3,
        seq as f64 + 0.25,
        format!("{tag}-{seq}-é"),
        ByteBuf::from(vec![(seq % 256) as u8; (seq % 50) as usize]),
        (0..seq % 5).collect(),
        (seq, "t".to_string()),
        dict,
        if seq % 2 == 0 { None } else { Some(seq) },
    )
}

fn fail(why: impl std::fmt::Display) -> ! {
    eprintln!("xlang_peer: {why}");
    exit(2)
}

fn arg(args: &[String], i: usize, what: &str) -> String {
    args.get(i).cloned().unwrap_or_else(|| fail(format!("missing argument: {what}")))
}

fn number(args: &[String], i: usize, what: &str) -> i64 {
    arg(args, i, what).parse().unwrap_or_else(|e| fail(format!("{what}: {e}")))
}

/// Prints `line` and flushes, so the Python side reading our stdout sees it now.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
        fail("stdout closed");
    }
}

/// Waits for one line on stdin (the test's "go"); EOF also goes on.
fn wait_for_go() {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

/// Checks a received record against the one its `(tag, seq)` names and prints it.
fn check_and_print(r: &Record) {
    let expected = record(&r.0, r.1);
    if *r != expected {
        fail(format!("record {:?} is not {:?}", r, expected));
    }
    say(&format!("item {} {}", r.0, r.1));
}

fn produce(args: &[String]) {
    let name = arg(args, 2, "name");
    let tag = arg(args, 3, "tag");
    let n = number(args, 4, "n");
    let maxsize = args.get(5).map_or(0, |_| number(args, 5, "maxsize") as usize);
    let q = Queue::<Record>::create_named(&name, maxsize, Format::Pickle)
        .unwrap_or_else(|e| fail(format!("create_named({name}): {e}")));
    say("ready");
    wait_for_go();
    for seq in 0..n {
        q.put(record(&tag, seq)).unwrap_or_else(|e| fail(format!("put: {e}")));
    }
    q.shutdown(false);
    say("shut");
    // The queue must outlive us until the consumers have drained it: they hold it open too.
}

fn consume(args: &[String]) {
    let name = arg(args, 2, "name");
    let q = Queue::<Record>::open(&name).unwrap_or_else(|e| fail(format!("open({name}): {e}")));
    let mut count = 0;
    loop {
        match q.get() {
            Ok(r) => check_and_print(&r),
            Err(Error::ShutDown) => break,
            Err(e) => fail(format!("get: {e}")),
        }
        count += 1;
    }
    say(&format!("done {count}"));
}

fn joinable_produce(args: &[String]) {
    let name = arg(args, 2, "name");
    let tag = arg(args, 3, "tag");
    let n = number(args, 4, "n");
    let q = JoinableQueue::<Record>::create_named(&name, 0, Format::Pickle)
        .unwrap_or_else(|e| fail(format!("create_named({name}): {e}")));
    say("ready");
    wait_for_go();
    for seq in 0..n {
        q.put(record(&tag, seq)).unwrap_or_else(|e| fail(format!("put: {e}")));
    }
    q.join().unwrap_or_else(|e| fail(format!("join: {e}")));
    say("joined");
    wait_for_go();
    q.shutdown(false);
}

fn joinable_consume(args: &[String]) {
    let name = arg(args, 2, "name");
    let q =
        JoinableQueue::<Record>::open(&name).unwrap_or_else(|e| fail(format!("open({name}): {e}")));
    let mut count = 0;
    loop {
        match q.get() {
            Ok(r) => {
                check_and_print(&r);
                q.task_done().unwrap_or_else(|e| fail(format!("task_done: {e}")));
            }
            Err(Error::ShutDown) => break,
            Err(e) => fail(format!("get: {e}")),
        }
        count += 1;
    }
    say(&format!("done {count}"));
}

fn blocked(args: &[String], put: bool) {
    let name = arg(args, 2, "name");
    let q = Queue::<Record>::open(&name).unwrap_or_else(|e| fail(format!("open({name}): {e}")));
    say("blocked");
    let r = if put { q.put(record("blocked", 0)) } else { q.get().map(drop) };
    match r {
        Err(Error::ShutDown) => say("shutdown"),
        other => fail(format!("expected ShutDown, got {other:?}")),
    }
}

fn main() {
    procshare::init();
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("produce") => produce(&args),
        Some("consume") => consume(&args),
        Some("joinable-produce") => joinable_produce(&args),
        Some("joinable-consume") => joinable_consume(&args),
        Some("blocked-get") => blocked(&args, false),
        Some("blocked-put") => blocked(&args, true),
        _ => fail(
            "usage: xlang_peer produce|consume|joinable-produce|joinable-consume|blocked-get|\
             blocked-put <name> ...",
        ),
    }
}
