//! Event between real processes.

use procshare::{pipe, Connection, Event, Process};
use std::time::Duration;

#[test]
fn set_clear_wait_timeout() {
    let ev = Event::new().unwrap();
    assert!(!ev.is_set());
    assert!(!ev.wait(Some(Duration::from_millis(20))).unwrap());
    assert!(!ev.wait(Some(Duration::ZERO)).unwrap());
    ev.set();
    assert!(ev.is_set());
    assert!(ev.wait(None).unwrap());
    assert!(ev.wait(Some(Duration::ZERO)).unwrap());
    ev.clear();
    assert!(!ev.is_set());
    assert!(!ev.wait(Some(Duration::from_millis(20))).unwrap());
}

#[test]
fn set_wakes_all_waiters_in_other_processes() {
    let ev = Event::new().unwrap();
    let (mine, theirs) = pipe().unwrap();
    let mut kids: Vec<Process> = (0..4)
        .map(|_| {
            Process::spawn(
                (ev.clone(), theirs.try_clone().unwrap()),
                |(ev, conn): (Event, Connection)| {
                    conn.send(&false).unwrap();
                    let woke = ev.wait(None).unwrap();
                    conn.send(&woke).unwrap();
                },
            )
            .unwrap()
        })
        .collect();
    for _ in 0..4 {
        assert!(!mine.recv::<bool>().unwrap());
    }
    std::thread::sleep(Duration::from_millis(50));
    ev.set();
    for _ in 0..4 {
        assert!(mine.recv::<bool>().unwrap());
    }
    for k in &mut kids {
        assert_eq!(k.join().unwrap(), 0);
    }
}

#[test]
fn timed_wait_in_a_child_returns_false() {
    let ev = Event::new().unwrap();
    let (mine, theirs) = pipe().unwrap();
    let mut kid = Process::spawn((ev, theirs), |(ev, conn): (Event, Connection)| {
        conn.send(&ev.wait(Some(Duration::from_millis(50))).unwrap()).unwrap();
    })
    .unwrap();
    assert!(!mine.recv::<bool>().unwrap());
    assert_eq!(kid.join().unwrap(), 0);
}
