//! Many handles in one process, and handles under tight limits (issue 23, "Scale"): a ring maps
//! what it uses, so a process holds as many queues and pipes as its descriptors allow, a queue
//! and a pipe work under a `ulimit -v` of 1 GiB, and running out of descriptors or address
//! space is an error that names the limit.
//!
//! Each test runs in a child process (`Process::spawn`), which sets its own limits: the test
//! harness keeps its own.

use procshare::{pipe, Process, Queue};
use std::time::Duration;

/// The descriptor limit the holding tests run under (the number).
const NOFILE: u64 = 20_000;

/// Sets `resource`'s soft and hard limit to `value`; false (with a note) if this process may
/// not raise it that far.
fn set_limit(resource: libc::__rlimit_resource_t, name: &str, value: u64) -> bool {
    let r = libc::rlimit { rlim_cur: value, rlim_max: value };
    // SAFETY: `r` is a valid rlimit for the duration of the call.
    if unsafe { libc::setrlimit(resource, &r) } != 0 {
        let e = std::io::Error::last_os_error();
        eprintln!("NOTE: cannot set {name} to {value} ({e}): skipping");
        return false;
    }
    true
}

fn run(what: &str, target: fn(())) {
    let mut child = Process::spawn((), target).unwrap();
    assert_eq!(child.join().unwrap(), 0, "{what}: the child failed (see its stderr)");
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// 19,000 queues at once under `RLIMIT_NOFILE` 20,000 (one descriptor each), every one
/// carrying an item.
#[test]
fn a_process_holds_19000_queues() {
    run("19,000 queues", |()| {
        if !set_limit(libc::RLIMIT_NOFILE, "RLIMIT_NOFILE", NOFILE) {
            return;
        }
        let before = open_fds();
        let queues: Vec<Queue<u32>> = (0..19_000)
            .map(|i| Queue::new().unwrap_or_else(|e| panic!("queue {i}: {e}")))
            .collect();
        assert!(open_fds() - before <= 19_000, "a queue holds at most one descriptor");
        for (i, q) in queues.iter().enumerate() {
            q.put(i as u32).unwrap();
        }
        for (i, q) in queues.iter().enumerate() {
            assert_eq!(q.get().unwrap(), i as u32);
        }
    });
}

/// 9,000 pipes at once under `RLIMIT_NOFILE` 20,000: this process holds one end of each (2
/// descriptors), their other ends are in children (300 each), and every one carries a message
/// each way.
#[test]
fn a_process_holds_9000_pipes() {
    run("9,000 pipes", |()| {
        if !set_limit(libc::RLIMIT_NOFILE, "RLIMIT_NOFILE", NOFILE) {
            return;
        }
        const BATCH: usize = 300;
        let before = open_fds();
        let mut ours = Vec::new();
        let mut children = Vec::new();
        while ours.len() < 9_000 {
            let mut theirs = Vec::new();
            for _ in 0..BATCH {
                let (a, b) = pipe().unwrap_or_else(|e| panic!("pipe {}: {e}", ours.len()));
                ours.push(a);
                theirs.push(b);
            }
            let echo = |ends: Vec<procshare::Connection>| {
                for c in &ends {
                    let v: u32 = c.recv().unwrap();
                    c.send(&(v + 1)).unwrap();
                }
            };
            children.push(Process::spawn(theirs, echo).unwrap());
        }
        let held = open_fds() - before;
        assert!(held <= 2 * 9_000 + children.len(), "{held} descriptors for 9,000 pipe ends");
        for (i, a) in ours.iter().enumerate() {
            a.send(&(i as u32)).unwrap();
        }
        for (i, a) in ours.iter().enumerate() {
            assert_eq!(a.recv::<u32>().unwrap(), i as u32 + 1);
        }
        for mut c in children {
            assert_eq!(c.join().unwrap(), 0);
        }
    });
}

/// As many pipes as `RLIMIT_NOFILE` 20,000 allows with both ends in this process (a pipe end
/// holds 2 descriptors, its socket and its region, and the two ends share the region: 3 a
/// pipe), every one carrying a message each way.
#[test]
fn a_process_holds_6000_pipes_with_both_ends() {
    run("6,000 local pipes", |()| {
        if !set_limit(libc::RLIMIT_NOFILE, "RLIMIT_NOFILE", NOFILE) {
            return;
        }
        let before = open_fds();
        let pipes: Vec<_> =
            (0..6_000).map(|i| pipe().unwrap_or_else(|e| panic!("pipe {i}: {e}"))).collect();
        assert_eq!(open_fds() - before, 3 * 6_000, "a pipe holds 3 descriptors");
        for (i, (a, b)) in pipes.iter().enumerate() {
            a.send(&(i as u32)).unwrap();
            b.send(&(i as u32 + 1)).unwrap();
        }
        for (i, (a, b)) in pipes.iter().enumerate() {
            assert_eq!(b.recv::<u32>().unwrap(), i as u32);
            assert_eq!(a.recv::<u32>().unwrap(), i as u32 + 1);
        }
        for (a, _) in &pipes[..100] {
            assert!(!a.poll(Some(Duration::ZERO)).unwrap());
        }
    });
}

/// Descriptors running out is an error naming `RLIMIT_NOFILE` and its value, for queues and
/// for pipes alike.
#[test]
fn running_out_of_descriptors_names_the_limit() {
    run("RLIMIT_NOFILE reached", |()| {
        let limit = open_fds() as u64 + 50;
        if !set_limit(libc::RLIMIT_NOFILE, "RLIMIT_NOFILE", limit) {
            return;
        }
        let want = format!("RLIMIT_NOFILE {limit} reached");
        let mut queues = Vec::new();
        let e = loop {
            match Queue::<u8>::new() {
                Ok(q) => queues.push(q),
                Err(e) => break e.to_string(),
            }
            assert!(queues.len() < 100, "more queues than descriptors");
        };
        assert!(e.contains(&want), "the error names the limit: {e}");
        queues.pop();
        queues.pop();
        let mut pipes = Vec::new();
        let e = loop {
            match pipe() {
                Ok(p) => pipes.push(p),
                Err(e) => break e.to_string(),
            }
            assert!(pipes.len() < 100, "more pipes than descriptors");
        };
        assert!(e.contains(&want), "the error names the limit: {e}");
    });
}

/// Under `RLIMIT_AS` 1 GiB a queue and a pipe work, a 1 MiB message goes through each, and
/// address space running out is an error naming `RLIMIT_AS` and its value.
#[test]
fn a_queue_and_a_pipe_work_under_a_1_gib_address_space_limit() {
    run("RLIMIT_AS 1 GiB", |()| {
        const GIB: u64 = 1 << 30;
        if !set_limit(libc::RLIMIT_AS, "RLIMIT_AS", GIB) {
            return;
        }
        let big: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        let q = Queue::<serde_bytes::ByteBuf>::new().unwrap();
        for _ in 0..3 {
            q.put(serde_bytes::ByteBuf::from(big.clone())).unwrap();
        }
        for _ in 0..3 {
            assert_eq!(q.get().unwrap().as_slice(), &big[..]);
        }
        let (a, b) = pipe().unwrap();
        for _ in 0..3 {
            a.send_bytes(&big).unwrap();
            assert_eq!(b.recv_bytes().unwrap(), big);
            b.send(&"small").unwrap();
            assert_eq!(a.recv::<String>().unwrap(), "small");
        }
        // Then: queues until the address space is used up (2 MiB each once used).
        let mut queues = Vec::new();
        let e = loop {
            match Queue::<u8>::new().and_then(|q| q.put(1).map(|()| q)) {
                Ok(q) => queues.push(q),
                Err(e) => break e.to_string(),
            }
            assert!(queues.len() < 1000, "1,000 queues in 1 GiB of address space");
        };
        assert!(e.contains(&format!("RLIMIT_AS {GIB}")), "the error names the limit: {e}");
        assert!(e.contains("vm.max_map_count"), "the error names the map count too: {e}");
        // What was made still works.
        drop(queues.split_off(queues.len() / 2));
        q.put(serde_bytes::ByteBuf::from(big.clone())).unwrap();
        assert_eq!(q.get().unwrap().as_slice(), &big[..]);
    });
}
