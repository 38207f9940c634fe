//! The pipe crash table (`pipe/ring.rs`), one test per row: a child armed at the row's crash
//! point dies there by SIGKILL, and the survivors check what the row promises.
#![cfg(feature = "crash-points")]

use procshare::crash::arm;
use procshare::{pipe_simplex, Connection, Error, Process};
use std::time::Duration;

mod common;
use common::{within, HANG};

fn killed(p: &mut Process) {
    assert_eq!(p.join().unwrap(), -libc::SIGKILL, "the child did not die at its crash point");
}

fn recv_bounded(r: &Connection) -> procshare::Result<String> {
    let r = r.try_clone().unwrap();
    within("a receive after the crash", move || r.recv::<String>())
}

#[test]
fn killed_after_the_liveness_look_sends_nothing() {
    let (r, w) = pipe_simplex().unwrap();
    let mut child = Process::spawn(w, |w: Connection| {
        w.send(&"a").unwrap();
        arm("pipe.send_checked", 1);
        let _ = w.send(&"b");
    })
    .unwrap();
    killed(&mut child);
    assert_eq!(recv_bounded(&r).unwrap(), "a");
    assert!(matches!(recv_bounded(&r), Err(Error::Eof)));
}

#[test]
fn killed_between_commit_and_doorbell_the_message_reaches_a_poller() {
    let (r, w) = pipe_simplex().unwrap();
    let mut child = Process::spawn(w, |w: Connection| {
        // Late, so the parent is asleep in poll(2) when the bell is not rung.
        std::thread::sleep(Duration::from_millis(50));
        arm("pipe.send_committed", 1);
        let _ = w.send(&"a");
    })
    .unwrap();
    assert!(r.poll(Some(HANG)).unwrap(), "the committed message never woke the poller");
    assert_eq!(recv_bounded(&r).unwrap(), "a");
    killed(&mut child);
    assert!(matches!(recv_bounded(&r), Err(Error::Eof)));
}

#[test]
fn a_reader_killed_after_taking_takes_only_that_message() {
    let (r, w) = pipe_simplex().unwrap();
    w.send(&"a").unwrap();
    w.send(&"b").unwrap();
    let mut child = Process::spawn(r.try_clone().unwrap(), |r: Connection| {
        arm("pipe.recv_taken", 1);
        let _ = r.recv::<String>();
    })
    .unwrap();
    killed(&mut child);
    assert_eq!(recv_bounded(&r).unwrap(), "b");
    w.send(&"c").unwrap();
    assert_eq!(recv_bounded(&r).unwrap(), "c");
}

#[test]
fn a_poller_killed_while_counted_costs_only_needless_doorbells() {
    let (r, w) = pipe_simplex().unwrap();
    let mut child = Process::spawn(r.try_clone().unwrap(), |r: Connection| {
        arm("pipe.poll_armed", 1);
        let _ = r.poll(None);
    })
    .unwrap();
    killed(&mut child);
    for m in ["x", "y", "z"] {
        w.send(&m).unwrap();
    }
    for m in ["x", "y", "z"] {
        assert!(r.poll(Some(Duration::ZERO)).unwrap());
        assert_eq!(recv_bounded(&r).unwrap(), m);
    }
    // The bells rung for the dead poller do not make an empty pipe look ready.
    assert!(!r.poll(Some(Duration::ZERO)).unwrap());
    assert!(!r.poll(Some(Duration::from_millis(30))).unwrap());
    let w2 = w.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        w2.send(&"late").unwrap();
    });
    assert!(r.poll(Some(HANG)).unwrap());
    assert_eq!(recv_bounded(&r).unwrap(), "late");
    t.join().unwrap();
}

#[test]
fn a_reader_killed_while_closing_still_breaks_the_pipe() {
    let (r, w) = pipe_simplex().unwrap();
    let mut child = Process::spawn(r, |r: Connection| {
        arm("pipe.drop_closed", 1);
        drop(r);
    })
    .unwrap();
    killed(&mut child);
    let e = within("send to a pipe whose reader died closing", move || loop {
        if let Err(e) = w.send(&"x") {
            return e;
        }
    });
    match e {
        Error::Io(io) => assert_eq!(io.kind(), std::io::ErrorKind::BrokenPipe),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn a_writer_killed_while_closing_still_gives_eof() {
    let (r, w) = pipe_simplex().unwrap();
    w.send(&"last").unwrap();
    let mut child = Process::spawn(w, |w: Connection| {
        arm("pipe.drop_closed", 1);
        drop(w);
    })
    .unwrap();
    killed(&mut child);
    assert_eq!(recv_bounded(&r).unwrap(), "last");
    assert!(matches!(recv_bounded(&r), Err(Error::Eof)));
}

#[test]
fn a_poller_killed_after_draining_the_doorbell_costs_nothing() {
    let (r, w) = pipe_simplex().unwrap();
    // A message sent while a poller is counted leaves a doorbell byte; taking the message
    // leaves the byte behind for the next poller to drain.
    let r2 = r.try_clone().unwrap();
    let poller = std::thread::spawn(move || r2.poll(Some(HANG)).unwrap());
    std::thread::sleep(Duration::from_millis(30));
    w.send(&"a").unwrap();
    assert!(poller.join().unwrap());
    assert_eq!(recv_bounded(&r).unwrap(), "a");
    let mut child = Process::spawn(r.try_clone().unwrap(), |r: Connection| {
        arm("pipe.bell_drained", 1);
        let _ = r.poll(None);
    })
    .unwrap();
    killed(&mut child);
    assert!(!r.poll(Some(Duration::ZERO)).unwrap());
    w.send(&"b").unwrap();
    assert!(r.poll(Some(HANG)).unwrap());
    assert_eq!(recv_bounded(&r).unwrap(), "b");
}
