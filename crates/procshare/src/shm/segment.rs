//! `SharedMemory`: a named POSIX shared-memory segment (Python's
//! `multiprocessing.shared_memory.SharedMemory`), byte-compatible with CPython's.
//!
//! A segment is `/dev/shm/<name>` with no header: the bytes are exactly what Python's
//! `SharedMemory(name=...).buf` shows, so each side can open the other's. Names look like
//! Python's (`psm_` + 8 hex digits) unless you choose one. Lifetime is kept by the tracker (see
//! [`crate::shm`] and `tracker.rs`): a segment procshare creates lives while any process that
//! created or opened it is alive and is unlinked after the last one dies, however it died —
//! unless made with [`SharedMemory::create_persistent`]. Segments made elsewhere (by Python)
//! are never unlinked by procshare unless you call [`SharedMemory::unlink`].
//!
//! Crash table: the segment holds no procshare state, so a process killed in the middle of a
//! `write` leaves exactly the bytes it had copied — as with Python; guard multi-step updates with
//! a `Lock`. Registration crashes are covered by the tracker's table.
//! | killed ...                          | leaves                          | repaired by | point |
//! |-------------------------------------|---------------------------------|-------------|-------|
//! | between two `write`s of one update  | the first write's bytes only    | nobody (no lock, as in Python) | `segment.written` |
//!
//! Fork vs spawn: a forked child inherits the mapping and the parent's registration. A spawned
//! child gets the segment as a `Process` argument: its descriptor travels with it (so it works
//! even after the name was unlinked) and the child registers as a user.
//!
//! # Safety
//! The mapping is `MAP_SHARED` memory that other processes may write at any time, so it is only
//! touched through `Mapping::read_at`/`write_at` (bounded copies, in `sys`); the two public
//! `unsafe` slice accessors, the API's, hand the aliasing question to the caller and are the
//! only items here allowed `unsafe`.

use crate::error::{Error, Result};
use crate::shared::handles::{RecvFd, SendFd};
use crate::shm::tracker;
use crate::sys::{mmap::Mapping, shm as sys_shm};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The longest name accepted (macOS allows 31 bytes with the slash).
pub(crate) const MAX_NAME_LEN: usize = 30;

struct Inner {
    name: String,
    size: usize,
    ino: u64,
    map: Option<Mapping>,
    fd: OwnedFd,
}

/// A named shared-memory segment (Python's `SharedMemory`). Clones share the mapping.
///
/// ```
/// use procshare::SharedMemory;
///
/// let shm = SharedMemory::create(16)?;
/// shm.write(0, b"hello")?;
/// let other = SharedMemory::open(shm.name())?; // as Python's SharedMemory(name=...)
/// let mut buf = [0u8; 5];
/// other.read(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// assert_eq!(other.size(), 16);
/// shm.unlink()?;
/// # Ok::<(), procshare::Error>(())
/// ```
#[derive(Clone)]
pub struct SharedMemory(Arc<Inner>);

impl std::fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedMemory({:?}, size={})", self.0.name, self.0.size)
    }
}

/// Checks a user-supplied name; a single leading `/` (POSIX style) is accepted and dropped.
pub(crate) fn check_name(name: &str) -> Result<&str> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() || bare == "." || bare == ".." {
        return Err(Error::invalid(format!("bad shared memory name {name:?}")));
    }
    if bare.len() > MAX_NAME_LEN {
        return Err(Error::invalid(format!(
            "shared memory name {name:?} is longer than {MAX_NAME_LEN} bytes"
        )));
    }
    if bare.contains('/') || bare.contains('\0') {
        return Err(Error::invalid(format!(
            "shared memory name {name:?} must not contain '/' (except a leading one) or NUL"
        )));
    }
    Ok(bare)
}

/// `psm_` + 8 hex digits, like Python's generated names.
fn fresh_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(crate::sys::proc::current_pid());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("psm_{:08x}", h.finish() as u32)
}

fn check_size(size: usize) -> Result<()> {
    if size == 0 {
        return Err(Error::invalid("'size' must be a positive number different from zero"));
    }
    if size > i64::MAX as usize {
        return Err(Error::invalid("'size' is too large"));
    }
    Ok(())
}

impl SharedMemory {
    /// A new zero-filled segment of `size` bytes with a fresh name (`psm_` + 8 hex digits).
    ///
    /// `size` 0 is `Err(InvalidArgument)`. The segment is unlinked once every process that
    /// created or opened it has died (see the module docs).
    ///
    /// ```
    /// let shm = procshare::SharedMemory::create(4096)?;
    /// assert!(shm.name().starts_with("psm_"));
    /// # shm.unlink()?;
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn create(size: usize) -> Result<SharedMemory> {
        Self::create_fresh(size, false)
    }

    /// A new segment called `name`; `Err(AlreadyExists)` if the name is taken.
    ///
    /// ```
    /// # let name = format!("psm_doc{}", std::process::id());
    /// let shm = procshare::SharedMemory::create_named(&name, 100)?;
    /// assert!(matches!(
    ///     procshare::SharedMemory::create_named(&name, 100),
    ///     Err(procshare::Error::AlreadyExists(_))
    /// ));
    /// # shm.unlink()?;
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn create_named(name: &str, size: usize) -> Result<SharedMemory> {
        check_size(size)?;
        let name = check_name(name)?;
        Self::make(name, size, false)
    }

    /// Like [`create`](Self::create) but *persistent*: the segment outlives every process until
    /// someone calls [`unlink`](Self::unlink) (Python's behaviour without its resource tracker).
    /// `procshare shm ls` shows it; `procshare shm clean` leaves it.
    ///
    /// ```
    /// let shm = procshare::SharedMemory::create_persistent(64)?;
    /// // ... hand shm.name() to a program started later ...
    /// shm.unlink()?;
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn create_persistent(size: usize) -> Result<SharedMemory> {
        Self::create_fresh(size, true)
    }

    /// Like [`create_named`](Self::create_named) but persistent (see
    /// [`create_persistent`](Self::create_persistent)).
    ///
    /// ```
    /// # let name = format!("psm_pdoc{}", std::process::id());
    /// let shm = procshare::SharedMemory::create_named_persistent(&name, 64)?;
    /// shm.unlink()?;
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn create_named_persistent(name: &str, size: usize) -> Result<SharedMemory> {
        check_size(size)?;
        let name = check_name(name)?;
        Self::make(name, size, true)
    }

    fn create_fresh(size: usize, persistent: bool) -> Result<SharedMemory> {
        check_size(size)?;
        for _ in 0..100 {
            match Self::make(&fresh_name(), size, persistent) {
                Err(Error::AlreadyExists(_)) => continue,
                other => return other,
            }
        }
        Err(Error::invalid("could not find a free shared memory name"))
    }

    fn make(name: &str, size: usize, persistent: bool) -> Result<SharedMemory> {
        let fd = tracker::create(name, size, persistent)?;
        let ino = sys_shm::stat(fd.as_fd())?.ino;
        Self::from_fd(name.to_owned(), fd).inspect_err(|_| {
            let _ = tracker::unlink(name, ino);
        })
    }

    /// Opens the existing segment `name` (one made here or by Python); `Err(NotFound)` if there
    /// is none. Its size is the creator's.
    ///
    /// Only a regular file owned by this user is opened, and a symlink is never followed:
    /// anything else at the name (a FIFO, another user's file) is an `Err` naming the path, as
    /// is a registry (`/dev/shm/procshare-<uid>`) that is not this user's.
    ///
    /// ```
    /// let a = procshare::SharedMemory::create(10)?;
    /// let b = procshare::SharedMemory::open(a.name())?;
    /// assert_eq!(b.size(), 10);
    /// assert!(matches!(
    ///     procshare::SharedMemory::open("psm_nosuchname"),
    ///     Err(procshare::Error::NotFound(_))
    /// ));
    /// # a.unlink()?;
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<SharedMemory> {
        let name = check_name(name)?;
        let fd = tracker::open(name)?;
        Self::from_fd(name.to_owned(), fd)
    }

    /// Maps an open segment.
    fn from_fd(name: String, fd: OwnedFd) -> Result<SharedMemory> {
        let st = sys_shm::stat(fd.as_fd())?;
        // A descriptor from a peer may be anything (a pipe, a socket, a directory): only a
        // regular file is a segment with a size to map.
        if !st.is_file() {
            return Err(Error::invalid(format!(
                "{name:?} is not a shared-memory segment (not a regular file)"
            )));
        }
        let size = usize::try_from(st.size).map_err(|_| Error::invalid("segment too large"))?;
        let map = if size == 0 { None } else { Some(Mapping::map(fd.as_fd(), size)?) };
        Ok(SharedMemory(Arc::new(Inner { name, size, ino: st.ino, map, fd })))
    }

    /// The name Python's `SharedMemory(name=...)` opens (no leading slash).
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The size in bytes: the size the creator asked for (never rounded up to pages).
    pub fn size(&self) -> usize {
        self.0.size
    }

    fn check_range(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.0.size => Ok(()),
            _ => Err(Error::invalid(format!(
                "range {offset}..{} is outside the {}-byte segment {:?}",
                offset as u128 + len as u128,
                self.0.size,
                self.0.name
            ))),
        }
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`; `Err(InvalidArgument)` past the end.
    ///
    /// ```
    /// let shm = procshare::SharedMemory::create(4)?;
    /// let mut buf = [1u8; 4];
    /// shm.read(0, &mut buf)?;
    /// assert_eq!(buf, [0; 4]);
    /// assert!(shm.read(1, &mut buf).is_err());
    /// # shm.unlink()?;
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.check_range(offset, buf.len())?;
        match &self.0.map {
            Some(m) if !buf.is_empty() => Ok(m.read_at(offset, buf)?),
            _ => Ok(()),
        }
    }

    /// Copies `data` to `offset`; `Err(InvalidArgument)` past the end (nothing is written then).
    ///
    /// ```
    /// let shm = procshare::SharedMemory::create(4)?;
    /// shm.write(2, b"ab")?;
    /// assert!(shm.write(3, b"ab").is_err());
    /// # shm.unlink()?;
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check_range(offset, data.len())?;
        match &self.0.map {
            Some(m) if !data.is_empty() => {
                m.write_at(offset, data)?;
                crate::crash::crash_point!("segment.written");
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The first byte of the mapping (`size()` bytes are valid; other processes may write them
    /// at any time).
    pub fn as_ptr(&self) -> *mut u8 {
        match &self.0.map {
            Some(m) => m.as_ptr(),
            None => NonNull::dangling().as_ptr(),
        }
    }

    /// The whole segment as a slice.
    ///
    /// # Safety
    /// Other processes (and other handles here) may write the bytes while the slice lives; the
    /// caller must make sure nobody does (e.g. by holding a `Lock` that all writers take).
    #[allow(unsafe_code)] // the public API's accessor; the caller answers for the aliasing
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is `size` bytes long and lives as long as `self`; exclusion of
        // writers is the caller's promise.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.0.size) }
    }

    /// The whole segment as a mutable slice.
    ///
    /// # Safety
    /// The caller must make sure no other reference to these bytes is used while the slice
    /// lives — in this process (other `as_slice`/`as_mut_slice` results, clones) and in others.
    #[allow(clippy::mut_from_ref)]
    #[allow(unsafe_code)] // as `as_slice`
    pub unsafe fn as_mut_slice(&self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; exclusivity is the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.as_ptr(), self.0.size) }
    }

    /// Removes the name (`shm_unlink`), so nobody can open it any more; mappings that exist stay
    /// valid. A second call, or a call after someone else unlinked it, is `Err(NotFound)`.
    ///
    /// ```
    /// let shm = procshare::SharedMemory::create(8)?;
    /// shm.unlink()?;
    /// assert!(matches!(shm.unlink(), Err(procshare::Error::NotFound(_))));
    /// shm.write(0, b"still ok")?;
    /// # Ok::<(), procshare::Error>(())
    /// ```
    pub fn unlink(&self) -> Result<()> {
        tracker::unlink(&self.0.name, self.0.ino)
    }
}

impl Serialize for SharedMemory {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (self.0.name.as_str(), SendFd(self.0.fd.as_fd())).serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedMemory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let (name, RecvFd(fd)) = <(String, RecvFd)>::deserialize(d)?;
        let name = check_name(&name).map_err(D::Error::custom)?.to_owned();
        let shm = SharedMemory::from_fd(name, fd).map_err(D::Error::custom)?;
        tracker::attach(&shm.0.name, shm.0.ino).map_err(D::Error::custom)?;
        Ok(shm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(check_name("/psm_1").unwrap(), "psm_1");
        assert!(check_name("").is_err());
        assert!(check_name("/").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name("..").is_err());
        assert!(check_name("a\0b").is_err());
        assert!(check_name(&"x".repeat(31)).is_err());
        assert!(check_name(&"x".repeat(30)).is_ok());
        let n = fresh_name();
        assert_eq!(n.len(), 12);
        assert!(n.starts_with("psm_"));
    }
}
