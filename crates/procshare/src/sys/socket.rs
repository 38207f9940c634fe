//! `AF_UNIX` sockets: `socketpair`, `sendmsg`/`recvmsg` with `SCM_RIGHTS`, `shutdown`.

use super::{cvt, cvt_size, retry};
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Most descriptors one record may carry (procshare sends at most one).
pub const MAX_FDS: usize = 4;

/// `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)`: two connected record sockets.
///
/// # References
/// socketpair(2), unix(7)
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as RawFd; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: socketpair succeeded; both descriptors are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `shutdown(fd, SHUT_RD | SHUT_WR)`.
///
/// # References
/// shutdown(2)
pub fn shutdown(fd: BorrowedFd<'_>, read: bool, write: bool) -> io::Result<()> {
    let how = match (read, write) {
        (true, true) => libc::SHUT_RDWR,
        (true, false) => libc::SHUT_RD,
        (false, true) => libc::SHUT_WR,
        (false, false) => return Ok(()),
    };
    // SAFETY: no pointers.
    cvt(unsafe { libc::shutdown(fd.as_raw_fd(), how) }).map(drop)
}

/// `setsockopt(fd, SOL_SOCKET, SO_SNDBUF, bytes)`.
pub fn set_send_buffer(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    let v: libc::c_int = bytes.min(i32::MAX as usize) as libc::c_int;
    // SAFETY: `v` is a live c_int and its size is passed.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&v as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Space for a control message carrying up to [`MAX_FDS`] descriptors, suitably aligned.
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

const _: () = assert!(
    // SAFETY-free const check: CMSG_SPACE is a const fn in libc.
    64 >= MAX_FDS * mem::size_of::<RawFd>() + 16 + 8
);

/// `sendmsg(fd, {iov: parts, SCM_RIGHTS: fds}, MSG_NOSIGNAL [| MSG_DONTWAIT])`: one record.
///
/// A gone peer is `EPIPE`, never `SIGPIPE`. Retries EINTR.
///
/// # References
/// sendmsg(2), unix(7), cmsg(3)
pub fn send_record(
    fd: BorrowedFd<'_>,
    parts: &[&[u8]],
    fds: &[BorrowedFd<'_>],
    nonblocking: bool,
) -> io::Result<usize> {
    if fds.len() > MAX_FDS || parts.len() > 8 {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    let mut iov: [libc::iovec; 8] =
        [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; 8];
    for (v, p) in iov.iter_mut().zip(parts) {
        v.iov_base = p.as_ptr() as *mut libc::c_void;
        v.iov_len = p.len();
    }
    let mut cmsg = CmsgBuf([0; 64]);
    // SAFETY: an all-zero msghdr is a valid empty header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = parts.len() as _;
    if !fds.is_empty() {
        let payload = mem::size_of_val(fds) as u32;
        // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic.
        let space = unsafe { libc::CMSG_SPACE(payload) } as usize;
        msg.msg_control = cmsg.0.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points to `cmsg`, large enough for one header plus MAX_FDS ints
        // (checked at compile time above), so CMSG_FIRSTHDR is non-null and in bounds.
        unsafe {
            let h = libc::CMSG_FIRSTHDR(&msg);
            (*h).cmsg_level = libc::SOL_SOCKET;
            (*h).cmsg_type = libc::SCM_RIGHTS;
            (*h).cmsg_len = libc::CMSG_LEN(payload) as _;
            let data = libc::CMSG_DATA(h) as *mut RawFd;
            for (i, f) in fds.iter().enumerate() {
                data.add(i).write_unaligned(f.as_raw_fd());
            }
        }
    }
    let flags = libc::MSG_NOSIGNAL | if nonblocking { libc::MSG_DONTWAIT } else { 0 };
    // SAFETY: `msg` points to `iov` (slices alive for the call) and `cmsg`, both alive.
    retry(|| cvt_size(unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, flags) }))
}

/// What [`recv_record`] got.
#[derive(Debug)]
pub struct Received {
    /// Bytes placed in the buffers (at most their total size).
    pub len: usize,
    /// The record's full length; larger than `len` when the buffers were too small
    /// (`MSG_TRUNC` asked for).
    pub full_len: usize,
    /// Descriptors that came with the record, close-on-exec.
    pub fds: Vec<OwnedFd>,
    /// The kernel dropped descriptors for lack of space (`MSG_CTRUNC`).
    pub fds_truncated: bool,
}

/// `recvmsg(fd, {iov: bufs}, MSG_CMSG_CLOEXEC | MSG_TRUNC [| MSG_PEEK] [| MSG_DONTWAIT])`: one
/// record. `full_len == 0 && len == 0` with no descriptors and `eof` means the peer is gone.
///
/// With `peek`, the record stays queued (descriptors in it are still duplicated into this
/// process, and closed again when the returned `fds` drop).
///
/// # References
/// recvmsg(2), unix(7), cmsg(3)
pub fn recv_record(
    fd: BorrowedFd<'_>,
    bufs: &mut [&mut [u8]],
    peek: bool,
    nonblocking: bool,
) -> io::Result<Received> {
    if bufs.len() > 8 {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    let mut iov: [libc::iovec; 8] =
        [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; 8];
    for (v, b) in iov.iter_mut().zip(bufs.iter_mut()) {
        v.iov_base = b.as_mut_ptr().cast();
        v.iov_len = b.len();
    }
    let mut cmsg = CmsgBuf([0; 64]);
    // SAFETY: an all-zero msghdr is a valid empty header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = bufs.len() as _;
    msg.msg_control = cmsg.0.as_mut_ptr().cast();
    msg.msg_controllen = cmsg.0.len() as _;
    let flags = libc::MSG_CMSG_CLOEXEC
        | libc::MSG_TRUNC
        | if peek { libc::MSG_PEEK } else { 0 }
        | if nonblocking { libc::MSG_DONTWAIT } else { 0 };
    let full_len = retry(|| {
        msg.msg_controllen = cmsg.0.len() as _;
        // SAFETY: `msg` points to `iov` (into `bufs`, alive and exclusively borrowed) and `cmsg`.
        cvt_size(unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags) })
    })?;
    let capacity: usize = bufs.iter().map(|b| b.len()).sum();
    let mut fds = Vec::new();
    // SAFETY: the kernel filled msg_control/msg_controllen; CMSG_FIRSTHDR/NXTHDR stay within it
    // and every SCM_RIGHTS payload holds whole ints, each a fresh descriptor now ours.
    unsafe {
        let mut h = libc::CMSG_FIRSTHDR(&msg);
        while !h.is_null() {
            if (*h).cmsg_level == libc::SOL_SOCKET && (*h).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(h) as *const RawFd;
                let bytes = (*h).cmsg_len as usize - (data as usize - h as usize);
                for i in 0..bytes / mem::size_of::<RawFd>() {
                    let raw = data.add(i).read_unaligned();
                    if raw >= 0 {
                        fds.push(OwnedFd::from_raw_fd(raw));
                    }
                }
            }
            h = libc::CMSG_NXTHDR(&msg, h);
        }
    }
    Ok(Received {
        len: full_len.min(capacity),
        full_len,
        fds,
        fds_truncated: msg.msg_flags & libc::MSG_CTRUNC != 0,
    })
}
