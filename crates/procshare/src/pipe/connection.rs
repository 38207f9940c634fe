//! `Connection`: one end of a pipe or of a stream connection. This file is the dispatch; the
//! transports are `pipe/ring.rs` (`pipe()` / `pipe_simplex()`: messages through shared-memory
//! rings, the kernel kept for liveness and the poll(2) doorbell) and `pipe/stream.rs`
//! (`Listener` / `connect`: CPython's framing on a byte stream), matched on like crossbeam's
//! channel flavors. Their module docs explain the mechanisms and crash tables.
//!
//! Common to both, here: direction checks, `max_message_size` (checked before anything is sent
//! or allocated), the codecs, and serialization as a `Process` argument.

use super::ring::{self, RingEnd, RingIn, RingOut};
use super::stream::StreamEnd;
use crate::codec;
use crate::error::{Error, Result};
use crate::shared::handles::{RecvFd, SendFd};
use crate::sys::deadline::Deadline;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Default `max_message_size`: 1 GiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 30;
/// Per-thread buffers above this are given back after use.
const KEEP_BUFFER: usize = 8 << 20;

thread_local! {
    /// Send buffer for `send`: the encoded object.
    static ENCODE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Receive buffer for `recv`/`recv_pickle`/`recv_bytes_into`: the message to decode.
    static DECODE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's buffer in `cell` (a fresh one if `f` re-enters, e.g. from a
/// `Serialize` impl that itself sends).
fn with_buffer<R>(
    cell: &'static std::thread::LocalKey<RefCell<Vec<u8>>>,
    f: impl FnOnce(&mut Vec<u8>) -> R,
) -> R {
    cell.with(|c| match c.try_borrow_mut() {
        Ok(mut b) => {
            let r = f(&mut b);
            if b.capacity() > KEEP_BUFFER {
                *b = Vec::new();
            }
            r
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// The transport behind a `Connection`.
#[derive(Debug)]
pub(crate) enum Transport {
    /// `pipe()` / `pipe_simplex()`.
    Ring(RingEnd),
    /// `Listener` / `connect`.
    Stream(StreamEnd),
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
/// `send` to an end whose peer is gone returns `Err(Io(BrokenPipe))` — never SIGPIPE. (A pipe
/// peer killed by SIGKILL is noticed by a sender within a millisecond.)
///
/// # Across `fork` and `spawn`
/// Passed as (part of) a `Process` argument, the child gets a handle on the same end.
#[derive(Debug)]
pub struct Connection {
    transport: Transport,
    readable: bool,
    writable: bool,
    max_message_size: AtomicUsize,
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
    let (a, b) = ring::duplex()?;
    Ok((
        Connection::new(Transport::Ring(a), true, true),
        Connection::new(Transport::Ring(b), true, true),
    ))
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
    let (r, w) = ring::simplex()?;
    Ok((
        Connection::new(Transport::Ring(r), true, false),
        Connection::new(Transport::Ring(w), false, true),
    ))
}

fn wrong_direction(msg: &'static str) -> Error {
    Error::Io(io::Error::new(io::ErrorKind::Unsupported, msg))
}

impl Connection {
    fn new(transport: Transport, readable: bool, writable: bool) -> Connection {
        Connection {
            transport,
            readable,
            writable,
            max_message_size: AtomicUsize::new(DEFAULT_MAX_MESSAGE_SIZE),
        }
    }

    /// A duplex connection on a connected stream socket, speaking CPython's framing.
    pub(crate) fn from_stream(fd: OwnedFd) -> Connection {
        Connection::new(Transport::Stream(StreamEnd::new(fd)), true, true)
    }

    /// The transport (for `wait`).
    pub(crate) fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Whether this end can receive.
    pub fn readable(&self) -> bool {
        self.readable
    }

    /// Whether this end can send.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// The largest message this handle sends or accepts (default 1 GiB; a pipe carries at most
    /// 1 GiB whatever the limit says).
    pub fn max_message_size(&self) -> usize {
        self.max_message_size.load(Ordering::Relaxed)
    }

    /// Sets the largest message this handle sends or accepts. Checked before anything is sent
    /// or allocated.
    pub fn set_max_message_size(&self, limit: usize) {
        self.max_message_size.store(limit, Ordering::Relaxed);
    }

    /// Another handle on the same end, e.g. to give one end to several child processes.
    /// Messages still go to exactly one reader.
    pub fn try_clone(&self) -> Result<Connection> {
        let transport = match &self.transport {
            Transport::Ring(r) => Transport::Ring(r.try_clone()),
            Transport::Stream(s) => Transport::Stream(s.try_clone()?),
        };
        let c = Connection::new(transport, self.readable, self.writable);
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
        with_buffer(&ENCODE, |buf| {
            buf.clear();
            codec::encode_into(obj, buf)?;
            self.send_bytes(buf)
        })
    }

    /// Sends raw bytes as one message (`send_bytes`).
    pub fn send_bytes(&self, buf: &[u8]) -> Result<()> {
        self.check_writable()?;
        self.check_size(buf.len())?;
        match &self.transport {
            Transport::Ring(r) => r.send(buf),
            Transport::Stream(s) => s.send(buf),
        }
    }

    /// Sends a value as a Python pickle, for a CPython peer's `recv()`.
    pub fn send_pickle<T: Serialize + ?Sized>(&self, obj: &T) -> Result<()> {
        self.check_writable()?;
        self.send_bytes(&codec::pickle_encode(obj)?)
    }

    // ---- receiving -----------------------------------------------------------------------

    /// Receives one message of at most `max` bytes (and at most `max_message_size`) into `buf`.
    fn recv_into(&self, max: usize, buf: &mut Vec<u8>) -> Result<()> {
        self.check_readable()?;
        let limit = max.min(self.max_message_size());
        match &self.transport {
            Transport::Ring(r) => r.recv(limit, buf),
            Transport::Stream(s) => {
                *buf = s.recv(limit)?;
                Ok(())
            }
        }
    }

    /// Receives one message into this thread's buffer and hands it to `f`.
    fn with_message<R>(&self, f: impl FnOnce(&[u8]) -> Result<R>) -> Result<R> {
        with_buffer(&DECODE, |buf| {
            self.recv_into(usize::MAX, buf)?;
            f(buf)
        })
    }

    /// Receives one serde value (native codec). `Err(Eof)` once the peer is gone and nothing is
    /// left; `Err(Codec)` if the message is not a `T`.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T> {
        self.with_message(codec::decode)
    }

    /// Receives a Python pickle (data only: nothing in it is executed).
    pub fn recv_pickle<T: DeserializeOwned>(&self) -> Result<T> {
        self.with_message(|b| codec::pickle_decode_limited(b, self.max_message_size()))
    }

    /// Receives one message as bytes (`recv_bytes`).
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        self.recv_bytes_max(usize::MAX)
    }

    /// Receives one message of at most `maxlength` bytes. A longer message is refused with
    /// `MessageTooLarge` and stays readable (unlike Python, where the connection becomes
    /// unusable), by every handle of this end.
    pub fn recv_bytes_max(&self, maxlength: usize) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.recv_into(maxlength, &mut v)?;
        Ok(v)
    }

    /// Receives one message into `buf`, returning its length. If it does not fit, the message is
    /// consumed and handed back whole in `Err(BufferTooShort(message))`.
    pub fn recv_bytes_into(&self, buf: &mut [u8]) -> Result<usize> {
        if let Transport::Ring(r) = &self.transport {
            self.check_readable()?;
            // Straight into `buf` (one copy); only a message too long for it lands in `spill`.
            return with_buffer(&DECODE, |spill| {
                let n = r.recv_into(self.max_message_size(), buf, spill)?;
                if n > buf.len() {
                    return Err(Error::BufferTooShort(std::mem::take(spill)));
                }
                Ok(n)
            });
        }
        self.with_message(|b| {
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
        let ready = super::wait::wait_until(&[self], Deadline::from_timeout(timeout))?;
        Ok(!ready.is_empty())
    }
}

#[derive(Serialize)]
enum WireOut<'a> {
    Ring(RingOut<'a>),
    Stream(SendFd<'a>),
}

#[derive(Deserialize)]
enum WireIn {
    Ring(RingIn),
    Stream(RecvFd),
}

impl Serialize for Connection {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let wire = match &self.transport {
            Transport::Ring(r) => WireOut::Ring(r.to_wire()),
            Transport::Stream(st) => WireOut::Stream(SendFd(st.fd())),
        };
        (wire, self.readable, self.writable, self.max_message_size() as u64).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (wire, readable, writable, max) = <(WireIn, bool, bool, u64)>::deserialize(d)?;
        let transport = match wire {
            WireIn::Ring(r) => {
                Transport::Ring(RingEnd::from_wire(r).map_err(serde::de::Error::custom)?)
            }
            WireIn::Stream(RecvFd(fd)) => Transport::Stream(StreamEnd::new(fd)),
        };
        let c = Connection::new(transport, readable, writable);
        c.set_max_message_size(usize::try_from(max).unwrap_or(usize::MAX));
        Ok(c)
    }
}
