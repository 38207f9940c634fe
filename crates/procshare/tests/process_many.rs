//! 200 processes started and joined: no zombies, no descriptor leaks.
//!
//! Each test runs in a spawned child, whose only thread is the test's: `StartMethod::Fork` needs
//! a single-threaded parent, and no other test opens descriptors there while we count them.

use procshare::{pipe, Connection, Process, StartMethod};
use std::time::Duration;

fn zombies_of(pid: u32) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut f = rest.split_ascii_whitespace();
        let state = f.next();
        let ppid: Option<u32> = f.next().and_then(|p| p.parse().ok());
        if state == Some("Z") && ppid == Some(pid) {
            n += 1;
        }
    }
    n
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Runs `body` in a spawned single-threaded child and asserts it succeeded.
fn in_single_threaded_child(body: fn(())) {
    let mut p = Process::spawn((), body).unwrap();
    assert_eq!(p.join().unwrap(), 0, "the single-threaded child failed (see its stderr)");
}

#[test]
fn two_hundred_processes_no_zombies_no_fd_leaks() {
    in_single_threaded_child(|()| {
        let before = open_fds();
        let (parent, child) = pipe().unwrap();
        for i in 0..200u32 {
            let method = if i % 2 == 0 { StartMethod::Spawn } else { StartMethod::Fork };
            let mut p = Process::builder()
                .start_method(method)
                .spawn((child.try_clone().unwrap(), i), |(c, i): (Connection, u32)| {
                    // Of procshare's kinds of descriptor, the child holds exactly its argument's
                    // socket (others, inherited by the test runner from its own parent, are not ours).
                    let ours = std::fs::read_dir("/proc/self/fd")
                        .unwrap()
                        .flatten()
                        .filter_map(|e| std::fs::read_link(e.path()).ok())
                        .filter(|l| {
                            let l = l.to_string_lossy();
                            l.starts_with("socket:") || l.starts_with("/memfd:")
                        })
                        .count();
                    c.send(&(i, ours)).unwrap();
                })
                .unwrap();
            let (got, child_fds): (u32, usize) = parent.recv().unwrap();
            assert_eq!(got, i);
            if method == StartMethod::Spawn {
                // A pipe end is its liveness socket and the pipe's region, a memfd
                // (`pipe/ring.rs`): 2, and nothing else of ours.
                assert_eq!(child_fds, 2, "spawned child holds other sockets or memfds");
            }
            assert_eq!(p.join().unwrap(), 0);
        }
        drop((parent, child));
        assert_eq!(zombies_of(std::process::id()), 0);
        assert_eq!(open_fds(), before);
    });
}

/// Children whose `Process` was dropped while they ran are reaped once they end, at the next
/// start of a process: dropped handles never pile up zombies.
#[test]
fn dropped_running_processes_leave_no_zombies() {
    in_single_threaded_child(|()| {
        let (hold, child_end) = pipe().unwrap();
        let mut pids = Vec::new();
        for _ in 0..20 {
            let p = Process::spawn(child_end.try_clone().unwrap(), |c: Connection| {
                let _ = c.recv::<u8>();
            })
            .unwrap();
            pids.push(p.pid());
        }
        drop((hold, child_end));
        // Every child now sees end of file and exits: wait (bounded) until all are zombies.
        for _ in 0..1000 {
            if zombies_of(std::process::id()) == pids.len() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(zombies_of(std::process::id()), pids.len(), "the children did not end");
        let mut p = Process::spawn((), |()| {}).unwrap();
        assert_eq!(p.join().unwrap(), 0);
        assert_eq!(zombies_of(std::process::id()), 0, "dropped children were not reaped");
    });
}
