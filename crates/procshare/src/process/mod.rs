//! Processes — `multiprocessing.Process`.
//!
//! Two start methods, as in Python:
//! * [`StartMethod::Spawn`] (default) re-executes the current binary. The child's target, its
//!   arguments (serde-encoded) and the descriptors of the procshare handles inside them travel
//!   in a start-up record; [`init`] (and a load-time hook, so test binaries work without it)
//!   turns the new process into the target and never returns there.
//! * [`StartMethod::Fork`] calls `fork()` and runs the target in the copy. Only sound in a
//!   parent with one thread (another thread may hold the allocator's or stdout's lock, which
//!   then stays locked forever in the child), so it is refused with `InvalidArgument` when
//!   `/proc/self/task` shows more than one. procshare itself starts no threads.
//!
//! Reaping: `join` reaps its child. A `Process` dropped while its child runs puts the pid on a
//! list that is reaped, without waiting, whenever a `Process` is started or dropped (as
//! Python's `_children` cleanup does), so zombies never pile up; one that outlives us is
//! reaped by whoever inherits it. No reaper thread: it would make the parent multithreaded
//! behind the user's back (and forbid Fork).
//!
//! **The start-up record** is the one way in from outside: any program linked with procshare
//! runs the ctor hook, and `PROCSHARE_BOOT_FD` in its environment picks the function it jumps
//! to. So the record is believed only when everything about it says it came from a procshare
//! parent: the variable is ignored in a secure-execution process (`AT_SECURE`: set-user-ID and
//! the like, whose environment is an unprivileged starter's), and otherwise it must be
//! `FD:INODE` naming an inherited descriptor (not stdio) that is a regular file with exactly
//! that inode, sealed against every change (only a memfd can be: a planted file, pipe or
//! `/dev/null` fails), named `procshare-start`, of bounded size, starting with our magic, that
//! decodes, names this executable (device, inode, mtime), names our parent `(pid, start time)`
//! as the kernel knows it, whose parent runs this same executable (`/proc/PPID/exe`), and whose
//! two entry points both lie in this program's own code (its executable mappings, not the heap,
//! stack or another library). A stray or forged variable makes the process exit with status 1
//! and a message naming the variable; it never jumps anywhere. The binding is the kernel's
//! word on who the parent is and what it runs: a record is followed only when it comes from a
//! running instance of this very program, which computed the entry points from its own
//! functions. A secret inside the same descriptor would bind nothing more (whoever made the
//! descriptor made the secret), so there is none. What remains: code that already runs inside
//! an instance of this program (as our parent) can pick which of its functions we run — it
//! runs as us already. A child whose parent exited before the child started (a spawner that
//! does not join) still runs: the record was complete before the exec, and the record's
//! parent must then be dead, as the kernel tells.
//!
//! Exit codes follow Python's `exitcode`: 0 on return, 1 if the target panicked (the panic
//! message goes to stderr), `-SIGNUM` if a signal killed the child.
//!
//! What survives: with Spawn, only what the arguments carry (plus the environment and the
//! working directory). With Fork, the whole address space as it was at the call.
#![allow(unsafe_code)]

use crate::codec;
use crate::error::{Error, Result};
use crate::shared::handles;
use crate::sys::deadline::Deadline;
use crate::sys::{fd as sysfd, memfd, poll, proc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Python's `exitcode`: 0, 1 when the target panicked, `-SIGNUM` when killed by a signal.
pub type ExitCode = i32;

/// How a child process is started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StartMethod {
    /// Re-execute the current binary (Python's `spawn`). Works with any parent.
    #[default]
    Spawn,
    /// `fork()` (Python's `fork`). Fast; only from a single-threaded parent (else
    /// `Err(InvalidArgument)`: the child could deadlock on a lock another thread held).
    Fork,
}

const BOOT_ENV: &str = "PROCSHARE_BOOT_FD";
/// The first bytes of a start-up record (format version 1).
const BOOT_MAGIC: [u8; 8] = *b"PSBOOT\x01\0";
/// The memfd's name, which `/proc/self/fd/N` shows as `/memfd:procshare-start (deleted)`.
const BOOT_NAME: &str = "procshare-start";
/// Larger start-up records are refused before anything is allocated.
const MAX_BOOT: u64 = 1 << 31;

/// Starts procshare in this binary. Call it first in `main` of every program that starts
/// processes: in a child started with [`StartMethod::Spawn`] it runs the child's target and
/// exits, never returning; in any other process it does nothing.
///
/// A load-time hook does the same before `main` runs, so `cargo test` binaries (whose `main`
/// you do not write) can start processes without calling `init` at all.
///
/// ```no_run
/// procshare::init(); // first line of main()
/// // ... the parent's work
/// ```
pub fn init() {
    boot_if_child();
}

// Not under Miri: it rejects ctor 0.2's `.init_array` entry (called as returning `usize`),
// and the unit tests it runs start no child processes.
#[cfg_attr(not(miri), ctor::ctor)]
#[cfg_attr(miri, allow(dead_code))]
fn procshare_load_time_init() {
    boot_if_child();
}

/// The process we are: name and pid (`multiprocessing.current_process()`).
#[derive(Debug, Clone)]
pub struct CurrentProcess {
    name: String,
    pid: u32,
}

impl CurrentProcess {
    /// `MainProcess` in the first process, `Process-N` (or the name given) in a child.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// This process's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

struct Identity {
    name: String,
    /// Python's `_identity`: "" for the main process, "1", "1:2", ... for descendants.
    path: String,
}

static IDENTITY: RwLock<Option<Arc<Identity>>> = RwLock::new(None);
static CHILD_COUNTER: AtomicU64 = AtomicU64::new(0);
/// Children whose `Process` was dropped while they ran; see the module doc ("Reaping").
static UNREAPED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Reaps, without waiting, every dropped child that has ended.
fn reap_dropped() {
    let mut list = UNREAPED.lock().unwrap_or_else(|e| e.into_inner());
    // Err (ECHILD): not our child any more (someone else's wait reaped it).
    list.retain(|&pid| matches!(proc::waitpid(pid, true), Ok(None)));
}

/// A new child got `pid`: an older entry with that pid was reaped elsewhere (the kernel reuses
/// a pid only once it is reaped), and must not steal the new child's exit status.
fn forget_dropped(pid: u32) {
    UNREAPED.lock().unwrap_or_else(|e| e.into_inner()).retain(|&p| p != pid);
}

/// Refuses [`StartMethod::Fork`] unless this process has exactly one thread.
fn check_fork_allowed() -> Result<()> {
    match proc::thread_count() {
        Ok(1) => Ok(()),
        Ok(n) => Err(Error::invalid(format!(
            "StartMethod::Fork needs a single-threaded parent, but this process has {n} threads: \
             a forked child could wait forever on a lock (allocator, stdout) another thread \
             held; use StartMethod::Spawn"
        ))),
        Err(e) => Err(Error::invalid(format!(
            "StartMethod::Fork needs a single-threaded parent, and /proc/self/task cannot tell \
             ({e}); use StartMethod::Spawn"
        ))),
    }
}

fn identity() -> Arc<Identity> {
    let current = IDENTITY.read().unwrap_or_else(|e| e.into_inner()).clone();
    current
        .unwrap_or_else(|| Arc::new(Identity { name: "MainProcess".into(), path: String::new() }))
}

/// Becomes the child `name` (identity `path`), with a fresh count of its own children.
fn set_identity(name: String, path: String) {
    *IDENTITY.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(Identity { name, path }));
    CHILD_COUNTER.store(0, Ordering::Relaxed);
}

/// The current process (`multiprocessing.current_process()`).
pub fn current_process() -> CurrentProcess {
    CurrentProcess { name: identity().name.clone(), pid: proc::current_pid() }
}

/// A child process (`multiprocessing.Process`), started by [`Process::spawn`] or
/// [`Process::builder`].
///
/// Dropping a `Process` does not stop the child; once it ends it is reaped the next time a
/// `Process` is started or dropped (no zombies pile up, and no thread is started for it).
#[derive(Debug)]
pub struct Process {
    pid: u32,
    name: String,
    exit: Option<ExitCode>,
}

/// Options for starting a [`Process`]: name, start method, daemon flag.
#[derive(Debug, Clone, Default)]
pub struct ProcessBuilder {
    name: Option<String>,
    method: StartMethod,
    daemon: bool,
}

impl ProcessBuilder {
    /// The child's name (`current_process().name()` there). Default: `Process-N`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Spawn (default) or Fork.
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = method;
        self
    }

    /// A daemon child is killed (SIGKILL) when the thread that started it ends — normally when
    /// the parent exits, as Python's daemon processes are terminated at exit.
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.daemon = daemon;
        self
    }

    /// Starts `target(args)` in a new process.
    ///
    /// `args` may hold procshare handles at any depth; they work in the child as in the parent.
    /// `target` must be a plain `fn` or a non-capturing closure.
    pub fn spawn<A: Serialize + DeserializeOwned>(self, args: A, target: fn(A)) -> Result<Process> {
        if self.method == StartMethod::Fork {
            check_fork_allowed()?;
        }
        reap_dropped();
        let n = CHILD_COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
        let me = identity();
        let parent = me.path.as_str();
        let path = if parent.is_empty() { n.to_string() } else { format!("{parent}:{n}") };
        let name = self.name.clone().unwrap_or_else(|| format!("Process-{path}"));
        let pid = match self.method {
            StartMethod::Spawn => spawn_exec(&name, &path, self.daemon, args, target)?,
            StartMethod::Fork => spawn_fork(&name, &path, self.daemon, args, target)?,
        };
        forget_dropped(pid);
        Ok(Process { pid, name, exit: None })
    }
}

impl Process {
    /// Starts `target(args)` in a new process with the default options (Spawn, not daemon).
    ///
    /// ```no_run
    /// use procshare::{pipe, Process};
    /// procshare::init();
    /// let (parent_end, child_end) = pipe()?;
    /// let mut p = Process::spawn(child_end, |conn| {
    ///     conn.send(&"hello from the child").unwrap();
    /// })?;
    /// assert_eq!(parent_end.recv::<String>()?, "hello from the child");
    /// assert_eq!(p.join()?, 0);
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn spawn<A: Serialize + DeserializeOwned>(args: A, target: fn(A)) -> Result<Process> {
        ProcessBuilder::default().spawn(args, target)
    }

    /// Options: name, start method, daemon.
    pub fn builder() -> ProcessBuilder {
        ProcessBuilder::default()
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The child's name (`Process-N` unless one was given).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The exit code if the child has ended and been joined or polled, else `None`.
    pub fn exitcode(&self) -> Option<ExitCode> {
        self.exit
    }

    /// Whether the child still runs.
    pub fn is_alive(&self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        // Reaping here would need `&mut self`; a zombie is reported as not alive.
        proc::start_time(self.pid).is_some()
    }

    fn try_reap(&mut self, nohang: bool) -> Result<Option<ExitCode>> {
        if let Some(code) = self.exit {
            return Ok(Some(code));
        }
        match proc::waitpid(self.pid, nohang)? {
            Some(status) => {
                let code = proc::exit_code(status);
                self.exit = Some(code);
                Ok(Some(code))
            }
            None => Ok(None),
        }
    }

    /// Waits for the child to end and returns its exit code.
    pub fn join(&mut self) -> Result<ExitCode> {
        // A blocking waitpid only returns once the child has ended.
        self.try_reap(false)?
            .ok_or_else(|| Error::Io(std::io::Error::other("waitpid returned without a status")))
    }

    /// Waits at most `timeout` for the child to end: `Ok(None)` if it still runs.
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<Option<ExitCode>> {
        if let Some(code) = self.try_reap(true)? {
            return Ok(Some(code));
        }
        let deadline = Deadline::after(timeout);
        match proc::pidfd_open(self.pid) {
            Ok(pidfd) => {
                poll::poll(&[(pidfd.as_fd(), poll::POLLIN)], deadline)?;
                self.try_reap(true)
            }
            Err(_) => loop {
                // No pidfd (old kernel): poll the wait status.
                if let Some(code) = self.try_reap(true)? {
                    return Ok(Some(code));
                }
                if deadline.expired() {
                    return Ok(None);
                }
                std::thread::sleep(Duration::from_millis(2));
            },
        }
    }

    fn signal(&self, sig: libc::c_int) -> Result<()> {
        if self.exit.is_some() {
            // Already reaped: the pid may belong to someone else now.
            return Ok(());
        }
        match proc::kill(self.pid, sig) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            other => Ok(other?),
        }
    }

    /// Sends SIGTERM (`Process.terminate()`).
    pub fn terminate(&self) -> Result<()> {
        self.signal(libc::SIGTERM)
    }

    /// Sends SIGKILL (`Process.kill()`).
    pub fn kill(&self) -> Result<()> {
        self.signal(libc::SIGKILL)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.exit.is_some() {
            return;
        }
        if let Ok(Some(_)) = proc::waitpid(self.pid, true) {
            return;
        }
        // Still running: reaped by a later `reap_dropped`, never by a thread of ours.
        UNREAPED.lock().unwrap_or_else(|e| e.into_inner()).push(self.pid);
        reap_dropped();
    }
}

/// What a spawned child needs to become its target; written to a memfd it inherits.
#[derive(Serialize, Deserialize)]
struct StartRecord {
    name: String,
    path: String,
    /// `trampoline::<A>` and `target`, as offsets from [`anchor`] in this same executable.
    trampoline: isize,
    target: isize,
    /// The executable's identity, so a binary replaced since the parent started is refused.
    exe: (u64, u64, i64, i64),
    /// The parent's `(pid, start time)`: the child checks that this is its parent and that
    /// the parent runs this same executable.
    parent: (u32, u64),
    fds: Vec<RawFd>,
    args: Vec<u8>,
}

#[inline(never)]
fn anchor() {}

fn offset_of(addr: usize) -> isize {
    (addr as isize).wrapping_sub(anchor as *const () as usize as isize)
}

fn from_offset(offset: isize) -> usize {
    (anchor as *const () as usize as isize).wrapping_add(offset) as usize
}

/// A function of this program as an offset from a fixed point of its code: the same number in
/// every process running this executable, whatever the address-space layout (the pool's tasks
/// name their functions this way).
pub(crate) fn code_offset(addr: usize) -> isize {
    offset_of(addr)
}

/// This program's code, to turn offsets from [`code_offset`] back into addresses that are
/// known to lie in it.
pub(crate) struct Code(Vec<(usize, usize)>);

impl Code {
    /// Reads this process's executable mappings once.
    pub(crate) fn load() -> Result<Code> {
        Ok(Code(proc::own_text_ranges(anchor as *const () as usize)?))
    }

    /// The address `offset` names, if it lies in this program's code.
    pub(crate) fn resolve(&self, offset: isize) -> Option<usize> {
        let addr = from_offset(offset);
        self.0.iter().any(|&(a, b)| (a..b).contains(&addr)).then_some(addr)
    }
}

type Trampoline = fn(&[u8], Vec<OwnedFd>, usize) -> Result<()>;

fn trampoline<A: DeserializeOwned>(args: &[u8], fds: Vec<OwnedFd>, target: usize) -> Result<()> {
    let args: A = handles::import(fds, || codec::decode(args))?;
    // SAFETY: `target` was computed in the parent from a `fn(A)` of this same executable
    // (identity checked) relative to `anchor`, and `trampoline::<A>` was chosen with the same A.
    let target: fn(A) = unsafe { std::mem::transmute::<usize, fn(A)>(target) };
    target(args);
    Ok(())
}

fn exe_identity() -> Result<(u64, u64, i64, i64)> {
    exe_identity_of("self")
}

/// `(device, inode, mtime)` of the executable of process `pid` (`"self"`: this one).
fn exe_identity_of(pid: &str) -> Result<(u64, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(format!("/proc/{pid}/exe"))?;
    Ok((m.dev(), m.ino(), m.mtime(), m.mtime_nsec()))
}

fn spawn_exec<A: Serialize + DeserializeOwned>(
    name: &str,
    path: &str,
    daemon: bool,
    args: A,
    target: fn(A),
) -> Result<u32> {
    let (encoded, fds) = handles::export(|| codec::encode(&args));
    let encoded = encoded?;
    let record = StartRecord {
        name: name.to_owned(),
        path: path.to_owned(),
        trampoline: offset_of(trampoline::<A> as Trampoline as usize),
        target: offset_of(target as usize),
        exe: exe_identity()?,
        parent: (proc::current_pid(), proc::current_start_time()),
        fds: handles::raw(&fds),
        args: encoded,
    };
    let mut bytes = BOOT_MAGIC.to_vec();
    bytes.extend_from_slice(&codec::encode(&record)?);
    let boot = memfd::create(BOOT_NAME)?;
    memfd::write_all_at(boot.as_fd(), &bytes, 0)?;
    // Sealed, it cannot change between the child's checks and its read; and only a memfd can
    // be sealed, which the child checks.
    memfd::add_seals(boot.as_fd(), memfd::SEAL_ALL)?;
    let boot_ino = sysfd::stat(boot.as_fd())?.st_ino;
    let boot_raw = boot.as_raw_fd();
    let mut inherit: Vec<RawFd> = handles::raw(&fds);
    inherit.push(boot_raw);
    let parent_pid = proc::current_pid();

    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.env(BOOT_ENV, format!("{boot_raw}:{boot_ino}"));
    // SAFETY: the closure runs in the child between fork and exec and only makes
    // async-signal-safe calls (fcntl, prctl, getppid) on descriptors we own and keep alive.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &inherit {
                sysfd::set_cloexec_raw(fd, false)?;
            }
            if daemon {
                proc::set_parent_death_signal(libc::SIGKILL)?;
                if proc::parent_pid() != parent_pid {
                    proc::exit_now(1);
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    // We reap it ourselves with waitpid; std's Child does not wait on drop.
    let pid = child.id();
    drop(args);
    drop(fds);
    Ok(pid)
}

fn spawn_fork<A>(name: &str, path: &str, daemon: bool, args: A, target: fn(A)) -> Result<u32> {
    let parent_pid = proc::current_pid();
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: fork(2)'s contract for the child: `check_fork_allowed` saw one thread (this one),
    // so no other thread held a lock or was changing memory at the fork; the child runs the
    // target and exits.
    match unsafe { proc::fork()? } {
        proc::Forked::Parent(pid) => {
            drop(args);
            Ok(pid)
        }
        proc::Forked::Child => {
            // The parent's dropped children are not ours to reap.
            UNREAPED.lock().unwrap_or_else(|e| e.into_inner()).clear();
            if daemon {
                let _ = proc::set_parent_death_signal(libc::SIGKILL);
                if proc::parent_pid() != parent_pid {
                    proc::exit_now(1);
                }
            }
            set_identity(name.to_owned(), path.to_owned());
            let code = run_guarded(|| {
                target(args);
                Ok(())
            });
            proc::exit_now(code)
        }
    }
}

/// Runs the child's body: exit code 0, or 1 if it panicked or failed to start; flushes stdio.
fn run_guarded(body: impl FnOnce() -> Result<()>) -> i32 {
    let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("procshare: the child process could not start its target: {e}");
            1
        }
        Err(_) => 1,
    };
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    code
}

fn boot_if_child() {
    let Some(value) = std::env::var_os(BOOT_ENV) else {
        return;
    };
    std::env::remove_var(BOOT_ENV);
    if proc::is_secure_exec() {
        // Our environment is an unprivileged starter's choice: it must not steer us.
        return;
    }
    let code = run_guarded(|| {
        let (record, fds) = read_start_record(&value)?;
        let (tramp, target) = entry_points(&record)?;
        set_identity(record.name, record.path);
        tramp(&record.args, fds, target)
    });
    std::process::exit(code);
}

/// Why `PROCSHARE_BOOT_FD=value` is not believed, as an error a person can act on.
fn not_a_start_record(value: &std::ffi::OsStr, why: &str) -> Error {
    Error::invalid(format!(
        "{BOOT_ENV}={value:?} does not name a start-up record from a procshare parent ({why}); \
         if this program was not started by procshare's Process::spawn, unset {BOOT_ENV}"
    ))
}

/// Reads and checks the start-up record that `PROCSHARE_BOOT_FD=value` names (see the module
/// doc), and takes the descriptors it lists.
fn read_start_record(value: &std::ffi::OsStr) -> Result<(StartRecord, Vec<OwnedFd>)> {
    let bad = |why: &str| not_a_start_record(value, why);
    let (fd, ino) = value
        .to_str()
        .and_then(|v| v.split_once(':'))
        .and_then(|(f, i)| Some((f.parse::<RawFd>().ok()?, i.parse::<u64>().ok()?)))
        .ok_or_else(|| bad("not FD:INODE"))?;
    if fd <= 2 || !sysfd::is_open(fd) {
        return Err(bad("no such inherited descriptor"));
    }
    // SAFETY: `fd` is open (checked just above) and nothing in this process owns or closes it
    // while this borrow lives: we run before main, and own it only once it has passed.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let st = sysfd::stat(borrowed)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_ino != ino {
        return Err(bad("the descriptor is not the file the variable names"));
    }
    match memfd::seals(borrowed) {
        Ok(seals) if seals & memfd::SEAL_ALL == memfd::SEAL_ALL => {}
        Ok(_) => return Err(bad("the file is not sealed")),
        Err(_) => return Err(bad("the file is not a memfd")),
    }
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap_or_default();
    if !link.to_string_lossy().starts_with(&format!("/memfd:{BOOT_NAME}")) {
        return Err(bad("the memfd is not procshare's"));
    }
    let len = st.st_size as u64;
    if len < BOOT_MAGIC.len() as u64 || len > MAX_BOOT {
        return Err(bad("the record's size is out of range"));
    }
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(len as usize).map_err(|_| bad("no memory for the record"))?;
    bytes.resize(len as usize, 0);
    memfd::read_exact_at(borrowed, &mut bytes, 0)?;
    let boot = sysfd::own(fd).ok_or_else(|| bad("no such inherited descriptor"))?;
    drop(boot);
    if bytes[..BOOT_MAGIC.len()] != BOOT_MAGIC {
        return Err(bad("no procshare magic"));
    }
    let record: StartRecord =
        codec::decode(&bytes[BOOT_MAGIC.len()..]).map_err(|e| bad(&e.to_string()))?;
    let me = exe_identity()?;
    if record.exe != me {
        return Err(Error::invalid(
            "the executable changed since the parent started; cannot run the target",
        ));
    }
    // The kernel, not the record, says who our parent is and what it runs: a record is
    // believed from our parent only if it is this same program (which computed the entry
    // points from its own functions). A parent that exited before we got here (a spawner that
    // does not join) left us to a reaper; then the record's parent must really be gone — the
    // record was written before the exec, as Python's spawn data is, and the child still runs.
    //
    // A parent in the middle of exiting is still our parent but no longer has an executable to
    // show (the kernel drops its memory before it hands us to the reaper): look again for a
    // while, until it is gone or shows one.
    let mut looks = 0;
    loop {
        let ppid = proc::parent_pid();
        let parent_exe = exe_identity_of(&ppid.to_string());
        let from_parent = record.parent.0 == ppid
            && proc::start_time(ppid) == Some(record.parent.1)
            && parent_exe.as_ref().ok() == Some(&me);
        // `Ok(Some(other start))` or `Ok(None)`: that process is dead (a zombie counts as
        // dead); an unreadable /proc tells nothing and is no proof.
        let orphaned = record.parent.0 != ppid
            && matches!(
                crate::sys::owner::thread_start_time(record.parent.0),
                Ok(t) if t != Some(record.parent.1)
            );
        if from_parent || orphaned {
            break;
        }
        let exiting = record.parent.0 == ppid && parent_exe.is_err();
        looks += 1;
        if !exiting || looks > 1000 {
            return Err(bad("it was not written by our parent running this program"));
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let mut seen = std::collections::HashSet::new();
    for &f in &record.fds {
        // The boot descriptor is closed now, so it fails `is_open` unless reused.
        if f <= 2 || f == fd || !seen.insert(f) || !sysfd::is_open(f) {
            return Err(bad("it lists a descriptor that was not inherited"));
        }
    }
    let mut fds = Vec::with_capacity(record.fds.len());
    for &f in &record.fds {
        let f = sysfd::own(f).ok_or_else(|| Error::invalid("bad inherited descriptor"))?;
        sysfd::set_cloexec(f.as_fd(), true)?;
        fds.push(f);
    }
    Ok((record, fds))
}

/// The record's trampoline and target, once both are known to lie in this program's code.
fn entry_points(record: &StartRecord) -> Result<(Trampoline, usize)> {
    let tramp = from_offset(record.trampoline);
    let target = from_offset(record.target);
    let text = proc::own_text_ranges(anchor as *const () as usize)?;
    let in_text = |addr: usize| text.iter().any(|&(a, b)| (a..b).contains(&addr));
    if !in_text(tramp) || !in_text(target) {
        return Err(Error::invalid(format!(
            "the start-up record that {BOOT_ENV} names has entry points outside this program's \
             code; not running it"
        )));
    }
    // SAFETY: the offset was computed from `trampoline::<A> as Trampoline` in the parent
    // running this same executable (identity checked in `read_start_record`); the address is
    // in this program's code (checked above), so a damaged record cannot send us elsewhere.
    let tramp = unsafe { std::mem::transmute::<usize, Trampoline>(tramp) };
    Ok((tramp, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(trampoline: isize, target: isize) -> StartRecord {
        StartRecord {
            name: "t".into(),
            path: "1".into(),
            trampoline,
            target,
            exe: (0, 0, 0, 0),
            parent: (0, 0),
            fds: Vec::new(),
            args: Vec::new(),
        }
    }

    fn a_target(_: ()) {}

    #[test]
    fn entry_points_in_our_code_are_accepted() {
        let tramp = offset_of(trampoline::<()> as Trampoline as usize);
        let target = offset_of(a_target as fn(()) as usize);
        assert!(entry_points(&record(tramp, target)).is_ok());
    }

    #[test]
    fn entry_points_outside_our_code_are_refused() {
        let tramp = offset_of(trampoline::<()> as Trampoline as usize);
        let heap = Box::new([0xc3u8; 64]); // `ret` bytes, as an attacker would plant them
        let on_heap = offset_of(heap.as_ptr() as usize);
        let stack = 0u64;
        let on_stack = offset_of(&stack as *const u64 as usize);
        for (t, g) in [(on_heap, tramp), (tramp, on_heap), (on_stack, tramp), (isize::MAX, 0)] {
            match entry_points(&record(t, g)) {
                Err(e) => assert!(e.to_string().contains("outside this program's code"), "{e}"),
                Ok(_) => panic!("entry points {t:#x}, {g:#x} were accepted"),
            }
        }
    }
}
