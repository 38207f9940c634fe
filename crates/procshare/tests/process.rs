//! `Process`: start methods, exit codes, names, signals, handles in arguments.

use procshare::{current_process, pipe, Connection, Process, StartMethod};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Runs `body(args)` in a spawned child, whose only thread runs it: `cargo test` runs tests on
/// threads, and `StartMethod::Fork` is refused in a multithreaded parent. Asserts exit code 0
/// (a failed assertion in the child gives 1; its message is on stderr).
fn in_single_threaded_child<A: Serialize + DeserializeOwned>(args: A, body: fn(A)) {
    let mut p = Process::spawn(args, body).unwrap();
    assert_eq!(p.join().unwrap(), 0, "the single-threaded child failed (see its stderr)");
}

#[test]
fn spawn_runs_target_and_returns_zero() {
    let (parent, child) = pipe().unwrap();
    let mut p = Process::spawn((child, 20u32), |(conn, x): (Connection, u32)| {
        conn.send(&(x + 1)).unwrap();
    })
    .unwrap();
    assert_eq!(parent.recv::<u32>().unwrap(), 21);
    assert_eq!(p.join().unwrap(), 0);
    assert!(!p.is_alive());
    assert_eq!(p.exitcode(), Some(0));
    // Joining again returns the same code.
    assert_eq!(p.join().unwrap(), 0);
}

#[test]
fn fork_runs_target() {
    in_single_threaded_child((), |()| {
        let (parent, child) = pipe().unwrap();
        let mut p = Process::builder()
            .start_method(StartMethod::Fork)
            .spawn(child, |conn| conn.send(&current_process().name().to_string()).unwrap())
            .unwrap();
        let name: String = parent.recv().unwrap();
        assert_eq!(name, p.name());
        assert_eq!(p.join().unwrap(), 0);
    });
}

#[test]
fn names_follow_python() {
    assert_eq!(current_process().name(), "MainProcess");
    assert_eq!(current_process().pid(), std::process::id());
    let (parent, child) = pipe().unwrap();
    let mut p = Process::spawn(child, |conn: Connection| {
        // A grandchild is named after its parent: Process-N:1.
        let (a, b) = pipe().unwrap();
        let mut g = Process::spawn(b, |c: Connection| {
            c.send(&current_process().name().to_string()).unwrap()
        })
        .unwrap();
        let grandchild: String = a.recv().unwrap();
        g.join().unwrap();
        conn.send(&(current_process().name().to_string(), current_process().pid(), grandchild))
            .unwrap();
    })
    .unwrap();
    let (name, pid, grandchild): (String, u32, String) = parent.recv().unwrap();
    assert!(name.starts_with("Process-"), "{name}");
    assert_eq!(name, p.name());
    assert_eq!(pid, p.pid());
    assert_eq!(grandchild, format!("{name}:1"));
    p.join().unwrap();

    let (parent, child) = pipe().unwrap();
    let mut q = Process::builder()
        .name("worker-7")
        .spawn(child, |c: Connection| c.send(&current_process().name().to_string()).unwrap())
        .unwrap();
    assert_eq!(q.name(), "worker-7");
    assert_eq!(parent.recv::<String>().unwrap(), "worker-7");
    q.join().unwrap();
}

#[test]
fn panic_gives_exit_code_one() {
    in_single_threaded_child((), |()| {
        for method in [StartMethod::Spawn, StartMethod::Fork] {
            let mut p = Process::builder()
                .start_method(method)
                .spawn((), |()| panic!("deliberate panic in a child"))
                .unwrap();
            assert_eq!(p.join().unwrap(), 1, "{method:?}");
        }
    });
}

#[test]
fn explicit_exit_code_is_kept() {
    let mut p = Process::spawn(3i32, |code| std::process::exit(code)).unwrap();
    assert_eq!(p.join().unwrap(), 3);
}

#[test]
fn kill_and_terminate_give_minus_signal() {
    let mut p = Process::spawn((), |()| std::thread::sleep(Duration::from_secs(600))).unwrap();
    assert!(p.is_alive());
    p.kill().unwrap();
    assert_eq!(p.join().unwrap(), -9);
    // Signalling a joined process is a no-op, not an error.
    p.kill().unwrap();

    let mut p = Process::spawn((), |()| std::thread::sleep(Duration::from_secs(600))).unwrap();
    p.terminate().unwrap();
    assert_eq!(p.join().unwrap(), -15);
}

#[test]
fn join_timeout_returns_none_while_running() {
    let (parent, child) = pipe().unwrap();
    let mut p = Process::spawn(child, |c: Connection| {
        // Wait for the parent's word, then end.
        let _: u8 = c.recv().unwrap();
    })
    .unwrap();
    assert_eq!(p.join_timeout(Duration::from_millis(50)).unwrap(), None);
    assert_eq!(p.join_timeout(Duration::ZERO).unwrap(), None);
    assert!(p.is_alive());
    parent.send(&1u8).unwrap();
    assert_eq!(p.join_timeout(Duration::from_secs(60)).unwrap(), Some(0));
}

#[derive(Serialize, Deserialize)]
struct Nested {
    label: String,
    ends: Vec<Connection>,
    pair: (u8, Option<Connection>),
}

#[test]
fn handles_nested_in_structs_vecs_and_tuples() {
    in_single_threaded_child((), |()| {
        let mut parents = Vec::new();
        let mut ends = Vec::new();
        for _ in 0..3 {
            let (a, b) = pipe().unwrap();
            parents.push(a);
            ends.push(b);
        }
        let (last_parent, last_child) = pipe().unwrap();
        let args = Nested { label: "hello".into(), ends, pair: (9, Some(last_child)) };
        for method in [StartMethod::Spawn, StartMethod::Fork] {
            let args = Nested {
                label: args.label.clone(),
                ends: args.ends.iter().map(|c| c.try_clone().unwrap()).collect(),
                pair: (args.pair.0, args.pair.1.as_ref().map(|c| c.try_clone().unwrap())),
            };
            let mut p = Process::builder()
                .start_method(method)
                .spawn(args, |n: Nested| {
                    for (i, c) in n.ends.iter().enumerate() {
                        c.send(&(n.label.clone(), i)).unwrap();
                    }
                    n.pair.1.unwrap().send(&n.pair.0).unwrap();
                })
                .unwrap();
            for (i, a) in parents.iter().enumerate() {
                assert_eq!(a.recv::<(String, usize)>().unwrap(), ("hello".to_string(), i));
            }
            assert_eq!(last_parent.recv::<u8>().unwrap(), 9);
            assert_eq!(p.join().unwrap(), 0);
        }
    });
}

#[test]
fn handles_cannot_be_sent_as_messages() {
    let (a, _b) = pipe().unwrap();
    let (c, _d) = pipe().unwrap();
    let err = a.send(&c).unwrap_err();
    assert!(matches!(err, procshare::Error::Codec(_)), "{err}");
}

/// The state letter of process `pid` (`None`: no such process).
fn state_of(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

#[test]
fn dropped_process_is_reaped() {
    let p = Process::spawn((), |()| std::thread::sleep(Duration::from_millis(100))).unwrap();
    let pid = p.pid();
    drop(p);
    // It ends after 100 ms; it is reaped at the next start of a process (no reaper thread).
    for _ in 0..1000 {
        if matches!(state_of(pid), None | Some('Z')) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut q = Process::spawn((), |()| {}).unwrap();
    assert_eq!(q.join().unwrap(), 0);
    assert_eq!(state_of(pid), None, "child {pid} was never reaped");
}

/// A dropped running `Process` must not make the parent multithreaded (a reaper thread did):
/// the parent could then no longer fork, and nobody asked for the thread.
#[test]
fn dropping_a_running_process_starts_no_thread() {
    in_single_threaded_child((), |()| {
        let (hold, child_end) = pipe().unwrap();
        // Runs until we exit (its recv then fails).
        let p = Process::spawn(child_end, |c: Connection| {
            let _ = c.recv::<u8>();
        })
        .unwrap();
        drop(p);
        let threads = std::fs::read_dir("/proc/self/task").unwrap().count();
        assert_eq!(threads, 1, "dropping a running Process started a thread");
        let mut f = Process::builder().start_method(StartMethod::Fork).spawn((), |()| {}).unwrap();
        assert_eq!(f.join().unwrap(), 0);
        drop(hold);
    });
}

#[test]
fn a_grandchild_whose_parent_exited_at_once_still_runs() {
    // The middle process spawns and returns without joining: the grandchild may boot after its
    // parent is gone (reparented), and must still run its target, as a Python spawn child does.
    let q = procshare::Queue::<u32>::new().unwrap();
    let mut middle = Process::spawn(q.clone(), |q: procshare::Queue<u32>| {
        let _ = Process::spawn(q, |q: procshare::Queue<u32>| q.put(7).unwrap()).unwrap();
    })
    .unwrap();
    assert_eq!(middle.join().unwrap(), 0);
    assert_eq!(q.get_timeout(Duration::from_secs(60)).unwrap(), 7);
}

#[test]
fn daemon_child_dies_with_its_parent() {
    let (parent, child) = pipe().unwrap();
    let mut p = Process::spawn(child, |c: Connection| {
        let g = Process::builder()
            .daemon(true)
            .spawn((), |()| std::thread::sleep(Duration::from_secs(600)))
            .unwrap();
        c.send(&g.pid()).unwrap();
        // Exit without joining the daemon: it must die with us.
        std::process::exit(0);
    })
    .unwrap();
    let grandchild: u32 = parent.recv().unwrap();
    assert_eq!(p.join().unwrap(), 0);
    let stat = format!("/proc/{grandchild}/stat");
    for _ in 0..1000 {
        match std::fs::read_to_string(&stat) {
            Err(_) => return,
            // Reparented to init and killed: a zombie until init reaps it counts as dead.
            Ok(s) if s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')) => {
                return
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    panic!("daemon grandchild {grandchild} outlived its parent");
}
