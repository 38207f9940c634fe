//! CPython's framing on a byte stream (TCP or Unix stream socket), for `Listener`/`connect`.
//!
//! ```text
//! payload <= 0x7fff_ffff:  [len: i32 big-endian][payload]
//! larger:                  [-1: i32 big-endian][len: u64 big-endian][payload]
//! ```
//! Exactly `multiprocessing.connection`'s format (3.8+), so a Python `Client`/`Listener`
//! talks to ours. A stream has no record boundaries, so the handles of one socket in a process
//! (a handle and its clones) share a read lock and a write lock, and the read lock guards the
//! reader's position: a header read and refused (too large) by one handle is known to all.
//! A frame is written with one `sendmsg` where the kernel allows.
//!
//! [`StreamEnd`] is the stream transport behind a `Connection` (`pipe/connection.rs`
//! dispatches to it or to the shared-memory ring of `pipe/ring.rs`).

use crate::error::{Error, Result};
use crate::sys::{retry, socket};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One handle on a connected stream socket.
#[derive(Debug)]
pub(crate) struct StreamEnd {
    fd: OwnedFd,
    locks: Arc<StreamLocks>,
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
    /// A refused frame's header was read: its payload is ready although the socket may not say
    /// so (a lock-free look for `poll`/`wait`).
    has_pending: AtomicBool,
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

impl StreamEnd {
    pub(crate) fn new(fd: OwnedFd) -> StreamEnd {
        StreamEnd { fd, locks: Arc::default() }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Another handle on the socket (a `dup`), sharing this one's locks and reader position.
    pub(crate) fn try_clone(&self) -> Result<StreamEnd> {
        Ok(StreamEnd { fd: self.fd.try_clone()?, locks: self.locks.clone() })
    }

    /// Whether a refused frame's payload waits to be read.
    pub(crate) fn has_pending(&self) -> bool {
        self.locks.has_pending.load(Ordering::Acquire)
    }

    /// Sends one frame; concurrent senders of this process take turns.
    pub(crate) fn send(&self, payload: &[u8]) -> Result<()> {
        let _w = self.locks.write.lock();
        send_frame(self.fd.as_fd(), payload)
    }

    /// Receives one frame's payload of at most `limit` bytes. The reader state is checked and
    /// changed under the read lock, so a header one reader took (and refused) is seen by every
    /// other.
    pub(crate) fn recv(&self, limit: usize) -> Result<Vec<u8>> {
        let locks = &*self.locks;
        let mut state = locks.read.lock();
        let size = match *state {
            ReadState::Header(n) => n,
            ReadState::Broken => {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "stream connection broken mid-message by an earlier error",
                )))
            }
            ReadState::Idle => match recv_header(self.fd.as_fd()) {
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
            locks.has_pending.store(true, Ordering::Release);
            return Err(Error::MessageTooLarge { size, limit });
        }
        locks.has_pending.store(false, Ordering::Release);
        match recv_payload(self.fd.as_fd(), size) {
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
}

/// Writes one frame: header and payload together.
pub(crate) fn send_frame(fd: BorrowedFd<'_>, payload: &[u8]) -> Result<()> {
    let mut header = [0u8; 12];
    let header: &[u8] = if payload.len() <= 0x7fff_ffff {
        header[..4].copy_from_slice(&(payload.len() as i32).to_be_bytes());
        &header[..4]
    } else {
        header[..4].copy_from_slice(&(-1i32).to_be_bytes());
        header[4..].copy_from_slice(&(payload.len() as u64).to_be_bytes());
        &header[..]
    };
    let total = header.len() + payload.len();
    let mut sent = 0;
    while sent < total {
        let parts: [&[u8]; 2] = if sent < header.len() {
            [&header[sent..], payload]
        } else {
            [&payload[sent - header.len()..], &[]]
        };
        let n = socket::send_record(fd, &parts, &[], false)?;
        if n == 0 {
            return Err(Error::Io(io::ErrorKind::WriteZero.into()));
        }
        sent += n;
    }
    Ok(())
}

/// Reads the next frame's header: the payload length, or `None` at a clean end-of-file.
pub(crate) fn recv_header(fd: BorrowedFd<'_>) -> Result<Option<u64>> {
    let mut head = [0u8; 4];
    if !read_exact(fd, &mut head, true)? {
        return Ok(None);
    }
    let n = i32::from_be_bytes(head);
    if n == -1 {
        let mut long = [0u8; 8];
        read_exact(fd, &mut long, false)?;
        return Ok(Some(u64::from_be_bytes(long)));
    }
    if n < 0 {
        return Err(Error::Codec(format!("bad message length {n} in stream header")));
    }
    Ok(Some(n as u64))
}

/// Reads a payload of `len` bytes (after [`recv_header`]). The buffer grows with the bytes
/// that arrive (at most doubling), so a header that lies about a huge length costs memory
/// only in proportion to what the peer really sends; and growth that fails is an `Err`, not
/// an abort.
pub(crate) fn recv_payload(fd: BorrowedFd<'_>, len: usize) -> Result<Vec<u8>> {
    const FIRST: usize = 64 << 10;
    let mut v: Vec<u8> = Vec::new();
    while v.len() < len {
        let step = (len - v.len()).min(v.len().max(FIRST));
        v.try_reserve_exact(step).map_err(|_| {
            Error::Io(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("no memory for a {len}-byte message"),
            ))
        })?;
        let start = v.len();
        v.resize(start + step, 0);
        read_exact(fd, &mut v[start..], false)?;
    }
    Ok(v)
}

/// Fills `buf`. A clean end-of-file before the first byte is `Ok(false)` when `eof_ok`;
/// anywhere else it is an error (Python: "got end of file during message").
fn read_exact(fd: BorrowedFd<'_>, buf: &mut [u8], eof_ok: bool) -> Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        let n = retry(|| socket::recv(fd, &mut buf[got..]))?;
        if n == 0 {
            if got == 0 && eof_ok {
                return Ok(false);
            }
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "got end of file during message",
            )));
        }
        got += n;
    }
    Ok(true)
}
