//! `Region`: an anonymous shared-memory segment (a memfd), the home of every procshare object
//! that lives in shared memory and is handed to children (locks, queues, pipes, `Value`,
//! `Array`).
//!
//! ```text
//!  0        8         12        16                  24                  32          64
//!  +--------+---------+---------+-------------------+-------------------+-----------+------
//!  | magic  | version | state   | payload_len (u64) | eager_len (u64)   | pad       | payload
//!  +--------+---------+---------+-------------------+-------------------+-----------+------
//! ```
//! `magic` names the kind of object, `state` goes `0 (creating) -> READY` with Release after
//! the creator has initialised the payload; an opener checks all of it (Acquire) and refuses a
//! foreign, half-made or truncated segment with an error. A region lives as long as any process
//! holds its descriptor or mapping: it cannot leak past its last user.
//!
//! Every process maps the header and the first `eager_len` payload bytes (all of it, for most
//! kinds); the rest of the file is mapped by its kind as it is used, through
//! [`Region::map_range`]: a queue's ring is a 64 GiB sparse file of which a process maps only
//! the extents it touches (`queue/ring.rs`).
//!
//! The memfd is sealed (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`) as soon as it is sized,
//! before anyone else can hold it: a peer holding the region can scribble on its bytes (every
//! user validates what it reads) but can never change its size, so no process is killed by
//! SIGBUS on a mapping whose file was truncated under it. Hole punching (`MADV_REMOVE`, used by
//! the queue to give memory back) stays allowed; pages read as zeros afterwards. An opener
//! refuses a descriptor that is not a memfd carrying those seals, or whose size is not the one
//! its header names, before mapping it.
//!
//! Crash table: after `READY` the header never changes.
//! | killed ...                      | leaves                                | repaired by | point |
//! |---------------------------------|---------------------------------------|-------------|-------|
//! | creating, before `READY`        | a memfd nobody else holds (a named queue's file, [`Region::create_in`]: a file whose openers give up on it after a short wait) | the kernel: it dies with the creator (the file: the shared-memory tracker, its creator's token being dead) | `region.before_ready` |
//! | in `store_bytes`, between words | the span part new, part old (each word whole) | the user's protocol (the lock, or none for raw values) | `region.word_stored` |
//!
//! # Safety
//! Users view the payload through [`Region::at`], a safe method: it checks bounds and
//! alignment, and takes only [`Shared`] types (valid for any bit pattern, atomics only), so
//! nothing a peer writes can make the view invalid or a data race. Byte ranges go through
//! [`Region::load_bytes`]/[`Region::store_bytes`] (bounded relaxed atomic copies). The `unsafe`
//! left here is the pointer arithmetic behind those, the `Shared` impls, and `header`.
#![allow(unsafe_code)]

use crate::error::{Error, Result};
use crate::shared::handles::{RecvFd, SendFd};
use crate::sys::{memfd, mmap::Mapping};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Bytes before the payload; keeps the payload cache-line aligned.
pub(crate) const HEADER_LEN: usize = 64;
/// The layout version of every kind of region (2: the queue header's tail moved to a line of its
/// own; 3: `eager_len`, and a ring mapped in extents as it is used). A named object of another
/// version is refused with an error that says so.
const VERSION: u32 = 3;
const READY: u32 = 0x5245_4144; // "READ"
/// Seals every region carries: its size is fixed for good (contents stay writable).
const SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

#[repr(C)]
struct Header {
    magic: AtomicU64,
    version: AtomicU32,
    state: AtomicU32,
    payload_len: AtomicU64,
    /// Payload bytes every process maps when it opens the region (at most `payload_len`).
    eager_len: AtomicU64,
}

struct Inner {
    fd: OwnedFd,
    /// The header and the first `eager_len` payload bytes.
    map: Mapping,
    magic: u64,
    /// Payload bytes of the file (mapped or not).
    payload_len: usize,
}

/// The header fields an opener reads with `pread`, before it maps anything.
struct Peek {
    magic: u64,
    version: u32,
    state: u32,
    payload_len: u64,
    eager_len: u64,
}

fn peek(fd: std::os::fd::BorrowedFd<'_>) -> Result<Peek> {
    let mut b = [0u8; 32];
    memfd::read_exact_at(fd, &mut b, 0)?;
    let word = |at: usize| u64::from_ne_bytes(b[at..at + 8].try_into().unwrap_or_default());
    Ok(Peek {
        magic: word(0),
        version: u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
        state: u32::from_ne_bytes([b[12], b[13], b[14], b[15]]),
        payload_len: word(16),
        eager_len: word(24),
    })
}

/// A shared-memory segment; clones share it. Serializes (as a `Process` argument) to a handle
/// that opens the same memory in the child.
#[derive(Clone)]
pub(crate) struct Region(Arc<Inner>);

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region").field("len", &self.payload_len()).finish()
    }
}

impl Region {
    /// A new zeroed region of `payload_len` bytes of kind `magic`; `init` fills the payload
    /// before the region is published as ready.
    pub(crate) fn create(
        magic: u64,
        payload_len: usize,
        init: impl FnOnce(&Region),
    ) -> Result<Region> {
        Region::create_lazy(magic, payload_len, payload_len, init)
    }

    /// As [`Region::create`], mapping only the first `eager_len` payload bytes (in every
    /// process that opens it); the rest is reached through [`Region::map_range`].
    pub(crate) fn create_lazy(
        magic: u64,
        payload_len: usize,
        eager_len: usize,
        init: impl FnOnce(&Region),
    ) -> Result<Region> {
        let total = payload_len
            .checked_add(HEADER_LEN)
            .ok_or_else(|| Error::invalid("shared region too large"))?;
        let fd = memfd::create("procshare")?;
        memfd::set_len(fd.as_fd(), total as u64)?;
        memfd::add_seals(fd.as_fd(), SEALS)?;
        let region = Region::map_eager(fd, magic, payload_len, eager_len)?;
        init(&region);
        let h = region.header();
        h.magic.store(magic, Ordering::Relaxed);
        h.version.store(VERSION, Ordering::Relaxed);
        h.payload_len.store(payload_len as u64, Ordering::Relaxed);
        h.eager_len.store(region.mapped_len() as u64, Ordering::Relaxed);
        // Release: pairs with the Acquire in `open`; the payload is initialised before this.
        crate::crash::crash_point!("region.before_ready");
        h.state.store(READY, Ordering::Release);
        Ok(region)
    }

    /// Maps a region received from another process and checks its header.
    pub(crate) fn open(fd: OwnedFd, magic: u64) -> Result<Region> {
        // Seals first: only a sealed file keeps the size checked below for as long as we map it
        // (a peer could otherwise truncate it and SIGBUS us on the next access).
        let seals = memfd::seals(fd.as_fd())
            .map_err(|_| Error::invalid("shared region handle is not a memfd"))?;
        if seals & SEALS != SEALS {
            return Err(Error::invalid(
                "shared region's memfd is not sealed against resizing (not made by procshare?)",
            ));
        }
        if Region::file_len(fd.as_fd())? >= HEADER_LEN && peek(fd.as_fd())?.state != READY {
            return Err(Error::invalid("shared region is not initialised (its creator died?)"));
        }
        let region = Region::map_opened(fd, magic)?;
        // Acquire: pairs with the Release in `create`.
        if region.header().state.load(Ordering::Acquire) != READY {
            return Err(Error::invalid("shared region is not initialised (its creator died?)"));
        }
        region.check_header(magic)?;
        Ok(region)
    }

    /// The byte length of the file behind `fd`.
    fn file_len(fd: std::os::fd::BorrowedFd<'_>) -> Result<usize> {
        let total = memfd::len(fd)?;
        usize::try_from(total).map_err(|_| Error::invalid("region too large"))
    }

    /// Maps the header and the eager payload bytes of `fd` (a received region, memfd or named
    /// file) once it is at least a header long, as its header (read first) says; the caller
    /// checks the header again through the mapping.
    fn map_opened(fd: OwnedFd, magic: u64) -> Result<Region> {
        let total = Region::file_len(fd.as_fd())?;
        if total < HEADER_LEN {
            return Err(Error::invalid("shared region is smaller than its header"));
        }
        let p = peek(fd.as_fd())?;
        let payload_len = total - HEADER_LEN;
        // In `check_header`'s order, so that each refusal says the same whichever finds it.
        if p.magic != magic {
            return Err(Error::invalid("shared region holds a different kind of object"));
        }
        if p.version != VERSION {
            return Err(Error::invalid("shared region was made by another procshare version"));
        }
        if p.payload_len != payload_len as u64 {
            return Err(Error::invalid("shared region size does not match its header"));
        }
        let eager = usize::try_from(p.eager_len).unwrap_or(usize::MAX).min(payload_len);
        Region::map_eager(fd, magic, payload_len, eager)
    }

    /// Maps the header and the first `eager_len` (at most `payload_len`) payload bytes.
    fn map_eager(fd: OwnedFd, magic: u64, payload_len: usize, eager_len: usize) -> Result<Region> {
        let map = Mapping::map(fd.as_fd(), HEADER_LEN + eager_len.min(payload_len))?;
        Ok(Region(Arc::new(Inner { fd, map, magic, payload_len })))
    }

    /// A region in `fd`, a fresh zero-filled file of exactly `HEADER_LEN + payload_len` bytes
    /// made by the caller (a named queue's `/dev/shm` file, which the tracker made and sized):
    /// as [`Region::create`], but not sealed — seals exist only for memfds, so an opener checks
    /// the size instead ([`Region::open_named`]).
    pub(crate) fn create_in(
        fd: OwnedFd,
        magic: u64,
        payload_len: usize,
        eager_len: usize,
        init: impl FnOnce(&Region),
    ) -> Result<Region> {
        let total = payload_len
            .checked_add(HEADER_LEN)
            .ok_or_else(|| Error::invalid("shared region too large"))?;
        if memfd::len(fd.as_fd())? != total as u64 {
            return Err(Error::invalid("shared region file does not have the size asked for"));
        }
        let region = Region::map_eager(fd, magic, payload_len, eager_len)?;
        init(&region);
        let h = region.header();
        h.magic.store(magic, Ordering::Relaxed);
        h.version.store(VERSION, Ordering::Relaxed);
        h.payload_len.store(payload_len as u64, Ordering::Relaxed);
        h.eager_len.store(region.mapped_len() as u64, Ordering::Relaxed);
        // Release: pairs with the Acquire in `open_named`; the payload is initialised before.
        h.state.store(READY, Ordering::Release);
        Ok(region)
    }

    /// Maps a region made by [`Region::create_in`] in a file another process opened by name
    /// (the caller checked that it is a regular file of this user's, reached without following
    /// a symlink). Checks the header as [`Region::open`] does; the file cannot be sealed, so its
    /// size is only checked against the header: a process of this same user that truncates it
    /// later can make our accesses past the new end fault (SIGBUS) — the exposure of every
    /// named POSIX segment, Python's included. A region still being initialised (its creator
    /// is between sizing the file and `READY`, microseconds) is waited for, up to `wait`.
    pub(crate) fn open_named(fd: OwnedFd, magic: u64, wait: Duration) -> Result<Region> {
        let deadline = std::time::Instant::now() + wait;
        // The header is read (pread) until READY before anything is mapped: how much to map is
        // in it. (`peek` of a file shorter than a header fails, as mapping it would.)
        while peek(fd.as_fd()).is_ok_and(|p| p.state != READY) {
            if std::time::Instant::now() >= deadline {
                return Err(Error::invalid(
                    "shared region is not initialised (its creator died, or it is not procshare's)",
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let region = Region::map_opened(fd, magic)?;
        // Acquire: pairs with the Release in `create_in`.
        if region.header().state.load(Ordering::Acquire) != READY {
            return Err(Error::invalid("shared region is not initialised"));
        }
        region.check_header(magic)?;
        Ok(region)
    }

    fn check_header(&self, magic: u64) -> Result<()> {
        let h = self.header();
        if h.magic.load(Ordering::Relaxed) != magic {
            return Err(Error::invalid("shared region holds a different kind of object"));
        }
        if h.version.load(Ordering::Relaxed) != VERSION {
            return Err(Error::invalid("shared region was made by another procshare version"));
        }
        if h.payload_len.load(Ordering::Relaxed) != self.payload_len() as u64 {
            return Err(Error::invalid("shared region size does not match its header"));
        }
        if h.eager_len.load(Ordering::Relaxed) != self.mapped_len() as u64 {
            return Err(Error::invalid("shared region header changed while it was opened"));
        }
        Ok(())
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping is at least HEADER_LEN bytes, page-aligned, and Header is made of
        // atomics, valid for any bit pattern.
        unsafe { &*(self.0.map.as_ptr() as *const Header) }
    }

    /// The payload's first byte (64-byte aligned).
    #[inline]
    pub(crate) fn payload(&self) -> *mut u8 {
        // SAFETY: HEADER_LEN is within the mapping.
        unsafe { self.0.map.as_ptr().add(HEADER_LEN) }
    }

    /// Payload length in bytes (of the file: mapped or not).
    #[inline]
    pub(crate) fn payload_len(&self) -> usize {
        self.0.payload_len
    }

    /// Payload bytes mapped from the start (what [`Region::at`] and the byte copies reach).
    #[inline]
    pub(crate) fn mapped_len(&self) -> usize {
        self.0.map.len() - HEADER_LEN
    }

    /// Fails unless the region holds an object of kind `magic`.
    pub(crate) fn expect(self, magic: u64) -> Result<Region> {
        if self.0.magic == magic {
            Ok(self)
        } else {
            Err(Error::invalid("shared region holds a different kind of object"))
        }
    }

    /// The memfd behind the region.
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.fd.as_fd()
    }

    /// A mapping of payload bytes `offset .. offset + len` (in this process only), for the
    /// parts of the file a kind maps as it uses them; `HEADER_LEN + offset` must be a multiple
    /// of the page size. Running out of address space or mappings is an error naming the limit.
    pub(crate) fn map_range(&self, offset: usize, len: usize) -> Result<Mapping> {
        if offset.checked_add(len).map_or(true, |end| end > self.payload_len()) {
            return Err(Error::invalid("shared region range out of bounds"));
        }
        Ok(Mapping::map_at(self.fd(), (HEADER_LEN + offset) as u64, len)?)
    }

    /// Gives the pages of payload bytes `offset .. offset + len` back (in every process at
    /// once: they read as zeros afterwards, mapped or not).
    pub(crate) fn punch(&self, offset: usize, len: usize) -> Result<()> {
        if offset.checked_add(len).map_or(true, |end| end > self.payload_len()) {
            return Err(Error::invalid("shared region range out of bounds"));
        }
        Ok(memfd::punch_hole(self.fd(), (HEADER_LEN + offset) as u64, len as u64)?)
    }

    /// A reference to the `T` at `offset` in the payload. Panics if it is out of bounds or
    /// misaligned: offsets come from the caller's fixed layout, never from a peer.
    #[inline]
    pub(crate) fn at<T: Shared>(&self, offset: usize) -> &T {
        let end = offset.checked_add(std::mem::size_of::<T>());
        assert!(end.is_some_and(|end| end <= self.mapped_len()), "Region::at out of bounds");
        assert!(
            (self.payload() as usize).wrapping_add(offset) % std::mem::align_of::<T>() == 0,
            "Region::at misaligned"
        );
        // SAFETY: the pointer is inside the mapping for `size_of::<T>()` bytes and aligned for
        // `T` (both asserted above), and the mapping lives as long as `self`, which the
        // reference borrows. `T: Shared` makes any bytes a peer left there a valid `T`, and
        // every byte of it an atomic, so peers writing it while we hold `&T` is no data race.
        unsafe { &*(self.payload().add(offset) as *const T) }
    }

    /// Copies `buf.len()` bytes at `offset` of the payload into `buf` with relaxed atomic loads
    /// (racing writers may leave a mix of old and new words, never a data race). Panics if out
    /// of bounds (the caller's layout).
    #[inline]
    pub(crate) fn load_bytes(&self, offset: usize, buf: &mut [u8]) {
        self.check_span(offset, buf.len());
        // SAFETY: `offset .. offset + buf.len()` is inside the mapping (checked just above),
        // which lives while `self` does.
        unsafe { atomic_copy(self.payload().add(offset), Dir::Load(buf)) }
    }

    /// Copies `buf` to `offset` of the payload with relaxed atomic stores. Panics if out of
    /// bounds (the caller's layout).
    #[inline]
    pub(crate) fn store_bytes(&self, offset: usize, buf: &[u8]) {
        self.check_span(offset, buf.len());
        // SAFETY: as in `load_bytes`.
        unsafe { atomic_copy(self.payload().add(offset), Dir::Store(buf)) }
    }

    #[inline]
    fn check_span(&self, offset: usize, len: usize) {
        let end = offset.checked_add(len);
        assert!(end.is_some_and(|end| end <= self.mapped_len()), "Region span out of bounds");
    }
}

/// Types [`Region::at`] may view shared memory as: what a peer process can write into them at
/// any moment must neither make them invalid nor race with us.
///
/// Implemented here for the atomics and arrays of them, and for structs through
/// [`shared_struct!`], which checks its fields. `pub(crate)` seals it:
/// nothing outside this crate can add an impl.
///
/// # Safety
/// An implementor must be `Sync` and
/// * valid for every bit pattern of its size (no `bool`, enum, reference or niche), and
/// * made only of atomics: every byte that is not padding lies inside an atomic, so all of its
///   mutation through `&Self` is atomic (no plain field, no `Cell`).
pub(crate) unsafe trait Shared: Sync {}

// SAFETY: atomic integers are valid for every bit pattern and are all atomic.
unsafe impl Shared for AtomicU8 {}
// SAFETY: as for `AtomicU8`.
unsafe impl Shared for AtomicU16 {}
// SAFETY: as for `AtomicU8`.
unsafe impl Shared for AtomicU32 {}
// SAFETY: as for `AtomicU8`.
unsafe impl Shared for AtomicU64 {}
// SAFETY: an array has no padding between elements and is valid and atomic where each element
// is.
unsafe impl<T: Shared, const N: usize> Shared for [T; N] {}

/// Declares a `#[repr(C)]` struct and implements [`Shared`] for it, after checking at compile
/// time that every field is `Shared` and that the fields fill the struct (no padding).
macro_rules! shared_struct {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($(#[$fmeta:meta])* $fvis:vis $field:ident : $fty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        $vis struct $name {
            $($(#[$fmeta])* $fvis $field: $fty),*
        }
        const _: () = {
            const fn size_of_shared<T: $crate::shared::region::Shared>() -> usize {
                ::std::mem::size_of::<T>()
            }
            assert!(
                ::std::mem::size_of::<$name>() == 0 $(+ size_of_shared::<$fty>())*,
                "a shared_struct has padding"
            );
        };
        // SAFETY: `#[repr(C)]` with every field `Shared` (the const block above does not compile
        // otherwise) and no padding (the sizes add up): every bit pattern is valid field by
        // field, every byte is inside a field's atomics, and a struct of `Sync` fields is `Sync`.
        #[allow(unsafe_code)]
        unsafe impl $crate::shared::region::Shared for $name {}
    };
}
pub(crate) use shared_struct;

/// Which way `atomic_copy` copies, with the private buffer.
enum Dir<'a> {
    Load(&'a mut [u8]),
    Store(&'a [u8]),
}

/// Copies the buffer's length in bytes between shared memory at `shared` and the buffer with
/// relaxed atomic accesses, in chunks of the widest width that divides both the length and the
/// address.
///
/// # Safety
/// `shared .. shared + len` must be inside a live mapping, `len` being the buffer's length.
#[inline]
unsafe fn atomic_copy(shared: *const u8, dir: Dir<'_>) {
    macro_rules! chunks {
        ($atomic:ty, $int:ty) => {{
            const W: usize = std::mem::size_of::<$int>();
            // SAFETY: word `k` ends at `(k + 1) * W <= len`, so it is in bounds (caller);
            // aligned to W (the dispatch below checked the address and the length); an atomic
            // integer is valid for any bits, and other processes touch these bytes only as
            // atomics.
            let word = |k: usize| unsafe { &*(shared.add(k * W) as *const $atomic) };
            match dir {
                Dir::Load(buf) => {
                    for (k, chunk) in buf.chunks_exact_mut(W).enumerate() {
                        chunk.copy_from_slice(&word(k).load(Ordering::Relaxed).to_ne_bytes());
                    }
                }
                Dir::Store(buf) => {
                    for (k, chunk) in buf.chunks_exact(W).enumerate() {
                        let mut x = [0u8; W];
                        x.copy_from_slice(chunk);
                        word(k).store(<$int>::from_ne_bytes(x), Ordering::Relaxed);
                        crate::crash::crash_point!("region.word_stored");
                    }
                }
            }
        }};
    }
    let n = match &dir {
        Dir::Load(buf) => buf.len(),
        Dir::Store(buf) => buf.len(),
    };
    let addr = shared as usize;
    if n % 8 == 0 && addr % 8 == 0 {
        chunks!(AtomicU64, u64)
    } else if n % 4 == 0 && addr % 4 == 0 {
        chunks!(AtomicU32, u32)
    } else if n % 2 == 0 && addr % 2 == 0 {
        chunks!(AtomicU16, u16)
    } else {
        chunks!(AtomicU8, u8)
    }
}

impl Serialize for Region {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (SendFd(self.fd()), self.0.magic).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (RecvFd(fd), magic) = <(RecvFd, u64)>::deserialize(d)?;
        Region::open(fd, magic).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::BorrowedFd;

    const MAGIC: u64 = u64::from_le_bytes(*b"TESTREGN");

    /// A memfd of `len` bytes starting with a copy of a real region's header (so only the seals
    /// or the size can be wrong), sealed with `seals`.
    fn forged(len: u64, header_of: &Region, seals: libc::c_int) -> OwnedFd {
        let mut header = vec![0u8; HEADER_LEN];
        memfd::read_exact_at(header_of.fd(), &mut header, 0).unwrap();
        let fd = memfd::create("forged").unwrap();
        memfd::set_len(fd.as_fd(), len).unwrap();
        let n = header.len().min(len as usize);
        memfd::write_all_at(fd.as_fd(), &header[..n], 0).unwrap();
        if seals != 0 {
            memfd::add_seals(fd.as_fd(), seals).unwrap();
        }
        fd
    }

    fn dup(fd: BorrowedFd<'_>) -> OwnedFd {
        fd.try_clone_to_owned().unwrap()
    }

    #[test]
    fn a_region_cannot_be_resized_by_anyone_holding_it() {
        let r = Region::create(MAGIC, 100, |_| {}).unwrap();
        let total = (HEADER_LEN + 100) as u64;
        for len in [0, 1, total - 1, total + 1, 1 << 30] {
            let e = memfd::set_len(r.fd(), len).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EPERM), "ftruncate to {len}");
        }
        // Nor can the seals be loosened or a write seal added (which would break `open`).
        let e = memfd::add_seals(r.fd(), libc::F_SEAL_WRITE).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
        assert_eq!(memfd::len(r.fd()).unwrap(), total);
        // Still writable, and a second opener sees the same memory.
        let again = Region::open(dup(r.fd()), MAGIC).unwrap();
        r.at::<AtomicU64>(0).store(7, Ordering::Relaxed);
        assert_eq!(again.at::<AtomicU64>(0).load(Ordering::Relaxed), 7);
    }

    #[test]
    fn at_and_byte_copies_refuse_spans_outside_the_payload() {
        let r = Region::create(MAGIC, 100, |_| {}).unwrap();
        let panics = |f: &dyn Fn(&Region)| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&r))).is_err()
        };
        assert!(!panics(&|r| {
            r.at::<AtomicU64>(88);
        }));
        assert!(
            panics(&|r| {
                r.at::<AtomicU64>(96);
            }),
            "past the end"
        );
        assert!(
            panics(&|r| {
                r.at::<AtomicU64>(usize::MAX - 3);
            }),
            "offset wraps"
        );
        assert!(
            panics(&|r| {
                r.at::<AtomicU64>(4);
            }),
            "misaligned"
        );
        let mut buf = [0u8; 10];
        assert!(panics(&|r| r.load_bytes(95, &mut [0u8; 10])));
        assert!(panics(&|r| r.store_bytes(usize::MAX, &[1])));
        r.store_bytes(3, b"procshare!");
        r.load_bytes(3, &mut buf);
        assert_eq!(&buf, b"procshare!");
    }

    #[test]
    fn forged_handles_are_refused_before_mapping() {
        let real = Region::create(MAGIC, 100, |_| {}).unwrap();
        let total = (HEADER_LEN + 100) as u64;
        // The genuine article opens (the forging itself is sound).
        Region::open(forged(total, &real, SEALS), MAGIC).unwrap();
        let cases: [(&str, OwnedFd); 5] = [
            ("unsealed", forged(total, &real, 0)),
            ("shrinkable", forged(total, &real, libc::F_SEAL_GROW | libc::F_SEAL_SEAL)),
            ("growable", forged(total, &real, libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL)),
            ("shorter than its header", forged(10, &real, SEALS)),
            ("shorter than its header says", forged(total - 8, &real, SEALS)),
        ];
        for (what, fd) in cases {
            assert!(Region::open(fd, MAGIC).is_err(), "{what}");
        }
        // Not a memfd at all.
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        assert!(Region::open(file.into(), MAGIC).is_err());
    }
}
