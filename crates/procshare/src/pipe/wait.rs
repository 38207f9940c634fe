//! `wait`: block until any of several connections is ready
//! (`multiprocessing.connection.wait`), over both transports at once.
//!
//! One poll(2) covers them all: a stream connection's socket, and for a pipe its liveness
//! socket (HUP: end-of-file; readable: the doorbell). Pipe ends are armed (counted as
//! pollers, so writers ring the doorbell) before the last look at their rings, and disarmed
//! after the poll (see `pipe/ring.rs`). Pipes sleep in slices, after each of which a dead
//! writer's record at a ring's head is skipped.

use super::connection::{Connection, Transport};
use crate::crash::crash_point;
use crate::error::{Error, Result};
use crate::sys::deadline::Deadline;
use crate::sys::poll;
use std::sync::atomic::{fence, Ordering};
use std::time::Duration;

/// A pipe's poll(2) sleeps at most this long before looking for dead writers.
const SLICE: Duration = Duration::from_millis(20);

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
    wait_until(conns, Deadline::from_timeout(timeout))
}

/// Disarms the armed pipe ends, also on an early return.
struct Armed<'a>(&'a [&'a Connection]);

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        for c in self.0 {
            if let Transport::Ring(r) = c.transport() {
                r.disarm();
            }
        }
    }
}

/// [`wait`] for readable connections, until `deadline`.
pub(crate) fn wait_until(conns: &[&Connection], deadline: Deadline) -> Result<Vec<usize>> {
    let any_ring = conns.iter().any(|c| matches!(c.transport(), Transport::Ring(_)));
    loop {
        let armed = Armed(conns);
        for c in conns {
            if let Transport::Ring(r) = c.transport() {
                r.arm();
            }
        }
        // SeqCst: the Dekker pair of the writers' commit-then-look (see `pipe/ring.rs`).
        fence(Ordering::SeqCst);
        crash_point!("pipe.poll_armed");
        let ready_now: Vec<bool> = conns
            .iter()
            .map(|c| match c.transport() {
                Transport::Ring(r) => r.ready_now(),
                Transport::Stream(s) => s.has_pending(),
            })
            .collect();
        let mut fds = Vec::new();
        let mut spans = Vec::with_capacity(conns.len());
        for c in conns {
            let start = fds.len();
            match c.transport() {
                Transport::Ring(r) => r.poll_fds(&mut fds),
                Transport::Stream(s) => fds.push((s.fd(), poll::POLLIN)),
            }
            spans.push(start..fds.len());
        }
        let sleep = if ready_now.contains(&true) {
            Deadline::now()
        } else if any_ring {
            deadline.slice(SLICE)
        } else {
            deadline
        };
        let revents = poll::poll(&fds, sleep)?;
        drop(armed);
        let mut ready = Vec::new();
        for (i, c) in conns.iter().enumerate() {
            let rev = &revents[spans[i].clone()];
            let now = match c.transport() {
                Transport::Ring(r) => r.after_poll(rev)? || ready_now[i],
                Transport::Stream(_) => {
                    ready_now[i] || rev[0] & (poll::POLLIN | poll::POLLHUP | poll::POLLERR) != 0
                }
            };
            if now {
                ready.push(i);
            }
        }
        if !ready.is_empty() || deadline.expired() {
            return Ok(ready);
        }
        for c in conns {
            if let Transport::Ring(r) = c.transport() {
                r.idle()?;
            }
        }
    }
}
