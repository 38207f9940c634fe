//! The pipe transport: each direction's messages go through a shared-memory ring
//! (`queue/ring.rs`, the Queue's crash-safe MPMC ring of whole records); the kernel keeps only
//! what it must do.
//!
//! ```text
//!   end A handles (any threads, any processes)          end B handles
//!   +-----------------+      ring 0: A->B          +-----------------+
//!   | send ---------->|==== [rec][rec][rec] ======>|-----> recv      |
//!   |                 |      ring 1: B->A          |                 |
//!   | recv <----------|<=== [rec][rec] ============|<----- send      |
//!   +-----------------+                            +-----------------+
//!        | sock A  <---- SEQPACKET socketpair ---->  sock B |   liveness: HUP once every
//!        |                                                  |   handle of the other end is
//!        |          doorbell: a writer's byte on its        |   closed (SIGKILL included)
//!        |          own socket, read from the peer's        |
//!
//!   one region (memfd), mapped by every handle of both ends:
//!   +---------+---------+---------+---------+---------+-----------------+-----------------+
//!   | control | ring 0  | ring 1  | ring 0  | ring 1  | ring 0 segments | ring 1 segments |
//!   | 64 B    | header  | header  | links   | links   | 64 GiB, sparse, | 64 GiB, sparse, |
//!   |         | 1 KiB   | 1 KiB   | 1 MiB   | 1 MiB   | mapped in extents as they are   |
//!   |<- first page of the file ->|         |         | used                            |
//!   |<------ mapped eagerly: 2 MiB + 4 KiB ------->|                                   |
//!   +---------+---------+---------+---------+---------+-----------------+-----------------+
//! ```
//!
//! A pipe end holds **two descriptors**: its liveness socket and the region's memfd (both
//! ends in one process share the memfd: three for a whole pipe, where it was nine).
//!
//! * **Messages** are ring records: whole, to exactly one reader however many threads and
//!   processes share an end, and a killed writer leaves a record the readers skip (never half a
//!   message). A simplex pipe has one ring, a duplex pipe two.
//! * **Blocking `recv`** is the Queue's `get`: take, else spin ~50 µs, else sleep on the ring's
//!   `put_signal` futex in 20 ms slices. After the spin and after each slice it asks the
//!   liveness socket whether the peer is gone (`POLLHUP`); if so it takes once more, skipping
//!   dead writers' records, and only an empty ring then is `Err(Eof)` (no lost last message).
//!   A handle that is dropped wakes the futex sleepers, so a peer's close is seen at once; a
//!   SIGKILL is seen within a slice.
//! * **`poll`/`wait`** must sleep in poll(2) next to other descriptors. A poller counts itself
//!   in `pollers[dir]` (SeqCst), looks at the ring, and sleeps on its end's liveness socket
//!   (`POLLIN`: the doorbell; `POLLHUP`: the peer is gone). A writer, after committing, fences
//!   and, if `pollers[dir] != 0`, sends one byte on *its own* socket, which arrives in the
//!   peer's, the readers' (non-blocking; a full socket is rung already). A woken poller that
//!   finds a message at the ring's head reports ready and leaves the bytes where they are, so
//!   every other poller of the end wakes too (poll(2) is level-triggered); one that finds the
//!   ring empty drains the bytes and looks at the ring once more (a byte it drained was sent
//!   after its message was committed), so it never sleeps past a message. (Nor can it ring
//!   again for the others, as the separate doorbell socketpair that every handle held could:
//!   a poller of the same end still asleep when another drained the byte that announced a
//!   message, which that other one reports, looks again at the end of its 20 ms slice.) With no
//!   poller, a send is ring work only: no system call.
//! * **Writers** learn the peer is gone from the same socket, looked at when a handle of the
//!   peer end was dropped (`closes[end]` changed) and otherwise at most once per
//!   [`LIVENESS_EVERY`]: a peer killed by SIGKILL can still be sent to for up to that long (its
//!   messages are lost with it, as in a dead reader's socket buffer); then `Err(Io(BrokenPipe))`.
//!   No SIGPIPE: the socket is only ever written with `MSG_NOSIGNAL`.
//! * **Memory** is bounded like a pipe buffer: a writer that finds the ring holding messages
//!   and spanning more than [`BUDGET`] waits until the readers drained it (a writer of small
//!   messages looks every 0.5 ms, so readers pay no wake-up per message; one of large messages
//!   sleeps on the ring's `get_signal` futex, in slices that look for a gone peer); one message
//!   of any size up to
//!   `max_message_size` (at most 1 GiB, the ring's record limit) always fits in an empty ring.
//! * **`recv_bytes_max`** looks at the head record's length under the consumer lock and leaves
//!   a longer message in the ring, readable by every handle in every process.
//! * **Descriptors**: no message carries any today (handles cross processes as `Process`
//!   arguments). What a peer writes on the liveness socket is read as doorbell bytes: it costs
//!   pollers a wake-up and a drain, nothing else.
//!
//! Crash table (SIGKILL of the process doing the step; the ring's own steps, with their points
//! `ring.*`, are in `queue/ring.rs`):
//! | killed between ...                 | leaves                          | repaired by                 | point               |
//! |------------------------------------|---------------------------------|-----------------------------|---------------------|
//! | send: liveness look and the put    | nothing                         | —                           | `pipe.send_checked` |
//! | commit and ringing the doorbell    | a message pollers were not told | their 20 ms slice           | `pipe.send_committed` |
//! | poll: draining the doorbell and the look that follows | bytes drained, nothing else (a poller dies with its own wait) | — | `pipe.bell_drained` |
//! | recv: taking the record and return | message gone with the reader    | nobody (documented)         | `pipe.recv_taken`   |
//! | poll: `pollers += 1` and `-= 1`    | counter one too high            | nobody: writers ring a needless, non-blocking doorbell | `pipe.poll_armed` |
//! | drop: closing the socket and `closes += 1` | writers not told to look | their [`LIVENESS_EVERY`] look | `pipe.drop_closed` |
//! | anywhere, holding the last handle of an end | the socket closed by the kernel: peer's `recv` drains then `Err(Eof)`, its `send` gets `Err(Io(BrokenPipe))` | the kernel | — |
//!
//! Hostile peers: the region (rings and control words) is shared memory any holder can write.
//! The ring treats its header and records as hostile (checked indices, private-copy decode,
//! wrapping arithmetic); garbage gives `Err(Codec)`, never a panic or an out-of-bounds access.
//! The control words only decide whether to make a system call (a doorbell, a liveness look):
//! garbage there costs needless calls or a poller's 20 ms slice, nothing else.
use crate::crash::crash_point;
use crate::error::{Error, Result};
use crate::queue::ring::{
    Place, PutSlot, PutStatus, Reserved, Ring, Take, FORMAT_NATIVE, HEADER_SPAN, LINKS_LEN,
    SEGS_LEN,
};
use crate::shared::handles::{RecvFd, SendFd};
use crate::shared::region::{shared_struct, Region, HEADER_LEN};
use crate::sync::backoff::Backoff;
use crate::sys::deadline::{self, Deadline};
use crate::sys::{poll, socket};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The region kind of a pipe (control words and both rings; `PSPIPE01` was the control words
/// alone, with a region per ring).
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"PSPIPE02");
/// Where the two rings lie in a pipe's region (see the module doc's picture): the control words
/// and both headers on the file's first page (a new pipe touches one page), the link tables
/// from the next, the segments on a page boundary after them.
const PLACES: [Place; 2] = {
    let links0 = 4096 - HEADER_LEN;
    let segs0 = links0 + 2 * LINKS_LEN;
    [
        Place { header: 64, links: links0, segs: segs0 },
        Place { header: 64 + HEADER_SPAN, links: links0 + LINKS_LEN, segs: segs0 + SEGS_LEN },
    ]
};
const _: () = assert!(64 + 2 * HEADER_SPAN <= PLACES[0].links);
const _: () = assert!((HEADER_LEN + PLACES[0].segs) % 4096 == 0);
/// Payload bytes of a pipe's region, and how many every process maps up front.
const PIPE_LEN: usize = PLACES[1].segs + SEGS_LEN;
const PIPE_EAGER: usize = PLACES[0].segs;
/// How long a reader spins (looking cheaply) before it sleeps on the futex.
const SPIN: Duration = Duration::from_micros(50);
/// Sleepers wake this often to look for a dead peer or a dead writer's record.
const SLICE: Duration = Duration::from_millis(20);
/// A writer looks at the liveness socket at least this often (see the module doc).
pub(crate) const LIVENESS_EVERY: Duration = Duration::from_millis(1);
/// A writer waits while the ring holds messages and spans more than this: the ring's own
/// `KEEP_SEGS` worth (4 MiB), which a drained ring keeps mapped, so a writer that is ahead of
/// its readers reuses pages in cache instead of faulting in fresh ones (a larger budget let the
/// circle grow, be trimmed at each drain and be faulted in again).
pub(crate) const BUDGET: usize = 4 << 20;
/// How often a writer of small messages waiting for the readers to drain looks (rather than
/// sleeping on the futex, which would make every reader's get a wake-up system call).
const DRAIN_LOOK: Duration = Duration::from_micros(500);
/// Messages at least this large wait for a drain on the futex: a wake per get is cheap next to
/// copying them, and the writer resumes as soon as the ring is empty.
const DRAIN_FUTEX: usize = 64 << 10;
/// The liveness socket's word that every handle of the peer end is closed. (Nobody shuts a
/// pipe's socket down, so `POLLRDHUP` means the same as `POLLHUP` here.)
const GONE: libc::c_short = poll::POLLHUP | poll::POLLRDHUP | poll::POLLERR;
/// Messages up to this many bytes are copied under the producer lock (one fence per send).
const SMALL: usize = 2048;

shared_struct! {
    /// A pipe's control words (at the start of the pipe's region).
    struct Control {
        /// Per direction: threads in `poll`/`wait` on its reading side (counted before their
        /// last look at the ring; writers ring the doorbell while this is not 0).
        pollers: [AtomicU32; 2],
        /// Per end: handles of it dropped so far (tells writers to look at the socket now).
        closes: [AtomicU32; 2],
    }
}

#[derive(Debug, Clone)]
struct Dir {
    ring: Ring,
    /// Index into `Control::pollers` and [`PLACES`].
    idx: usize,
}

/// One handle on one end of a ring pipe.
#[derive(Debug)]
pub(crate) struct RingEnd {
    /// Which end (index into `Control::closes`); the peer is `1 - end`.
    end: usize,
    /// The liveness socket, also the doorbell (see the module doc); `None` only while dropping.
    sock: Option<Arc<OwnedFd>>,
    /// The pipe's region: control words and both rings.
    ctl: Region,
    rx: Option<Dir>,
    tx: Option<Dir>,
    /// `closes[peer]` when this handle last looked at the socket.
    seen_closes: AtomicU32,
    /// `deadline::now()` in ns after which this handle looks at the socket again before a send.
    next_look_ns: AtomicU64,
}

thread_local! {
    /// Reservation scratch for sends (no user code runs during a send: never re-entered).
    static SLOTS: RefCell<Vec<PutSlot>> = const { RefCell::new(Vec::new()) };
}

fn broken_pipe() -> Error {
    Error::Io(io::Error::new(io::ErrorKind::BrokenPipe, "the other end of the pipe is closed"))
}

/// A new pipe region: control words zero, both rings empty and unbounded.
fn region() -> Result<Region> {
    Region::create_lazy(MAGIC, PIPE_LEN, PIPE_EAGER, |r| {
        for place in PLACES {
            Ring::init(r, place, 0, FORMAT_NATIVE);
        }
    })
}

/// The ring of direction `idx` in a pipe's region (checked to be one).
pub(crate) fn ring_of(region: &Region, idx: usize) -> Result<Ring> {
    let place = *PLACES.get(idx).ok_or_else(|| Error::invalid("pipe direction out of range"))?;
    Ring::at(region.clone().expect(MAGIC)?, place)
}

fn dir(region: &Region, idx: usize) -> Result<Dir> {
    Ok(Dir { ring: ring_of(region, idx)?, idx })
}

/// A duplex ring pipe: end 0 sends on direction 0 and receives on 1, end 1 the other way.
pub(crate) fn duplex() -> Result<(RingEnd, RingEnd)> {
    let (a, b) = socket::seqpacket_pair()?;
    let ctl = region()?;
    let (d0, d1) = (dir(&ctl, 0)?, dir(&ctl, 1)?);
    Ok((
        RingEnd::new(0, a, ctl.clone(), Some(d1.clone()), Some(d0.clone())),
        RingEnd::new(1, b, ctl, Some(d0), Some(d1)),
    ))
}

/// A simplex ring pipe: `(reader, writer)`, one direction (ring 0; ring 1 is never touched).
pub(crate) fn simplex() -> Result<(RingEnd, RingEnd)> {
    let (r, w) = socket::seqpacket_pair()?;
    let ctl = region()?;
    let d = dir(&ctl, 0)?;
    Ok((
        RingEnd::new(0, r, ctl.clone(), Some(d.clone()), None),
        RingEnd::new(1, w, ctl, None, Some(d)),
    ))
}

/// A reader's spin phase: until `ready()` or [`SPIN`] after `start`.
fn spin_until(start: Duration, ready: impl Fn() -> bool) {
    let backoff = Backoff::polling();
    while !ready() && deadline::now().saturating_sub(start) < SPIN {
        backoff.snooze();
    }
}

impl RingEnd {
    fn new(end: usize, sock: OwnedFd, ctl: Region, rx: Option<Dir>, tx: Option<Dir>) -> RingEnd {
        let h = RingEnd {
            end,
            sock: Some(Arc::new(sock)),
            ctl,
            rx,
            tx,
            seen_closes: AtomicU32::new(0),
            next_look_ns: AtomicU64::new(0),
        };
        h.seen_closes.store(h.control().closes[1 - end].load(Ordering::Relaxed), Ordering::Relaxed);
        h
    }

    fn control(&self) -> &Control {
        // The payload holds a Control (checked at creation and when received).
        self.ctl.at::<Control>(0)
    }

    /// The liveness socket (also what the fuzz target writes junk to).
    pub(crate) fn sock(&self) -> BorrowedFd<'_> {
        self.sock.as_ref().expect("socket is only taken while dropping").as_fd()
    }

    /// Another handle on this end (shares the descriptors and mappings).
    pub(crate) fn try_clone(&self) -> RingEnd {
        RingEnd {
            end: self.end,
            sock: self.sock.clone(),
            ctl: self.ctl.clone(),
            rx: self.rx.clone(),
            tx: self.tx.clone(),
            seen_closes: AtomicU32::new(self.seen_closes.load(Ordering::Relaxed)),
            next_look_ns: AtomicU64::new(0),
        }
    }

    /// Whether every handle of the other end is closed (the socket's `POLLHUP`).
    fn peer_gone(&self) -> Result<bool> {
        let r = poll::poll(&[(self.sock(), poll::POLLRDHUP)], Deadline::now())?;
        Ok(r[0] & GONE != 0)
    }

    /// Before a send: `Err(BrokenPipe)` if the peer is known gone. Looks at the socket only when
    /// a peer handle was dropped since the last look, or [`LIVENESS_EVERY`] after it.
    fn check_peer(&self) -> Result<()> {
        let closes = self.control().closes[1 - self.end].load(Ordering::Relaxed);
        let now = deadline::now();
        let now_ns = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        if closes == self.seen_closes.load(Ordering::Relaxed)
            && now_ns < self.next_look_ns.load(Ordering::Relaxed)
        {
            return Ok(());
        }
        // Acquire: a close counted before we looked is seen by the socket look below (the
        // closer closed its descriptor before counting).
        fence(Ordering::Acquire);
        if self.peer_gone()? {
            return Err(broken_pipe());
        }
        self.seen_closes.store(closes, Ordering::Relaxed);
        let every = LIVENESS_EVERY.as_nanos() as u64;
        self.next_look_ns.store(now_ns.saturating_add(every), Ordering::Relaxed);
        Ok(())
    }

    // ---- sending ------------------------------------------------------------------------------

    /// Sends `data` as one message (size already checked against `max_message_size`).
    pub(crate) fn send(&self, data: &[u8]) -> Result<()> {
        let Some(tx) = &self.tx else {
            return Err(Error::invalid("connection is read-only"));
        };
        let ring = &tx.ring;
        let limit = ring.item_limit();
        if data.len() > limit {
            return Err(Error::MessageTooLarge { size: data.len(), limit });
        }
        self.check_peer()?;
        crash_point!("pipe.send_checked");
        SLOTS.with(|cell| {
            let mut slots = cell.borrow_mut();
            loop {
                if ring.len() > 0 && ring.circle_bytes() > BUDGET {
                    self.wait_for_drain(ring, data.len())?;
                }
                let status = if data.len() <= SMALL {
                    ring.put_small(data, &mut slots, Deadline::NEVER)?
                } else {
                    slots.clear();
                    match ring.start_put(&[data.len()], &mut slots, Deadline::NEVER)? {
                        PutStatus::Reserved => {
                            Reserved::new(ring, &mut slots).commit(data)?;
                            PutStatus::Reserved
                        }
                        other => other,
                    }
                };
                match status {
                    PutStatus::Reserved => return Ok::<(), Error>(()),
                    // 2^27 messages queued: wait like a full pipe.
                    PutStatus::Full => self.wait_for_drain(ring, data.len())?,
                    // Not with an unbounded lock deadline; look again.
                    PutStatus::Busy => {}
                }
            }
        })?;
        crash_point!("pipe.send_committed");
        // SeqCst fence: the Dekker pair of the poller's count-then-look (see the module doc).
        fence(Ordering::SeqCst);
        if self.control().pollers[tx.idx].load(Ordering::Relaxed) != 0 {
            self.ring_bell();
        }
        Ok(())
    }

    /// Waits until the readers drained `ring`, or `Err(BrokenPipe)` once they are all gone.
    fn wait_for_drain(&self, ring: &Ring, len: usize) -> Result<()> {
        if len >= DRAIN_FUTEX {
            let drained = || ring.len() == 0;
            let attempt = |ran_out: bool| {
                if drained() {
                    return Some(Ok(()));
                }
                if ran_out {
                    // A dead writer's unfinished record holds the ring until it is skipped.
                    if let Err(e) = ring.reap() {
                        return Some(Err(e));
                    }
                    match self.peer_gone() {
                        Ok(true) => return Some(Err(broken_pipe())),
                        Ok(false) => {}
                        Err(e) => return Some(Err(e)),
                    }
                }
                None
            };
            return ring
                .get_signal()
                .wait_sliced(Deadline::NEVER, SLICE, |_| drained(), attempt)
                .unwrap_or(Ok(()));
        }
        let mut last_look = deadline::now();
        let mut last_reap = last_look;
        while ring.len() > 0 {
            std::thread::sleep(DRAIN_LOOK);
            let now = deadline::now();
            if now.saturating_sub(last_look) >= SLICE {
                if self.peer_gone()? {
                    return Err(broken_pipe());
                }
                last_look = now;
            }
            if now.saturating_sub(last_reap) >= SLICE {
                // A dead writer's unfinished record holds the ring until a reader skips it.
                ring.reap()?;
                last_reap = now;
            }
        }
        Ok(())
    }

    // ---- receiving ----------------------------------------------------------------------------

    fn rx(&self) -> Result<&Dir> {
        self.rx.as_ref().ok_or_else(|| Error::invalid("connection is write-only"))
    }

    /// Receives one message of at most `limit` bytes into `buf` (replaced), waiting for one;
    /// `Err(Eof)` once the peer is gone and the ring is empty. A longer message is refused with
    /// `MessageTooLarge` and stays queued.
    pub(crate) fn recv(&self, limit: usize, buf: &mut Vec<u8>) -> Result<()> {
        self.recv_by(limit, |ring, reap| ring.take_limited(limit, reap, Deadline::NEVER, buf))
            .map(|_| ())
    }

    /// Receives one message straight into `dst` when it fits (one copy: `recv_bytes_into`),
    /// else into `spill` (replaced); returns its length, and a length over `dst.len()` says it
    /// is in `spill`. Waits, refuses and ends like [`Self::recv`].
    pub(crate) fn recv_into(
        &self,
        limit: usize,
        dst: &mut [u8],
        spill: &mut Vec<u8>,
    ) -> Result<usize> {
        self.recv_by(limit, |ring, reap| ring.take_into(limit, reap, Deadline::NEVER, dst, spill))
    }

    /// The receive loop: `take(ring, reap)` takes the head record (see `Ring::take_limited`),
    /// and this waits until it took one. Returns the message's length.
    fn recv_by(
        &self,
        limit: usize,
        mut take: impl FnMut(&Ring, bool) -> Result<Take>,
    ) -> Result<usize> {
        let ring = &self.rx()?.ring;
        let took = |t: Take| match t {
            Take::Took(n) => Some(Ok(n)),
            Take::TooLarge(size) => Some(Err(Error::MessageTooLarge { size, limit })),
            Take::Empty | Take::Pending(_) | Take::Busy => None,
        };
        // The fast path (a message is there) reads no clock.
        if let Some(r) = took(take(ring, false)?) {
            crash_point!("pipe.recv_taken");
            return r;
        }
        let start = deadline::now();
        let mut spun = false;
        let head_ready = || ring.head_ready();
        let attempt = |ran_out: bool| {
            // After a slice with no wake-up, a record still pending may be a dead writer's.
            match take(ring, ran_out) {
                Ok(t) => {
                    if let Some(r) = took(t) {
                        return Some(r);
                    }
                }
                Err(e) => return Some(Err(e)),
            }
            if !spun {
                spun = true;
                spin_until(start, head_ready);
                if head_ready() {
                    return None;
                }
            }
            match self.peer_gone() {
                Ok(false) => None,
                // Every writer is gone: what is committed is all there will be, and a record
                // still being written is a dead writer's. Take once more before Eof.
                Ok(true) => Some(match take(ring, true) {
                    Ok(t) => took(t).unwrap_or(Err(Error::Eof)),
                    Err(e) => Err(e),
                }),
                Err(e) => Some(Err(e)),
            }
        };
        let r = ring
            .put_signal()
            .wait_sliced(Deadline::NEVER, SLICE, |_| head_ready(), attempt)
            .unwrap_or(Err(Error::Eof));
        if r.is_ok() {
            crash_point!("pipe.recv_taken");
        }
        r
    }

    // ---- waiting (poll / wait) ----------------------------------------------------------------

    /// A message is at the head (lock-free; another reader may take it first).
    pub(crate) fn ready_now(&self) -> bool {
        self.rx.as_ref().is_some_and(|d| d.ring.head_ready())
    }

    /// Counts this thread as a poller of the receiving direction (undone by [`Self::disarm`]).
    pub(crate) fn arm(&self) {
        if let Some(d) = &self.rx {
            self.control().pollers[d.idx].fetch_add(1, Ordering::SeqCst);
        }
    }

    pub(crate) fn disarm(&self) {
        if let Some(d) = &self.rx {
            // Wrapping: a peer-written word.
            self.control().pollers[d.idx].fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The descriptor a poller sleeps on: the liveness socket (HUP, and the doorbell's bytes
    /// when this end receives).
    pub(crate) fn poll_fds<'a>(&'a self, out: &mut Vec<(BorrowedFd<'a>, libc::c_short)>) {
        let bell = if self.rx.is_some() { poll::POLLIN } else { 0 };
        out.push((self.sock(), poll::POLLRDHUP | bell));
    }

    /// After poll(2) reported `revents` for [`Self::poll_fds`]: says whether this end is ready
    /// (a message at the head, or the peer gone: end-of-file). A ring with a message keeps the
    /// doorbell's bytes for the other pollers; an empty one drains them and looks once more.
    pub(crate) fn after_poll(&self, revents: &[libc::c_short]) -> Result<bool> {
        let Some(d) = &self.rx else { return Ok(false) };
        if d.ring.head_ready() {
            return Ok(true);
        }
        let rev = revents.first().copied().unwrap_or(0);
        if rev & poll::POLLIN != 0 {
            self.drain_bell();
            crash_point!("pipe.bell_drained");
            // SeqCst: the drain is ordered before the look; a byte drained was sent after its
            // message was committed, so that message is seen now.
            fence(Ordering::SeqCst);
            if d.ring.head_ready() {
                return Ok(true);
            }
        }
        Ok(rev & GONE != 0)
    }

    /// A poll slice ran out: skip a dead writer's record that would hold the head for good.
    pub(crate) fn idle(&self) -> Result<()> {
        if let Some(d) = &self.rx {
            if d.ring.len() > 0 && !d.ring.head_ready() {
                d.ring.reap()?;
            }
        }
        Ok(())
    }
}

impl RingEnd {
    /// Rings the peer's doorbell: one byte on our socket, read from the peer's.
    fn ring_bell(&self) {
        // Non-blocking: a full socket has been rung already. Errors (the peer end is closed)
        // only mean nobody is left to wake.
        let _ = socket::send_record(self.sock(), &[&[1u8]], &[], true);
    }

    fn drain_bell(&self) {
        let mut byte = [0u8; 16];
        // Bounded: a hostile peer ringing in a loop cannot keep us here.
        for _ in 0..1024 {
            if socket::recv_nonblocking(self.sock(), &mut byte).is_err() {
                break;
            }
        }
    }
}

impl Drop for RingEnd {
    fn drop(&mut self) {
        // The descriptor first (the peer's HUP once it was the last), then the count that tells
        // writers to look, then a wake-up for readers asleep on our sending direction's futex.
        drop(self.sock.take());
        crash_point!("pipe.drop_closed");
        self.control().closes[self.end].fetch_add(1, Ordering::Release);
        if let Some(tx) = &self.tx {
            tx.ring.wake_getters();
        }
    }
}

// ---- crossing processes ---------------------------------------------------------------------

/// What a [`RingEnd`] serializes to (a `Process` argument): its two descriptors and which
/// rings of the region it receives from and sends on.
#[derive(Serialize)]
pub(crate) struct RingOut<'a> {
    end: u8,
    sock: SendFd<'a>,
    region: &'a Region,
    rx: Option<u8>,
    tx: Option<u8>,
}

#[derive(Deserialize)]
pub(crate) struct RingIn {
    end: u8,
    sock: RecvFd,
    region: Region,
    rx: Option<u8>,
    tx: Option<u8>,
}

impl RingEnd {
    pub(crate) fn to_wire(&self) -> RingOut<'_> {
        RingOut {
            end: self.end as u8,
            sock: SendFd(self.sock()),
            region: &self.ctl,
            rx: self.rx.as_ref().map(|d| d.idx as u8),
            tx: self.tx.as_ref().map(|d| d.idx as u8),
        }
    }

    pub(crate) fn from_wire(w: RingIn) -> Result<RingEnd> {
        if w.end > 1 {
            return Err(Error::invalid("pipe end out of range"));
        }
        let ctl = w.region.expect(MAGIC)?;
        if ctl.mapped_len() < PIPE_EAGER || ctl.payload_len() != PIPE_LEN {
            return Err(Error::invalid("pipe region has the wrong size"));
        }
        let rx = w.rx.map(|i| dir(&ctl, i as usize)).transpose()?;
        let tx = w.tx.map(|i| dir(&ctl, i as usize)).transpose()?;
        Ok(RingEnd::new(w.end as usize, w.sock.0, ctl, rx, tx))
    }
}
