//! The tracker: who uses each named segment procshare created, and who unlinks it when they are
//! all gone — without a central daemon (iceoryx2-style file-lock liveness).
//!
//! # How
//!
//! ```text
//! /dev/shm/procshare-<euid>/                the registry: a directory (not a symlink) owned
//!                                           by this user, mode 0700 — checked on every use;
//!                                           never removed, even when empty
//!   <name>/                                 one directory per segment procshare created (0700)
//!     meta                                  "procshare-shm 1 <ino> <size> <pid> <start> <unix secs>
//!                                            <persistent> <temporary name> [queue]"
//!     meta.tmp.<random>                     the next meta, renamed over it
//!     t.<pid>.<start>.<seq>                 one token per process using the segment,
//!                                           held under flock(LOCK_EX) by that process
//! /dev/shm/procshare-tmp.<pid>.<random>     a segment being created, before it gets its name
//! ```
//!
//! * A process that creates or opens a segment (by name or by receiving it as a `Process`
//!   argument) holds a token in its directory for the rest of its life — the kernel drops an
//!   `flock` when its holder dies, however it dies, so a token whose lock can be taken belongs to
//!   a dead process. The segment therefore stays while any process that created or opened it is
//!   alive, as in Python, even if that process dropped its handles (call `unlink` to end it
//!   earlier).
//! * Whoever finds every token of a segment free unlinks it: the next `open` of that name, the
//!   first registration in each process (a sweep of the whole registry), `procshare shm clean`,
//!   and a *reaper* — a tiny helper process (this executable re-run with `PROCSHARE_SHM_REAPER`
//!   set, caught by a load-time hook before `main`) that every process using tracked segments
//!   starts once. The reaper blocks reading a pipe whose only writer is its parent; at EOF (the
//!   parent is gone, SIGKILL included) it waits for the parent to be fully dead and sweeps. It
//!   ignores SIGINT/SIGTERM/SIGHUP and runs in its own session, so Ctrl-C does not stop it first.
//!   Correctness never depends on the reaper: it only makes the cleanup prompt when the last
//!   user dies with nobody else around to notice. Where this executable cannot be the reaper (a
//!   Python process is `python`, which has no load-time hook of ours before its `main`), a
//!   language binding names the command that starts one (`ffi::set_reaper_command`, before the
//!   first registration); that reaper gets the spec as `ext:<pid>:<start>`, which the load-time
//!   hook ignores, and the binding's entry point (`ffi::run_reaper`) makes the same checks.
//! * Every registry change happens under `flock` on the segment's directory, so a sweeper never
//!   sees a half-made registration, and a process that opens a segment cannot race the sweeper
//!   that unlinks it.
//! * `meta` records the segment's inode: a sweeper unlinks a name only while it still names that
//!   very segment. A segment Python (or anyone) created, or re-created after an unlink, is never
//!   unlinked by us; Python-created segments are never registered at all.
//! * Size: Linux (tmpfs) keeps the exact `ftruncate` size as `st_size`, so an opener learns the
//!   creator's size from `fstat` for Python's segments and ours alike; `meta` records it too, for
//!   `procshare shm ls` and for a port to systems that round it to pages.
//! * Persistent segments (`SharedMemory::create_persistent`) get a `meta` with the flag set and
//!   no tokens: nobody unlinks them but an explicit `unlink`.
//! * Named queues (`Queue::create_named`) are segments too — the queue's ring lives in the
//!   `/dev/shm` file — registered, opened, swept and listed the same way; `meta` ends with
//!   `queue` for them (an older parser ignores the extra word), so `procshare shm ls` can say so.
//!
//! # Other users
//!
//! `/dev/shm` is writable by everyone, so another user can plant anything at any name there:
//! the registry root before we make it, a symlink, a FIFO, a file at a name we are about to use.
//!
//! * Every path is opened relative to a directory descriptor (`/dev/shm`, then the root, then
//!   the segment's directory; `sys/dir.rs`) with `O_NOFOLLOW` (`O_DIRECTORY` for directories)
//!   and `O_NONBLOCK`, so nothing is followed and no FIFO makes an open wait; what a name is, is
//!   decided by `fstat`/`fstatat` of what was opened.
//! * The root is checked on every use — `create`, `open`, `attach`, `unlink`, each sweep, so
//!   `procshare shm ls/clean` too: a directory, owned by our euid, mode 0700. Anything else is
//!   an `Err` naming it and how to fix it (remove it), never a silent fallback. Within our 0700
//!   root only we (or root) can add anything; entries that are not directories of ours are
//!   skipped.
//! * The root is never removed when empty: that left a window for another user to make it, and
//!   raced with our own `create`s. An empty 0700 directory in a tmpfs costs nothing.
//! * Only regular files we own are ever deleted, by inode (`remove_if`), in the registry and in
//!   `/dev/shm` alike; a symlink's target never. `/dev/shm` is sticky, so another user cannot
//!   swap a file of ours for theirs between our `fstatat` and `unlinkat`.
//! * Temporary names carry 128 random bits and are made with `O_CREAT | O_EXCL`; a taken name
//!   (by chance, or planted) is simply retried with another.
//! * A segment is opened by name only if it is a regular file we own (`open_segment`): another
//!   user's file, even one we may write, could be read and changed by them under us.
//!
//! # Crash table (SIGKILL of a process between steps; "sweep" = any later sweeper)
//!
//! `create` holds the directory lock throughout, so a sweeper that gets the lock and finds
//! `meta` still saying "creating" (inode 0) knows the creator died in the middle.
//!
//! | step of `create`                                   | left behind                          | repaired by | point |
//! |----------------------------------------------------|--------------------------------------|-------------|-------|
//! | after `mkdir <name>`, before `meta`                | empty dir                            | sweep removes the dir | `tracker.dir_made` |
//! | writing `meta.tmp.R`, before its `rename`          | dir with a stray `meta.tmp.R`        | sweep or the next `create` of the name deletes it with the dir's files | `tracker.meta_tmp_written` |
//! | after `meta` ("creating", temp name T), before `open(T, O_EXCL)` | dir                    | sweep removes the dir (T, if anyone's, is not ours: kept) | `tracker.meta_creating` |
//! | after `open(T)`/`ftruncate`, before `link(T, name)` | segment T                           | sweep unlinks T (a procshare-only name, a regular file of ours) | `tracker.tmp_made` |
//! | after `link`, before `meta` gets the inode         | T and name, same inode               | sweep sees name == T, unlinks both | `tracker.linked` |
//! | after `meta` (inode), before `unlink(T)` / token   | name (and T), no live token          | sweep unlinks both | `tracker.meta_ino` |
//! | after the token                                    | registered segment                   | reaper / sweep once every token is free | `tracker.token_taken` |
//! | `open`/`attach`: after the token is written        | token, its lock dies with us         | sweep deletes the dead token | `tracker.token_opened` |
//! | sweep: after `shm_unlink`, before `rmdir`          | dir whose segment is gone            | next sweep removes it (inode no longer matches) | `tracker.sweep_unlinked` |
//!
//! A name is unlinked only while it still names the inode recorded (or the temporary segment
//! recorded), so a segment someone else made under that name meanwhile is never touched.

use crate::error::{Error, Result};
use crate::sys::dir::{Dir, Stat};
use crate::sys::{memfd, proc, shm as sys_shm};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const REAPER_ENV: &str = "PROCSHARE_SHM_REAPER";
/// The spec's prefix for a reaper started by a binding's command rather than `/proc/self/exe`.
const EXTERNAL_REAPER: &str = "ext:";
const META: &str = "meta";
/// `meta` is rewritten as `meta.tmp.<random>` then renamed over.
const META_TMP_PREFIX: &str = "meta.tmp.";
const TOKEN_PREFIX: &str = "t.";
const META_MAGIC: &str = "procshare-shm";
/// Segments are made under a temporary name `procshare-tmp.<pid>.<128 random bits>`, then
/// linked to theirs. The random part keeps another user from planting a file or FIFO there.
const TMP_PREFIX: &str = "procshare-tmp.";
/// The registry root and its directories: this user's alone.
const DIR_MODE: u32 = 0o700;
/// Bounds the retries when a sweeper removes a directory under our feet, or a random name
/// collides.
const RETRIES: usize = 100;

fn root_name() -> String {
    format!("procshare-{}", sys_shm::euid())
}

fn root_path() -> PathBuf {
    Path::new(sys_shm::SHM_DIR).join(root_name())
}

/// The `Err` for a path procshare will not use because it is not this user's: says what is wrong
/// with it and how to fix it.
fn refuse(path: &Path, why: &str, fix: &str) -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{} {why}; procshare refuses to use it ({fix})", path.display()),
    ))
}

fn refuse_root(why: &str) -> Error {
    let root = root_path();
    let fix = format!(
        "another user may have made it to read or take over this user's shared memory; check \
         who, then remove it — `rm -r {}`, as root if it is another user's — and try again",
        root.display()
    );
    refuse(&root, why, &fix)
}

/// A regular file of this user's: the only kind of file the tracker reads, maps or deletes.
fn ours_file(s: &Stat) -> bool {
    s.is_file() && s.uid == sys_shm::euid()
}

/// Removes `dir/name` if it is still the regular file of ours with inode `ino`.
fn remove_if(dir: &Dir, name: &str, ino: u64) -> bool {
    dir.stat_at(name).is_ok_and(|s| ours_file(&s) && s.ino == ino) && dir.remove_file(name).is_ok()
}

/// The inode of the segment now called `name`, if it is a regular file of ours: anything else
/// there (another user's file, a FIFO, a symlink) is not a segment this user made.
fn our_segment(shm: &Dir, name: &str) -> Option<u64> {
    shm.stat_at(name).ok().filter(ours_file).map(|s| s.ino)
}

/// 128 random bits in hex, for names another user must not be able to guess.
fn random_hex() -> Result<String> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).map_err(|e| Error::Io(io::Error::other(e.to_string())))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// `/dev/shm` and this user's registry root in it, both open by descriptor and checked: every
/// later name is resolved relative to them, so nothing can be swapped in between.
struct Registry {
    shm: Dir,
    /// `None`: there is no registry (yet).
    root: Option<Dir>,
}

impl Registry {
    /// Opens the registry, making it first with `create`. The root must be a directory (not a
    /// symlink), owned by this user, mode 0700 — else a clear `Err` naming it, never a silent
    /// skip: another user who made it first could otherwise see and steer this user's segments.
    fn open(create: bool) -> Result<Registry> {
        let shm = sys_shm::dir()?;
        let name = root_name();
        for _ in 0..RETRIES {
            let mut made = false;
            if create {
                match shm.create_dir(&name, DIR_MODE) {
                    Ok(()) => made = true,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let root = match shm.open_dir(&name) {
                Ok(d) => d,
                // An older procshare removes the root when it empties; make it again.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    return Ok(Registry { shm, root: None })
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                    return Err(refuse_root(
                        "is not a directory (a symlink or another kind of file)",
                    ))
                }
                Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                    return Err(refuse_root("cannot be opened by this user"))
                }
                Err(e) => return Err(e.into()),
            };
            let st = root.stat()?;
            let me = sys_shm::euid();
            if st.uid != me {
                return Err(refuse_root(&format!(
                    "is owned by uid {}, not by this user (uid {me})",
                    st.uid
                )));
            }
            if st.perms() != DIR_MODE {
                if !made {
                    return Err(refuse_root(&format!(
                        "has mode {:o}, not {DIR_MODE:o}, so other users can reach into it",
                        st.perms()
                    )));
                }
                // Ours, just made: only the umask took bits.
                root.set_mode(DIR_MODE)?;
            }
            return Ok(Registry { shm, root: Some(root) });
        }
        Err(Error::invalid("the shared-memory registry kept changing; try again"))
    }
}

/// A segment's registry directory, locked (`flock` on the directory itself).
struct DirLock {
    dir: Dir,
    name: String,
    /// The directory's inode: only this very directory is ever removed under `name`.
    ino: u64,
}

impl DirLock {
    /// Locks the registry directory `name` if there is one of ours; `Ok(None)` if not (or it
    /// was removed while we waited). A symlink or anything not a directory of ours is never
    /// followed nor used.
    fn existing(reg: &Registry, name: &str) -> Result<Option<DirLock>> {
        let Some(root) = &reg.root else { return Ok(None) };
        let dir = match root.open_dir(name) {
            Ok(d) => d,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::ELOOP | libc::ENOTDIR | libc::EACCES)
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e.into()),
        };
        let st = dir.stat()?;
        if !st.is_dir() || st.uid != sys_shm::euid() {
            return Ok(None);
        }
        sys_shm::lock(dir.as_fd())?;
        // A sweeper may have removed it while we waited for the lock.
        if dir.stat()?.nlink == 0 {
            return Ok(None);
        }
        Ok(Some(DirLock { dir, name: name.to_owned(), ino: st.ino }))
    }

    fn read_meta(&self) -> Option<Meta> {
        let fd = self.dir.open_file(META, libc::O_RDONLY, 0).ok()?;
        if !sys_shm::stat(fd.as_fd()).is_ok_and(|s| ours_file(&s)) {
            return None;
        }
        let mut text = String::new();
        File::from(fd).take(4096).read_to_string(&mut text).ok()?;
        Meta::parse(&text)
    }

    fn write_meta(&self, meta: &Meta) -> Result<()> {
        // A fresh name each time (O_EXCL): whatever a crash or anyone left can be neither
        // followed nor truncated; `rename` then replaces the entry `meta`, never a target.
        let tmp = format!("{META_TMP_PREFIX}{}", random_hex()?);
        let fd = self.dir.open_file(&tmp, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600)?;
        let written = File::from(fd).write_all(meta.render().as_bytes());
        crate::crash::crash_point!("tracker.meta_tmp_written");
        if let Err(e) = written
            .map_err(Error::from)
            .and_then(|()| self.dir.rename(&tmp, META).map_err(Error::from))
        {
            let _ = self.dir.remove_file(&tmp);
            return Err(e);
        }
        Ok(())
    }

    fn names(&self) -> Vec<String> {
        let Ok(names) = self.dir.entries() else { return Vec::new() };
        names.into_iter().filter_map(|n| n.into_string().ok()).collect()
    }

    /// Counts live tokens; with `reap`, deletes the dead ones.
    fn live_tokens(&self, reap: bool) -> usize {
        let mut alive = 0;
        for t in self.names().into_iter().filter(|n| n.starts_with(TOKEN_PREFIX)) {
            let Ok(fd) = self.dir.open_file(&t, libc::O_RDONLY, 0) else { continue };
            // Not a regular file of ours: not a token any process of ours holds.
            let Some(st) = sys_shm::stat(fd.as_fd()).ok().filter(ours_file) else { continue };
            match sys_shm::try_lock(fd.as_fd()) {
                Ok(true) => {
                    if reap {
                        remove_if(&self.dir, &t, st.ino);
                    }
                }
                _ => alive += 1,
            }
        }
        alive
    }

    /// Removes every regular file of ours in the directory (tokens, meta, leftovers) — never
    /// anything else, whatever it is.
    fn clear(&self) {
        for n in self.names() {
            if let Ok(st) = self.dir.stat_at(&n) {
                remove_if(&self.dir, &n, st.ino);
            }
        }
    }

    /// Clears the directory and removes it (we hold the lock, so nobody is adding). Something
    /// that is not ours left in it keeps it (and `ls` shows a stale entry); the root stays:
    /// removing it when empty would let another user make it before our next `create`.
    fn remove(self, reg: &Registry) {
        self.clear();
        if let Some(root) = &reg.root {
            if root.stat_at(&self.name).is_ok_and(|s| s.is_dir() && s.ino == self.ino) {
                let _ = root.remove_dir(&self.name);
            }
        }
        drop(self.dir);
    }
}

/// What `meta` records about a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    /// The segment's inode; 0 while it is being created.
    ino: u64,
    size: u64,
    pid: u32,
    start: u64,
    created: u64,
    persistent: bool,
    /// The temporary name the segment was made under before being linked to its own.
    tmp: String,
    /// A named queue's ring, not a plain segment.
    queue: bool,
}

impl Meta {
    pub(crate) fn render(&self) -> String {
        format!(
            "{META_MAGIC} 1 {} {} {} {} {} {} {}{}\n",
            self.ino,
            self.size,
            self.pid,
            self.start,
            self.created,
            self.persistent as u8,
            self.tmp,
            if self.queue { " queue" } else { "" }
        )
    }

    pub(crate) fn parse(text: &str) -> Option<Meta> {
        let mut f = text.split_ascii_whitespace();
        if f.next()? != META_MAGIC || f.next()? != "1" {
            return None;
        }
        let meta = Meta {
            ino: f.next()?.parse().ok()?,
            size: f.next()?.parse().ok()?,
            pid: f.next()?.parse().ok()?,
            start: f.next()?.parse().ok()?,
            created: f.next()?.parse().ok()?,
            persistent: match f.next()? {
                "0" => false,
                "1" => true,
                _ => return None,
            },
            tmp: f.next().filter(|t| t.starts_with(TMP_PREFIX) && !t.contains('/'))?.to_owned(),
            queue: match f.next() {
                None => false,
                Some("queue") => true,
                Some(_) => return None,
            },
        };
        Some(meta)
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// This process's tokens, by segment name (and the inode of the segment they stand for).
struct Token {
    ino: u64,
    /// The token's file name in the segment's directory, and its inode.
    file: String,
    file_ino: u64,
    _fd: OwnedFd,
}

static TOKENS: Mutex<Option<HashMap<String, Token>>> = Mutex::new(None);
static SEQ: AtomicU64 = AtomicU64::new(0);
static FIRST_USE: Once = Once::new();

fn with_tokens<R>(f: impl FnOnce(&mut HashMap<String, Token>) -> R) -> R {
    let mut g = TOKENS.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// Makes sure this process holds a token for segment `name` whose inode is `ino`.
fn ensure_token(lock: &DirLock, name: &str, ino: u64) -> Result<()> {
    if with_tokens(|t| t.get(name).is_some_and(|tok| tok.ino == ino)) {
        return Ok(());
    }
    let file = format!(
        "{TOKEN_PREFIX}{}.{}.{}",
        proc::current_pid(),
        proc::current_start_time(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let fd = lock.dir.open_file(&file, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600)?;
    let file_ino = sys_shm::stat(fd.as_fd())?.ino;
    if !sys_shm::try_lock(fd.as_fd())? {
        remove_if(&lock.dir, &file, file_ino);
        return Err(Error::invalid("could not lock a fresh shared-memory token"));
    }
    let old = with_tokens(|t| t.insert(name.to_owned(), Token { ino, file, file_ino, _fd: fd }));
    if let Some(old) = old {
        remove_if(&lock.dir, &old.file, old.file_ino);
    }
    Ok(())
}

/// Forgets this process's token for `name` (after an unlink), deleting it from `lock`'s
/// directory if given.
fn drop_token(lock: Option<&DirLock>, name: &str, ino: u64) {
    let old = with_tokens(|t| {
        if t.get(name).is_some_and(|tok| tok.ino == ino) {
            t.remove(name)
        } else {
            None
        }
    });
    if let (Some(old), Some(lock)) = (old, lock) {
        remove_if(&lock.dir, &old.file, old.file_ino);
    }
}

/// Once per process, after its first registration (with no directory lock held, as the sweep
/// takes them all): sweep what crashed processes left, and start the reaper.
fn first_use() {
    FIRST_USE.call_once(|| {
        let _ = sweep_all(false);
        start_reaper();
    });
}

/// The program and arguments that start the reaper, set by a language binding whose processes
/// cannot re-run `/proc/self/exe` as one (see the module docs).
static REAPER_COMMAND: OnceLock<(OsString, Vec<OsString>)> = OnceLock::new();

/// Names the command that starts this process's reaper instead of `/proc/self/exe`; false if
/// one was named already (the first stays). It takes effect if set before the first
/// registration; the command must end up calling [`reap_if_asked`]`(true)`.
pub(crate) fn set_reaper_command(program: OsString, args: Vec<OsString>) -> bool {
    REAPER_COMMAND.set((program, args)).is_ok()
}

fn start_reaper() {
    use std::process::{Command, Stdio};
    let spec = format!("{}:{}", proc::current_pid(), proc::current_start_time());
    let mut command = match REAPER_COMMAND.get() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).env(REAPER_ENV, format!("{EXTERNAL_REAPER}{spec}"));
            c
        }
        None => {
            let mut c = Command::new("/proc/self/exe");
            c.env(REAPER_ENV, spec);
            c
        }
    };
    let child = command.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    if let Ok(mut child) = child {
        // The write end stays open (close-on-exec, so spawned children do not hold it) until
        // this process dies; the reaper sees EOF then.
        if let Some(stdin) = child.stdin.take() {
            std::mem::forget(stdin);
        }
    }
}

// Not under Miri: it rejects ctor 0.2's `.init_array` entry (called as returning `usize`),
// and the unit tests it runs start no child processes.
#[cfg_attr(not(miri), ctor::ctor)]
#[cfg_attr(miri, allow(dead_code))]
fn procshare_shm_reaper_hook() {
    reap_if_asked(false);
}

/// Becomes the reaper if this process was started as one — by `/proc/self/exe` (`external`
/// false: the load-time hook) or by a binding's command (`external` true) — and exits when it
/// is done. Returns false, having done nothing, otherwise.
pub(crate) fn reap_if_asked(external: bool) -> bool {
    let Some(spec) = std::env::var_os(REAPER_ENV) else {
        return false;
    };
    // A stray variable must not turn any procshare program into a reaper: it is followed only
    // outside secure execution (set-user-ID and the like), with a pipe as stdin, and only when
    // it names `pid:start` of our real parent — or of a process that is dead by now (a parent
    // that died before we got here left us to init; sweeping is harmless then). Otherwise
    // `main` runs as usual.
    let parent = spec.to_str().and_then(|s| {
        let s = if external { s.strip_prefix(EXTERNAL_REAPER)? } else { s };
        let (p, s) = s.split_once(':')?;
        Some((p.parse::<u32>().ok()?, s.parse::<u64>().ok()?))
    });
    let Some((pid, start)) = parent else { return false };
    let stdin_is_pipe = std::fs::metadata("/proc/self/fd/0").is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_fifo()
    });
    let ours = if proc::parent_pid() == pid {
        proc::is_alive(pid, start)
    } else {
        !proc::is_alive(pid, start)
    };
    if proc::is_secure_exec() || !stdin_is_pipe || !ours {
        return false;
    }
    sys_shm::detach_and_ignore_signals();
    let mut buf = [0u8; 64];
    let mut stdin = io::stdin();
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    // EOF comes while the parent's descriptors are being closed; its token locks are released
    // by the time it is a zombie.
    for _ in 0..10_000 {
        if !proc::is_alive(pid, start) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = sweep_all(false);
    // A forked child that shared the parent's tokens may close them a moment later.
    std::thread::sleep(Duration::from_millis(50));
    let _ = sweep_all(false);
    std::process::exit(0);
}

/// The result of a sweep of one registered segment.
struct Swept {
    name: String,
    meta: Option<Meta>,
    alive: usize,
    exists: bool,
    /// The segment has no live user and is not persistent: removed (or would be, in a dry run).
    dead: bool,
}

/// Sweeps one locked registry directory.
fn sweep_dir(reg: &Registry, lock: DirLock, name: &str, dry_run: bool) -> Swept {
    let meta = lock.read_meta();
    let alive = lock.live_tokens(!dry_run);
    if let Some(m) = meta.as_ref().filter(|m| m.ino == 0) {
        // A creation that never finished (its creator held this lock throughout, so it died):
        // the name is ours only if it was linked to our temporary segment.
        let tmp_ino = our_segment(&reg.shm, &m.tmp);
        let ours = tmp_ino.is_some() && our_segment(&reg.shm, name) == tmp_ino;
        if !dry_run {
            if let Some(ino) = tmp_ino {
                if ours {
                    remove_if(&reg.shm, name, ino);
                }
                remove_if(&reg.shm, &m.tmp, ino);
            }
            crate::crash::crash_point!("tracker.sweep_unlinked");
            lock.remove(reg);
        }
        return Swept { name: name.to_owned(), meta, alive, exists: ours, dead: ours };
    }
    let ours = meta.as_ref().is_some_and(|m| our_segment(&reg.shm, name) == Some(m.ino));
    let dead = alive == 0 && !meta.as_ref().is_some_and(|m| m.persistent && ours);
    if dead && !dry_run {
        if let Some(m) = &meta {
            if ours {
                remove_if(&reg.shm, name, m.ino);
            }
            remove_if(&reg.shm, &m.tmp, m.ino);
        }
        crate::crash::crash_point!("tracker.sweep_unlinked");
        lock.remove(reg);
    }
    Swept { name: name.to_owned(), meta, alive, exists: ours, dead: dead && ours }
}

fn sweep_all(dry_run: bool) -> Result<Vec<Swept>> {
    let reg = Registry::open(false)?;
    let Some(root) = &reg.root else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for name in root.entries()? {
        // Names procshare makes are UTF-8; anything else is not an entry of ours.
        let Ok(name) = name.into_string() else { continue };
        if let Some(lock) = DirLock::existing(&reg, &name)? {
            out.push(sweep_dir(&reg, lock, &name, dry_run));
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Creates segment `name` of `size` bytes (mode 0600) and registers it.
///
/// The segment is made under a temporary name recorded in `meta` first, then `link`ed to
/// `name` (atomic, fails if the name is taken), so a sweeper can always tell whether a name
/// belongs to a creation that died half-way.
pub(crate) fn create(name: &str, size: usize, persistent: bool) -> Result<OwnedFd> {
    create_kind(name, size, persistent, false)
}

/// Creates the `/dev/shm` file of named queue `name` (`size` bytes, sparse) and registers it
/// like a segment (not persistent).
pub(crate) fn create_queue(name: &str, size: usize) -> Result<OwnedFd> {
    create_kind(name, size, false, true)
}

/// A user-supplied segment or queue name, checked (see `SharedMemory`'s names).
pub(crate) fn check_name(name: &str) -> Result<&str> {
    super::segment::check_name(name)
}

/// The inode of `fd` if it is a regular file of this user's (what `open` accepts by name);
/// else an `Err` naming `name`. For descriptors received from a parent process.
pub(crate) fn check_own_file(fd: std::os::fd::BorrowedFd<'_>, name: &str) -> Result<u64> {
    let st = sys_shm::stat(fd)?;
    let path = Path::new(sys_shm::SHM_DIR).join(name);
    if !st.is_file() {
        return Err(refuse(&path, "is not a regular file", "it is not a segment"));
    }
    if st.uid != sys_shm::euid() {
        return Err(refuse(
            &path,
            &format!("is owned by uid {}, not by this user", st.uid),
            "its owner could read and change it under you",
        ));
    }
    Ok(st.ino)
}

fn create_kind(name: &str, size: usize, persistent: bool, queue: bool) -> Result<OwnedFd> {
    for _ in 0..RETRIES {
        let reg = Registry::open(true)?;
        let Some(root) = &reg.root else { continue };
        let made = match root.create_dir(name, DIR_MODE) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            // An older procshare removed the (empty) root meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        crate::crash::crash_point!("tracker.dir_made");
        let Some(lock) = DirLock::existing(&reg, name)? else {
            if !made && root.stat_at(name).is_ok_and(|s| !s.is_dir() || s.uid != sys_shm::euid()) {
                return Err(refuse(
                    &root_path().join(name),
                    "is not a directory of this user's",
                    "remove it and try again",
                ));
            }
            continue; // swept away meanwhile
        };
        if made {
            // Only ours, whatever the umask.
            lock.dir.set_mode(DIR_MODE)?;
        }
        match reg.shm.stat_at(name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            taken => {
                if made {
                    lock.remove(&reg);
                }
                return Err(match taken {
                    Ok(_) => Error::AlreadyExists(name.to_owned()),
                    Err(e) => e.into(),
                });
            }
        }
        // Whatever is left here describes an earlier segment of this name, gone now.
        lock.clear();
        let mut meta = Meta {
            ino: 0,
            size: size as u64,
            pid: proc::current_pid(),
            start: proc::current_start_time(),
            created: now_secs(),
            persistent,
            tmp: String::new(),
            queue,
        };
        let made_fd = (|| -> Result<OwnedFd> {
            let mut fd = None;
            for _ in 0..RETRIES {
                meta.tmp = format!("{TMP_PREFIX}{}.{}", proc::current_pid(), random_hex()?);
                lock.write_meta(&meta)?;
                crate::crash::crash_point!("tracker.meta_creating");
                let flags = libc::O_CREAT | libc::O_EXCL | libc::O_RDWR;
                match reg.shm.open_file(&meta.tmp, flags, 0o600) {
                    Ok(f) => {
                        fd = Some(f);
                        break;
                    }
                    // Taken (by chance or by someone): another random name.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            let fd = fd.ok_or_else(|| Error::invalid("no free temporary shared-memory name"))?;
            memfd::set_len(fd.as_fd(), size as u64)?;
            let ino = sys_shm::stat(fd.as_fd())?.ino;
            crate::crash::crash_point!("tracker.tmp_made");
            reg.shm.link(&meta.tmp, name).map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => Error::AlreadyExists(name.to_owned()),
                _ => e.into(),
            })?;
            crate::crash::crash_point!("tracker.linked");
            meta.ino = ino;
            lock.write_meta(&meta)?;
            crate::crash::crash_point!("tracker.meta_ino");
            remove_if(&reg.shm, &meta.tmp, ino);
            if !persistent {
                ensure_token(&lock, name, ino)?;
                crate::crash::crash_point!("tracker.token_taken");
            }
            Ok(fd)
        })();
        let fd = match made_fd {
            Ok(fd) => fd,
            Err(e) => {
                if let Some(tmp_ino) = our_segment(&reg.shm, &meta.tmp) {
                    remove_if(&reg.shm, name, tmp_ino);
                    remove_if(&reg.shm, &meta.tmp, tmp_ino);
                }
                lock.remove(&reg);
                return Err(e);
            }
        };
        drop(lock);
        if !persistent {
            first_use();
        }
        return Ok(fd);
    }
    Err(Error::invalid("the shared-memory registry kept changing; try again"))
}

/// Opens `/dev/shm/<name>` read-write if it is a segment this user can trust: a regular file
/// (not a FIFO, device or directory), reached without following a symlink, owned by this user
/// (another user's file could be read and rewritten by them under us).
fn open_segment(shm: &Dir, name: &str) -> Result<OwnedFd> {
    let path = Path::new(sys_shm::SHM_DIR).join(name);
    let fd = match shm.open_file(name, libc::O_RDWR, 0) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            return Err(Error::NotFound(name.to_owned()))
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(refuse(&path, "is a symbolic link", "it is not a segment; remove it"))
        }
        Err(e) => {
            return Err(Error::Io(io::Error::new(e.kind(), format!("{}: {e}", path.display()))))
        }
    };
    let st = sys_shm::stat(fd.as_fd())?;
    if !st.is_file() {
        return Err(refuse(&path, "is not a regular file", "it is not a segment; remove it"));
    }
    let me = sys_shm::euid();
    if st.uid != me {
        return Err(refuse(
            &path,
            &format!("is owned by uid {}, not by this user (uid {me})", st.uid),
            "its owner could read and change it under you; use a segment of your own",
        ));
    }
    Ok(fd)
}

/// Opens segment `name` read-write; registers this process as a user if procshare made it.
pub(crate) fn open(name: &str) -> Result<OwnedFd> {
    let reg = Registry::open(false)?;
    let lock = DirLock::existing(&reg, name)?;
    let fd = match open_segment(&reg.shm, name) {
        Ok(fd) => fd,
        Err(Error::NotFound(n)) => {
            if let Some(lock) = lock {
                sweep_dir(&reg, lock, name, false);
            }
            return Err(Error::NotFound(n));
        }
        Err(e) => return Err(e),
    };
    if let Some(lock) = lock {
        let ino = sys_shm::stat(fd.as_fd())?.ino;
        register_locked(lock, name, ino)?;
    }
    Ok(fd)
}

/// Takes a token if the directory describes this very segment (and it is not persistent).
fn register_locked(lock: DirLock, name: &str, ino: u64) -> Result<()> {
    match lock.read_meta() {
        Some(m) if m.ino == ino && !m.persistent => {
            ensure_token(&lock, name, ino)?;
            crate::crash::crash_point!("tracker.token_opened");
            drop(lock);
            first_use();
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Registers this process as a user of segment `name` (inode `ino`) received from a parent, if
/// procshare made it and it still has that name.
pub(crate) fn attach(name: &str, ino: u64) -> Result<()> {
    if with_tokens(|t| t.get(name).is_some_and(|tok| tok.ino == ino)) {
        return Ok(());
    }
    let reg = Registry::open(false)?;
    match DirLock::existing(&reg, name)? {
        Some(lock) => register_locked(lock, name, ino),
        None => Ok(()),
    }
}

/// `shm_unlink(name)` if `name` still names the segment with inode `ino`, and forgets it.
pub(crate) fn unlink(name: &str, ino: u64) -> Result<()> {
    let reg = Registry::open(false)?;
    let lock = DirLock::existing(&reg, name)?;
    if our_segment(&reg.shm, name) != Some(ino) {
        return Err(Error::NotFound(name.to_owned()));
    }
    reg.shm.remove_file(name).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => Error::NotFound(name.to_owned()),
        _ => e.into(),
    })?;
    drop_token(lock.as_ref(), name, ino);
    if let Some(lock) = lock {
        match lock.read_meta() {
            Some(m) if m.ino != ino => {}
            _ => lock.remove(&reg),
        }
    }
    Ok(())
}

/// A named segment procshare created, as `procshare shm ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The name `SharedMemory::open` (or Python's `SharedMemory(name=...)`) takes.
    pub name: String,
    /// The size asked for at creation, in bytes.
    pub size: u64,
    /// The pid of the process that created it.
    pub creator_pid: u32,
    /// How many live processes use it.
    pub alive_users: usize,
    /// Time since creation.
    pub age: Duration,
    /// Created with `create_persistent`: never unlinked automatically.
    pub persistent: bool,
    /// Whether the segment itself still exists (false: only a stale registry entry is left).
    pub exists: bool,
    /// A named queue (`Queue::create_named`): `size` is its file's (64 GiB, sparse), neither
    /// memory in use nor address space mapped (a process maps what it uses).
    pub queue: bool,
}

/// Every named segment this user's procshare processes created, live or stray, sorted by name.
///
/// ```no_run
/// for s in procshare::shm::list_segments()? {
///     println!("{} {} bytes, {} users", s.name, s.size, s.alive_users);
/// }
/// # Ok::<(), procshare::Error>(())
/// ```
pub fn list_segments() -> Result<Vec<SegmentInfo>> {
    let now = now_secs();
    Ok(sweep_all(true)?
        .into_iter()
        .map(|s| {
            let m = s.meta.unwrap_or(Meta {
                ino: 0,
                size: 0,
                pid: 0,
                start: 0,
                created: now,
                persistent: false,
                tmp: String::new(),
                queue: false,
            });
            SegmentInfo {
                name: s.name,
                size: m.size,
                creator_pid: m.pid,
                alive_users: s.alive,
                age: Duration::from_secs(now.saturating_sub(m.created)),
                persistent: m.persistent,
                exists: s.exists,
                queue: m.queue,
            }
        })
        .collect())
}

/// Unlinks every procshare segment whose users are all dead (persistent ones are kept) and
/// drops stale registry entries; returns the names of the segments removed. With `dry_run`,
/// changes nothing and returns what would be removed.
///
/// ```no_run
/// let removed = procshare::shm::clean(false)?;
/// println!("removed {} stray segments", removed.len());
/// # Ok::<(), procshare::Error>(())
/// ```
pub fn clean(dry_run: bool) -> Result<Vec<String>> {
    Ok(sweep_all(dry_run)?.into_iter().filter(|s| s.dead).map(|s| s.name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips_and_rejects_garbage() {
        let m = Meta {
            ino: 7,
            size: 100,
            pid: 42,
            start: 9,
            created: 5,
            persistent: true,
            tmp: "procshare-tmp.42.1".into(),
            queue: false,
        };
        assert_eq!(Meta::parse(&m.render()), Some(m.clone()));
        let q = Meta { queue: true, persistent: false, ..m };
        assert_eq!(Meta::parse(&q.render()), Some(q));
        assert_eq!(Meta::parse("procshare-shm 1 7 100 42 9 5 0 procshare-tmp.1.1 queue2"), None);
        assert_eq!(Meta::parse("procshare-shm 1 7 100"), None);
        assert_eq!(Meta::parse("garbage"), None);
        assert_eq!(Meta::parse("procshare-shm 1 7 100 42 9 5 2 procshare-tmp.1.1"), None);
        assert_eq!(Meta::parse("procshare-shm 1 7 100 42 9 5 1 ../x"), None);
    }

    #[test]
    fn temp_names_are_random() {
        let (a, b) = (random_hex().unwrap(), random_hex().unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }

    /// A scratch `/dev/shm` + registry under /tmp, so these tests touch no real registry.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> (Scratch, Registry) {
            let base = std::env::temp_dir()
                .join(format!("procshare-tracker-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(base.join("root")).unwrap();
            let reg = Registry {
                shm: Dir::open(&base).unwrap(),
                root: Some(Dir::open(&base.join("root")).unwrap()),
            };
            (Scratch(base), reg)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn mkfifo(path: &Path) {
        // The crate root denies unsafe code, so no libc::mkfifo here.
        let ok = std::process::Command::new("mkfifo").arg(path).status().unwrap().success();
        assert!(ok, "mkfifo {}", path.display());
    }

    #[test]
    fn removal_deletes_only_our_regular_files() {
        let (s, reg) = Scratch::new("rm");
        let seg = s.0.join("root/seg");
        std::fs::create_dir(&seg).unwrap();
        let precious = s.0.join("precious");
        std::fs::write(&precious, b"keep").unwrap();
        std::fs::write(seg.join("t.1.2.3"), b"").unwrap();
        std::os::unix::fs::symlink(&precious, seg.join("meta")).unwrap();
        std::os::unix::fs::symlink(&s.0, seg.join("t.dir")).unwrap();
        mkfifo(&seg.join("t.fifo"));
        // A symlink where a segment directory belongs is never locked, swept or followed.
        std::os::unix::fs::symlink(&s.0, s.0.join("root/link")).unwrap();
        assert!(DirLock::existing(&reg, "link").unwrap().is_none());

        let lock = DirLock::existing(&reg, "seg").unwrap().unwrap();
        assert_eq!(lock.read_meta(), None, "meta through a symlink is not read");
        assert_eq!(lock.live_tokens(true), 0);
        lock.remove(&reg);
        assert_eq!(std::fs::read(&precious).unwrap(), b"keep");
        assert!(!seg.join("t.1.2.3").exists(), "our regular token is removed");
        assert!(std::fs::symlink_metadata(seg.join("meta")).unwrap().is_symlink());
        assert!(std::fs::symlink_metadata(seg.join("t.fifo")).is_ok());
        assert!(s.0.join("root/link").exists());
    }

    #[test]
    fn a_fifo_at_a_segment_name_does_not_hang_a_sweep() {
        let (s, reg) = Scratch::new("fifo");
        std::fs::create_dir(s.0.join("root/psm_f")).unwrap();
        mkfifo(&s.0.join("psm_f"));
        mkfifo(&s.0.join("procshare-tmp.1.x"));
        let ino =
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(s.0.join("psm_f")).unwrap());
        for meta_ino in [ino, 0] {
            let lock = DirLock::existing(&reg, "psm_f").unwrap().unwrap();
            let meta = Meta {
                ino: meta_ino,
                size: 8,
                pid: 1,
                start: 1,
                created: 0,
                persistent: false,
                tmp: "procshare-tmp.1.x".into(),
                queue: false,
            };
            lock.write_meta(&meta).unwrap();
            let swept = sweep_dir(&reg, lock, "psm_f", true);
            assert!(!swept.exists && !swept.dead, "a FIFO is not our segment");
        }
        let lock = DirLock::existing(&reg, "psm_f").unwrap().unwrap();
        sweep_dir(&reg, lock, "psm_f", false);
        assert!(s.0.join("psm_f").exists() && s.0.join("procshare-tmp.1.x").exists());
        assert!(!s.0.join("root/psm_f").exists(), "the stale entry is dropped");
    }
}
