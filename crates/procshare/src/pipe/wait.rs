//! `wait`: block until any of several connections is ready
//! (`multiprocessing.connection.wait`).

use super::Connection;
use crate::error::{Error, Result};
use crate::sys::deadline::Deadline;
use crate::sys::poll;
use std::time::Duration;

/// Waits until at least one of `conns` has a message or end-of-file, or `timeout` passes
/// (`None`: forever), and returns the indices of every ready connection, in order. An empty
/// result means the timeout passed.
///
/// ```
/// use std::time::Duration;
/// let (a, b) = procshare::pipe()?;
/// let (c, d) = procshare::pipe()?;
/// d.send(&1u8)?;
/// assert_eq!(procshare::wait(&[&a, &c], Some(Duration::ZERO))?, vec![1]);
/// # drop(b);
/// # Ok::<(), procshare::Error>(())
/// ```
pub fn wait(conns: &[&Connection], timeout: Option<Duration>) -> Result<Vec<usize>> {
    if let Some(i) = conns.iter().position(|c| !c.readable()) {
        return Err(Error::invalid(format!(
            "connection {i} is write-only; wait needs readable ends"
        )));
    }
    let pending: Vec<usize> =
        conns.iter().enumerate().filter(|(_, c)| c.has_pending()).map(|(i, _)| i).collect();
    let deadline =
        if pending.is_empty() { Deadline::from_timeout(timeout) } else { Deadline::now() };
    let fds: Vec<_> = conns.iter().map(|c| (c.raw_fd(), poll::POLLIN)).collect();
    let revents = poll::poll(&fds, deadline)?;
    Ok(revents
        .iter()
        .enumerate()
        .filter(|(i, r)| {
            pending.contains(i) || **r & (poll::POLLIN | poll::POLLHUP | poll::POLLERR) != 0
        })
        .map(|(i, _)| i)
        .collect())
}
