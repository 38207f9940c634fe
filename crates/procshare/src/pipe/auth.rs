//! CPython's authkey handshake (`multiprocessing.connection.deliver_challenge` /
//! `answer_challenge`), both the `{digest}`-prefixed protocol of Python 3.12+ and the legacy
//! 20-byte HMAC-MD5 one of 3.11 and older. MACs are compared in constant time.
//!
//! The handshake is a non-blocking state machine ([`Handshake`]) with a deadline: a peer that
//! sends nothing, or a byte a minute, costs the other side at most that deadline, and a
//! `Listener` drives the handshakes of all its pending peers at once (see `listener.rs`).

use crate::error::{Error, Result};
use crate::sys::deadline::Deadline;
use crate::sys::{poll, retry, socket};
use hmac::{Mac, SimpleHmac};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

const CHALLENGE: &[u8] = b"#CHALLENGE#";
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";
/// Python reads handshake messages with `recv_bytes(256)`.
const MAX_HANDSHAKE: usize = 256;
const NONCE_LEN: usize = 40;

fn hmac_of(digest: &str, key: &[u8], msg: &[u8]) -> Option<Vec<u8>> {
    fn mac<D>(key: &[u8], msg: &[u8]) -> Vec<u8>
    where
        D: hmac::digest::Digest + hmac::digest::core_api::BlockSizeUser,
    {
        let mut m = <SimpleHmac<D> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        m.update(msg);
        m.finalize().into_bytes().to_vec()
    }
    Some(match digest {
        "md5" => mac::<md5::Md5>(key, msg),
        "sha256" => mac::<sha2::Sha256>(key, msg),
        "sha384" => mac::<sha2::Sha384>(key, msg),
        _ => return None,
    })
}

/// Splits `{name}rest` into `("name", rest)`.
fn digest_prefix(m: &[u8]) -> Option<(&str, &[u8])> {
    if m.first() != Some(&b'{') {
        return None;
    }
    let end = m.iter().take(20).position(|&b| b == b'}')?;
    let name = std::str::from_utf8(&m[1..end]).ok()?;
    Some((name, &m[end + 1..]))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Which half of the mutual handshake runs first: CPython's `Listener.accept` delivers a
/// challenge and then answers one; `Client` does the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Server,
    Client,
}

#[derive(Debug, Clone, Copy)]
enum Part {
    /// `deliver_challenge`: send a challenge, check the answer, say welcome or failure.
    Deliver,
    /// `answer_challenge`: answer the peer's challenge and expect a welcome.
    Answer,
}

#[derive(Debug)]
enum State {
    /// Between parts: start the next one, or finish once the output is flushed.
    Idle,
    /// Deliver: the challenge over `message` is queued; waiting for the peer's MAC.
    AwaitResponse { message: Vec<u8> },
    /// Answer: waiting for the peer's challenge.
    AwaitChallenge,
    /// Answer: our MAC is queued; waiting for `#WELCOME#`.
    AwaitVerdict,
}

/// One connection's authkey handshake as a non-blocking state machine, so that one event loop
/// (`Listener::accept`) can drive many at once and a silent or slow peer delays only itself.
///
/// It reads exactly the handshake's frames, never a byte past them: whatever the peer sends
/// after its last handshake message stays in the socket for the `Connection`. Every frame is
/// at most [`MAX_HANDSHAKE`] bytes, so a handshake holds at most a few hundred bytes of memory.
#[derive(Debug)]
pub(crate) struct Handshake {
    fd: OwnedFd,
    key: Vec<u8>,
    parts: [Part; 2],
    next_part: usize,
    state: State,
    /// Frames queued for the peer, and how much of them has gone out.
    out: Vec<u8>,
    sent: usize,
    head: [u8; 4],
    head_got: usize,
    body: Vec<u8>,
    body_len: usize,
    /// When the peer has taken too long.
    pub(crate) deadline: Deadline,
    /// The peer answered our challenge with a wrong MAC: it holds another key.
    refused: bool,
}

impl Handshake {
    pub(crate) fn new(fd: OwnedFd, key: &[u8], role: Role, deadline: Deadline) -> Handshake {
        let parts = match role {
            Role::Server => [Part::Deliver, Part::Answer],
            Role::Client => [Part::Answer, Part::Deliver],
        };
        Handshake {
            fd,
            key: key.to_vec(),
            parts,
            next_part: 0,
            state: State::Idle,
            out: Vec::new(),
            sent: 0,
            head: [0; 4],
            head_got: 0,
            body: Vec::new(),
            body_len: 0,
            deadline,
            refused: false,
        }
    }

    /// Whether the handshake failed because the peer proved to hold a different key (as
    /// opposed to going silent, closing, or breaking the protocol).
    pub(crate) fn refused(&self) -> bool {
        self.refused
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// What to wait for before [`advance`](Self::advance) can make progress.
    pub(crate) fn events(&self) -> libc::c_short {
        if self.sent < self.out.len() {
            poll::POLLOUT
        } else {
            poll::POLLIN
        }
    }

    /// The socket, once [`advance`](Self::advance) said the handshake is done.
    pub(crate) fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Does every step possible without blocking. `Ok(true)`: both parts succeeded and all our
    /// messages are out. `Ok(false)`: waiting on the peer (see [`events`](Self::events)).
    /// `Err`: the peer failed or broke the protocol; the connection is of no further use.
    pub(crate) fn advance(&mut self) -> Result<bool> {
        loop {
            if !self.flush()? {
                return Ok(false);
            }
            match self.state {
                State::Idle => {
                    let Some(&part) = self.parts.get(self.next_part) else {
                        return Ok(true);
                    };
                    self.next_part += 1;
                    match part {
                        Part::Deliver => {
                            let mut nonce = [0u8; NONCE_LEN];
                            getrandom::getrandom(&mut nonce)
                                .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
                            let mut message = b"{sha256}".to_vec();
                            message.extend_from_slice(&nonce);
                            self.queue(&[CHALLENGE, &message]);
                            self.state = State::AwaitResponse { message };
                        }
                        Part::Answer => self.state = State::AwaitChallenge,
                    }
                }
                _ => {
                    if !self.read_frame()? {
                        return Ok(false);
                    }
                    let frame = std::mem::take(&mut self.body);
                    self.on_frame(&frame)?;
                }
            }
        }
    }

    fn on_frame(&mut self, frame: &[u8]) -> Result<()> {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::AwaitResponse { message } => {
                if verify(&self.key, &message, frame) {
                    self.queue(&[WELCOME]);
                } else {
                    // As Python does: tell the peer, then give up on it. One try: a peer that
                    // does not read gets no more of our time.
                    self.queue(&[FAILURE]);
                    let _ = self.flush();
                    self.refused = true;
                    return Err(Error::AuthenticationFailed);
                }
            }
            State::AwaitChallenge => {
                let response = answer(&self.key, frame)?;
                self.queue(&[&response]);
                self.state = State::AwaitVerdict;
            }
            State::AwaitVerdict => {
                if frame != WELCOME {
                    return Err(Error::AuthenticationFailed);
                }
            }
            State::Idle => unreachable!("frames are read only while awaiting one"),
        }
        Ok(())
    }

    /// Queues one frame (CPython's 4-byte big-endian length header, then the parts).
    fn queue(&mut self, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        debug_assert!(len <= MAX_HANDSHAKE);
        self.out.extend_from_slice(&(len as i32).to_be_bytes());
        for p in parts {
            self.out.extend_from_slice(p);
        }
    }

    /// Sends what is queued; `Ok(false)` if the socket is full.
    fn flush(&mut self) -> Result<bool> {
        while self.sent < self.out.len() {
            match socket::send_record(self.fd.as_fd(), &[&self.out[self.sent..]], &[], true) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        self.out.clear();
        self.sent = 0;
        Ok(true)
    }

    /// Reads at most the rest of the current frame; `Ok(true)` once `body` holds all of it.
    fn read_frame(&mut self) -> Result<bool> {
        while self.head_got < 4 {
            let n = match recv(self.fd.as_fd(), &mut self.head[self.head_got..])? {
                Some(n) => n,
                None => return Ok(false),
            };
            self.head_got += n;
            if self.head_got == 4 {
                // Python reads handshake messages with `recv_bytes(256)`: a longer (or
                // negative, or 8-byte-header) length is a protocol error, and nothing is
                // allocated for it.
                let len = i32::from_be_bytes(self.head);
                self.body_len = usize::try_from(len)
                    .ok()
                    .filter(|&l| l <= MAX_HANDSHAKE)
                    .ok_or(Error::AuthenticationFailed)?;
                self.body = Vec::with_capacity(self.body_len);
            }
        }
        let mut chunk = [0u8; MAX_HANDSHAKE];
        while self.body.len() < self.body_len {
            let want = self.body_len - self.body.len();
            let n = match recv(self.fd.as_fd(), &mut chunk[..want])? {
                Some(n) => n,
                None => return Ok(false),
            };
            self.body.extend_from_slice(&chunk[..n]);
        }
        self.head_got = 0;
        Ok(true)
    }

    /// Runs the handshake to its end on this thread, giving up with `Err(Timeout)` at the
    /// deadline (for `connect`).
    pub(crate) fn run(mut self) -> Result<OwnedFd> {
        loop {
            if self.advance()? {
                return Ok(self.fd);
            }
            if self.deadline.expired() {
                return Err(Error::Timeout);
            }
            poll::poll(&[(self.fd.as_fd(), self.events())], self.deadline)?;
        }
    }
}

/// One non-blocking read: `Ok(None)` when nothing is there yet. A peer that closes mid-handshake
/// fails it.
fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Option<usize>> {
    match retry(|| socket::recv_nonblocking(fd, buf)) {
        Ok(0) => Err(Error::AuthenticationFailed),
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Server side: is `response` a valid MAC of `message` under `key`?
fn verify(key: &[u8], message: &[u8], response: &[u8]) -> bool {
    if response.len() == 16 {
        // Legacy (Python <= 3.11) peers answer with a bare HMAC-MD5 of the whole message.
        hmac_of("md5", key, message).is_some_and(|m| constant_time_eq(&m, response))
    } else {
        match digest_prefix(response) {
            Some((name, mac)) => {
                hmac_of(name, key, message).is_some_and(|m| constant_time_eq(&m, mac))
            }
            None => false,
        }
    }
}

/// Client side: the response to the peer's challenge frame `m`.
fn answer(key: &[u8], m: &[u8]) -> Result<Vec<u8>> {
    let Some(message) = m.strip_prefix(CHALLENGE) else {
        return Err(Error::AuthenticationFailed);
    };
    if message.len() < 20 {
        return Err(Error::AuthenticationFailed);
    }
    if message.len() == 20 {
        return hmac_of("md5", key, message).ok_or(Error::AuthenticationFailed);
    }
    let (name, _) = digest_prefix(message).ok_or(Error::AuthenticationFailed)?;
    let mac = hmac_of(name, key, message).ok_or(Error::AuthenticationFailed)?;
    let mut r = format!("{{{name}}}").into_bytes();
    r.extend_from_slice(&mac);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_md5_matches_python() {
        // python3 -c "import hmac;print(hmac.new(b'key', b'The quick brown fox', 'md5').hexdigest())"
        let m = hmac_of("md5", b"key", b"The quick brown fox").unwrap();
        let hex: String = m.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "d006bc60c92ff6e54f615474fe835e02");
    }

    #[test]
    fn prefix_parsing() {
        assert_eq!(digest_prefix(b"{sha256}abc"), Some(("sha256", &b"abc"[..])));
        assert_eq!(digest_prefix(b"sha256}abc"), None);
        assert_eq!(digest_prefix(b"{sha256abc"), None);
    }
}
