//! Processes against hostile starts: fork from a multithreaded parent, a forged or stray
//! start-up record (`PROCSHARE_BOOT_FD`) handed to a procshare binary.

use procshare::{Error, Process, StartMethod};

fn fork_trivial() -> procshare::Result<Process> {
    Process::builder().start_method(StartMethod::Fork).spawn((), |()| {})
}

/// `cargo test` runs this on a thread beside the main one: forking here would give a child
/// that may find the allocator's or stdout's lock held by a thread that does not exist there.
#[test]
fn fork_from_a_multithreaded_parent_is_refused() {
    match fork_trivial() {
        Err(Error::InvalidArgument(msg)) => {
            assert!(msg.contains("single-threaded") && msg.contains("threads"), "{msg}")
        }
        other => panic!("fork from a multithreaded parent was not refused: {other:?}"),
    }
}

/// In a single-threaded process Fork works, is refused while a second thread lives, and works
/// again once that thread has ended.
#[test]
fn fork_follows_the_thread_count() {
    let mut p = Process::spawn((), |()| {
        let mut f = fork_trivial().expect("fork from a single-threaded process");
        assert_eq!(f.join().unwrap(), 0);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let _ = rx.recv();
        });
        assert!(matches!(fork_trivial(), Err(Error::InvalidArgument(_))));
        drop(tx);
        t.join().unwrap();
        // The kernel may list a joined thread for a moment longer: a bounded wait.
        let mut tries = 0;
        let mut f = loop {
            match fork_trivial() {
                Ok(f) => break f,
                Err(e) if tries < 1000 => {
                    tries += 1;
                    let _ = e;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(e) => panic!("fork still refused after the other thread ended: {e}"),
            }
        };
        assert_eq!(f.join().unwrap(), 0);
    })
    .unwrap();
    assert_eq!(p.join().unwrap(), 0, "see the child's stderr");
}
