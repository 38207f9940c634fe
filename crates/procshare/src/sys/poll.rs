//! `poll(2)` with deadlines.

use super::futex::now;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// Readiness asked of and reported for one descriptor.
pub use libc::{POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDHUP};

/// `poll(fds, n, timeout)` until something is ready or the absolute monotonic `deadline`
/// (`None`: forever) passes; retries EINTR. Returns each descriptor's `revents`.
///
/// # References
/// poll(2)
pub fn poll(
    fds: &[(BorrowedFd<'_>, libc::c_short)],
    deadline: Option<Duration>,
) -> io::Result<Vec<libc::c_short>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|(fd, events)| libc::pollfd { fd: fd.as_raw_fd(), events: *events, revents: 0 })
        .collect();
    loop {
        let timeout_ms: libc::c_int = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_sub(now());
                // Round up so a wait never returns early and spins.
                let ms = left.as_nanos().div_ceil(1_000_000);
                ms.min(i32::MAX as u128) as libc::c_int
            }
        };
        // SAFETY: `pfds` is a live, correctly sized array of pollfd.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r > 0 || timeout_ms == 0 || deadline.is_some_and(|d| now() >= d) {
            return Ok(pfds.iter().map(|p| p.revents).collect());
        }
    }
}
