//! `SharedMemory`, the tracker and `SharedMemoryManager`, across real processes: bounds, names,
//! lifetime after SIGKILL, persistence, `list_segments`/`clean`.

use procshare::{pipe, Connection, Error, Process, SharedMemory, SharedMemoryManager, StartMethod};
use std::path::Path;
use std::time::{Duration, Instant};

fn exists(name: &str) -> bool {
    Path::new("/dev/shm").join(name).exists()
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

fn unique(tag: &str) -> String {
    format!("psm_t{}{tag}", std::process::id())
}

#[test]
fn create_read_write_open_unlink() {
    let shm = SharedMemory::create(100).unwrap();
    assert!(shm.name().starts_with("psm_") && shm.name().len() == 12);
    assert_eq!(shm.size(), 100);
    shm.write(95, b"hello").unwrap();
    let other = SharedMemory::open(shm.name()).unwrap();
    assert_eq!(other.size(), 100, "the creator's size, not a page");
    let mut buf = [0u8; 5];
    other.read(95, &mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    assert!(matches!(shm.write(96, b"hello"), Err(Error::InvalidArgument(_))));
    assert!(matches!(shm.read(usize::MAX, &mut buf), Err(Error::InvalidArgument(_))));
    assert!(matches!(shm.write(101, b""), Err(Error::InvalidArgument(_))));
    shm.write(100, b"").unwrap();
    // SAFETY: no other writer during the test.
    assert_eq!(unsafe { other.as_slice() }.len(), 100);
    unsafe { shm.as_mut_slice()[0] = 7 };
    assert_eq!(unsafe { *other.as_ptr() }, 7);

    use std::os::unix::fs::PermissionsExt;
    let mode =
        std::fs::metadata(Path::new("/dev/shm").join(shm.name())).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    shm.unlink().unwrap();
    assert!(!exists(shm.name()));
    assert!(matches!(shm.unlink(), Err(Error::NotFound(_))));
    assert!(matches!(other.unlink(), Err(Error::NotFound(_))));
    assert!(matches!(SharedMemory::open(shm.name()), Err(Error::NotFound(_))));
    // Existing mappings stay valid.
    other.write(0, b"x").unwrap();
}

#[test]
fn bad_arguments() {
    assert!(matches!(SharedMemory::create(0), Err(Error::InvalidArgument(_))));
    assert!(matches!(SharedMemory::create_named("a/b", 8), Err(Error::InvalidArgument(_))));
    assert!(matches!(SharedMemory::create_named("", 8), Err(Error::InvalidArgument(_))));
    assert!(matches!(SharedMemory::create_named("a\0b", 8), Err(Error::InvalidArgument(_))));
    let long = "x".repeat(31);
    assert!(matches!(SharedMemory::create_named(&long, 8), Err(Error::InvalidArgument(_))));
    assert!(matches!(SharedMemory::open(&long), Err(Error::InvalidArgument(_))));
    assert!(matches!(SharedMemory::open("psm_nonexistent_x"), Err(Error::NotFound(_))));

    let name = unique("dup");
    let a = SharedMemory::create_named(&name, 8).unwrap();
    assert!(matches!(SharedMemory::create_named(&name, 8), Err(Error::AlreadyExists(_))));
    // A leading slash is the POSIX spelling of the same name.
    assert_eq!(SharedMemory::open(&format!("/{name}")).unwrap().name(), name);
    a.unlink().unwrap();
}

#[test]
fn children_share_by_name_and_by_handle() {
    let shm = SharedMemory::create(64).unwrap();
    let mut by_name = Process::spawn(shm.name().to_owned(), |name: String| {
        let s = SharedMemory::open(&name).unwrap();
        s.write(0, b"by name").unwrap();
    })
    .unwrap();
    assert_eq!(by_name.join().unwrap(), 0);
    let mut by_handle = Process::spawn(shm.clone(), |s: SharedMemory| {
        assert_eq!(s.size(), 64);
        s.write(8, b"by handle").unwrap();
    })
    .unwrap();
    assert_eq!(by_handle.join().unwrap(), 0);
    let mut buf = [0u8; 17];
    shm.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"by name\0by handle");
    // The children are gone; we still use it, so it stays.
    assert!(exists(shm.name()));
    shm.unlink().unwrap();
}

#[test]
fn forked_child_shares_the_mapping() {
    // Fork needs a single-threaded parent: the test thread's process has several.
    let mut parent = Process::spawn((), |()| {
        let shm = SharedMemory::create(8).unwrap();
        let mut p = Process::builder()
            .start_method(StartMethod::Fork)
            .spawn(shm.clone(), |s: SharedMemory| s.write(0, b"forked").unwrap())
            .unwrap();
        assert_eq!(p.join().unwrap(), 0);
        let mut buf = [0u8; 6];
        shm.read(0, &mut buf).unwrap();
        assert_eq!(&buf, b"forked");
        shm.unlink().unwrap();
    })
    .unwrap();
    assert_eq!(parent.join().unwrap(), 0, "see the child's stderr");
}

fn create_and_wait(conn: Connection) {
    let persistent: bool = conn.recv().unwrap();
    let shm = if persistent {
        SharedMemory::create_persistent(4096).unwrap()
    } else {
        SharedMemory::create(4096).unwrap()
    };
    conn.send(&shm.name().to_owned()).unwrap();
    // Wait to be killed.
    let _ = conn.recv::<u8>();
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn sigkilled_sole_creator_leaves_nothing() {
    let (here, there) = pipe().unwrap();
    let p = Process::spawn(there, create_and_wait).unwrap();
    here.send(&false).unwrap();
    let name: String = here.recv().unwrap();
    assert!(exists(&name));
    p.kill().unwrap();
    assert!(eventually(|| !exists(&name)), "{name} leaked after its creator was SIGKILLed");
}

fn open_and_wait(conn: Connection) {
    let name: String = conn.recv().unwrap();
    let _shm = SharedMemory::open(&name).unwrap();
    conn.send(&()).unwrap();
    let _ = conn.recv::<u8>(); // until told to exit (or the parent dies)
}

#[test]
fn segment_lives_while_any_user_lives() {
    let (c_here, c_there) = pipe().unwrap();
    let creator = Process::spawn(c_there, create_and_wait).unwrap();
    c_here.send(&false).unwrap();
    let name: String = c_here.recv().unwrap();

    let (u_here, u_there) = pipe().unwrap();
    let mut user = Process::spawn(u_there, open_and_wait).unwrap();
    u_here.send(&name).unwrap();
    u_here.recv::<()>().unwrap();

    creator.kill().unwrap();
    // The other user is alive: the segment must stay (give a sweeper every chance to be wrong).
    std::thread::sleep(Duration::from_millis(300));
    assert!(procshare::shm::clean(false).unwrap().iter().all(|n| n != &name));
    assert!(exists(&name), "unlinked while a user was alive");
    let info = procshare::shm::list_segments().unwrap();
    let me = info.iter().find(|s| s.name == name).expect("listed");
    assert_eq!(me.alive_users, 1);
    assert_eq!(me.size, 4096);
    assert!(!me.persistent);

    u_here.send(&0u8).unwrap();
    assert_eq!(user.join().unwrap(), 0);
    assert!(eventually(|| !exists(&name)), "{name} leaked after its last user exited");
}

#[test]
fn persistent_segments_outlive_their_creator() {
    let (here, there) = pipe().unwrap();
    let mut p = Process::spawn(there, create_and_wait).unwrap();
    here.send(&true).unwrap();
    let name: String = here.recv().unwrap();
    p.kill().unwrap();
    p.join().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    procshare::shm::clean(false).unwrap();
    assert!(exists(&name));
    let info = procshare::shm::list_segments().unwrap();
    assert!(info.iter().any(|s| s.name == name && s.persistent));
    let shm = SharedMemory::open(&name).unwrap();
    shm.unlink().unwrap();
    assert!(!exists(&name));
}

#[test]
fn dropping_handles_keeps_the_segment_for_the_process() {
    let name = {
        let shm = SharedMemory::create(10).unwrap();
        shm.write(0, b"kept").unwrap();
        shm.name().to_owned()
    };
    let again = SharedMemory::open(&name).unwrap();
    let mut buf = [0u8; 4];
    again.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"kept");
    again.unlink().unwrap();
}

#[test]
fn list_and_clean_see_live_segments() {
    let shm = SharedMemory::create(123).unwrap();
    let info = procshare::shm::list_segments().unwrap();
    let me = info.iter().find(|s| s.name == shm.name()).expect("listed");
    assert_eq!(me.size, 123);
    assert_eq!(me.creator_pid, std::process::id());
    assert!(me.alive_users >= 1 && me.exists);
    assert!(!procshare::shm::clean(true).unwrap().contains(&shm.name().to_owned()));
    assert!(!procshare::shm::clean(false).unwrap().contains(&shm.name().to_owned()));
    assert!(exists(shm.name()));
    shm.unlink().unwrap();
    assert!(procshare::shm::list_segments().unwrap().iter().all(|s| s.name != shm.name()));
}

#[test]
fn manager_unlinks_what_it_made() {
    let smm = SharedMemoryManager::new().unwrap();
    let a = smm.shared_memory(32).unwrap();
    let l = smm.shareable_list(&[procshare::Item::Int(5)]).unwrap();
    let (an, ln) = (a.name().to_owned(), l.name().to_owned());
    assert!(exists(&an) && exists(&ln));
    a.unlink().unwrap(); // already gone: shutdown skips it
    smm.shutdown().unwrap();
    assert!(!exists(&an) && !exists(&ln));
    assert!(matches!(SharedMemory::open(&ln), Err(Error::NotFound(_))));
    assert_eq!(l.get(0).unwrap(), procshare::Item::Int(5), "handles keep working");

    let b = {
        let smm = SharedMemoryManager::new().unwrap();
        smm.shared_memory(8).unwrap().name().to_owned()
    };
    assert!(!exists(&b), "drop unlinks too");
}

fn churn((prefix, started): (String, Connection)) {
    // Creates, uses and unlinks segments and lists as fast as it can until killed.
    for i in 0u64.. {
        if i == 10 {
            started.send(&()).unwrap();
        }
        let name = format!("{prefix}{}", i % 4);
        if let Ok(s) = SharedMemory::create_named(&name, 64) {
            let _ = s.write(0, b"x");
            if i % 3 != 0 {
                let _ = s.unlink();
            }
        }
        if let Ok(l) = procshare::ShareableList::new(&[procshare::Item::Int(1)]) {
            let _ = l.shm().unlink();
        }
    }
}

#[test]
fn sigkill_at_any_moment_of_create_leaks_nothing() {
    for round in 0..6u64 {
        let prefix = format!("psm_k{}_{round}_", std::process::id() % 100_000);
        let (here, there) = pipe().unwrap();
        let p = Process::spawn((prefix.clone(), there), churn).unwrap();
        here.recv::<()>().unwrap();
        // Let it run for a varying while, then kill it wherever it is.
        std::thread::sleep(Duration::from_millis(3 + 7 * round));
        p.kill().unwrap();
        let pid = p.pid();
        let ours = || {
            let named = std::fs::read_dir("/dev/shm")
                .unwrap()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(&prefix));
            let temp = std::fs::read_dir("/dev/shm").unwrap().flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with(&format!("procshare-tmp.{pid}."))
            });
            let listed =
                procshare::shm::list_segments().unwrap().iter().any(|s| s.creator_pid == pid);
            named || temp || listed
        };
        assert!(eventually(|| !ours()), "round {round}: the killed process left segments behind");
    }
}
