//! `poll(2)` with deadlines.

use super::deadline::Deadline;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Readiness asked of and reported for one descriptor.
pub use libc::{POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDHUP};

/// `poll(fds, n, timeout)` until something is ready or `deadline` passes; retries EINTR. Returns each descriptor's `revents`.
///
/// # References
/// poll(2)
pub fn poll(
    fds: &[(BorrowedFd<'_>, libc::c_short)],
    deadline: Deadline,
) -> io::Result<Vec<libc::c_short>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|(fd, events)| libc::pollfd { fd: fd.as_raw_fd(), events: *events, revents: 0 })
        .collect();
    loop {
        let timeout_ms = deadline.poll_millis();
        // SAFETY: `pfds` is a live, correctly sized array of pollfd.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r > 0 || timeout_ms == 0 || deadline.expired() {
            return Ok(pfds.iter().map(|p| p.revents).collect());
        }
    }
}
