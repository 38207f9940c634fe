//! The tracker: who uses each named segment procshare created, and who unlinks it when they are
//! all gone — without a central daemon (iceoryx2-style file-lock liveness).
//!
//! # How
//!
//! ```text
//! /dev/shm/procshare-<uid>/                 the registry, mode 0700, removed when empty
//!   <name>/                                 one directory per segment procshare created
//!     meta                                  "procshare-shm 1 <ino> <size> <pid> <start> <unix secs>
//!                                            <persistent> <temporary name>"
//!     t.<pid>.<start>.<seq>                 one token per process using the segment,
//!                                           held under flock(LOCK_EX) by that process
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
//!   user dies with nobody else around to notice.
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
//!
//! # Crash table (SIGKILL of a process between steps; "sweep" = any later sweeper)
//!
//! `create` holds the directory lock throughout, so a sweeper that gets the lock and finds
//! `meta` still saying "creating" (inode 0) knows the creator died in the middle.
//!
//! | step of `create`                                   | left behind                          | repaired by |
//! |----------------------------------------------------|--------------------------------------|-------------|
//! | after `mkdir <name>`, before `meta`                | empty dir                            | sweep removes the dir |
//! | after `meta` ("creating", temp name T), before `shm_open(T)` | dir                        | sweep removes the dir |
//! | after `shm_open(T)`/`ftruncate`, before `link(T, name)` | segment T                       | sweep unlinks T (a procshare-only name) |
//! | after `link`, before `meta` gets the inode         | T and name, same inode               | sweep sees name == T, unlinks both |
//! | after `meta` (inode), before `unlink(T)` / token   | name (and T), no live token          | sweep unlinks both |
//! | after the token                                    | registered segment                   | reaper / sweep once every token is free |
//! | `open`/`attach`: after the token is written        | token, its lock dies with us         | sweep deletes the dead token |
//! | sweep: after `shm_unlink`, before `rmdir`          | dir whose segment is gone            | next sweep removes it (inode no longer matches) |
//!
//! A name is unlinked only while it still names the inode recorded (or the temporary segment
//! recorded), so a segment someone else made under that name meanwhile is never touched.

use crate::error::{Error, Result};
use crate::sys::{memfd, proc, shm as sys_shm};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const REAPER_ENV: &str = "PROCSHARE_SHM_REAPER";
const META: &str = "meta";
const META_TMP: &str = "meta.tmp";
const TOKEN_PREFIX: &str = "t.";
const META_MAGIC: &str = "procshare-shm";
/// Segments are made under a temporary name `procshare-tmp.<pid>.<seq>`, then linked to theirs.
const TMP_PREFIX: &str = "procshare-tmp.";
/// Bounds the retries when a sweeper removes a directory under our feet.
const RETRIES: usize = 100;

fn root() -> PathBuf {
    PathBuf::from(format!("/dev/shm/procshare-{}", sys_shm::uid()))
}

/// Creates the registry directory (0700) if needed and checks it is ours.
fn ensure_root() -> Result<PathBuf> {
    let root = root();
    for _ in 0..RETRIES {
        match fs::DirBuilder::new().mode(0o700).create(&root) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
        match check_owner(&root) {
            // A sweeper removed the (empty) registry between our mkdir and the check.
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::NotFound => continue,
            other => return other.map(|()| root),
        }
    }
    Err(Error::invalid("the shared-memory registry kept changing; try again"))
}

fn check_owner(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(dir)?;
    if !m.is_dir() || m.uid() != sys_shm::uid() {
        return Err(Error::invalid(format!(
            "{} is not a directory owned by this user; remove it",
            dir.display()
        )));
    }
    Ok(())
}

/// A segment's registry directory, locked (`flock` on the directory itself).
struct DirLock {
    file: File,
    dir: PathBuf,
}

impl DirLock {
    /// Locks `dir` if it exists; `Ok(None)` if it does not (or was removed while we waited).
    fn existing(dir: PathBuf) -> Result<Option<DirLock>> {
        let file = match File::open(&dir) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        sys_shm::lock(file.as_fd())?;
        // A sweeper may have removed it while we waited for the lock.
        if sys_shm::stat(file.as_fd())?.nlink == 0 {
            return Ok(None);
        }
        Ok(Some(DirLock { file, dir }))
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn read_meta(&self) -> Option<Meta> {
        let mut text = String::new();
        File::open(self.path(META)).ok()?.take(4096).read_to_string(&mut text).ok()?;
        Meta::parse(&text)
    }

    fn write_meta(&self, meta: &Meta) -> Result<()> {
        let tmp = self.path(META_TMP);
        let mut f =
            OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(meta.render().as_bytes())?;
        fs::rename(&tmp, self.path(META))?;
        Ok(())
    }

    fn tokens(&self) -> Vec<PathBuf> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(TOKEN_PREFIX))
            .map(|e| e.path())
            .collect()
    }

    /// Counts live tokens; with `reap`, deletes the dead ones.
    fn live_tokens(&self, reap: bool) -> usize {
        let mut alive = 0;
        for t in self.tokens() {
            let Ok(f) = File::open(&t) else { continue };
            match sys_shm::try_lock(f.as_fd()) {
                Ok(true) => {
                    if reap {
                        let _ = fs::remove_file(&t);
                    }
                }
                _ => alive += 1,
            }
        }
        alive
    }

    /// Removes every file and the directory itself (we hold the lock, so nobody is adding).
    fn remove(self) {
        if let Ok(rd) = fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let _ = fs::remove_file(e.path());
            }
        }
        let _ = fs::remove_dir(&self.dir);
        if let Some(parent) = self.dir.parent() {
            // Fails harmlessly while other segments are registered.
            let _ = fs::remove_dir(parent);
        }
        drop(self.file);
    }

    /// Removes the tokens and meta of a previous incarnation of the name.
    fn clear(&self) {
        if let Ok(rd) = fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// What `meta` records about a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    /// The segment's inode; 0 while it is being created.
    ino: u64,
    size: u64,
    pid: u32,
    start: u64,
    created: u64,
    persistent: bool,
    /// The temporary name the segment was made under before being linked to its own.
    tmp: String,
}

impl Meta {
    fn render(&self) -> String {
        format!(
            "{META_MAGIC} 1 {} {} {} {} {} {} {}\n",
            self.ino,
            self.size,
            self.pid,
            self.start,
            self.created,
            self.persistent as u8,
            self.tmp
        )
    }

    fn parse(text: &str) -> Option<Meta> {
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
    path: PathBuf,
    _file: File,
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
    let file_name = format!(
        "{TOKEN_PREFIX}{}.{}.{}",
        proc::current_pid(),
        proc::current_start_time(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let path = lock.path(&file_name);
    let file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
    if !sys_shm::try_lock(file.as_fd())? {
        let _ = fs::remove_file(&path);
        return Err(Error::invalid("could not lock a fresh shared-memory token"));
    }
    let old = with_tokens(|t| t.insert(name.to_owned(), Token { ino, path, _file: file }));
    if let Some(old) = old {
        let _ = fs::remove_file(&old.path);
    }
    Ok(())
}

/// Forgets this process's token for `name` (after an unlink).
fn drop_token(name: &str, ino: u64) {
    let old = with_tokens(|t| {
        if t.get(name).is_some_and(|tok| tok.ino == ino) {
            t.remove(name)
        } else {
            None
        }
    });
    if let Some(old) = old {
        let _ = fs::remove_file(&old.path);
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

fn start_reaper() {
    use std::process::{Command, Stdio};
    let spec = format!("{}:{}", proc::current_pid(), proc::current_start_time());
    let child = Command::new("/proc/self/exe")
        .env(REAPER_ENV, spec)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Ok(mut child) = child {
        // The write end stays open (close-on-exec, so spawned children do not hold it) until
        // this process dies; the reaper sees EOF then.
        if let Some(stdin) = child.stdin.take() {
            std::mem::forget(stdin);
        }
    }
}

#[ctor::ctor]
fn procshare_shm_reaper_hook() {
    let Some(spec) = std::env::var_os(REAPER_ENV) else {
        return;
    };
    sys_shm::detach_and_ignore_signals();
    let parent = spec.to_str().and_then(|s| {
        let (p, s) = s.split_once(':')?;
        Some((p.parse::<u32>().ok()?, s.parse::<u64>().ok()?))
    });
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
    if let Some((pid, start)) = parent {
        for _ in 0..10_000 {
            if !proc::is_alive(pid, start) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
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

/// The inode of the segment now called `name`, if any.
fn current_ino(name: &str) -> Option<u64> {
    let fd = sys_shm::open(name, libc::O_RDONLY, 0).ok()?;
    sys_shm::stat(fd.as_fd()).ok().map(|s| s.ino)
}

/// Sweeps one locked registry directory.
fn sweep_dir(lock: DirLock, name: &str, dry_run: bool) -> Swept {
    let meta = lock.read_meta();
    let alive = lock.live_tokens(!dry_run);
    if let Some(m) = meta.as_ref().filter(|m| m.ino == 0) {
        // A creation that never finished (its creator held this lock throughout, so it died):
        // the name is ours only if it was linked to our temporary segment.
        let tmp_ino = current_ino(&m.tmp);
        let ours = tmp_ino.is_some() && current_ino(name) == tmp_ino;
        if !dry_run {
            if ours {
                let _ = sys_shm::unlink(name);
            }
            let _ = sys_shm::unlink(&m.tmp);
            lock.remove();
        }
        return Swept { name: name.to_owned(), meta, alive, exists: ours, dead: ours };
    }
    let ours = meta.as_ref().is_some_and(|m| current_ino(name) == Some(m.ino));
    let dead = alive == 0 && !meta.as_ref().is_some_and(|m| m.persistent && ours);
    if dead && !dry_run {
        if ours {
            let _ = sys_shm::unlink(name);
        }
        if let Some(m) = &meta {
            let _ = sys_shm::unlink(&m.tmp);
        }
        lock.remove();
    }
    Swept { name: name.to_owned(), meta, alive, exists: ours, dead: dead && ours }
}

fn sweep_all(dry_run: bool) -> Result<Vec<Swept>> {
    let root = root();
    let rd = match fs::read_dir(&root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    match check_owner(&root) {
        // Another sweeper removed the empty registry meanwhile: nothing to sweep.
        Err(Error::Io(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other?,
    }
    let mut out = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(lock) = DirLock::existing(e.path())? {
            out.push(sweep_dir(lock, &name, dry_run));
        }
    }
    if !dry_run {
        let _ = fs::remove_dir(&root);
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
    for _ in 0..RETRIES {
        let root = ensure_root()?;
        let dir = root.join(name);
        let made = match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // root swept away
            Err(e) => return Err(e.into()),
        };
        let Some(lock) = DirLock::existing(dir)? else { continue };
        if current_ino(name).is_some() {
            if made {
                lock.remove();
            }
            return Err(Error::AlreadyExists(name.to_owned()));
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
            tmp: format!(
                "{TMP_PREFIX}{}.{}",
                proc::current_pid(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            ),
        };
        let made_fd = (|| -> Result<OwnedFd> {
            lock.write_meta(&meta)?;
            let fd = sys_shm::open(&meta.tmp, libc::O_CREAT | libc::O_EXCL | libc::O_RDWR, 0o600)?;
            memfd::set_len(fd.as_fd(), size as u64)?;
            let ino = sys_shm::stat(fd.as_fd())?.ino;
            sys_shm::link(&meta.tmp, name).map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => Error::AlreadyExists(name.to_owned()),
                _ => e.into(),
            })?;
            meta.ino = ino;
            lock.write_meta(&meta)?;
            let _ = sys_shm::unlink(&meta.tmp);
            if !persistent {
                ensure_token(&lock, name, ino)?;
            }
            Ok(fd)
        })();
        let fd = match made_fd {
            Ok(fd) => fd,
            Err(e) => {
                let tmp_ino = current_ino(&meta.tmp);
                if tmp_ino.is_some() && current_ino(name) == tmp_ino {
                    let _ = sys_shm::unlink(name);
                }
                let _ = sys_shm::unlink(&meta.tmp);
                lock.remove();
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

/// Opens segment `name` read-write; registers this process as a user if procshare made it.
pub(crate) fn open(name: &str) -> Result<OwnedFd> {
    let dir = root().join(name);
    let lock = DirLock::existing(dir)?;
    let fd = match sys_shm::open(name, libc::O_RDWR, 0) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            if let Some(lock) = lock {
                sweep_dir(lock, name, false);
            }
            return Err(Error::NotFound(name.to_owned()));
        }
        Err(e) => return Err(e.into()),
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
    match DirLock::existing(root().join(name))? {
        Some(lock) => register_locked(lock, name, ino),
        None => Ok(()),
    }
}

/// `shm_unlink(name)` if `name` still names the segment with inode `ino`, and forgets it.
pub(crate) fn unlink(name: &str, ino: u64) -> Result<()> {
    let lock = DirLock::existing(root().join(name))?;
    if current_ino(name) != Some(ino) {
        return Err(Error::NotFound(name.to_owned()));
    }
    sys_shm::unlink(name).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => Error::NotFound(name.to_owned()),
        _ => e.into(),
    })?;
    drop_token(name, ino);
    if let Some(lock) = lock {
        match lock.read_meta() {
            Some(m) if m.ino != ino => {}
            _ => lock.remove(),
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
            });
            SegmentInfo {
                name: s.name,
                size: m.size,
                creator_pid: m.pid,
                alive_users: s.alive,
                age: Duration::from_secs(now.saturating_sub(m.created)),
                persistent: m.persistent,
                exists: s.exists,
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
        };
        assert_eq!(Meta::parse(&m.render()), Some(m));
        assert_eq!(Meta::parse("procshare-shm 1 7 100"), None);
        assert_eq!(Meta::parse("garbage"), None);
        assert_eq!(Meta::parse("procshare-shm 1 7 100 42 9 5 2 procshare-tmp.1.1"), None);
        assert_eq!(Meta::parse("procshare-shm 1 7 100 42 9 5 1 ../x"), None);
    }
}
