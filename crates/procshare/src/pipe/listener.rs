//! `Listener` and `connect` — `multiprocessing.connection.Listener` / `Client`.
//!
//! Connections over TCP or Unix stream sockets, with CPython's framing and authkey handshake,
//! so either side may be a Python program. Use `send_bytes`/`recv_bytes` or
//! `send_pickle`/`recv_pickle` with a Python peer; between two Rust programs, `send`/`recv`
//! work too. Messages received are data: nothing a peer sends is ever executed.
//!
//! # Handshake deadlines
//! With an authkey, every peer must finish CPython's mutual handshake within the listener's
//! [handshake timeout](Listener::set_handshake_timeout) (default
//! [`DEFAULT_HANDSHAKE_TIMEOUT`]). `accept` keeps the peers whose handshake is under way and
//! drives all of them, and the listening socket, from one `poll(2)` — on the calling thread,
//! no helper threads — so a silent peer (or one sending a byte a minute) delays nobody but
//! itself, and is dropped at its deadline. Only time spent inside `accept` counts against a
//! peer: one that connected while the program was busy elsewhere gets its full time once
//! `accept` runs again. At most 64 handshakes run at once; further peers wait in the kernel's
//! backlog, so a flood of silent peers holds a bounded number of descriptors. [`connect`] is
//! bounded the same way ([`DEFAULT_CONNECT_TIMEOUT`], or [`connect_timeout`]).
//!
//! | peer does | `accept` | `connect` |
//! |---|---|---|
//! | nothing / too slow | drops it at its deadline, keeps accepting | `Err(Timeout)` |
//! | wrong key | drops it, returns `Err(AuthenticationFailed)` (as Python; other peers' handshakes stay pending for the next `accept`) | `Err(AuthenticationFailed)` |
//! | malformed or oversized handshake message | drops it, keeps accepting | `Err(AuthenticationFailed)` |
//! | closes mid-handshake | drops it, keeps accepting | `Err(AuthenticationFailed)` |

use super::auth::{Handshake, Role};
use super::Connection;
use crate::error::{Error, Result};
use crate::sys::deadline::Deadline;
use crate::sys::{futex, poll, socket};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long an accepted peer has to finish the authkey handshake, unless
/// [`Listener::set_handshake_timeout`] says otherwise.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long [`connect`] waits for the connection and the handshake together. Longer than the
/// listener's default: a CPython `Listener` serves one client at a time, so a client may queue
/// behind others before the server even sends its challenge.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Most handshakes one `Listener` runs at once.
const MAX_PENDING: usize = 64;

/// Where a [`Listener`] listens or [`connect`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A TCP address (Python: a `(host, port)` tuple, family `AF_INET`).
    Tcp(SocketAddr),
    /// A Unix socket path (Python: a `str`, family `AF_UNIX`).
    Unix(PathBuf),
}

enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// A server socket that accepts connections (`multiprocessing.connection.Listener`).
///
/// ```
/// use procshare::{connect, Address, Listener};
/// let listener = Listener::bind(Address::Tcp("127.0.0.1:0".parse().unwrap()), Some(b"secret"))?;
/// let addr = listener.address();
/// let client = std::thread::spawn(move || -> procshare::Result<String> {
///     let conn = connect(&addr, Some(b"secret"))?;
///     conn.send_bytes(b"hello")?;
///     conn.recv::<String>()
/// });
/// let conn = listener.accept()?;
/// assert_eq!(conn.recv_bytes()?, b"hello");
/// conn.send(&"welcome")?;
/// assert_eq!(client.join().unwrap()?, "welcome");
/// # Ok::<(), procshare::Error>(())
/// ```
pub struct Listener {
    socket: Socket,
    authkey: Option<Vec<u8>>,
    handshake_timeout_ns: AtomicU64,
    /// Peers accepted from the socket whose handshake is not finished.
    pending: parking_lot::Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    shakes: Vec<Handshake>,
    /// When the last `accept` returned: time outside `accept` is not charged to the peers.
    left_at: Option<Duration>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").field("address", &self.address()).finish()
    }
}

impl Listener {
    /// Binds and listens. With `authkey`, every accepted peer must prove it holds the same key
    /// (and we prove it to them), as Python's `Listener(authkey=...)` does; `Some(b"")` is a
    /// valid key. Port 0 picks a free port: see [`Listener::address`].
    pub fn bind(addr: Address, authkey: Option<&[u8]>) -> Result<Listener> {
        let socket = match addr {
            Address::Tcp(a) => {
                let l = TcpListener::bind(a)?;
                l.set_nonblocking(true)?;
                Socket::Tcp(l)
            }
            Address::Unix(p) => {
                let l = UnixListener::bind(&p)?;
                l.set_nonblocking(true)?;
                Socket::Unix(l, p)
            }
        };
        Ok(Listener {
            socket,
            authkey: authkey.map(<[u8]>::to_vec),
            handshake_timeout_ns: AtomicU64::new(DEFAULT_HANDSHAKE_TIMEOUT.as_nanos() as u64),
            pending: parking_lot::Mutex::new(Pending::default()),
        })
    }

    /// The address actually bound (the real port after binding port 0).
    pub fn address(&self) -> Address {
        match &self.socket {
            Socket::Tcp(l) => match l.local_addr() {
                Ok(a) => Address::Tcp(a),
                Err(_) => Address::Tcp(SocketAddr::from(([0, 0, 0, 0], 0))),
            },
            Socket::Unix(_, p) => Address::Unix(p.clone()),
        }
    }

    /// How long each peer has to finish the authkey handshake (time inside `accept`).
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_nanos(self.handshake_timeout_ns.load(Ordering::Relaxed))
    }

    /// Sets how long each newly accepted peer has to finish the authkey handshake (default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`]). Peers already mid-handshake keep their deadline.
    pub fn set_handshake_timeout(&self, timeout: Duration) {
        let ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        self.handshake_timeout_ns.store(ns, Ordering::Relaxed);
    }

    /// Waits for a peer, runs the handshake if there is an authkey, and returns the connection.
    ///
    /// Handshakes of several peers run at once; the first to succeed is returned, the others
    /// carry on in the next `accept`. A peer that fails the handshake, or does not finish it
    /// within the [handshake timeout](Listener::set_handshake_timeout), is dropped and `accept`
    /// keeps waiting for another (Python would raise `AuthenticationError` from `accept`; here
    /// one bad peer must not be able to interrupt a server). Calls from several threads take
    /// turns.
    pub fn accept(&self) -> Result<Connection> {
        self.accept_until(Deadline::NEVER)
    }

    /// [`accept`](Listener::accept) that gives up with `Err(Timeout)` once `timeout` passed
    /// without a peer finishing its handshake (pending handshakes carry on in the next call).
    /// What a binding that must let signals in between waits calls, in slices.
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Connection> {
        self.accept_until(Deadline::after(timeout))
    }

    fn accept_until(&self, limit: Deadline) -> Result<Connection> {
        let mut p = self.pending.lock();
        if let Some(left) = p.left_at.take() {
            let away = futex::now().saturating_sub(left);
            for h in &mut p.shakes {
                h.deadline = h.deadline.delayed(away);
            }
        }
        let r = self.accept_locked(&mut p, limit);
        p.left_at = Some(futex::now());
        r
    }

    fn accept_locked(&self, p: &mut Pending, limit: Deadline) -> Result<Connection> {
        loop {
            let now = futex::now();
            let mut i = 0;
            while i < p.shakes.len() {
                match p.shakes[i].advance() {
                    Ok(true) => {
                        let fd = p.shakes.swap_remove(i).into_fd();
                        return Ok(Connection::from_stream(fd));
                    }
                    Ok(false) if !p.shakes[i].deadline.expired_at(now) => i += 1,
                    // A peer with the wrong key: as Python's `accept`, say so (the others'
                    // handshakes stay pending for the next call).
                    Err(_) if p.shakes[i].refused() => {
                        drop(p.shakes.swap_remove(i));
                        return Err(Error::AuthenticationFailed);
                    }
                    // Broke the protocol, closed or ran out of time: this peer only is dropped.
                    _ => drop(p.shakes.swap_remove(i)),
                }
            }
            // After the handshakes had their look: a zero timeout still finishes a ready one.
            if limit.expired_at(now) {
                return Err(Error::Timeout);
            }
            let listening = p.shakes.len() < MAX_PENDING;
            let mut fds: Vec<(BorrowedFd<'_>, libc::c_short)> = Vec::new();
            if listening {
                fds.push((self.listening_fd(), poll::POLLIN));
            }
            fds.extend(p.shakes.iter().map(|h| (h.fd(), h.events())));
            let deadline =
                p.shakes.iter().map(|h| h.deadline).min().unwrap_or(Deadline::NEVER).min(limit);
            let revents = poll::poll(&fds, deadline)?;
            if !listening || revents[0] == 0 {
                continue;
            }
            while p.shakes.len() < MAX_PENDING {
                let fd = match self.accept_one() {
                    Ok(fd) => fd,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // The peer gave up between connect and accept: not our error.
                    Err(e) if is_transient_accept_error(&e) => continue,
                    Err(e) => return Err(e.into()),
                };
                let Some(key) = &self.authkey else {
                    return Ok(Connection::from_stream(fd));
                };
                let deadline = Deadline::after(self.handshake_timeout());
                p.shakes.push(Handshake::new(fd, key, Role::Server, deadline));
            }
        }
    }

    fn listening_fd(&self) -> BorrowedFd<'_> {
        match &self.socket {
            Socket::Tcp(l) => l.as_fd(),
            Socket::Unix(l, _) => l.as_fd(),
        }
    }

    /// One `accept(2)` on the non-blocking listening socket. The new socket is blocking (Linux
    /// sockets do not inherit `O_NONBLOCK`); the handshake reads it with `MSG_DONTWAIT`.
    fn accept_one(&self) -> io::Result<OwnedFd> {
        Ok(match &self.socket {
            Socket::Tcp(l) => {
                let (s, _) = l.accept()?;
                s.set_nonblocking(false)?;
                s.set_nodelay(true)?;
                s.into()
            }
            Socket::Unix(l, _) => {
                let (s, _) = l.accept()?;
                s.set_nonblocking(false)?;
                s.into()
            }
        })
    }
}

/// `accept(2)` errors that concern one peer, not the listener (see accept(2), "Error
/// handling": Linux passes pending network errors of the new socket to `accept`).
fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNABORTED)
            | Some(libc::EPROTO)
            | Some(libc::ENETDOWN)
            | Some(libc::ENOPROTOOPT)
            | Some(libc::EHOSTDOWN)
            | Some(libc::ENONET)
            | Some(libc::EHOSTUNREACH)
            | Some(libc::EOPNOTSUPP)
            | Some(libc::ENETUNREACH)
            | Some(libc::EINTR)
    )
}

impl Drop for Listener {
    fn drop(&mut self) {
        // As Python does: a Unix listener removes its socket file when closed.
        if let Socket::Unix(_, path) = &self.socket {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Connects to a [`Listener`] (ours or CPython's) — `multiprocessing.connection.Client`. With
/// `authkey`, runs the mutual handshake. Gives up with `Err(Timeout)` when connecting and the
/// handshake together take longer than [`DEFAULT_CONNECT_TIMEOUT`] (a server that accepts but
/// never speaks); see [`connect_timeout`] to choose the bound.
pub fn connect(addr: &Address, authkey: Option<&[u8]>) -> Result<Connection> {
    connect_timeout(addr, authkey, DEFAULT_CONNECT_TIMEOUT)
}

/// [`connect`] with a bound of `timeout` on connecting and the handshake together.
pub fn connect_timeout(
    addr: &Address,
    authkey: Option<&[u8]>,
    timeout: Duration,
) -> Result<Connection> {
    let deadline = Deadline::after(timeout);
    let timed_out = |e: io::Error| match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::Timeout,
        _ => Error::Io(e),
    };
    let fd: OwnedFd = match addr {
        Address::Tcp(a) => {
            if timeout.is_zero() {
                return Err(Error::Timeout);
            }
            let s = TcpStream::connect_timeout(a, timeout).map_err(timed_out)?;
            s.set_nodelay(true)?;
            s.into()
        }
        Address::Unix(p) => socket::connect_unix(p, timeout).map_err(timed_out)?,
    };
    let fd = match authkey {
        Some(key) => Handshake::new(fd, key, Role::Client, deadline).run()?,
        None => fd,
    };
    Ok(Connection::from_stream(fd))
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Self {
        Address::Tcp(a)
    }
}

impl From<PathBuf> for Address {
    fn from(p: PathBuf) -> Self {
        Address::Unix(p)
    }
}
