//! Another local user against the shared-memory registry (issue 9, holes 1 and 6): a planted
//! registry root, symlinks and FIFOs in and next to it, and predictable temporary names.
//!
//! Each test plays both users with real processes: the test process (root) is the ATTACKER — it
//! plants files and hands them to uid [`ATTACKER`] — and a spawned child that `setuid`s to a
//! test-only uid is the VICTIM. Each test has its own victim uid, so the attacks stay out of the
//! real registry (`/dev/shm/procshare-0`) that other tests use at the same time. A victim that
//! hangs is killed after a bound and fails the test; every planted path is removed by a guard.

use procshare::{Error, Process, SharedMemory};
use std::ffi::CString;
use std::os::unix::fs::{lchown, symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

const ATTACKER: u32 = 54399;

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    eprintln!("!!!!! hostile_shm: SKIPPED — these tests need root to play two users !!!!!");
    false
}

/// Becomes `uid` for good (group too), as a victim process of another user.
fn become_user(uid: u32) {
    // SAFETY: plain syscalls without pointers.
    let ok = unsafe { libc::setgid(uid) == 0 && libc::setuid(uid) == 0 };
    assert!(ok, "setuid({uid}) failed: {}", std::io::Error::last_os_error());
}

fn registry(uid: u32) -> PathBuf {
    PathBuf::from(format!("/dev/shm/procshare-{uid}"))
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().to_str().unwrap()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0, "mkfifo {}", path.display());
    // Open to all despite the umask: the attacker wants the victim to get in.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).unwrap();
}

fn chown(path: &Path, uid: u32) {
    lchown(path, Some(uid), Some(uid)).unwrap();
}

/// Removes everything a test planted or its victim made, however the test ends.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            match std::fs::symlink_metadata(p) {
                Ok(m) if m.is_dir() => drop(std::fs::remove_dir_all(p)),
                Ok(_) => drop(std::fs::remove_file(p)),
                Err(_) => {}
            }
        }
    }
}

/// Runs `victim(arg)` in a child and returns its exit code; a child still running after the
/// bound (a hang — what several of these attacks did) is killed and fails the test.
fn run_victim<A>(arg: A, victim: fn(A)) -> i32
where
    A: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut p = Process::spawn(arg, victim).unwrap();
    match p.join_timeout(Duration::from_secs(20)).unwrap() {
        Some(code) => code,
        None => {
            p.kill().unwrap();
            let _ = p.join();
            panic!("the victim hung (killed after 20 s)");
        }
    }
}

/// A directory of the victim's with a file in it, for an attacker to aim a symlink at.
fn victim_data(uid: u32, tag: &str) -> (PathBuf, PathBuf) {
    let dir = PathBuf::from(format!("/tmp/procshare-hostile-{tag}-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("precious");
    std::fs::write(&file, b"the victim's data").unwrap();
    chown(&dir, uid);
    chown(&file, uid);
    (dir, file)
}

fn assert_refuses_root(r: Result<impl std::fmt::Debug, Error>, uid: u32, what: &str) {
    let e = r.expect_err(what);
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("/dev/shm/procshare-{uid}")) && msg.contains("remove"),
        "{what}: the error must name the registry and the fix, got: {msg}"
    );
}

fn victim_in_foreign_root((uid, name): (u32, String)) {
    become_user(uid);
    assert_refuses_root(SharedMemory::open(&name), uid, "open through a foreign registry");
    assert_refuses_root(SharedMemory::create(8), uid, "create in a foreign registry");
    assert_refuses_root(procshare::shm::list_segments(), uid, "ls of a foreign registry");
    assert_refuses_root(procshare::shm::clean(false), uid, "clean of a foreign registry");
}

/// Hole 1: another user makes the victim's registry root first and puts a symlink in it; the
/// victim's `open` of that (missing) name used to sweep the "entry" — deleting every file in
/// the directory the symlink points at — and report a plain `NotFound`.
#[test]
fn foreign_registry_root_is_refused_and_nothing_is_deleted_through_it() {
    if !is_root() {
        return;
    }
    let uid = 54321;
    let root = registry(uid);
    let (data, precious) = victim_data(uid, "root");
    let _clean = Cleanup(vec![root.clone(), data.clone()]);
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
    chown(&root, ATTACKER);
    let name = format!("psm_hr{}", std::process::id() % 100_000);
    symlink(&data, root.join(&name)).unwrap();
    chown(&root.join(&name), ATTACKER);

    let code = run_victim((uid, name), victim_in_foreign_root);
    assert!(precious.exists(), "the victim's file was deleted through the planted symlink");
    assert_eq!(code, 0);
}

/// The registry root as a symlink to a directory the attacker controls is refused too.
#[test]
fn registry_root_symlink_is_refused() {
    if !is_root() {
        return;
    }
    let uid = 54322;
    let root = registry(uid);
    let target = PathBuf::from(format!("/tmp/procshare-hostile-target-{}", std::process::id()));
    let _clean = Cleanup(vec![root.clone(), target.clone()]);
    std::fs::create_dir(&target).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Owned by the victim and 0700: only the symlink betrays it.
    chown(&target, uid);
    symlink(&target, &root).unwrap();
    chown(&root, ATTACKER);
    let name = format!("psm_hs{}", std::process::id() % 100_000);
    assert_eq!(run_victim((uid, name), victim_in_foreign_root), 0);
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0, "the victim wrote through it");
}

/// A registry root of the right owner but open to others is refused.
#[test]
fn registry_root_open_to_others_is_refused() {
    if !is_root() {
        return;
    }
    let uid = 54323;
    let root = registry(uid);
    let _clean = Cleanup(vec![root.clone()]);
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
    chown(&root, uid);
    let name = format!("psm_hm{}", std::process::id() % 100_000);
    assert_eq!(run_victim((uid, name), victim_in_foreign_root), 0);
}

fn victim_with_symlinks((uid, missing, named, data): (u32, String, String, PathBuf)) {
    become_user(uid);
    // Registers a segment so the registry exists, as the victim's own earlier run made it.
    let shm = SharedMemory::create(8).unwrap();
    let root = registry(uid);
    // Stand-ins for entries a buggy or compromised process of the same user (or root) left: a
    // symlink named like a segment, and a segment directory whose files are symlinks.
    symlink(&data, root.join(&missing)).unwrap();
    std::fs::create_dir(root.join(&named)).unwrap();
    symlink(data.join("precious"), root.join(&named).join("meta.tmp")).unwrap();
    symlink(data.join("precious"), root.join(&named).join("meta")).unwrap();

    assert!(matches!(SharedMemory::open(&missing), Err(Error::NotFound(_))));
    let made = SharedMemory::create_named(&named, 16).unwrap();
    procshare::shm::clean(false).unwrap();
    procshare::shm::list_segments().unwrap();
    assert_eq!(
        std::fs::read(data.join("precious")).unwrap(),
        b"the victim's data",
        "a registry symlink was followed"
    );
    made.unlink().unwrap();
    shm.unlink().unwrap();
    // Nothing was deleted through the symlinks, and they are not ours to delete either.
    assert!(std::fs::symlink_metadata(root.join(&missing)).unwrap().is_symlink());
    std::fs::remove_file(root.join(&missing)).unwrap();
}

/// Hole 1 as the reviewer reproduced it: symlinks inside the victim's own registry are never
/// followed — not by `open` of a missing name (which sweeps the entry), not by `create` writing
/// `meta`, not by `clean`.
#[test]
fn registry_symlinks_are_never_followed() {
    if !is_root() {
        return;
    }
    let uid = 54324;
    let (data, precious) = victim_data(uid, "links");
    let _clean = Cleanup(vec![registry(uid), data.clone()]);
    let id = std::process::id() % 100_000;
    let arg = (uid, format!("psm_hl{id}"), format!("psm_hn{id}"), data.clone());
    let code = run_victim(arg, victim_with_symlinks);
    assert!(precious.exists(), "the victim's file was deleted through a registry symlink");
    assert_eq!(code, 0);
}

fn victim_creates(uid: u32) {
    become_user(uid);
    for _ in 0..3 {
        let shm = SharedMemory::create(64).unwrap();
        shm.write(0, b"ok").unwrap();
        shm.unlink().unwrap();
    }
}

/// Plants `make(path)` at every temporary name the victim's first creates would have used
/// under the old `procshare-tmp.<pid>.<seq>` scheme, after the victim started but before it
/// creates anything.
fn plant_at_temp_names(uid: u32, make: fn(&Path)) {
    let gate = PathBuf::from(format!("/tmp/procshare-hostile-gate-{uid}-{}", std::process::id()));
    let _ = std::fs::remove_file(&gate);
    let mut planted = vec![gate.clone()];
    let mut p = Process::spawn((uid, gate.clone()), |(uid, gate): (u32, PathBuf)| {
        while !gate.exists() {
            std::thread::sleep(Duration::from_millis(5));
        }
        victim_creates(uid);
    })
    .unwrap();
    for seq in 0..64 {
        let path = PathBuf::from(format!("/dev/shm/procshare-tmp.{}.{seq}", p.pid()));
        make(&path);
        chown(&path, ATTACKER);
        planted.push(path);
    }
    planted.push(registry(uid));
    let _clean = Cleanup(planted);
    std::fs::write(&gate, b"go").unwrap();
    match p.join_timeout(Duration::from_secs(20)).unwrap() {
        Some(code) => assert_eq!(code, 0, "create failed because of a planted temporary name"),
        None => {
            p.kill().unwrap();
            let _ = p.join();
            panic!("create hung on a planted temporary name (killed after 20 s)");
        }
    }
}

/// Hole 6: a FIFO at the victim's predictable temporary name used to hang `create` forever (it
/// opened the name without O_NONBLOCK while holding the directory lock).
#[test]
fn fifo_at_a_temp_name_does_not_hang_create() {
    if !is_root() {
        return;
    }
    plant_at_temp_names(54325, mkfifo);
}

/// Hole 6: a plain file at the victim's predictable temporary name used to make `create` fail.
#[test]
fn file_at_a_temp_name_does_not_fail_create() {
    if !is_root() {
        return;
    }
    plant_at_temp_names(54326, |p| std::fs::write(p, b"").unwrap());
}

fn victim_opens_odd_names((uid, names): (u32, Vec<String>)) {
    become_user(uid);
    for name in &names {
        let r = SharedMemory::open(name);
        let e = r.expect_err(&format!("open of a planted {name} must be refused"));
        let msg = e.to_string();
        assert!(msg.contains(&format!("/dev/shm/{name}")), "the error must name the path: {msg}");
        assert!(matches!(SharedMemory::create_named(name, 8), Err(Error::AlreadyExists(_))));
    }
}

/// What another user plants at a segment name in /dev/shm — a FIFO, a symlink (to a file the
/// victim can write), a world-writable file of theirs — is refused by `open` with an error
/// naming it, never mapped (a FIFO used to give a 0-byte segment, the attacker's file a segment
/// the attacker can read and rewrite) and never followed.
#[test]
fn odd_files_at_a_segment_name_are_refused() {
    if !is_root() {
        return;
    }
    let uid = 54327;
    let id = std::process::id() % 100_000;
    let (data, precious) = victim_data(uid, "odd");
    let fifo = format!("psm_hf{id}");
    let link = format!("psm_hy{id}");
    let theirs = format!("psm_ht{id}");
    let dev = |n: &str| PathBuf::from("/dev/shm").join(n);
    let _clean = Cleanup(vec![dev(&fifo), dev(&link), dev(&theirs), registry(uid), data]);
    mkfifo(&dev(&fifo));
    chown(&dev(&fifo), ATTACKER);
    symlink(&precious, dev(&link)).unwrap();
    chown(&dev(&link), ATTACKER);
    std::fs::write(dev(&theirs), [0u8; 64]).unwrap();
    std::fs::set_permissions(dev(&theirs), std::fs::Permissions::from_mode(0o666)).unwrap();
    chown(&dev(&theirs), ATTACKER);
    assert_eq!(run_victim((uid, vec![fifo, link, theirs]), victim_opens_odd_names), 0);
}

fn victim_leaves_stale_entry((uid, name): (u32, String)) {
    become_user(uid);
    // A persistent segment whose name is then removed behind procshare's back leaves a
    // registry entry naming a now-free name.
    let shm = SharedMemory::create_named_persistent(&name, 8).unwrap();
    drop(shm);
    std::fs::remove_file(Path::new("/dev/shm").join(&name)).unwrap();
}

fn victim_sweeps((uid, name): (u32, String)) {
    become_user(uid);
    let listed = procshare::shm::list_segments().unwrap();
    let me = listed.iter().find(|s| s.name == name).expect("the stale entry is listed");
    assert!(!me.exists, "another user's FIFO is not our segment");
    assert_eq!(procshare::shm::clean(false).unwrap(), Vec::<String>::new());
    assert!(procshare::shm::list_segments().unwrap().is_empty(), "the stale entry is dropped");
}

/// Hole 6: a FIFO planted at the name of a stale registry entry used to hang every sweeper
/// (`clean`, `ls`, the reaper, the next `open`) — and the FIFO, not being ours, is left alone.
#[test]
fn fifo_at_a_stale_entry_does_not_hang_sweeps() {
    if !is_root() {
        return;
    }
    let uid = 54328;
    let name = format!("psm_hz{}", std::process::id() % 100_000);
    let fifo = PathBuf::from("/dev/shm").join(&name);
    let _clean = Cleanup(vec![fifo.clone(), registry(uid)]);
    assert_eq!(run_victim((uid, name.clone()), victim_leaves_stale_entry), 0);
    mkfifo(&fifo);
    chown(&fifo, ATTACKER);
    assert_eq!(run_victim((uid, name), victim_sweeps), 0);
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}

fn victim_whose_root_opens_up(uid: u32) {
    become_user(uid);
    let shm = SharedMemory::create(8).unwrap();
    let root = registry(uid);
    // Opened to others while a segment is registered (by a stray chmod, or a hostile process
    // of the same user): every path that uses the root must stop using it.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_refuses_root(shm.unlink(), uid, "unlink in a registry open to others");
    assert_refuses_root(SharedMemory::open(shm.name()), uid, "open in a registry open to others");
    // A child receiving the segment registers through the root too (attach): it must fail.
    let mut child = Process::spawn(shm.clone(), |_s: SharedMemory| {}).unwrap();
    assert_ne!(child.join().unwrap(), 0, "attach went through a registry open to others");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
    shm.unlink().unwrap();
    // The empty root stays, so another user cannot make it before our next create.
    let m = std::fs::symlink_metadata(&root).unwrap();
    assert!(m.is_dir() && m.permissions().mode() & 0o777 == 0o700);
}

/// The root is checked on `unlink` and `attach` too, and is kept when it empties (an older
/// procshare removed it, leaving the name free for another user to take).
#[test]
fn root_is_checked_on_every_path_and_kept_when_empty() {
    if !is_root() {
        return;
    }
    let uid = 54329;
    let _clean = Cleanup(vec![registry(uid)]);
    assert_eq!(run_victim(uid, victim_whose_root_opens_up), 0);
}
