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

use crate::error::{Error, Result};
use crate::sys::{retry, socket};
use std::io;
use std::os::fd::BorrowedFd;

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
