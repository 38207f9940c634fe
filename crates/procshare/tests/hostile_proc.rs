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

// ---- PROCSHARE_BOOT_FD: a stray or forged start-up record ------------------------------

use serde::Serialize;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

const MARKER: &str = "procshare-hostile-proc: normal main ran";

/// What the re-executed test binary runs when it ignores the variable: this test alone.
#[test]
fn boot_marker_main() {
    println!("{MARKER}");
}

/// Runs this test binary with `PROCSHARE_BOOT_FD=value` and `fd` inherited as descriptor 10.
fn run_with_boot(value: &str, fd: Option<&OwnedFd>) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "boot_marker_main", "--nocapture", "--test-threads=1"]);
    cmd.env("PROCSHARE_BOOT_FD", value);
    if let Some(fd) = fd {
        let raw = fd.as_raw_fd();
        // SAFETY: between fork and exec; dup2 is async-signal-safe, and the new descriptor 10
        // (not close-on-exec, as dup2 makes it) is what the child inherits.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(raw, 10) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.output().unwrap()
}

/// The child must refuse the record before main with a message naming the variable: exit
/// status 1 (not a signal: it never jumped into garbage), and main never ran.
fn assert_refused(out: &Output, why: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{why}: status {:?}, stderr {stderr}", out.status);
    assert!(stderr.contains("PROCSHARE_BOOT_FD"), "{why}: unclear error: {stderr}");
    assert!(stderr.contains(why), "{why}: another reason: {stderr}");
    assert!(!stdout.contains(MARKER), "{why}: ran main after all");
}

fn inode(fd: &OwnedFd) -> u64 {
    std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap().ino()
}

fn memfd(name: &str, bytes: &[u8], seal: bool) -> OwnedFd {
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: `name` is NUL-terminated and lives for the call.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    assert!(fd >= 0);
    // SAFETY: a fresh descriptor, ours alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut f = std::fs::File::from(fd.try_clone().unwrap());
    std::io::Write::write_all(&mut f, bytes).unwrap();
    if seal {
        let seals =
            libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
        // SAFETY: no pointers.
        assert_eq!(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) }, 0);
    }
    fd
}

/// The same fields, in the same order, as the start-up record procshare writes.
#[derive(Serialize)]
struct ForgedRecord {
    name: String,
    path: String,
    trampoline: isize,
    target: isize,
    exe: (u64, u64, i64, i64),
    parent: (u32, u64),
    fds: Vec<i32>,
    args: Vec<u8>,
}

/// This process's start time (field 22 of /proc/self/stat).
fn my_start_time() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_ascii_whitespace().nth(19).unwrap().parse().unwrap()
}

/// A record as procshare writes it, claiming this process as the parent.
fn forged_record(trampoline: isize, target: isize, fds: Vec<i32>) -> Vec<u8> {
    let m = std::fs::metadata("/proc/self/exe").unwrap();
    let r = ForgedRecord {
        name: "forged".into(),
        path: "1".into(),
        trampoline,
        target,
        exe: (m.dev(), m.ino(), m.mtime(), m.mtime_nsec()),
        parent: (std::process::id(), my_start_time()),
        fds,
        args: Vec::new(),
    };
    let mut bytes = b"PSBOOT\x01\0".to_vec();
    bytes.extend(procshare::codec::encode(&r).unwrap());
    bytes
}

#[test]
fn without_the_variable_main_runs() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "boot_marker_main", "--nocapture"])
        .env_remove("PROCSHARE_BOOT_FD")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(MARKER));
}

#[test]
fn a_stray_variable_is_refused_not_followed() {
    for value in ["", "garbage", "10", "-1:0", "0:0", "2:5", "99999:1", "10:notanumber"] {
        let out = run_with_boot(value, None);
        assert_refused(&out, "does not name a start-up record");
    }
}

#[test]
fn dev_null_is_refused() {
    let null: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
    let ino = inode(&null);
    assert_refused(&run_with_boot(&format!("10:{ino}"), Some(&null)), "not the file");
}

#[test]
fn a_regular_file_with_garbage_is_refused() {
    let path = std::env::temp_dir().join(format!("procshare-hostile-boot-{}", std::process::id()));
    std::fs::write(&path, b"PSBOOT\x01\0 garbage garbage garbage").unwrap();
    let file: OwnedFd = std::fs::File::open(&path).unwrap().into();
    std::fs::remove_file(&path).unwrap();
    let ino = inode(&file);
    assert_refused(&run_with_boot(&format!("10:{ino}"), Some(&file)), "not a memfd");
    // Naming it by a wrong inode is refused earlier.
    assert_refused(&run_with_boot(&format!("10:{}", ino + 1), Some(&file)), "not the file");
}

#[test]
fn forged_memfds_are_refused() {
    let garbage = b"PSBOOT\x01\0\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff";
    let cases: [(&str, &[u8], bool, &str); 4] = [
        ("procshare-start", garbage, false, "not sealed"),
        ("someone-else", garbage, true, "not procshare's"),
        ("procshare-start", b"NOTMAGIC-and-more-bytes", true, "no procshare magic"),
        ("procshare-start", garbage, true, "does not name a start-up record"),
    ];
    for (name, bytes, seal, why) in cases {
        let fd = memfd(name, bytes, seal);
        assert_refused(&run_with_boot(&format!("10:{}", inode(&fd)), Some(&fd)), why);
    }
}

/// The strongest forgeries: a sealed procshare memfd with the magic, this very executable's
/// identity and a well-formed record whose entry points are chosen addresses. The child must
/// not jump (a jump to these would crash with a signal, or worse), but refuse.
#[test]
fn a_well_formed_record_with_chosen_entry_points_never_jumps() {
    // Addresses outside the program's code, from its real parent: refused by the code check.
    for (tramp, target) in [(isize::MAX, 0), (-0x7000_0000, 64), (0, 1 << 40)] {
        let fd = memfd("procshare-start", &forged_record(tramp, target, Vec::new()), true);
        let out = run_with_boot(&format!("10:{}", inode(&fd)), Some(&fd));
        assert_refused(&out, "outside this program's code");
    }
    // Listing descriptors it was not given (stdio, the record itself, unopened ones) is refused
    // before any is taken.
    for fds in [vec![1], vec![10], vec![500], vec![11, 11]] {
        let fd = memfd("procshare-start", &forged_record(0, 0, fds), true);
        assert_refused(&run_with_boot(&format!("10:{}", inode(&fd)), Some(&fd)), "not inherited");
    }
}

/// The same forgery with entry points *inside* the program's code (mid-function: a jump there
/// would crash), handed over by a parent that is another program (a shell): refused, because
/// the kernel says the parent is not this program.
#[test]
fn a_record_from_a_parent_that_is_another_program_is_refused() {
    let fd = memfd("procshare-start", &forged_record(0x1001, 0x1001, Vec::new()), true);
    let raw = fd.as_raw_fd();
    let mut cmd = Command::new("/bin/sh");
    // No `exec`: the shell stays the parent of the test binary.
    cmd.args(["-c", "\"$0\" --exact boot_marker_main --nocapture; exit $?"]);
    cmd.arg(std::env::current_exe().unwrap());
    cmd.env("PROCSHARE_BOOT_FD", format!("10:{}", inode(&fd)));
    // SAFETY: between fork and exec; dup2 is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 10) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    assert_refused(&cmd.output().unwrap(), "not written by our parent");
}

/// In a set-user-ID process (`AT_SECURE`) the variable is an unprivileged starter's choice: it
/// is ignored and main runs. Needs root, to make a set-user-ID copy of this binary and run it
/// as another user.
#[test]
fn the_variable_is_ignored_in_a_setuid_process() {
    // SAFETY: no pointers.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to make a set-user-ID binary");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("procshare-suid-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.join("t");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o4755)).unwrap();
    // Another test thread forking while `copy` had the file open for writing leaves a child
    // holding that descriptor until it execs: exec is then ETXTBSY for a moment. Retry.
    let run = || {
        Command::new(&exe)
            .args(["--exact", "boot_marker_main", "--nocapture", "--test-threads=1"])
            .env("PROCSHARE_BOOT_FD", "garbage")
            .uid(65534)
            .gid(65534)
            .current_dir("/")
            .output()
    };
    let mut out = run();
    for _ in 0..50 {
        match &out {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
                out = run();
            }
            _ => break,
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    let out = out.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(MARKER),
        "status {:?}, stdout {stdout}, stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- PROCSHARE_SHM_REAPER: a stray variable must not turn a program into a reaper --------

/// Runs this test binary with `PROCSHARE_SHM_REAPER=value`, stdin a pipe or /dev/null.
fn run_with_reaper_var(value: &str, stdin_pipe: bool) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "boot_marker_main", "--nocapture", "--test-threads=1"]);
    cmd.env("PROCSHARE_SHM_REAPER", value);
    cmd.stdin(if stdin_pipe { std::process::Stdio::piped() } else { std::process::Stdio::null() });
    cmd.output().unwrap()
}

#[test]
fn a_stray_reaper_variable_is_ignored() {
    let me = format!("{}:{}", std::process::id(), my_start_time());
    let init_start = std::fs::read_to_string("/proc/1/stat")
        .ok()
        .and_then(|s| s.rsplit(')').next().and_then(|r| r.split_whitespace().nth(19)?.parse().ok()))
        .unwrap_or(0u64);
    let cases = [
        ("garbage", true),
        ("", true),
        // Our real parent, but stdin is no pipe from it.
        (me.as_str(), false),
        // A live process that is not our parent.
        (&format!("1:{init_start}"), true),
    ];
    for (value, pipe) in cases {
        let out = run_with_reaper_var(value, pipe);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{value:?}: status {:?}", out.status);
        assert!(stdout.contains(MARKER), "{value:?}: main did not run: {stdout}");
    }
}
