//! `Connection`: one end of a pipe, on an `AF_UNIX` `SOCK_SEQPACKET` socket.
//!
//! Every message is exactly one kernel record, so it arrives whole, to exactly one reader,
//! however many threads and processes share the end — no reader lock, and a writer killed at
//! any instant leaves either a whole record or nothing.
//!
//! ```text
//! inline record:       [0u8][payload .. up to INLINE_MAX bytes]
//! out-of-band record:  [1u8][payload length: u64 LE]   + SCM_RIGHTS { sealed memfd }
//! ```
//! A payload too big for one record is written into a fresh memfd, sealed (no more writes,
//! no size change) and its descriptor rides in a one-record message. The receiver checks the
//! seals and the size before reading, so a hostile peer can neither change the data while it
//! is read nor make us read past its end. The leading kind byte also makes every record we
//! write at least one byte long (an empty message is the record `[0u8]`), so a zero-length
//! read is end-of-file or a record from a hostile or foreign writer; `zero_length_is_eof`
//! tells them apart exactly, and the latter is `Err(Codec)` with the connection still usable.
//!
//! A message a receive refused (`MessageTooLarge`) after taking it off the socket is kept in
//! a stash shared by the handle's clones in this process, not by the handle alone.
//!
//! Crash table: a writer killed before its `sendmsg` leaves nothing (its memfd dies with it);
//! after, a whole message. A reader killed after `recvmsg` takes that message with it.

use super::stream;
use crate::codec;
use crate::error::{Error, Result};
use crate::shared::handles::{RecvFd, SendFd};
use crate::sys::deadline::Deadline;
use crate::sys::{memfd, poll, socket};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Largest payload sent inside the record itself; larger ones go out of band. Measured: a
/// 1 MiB message inline costs one copy in and one out (~8 GiB/s here) against ~2 GiB/s through
/// a fresh memfd, whose pages must be allocated and zeroed each time. A record also needs room
/// in the socket's send buffer; where the system caps that lower, `sendmsg` fails with
/// `EMSGSIZE`/`ENOBUFS` and the message goes out of band instead.
pub(crate) const INLINE_MAX: usize = 1 << 20;
const KIND_INLINE: u8 = 0;
const KIND_OOB: u8 = 1;
/// Default `max_message_size`: 1 GiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 30;
/// Every seal but `F_SEAL_SEAL` must be on a received memfd (size and contents fixed).
const REQUIRED_SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

thread_local! {
    /// Receive buffer: one record's worth, reused by every receive on this thread. Its pages
    /// are only touched as far as records reach, so small messages cost no more memory.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0u8; INLINE_MAX + 1]);
    /// Send buffer for `send`: kind byte + encoded object.
    static ENCODE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A message taken off the socket but not yet handed to the user (see `recv_bytes_max`).
#[derive(Debug)]
enum Pending {
    Inline(Vec<u8>),
    OutOfBand(OwnedFd, usize),
}

impl Pending {
    fn len(&self) -> usize {
        match self {
            Pending::Inline(v) => v.len(),
            Pending::OutOfBand(_, n) => *n,
        }
    }
}

/// What this process knows about the socket beyond what is still in it: the message a refused
/// receive took off it. It lives with the socket, shared by every [`Connection::try_clone`] in
/// this process, so a refused message stays readable by all of them (a handle passed to
/// another process starts with its own, empty, stash).
#[derive(Debug, Default)]
struct Stash {
    has_pending: AtomicBool,
    pending: parking_lot::Mutex<Option<Pending>>,
}

/// Where the reader of a byte stream stands.
#[derive(Debug, Default, Clone, Copy)]
enum ReadState {
    /// At a frame boundary.
    #[default]
    Idle,
    /// A frame's header was read (and its payload refused as too large); the payload is next.
    Header(usize),
    /// A read failed mid-frame: where the next frame starts is unknown.
    Broken,
}

/// One end of a pipe (`multiprocessing.connection.Connection`).
///
/// `send`/`recv` carry serde values (the native codec), `send_bytes`/`recv_bytes` raw bytes,
/// `send_pickle`/`recv_pickle` Python pickles. Messages are never merged or split; empty
/// messages are messages. The end is `Send + Sync`: share it between threads by reference, or
/// give each child process its own [`try_clone`](Connection::try_clone).
///
/// # When the other side goes away
/// Messages already sent can still be received; after them `recv` returns `Err(Eof)`.
/// `send` to an end whose peer is gone returns `Err(Io(BrokenPipe))` — never SIGPIPE.
///
/// # Across `fork` and `spawn`
/// Passed as (part of) a `Process` argument, the child gets a handle on the same end.
#[derive(Debug)]
pub struct Connection {
    fd: OwnedFd,
    readable: bool,
    writable: bool,
    max_message_size: AtomicUsize,
    stash: Arc<Stash>,
    /// `Some` for a byte-stream connection (`Listener`/`connect`): CPython framing, and locks
    /// (shared by this handle's clones) so frames of concurrent threads never interleave.
    stream: Option<Arc<StreamLocks>>,
}

/// A byte stream has no record boundaries: readers (and writers) of one socket must take turns,
/// and a frame header one of them read is state of the socket, not of a handle — so both live
/// here, shared by every clone in this process. Two *processes* reading one stream socket
/// would split frames between them whatever we did; a stream `Connection` passed to a child
/// must be used by one process at a time (the child, typically).
#[derive(Debug, Default)]
struct StreamLocks {
    read: parking_lot::Mutex<ReadState>,
    write: parking_lot::Mutex<()>,
}

/// A duplex pipe: both ends send and receive (`multiprocessing.Pipe()`).
///
/// ```
/// let (a, b) = procshare::pipe()?;
/// a.send(&(1, "one"))?;
/// assert_eq!(b.recv::<(i32, String)>()?, (1, "one".to_string()));
/// b.send_bytes(b"")?;
/// assert_eq!(a.recv_bytes()?, b"");
/// # Ok::<(), procshare::Error>(())
/// ```
pub fn pipe() -> Result<(Connection, Connection)> {
    let (a, b) = socket::seqpacket_pair()?;
    widen_send_buffer(a.as_fd());
    widen_send_buffer(b.as_fd());
    Ok((Connection::new(a, true, true), Connection::new(b, true, true)))
}

/// A one-way pipe: `(receive-only end, send-only end)` (`multiprocessing.Pipe(False)`).
///
/// ```
/// let (reader, writer) = procshare::pipe_simplex()?;
/// writer.send(&42u8)?;
/// assert_eq!(reader.recv::<u8>()?, 42);
/// assert!(reader.send(&1u8).is_err()); // the reader cannot send
/// # Ok::<(), procshare::Error>(())
/// ```
pub fn pipe_simplex() -> Result<(Connection, Connection)> {
    let (r, w) = socket::seqpacket_pair()?;
    widen_send_buffer(w.as_fd());
    socket::shutdown(r.as_fd(), false, true)?;
    socket::shutdown(w.as_fd(), true, false)?;
    Ok((Connection::new(r, true, false), Connection::new(w, false, true)))
}

/// Each record costs its kernel overhead (about 1 KiB) against the sender's buffer, so the
/// default 208 KiB would block a writer after ~200 small messages, where Python's stream pipe
/// holds thousands. Ask for the system maximum (capped at 4 MiB; only a limit, not memory
/// taken up front). Failure is harmless: the default stays.
fn widen_send_buffer(fd: BorrowedFd<'_>) {
    static WANTED: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let wanted = *WANTED.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/core/wmem_max")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(0)
            .min(4 << 20)
    });
    if wanted > 0 {
        let _ = socket::set_send_buffer(fd, wanted);
    }
}

fn wrong_direction(msg: &'static str) -> Error {
    Error::Io(io::Error::new(io::ErrorKind::Unsupported, msg))
}

fn corrupt(msg: impl Into<String>) -> Error {
    Error::Codec(msg.into())
}

impl Connection {
    fn new(fd: OwnedFd, readable: bool, writable: bool) -> Connection {
        Connection {
            fd,
            readable,
            writable,
            max_message_size: AtomicUsize::new(DEFAULT_MAX_MESSAGE_SIZE),
            stash: Arc::default(),
            stream: None,
        }
    }

    /// A duplex connection on a connected stream socket, speaking CPython's framing.
    pub(crate) fn from_stream(fd: OwnedFd) -> Connection {
        Connection { stream: Some(Arc::default()), ..Connection::new(fd, true, true) }
    }

    pub(crate) fn raw_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Whether this end can receive.
    pub fn readable(&self) -> bool {
        self.readable
    }

    /// Whether this end can send.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// The largest message this handle sends or accepts (default 1 GiB).
    pub fn max_message_size(&self) -> usize {
        self.max_message_size.load(Ordering::Relaxed)
    }

    /// Sets the largest message this handle sends or accepts. Checked before anything is sent
    /// or allocated.
    pub fn set_max_message_size(&self, limit: usize) {
        self.max_message_size.store(limit, Ordering::Relaxed);
    }

    /// Another handle on the same end (a `dup` of the socket), e.g. to give one end to several
    /// child processes. Messages still go to exactly one reader.
    pub fn try_clone(&self) -> Result<Connection> {
        let mut c = Connection::new(self.fd.try_clone()?, self.readable, self.writable);
        c.stash = self.stash.clone();
        c.stream = self.stream.clone();
        c.set_max_message_size(self.max_message_size());
        Ok(c)
    }

    /// Closes this handle (dropping it does the same). The peer sees end-of-file once every
    /// handle on this end is closed.
    pub fn close(self) -> Result<()> {
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(wrong_direction("connection is read-only"))
        }
    }

    fn check_readable(&self) -> Result<()> {
        if self.readable {
            Ok(())
        } else {
            Err(wrong_direction("connection is write-only"))
        }
    }

    fn check_size(&self, size: usize) -> Result<()> {
        let limit = self.max_message_size();
        if size > limit {
            return Err(Error::MessageTooLarge { size, limit });
        }
        Ok(())
    }

    // ---- sending -------------------------------------------------------------------------

    /// Sends one serde value (native codec).
    pub fn send<T: Serialize + ?Sized>(&self, obj: &T) -> Result<()> {
        self.check_writable()?;
        ENCODE.with(|cell| {
            let mut guard = cell.try_borrow_mut();
            let mut fresh = Vec::new();
            // Re-entrancy (a Serialize impl that sends) falls back to a fresh buffer.
            let buf = match guard.as_deref_mut() {
                Ok(b) => b,
                Err(_) => &mut fresh,
            };
            buf.clear();
            buf.push(KIND_INLINE);
            let r = codec::encode_into(obj, buf).and_then(|()| self.send_framed(buf));
            if buf.capacity() > 4 * INLINE_MAX {
                *buf = Vec::new();
            }
            r
        })
    }

    /// Sends `buf[1..]` as a message; `buf[0]` is reserved for the kind byte.
    fn send_framed(&self, buf: &mut [u8]) -> Result<()> {
        let payload = buf.len() - 1;
        self.check_size(payload)?;
        if let Some(locks) = &self.stream {
            let _w = locks.write.lock();
            return stream::send_frame(self.fd.as_fd(), &buf[1..]);
        }
        if payload <= INLINE_MAX {
            buf[0] = KIND_INLINE;
            match socket::send_record(self.fd.as_fd(), &[buf], &[], false) {
                Err(e) if too_big_for_a_record(&e) => {}
                other => return other.map(drop).map_err(Error::from),
            }
        }
        self.send_out_of_band(&buf[1..])
    }

    /// Sends raw bytes as one message (`send_bytes`).
    pub fn send_bytes(&self, buf: &[u8]) -> Result<()> {
        self.check_writable()?;
        self.check_size(buf.len())?;
        if let Some(locks) = &self.stream {
            let _w = locks.write.lock();
            return stream::send_frame(self.fd.as_fd(), buf);
        }
        if buf.len() <= INLINE_MAX {
            match socket::send_record(self.fd.as_fd(), &[&[KIND_INLINE], buf], &[], false) {
                Err(e) if too_big_for_a_record(&e) => {}
                other => return other.map(drop).map_err(Error::from),
            }
        }
        self.send_out_of_band(buf)
    }

    fn send_out_of_band(&self, payload: &[u8]) -> Result<()> {
        let file = memfd::create("procshare-msg")?;
        memfd::set_len(file.as_fd(), payload.len() as u64)?;
        memfd::write_all_at(file.as_fd(), payload, 0)?;
        memfd::add_seals(file.as_fd(), memfd::SEAL_ALL)?;
        let len = (payload.len() as u64).to_le_bytes();
        socket::send_record(self.fd.as_fd(), &[&[KIND_OOB], &len], &[file.as_fd()], false)?;
        Ok(())
    }

    /// Sends a value as a Python pickle, for a CPython peer's `recv()`.
    pub fn send_pickle<T: Serialize + ?Sized>(&self, obj: &T) -> Result<()> {
        self.check_writable()?;
        self.send_bytes(&codec::pickle_encode(obj)?)
    }

    // ---- receiving -----------------------------------------------------------------------

    /// Receives one serde value (native codec). `Err(Eof)` once the peer is gone and nothing is
    /// left; `Err(Codec)` if the message is not a `T`.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T> {
        self.with_message(usize::MAX, codec::decode)
    }

    /// Receives a Python pickle (data only: nothing in it is executed).
    pub fn recv_pickle<T: DeserializeOwned>(&self) -> Result<T> {
        self.with_message(usize::MAX, |b| codec::pickle_decode_limited(b, self.max_message_size()))
    }

    /// Receives one message as bytes (`recv_bytes`).
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        self.with_message(usize::MAX, |b| Ok(b.to_vec()))
    }

    /// Receives one message of at most `maxlength` bytes. A longer message is refused with
    /// `MessageTooLarge` and stays readable (unlike Python, where the connection becomes
    /// unusable).
    ///
    /// With several readers on one end, the longer message stays readable by this handle and
    /// its clones in this process (not by other processes) when another reader raced us to the
    /// message we looked at.
    pub fn recv_bytes_max(&self, maxlength: usize) -> Result<Vec<u8>> {
        self.with_message(maxlength, |b| Ok(b.to_vec()))
    }

    /// Receives one message into `buf`, returning its length. If it does not fit, the message is
    /// consumed and handed back whole in `Err(BufferTooShort(message))`.
    pub fn recv_bytes_into(&self, buf: &mut [u8]) -> Result<usize> {
        self.with_message(usize::MAX, |b| {
            if b.len() > buf.len() {
                return Err(Error::BufferTooShort(b.to_vec()));
            }
            buf[..b.len()].copy_from_slice(b);
            Ok(b.len())
        })
    }

    /// Waits up to `timeout` (`None`: forever; `Some(ZERO)`: just look) for a message or
    /// end-of-file; never consumes anything.
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool> {
        self.check_readable()?;
        if self.has_pending() {
            return Ok(true);
        }
        let deadline = Deadline::from_timeout(timeout);
        let r = poll::poll(&[(self.fd.as_fd(), poll::POLLIN)], deadline)?;
        Ok(r[0] & (poll::POLLIN | poll::POLLHUP | poll::POLLERR) != 0)
    }

    pub(crate) fn has_pending(&self) -> bool {
        self.stash.has_pending.load(Ordering::Acquire)
    }

    /// Receives one message of at most `max` bytes (and at most `max_message_size`) and hands
    /// its payload to `f`.
    fn with_message<R>(&self, max: usize, f: impl FnOnce(&[u8]) -> Result<R>) -> Result<R> {
        self.check_readable()?;
        let limit = max.min(self.max_message_size());
        if let Some(locks) = &self.stream {
            let payload = self.recv_frame(locks, limit)?;
            return f(&payload);
        }
        if self.has_pending() {
            let mut slot = self.stash.pending.lock();
            if let Some(p) = slot.take() {
                if p.len() > limit {
                    let size = p.len();
                    *slot = Some(p);
                    return Err(Error::MessageTooLarge { size, limit });
                }
                self.stash.has_pending.store(false, Ordering::Release);
                drop(slot);
                return match p {
                    Pending::Inline(v) => f(&v),
                    Pending::OutOfBand(fd, n) => f(&read_out_of_band(fd.as_fd(), n)?),
                };
            }
        }
        if max != usize::MAX {
            // Look before taking, so a refused message stays in the socket.
            if let Some(size) = self.peek_size()? {
                if size > limit {
                    return Err(Error::MessageTooLarge { size, limit });
                }
            }
        }
        SCRATCH.with(|cell| {
            let mut guard = cell.try_borrow_mut();
            let mut fresh;
            let scratch = match guard.as_deref_mut() {
                Ok(s) => s,
                Err(_) => {
                    // Re-entered (a Deserialize impl that receives): use a buffer of our own.
                    fresh = vec![0u8; INLINE_MAX + 1];
                    &mut fresh
                }
            };
            let got = recv_spinning(self.fd.as_fd(), scratch)?;
            if got.full_len == 0 {
                if !got.fds.is_empty() || got.fds_truncated {
                    return Err(corrupt("peer sent descriptors in an empty record"));
                }
                if zero_length_is_eof(self.fd.as_fd())? {
                    return Err(Error::Eof);
                }
                return Err(corrupt(
                    "peer sent a zero-length record, which no procshare sender writes",
                ));
            }
            if got.full_len > got.len {
                return Err(corrupt(format!(
                    "peer sent a {}-byte record, more than any procshare sender writes",
                    got.full_len
                )));
            }
            let record = &scratch[..got.len];
            match record[0] {
                KIND_INLINE => {
                    let payload = &record[1..];
                    if payload.len() > limit {
                        self.stash(Pending::Inline(payload.to_vec()));
                        return Err(Error::MessageTooLarge { size: payload.len(), limit });
                    }
                    f(payload)
                }
                KIND_OOB => {
                    let (fd, size) = parse_oob(record, got.fds, got.fds_truncated)?;
                    if size > limit {
                        self.stash(Pending::OutOfBand(fd, size));
                        return Err(Error::MessageTooLarge { size, limit });
                    }
                    f(&read_out_of_band(fd.as_fd(), size)?)
                }
                k => Err(corrupt(format!("unknown record kind {k}"))),
            }
        })
    }

    fn stash(&self, p: Pending) {
        *self.stash.pending.lock() = Some(p);
        self.stash.has_pending.store(true, Ordering::Release);
    }

    /// Receives one stream frame's payload. The reader state is checked and changed under the
    /// read lock, so a header one reader took (and refused) is seen by every other.
    fn recv_frame(&self, locks: &StreamLocks, limit: usize) -> Result<Vec<u8>> {
        let mut state = locks.read.lock();
        let size = match *state {
            ReadState::Header(n) => n,
            ReadState::Broken => {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "stream connection broken mid-message by an earlier error",
                )))
            }
            ReadState::Idle => match stream::recv_header(self.fd.as_fd()) {
                Ok(Some(n)) => usize::try_from(n).unwrap_or(usize::MAX),
                Ok(None) => return Err(Error::Eof),
                Err(e) => {
                    *state = ReadState::Broken;
                    return Err(e);
                }
            },
        };
        if size > limit {
            // Keep the header's word: the payload stays readable by a later receive.
            *state = ReadState::Header(size);
            self.stash.has_pending.store(true, Ordering::Release);
            return Err(Error::MessageTooLarge { size, limit });
        }
        self.stash.has_pending.store(false, Ordering::Release);
        match stream::recv_payload(self.fd.as_fd(), size) {
            Ok(v) => {
                *state = ReadState::Idle;
                Ok(v)
            }
            Err(e) => {
                *state = ReadState::Broken;
                Err(e)
            }
        }
    }

    /// The size of the next message without taking it; `None` at end-of-file.
    fn peek_size(&self) -> Result<Option<usize>> {
        let mut head = [0u8; 9];
        let got = socket::recv_record(self.fd.as_fd(), &mut [&mut head[..]], true, false)?;
        if got.full_len == 0 {
            return Ok(None);
        }
        match head[0] {
            KIND_INLINE => Ok(Some(got.full_len - 1)),
            KIND_OOB if got.len == 9 => {
                Ok(Some(u64::from_le_bytes(head[1..9].try_into().expect("8 bytes")) as usize))
            }
            _ => Ok(Some(0)), // malformed: let the real receive report it
        }
    }
}

/// `recvmsg` gave no bytes: end-of-file, or a zero-length record (which no procshare sender
/// writes: every record starts with its kind byte, but a hostile or foreign peer can send one,
/// and it must not pass for end-of-file while the peer is alive and more messages may follow).
///
/// Exact: end-of-file needs the peer's side shut (`POLLRDHUP`, which never clears), so without
/// it the zero was a record. With it no record can arrive any more; if one is still queued the
/// zero was a record too. Queued records are seen by peeking with `SO_PASSCRED` on for that
/// moment: the kernel then attaches credentials to every record, even an empty one, and to no
/// end-of-file. Only the rare zero-byte path pays for this.
fn zero_length_is_eof(fd: BorrowedFd<'_>) -> Result<bool> {
    let r = poll::poll(&[(fd, poll::POLLRDHUP)], Deadline::now())?;
    if r[0] & (poll::POLLRDHUP | poll::POLLHUP) == 0 {
        return Ok(false);
    }
    socket::set_pass_credentials(fd, true)?;
    let mut byte = [0u8; 1];
    let peek = socket::recv_record(fd, &mut [&mut byte[..]], true, true);
    let _ = socket::set_pass_credentials(fd, false);
    match peek {
        Ok(got) => Ok(!got.credentials && got.full_len == 0 && got.fds.is_empty()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Receives one record, first polling without blocking for a few microseconds: a reader that
/// goes to sleep on every message pays a wake-up per message, which costs more than the message
/// when the writer is just behind.
fn recv_spinning(fd: BorrowedFd<'_>, scratch: &mut [u8]) -> io::Result<socket::Received> {
    // Not `sync::backoff::Backoff`: each look here is a system call, so the schedule is counted
    // in tries, not in pause hints. The shared schedule (11 tries over ~380 pauses) measured
    // slower in `pipe_ping_pong_8B`/`pipe_1to1_64B` once, on a loaded machine: not adopted
    // until measured quietly.
    for _ in 0..SPIN_TRIES {
        match socket::recv_record(fd, &mut [&mut scratch[..]], false, true) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            other => return other,
        }
    }
    socket::recv_record(fd, &mut [&mut scratch[..]], false, false)
}

const SPIN_TRIES: usize = 16;

/// The kernel cannot take this record whole (send buffer cap, or no memory for one big skb):
/// the message goes out of band instead.
fn too_big_for_a_record(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMSGSIZE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM))
}

fn parse_oob(record: &[u8], fds: Vec<OwnedFd>, truncated: bool) -> Result<(OwnedFd, usize)> {
    if record.len() != 9 || fds.len() != 1 || truncated {
        return Err(corrupt("malformed out-of-band record"));
    }
    let size = u64::from_le_bytes(record[1..9].try_into().expect("8 bytes"));
    let size = usize::try_from(size).map_err(|_| corrupt("out-of-band size overflows"))?;
    let fd = fds.into_iter().next().expect("one fd");
    let seals = memfd::seals(fd.as_fd()).map_err(|_| corrupt("out-of-band fd is not a memfd"))?;
    if seals & REQUIRED_SEALS != REQUIRED_SEALS {
        return Err(corrupt("out-of-band memfd is not sealed"));
    }
    if memfd::len(fd.as_fd())? < size as u64 {
        return Err(corrupt("out-of-band memfd is shorter than the message"));
    }
    Ok((fd, size))
}

fn read_out_of_band(fd: BorrowedFd<'_>, size: usize) -> Result<Vec<u8>> {
    let mut v = vec![0u8; size];
    memfd::read_exact_at(fd, &mut v, 0)?;
    Ok(v)
}

impl Serialize for Connection {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let stream = self.stream.is_some();
        (
            SendFd(self.fd.as_fd()),
            self.readable,
            self.writable,
            self.max_message_size() as u64,
            stream,
        )
            .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (RecvFd(fd), readable, writable, max, stream) =
            <(RecvFd, bool, bool, u64, bool)>::deserialize(d)?;
        let mut c = Connection::new(fd, readable, writable);
        if stream {
            c.stream = Some(Arc::default());
        }
        c.set_max_message_size(usize::try_from(max).unwrap_or(usize::MAX));
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection and the raw socket of its peer, to play a hostile sender.
    fn hostile() -> (Connection, OwnedFd) {
        let (a, b) = socket::seqpacket_pair().unwrap();
        (Connection::new(a, true, true), b)
    }

    #[test]
    fn unknown_kind_is_a_codec_error() {
        let (c, raw) = hostile();
        socket::send_record(raw.as_fd(), &[&[9u8, 1, 2]], &[], false).unwrap();
        assert!(matches!(c.recv_bytes(), Err(Error::Codec(_))));
        socket::send_record(raw.as_fd(), &[&[KIND_INLINE, 5]], &[], false).unwrap();
        assert_eq!(c.recv_bytes().unwrap(), [5]);
    }

    #[test]
    fn out_of_band_without_fd_or_seals_is_refused() {
        let (c, raw) = hostile();
        let len = 100u64.to_le_bytes();
        socket::send_record(raw.as_fd(), &[&[KIND_OOB], &len], &[], false).unwrap();
        assert!(matches!(c.recv_bytes(), Err(Error::Codec(_))));
        // An unsealed memfd: the sender could still change or shrink it.
        let f = memfd::create("hostile").unwrap();
        memfd::set_len(f.as_fd(), 100).unwrap();
        socket::send_record(raw.as_fd(), &[&[KIND_OOB], &len], &[f.as_fd()], false).unwrap();
        assert!(matches!(c.recv_bytes(), Err(Error::Codec(_))));
        // Sealed but shorter than it claims.
        memfd::add_seals(f.as_fd(), memfd::SEAL_ALL).unwrap();
        let long = 1000u64.to_le_bytes();
        socket::send_record(raw.as_fd(), &[&[KIND_OOB], &long], &[f.as_fd()], false).unwrap();
        assert!(matches!(c.recv_bytes(), Err(Error::Codec(_))));
        // Claiming more than the limit: refused before reading, and kept.
        c.set_max_message_size(10);
        socket::send_record(raw.as_fd(), &[&[KIND_OOB], &len], &[f.as_fd()], false).unwrap();
        assert!(matches!(c.recv_bytes(), Err(Error::MessageTooLarge { size: 100, limit: 10 })));
        c.set_max_message_size(100);
        assert_eq!(c.recv_bytes().unwrap(), vec![0u8; 100]);
    }

    #[test]
    fn oversized_inline_record_is_refused() {
        let (c, raw) = hostile();
        socket::set_send_buffer(raw.as_fd(), 4 << 20).unwrap();
        let big = vec![0u8; INLINE_MAX + 2];
        if socket::send_record(raw.as_fd(), &[&big], &[], false).is_ok() {
            assert!(matches!(c.recv_bytes(), Err(Error::Codec(_))));
        }
    }
}
