//! Named queues (issue 14, item 1): `Queue::create_named` / `Queue::open` across unrelated
//! processes, the lifetime rules of named `SharedMemory` (SIGKILL included), `shm ls`, and the
//! files another user (or a mistake) can put at a queue's name.

use procshare::{pipe, Connection, Error, Format, JoinableQueue, Process, Queue};
use std::os::unix::fs::{lchown, symlink, FileExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn path(name: &str) -> PathBuf {
    Path::new("/dev/shm").join(name)
}

fn exists(name: &str) -> bool {
    std::fs::symlink_metadata(path(name)).is_ok()
}

/// A name no other test (or test run) uses.
fn unique(tag: &str) -> String {
    format!("pq{}{tag}", std::process::id())
}

/// Waits (bounded) for `cond`; the bound only stops a broken test from hanging.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// Joins a child, killing it (and failing) if it hangs.
fn join(mut p: Process) -> i32 {
    match p.join_timeout(Duration::from_secs(30)).unwrap() {
        Some(code) => code,
        None => {
            p.kill().unwrap();
            let _ = p.join();
            panic!("the child hung (killed after 30 s)");
        }
    }
}

/// Removes planted files however the test ends (files the test made itself at a name).
struct Planted(Vec<PathBuf>);

impl Drop for Planted {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// An unrelated process: gets only the name, opens the queue, checks what it learns from the
/// queue itself (maxsize, format), takes one item and answers on the same queue.
fn opener(name: String) {
    let q = Queue::<String>::open(&name).unwrap();
    assert_eq!(q.name(), Some(name.as_str()));
    assert_eq!(q.maxsize(), 8);
    assert_eq!(q.format(), Format::Native);
    let got = q.get_timeout(Duration::from_secs(20)).unwrap();
    q.put(format!("{got} back")).unwrap();
}

#[test]
fn an_unrelated_process_opens_the_queue_by_name() {
    let name = unique("open");
    let q = Queue::<String>::create_named(&name, 8, Format::Native).unwrap();
    assert_eq!(q.name(), Some(name.as_str()));
    assert!(exists(&name));
    q.put("ping".into()).unwrap();
    let p = Process::spawn(name.clone(), opener).unwrap();
    assert_eq!(join(p), 0, "see the child's stderr");
    assert_eq!(q.get_timeout(Duration::from_secs(20)).unwrap(), "ping back");
    // A leading slash (POSIX style) names the same queue.
    let again = Queue::<String>::open(&format!("/{name}")).unwrap();
    assert_eq!(again.name(), Some(name.as_str()));
}

#[test]
fn create_twice_is_already_exists_and_a_missing_name_is_not_found() {
    let name = unique("twice");
    let _q = Queue::<u8>::create_named(&name, 0, Format::Native).unwrap();
    assert!(matches!(
        Queue::<u8>::create_named(&name, 0, Format::Pickle),
        Err(Error::AlreadyExists(n)) if n == name
    ));
    assert!(matches!(
        JoinableQueue::<u8>::create_named(&name, 0, Format::Native),
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(Queue::<u8>::open(&unique("nosuch")), Err(Error::NotFound(_))));
    assert!(matches!(JoinableQueue::<u8>::open(&unique("nosuch")), Err(Error::NotFound(_))));
    for bad in ["", "/", "a/b", "..", "a\0b", &"x".repeat(31)] {
        assert!(matches!(Queue::<u8>::open(bad), Err(Error::InvalidArgument(_))), "{bad:?}");
        assert!(
            matches!(
                Queue::<u8>::create_named(bad, 0, Format::Native),
                Err(Error::InvalidArgument(_))
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        Queue::<u8>::create_named(&unique("big"), usize::MAX, Format::Native),
        Err(Error::InvalidArgument(_))
    ));
    assert!(!exists(&unique("big")), "a refused create leaves no file");
}

#[test]
fn anonymous_queues_have_no_name_and_the_native_format() {
    let q = Queue::<u8>::new().unwrap();
    assert_eq!(q.name(), None);
    assert_eq!(q.format(), Format::Native);
    let j = JoinableQueue::<u8>::bounded(3).unwrap();
    assert_eq!(j.name(), None);
    assert_eq!(j.format(), Format::Native);
}

#[test]
fn joinable_state_is_shared_by_name() {
    let name = unique("join");
    let q = JoinableQueue::<u32>::create_named(&name, 0, Format::Pickle).unwrap();
    let other = JoinableQueue::<u32>::open(&name).unwrap();
    assert_eq!(other.format(), Format::Pickle, "the format comes from the queue");
    q.put(5).unwrap();
    assert_eq!(other.unfinished_tasks(), 1);
    assert_eq!(other.get().unwrap(), 5);
    other.task_done().unwrap();
    q.join_timeout(Duration::from_secs(20)).unwrap();
}

fn child_of_named(q: Queue<u64>) {
    assert!(q.name().is_some_and(|n| n.starts_with("pq")), "the name travels with the handle");
    q.put(q.get().unwrap() + 1).unwrap();
}

#[test]
fn a_named_queue_passes_to_a_child_as_a_handle() {
    let name = unique("handle");
    let q = Queue::<u64>::create_named(&name, 0, Format::Native).unwrap();
    q.put(41).unwrap();
    let p = Process::spawn(q.clone(), child_of_named).unwrap();
    assert_eq!(join(p), 0, "see the child's stderr");
    assert_eq!(q.get().unwrap(), 42);
}

/// Creates (or opens) a named queue, reports, then waits to be killed or told to exit.
fn hold((conn, name, create): (Connection, String, bool)) {
    let q = if create {
        Queue::<u8>::create_named(&name, 0, Format::Native).unwrap()
    } else {
        Queue::<u8>::open(&name).unwrap()
    };
    drop(q); // the process, not the handle, keeps the name alive
    conn.send(&()).unwrap();
    let _ = conn.recv::<u8>();
}

#[test]
fn gone_after_every_user_died_including_a_sigkilled_creator() {
    // A sole creator, SIGKILLed.
    let name = unique("kill1");
    let (here, there) = pipe().unwrap();
    let p = Process::spawn((there, name.clone(), true), hold).unwrap();
    here.recv::<()>().unwrap();
    assert!(exists(&name));
    let info = procshare::shm::list_segments().unwrap();
    let me = info.iter().find(|s| s.name == name).expect("`shm ls` lists the queue");
    assert!(me.queue && me.exists && !me.persistent);
    assert_eq!(me.alive_users, 1);
    p.kill().unwrap();
    assert!(eventually(|| !exists(&name)), "{name} leaked after its creator was SIGKILLed");

    // A creator SIGKILLed while an opener lives: the queue stays until the opener exits.
    let name = unique("kill2");
    let (c_here, c_there) = pipe().unwrap();
    let creator = Process::spawn((c_there, name.clone(), true), hold).unwrap();
    c_here.recv::<()>().unwrap();
    let (u_here, u_there) = pipe().unwrap();
    let user = Process::spawn((u_there, name.clone(), false), hold).unwrap();
    u_here.recv::<()>().unwrap();
    creator.kill().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(procshare::shm::clean(false).unwrap().iter().all(|n| n != &name));
    assert!(exists(&name), "removed while a user was alive");
    let info = procshare::shm::list_segments().unwrap();
    assert_eq!(info.iter().find(|s| s.name == name).expect("listed").alive_users, 1);
    u_here.send(&0u8).unwrap();
    assert_eq!(join(user), 0);
    assert!(eventually(|| !exists(&name)), "{name} leaked after its last user exited");
}

fn garbage_opener(name: String) {
    // Every call on a queue whose shared memory is garbage is an Ok or an Err, never a panic,
    // a hang or a fault: the exit status says so.
    let q = match Queue::<String>::open(&name) {
        Ok(q) => q,
        Err(_) => return,
    };
    let _ = q.put_nowait("x".into());
    let _ = q.get_timeout(Duration::from_millis(100));
    let _ = q.get_bytes_nowait();
    let _ = q.qsize();
    q.shutdown(true);
    let _ = q.put_nowait("y".into());
}

#[test]
fn a_scribbled_queue_gives_errors_never_a_crash() {
    let name = unique("scrib");
    let q = Queue::<String>::create_named(&name, 4, Format::Native).unwrap();
    q.put("an item".into()).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(path(&name)).unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..6 {
        // Garbage over the queue header (not the region header: that one is checked on open,
        // see the next test) and the first record.
        let mut junk = vec![0u8; 4096];
        for b in junk.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes());
        }
        let at = if round % 2 == 0 { 64 } else { 4096 };
        file.write_all_at(&junk[..4096 - 64], at).unwrap();
        // Keep the format word valid (garbage there is refused on open: covered below), so the
        // opener gets to run on the rest of the garbage.
        file.write_all_at(&0u64.to_le_bytes(), 64 + 16).unwrap();
        let p = Process::spawn(name.clone(), garbage_opener).unwrap();
        assert_eq!(join(p), 0, "round {round}: the opener crashed on garbage (see its stderr)");
    }
}

#[test]
fn what_is_not_a_queue_at_the_name_is_refused() {
    let mut planted = Planted(Vec::new());
    let refused = |name: &str, what: &str| {
        match Queue::<u8>::open(name) {
            Err(Error::NotFound(_)) => panic!("{what}: reported as missing"),
            Err(_) => {}
            Ok(_) => panic!("{what}: opened as a queue"),
        }
        // Nor may creating over it succeed or remove it.
        assert!(Queue::<u8>::create_named(name, 0, Format::Native).is_err(), "{what}");
        assert!(exists(name), "{what}: removed");
    };

    // Files of ours that are not queues: empty, short, a plain segment's zeros, a region
    // header of another kind, a queue header that lies about its size.
    let real = unique("real");
    let _q = Queue::<u8>::create_named(&real, 0, Format::Native).unwrap();
    let mut header = vec![0u8; 64];
    std::fs::File::open(path(&real)).unwrap().read_exact_at(&mut header, 0).unwrap();
    let mut other_kind = header.clone();
    other_kind[..8].copy_from_slice(b"NOTAQUEU");
    let cases: [(&str, Vec<u8>, u64); 5] = [
        ("empty", vec![], 0),
        ("short", b"PSQUEUE1".to_vec(), 8),
        ("zeros", vec![], 1 << 20),
        ("another kind", other_kind, 1 << 20),
        ("a header that lies about the size", header.clone(), 1 << 20),
    ];
    for (i, (what, bytes, len)) in cases.into_iter().enumerate() {
        let name = unique(&format!("np{i}"));
        let f = std::fs::File::create(path(&name)).unwrap();
        planted.0.push(path(&name));
        f.set_len(len).unwrap();
        f.write_all_at(&bytes, 0).unwrap();
        refused(&name, what);
    }

    // A queue of another procshare version (another layout): refused, and the error says so.
    let mut old = header.clone();
    old[8..12].copy_from_slice(&1u32.to_le_bytes());
    let name = unique("oldversion");
    let f = std::fs::File::create(path(&name)).unwrap();
    planted.0.push(path(&name));
    f.set_len(1 << 20).unwrap();
    f.write_all_at(&old, 0).unwrap();
    refused(&name, "another version");
    let e = Queue::<u8>::open(&name).unwrap_err().to_string();
    assert!(e.contains("another procshare version"), "the error says why: {e}");

    // A named SharedMemory is not a queue either.
    let shm_name = unique("shm");
    let shm = procshare::SharedMemory::create_named(&shm_name, 4096).unwrap();
    refused(&shm_name, "a SharedMemory segment");
    shm.unlink().unwrap();

    // A directory.
    let dir = unique("dir");
    std::fs::create_dir(path(&dir)).unwrap();
    assert!(matches!(Queue::<u8>::open(&dir), Err(e) if !matches!(e, Error::NotFound(_))));
    std::fs::remove_dir(path(&dir)).unwrap();

    // A symlink to a real queue: never followed.
    let link = unique("link");
    symlink(path(&real), path(&link)).unwrap();
    planted.0.push(path(&link));
    refused(&link, "a symlink to a queue");

    // A queue file that another user owns (they could rewrite it under us): refused. Needs
    // root to make a file another user's.
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let theirs = unique("theirs");
        let _t = Queue::<u8>::create_named(&theirs, 0, Format::Native).unwrap();
        // Another user's file now: the sweeper would leave it, so the guard removes it.
        planted.0.push(path(&theirs));
        lchown(path(&theirs), Some(54397), Some(54397)).unwrap();
        refused(&theirs, "another user's queue file");
        let e = Queue::<u8>::open(&theirs).unwrap_err().to_string();
        assert!(e.contains("owned by uid 54397"), "the error says why: {e}");
    } else {
        eprintln!("NOTE: not root: skipping the other user's file case");
    }
}

#[test]
fn a_creator_racing_openers_is_never_half_seen() {
    // Openers that poll for the name while it is being created either find nothing yet or a
    // whole queue: never a half-made one reported as garbage.
    for round in 0..5 {
        let name = unique(&format!("race{round}"));
        let n2 = name.clone();
        let opener = std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(20);
            loop {
                match Queue::<u8>::open(&n2) {
                    Ok(q) => return q.get_timeout(Duration::from_secs(20)),
                    Err(Error::NotFound(_)) if Instant::now() < end => std::thread::yield_now(),
                    Err(e) => return Err(e),
                }
            }
        });
        let q = Queue::<u8>::create_named(&name, 0, Format::Native).unwrap();
        q.put(round).unwrap();
        assert_eq!(opener.join().unwrap().unwrap(), round);
    }
}
