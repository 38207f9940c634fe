//! Sockets: `socketpair`, `sendmsg`/`recvmsg` with `SCM_RIGHTS`, `shutdown`, a Unix stream
//! `connect` with a deadline, and the non-blocking stream reads of the authkey handshake.

use super::{cvt, cvt_size, retry};
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

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
    })
    .map_err(|e| super::limits::descriptor(e, "a pipe's socket pair"))?;
    // SAFETY: socketpair succeeded; both descriptors are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
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
    let mut iov: [libc::iovec; 8] = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; 8];
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

/// `recvmsg(fd, {iov: buf, control}, MSG_CMSG_CLOEXEC)`: one record and the descriptors it
/// carries (`SCM_RIGHTS`, at most [`MAX_FDS`]), each close-on-exec. Blocks until a record
/// comes; 0 bytes and no descriptors at end-of-file. Descriptors beyond [`MAX_FDS`] (the kernel
/// truncates, `MSG_CTRUNC`) are closed by the kernel and make the call `InvalidData`, as does a
/// record longer than `buf`. Retries EINTR.
///
/// # References
/// recvmsg(2), unix(7), cmsg(3)
pub fn recv_record(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut cmsg = CmsgBuf([0; 64]);
    // SAFETY: an all-zero msghdr is a valid empty header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.0.as_mut_ptr().cast();
    msg.msg_controllen = cmsg.0.len() as _;
    let n = retry(|| {
        // SAFETY: `msg` points to `iov` (over the live `buf`) and `cmsg`, both alive for the
        // call, with their lengths.
        cvt_size(unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) })
    })?;
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `msg_control` (within `msg_controllen`); CMSG_FIRSTHDR and
    // CMSG_NXTHDR stay inside it, and an SCM_RIGHTS header's data holds whole ints.
    unsafe {
        let mut h = libc::CMSG_FIRSTHDR(&msg);
        while !h.is_null() {
            if (*h).cmsg_level == libc::SOL_SOCKET && (*h).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(h) as *const RawFd;
                let bytes = (*h).cmsg_len as usize - (data as usize - h as usize);
                for i in 0..bytes / mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            h = libc::CMSG_NXTHDR(&msg, h);
        }
    }
    if msg.msg_flags & (libc::MSG_CTRUNC | libc::MSG_TRUNC) != 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "record or descriptors truncated"));
    }
    Ok((n, fds))
}

/// `recv(fd, buf, len, 0)`: bytes from a stream socket; 0 at end-of-file.
///
/// # References
/// recv(2)
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    recv_flags(fd, buf, 0)
}

/// `recv(fd, buf, len, MSG_DONTWAIT)`: like [`recv`], but `WouldBlock` instead of waiting.
///
/// # References
/// recv(2)
pub fn recv_nonblocking(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    recv_flags(fd, buf, libc::MSG_DONTWAIT)
}

fn recv_flags(fd: BorrowedFd<'_>, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: `buf` is a live mutable slice; the kernel writes at most `buf.len()` bytes.
    cvt_size(unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) })
}

/// `setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, t)`; `Duration::ZERO` means no timeout.
fn set_send_timeout(fd: BorrowedFd<'_>, t: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_usec: t.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: `tv` is a live timeval and its size is passed.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&tv as *const libc::timeval).cast(),
            mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)` + `connect(path)`, giving up with `TimedOut`
/// after `timeout` (a listener whose backlog is full makes `connect` wait; `SO_SNDTIMEO`
/// bounds that wait, see unix(7)). A path starting with a NUL byte is an abstract name.
/// `timeout` is rounded up to a microsecond, so a zero timeout cannot mean "wait forever".
///
/// # References
/// socket(2), connect(2), unix(7)
pub fn connect_unix(path: &Path, timeout: Duration) -> io::Result<OwnedFd> {
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: an all-zero sockaddr_un is valid (AF_UNSPEC, empty path).
    let mut addr: libc::sockaddr_un = unsafe { mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let abstract_name = bytes.first() == Some(&0);
    // A filesystem path needs its NUL terminator to fit; an abstract name is length-counted.
    if bytes.is_empty() || bytes.len() + usize::from(!abstract_name) > addr.sun_path.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "unix socket path too long"));
    }
    if !abstract_name && bytes.contains(&0) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "unix socket path contains NUL"));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = mem::size_of::<libc::sa_family_t>() + bytes.len() + usize::from(!abstract_name);
    // SAFETY: integer arguments only, no memory lent to the kernel: nothing to uphold.
    let raw =
        cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: socket succeeded; the descriptor is new and ours.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    set_send_timeout(fd.as_fd(), timeout.max(Duration::from_micros(1)))?;
    let r = retry(|| {
        // SAFETY: `addr` is a live sockaddr_un and `len` is within its size (checked above).
        cvt(unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len as libc::socklen_t,
            )
        })
    });
    match r {
        Ok(_) => {}
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINPROGRESS)) => {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "unix socket connect timed out"));
        }
        Err(e) => return Err(e),
    }
    set_send_timeout(fd.as_fd(), Duration::ZERO)?;
    Ok(fd)
}
