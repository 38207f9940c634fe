//! `procshare torture`: a fixed-seed run of random kills and stops holds every invariant, and
//! each kind of deliberate bug (`--sabotage`) makes a run fail with the violation that names it
//! — so the checks can fail. Plus the reproducer of the library bug the torture run found.

use procshare::{Error, Process, Queue};
use serde_bytes::ByteBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Torture runs are heavy (a dozen processes each): one at a time on a 2-core machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn torture(args: &[&str]) -> (bool, String) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(env!("CARGO_BIN_EXE_procshare"))
        .arg("torture")
        .args(args)
        .output()
        .expect("run procshare torture");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn twenty_seconds_of_kills_and_stops_hold_every_invariant() {
    // The hang bound is generous on purpose: on a loaded 2-core machine a process may wait
    // seconds for a core. A real hang (a lost wake-up, a lock never taken over) lasts forever.
    let (ok, out) =
        torture(&["--seconds", "20", "--seed", "1", "--procs", "6", "--hang-bound-secs", "20"]);
    assert!(ok, "torture run failed:\n{out}");
    assert!(out.contains("every invariant held"), "{out}");
    let kills: u64 = out
        .split("kills ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(kills > 0, "no process was killed:\n{out}");
}

fn sabotaged(kind: &str, extra: &[&str]) -> String {
    let mut args = vec!["--seconds", "6", "--seed", "3", "--procs", "4", "--sabotage", kind];
    args.extend_from_slice(extra);
    let (ok, out) = torture(&args);
    assert!(!ok, "a run with --sabotage {kind} passed:\n{out}");
    assert!(out.contains("reproduce with --seed 3"), "no seed in the failure:\n{out}");
    out
}

#[test]
fn a_lost_item_fails_the_run() {
    let out = sabotaged("lose", &[]);
    assert!(out.contains("committed items never received"), "{out}");
}

#[test]
fn a_duplicated_item_fails_the_run() {
    let out = sabotaged("duplicate", &[]);
    assert!(out.contains("received twice"), "{out}");
}

#[test]
fn an_unlocked_increment_fails_the_run() {
    let out = sabotaged("unlocked", &[]);
    assert!(out.contains("mutual exclusion broken") || out.contains("more off than the"), "{out}");
}

#[test]
fn a_hung_lane_fails_the_run() {
    // No kills, so the hung lane's process lives long enough to exceed the bound.
    let out = sabotaged("hang", &["--kill-every-ms", "100000000", "--hang-bound-secs", "2"]);
    assert!(out.contains("lane event made no progress"), "{out}");
}

/// Found by `procshare torture` (seed 6, `--procs 6`, 8 s: every report after one consumer died
/// mid-`put` of its report was hidden from the controller's `get_nowait` loop): `get_nowait`
/// never skips the record of a producer killed mid-put. Only a get that has waited
/// `PENDING_CHECK` (20 ms) in one call reaps it, so a consumer that polls with `get_nowait` (or
/// `get_timeout` below 20 ms) starved forever while committed items waited behind the dead
/// record. Fixed: a handle remembers a pending head record across calls and checks its owner once
/// it has been pending 20 ms.
#[test]
fn get_nowait_skips_a_dead_producers_record() {
    let q: Queue<ByteBuf> = Queue::new().unwrap();
    let mut child = Process::spawn(q.clone(), |q| {
        // Large enough that the copy into the ring takes a while: the kill lands inside it.
        let _ = q.put(ByteBuf::from(vec![7u8; 64 << 20]));
    })
    .unwrap();
    // The reservation counts in qsize while the payload is copied.
    let deadline = Instant::now() + Duration::from_secs(60);
    while q.qsize() == 0 {
        assert!(Instant::now() < deadline, "the child never started its put");
        std::thread::yield_now();
    }
    child.kill().unwrap();
    assert_eq!(child.join().unwrap(), -9);
    q.put(ByteBuf::from(b"after".to_vec())).unwrap();
    let mut got = Vec::new();
    for _ in 0..100 {
        match q.get_nowait() {
            Ok(b) => {
                got.push(b.len());
                if &b[..] == b"after" {
                    return;
                }
            }
            Err(Error::Empty) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("get_nowait: {e}"),
        }
    }
    panic!(
        "for 1 s get_nowait said Empty (qsize {}, got {got:?}) although 'after' is committed \
         behind the dead producer's record; get_timeout(100 ms) gets it: {:?}",
        q.qsize(),
        q.get_timeout(Duration::from_millis(100)).map(|b| b.len())
    );
}

/// The torture run's drain by polls finds the items behind a record that a producer killed
/// mid-put left at the head (planted at the end by `--sabotage dead-record`): the `get_nowait`
/// bug the run once found stays fixed, end to end.
#[test]
fn polls_drain_past_a_dead_producers_record() {
    let (ok, out) =
        torture(&["--seconds", "2", "--seed", "4", "--procs", "2", "--sabotage", "dead-record"]);
    assert!(ok, "the planted dead record hid items from get_nowait:\n{out}");
    assert!(!out.contains("never received"), "{out}");
}
