//! `Listener` and `connect` — `multiprocessing.connection.Listener` / `Client`.
//!
//! Connections over TCP or Unix stream sockets, with CPython's framing and authkey handshake,
//! so either side may be a Python program. Use `send_bytes`/`recv_bytes` or
//! `send_pickle`/`recv_pickle` with a Python peer; between two Rust programs, `send`/`recv`
//! work too. Messages received are data: nothing a peer sends is ever executed.

use super::auth;
use super::Connection;
use crate::error::Result;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

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
            Address::Tcp(a) => Socket::Tcp(TcpListener::bind(a)?),
            Address::Unix(p) => Socket::Unix(UnixListener::bind(&p)?, p),
        };
        Ok(Listener { socket, authkey: authkey.map(<[u8]>::to_vec) })
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

    /// Waits for a peer, runs the handshake if there is an authkey, and returns the connection.
    /// A peer that fails the handshake is refused with `Err(AuthenticationFailed)`; the listener
    /// keeps listening.
    pub fn accept(&self) -> Result<Connection> {
        let fd: OwnedFd = match &self.socket {
            Socket::Tcp(l) => {
                let (s, _) = l.accept()?;
                s.set_nodelay(true)?;
                s.into()
            }
            Socket::Unix(l, _) => l.accept()?.0.into(),
        };
        let conn = Connection::from_stream(fd);
        if let Some(key) = &self.authkey {
            auth::deliver_challenge(&conn, key)?;
            auth::answer_challenge(&conn, key)?;
        }
        Ok(conn)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // As Python does: a Unix listener removes its socket file when closed.
        if let Socket::Unix(_, path) = &self.socket {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Connects to a [`Listener`] (ours or Python's) — `multiprocessing.connection.Client`.
pub fn connect(addr: &Address, authkey: Option<&[u8]>) -> Result<Connection> {
    let fd: OwnedFd = match addr {
        Address::Tcp(a) => {
            let s = TcpStream::connect(a)?;
            s.set_nodelay(true)?;
            s.into()
        }
        Address::Unix(p) => UnixStream::connect(p)?.into(),
    };
    let conn = Connection::from_stream(fd);
    if let Some(key) = authkey {
        auth::answer_challenge(&conn, key)?;
        auth::deliver_challenge(&conn, key)?;
    }
    Ok(conn)
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
