//! The shared-memory ring behind every process queue: length-prefixed records in a circle of
//! fixed-size segments inside one sparse memfd (a [`Region`]).
//!
//! ```text
//! memfd (sparse: only touched pages cost memory)
//! +--------------+------------+-----------+-----------+----- ... ----------------------+
//! | queue header | links      | segment 0 | segment 1 |  (up to MAX_SEGS: 64 GiB of     |
//! | (< 4 KiB)    | u32 × 2^18 | 256 KiB   | 256 KiB   |   file, mapped only as used)    |
//! +--------------+------------+-----------+-----------+----- ... ----------------------+
//! |<- front: mapped by every ->|<- extent 0: ------->|<- extent 1: 4..8 ->|<- 8..16 ->| ...
//! |   process when it opens   ||   segments 0..4     |  (mapped by a process the first
//! |   the queue (1 MiB + 4 KiB)||   (1 MiB)           |   time it touches one of them)
//!
//! this process's table of extent mappings (in `Ring`, shared by its clones; never moved):
//!   extents[k]: OnceLock<Mapping>    k = 0: segments 0..4;  k >= 1: 2^(k+1) .. 2^(k+2)
//!
//! queue header (one cache line per group)
//!   maxsize, max_message, format           written once at creation (format: 0 native,
//!                                            1 pickle; checked on open)
//!   shutdown                               0, then SHUT_DOWN (| IMMEDIATE): set once, by
//!                                            `shutdown` (read by every put/get: same line)
//!   prod: RawLock, bump, free_top,         producer side (prod lock: sync::raw::RawLock,
//!         cached_head                        16 bytes)
//!   tail: tail, nsegs                      what consumers poll (apart from the lock)
//!   cons: RawLock, head, dead, log{..},    consumer side (cons lock)
//!         cached_tail
//!   put_signal: WaitWord                   "an item was committed" (sync::wait::WaitWord:
//!                                            sequence word + sleepers, 8 bytes)
//!   get_signal: WaitWord                   "room was made"
//!   done, join_signal: WaitWord            JoinableQueue
//!
//! head, tail: AtomicU64 = { seg:20 | off/8:16 | seq:28 }   (seq counts records mod 2^28)
//!
//! links[s]: the segment after s in the circle (on the free stack: the one below, + 1)
//! segment:  +-------------------+--------+------ ...  (records back to back, 8-aligned; the
//!           | record            | record |            last one may run on into the next
//!           +-------------------+--------+------ ...   segment of the circle)
//! record:   +------------+-------------+-----------+---------+-------------------------+
//!           | state: u32 |  pad: u32   | owner:u64 | len:u64 | pad | payload (len bytes, |
//!           | WRITING /  |             | pid|start |         |     | continues into the  |
//!           | COMMITTED  |             |           |         |     | next segment(s))    |
//!           +------------+-------------+-----------+---------+-----+---------------------+
//!           0            4             8           16        24    32
//! ```
//!
//! **Address space on demand.** A process maps a ring's front (header and links) when it
//! opens the queue, and its segments extent by extent: the first time it touches a segment of
//! extent `k` (`Ring::extent`: one Acquire load when mapped already, else a mapping made under
//! a per-process mutex and published in a `OnceLock`), it maps that whole extent. Extents double
//! in size, so a process maps at most twice what the circle ever spanned (at least 1 MiB), in at
//! most 17 mappings, and a queue costs 2 MiB of address space until it grows: one process
//! holds as many queues as it has descriptors, and a queue works under a `ulimit -v` of
//! 1 GiB. A mapping never moves once made (other threads hold pointers into it), and stays
//! until the last handle on the queue in the process is dropped. Running out of address space
//! or of mappings (`RLIMIT_AS`, `vm.max_map_count`) is an `Err` that names them.
//!
//! Segments form a circle through their links. Going round from the head: the segments
//! holding records (head .. tail), then free ones, then back to the head's segment. A producer
//! that needs room moves its tail into the segment after its own unless that is the head's;
//! then it inserts a segment into the circle instead (from the free stack, else a never-used
//! one from `bump`). So an unbounded queue grows without blocking, and a record can be any size:
//! a large one spans many segments, so no separate out-of-band heap is needed, and no new memfd
//! (which could not reach processes that already hold the queue). When a get empties a queue
//! whose circle has grown past `KEEP_SEGS`, that consumer takes the producer lock (`try_lock`)
//! and trims: the free segments beyond `KEEP_SEGS - 1` leave the circle, their pages are
//! punched out of the memfd (`MADV_REMOVE`, in every process at once) and they wait on the free
//! stack. So a drained queue holds at most 4 MiB of memory, whatever it held before (its
//! address space stays mapped in the processes that touched it, and is reused when it grows
//! again: trimmed segments are the first taken again).
//!
//! Each side keeps a copy of the other side's position on its own cache line (`cached_head`,
//! `cached_tail`, written under its own lock) and re-reads the real one only when the copy says
//! "no room" / "nothing there": a stale copy is always behind, hence conservative. Because links
//! live apart from the data, a record whose segments have consecutive indices in one extent
//! (the usual case: the circle grows by consecutive fresh segments) is one contiguous slice,
//! copied out with one `memcpy` whatever its size; records that cross the circle's seam or an
//! extent's end are gathered segment by segment. Either way a consumer decodes a private copy, never the shared bytes: see
//! `finish_get` for why.
//!
//! **Put** (`start_put` / `commit_put`): under the producer lock, reserve the bytes at the tail
//! (inserting segments if needed), write the record header with state WRITING and the owner's
//! (pid, start time), then publish the new tail with **one** Release store and unlock. Copy the
//! payload outside the lock, then store COMMITTED (Release). (`put_small`: items up to 2 KiB
//! are copied and committed before the unlock.) **Get** (`start_get` /
//! `finish_get`): under the consumer lock, read the record at the head; COMMITTED: copy it out
//! and publish the new head with one Release store. WRITING by a live producer: wait. WRITING
//! by a dead producer: skip it.
//!
//! The two locks are the crate's one process lock word, `sync::raw::RawLock` (its owner is a
//! thread id and start time; a waiter takes over from a dead holder after ~10..60 ms and is
//! told `owner_died`), and the three signals its one waiting mechanism, `sync::wait::WaitWord`
//! (used as a sequence word: `bump_wake_all` after publishing, waiters test the ring itself).
//! Record ownership (`RecHdr::owner`) is a separate, per-process concern: see `record_owner`.
//!
//! Crash table (SIGKILL of the process doing the step; "lock" = that side's `RawLock`, see
//! `sync/raw.rs` for the lock word's own crash table):
//! | killed between ...                          | leaves                         | repaired by       | point                 |
//! |---------------------------------------------|--------------------------------|-------------------|-----------------------|
//! | prod lock and segment insert                | nothing                        | lock takeover     | `ring.prod_locked`    |
//! | `bump` store and linking the new segment    | one segment index never used   | nobody (2^18      | `ring.bump_stored`    |
//! |                                             | (file space only)              | indices)          |                       |
//! | linking and publishing the tail             | a free segment in the circle   | nothing to repair | `ring.segment_linked` |
//! | record header writes and tail store         | bytes past the tail: invisible | overwritten       | `ring.header_written` |
//! | tail store and unlock                       | WRITING record, lock held      | takeover; then as | `ring.tail_stored`    |
//! |                                             |                                | next row          |                       |
//! | unlock and COMMITTED (mid-copy)             | WRITING record, dead owner     | a consumer skips  | `ring.put_unlocked`   |
//! |                                             |                                | it (never read)   |                       |
//! | a batch: a record COMMITTED, the next's copy | the batch's first records     | consumers take    | `ring.batch_committed` |
//! |                                             | COMMITTED, the rest WRITING    | those, skip the   |                       |
//! |                                             | with a dead owner              | rest (never read) |                       |
//! | COMMITTED and waking getters                | sleepers not woken             | their 20 ms poll  | `wait.before_wake`    |
//! | cons lock and head store (mid-copy)         | head unchanged: item stays     | lock takeover;    | `ring.item_copied`    |
//! |                                             | queued, next consumer gets it  | nothing lost      |                       |
//! | head store and returning to the caller      | item gone with the consumer    | (documented)      | `ring.head_stored`    |
//! | skip: log valid and log cleared             | head/`dead` maybe half set     | the taker told    | `ring.skip_logged`,   |
//! |                                             |                                | `owner_died`      | `ring.skip_head_stored` |
//! |                                             |                                | replays the log   |                       |
//! | a signal's `sleepers += 1` and `-= 1`       | counter one too high           | nobody: a needless| `wait.asleep`         |
//! |                                             |                                | wake syscall      |                       |
//! | trim: punching and the unlink store         | free segments read as zeros    | nothing to repair | `ring.trim_punched`   |
//! | trim: unlink and the free-stack push        | unlinked segments lost         | nobody (indices   | `ring.trim_unlinked`  |
//! |                                             |                                | only: no memory)  |                       |
//! | free-stack pop and linking the segment      | one segment lost               | same              | `ring.free_popped`    |
//!
//! Mapping an extent is private to the process (no shared word changes), so a process killed
//! while it maps one leaves nothing behind; one that cannot map it (out of address space) gets
//! `Err` from the put or get that needed it, with nothing reserved or taken.
//!
//! (`point`: the `crash_point!` at that step boundary; `tests/crash_points.rs` kills a process
//! there and checks the row, `tests/crash_tables.rs` checks that every row has one. A process
//! killed at a row up to `tail store and unlock`, at a trim row or at the free-stack row holds
//! the producer lock: the next producer takes it over, as in the first row.)
//!
//! Not killed but failing or stopped: a put that returns an error or panics (e.g. in the item's
//! `Serialize`, which runs with the slot reserved for large items) abandons its slots
//! (`Reserved`'s drop, also while unwinding): the record turns ABANDONED and consumers skip it at
//! once. A producer that is *stopped* mid-copy (SIGSTOP, a debugger) or just slow is alive, and
//! consumers wait for its record, and the items behind it wait too (FIFO; `get_timeout` says
//! `Err(Empty)` meanwhile). There is deliberately no time bound: skipping a live writer's record
//! would let the circle hand its bytes out again while that writer still copies into them,
//! tearing later items. When it resumes, its item comes out first; if it dies, the record is
//! skipped as in the table. A record owner whose start time `/proc` could not tell is written
//! with start time 0, "unknown": only its pid being gone makes it dead (as for `RawLock`).
//!
//! Everything read from the segment is checked (segment indices against `bump`, offsets against
//! segment bounds, lengths against `max_message` and against the tail) before use, and
//! arithmetic on words a peer can write (`dead`, `done`, sequence numbers) wraps; garbage gives
//! `Err(Codec)` or a skip, never a panic or an out-of-bounds access. Nor a hang: records or
//! links that loop without reaching the tail are found by the walk that would go round them
//! (`Walk`, a cycle finder over the head's places) and reported as corruption.
//!
//! # Safety
//! All shared memory is reached through one `Region` (the front) and this process's extent
//! mappings of its file, which all stay mapped while this `Ring` (or a clone) lives and never
//! move. Atomics are placed at 8-aligned offsets checked to lie inside a mapping. Payload bytes are
//! copied with `copy_nonoverlapping` between a private buffer and a range of the mapping that the
//! protocol gives to this process alone (reserved and not yet committed, or committed and not yet
//! released); a misbehaving peer writing there concurrently can garble the bytes we copy (they
//! are then decoded and checked like any untrusted input) but cannot make us touch memory
//! outside the mapping.
#![allow(unsafe_code)]

use crate::codec::{Refused, Sink};
use crate::error::{Error, Result};
use crate::shared::region::{Region, Shared, HEADER_LEN};
use crate::sync::raw::RawLock;
use crate::sync::wait::WaitWord;
use crate::sys::deadline::Deadline;
use crate::sys::mmap::Mapping;
use crate::sys::{owner, proc};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The region kind of a process queue.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"PSQUEUE1");
/// Bytes per segment.
pub(crate) const SEG_SIZE: usize = 256 << 10;
/// Where the first record of a segment starts (segments are pure data: their links live in a
/// table of their own, so a record over consecutive segments is contiguous memory).
const SEG_HDR: usize = 0;
/// Segments a ring's file holds: 64 GiB (sparse; mapped in extents as used).
pub(crate) const MAX_SEGS: u32 = 1 << 18;
/// Payload offset of the link table (`next` of each segment, u32).
pub(crate) const LINKS_BASE: usize = 4096 - HEADER_LEN;
/// Payload offset of segment 0: puts every segment on a page boundary of the memfd.
pub(crate) const SEGS_BASE: usize = LINKS_BASE + MAX_SEGS as usize * 4;
/// Record header bytes.
pub(crate) const REC_HDR: usize = 32;
/// A circle larger than this many segments gives consumed segments' memory back.
const KEEP_SEGS: u32 = 16;
const SEQ_BITS: u32 = 28;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
/// The most items a queue holds ("unbounded" means this many, like Python's SEM_VALUE_MAX).
pub(crate) const MAX_ITEMS: usize = 1 << (SEQ_BITS - 1);
/// Default and ceiling of the per-queue item size limit.
pub(crate) const DEFAULT_MAX_MESSAGE: usize = 1 << 30;

const WRITING: u32 = 0x5752_4954; // "WRIT"
const COMMITTED: u32 = 0x434f_4d54; // "COMT"
/// Given up by its (live) producer: consumers skip it like a dead producer's record.
const ABANDONED: u32 = 0x4142_4e44; // "ABND"

/// `Constants::format` values.
pub(crate) const FORMAT_NATIVE: u64 = 0;
pub(crate) const FORMAT_PICKLE: u64 = 1;
/// `Constants::shutdown` bits.
const SHUT_DOWN: u64 = 1;
const IMMEDIATE: u64 = 2;
/// Payload bytes of a queue's region (the header, the links and `MAX_SEGS` segments).
pub(crate) const RING_LEN: usize = SEGS_BASE + MAX_SEGS as usize * SEG_SIZE;
/// Bytes of a ring's front: its header and its link table (mapped whole, in every process).
pub(crate) const FRONT_LEN: usize = SEGS_BASE;
/// Bytes of a ring's segments (mapped extent by extent, as they are used).
pub(crate) const SEGS_LEN: usize = MAX_SEGS as usize * SEG_SIZE;
/// Segments in extent 0 (1 MiB); extent `k >= 1` holds segments `2^(k+1) .. 2^(k+2)`, so a
/// process maps at most twice what the circle ever spanned, in at most [`EXTENTS`] mappings.
const EXTENT0_SEGS: u32 = 4;
/// Extents of a ring: enough for `MAX_SEGS` segments.
const EXTENTS: usize = extent_of(MAX_SEGS - 1) + 1;

/// The extent holding segment `seg`.
#[inline]
const fn extent_of(seg: u32) -> usize {
    if seg < EXTENT0_SEGS {
        0
    } else {
        // seg in 2^(k+1) .. 2^(k+2): its top bit is k + 1.
        (31 - seg.leading_zeros()) as usize - 1
    }
}

/// The first segment of extent `k` and its number of segments.
#[inline]
const fn extent_span(k: usize) -> (u32, u32) {
    if k == 0 {
        (0, EXTENT0_SEGS)
    } else {
        (1 << (k + 1), 1 << (k + 1))
    }
}

const _: () = assert!(EXTENT0_SEGS.is_power_of_two() && extent_of(EXTENT0_SEGS) == 1);
const _: () = assert!(extent_span(EXTENTS - 1).0 + extent_span(EXTENTS - 1).1 == MAX_SEGS);

/// Where a ring lies in its region (payload offsets): its header (64-aligned, [`HEADER_SPAN`]
/// bytes at most) and its link table (4-aligned, `4 * MAX_SEGS` bytes), which the region maps
/// eagerly, and its segments (`HEADER_LEN + segs` a page boundary), which are mapped in
/// extents. A queue's region holds one ring ([`Place::QUEUE`]); a pipe's holds one per
/// direction, both headers on the region's first page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Place {
    pub(crate) header: usize,
    pub(crate) links: usize,
    pub(crate) segs: usize,
}

impl Place {
    /// A queue's ring: the header at the start of the payload, the links from the next page
    /// of the file, the segments right after them.
    pub(crate) const QUEUE: Place = Place { header: 0, links: LINKS_BASE, segs: SEGS_BASE };
}

/// Bytes a ring's header may take (its size rounded up, with room to grow).
pub(crate) const HEADER_SPAN: usize = 1024;
/// Bytes of a ring's link table.
pub(crate) const LINKS_LEN: usize = MAX_SEGS as usize * 4;

/// This process's mappings of a ring's segments: one per extent, made the first time the
/// process touches a segment of it, and kept (never moved, never unmapped) until the last
/// handle on the ring in this process is dropped, so a pointer found through the table stays
/// valid while `&Ring` lives, and readers need no lock (`OnceLock::get` is one Acquire load).
#[derive(Debug, Default)]
struct Extents {
    maps: [OnceLock<Mapping>; EXTENTS],
    /// Serializes the (rare) mapping of a new extent between threads of this process.
    grow: Mutex<()>,
}

/// The record owner value of this process: `{ pid:32 | start time mod 2^32 :32 }` (never 0),
/// cached per process (a forked child has another pid, so it computes its own).
///
/// Records belong to a process, not to a lock: a record is reserved under the producer lock and
/// written after it is released, so its writer is named here, in the record header.
fn record_owner() -> u64 {
    static CACHE: AtomicU64 = AtomicU64::new(0);
    let pid = proc::current_pid();
    let cached = CACHE.load(Ordering::Relaxed);
    if cached >> 32 == pid as u64 {
        return cached;
    }
    let start = proc::start_time(pid);
    let v = owner_value(pid, start);
    if start.is_some() {
        CACHE.store(v, Ordering::Relaxed);
    }
    v
}

/// The owner value for `pid` started at `start`. An unknown start time (`/proc` unreadable)
/// is recorded as 0, which `record_owner_is_dead` never compares (like `RawLock`'s owner
/// record): only the pid being gone then makes the record dead. (Recording a made-up start
/// time instead would make every consumer judge this live producer dead and skip its items.)
fn owner_value(pid: u32, start: Option<u64>) -> u64 {
    ((pid as u64) << 32) | start.map_or(0, |s| s & 0xffff_ffff)
}

/// Whether the process named by a record owner value is known to be gone: the liveness check
/// of the lock word (`sys::owner`; a zombie is gone, and an unreadable `/proc` means "alive",
/// since skipping a live writer's record would lose its item).
fn record_owner_is_dead(owner_value: u64) -> bool {
    let pid = (owner_value >> 32) as u32;
    let recorded = owner_value & 0xffff_ffff;
    match owner::thread_start_time(pid) {
        Ok(None) => true,
        Ok(Some(start)) => recorded != 0 && (start & 0xffff_ffff) != recorded,
        Err(_) => false,
    }
}

#[repr(C, align(64))]
struct Constants {
    maxsize: AtomicU64,
    max_message: AtomicU64,
    /// The item format ([`FORMAT_NATIVE`], [`FORMAT_PICKLE`]); anything else is refused on open.
    format: AtomicU64,
    /// [`SHUT_DOWN`] and maybe [`IMMEDIATE`] once the queue is shut down; never cleared.
    /// Release-set by `shut_down` before it takes and drops the producer lock; read Relaxed
    /// under the producer lock by `reserve_locked` (ordered by the lock) and Acquire by waiters.
    shutdown: AtomicU64,
}

#[repr(C, align(64))]
struct ProdSide {
    lock: RawLock,
    /// Next never-used segment index; Release partner of the Acquire in `seg_next`'s check.
    bump: AtomicU32,
    /// Stack of segments taken out of the circle by `trim` (index + 1; 0 = empty); each one's
    /// link word holds the next one down (index + 1; 0 = bottom).
    free_top: AtomicU32,
    /// The head as last seen by a producer (a copy, so producers do not pull the consumers'
    /// cache line on every put); only ever behind the real head, which is conservative.
    cached_head: AtomicU64,
}

/// What consumers poll of the producers' side, on a cache line of its own: a waiting consumer
/// reads the tail again and again, and those reads must not pull away the line of the lock
/// that the producer takes and releases on every put (measured: one line for both made the
/// lock's CAS and release swap 80 % of a 64-byte `put`, between two threads).
#[repr(C, align(64))]
struct TailSide {
    /// Release-stored by the producer lock holder; Acquire-loaded by consumers.
    pos: AtomicU64,
    /// Segments in the circle (decides when a drained queue gives memory back); written under
    /// the producer lock, read by a consumer that has just drained the queue.
    nsegs: AtomicU32,
}

#[repr(C, align(64))]
struct ConsSide {
    lock: RawLock,
    /// Release-stored by the consumer lock holder; Acquire-loaded by producers.
    head: AtomicU64,
    /// Records skipped because their producer died (mod nothing; JoinableQueue accounting).
    dead: AtomicU64,
    /// Redo log for a skip, which moves `head` and `dead` together.
    log_valid: AtomicU64,
    log_head: AtomicU64,
    log_dead: AtomicU64,
    /// The tail as last seen by a consumer (behind the real one: conservative).
    cached_tail: AtomicU64,
}

#[repr(C, align(64))]
struct Line<T>(T);

#[repr(C, align(64))]
struct JoinSide {
    done: AtomicU64,
    signal: WaitWord,
}

#[repr(C)]
struct Header {
    constants: Constants,
    prod: ProdSide,
    tail: TailSide,
    cons: ConsSide,
    put_signal: Line<WaitWord>,
    get_signal: Line<WaitWord>,
    join: JoinSide,
}

// The header fits its span, which ends before the queue's link table.
const _: () = assert!(std::mem::size_of::<Header>() <= HEADER_SPAN && HEADER_SPAN <= LINKS_BASE);

// SAFETY: this and the six impls below: each struct is `#[repr(C)]` and its fields are all
// `Shared` (atomics, `RawLock`, `WaitWord`, or the structs above), so every bit pattern is
// valid and every non-padding byte is inside an atomic (the `align(64)` padding is never
// read); all fields are `Sync`, so the structs are.
unsafe impl Shared for Constants {}
// SAFETY: see above.
unsafe impl Shared for ProdSide {}
// SAFETY: see above.
unsafe impl Shared for TailSide {}
// SAFETY: see above.
unsafe impl Shared for ConsSide {}
// SAFETY: see above (`T: Shared`).
unsafe impl<T: Shared> Shared for Line<T> {}
// SAFETY: see above.
unsafe impl Shared for JoinSide {}
// SAFETY: see above.
unsafe impl Shared for Header {}

#[repr(C)]
struct RecHdr {
    state: AtomicU32,
    _pad: AtomicU32,
    owner: AtomicU64,
    len: AtomicU64,
    _reserved: AtomicU64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pos {
    seg: u32,
    off: usize,
    seq: u64,
}

impl Pos {
    fn pack(self) -> u64 {
        ((self.seg as u64) << 44) | (((self.off / 8) as u64) << SEQ_BITS) | (self.seq & SEQ_MASK)
    }

    fn unpack(v: u64) -> Pos {
        Pos {
            seg: (v >> 44) as u32,
            off: ((v >> SEQ_BITS) & 0xffff) as usize * 8,
            seq: v & SEQ_MASK,
        }
    }

    fn same_place(self, other: Pos) -> bool {
        self.seg == other.seg && self.off == other.off
    }
}

fn round8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

fn corrupt(what: &str) -> Error {
    Error::Codec(format!("queue shared memory is corrupt ({what})"))
}

/// A reserved, not yet committed record.
#[derive(Debug)]
pub(crate) struct PutSlot {
    seg: u32,
    off: usize,
    len: usize,
}

/// What `try_put` managed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PutStatus {
    /// Everything asked for was reserved.
    Reserved,
    /// `maxsize` items are queued (or all `MAX_SEGS` segments are in use): nothing more fits.
    Full,
    /// The producer lock could not be had before the deadline.
    Busy,
}

/// What `try_get` found once it had taken what it could.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum GetStatus {
    /// Took at least one item.
    Took,
    /// Nothing committed at the head.
    Empty,
    /// The head record is being written by a live producer (pid|start).
    Pending(u64),
    /// The consumer lock could not be had before the deadline.
    Busy,
}

/// A handle on a queue's shared memory; clones share it (and this process's mappings).
#[derive(Clone, Debug)]
pub(crate) struct Ring {
    region: Region,
    place: Place,
    extents: Arc<Extents>,
}

impl Ring {
    /// A new queue holding at most `maxsize` items (0 = [`MAX_ITEMS`]).
    pub(crate) fn create(maxsize: usize) -> Result<Ring> {
        Self::check_maxsize(maxsize)?;
        let region = Region::create_lazy(MAGIC, RING_LEN, FRONT_LEN, |r| {
            Self::init(r, Place::QUEUE, maxsize, FORMAT_NATIVE)
        })?;
        Ring::at(region, Place::QUEUE)
    }

    /// A new queue in `fd`, a fresh named file of `HEADER_LEN + RING_LEN` zero bytes.
    pub(crate) fn create_in(fd: std::os::fd::OwnedFd, maxsize: usize, format: u64) -> Result<Ring> {
        Self::check_maxsize(maxsize)?;
        let region = Region::create_in(fd, MAGIC, RING_LEN, FRONT_LEN, |r| {
            Self::init(r, Place::QUEUE, maxsize, format)
        })?;
        Ring::at(region, Place::QUEUE)
    }

    /// The ring at `place` in `region` (initialised by [`Ring::init`]); checks that the region
    /// maps its header and links and holds all its segments.
    pub(crate) fn at(region: Region, place: Place) -> Result<Ring> {
        let header_end = place.header.checked_add(HEADER_SPAN);
        let links_end = place.links.checked_add(LINKS_LEN);
        let segs_end = place.segs.checked_add(SEGS_LEN);
        if place.header % 64 != 0
            || place.links % 4 != 0
            || (HEADER_LEN + place.segs) % 4096 != 0
            || header_end.map_or(true, |e| e > region.mapped_len())
            || links_end.map_or(true, |e| e > region.mapped_len())
            || segs_end.map_or(true, |e| e > region.payload_len())
        {
            return Err(corrupt("region too small"));
        }
        Ok(Ring { region, place, extents: Arc::default() })
    }

    fn check_maxsize(maxsize: usize) -> Result<()> {
        if maxsize > MAX_ITEMS {
            return Err(Error::invalid(format!(
                "maxsize {maxsize} is larger than the most a queue can hold ({MAX_ITEMS})"
            )));
        }
        Ok(())
    }

    /// Writes the header of a fresh (zeroed) ring at `place`; published by the region's READY
    /// store.
    pub(crate) fn init(region: &Region, place: Place, maxsize: usize, format: u64) {
        let h = region.at::<Header>(place.header);
        h.constants.maxsize.store(maxsize as u64, Ordering::Relaxed);
        h.constants.max_message.store(DEFAULT_MAX_MESSAGE as u64, Ordering::Relaxed);
        h.constants.format.store(format, Ordering::Relaxed);
        // Segment 0 alone in the circle (its `next` is 0: itself, as the memfd starts zeroed).
        let start = Pos { seg: 0, off: SEG_HDR, seq: 0 }.pack();
        h.tail.pos.store(start, Ordering::Relaxed);
        h.prod.cached_head.store(start, Ordering::Relaxed);
        h.cons.head.store(start, Ordering::Relaxed);
        h.cons.cached_tail.store(start, Ordering::Relaxed);
        h.prod.bump.store(1, Ordering::Relaxed);
        h.tail.nsegs.store(1, Ordering::Release);
    }

    /// Wraps a region received from another process, or opened by name.
    pub(crate) fn from_region(region: Region) -> Result<Ring> {
        let ring = Ring::at(region.expect(MAGIC)?, Place::QUEUE)?;
        ring.format()?;
        Ok(ring)
    }

    /// The item format recorded at creation ([`FORMAT_NATIVE`] or [`FORMAT_PICKLE`]).
    pub(crate) fn format(&self) -> Result<u64> {
        match self.header().constants.format.load(Ordering::Relaxed) {
            f @ (FORMAT_NATIVE | FORMAT_PICKLE) => Ok(f),
            f => Err(Error::invalid(format!(
                "the queue's item format {f} is not one this procshare knows (made by a newer \
                 version, or not a procshare queue)"
            ))),
        }
    }

    /// The region, to serialize the handle.
    pub(crate) fn region(&self) -> &Region {
        &self.region
    }

    /// Frees both side locks (fuzzing only, see `RawLock::fuzz_free`).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn fuzz_free_locks(&self) {
        self.header().prod.lock.fuzz_free();
        self.header().cons.lock.fuzz_free();
    }

    fn header(&self) -> &Header {
        // The header is mapped (checked by `Ring::at`).
        self.region.at::<Header>(self.place.header)
    }

    /// The first byte of extent `k` in this process's mapping of it (mapped now if this is the
    /// first time the process touches it) and the extent's length in bytes.
    #[inline]
    fn extent(&self, k: usize) -> Result<(*mut u8, usize)> {
        let cell = self.extents.maps.get(k).ok_or_else(|| corrupt("segment index out of range"))?;
        let m = match cell.get() {
            Some(m) => m,
            None => self.map_extent(k, cell)?,
        };
        Ok((m.as_ptr(), m.len()))
    }

    #[cold]
    fn map_extent<'a>(&self, k: usize, cell: &'a OnceLock<Mapping>) -> Result<&'a Mapping> {
        let _grow = self.extents.grow.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = cell.get() {
            return Ok(m);
        }
        let (first, n) = extent_span(k);
        let len = n as usize * SEG_SIZE;
        // Inside the region (`Ring::at` checked that all MAX_SEGS segments are) and on a page
        // boundary of the file (`HEADER_LEN + segs` is, and so is every segment).
        let m = self.region.map_range(self.place.segs + first as usize * SEG_SIZE, len)?;
        Ok(cell.get_or_init(|| m))
    }

    /// Pointer to byte `off` of segment `seg`, for `n` bytes; checks the range.
    #[inline]
    fn seg_ptr(&self, seg: u32, off: usize, n: usize) -> Result<*mut u8> {
        self.span_ptr(seg, off, n, SEG_SIZE)
    }

    fn next_word(&self, seg: u32) -> Result<&AtomicU32> {
        if seg >= MAX_SEGS {
            return Err(corrupt("segment index out of range"));
        }
        // The link table lies inside the mapped payload, 4-aligned (checked by `Ring::at`).
        Ok(self.region.at::<AtomicU32>(self.place.links + seg as usize * 4))
    }

    /// Pointer to `n` bytes from byte `off` of segment `seg`, running on through the following
    /// segments by index (for records whose segments are consecutive and in one extent) but
    /// not past `off + limit`; checks the range.
    #[inline]
    fn span_ptr(&self, seg: u32, off: usize, n: usize, limit: usize) -> Result<*mut u8> {
        if seg >= MAX_SEGS {
            return Err(corrupt("segment index out of range"));
        }
        if off > SEG_SIZE || n > limit.saturating_sub(off) {
            return Err(corrupt("offset out of range"));
        }
        let k = extent_of(seg);
        let (base, len) = self.extent(k)?;
        let start = (seg - extent_span(k).0) as usize * SEG_SIZE + off;
        if start.checked_add(n).map_or(true, |end| end > len) {
            return Err(corrupt("span out of range"));
        }
        // SAFETY: start + n <= len, the extent mapping's length (checked above), so the range is
        // inside that mapping, which lives as long as `self.extents`.
        Ok(unsafe { base.add(start) })
    }

    /// The segment after `seg` in the circle, checked to be one that was ever handed out.
    fn seg_next(&self, seg: u32) -> Result<u32> {
        // Acquire: pairs with the Release link store in `next_free`.
        let n = self.next_word(seg)?.load(Ordering::Acquire);
        if n >= self.header().prod.bump.load(Ordering::Acquire) {
            return Err(corrupt("segment link out of range"));
        }
        Ok(n)
    }

    fn rec(&self, seg: u32, off: usize) -> Result<&RecHdr> {
        if off % 8 != 0 {
            return Err(corrupt("misaligned record"));
        }
        let p = self.seg_ptr(seg, off, REC_HDR)?;
        // SAFETY: inside the mapping (checked), 8-aligned (segment start is page-aligned, `off`
        // checked); RecHdr is all atomics.
        Ok(unsafe { &*(p as *const RecHdr) })
    }

    fn max_message(&self) -> usize {
        (self.header().constants.max_message.load(Ordering::Relaxed) as usize)
            .min(DEFAULT_MAX_MESSAGE)
    }

    /// The item limit: `maxsize`, or [`MAX_ITEMS`] when unbounded.
    pub(crate) fn maxsize(&self) -> usize {
        match self.header().constants.maxsize.load(Ordering::Relaxed) as usize {
            0 => MAX_ITEMS,
            m => m.min(MAX_ITEMS),
        }
    }

    /// Whether the queue was created with `maxsize` 0.
    pub(crate) fn unbounded(&self) -> bool {
        self.header().constants.maxsize.load(Ordering::Relaxed) == 0
    }

    /// The largest item (encoded bytes) the queue carries.
    pub(crate) fn item_limit(&self) -> usize {
        self.max_message()
    }

    fn positions(&self) -> (Pos, Pos) {
        let h = self.header();
        let head = Pos::unpack(h.cons.head.load(Ordering::Acquire));
        let tail = Pos::unpack(h.tail.pos.load(Ordering::Acquire));
        (head, tail)
    }

    /// Items queued (reserved by a producer and not yet taken or skipped).
    pub(crate) fn len(&self) -> usize {
        let (head, tail) = self.positions();
        (tail.seq.wrapping_sub(head.seq) & SEQ_MASK) as usize
    }

    /// Segments in the circle (tests).
    #[cfg(test)]
    pub(crate) fn segments(&self) -> u32 {
        self.header().tail.nsegs.load(Ordering::Relaxed)
    }

    pub(crate) fn put_signal(&self) -> &WaitWord {
        &self.header().put_signal.0
    }

    pub(crate) fn get_signal(&self) -> &WaitWord {
        &self.header().get_signal.0
    }

    pub(crate) fn join_signal(&self) -> &WaitWord {
        &self.header().join.signal
    }

    // ---- producer side ----------------------------------------------------------------------

    /// The segment the tail moves into after `seg`: the next in the circle unless that is the
    /// head's, else a fresh one inserted after `seg`. `None`: all `MAX_SEGS` segments in use.
    fn next_free(&self, seg: u32, head_seg: &mut u32) -> Result<Option<u32>> {
        let n = self.seg_next(seg)?;
        if n != *head_seg {
            return Ok(Some(n));
        }
        // The cached head may be stale: look at the real one before growing.
        *head_seg = self.refresh_head().seg;
        if n != *head_seg {
            return Ok(Some(n));
        }
        let p = &self.header().prod;
        let fresh = match self.pop_free()? {
            Some(f) => f,
            None => {
                let fresh = p.bump.load(Ordering::Relaxed);
                if fresh >= MAX_SEGS {
                    return Ok(None);
                }
                // Release (partner: Acquire in `seg_next`). Before the link, so that a crash
                // between the two wastes an index instead of handing the same one out twice.
                p.bump.store(fresh + 1, Ordering::Release);
                crate::crash::crash_point!("ring.bump_stored");
                fresh
            }
        };
        self.next_word(fresh)?.store(n, Ordering::Relaxed);
        // Release: the fresh segment's own link is visible to whoever follows this one.
        self.next_word(seg)?.store(fresh, Ordering::Release);
        self.header().tail.nsegs.fetch_add(1, Ordering::Relaxed);
        crate::crash::crash_point!("ring.segment_linked");
        Ok(Some(fresh))
    }

    /// The consumers' head, re-read (producer lock held) and remembered in `cached_head`.
    fn refresh_head(&self) -> Pos {
        let h = self.header();
        // Acquire: pairs with the consumers' Release head store; the space behind it is free.
        let head = h.cons.head.load(Ordering::Acquire);
        h.prod.cached_head.store(head, Ordering::Relaxed);
        Pos::unpack(head)
    }

    /// Takes a segment off the free stack (producer lock held). A crash after the pop and
    /// before the caller links it loses that segment's index (its memory was given
    /// back when it was pushed).
    fn pop_free(&self) -> Result<Option<u32>> {
        let p = &self.header().prod;
        let top = p.free_top.load(Ordering::Relaxed);
        if top == 0 {
            return Ok(None);
        }
        let f = top - 1;
        if f >= p.bump.load(Ordering::Relaxed) {
            return Err(corrupt("free segment index out of range"));
        }
        let below = self.next_word(f)?.load(Ordering::Relaxed);
        if below > p.bump.load(Ordering::Relaxed) {
            return Err(corrupt("free segment link out of range"));
        }
        p.free_top.store(below, Ordering::Relaxed);
        crate::crash::crash_point!("ring.free_popped");
        Ok(Some(f))
    }

    /// Gives a drained queue's memory back: the free segments after the tail beyond the first
    /// `KEEP_SEGS - 1` leave the circle, their pages are punched out of the memfd (through the
    /// file: this process may never have mapped them), and they wait on the
    /// free stack for the next growth. Runs under the producer lock (taken with `try_lock` by a
    /// consumer that just emptied a large queue); consumers never look past the tail, so they
    /// are not disturbed.
    ///
    /// Crash table (the trimming consumer killed holding the producer lock, which the next
    /// producer takes over):
    /// | killed between ...           | leaves                                  | point                |
    /// |------------------------------|-----------------------------------------|----------------------|
    /// | punching and the unlink store | nothing changed but memory returned (free segments read as zeros) | `ring.trim_punched` |
    /// | the unlink and the push      | the unlinked segments' indices lost (not memory) | `ring.trim_unlinked` |
    fn trim_locked(&self) -> Result<()> {
        let h = self.header();
        let tail = Pos::unpack(h.tail.pos.load(Ordering::Relaxed));
        // Acquire: the consumers' Release head store; everything before the head is free.
        let head = Pos::unpack(h.cons.head.load(Ordering::Acquire));
        h.prod.cached_head.store(head.pack(), Ordering::Relaxed);
        // Keep a few free segments after the tail (a circle of KEEP_SEGS when drained), so a
        // queue that keeps filling and draining a little does not fault pages in again and
        // again.
        let mut keep_last = tail.seg;
        for _ in 1..KEEP_SEGS {
            let n = self.seg_next(keep_last)?;
            if n == head.seg || n == tail.seg {
                return Ok(());
            }
            keep_last = n;
        }
        let keep2 = keep_last;
        let first = self.seg_next(keep2)?;
        let mut list = Vec::new();
        let mut s = first;
        while s != head.seg {
            if list.len() as u32 >= MAX_SEGS || s == tail.seg {
                return Err(corrupt("segment circle"));
            }
            list.push(s);
            s = self.seg_next(s)?;
        }
        if list.is_empty() {
            return Ok(());
        }
        for &s in &list {
            // Through the file, not a mapping: this process may never have mapped `s`.
            let _ = self.region.punch(self.place.segs + s as usize * SEG_SIZE, SEG_SIZE);
        }
        crate::crash::crash_point!("ring.trim_punched");
        // Release: partner of the Acquire link loads in `seg_next`. The one store that takes
        // them out of the circle.
        self.next_word(keep2)?.store(head.seg, Ordering::Release);
        h.tail.nsegs.fetch_sub(list.len() as u32, Ordering::Relaxed);
        crate::crash::crash_point!("ring.trim_unlinked");
        let mut below = h.prod.free_top.load(Ordering::Relaxed);
        for &s in list.iter().rev() {
            self.next_word(s)?.store(below, Ordering::Relaxed);
            below = s + 1;
        }
        h.prod.free_top.store(below, Ordering::Relaxed);
        Ok(())
    }

    /// Reserves one record of `len` payload bytes at `tail` (moved past it). `None`: no space.
    fn reserve_one(
        &self,
        tail: &mut Pos,
        head_seg: &mut u32,
        len: usize,
    ) -> Result<Option<PutSlot>> {
        let (mut seg, mut off) = (tail.seg, tail.off);
        if SEG_SIZE - off < REC_HDR {
            let Some(s) = self.next_free(seg, head_seg)? else {
                return Ok(None);
            };
            seg = s;
            off = SEG_HDR;
        }
        let slot = PutSlot { seg, off, len };
        let mut remaining = REC_HDR + round8(len);
        loop {
            let room = SEG_SIZE - off;
            if remaining <= room {
                off += remaining;
                break;
            }
            remaining -= room;
            let Some(s) = self.next_free(seg, head_seg)? else {
                return Ok(None);
            };
            seg = s;
            off = SEG_HDR;
        }
        let rec = self.rec(slot.seg, slot.off)?;
        rec.owner.store(record_owner(), Ordering::Relaxed);
        rec.len.store(len as u64, Ordering::Relaxed);
        rec.state.store(WRITING, Ordering::Relaxed);
        crate::crash::crash_point!("ring.header_written");
        // (these become visible with the Release store of the tail that covers them)
        *tail = Pos { seg, off, seq: (tail.seq + 1) & SEQ_MASK };
        Ok(Some(slot))
    }

    /// `start_put`: reserves records for the payload lengths in `lens` (all or as many as the
    /// bound allows, at least one unless Full/Busy), appending their slots to `slots`.
    /// `lock_deadline` bounds the wait for the producer lock.
    pub(crate) fn start_put(
        &self,
        lens: &[usize],
        slots: &mut Vec<PutSlot>,
        lock_deadline: Deadline,
    ) -> Result<PutStatus> {
        let limit = self.max_message();
        if let Some(&big) = lens.iter().find(|&&l| l > limit) {
            return Err(Error::MessageTooLarge { size: big, limit });
        }
        let p = &self.header().prod;
        if p.lock.lock(lock_deadline).is_none() {
            return Ok(PutStatus::Busy);
        }
        let result = self.reserve_locked(lens, slots);
        p.lock.unlock();
        crate::crash::crash_point!("ring.put_unlocked");
        result
    }

    fn reserve_locked(&self, lens: &[usize], slots: &mut Vec<PutSlot>) -> Result<PutStatus> {
        crate::crash::crash_point!("ring.prod_locked");
        let h = self.header();
        // Relaxed: `shut_down` sets the word under this lock (ordered by it).
        if h.constants.shutdown.load(Ordering::Relaxed) != 0 {
            return Err(Error::ShutDown);
        }
        // We hold the producer lock: nobody else writes the tail.
        let mut tail = Pos::unpack(h.tail.pos.load(Ordering::Relaxed));
        if tail.off > SEG_SIZE {
            return Err(corrupt("tail offset"));
        }
        // The cached head (written under this lock, so ordered by it); refreshed when it says
        // there is no room.
        let mut head = Pos::unpack(h.prod.cached_head.load(Ordering::Relaxed));
        let queued = |head: Pos| (tail.seq.wrapping_sub(head.seq) & SEQ_MASK) as usize;
        let mut room = self.maxsize().saturating_sub(queued(head));
        if room < lens.len() {
            head = self.refresh_head();
            room = self.maxsize().saturating_sub(queued(head));
        }
        let mut head_seg = head.seg;
        let before = slots.len();
        let mut status = PutStatus::Reserved;
        for (i, &len) in lens.iter().enumerate() {
            if i >= room {
                status = PutStatus::Full;
                break;
            }
            match self.reserve_one(&mut tail, &mut head_seg, len) {
                Ok(Some(slot)) => slots.push(slot),
                Ok(None) => {
                    status = PutStatus::Full;
                    break;
                }
                Err(e) if slots.len() == before => return Err(e),
                Err(_) => break,
            }
        }
        if slots.len() > before {
            // Release: publishes the record headers written above; partner of the Acquire tail
            // loads of consumers. The single store that makes the reservation real.
            h.tail.pos.store(tail.pack(), Ordering::Release);
            crate::crash::crash_point!("ring.tail_stored");
            if status == PutStatus::Full {
                // Partial batch: the caller puts the rest later.
                status = PutStatus::Reserved;
            }
        }
        Ok(status)
    }

    /// A whole put of a small item under the producer lock: reserve, copy, commit, unlock and
    /// wake getters. `slots` is scratch space.
    pub(crate) fn put_small(
        &self,
        data: &[u8],
        slots: &mut Vec<PutSlot>,
        lock_deadline: Deadline,
    ) -> Result<PutStatus> {
        let p = &self.header().prod;
        if p.lock.lock(lock_deadline).is_none() {
            return Ok(PutStatus::Busy);
        }
        slots.clear();
        let mut result = self.reserve_locked(&[data.len()], slots);
        if let (Ok(PutStatus::Reserved), Some(slot)) = (&result, slots.pop()) {
            if let Err(e) = self.commit_put(&slot, data) {
                // Left WRITING, our live process would block every consumer for good.
                let _ = self.abandon_slot(&slot);
                result = Err(e);
            }
        }
        p.lock.unlock();
        self.put_signal().bump_wake_all();
        result
    }

    /// `commit_put`: copies `data` (exactly the reserved length) into the slot and makes the
    /// record visible to consumers. Call [`Ring::wake_getters`] after a batch.
    pub(crate) fn commit_put(&self, slot: &PutSlot, data: &[u8]) -> Result<()> {
        if data.len() != slot.len {
            return Err(Error::invalid("commit_put: length differs from the reservation"));
        }
        let (mut seg, mut off) = (slot.seg, slot.off + REC_HDR);
        let mut rest = data;
        while !rest.is_empty() {
            if off == SEG_SIZE {
                seg = self.seg_next(seg)?;
                off = SEG_HDR;
            }
            let n = rest.len().min(SEG_SIZE - off);
            let dst = self.seg_ptr(seg, off, n)?;
            // SAFETY: `dst..dst+n` is inside the mapping (checked by seg_ptr) and inside our
            // reservation, which no other process reads or writes before COMMITTED; `rest` is a
            // private buffer, so the ranges do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(rest.as_ptr(), dst, n) };
            rest = &rest[n..];
            off += n;
        }
        self.commit_slot(slot)
    }

    /// Makes a slot whose payload has been written visible to consumers.
    pub(crate) fn commit_slot(&self, slot: &PutSlot) -> Result<()> {
        // Release: pairs with the consumer's Acquire load of `state`; the payload is complete.
        self.rec(slot.seg, slot.off)?.state.store(COMMITTED, Ordering::Release);
        Ok(())
    }

    /// Gives a reserved slot up (its payload could not be written): consumers skip it.
    pub(crate) fn abandon_slot(&self, slot: &PutSlot) -> Result<()> {
        // Release: pairs with the consumer's Acquire load of `state`.
        self.rec(slot.seg, slot.off)?.state.store(ABANDONED, Ordering::Release);
        Ok(())
    }

    /// A codec sink writing straight into a reserved slot (large items are encoded in place,
    /// without an intermediate buffer); [`SlotWriter::unwritten`] then says how many reserved
    /// bytes the item left unwritten (0 when it filled the slot exactly).
    pub(crate) fn slot_writer(&self, slot: &PutSlot) -> SlotWriter<'_> {
        SlotWriter { ring: self, seg: slot.seg, off: slot.off + REC_HDR, left: slot.len }
    }

    /// Whether a committed record sits at the head (a lock-free hint for waiters: another
    /// consumer may take it first). Garbage answers true, so the caller looks closer.
    pub(crate) fn head_ready(&self) -> bool {
        let (head, tail) = self.positions();
        if head.same_place(tail) {
            return false;
        }
        let (mut seg, mut off) = (head.seg, head.off);
        if off > SEG_SIZE {
            return true;
        }
        if SEG_SIZE - off < REC_HDR {
            match self.seg_next(seg) {
                Ok(s) => seg = s,
                Err(_) => return true,
            }
            off = SEG_HDR;
        }
        match self.rec(seg, off) {
            // Acquire: pairs with the Release COMMITTED store.
            Ok(rec) => rec.state.load(Ordering::Acquire) != WRITING,
            Err(_) => true,
        }
    }

    /// Skips records of dead producers at the head (producers call it when the queue has been
    /// full for a while, so a dead producer's slot does not hold the bound forever).
    pub(crate) fn reap(&self) -> Result<()> {
        if !self.lock_consumer(Deadline::after(Duration::from_millis(10))) {
            return Ok(());
        }
        let mut moved = false;
        let mut walk = Walk::new();
        let result = loop {
            match self.start_get(true, &mut walk) {
                Ok(Head::Record(g)) if g.skip => {
                    moved = true;
                    if let Err(e) = self.finish_get(g, &mut Vec::new(), &mut |_| {}) {
                        break Err(e);
                    }
                }
                Ok(_) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.header().cons.lock.unlock();
        if moved {
            self.get_signal().bump_wake_all();
        }
        result
    }

    /// Wakes consumers sleeping for an item (no system call when none sleeps).
    pub(crate) fn wake_getters(&self) {
        self.put_signal().bump_wake_all();
    }

    // ---- consumer side ----------------------------------------------------------------------

    /// Takes the consumer lock, replaying a dead holder's unfinished skip.
    fn lock_consumer(&self, deadline: Deadline) -> bool {
        let c = &self.header().cons;
        match c.lock.lock(deadline) {
            None => false,
            Some(a) if !a.owner_died => true,
            Some(_) => {
                // The previous holder died holding the lock, maybe half way through a skip.
                if c.log_valid.load(Ordering::Acquire) == 1 {
                    c.head.store(c.log_head.load(Ordering::Relaxed), Ordering::Release);
                    c.dead.store(c.log_dead.load(Ordering::Relaxed), Ordering::Release);
                    c.log_valid.store(0, Ordering::Release);
                }
                true
            }
        }
    }

    /// `start_get` + `finish_get` for up to `max` items (at least 1): hands each payload to
    /// `sink` (a private copy in `scratch`, see `finish_get`) before releasing it. Records of dead producers at the head are
    /// skipped when `reap` is set (else reported as `Pending`, so callers only read `/proc`
    /// after a record has been pending a while). If `sink` panics the consumer lock is released
    /// and the item stays queued.
    pub(crate) fn try_get(
        &self,
        max: usize,
        reap: bool,
        lock_deadline: Deadline,
        scratch: &mut Vec<u8>,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<GetStatus> {
        if !self.lock_consumer(lock_deadline) {
            return Ok(GetStatus::Busy);
        }
        let mut guard = ConsGuard { ring: self, moved: false };
        let mut status = GetStatus::Empty;
        let mut taken = 0;
        let mut moved = false;
        let mut walk = Walk::new();
        let result = loop {
            if taken >= max.max(1) {
                break Ok(());
            }
            match self.start_get(reap, &mut walk) {
                Ok(Head::Empty) => break Ok(()),
                Ok(Head::Pending(owner)) => {
                    if status == GetStatus::Empty {
                        status = GetStatus::Pending(owner);
                    }
                    break Ok(());
                }
                Ok(Head::Record(rec)) => {
                    let skipped = rec.skip;
                    if let Err(e) = self.finish_get(rec, scratch, sink) {
                        break Err(e);
                    }
                    moved = true;
                    guard.moved = true;
                    if !skipped {
                        taken += 1;
                        status = GetStatus::Took;
                    }
                }
                Err(e) => break Err(e),
            }
        };
        drop(guard);
        if moved {
            self.maybe_trim();
        }
        result.map(|()| status)
    }

    /// After a get: if that emptied a queue whose circle has grown, give memory back.
    fn maybe_trim(&self) {
        let h = self.header();
        // Our own cache line first: the producers' is only read when we seem to have drained.
        let head = Pos::unpack(h.cons.head.load(Ordering::Relaxed));
        let cached_tail = Pos::unpack(h.cons.cached_tail.load(Ordering::Relaxed));
        if !head.same_place(cached_tail) || h.tail.nsegs.load(Ordering::Relaxed) <= KEEP_SEGS {
            return;
        }
        let (head, tail) = self.positions();
        if !head.same_place(tail) || h.prod.lock.try_lock(false).is_none() {
            return;
        }
        // Errors mean garbage in the circle: the next put or get reports it.
        let _ = self.trim_locked();
        h.prod.lock.unlock();
    }

    /// Looks at the record at the head (consumer lock held). `walk` is the caller's for all the
    /// records it takes under one lock hold (see [`Walk`]).
    fn start_get(&self, reap: bool, walk: &mut Walk) -> Result<Head> {
        let h = self.header();
        let head = Pos::unpack(h.cons.head.load(Ordering::Relaxed));
        // The cached tail (written under this lock); re-read only when we have caught up.
        let mut tail = Pos::unpack(h.cons.cached_tail.load(Ordering::Relaxed));
        if head.same_place(tail) {
            // Acquire: pairs with the producer's Release tail store; headers before it are
            // written.
            let t = h.tail.pos.load(Ordering::Acquire);
            h.cons.cached_tail.store(t, Ordering::Relaxed);
            tail = Pos::unpack(t);
            if head.same_place(tail) {
                return Ok(Head::Empty);
            }
            walk.restart();
        }
        walk.visit(head)?;
        if head.off > SEG_SIZE {
            return Err(corrupt("head offset"));
        }
        let (mut seg, mut off) = (head.seg, head.off);
        if SEG_SIZE - off < REC_HDR {
            if seg == tail.seg {
                return Err(corrupt("tail inside a segment's unusable end"));
            }
            seg = self.seg_next(seg)?;
            off = SEG_HDR;
        }
        let rec = self.rec(seg, off)?;
        // Acquire: pairs with the Release COMMITTED store in `commit_put`.
        let state = rec.state.load(Ordering::Acquire);
        let owner = rec.owner.load(Ordering::Relaxed);
        let len = rec.len.load(Ordering::Relaxed);
        let skip = match state {
            COMMITTED => false,
            ABANDONED => true,
            WRITING if reap && record_owner_is_dead(owner) => true,
            WRITING => return Ok(Head::Pending(owner)),
            _ => return Err(corrupt("record state")),
        };
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= self.max_message())
            .ok_or_else(|| corrupt("record length"))?;
        // Find the record's end, never walking past the tail.
        let mut remaining = REC_HDR + round8(len);
        let (mut es, mut eo) = (seg, off);
        let mut steps = 0u32;
        let mut contiguous = true;
        // A record's segments are distinct: links that loop inside one record would have it
        // copied round the loop, up to `max_message` bytes of the same few segments.
        let mut segs = Walk::new();
        segs.seen_again((seg, 0));
        loop {
            let room = SEG_SIZE - eo;
            if remaining <= room {
                eo += remaining;
                break;
            }
            if es == tail.seg || steps > MAX_SEGS {
                return Err(corrupt("record runs past the tail"));
            }
            remaining -= room;
            let n = self.seg_next(es)?;
            if segs.seen_again((n, 0)) {
                return Err(corrupt("a record's segments loop"));
            }
            // (and in one extent: extents are mapped apart)
            contiguous &= n == es.wrapping_add(1) && extent_of(n) == extent_of(seg);
            es = n;
            eo = SEG_HDR;
            steps += 1;
        }
        if es == tail.seg && eo > tail.off {
            return Err(corrupt("record runs past the tail"));
        }
        Ok(Head::Record(GetSlot {
            seg,
            off,
            len,
            contiguous,
            end: Pos { seg: es, off: eo, seq: (head.seq + 1) & SEQ_MASK },
            skip,
        }))
    }

    /// Copies the record into `buf` and hands that to `sink` (unless skipped), then publishes
    /// the new head (consumer lock held).
    ///
    /// Always a private copy, never a slice of the mapping: any process holding the queue can
    /// write the record's bytes while we decode them, and a decoder that checks bytes and then
    /// reads them again (postcard's `str`: UTF-8 check, then copy) would build a `String` that
    /// is not UTF-8 from a slice that changed in between: undefined behaviour here, caused by a
    /// peer. From the copy a peer's scribbles can only give wrong-but-valid values or
    /// `Err(Codec)`. Small records are in cache already (no measurable cost at 64 B); for large
    /// ones it is one more in-cache `memcpy` (about 6% of the CPU time of a 1 MiB put + get,
    /// measured with `benches/queue.rs`'s `procshare_put_get_one_thread`). Copying only what
    /// postcard validates and re-reads (strings, chars) and lending byte strings straight from
    /// the mapping would save that, but would not be sound: any `Deserialize` that checks the
    /// bytes it is lent and reads them again (serde's own `String` visitor does, in
    /// `visit_bytes`) would be exposed to the same attack.
    fn finish_get(&self, g: GetSlot, buf: &mut Vec<u8>, sink: &mut dyn FnMut(&[u8])) -> Result<()> {
        if !g.skip {
            buf.clear();
            buf.reserve(g.len);
            let off = g.off + REC_HDR;
            if g.contiguous {
                let src = self.span_ptr(g.seg, off, g.len, usize::MAX)?;
                // SAFETY: `src..src+len` is inside the mapping (checked by span_ptr); `buf` has
                // capacity for `len` bytes, all initialised by the copy before set_len. A peer
                // writing there concurrently garbles bytes of the copy only.
                unsafe {
                    std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), g.len);
                    buf.set_len(g.len);
                }
            } else {
                let (mut seg, mut off) = (g.seg, off);
                while buf.len() < g.len {
                    if off == SEG_SIZE {
                        seg = self.seg_next(seg)?;
                        off = SEG_HDR;
                    }
                    let n = (g.len - buf.len()).min(SEG_SIZE - off);
                    let src = self.seg_ptr(seg, off, n)?;
                    // SAFETY: `src..src+n` is inside the mapping (checked); `buf` has capacity
                    // for `n` more bytes, initialised by the copy before set_len.
                    unsafe {
                        std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr().add(buf.len()), n);
                        buf.set_len(buf.len() + n);
                    }
                    off += n;
                }
            }
            sink(buf);
            if buf.capacity() > 8 << 20 {
                *buf = Vec::new();
            }
        }
        crate::crash::crash_point!("ring.item_copied");
        let h = self.header();
        let c = &h.cons;
        if g.skip {
            // Wrapping: `dead` is a peer-written word (a count mod 2^64; users mask it).
            let dead = c.dead.load(Ordering::Relaxed).wrapping_add(1);
            c.log_head.store(g.end.pack(), Ordering::Relaxed);
            c.log_dead.store(dead, Ordering::Relaxed);
            // Release: the log is complete before it is marked valid (partner: Acquire in
            // `lock_consumer`'s replay).
            c.log_valid.store(1, Ordering::Release);
            crate::crash::crash_point!("ring.skip_logged");
            c.head.store(g.end.pack(), Ordering::Release);
            crate::crash::crash_point!("ring.skip_head_stored");
            c.dead.store(dead, Ordering::Release);
            c.log_valid.store(0, Ordering::Release);
            self.join_signal().bump_wake_all();
        } else {
            // Release: pairs with the producers' Acquire head load; we are done with the bytes.
            c.head.store(g.end.pack(), Ordering::Release);
            crate::crash::crash_point!("ring.head_stored");
        }
        Ok(())
    }

    // ---- JoinableQueue accounting -----------------------------------------------------------

    /// Items put and neither marked done nor skipped (mod 2^28, like `seq`).
    pub(crate) fn unfinished(&self) -> u64 {
        let h = self.header();
        let done = h.join.done.load(Ordering::Acquire);
        let dead = h.cons.dead.load(Ordering::Acquire);
        let tail = Pos::unpack(h.tail.pos.load(Ordering::Acquire));
        tail.seq.wrapping_sub(done.wrapping_add(dead)) & SEQ_MASK
    }

    /// `task_done`: false if nothing is unfinished.
    pub(crate) fn task_done(&self) -> bool {
        let done = &self.header().join.done;
        loop {
            if self.unfinished() == 0 {
                return false;
            }
            let d = done.load(Ordering::Acquire);
            // Wrapping: `done` is a peer-written word (a count mod 2^64; `unfinished` masks it).
            let next = d.wrapping_add(1);
            if done.compare_exchange(d, next, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                if self.unfinished() == 0 {
                    self.join_signal().bump_wake_all();
                }
                return true;
            }
        }
    }

    // ---- shutdown ---------------------------------------------------------------------------

    /// Whether `shutdown` was called on the queue (by any process). One load of the header's
    /// first line, which every put and get reads anyway.
    #[inline]
    pub(crate) fn is_shut_down(&self) -> bool {
        // Acquire: pairs with the Release `fetch_or` in `shut_down`.
        self.header().constants.shutdown.load(Ordering::Acquire) != 0
    }

    /// Whether the queue was shut down with `immediate`.
    #[inline]
    pub(crate) fn is_shut_down_immediately(&self) -> bool {
        self.header().constants.shutdown.load(Ordering::Acquire) & IMMEDIATE != 0
    }

    /// Python 3.13's `Queue.shutdown` for every handle in every process: no put reserves
    /// anything afterwards (`reserve_locked` refuses under the producer lock), and every sleeper
    /// is woken to look again. With `immediate`, what is queued is discarded and counted done
    /// (see [`Ring::discard`]).
    ///
    /// Crash table:
    /// | killed ...                     | leaves                          | repaired by                     | point |
    /// |--------------------------------|---------------------------------|---------------------------------|-------|
    /// | after the flag, before the wakes (holding the producer lock) | the flag set, sleepers asleep, the lock held | sleepers see the flag at their next poll (20..50 ms); the lock: takeover | `ring.shutdown_flagged` |
    /// | mid-discard                    | as a consumer killed mid-skip   | the skip log; what is left is discarded by the next get, join or shutdown | `ring.skip_logged` |
    pub(crate) fn shut_down(&self, immediate: bool) {
        let h = self.header();
        let bits = SHUT_DOWN | if immediate { IMMEDIATE } else { 0 };
        // Set under the producer lock, so that a put either reserved before it (and published
        // its tail before we got the lock: a getter that sees the flag sees that tail too) or
        // reserves after it and sees the flag. A lock we cannot get within the bound (a stopped
        // holder) only weakens that for the holder's one put; the flag is set either way.
        let locked = h.prod.lock.lock(Deadline::after(Duration::from_secs(1))).is_some();
        // Release: partner of the Acquire loads in `is_shut_down`.
        h.constants.shutdown.fetch_or(bits, Ordering::Release);
        crate::crash::crash_point!("ring.shutdown_flagged");
        if locked {
            h.prod.lock.unlock();
        }
        if immediate {
            let _ = self.discard();
        }
        self.put_signal().bump_wake_all();
        self.get_signal().bump_wake_all();
        self.join_signal().bump_wake_all();
    }

    /// Takes every committed record off the head without delivering it, counting each as done
    /// for `join` (as skipped records are: through `dead`); stops at a record a live producer
    /// is still writing (its item is discarded by whoever calls this next: a get, a join).
    /// Returns how many records it took.
    pub(crate) fn discard(&self) -> Result<usize> {
        if !self.lock_consumer(Deadline::after(Duration::from_secs(1))) {
            return Ok(0);
        }
        let mut guard = ConsGuard { ring: self, moved: false };
        let mut n = 0;
        let mut walk = Walk::new();
        let result = loop {
            match self.start_get(true, &mut walk) {
                Ok(Head::Record(mut g)) => {
                    g.skip = true;
                    if let Err(e) = self.finish_get(g, &mut Vec::new(), &mut |_| {}) {
                        break Err(e);
                    }
                    guard.moved = true;
                    n += 1;
                }
                Ok(_) => break Ok(n),
                Err(e) => break Err(e),
            }
        };
        drop(guard);
        if n > 0 {
            self.maybe_trim();
        }
        result
    }

    /// Scribbles over the whole header and segment 0 (tests of garbage handling).
    #[cfg(test)]
    pub(crate) fn scribble(&self, seed: u64) {
        let mut x = seed | 1;
        let (header, links, seg0) = self.raw_parts().unwrap();
        let ranges = [(header, 0..HEADER_SPAN), (links, 0..4096), (seg0, 0..4096)];
        for (base, range) in ranges {
            for off in range.step_by(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // SAFETY: test only; inside the header, the links or segment 0's mapping,
                // 8-aligned.
                unsafe { (base.add(off) as *mut u64).write_volatile(x) };
            }
        }
    }

    /// The first byte of the ring's header ([`HEADER_SPAN`] bytes), of its links
    /// ([`LINKS_LEN`] bytes) and of segment 0 (segments 0..EXTENT0_SEGS follow it), for tests
    /// and fuzz targets that write a ring's bytes as a hostile peer would.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn raw_parts(&self) -> Result<(*mut u8, *mut u8, *mut u8)> {
        // SAFETY: the header and the links lie inside the mapped payload (checked by
        // `Ring::at`).
        let (header, links) = unsafe {
            let p = self.region.payload();
            (p.add(self.place.header), p.add(self.place.links))
        };
        Ok((header, links, self.seg_ptr(0, 0, SEG_SIZE)?))
    }

    // ---- for pipes (pipe/ring.rs): one record at a time, its length looked at first ---------

    /// Takes the head record into `buf` (replacing its contents; the caller keeps the buffer,
    /// so a received message costs one copy) if its payload is at most `limit` bytes; a longer
    /// one stays at the head, untouched, and its length is reported (`recv_bytes_max`).
    /// Records of dead producers at the head are skipped when `reap` is set, as in `try_get`.
    /// The length is checked before anything is allocated, and the allocation is fallible.
    pub(crate) fn take_limited(
        &self,
        limit: usize,
        reap: bool,
        lock_deadline: Deadline,
        buf: &mut Vec<u8>,
    ) -> Result<Take> {
        self.take_head(limit, reap, lock_deadline, &mut |ring, g| ring.copy_record(g, buf))
    }

    /// Takes the head record straight into `dst` when its payload fits there (one copy, for
    /// `recv_bytes_into`), else into `spill` (replaced): `Took(len)`, and `len > dst.len()`
    /// says the payload is in `spill`. Otherwise as [`Ring::take_limited`].
    pub(crate) fn take_into(
        &self,
        limit: usize,
        reap: bool,
        lock_deadline: Deadline,
        dst: &mut [u8],
        spill: &mut Vec<u8>,
    ) -> Result<Take> {
        self.take_head(limit, reap, lock_deadline, &mut |ring, g| {
            if g.len > dst.len() {
                return ring.copy_record(g, spill);
            }
            // SAFETY: `dst` is valid for `g.len <= dst.len()` writes and is private memory, not
            // the mapping.
            unsafe { ring.copy_out(g, dst.as_mut_ptr()) }
        })
    }

    /// The one head-taking step of the pipe's receives: `copy` moves a committed record's
    /// payload (at most `limit` bytes) out, then the head is released.
    fn take_head(
        &self,
        limit: usize,
        reap: bool,
        lock_deadline: Deadline,
        copy: &mut dyn FnMut(&Ring, &GetSlot) -> Result<()>,
    ) -> Result<Take> {
        if !self.lock_consumer(lock_deadline) {
            return Ok(Take::Busy);
        }
        let mut guard = ConsGuard { ring: self, moved: false };
        let mut walk = Walk::new();
        let result = loop {
            match self.start_get(reap, &mut walk) {
                Ok(Head::Empty) => break Ok(Take::Empty),
                Ok(Head::Pending(owner)) => break Ok(Take::Pending(owner)),
                Ok(Head::Record(g)) if g.skip => {
                    if let Err(e) = self.finish_get(g, &mut Vec::new(), &mut |_| {}) {
                        break Err(e);
                    }
                    guard.moved = true;
                }
                Ok(Head::Record(g)) if g.len > limit => break Ok(Take::TooLarge(g.len)),
                Ok(Head::Record(g)) => {
                    if let Err(e) = copy(self, &g) {
                        break Err(e);
                    }
                    // Release: pairs with the producers' Acquire head load; we are done with
                    // the bytes.
                    self.header().cons.head.store(g.end.pack(), Ordering::Release);
                    guard.moved = true;
                    break Ok(Take::Took(g.len));
                }
                Err(e) => break Err(e),
            }
        };
        let moved = guard.moved;
        drop(guard);
        if moved {
            self.maybe_trim();
        }
        result
    }

    /// Copies a record's payload into `buf` (the copy half of `finish_get`, into a buffer the
    /// caller keeps: see there for why it is always a private copy).
    fn copy_record(&self, g: &GetSlot, buf: &mut Vec<u8>) -> Result<()> {
        buf.clear();
        buf.try_reserve_exact(g.len).map_err(|_| {
            Error::Io(std::io::Error::new(
                std::io::ErrorKind::OutOfMemory,
                format!("no memory for a {}-byte message", g.len),
            ))
        })?;
        // SAFETY: `buf` has capacity for `g.len` bytes (reserved above) and is private memory;
        // the copy initialises all of them before set_len.
        unsafe {
            self.copy_out(g, buf.as_mut_ptr())?;
            buf.set_len(g.len);
        }
        Ok(())
    }

    /// Copies a record's `g.len` payload bytes to `dst`, one `memcpy` when its segments are
    /// consecutive, else segment by segment.
    ///
    /// # Safety
    /// `dst` is valid for `g.len` byte writes and does not point into the mapping.
    unsafe fn copy_out(&self, g: &GetSlot, dst: *mut u8) -> Result<()> {
        let (mut seg, mut off) = (g.seg, g.off + REC_HDR);
        let mut done = 0;
        while done < g.len {
            let n = if g.contiguous {
                g.len
            } else {
                if off == SEG_SIZE {
                    seg = self.seg_next(seg)?;
                    off = SEG_HDR;
                }
                (g.len - done).min(SEG_SIZE - off)
            };
            let src = if g.contiguous {
                self.span_ptr(seg, off, n, usize::MAX)?
            } else {
                self.seg_ptr(seg, off, n)?
            };
            // SAFETY: `src..src+n` is inside the mapping (checked by span_ptr/seg_ptr);
            // `dst + done .. + n` is within the `g.len` bytes the caller vouches for
            // (`done + n <= g.len`), private memory, so the ranges do not overlap. A peer
            // writing the source concurrently garbles bytes of the copy only.
            unsafe { std::ptr::copy_nonoverlapping(src, dst.add(done), n) };
            done += n;
            off += n;
        }
        Ok(())
    }

    /// Bytes of shared memory the circle spans now (a pipe's writer waits while it is large and
    /// not drained). A peer-written count: garbage only makes that writer wait for a drain.
    pub(crate) fn circle_bytes(&self) -> usize {
        (self.header().tail.nsegs.load(Ordering::Relaxed) as usize).saturating_mul(SEG_SIZE)
    }
}

/// What [`Ring::take_limited`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Take {
    /// The head record's payload (this many bytes) is in the buffer.
    Took(usize),
    /// The head record's payload is this long, over the limit; it stays queued.
    TooLarge(usize),
    /// Nothing committed at the head.
    Empty,
    /// The head record is being written by a live producer (pid|start).
    Pending(u64),
    /// The consumer lock could not be had before the deadline.
    Busy,
}

/// The slots of one put, committed in order. Whatever is not committed when this drops (an
/// error, or a panic in the item's `Serialize`) is abandoned, so consumers skip it: a record
/// left WRITING by a process that is still alive would block every consumer for good. Drop
/// also wakes getters.
pub(crate) struct Reserved<'a> {
    ring: &'a Ring,
    slots: &'a mut Vec<PutSlot>,
    done: usize,
}

impl<'a> Reserved<'a> {
    /// Takes charge of every slot in `slots` (emptied on drop).
    pub(crate) fn new(ring: &'a Ring, slots: &'a mut Vec<PutSlot>) -> Reserved<'a> {
        Reserved { ring, slots, done: 0 }
    }

    /// The next slot to commit, if any is left.
    pub(crate) fn next(&self) -> Option<&PutSlot> {
        self.slots.get(self.done)
    }

    /// Copies `data` (exactly the next slot's length) into the next slot and commits it.
    pub(crate) fn commit(&mut self, data: &[u8]) -> Result<()> {
        let slot = self.next().ok_or_else(|| Error::invalid("no reserved slot left"))?;
        self.ring.commit_put(slot, data)?;
        self.done += 1;
        if self.done < self.slots.len() {
            crate::crash::crash_point!("ring.batch_committed");
        }
        Ok(())
    }

    /// Commits the next slot, whose payload was written through [`Ring::slot_writer`].
    pub(crate) fn commit_written(&mut self) -> Result<()> {
        let slot = self.next().ok_or_else(|| Error::invalid("no reserved slot left"))?;
        self.ring.commit_slot(slot)?;
        self.done += 1;
        Ok(())
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        for slot in &self.slots[self.done..] {
            // An error here means the record header is garbage already: nothing to repair.
            let _ = self.ring.abandon_slot(slot);
        }
        if !self.slots.is_empty() {
            self.ring.wake_getters();
        }
        self.slots.clear();
    }
}

/// See [`Ring::slot_writer`].
pub(crate) struct SlotWriter<'a> {
    ring: &'a Ring,
    seg: u32,
    off: usize,
    left: usize,
}

impl SlotWriter<'_> {
    /// The reserved bytes not written yet.
    pub(crate) fn unwritten(&self) -> usize {
        self.left
    }
}

impl Sink for SlotWriter<'_> {
    fn write(&mut self, mut data: &[u8]) -> std::result::Result<(), Refused> {
        // More bytes than the first (counting) pass produced: refuse, the caller abandons.
        if data.len() > self.left {
            return Err(Refused);
        }
        while !data.is_empty() {
            if self.off == SEG_SIZE {
                self.seg = self.ring.seg_next(self.seg).map_err(|_| Refused)?;
                self.off = SEG_HDR;
            }
            let n = data.len().min(SEG_SIZE - self.off);
            let dst = self.ring.seg_ptr(self.seg, self.off, n).map_err(|_| Refused)?;
            // SAFETY: `dst..dst+n` is inside the mapping (checked by seg_ptr) and inside our
            // reservation (`left` bounds it), which nobody else touches before COMMITTED;
            // `data` is the serializer's own buffer, so the ranges do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, n) };
            data = &data[n..];
            self.off += n;
            self.left -= n;
        }
        Ok(())
    }
}

/// Releases the consumer lock, also when a `sink` panics; wakes blocked putters if the head
/// moved.
struct ConsGuard<'a> {
    ring: &'a Ring,
    moved: bool,
}

impl Drop for ConsGuard<'_> {
    fn drop(&mut self) {
        let ring = self.ring;
        ring.header().cons.lock.unlock();
        if self.moved {
            ring.get_signal().bump_wake_all();
        }
    }
}

/// The head positions one lock hold walks through, to stop a walk that never reaches the tail.
///
/// Between two reads of the tail, a walk from the head towards it visits each place at most
/// once: records only move it forward, and coming back to a place means going round the circle
/// past the tail. A ring whose records or segment links loop without reaching the tail (bytes
/// a hostile or broken peer left) would walk forever — skipping "dead writers'" records one by
/// one, or discarding — so a place seen twice is corruption. Brent's cycle finding: remember
/// the place at steps 1, 2, 4, 8, ... and compare each new one with it, which finds any loop
/// within a few of its lengths, in constant space.
struct Walk {
    mark: Option<(u32, usize)>,
    steps: u64,
    power: u64,
}

impl Walk {
    fn new() -> Walk {
        Walk { mark: None, steps: 0, power: 1 }
    }

    /// The tail was read again: what lies behind it may be visited anew.
    fn restart(&mut self) {
        *self = Walk::new();
    }

    fn visit(&mut self, head: Pos) -> Result<()> {
        if self.seen_again((head.seg, head.off)) {
            return Err(corrupt("records loop without reaching the tail"));
        }
        Ok(())
    }

    /// One more place of the walk; true if the walk has been there before (a loop).
    fn seen_again(&mut self, place: (u32, usize)) -> bool {
        if self.mark == Some(place) {
            return true;
        }
        self.steps += 1;
        if self.steps == self.power {
            self.mark = Some(place);
            self.power *= 2;
            self.steps = 0;
        }
        false
    }
}

enum Head {
    Empty,
    Pending(u64),
    Record(GetSlot),
}

struct GetSlot {
    /// The record's segments follow each other in memory: one slice holds it.
    contiguous: bool,
    seg: u32,
    off: usize,
    len: usize,
    end: Pos,
    skip: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(r: &Ring, data: &[u8]) {
        let mut slots = Vec::new();
        assert_eq!(
            r.start_put(&[data.len()], &mut slots, Deadline::NEVER).unwrap(),
            PutStatus::Reserved
        );
        r.commit_put(&slots.pop().unwrap(), data).unwrap();
    }

    fn get(r: &Ring) -> Option<Vec<u8>> {
        let mut out = None;
        r.try_get(1, true, Deadline::NEVER, &mut Vec::new(), &mut |b| out = Some(b.to_vec()))
            .unwrap();
        out
    }

    #[test]
    fn extents_tile_the_segments() {
        let mut next = 0;
        for k in 0..EXTENTS {
            let (first, n) = extent_span(k);
            assert_eq!(first, next, "extent {k} starts where {} ends", k.wrapping_sub(1));
            assert!(n.is_power_of_two());
            assert_eq!(extent_of(first), k);
            assert_eq!(extent_of(first + n - 1), k);
            next = first + n;
        }
        assert_eq!(next, MAX_SEGS);
    }

    #[test]
    fn segments_are_mapped_as_the_circle_grows() {
        let r = Ring::create(0).unwrap();
        let mapped = |r: &Ring| r.extents.maps.iter().filter(|m| m.get().is_some()).count();
        put(&r, b"small");
        assert_eq!(get(&r).unwrap(), b"small");
        assert_eq!(mapped(&r), 1, "a small queue maps its first extent only");
        // Records across every extent seam up to segment 40 (seams at 4, 8, 16, 32): gathered
        // where they cross one, one copy where they do not.
        let items: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; SEG_SIZE - 100 + i * 7]).collect();
        for it in &items {
            put(&r, it);
        }
        assert_eq!(mapped(&r), 5);
        // Another handle in this process maps the extents it touches on its own.
        let other = Ring::at(r.region.clone(), Place::QUEUE).unwrap();
        assert_eq!(mapped(&other), 0);
        for it in &items {
            assert_eq!(&get(&other).unwrap(), it);
        }
        assert_eq!(mapped(&other), 5);
        assert!(get(&r).is_none());
    }

    #[test]
    fn pack_round_trip() {
        let p = Pos { seg: MAX_SEGS - 1, off: SEG_SIZE, seq: SEQ_MASK };
        assert_eq!(Pos::unpack(p.pack()), p);
    }

    #[test]
    fn sizes_across_segments_and_growth() {
        let r = Ring::create(0).unwrap();
        let sizes = [0, 1, 7, 8, 100, SEG_SIZE - 1, SEG_SIZE, SEG_SIZE + 1, 3 * SEG_SIZE + 5];
        for round in 0..3 {
            for &n in &sizes {
                put(&r, &vec![(n % 251) as u8 ^ round; n]);
            }
            assert_eq!(r.len(), sizes.len());
            for &n in &sizes {
                assert_eq!(get(&r).unwrap(), vec![(n % 251) as u8 ^ round; n]);
            }
            assert!(get(&r).is_none());
        }
        assert!(r.segments() > 1);
        // Drained: a large circle gives its memory back and shrinks.
        for _ in 0..40 {
            put(&r, &vec![1; SEG_SIZE]);
        }
        assert!(r.segments() > 40);
        while get(&r).is_some() {}
        assert!(r.segments() <= KEEP_SEGS + 1, "{} segments left", r.segments());
        for _ in 0..40 {
            put(&r, &vec![2; SEG_SIZE]);
        }
        while let Some(b) = get(&r) {
            assert_eq!(b, vec![2; SEG_SIZE]);
        }
    }

    #[test]
    fn bounded_counts_items() {
        let r = Ring::create(2).unwrap();
        let mut slots = Vec::new();
        assert_eq!(
            r.start_put(&[1, 1, 1], &mut slots, Deadline::NEVER).unwrap(),
            PutStatus::Reserved
        );
        assert_eq!(slots.len(), 2);
        assert_eq!(r.start_put(&[1], &mut slots, Deadline::NEVER).unwrap(), PutStatus::Full);
    }

    #[test]
    fn dead_writer_is_skipped_and_live_one_waited_for() {
        let r = Ring::create(0).unwrap();
        let mut slots = Vec::new();
        r.start_put(&[4], &mut slots, Deadline::NEVER).unwrap();
        let slot = slots.pop().unwrap();
        put(&r, b"next");
        assert!(matches!(
            r.try_get(1, true, Deadline::NEVER, &mut Vec::new(), &mut |_| {}).unwrap(),
            GetStatus::Pending(_)
        ));
        // Pretend the writer died: a pid that cannot exist.
        r.rec(slot.seg, slot.off).unwrap().owner.store(u32::MAX as u64, Ordering::Relaxed);
        assert_eq!(get(&r).unwrap(), b"next");
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn dead_lock_holder_is_replaced() {
        let r = Ring::create(0).unwrap();
        // A thread that takes both locks and exits holding them (its tid is then gone).
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(r.header().prod.lock.lock(Deadline::NEVER).is_some());
                assert!(r.header().cons.lock.lock(Deadline::NEVER).is_some());
            });
        });
        put(&r, b"x");
        assert_eq!(get(&r).unwrap(), b"x");
        assert!(!r.header().prod.lock.is_locked());
        assert!(!r.header().cons.lock.is_locked());
    }

    #[test]
    fn dead_skipper_log_is_replayed() {
        let r = Ring::create(0).unwrap();
        put(&r, b"a");
        let c = &r.header().cons;
        let (head, dead) = (c.head.load(Ordering::Relaxed), c.dead.load(Ordering::Relaxed));
        // A consumer thread died half way through a skip: log written, head not yet moved.
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(c.lock.lock(Deadline::NEVER).is_some());
                // (Its `start_get` had refreshed the cached tail, as a real skip does.)
                let end = Pos::unpack(r.header().tail.pos.load(Ordering::Relaxed));
                c.cached_tail.store(end.pack(), Ordering::Relaxed);
                c.log_head.store(end.pack(), Ordering::Relaxed);
                c.log_dead.store(dead + 1, Ordering::Relaxed);
                c.log_valid.store(1, Ordering::Release);
            });
        });
        assert!(get(&r).is_none(), "the replayed skip moved the head past the record");
        assert_ne!(c.head.load(Ordering::Relaxed), head);
        assert_eq!(c.dead.load(Ordering::Relaxed), dead + 1);
        assert_eq!(c.log_valid.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for seed in 1..200u64 {
            let r = Ring::create(0).unwrap();
            put(&r, b"hello");
            r.scribble(seed);
            if seed % 2 == 0 {
                // Free locks, so the garbage records and positions get parsed.
                r.header().prod.lock.unlock();
                r.header().cons.lock.unlock();
            }
            let _ = r.try_get(4, true, Deadline::now(), &mut Vec::new(), &mut |_| {});
            let mut slots = Vec::new();
            let _ = r.start_put(&[10], &mut slots, Deadline::now());
            let _ = r.len();
        }
    }

    /// Every operation a process runs on a queue, for tests that feed them hostile words: each
    /// must return (Ok or Err), never panic.
    fn exercise(r: &Ring) -> Vec<String> {
        let mut out = Vec::new();
        let soon = Deadline::after(Duration::from_millis(50));
        let got = r.try_get(4, true, soon, &mut Vec::new(), &mut |b| {
            out.push(format!("item {b:?}"));
        });
        out.push(format!("try_get {got:?}"));
        let mut slots = Vec::new();
        let st = r.start_put(&[10, 20], &mut slots, soon);
        out.push(format!("start_put {st:?}"));
        drop(Reserved::new(r, &mut slots));
        out.push(format!("put_small {:?}", r.put_small(b"abc", &mut slots, soon)));
        out.push(format!("reap {:?}", r.reap()));
        out.push(format!("len {} unfinished {}", r.len(), r.unfinished()));
        out.push(format!("task_done {} head_ready {}", r.task_done(), r.head_ready()));
        r.maybe_trim();
        out
    }

    /// A ring whose first segment links back to itself, with the tail beyond it: every walk
    /// from the head goes round that segment forever unless the loop is noticed (the shape of
    /// `fuzz/regressions/pipe_ring-timeout-take-head-loop`). `abandon` marks its records as
    /// given up, so the walk is a run of skips.
    fn looping_ring(abandon: bool) -> Ring {
        let r = Ring::create(0).unwrap();
        while r.positions().1.seg == 0 {
            put(&r, &[7; 1000]);
        }
        let mut off = SEG_HDR;
        while SEG_SIZE - off >= REC_HDR {
            let rec = r.rec(0, off).unwrap();
            if abandon {
                rec.state.store(ABANDONED, Ordering::Relaxed);
            }
            off += REC_HDR + round8(rec.len.load(Ordering::Relaxed) as usize);
        }
        r.next_word(0).unwrap().store(0, Ordering::Relaxed);
        r
    }

    #[test]
    fn a_walk_that_never_reaches_the_tail_is_corruption_not_a_hang() {
        let looped = |e: Error| matches!(e, Error::Codec(m) if m.contains("loop"));
        let r = looping_ring(true);
        let got = r.try_get(1, true, Deadline::NEVER, &mut Vec::new(), &mut |_| {});
        assert!(looped(got.unwrap_err()));
        assert!(looped(r.reap().unwrap_err()));
        let got = r.take_limited(usize::MAX, true, Deadline::NEVER, &mut Vec::new());
        assert!(looped(got.unwrap_err()));
        let r = looping_ring(false);
        assert!(looped(r.discard().unwrap_err()));
        // Committed records in the loop: one get of many items delivers a few rounds of them at
        // most (each call walks anew; a peer that can write the ring can also put forever).
        let mut n = 0;
        let got = r.try_get(usize::MAX, true, Deadline::NEVER, &mut Vec::new(), &mut |_| n += 1);
        assert!(looped(got.unwrap_err()));
        assert!(n < 4 * SEG_SIZE / 1000, "{n} items out of one segment");
    }

    /// `fuzz/regressions/ring-timeout-record-round-a-segment-loop`: a long record whose
    /// segment links loop was copied round the loop up to `max_message` (1 GiB) bytes, on each
    /// of the get's calls.
    #[test]
    fn a_record_whose_segments_loop_is_corruption() {
        let r = Ring::create(0).unwrap();
        put(&r, &vec![3; 3 * SEG_SIZE + 5]);
        put(&r, b"after");
        r.next_word(0).unwrap().store(0, Ordering::Relaxed);
        let got = r.try_get(1, true, Deadline::NEVER, &mut Vec::new(), &mut |_| {});
        assert!(matches!(got, Err(Error::Codec(m)) if m.contains("segments loop")));
        let got = r.take_limited(usize::MAX, true, Deadline::NEVER, &mut Vec::new());
        assert!(matches!(got, Err(Error::Codec(m)) if m.contains("segments loop")));
    }

    #[test]
    fn hostile_words_give_errors_or_skips_never_a_panic() {
        type Poke = fn(&Ring, &PutSlot);
        let cases: &[(&str, Poke)] = &[
            ("dead at u64::MAX, then a skip", |r, s| {
                r.header().cons.dead.store(u64::MAX, Ordering::Relaxed);
                r.rec(s.seg, s.off).unwrap().owner.store(u32::MAX as u64, Ordering::Relaxed);
                r.rec(s.seg, s.off).unwrap().state.store(WRITING, Ordering::Relaxed);
            }),
            ("done at u64::MAX", |r, _| r.header().join.done.store(u64::MAX, Ordering::Relaxed)),
            ("done at u64::MAX - 1", |r, _| {
                r.header().join.done.store(u64::MAX - 1, Ordering::Relaxed)
            }),
            ("record length u64::MAX", |r, s| {
                r.rec(s.seg, s.off).unwrap().len.store(u64::MAX, Ordering::Relaxed)
            }),
            ("record length past the address space", |r, s| {
                let len = (MAX_SEGS as u64) * SEG_SIZE as u64;
                r.rec(s.seg, s.off).unwrap().len.store(len, Ordering::Relaxed)
            }),
            ("record length past the tail", |r, s| {
                r.rec(s.seg, s.off).unwrap().len.store(3 * SEG_SIZE as u64, Ordering::Relaxed)
            }),
            ("record length at the limit", |r, s| {
                let len = DEFAULT_MAX_MESSAGE as u64;
                r.rec(s.seg, s.off).unwrap().len.store(len, Ordering::Relaxed)
            }),
            ("record state garbage", |r, s| {
                r.rec(s.seg, s.off).unwrap().state.store(u32::MAX, Ordering::Relaxed)
            }),
            ("head u64::MAX", |r, _| r.header().cons.head.store(u64::MAX, Ordering::Relaxed)),
            ("tail u64::MAX", |r, _| r.header().tail.pos.store(u64::MAX, Ordering::Relaxed)),
            ("both positions u64::MAX", |r, _| {
                r.header().cons.head.store(u64::MAX, Ordering::Relaxed);
                r.header().tail.pos.store(u64::MAX, Ordering::Relaxed);
                r.header().cons.cached_tail.store(u64::MAX, Ordering::Relaxed);
                r.header().prod.cached_head.store(u64::MAX, Ordering::Relaxed);
            }),
            ("head in the unusable end of a segment", |r, _| {
                let p = Pos { seg: 0, off: SEG_SIZE - 8, seq: 0 };
                r.header().cons.head.store(p.pack(), Ordering::Relaxed)
            }),
            ("tail in a never-used segment", |r, _| {
                let p = Pos { seg: MAX_SEGS - 1, off: 64, seq: 5 };
                r.header().tail.pos.store(p.pack(), Ordering::Relaxed)
            }),
            ("bump u32::MAX and a wild link", |r, _| {
                r.header().prod.bump.store(u32::MAX, Ordering::Relaxed);
                r.next_word(0).unwrap().store(u32::MAX - 1, Ordering::Relaxed);
            }),
            ("link to a never-used segment", |r, _| {
                r.next_word(0).unwrap().store(7, Ordering::Relaxed)
            }),
            ("free stack top u32::MAX", |r, _| {
                r.header().prod.free_top.store(u32::MAX, Ordering::Relaxed);
                r.header().prod.bump.store(u32::MAX, Ordering::Relaxed);
            }),
            ("segment count wrapped", |r, _| {
                r.header().tail.nsegs.store(u32::MAX, Ordering::Relaxed)
            }),
            ("limits u64::MAX", |r, _| {
                r.header().constants.maxsize.store(u64::MAX, Ordering::Relaxed);
                r.header().constants.max_message.store(u64::MAX, Ordering::Relaxed);
            }),
            ("redo log to nowhere, holder dead", |r, _| {
                let c = &r.header().cons;
                std::thread::scope(|s| {
                    s.spawn(|| assert!(c.lock.lock(Deadline::NEVER).is_some()));
                });
                c.log_head.store(u64::MAX, Ordering::Relaxed);
                c.log_dead.store(u64::MAX, Ordering::Relaxed);
                c.log_valid.store(1, Ordering::Relaxed);
            }),
        ];
        for (what, poke) in cases {
            let r = Ring::create(0).unwrap();
            let mut slots = Vec::new();
            r.start_put(&[5], &mut slots, Deadline::NEVER).unwrap();
            let slot = slots.pop().unwrap();
            r.commit_put(&slot, b"first").unwrap();
            put(&r, b"second");
            poke(&r, &slot);
            let run = std::panic::catch_unwind(|| (exercise(&r), exercise(&r)));
            assert!(run.is_ok(), "{what}: panicked");
        }
    }

    #[test]
    fn a_skip_past_a_wrapped_dead_count_delivers_the_next_item() {
        let r = Ring::create(0).unwrap();
        let mut slots = Vec::new();
        r.start_put(&[4], &mut slots, Deadline::NEVER).unwrap();
        let slot = slots.pop().unwrap();
        put(&r, b"next");
        r.header().cons.dead.store(u64::MAX, Ordering::Relaxed);
        r.rec(slot.seg, slot.off).unwrap().owner.store(u32::MAX as u64, Ordering::Relaxed);
        assert_eq!(get(&r).unwrap(), b"next");
        assert_eq!(r.header().cons.dead.load(Ordering::Relaxed), 0);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn uncommitted_slots_are_abandoned_on_error_and_unwind() {
        let r = Ring::create(0).unwrap();
        let mut slots = Vec::new();
        r.start_put(&[1, 1, 1], &mut slots, Deadline::NEVER).unwrap();
        {
            let mut batch = Reserved::new(&r, &mut slots);
            batch.commit(b"a").unwrap();
            // Wrong length: an error, the slot stays uncommitted.
            assert!(batch.commit(b"too long").is_err());
        }
        assert!(slots.is_empty());
        put(&r, b"b");
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut slots = Vec::new();
            r.start_put(&[1], &mut slots, Deadline::NEVER).unwrap();
            let _batch = Reserved::new(&r, &mut slots);
            panic!("a Serialize impl panicked");
        }));
        assert!(caught.is_err());
        put(&r, b"c");
        // A consumer that does not even look at /proc (reap = false) gets past all three.
        let mut got = Vec::new();
        r.try_get(10, false, Deadline::NEVER, &mut Vec::new(), &mut |b| got.push(b.to_vec()))
            .unwrap();
        assert_eq!(got, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn an_unknown_start_time_never_makes_a_live_producer_dead() {
        let pid = proc::current_pid();
        let start = proc::start_time(pid).unwrap();
        assert!(!record_owner_is_dead(owner_value(pid, None)), "/proc unreadable at put time");
        assert!(!record_owner_is_dead(owner_value(pid, Some(start))));
        assert!(!record_owner_is_dead(record_owner()));
        assert!(record_owner_is_dead(owner_value(pid, Some(start + 1))), "pid reused");
        assert!(record_owner_is_dead(owner_value(u32::MAX, None)), "pid gone");
    }
}
