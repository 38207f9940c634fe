//! `Error` and `Result`: one error type for the whole crate, mirroring the exceptions Python's
//! `multiprocessing` and `queue` modules raise.

use std::io;

/// `Result<T, procshare::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in procshare.
///
/// Each variant names the Python exception it stands for, so code ported from Python can map
/// `except queue.Empty:` to `Err(Error::Empty)` and so on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `get_nowait` / `get_timeout` found nothing (`queue.Empty`).
    #[error("the queue is empty")]
    Empty,
    /// `put_nowait` / `put_timeout` found no room (`queue.Full`).
    #[error("the queue is full")]
    Full,
    /// A `*_timeout` call other than a queue get/put ran out of time.
    #[error("the operation timed out")]
    Timeout,
    /// The queue, connection or listener was closed by this side.
    #[error("the handle is closed")]
    Closed,
    /// `recv` on a connection whose peer is gone and nothing is left (`EOFError`).
    #[error("end of file: the peer closed the connection and nothing is left to receive")]
    Eof,
    /// A thread queue was shut down (`queue.ShutDown`).
    #[error("the queue has been shut down")]
    ShutDown,
    /// `task_done()` was called more times than items were put (`ValueError`).
    #[error("task_done() called too many times")]
    TaskDoneTooManyTimes,
    /// A message is larger than the limit in force; nothing was sent or allocated.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes (raise it with set_max_message_size)")]
    MessageTooLarge {
        /// The size of the message.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// `recv_bytes_into` was handed a buffer too small; the whole message is returned here.
    #[error("buffer too short for a message of {} bytes (the message is in the error)", .0.len())]
    BufferTooShort(Vec<u8>),
    /// The authkey handshake with a `Listener` or `connect` peer failed (`AuthenticationError`).
    #[error("authentication failed: the peer does not hold the same authkey")]
    AuthenticationFailed,
    /// Named shared memory exists already (`FileExistsError`).
    #[error("shared memory or queue {0:?} already exists")]
    AlreadyExists(String),
    /// Named shared memory does not exist (`FileNotFoundError`).
    #[error("shared memory or queue {0:?} does not exist")]
    NotFound(String),
    /// A bad size, name, item or other argument (`ValueError`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An object could not be encoded or decoded.
    #[error("codec error: {0}")]
    Codec(String),
    /// The peer process died in a way that left an operation half done.
    #[error("the peer process died in the middle of the operation")]
    PeerDied,
    /// A [`Pool`](crate::Pool) task failed: it panicked, its worker died, it timed out, was
    /// cancelled, could not be encoded, or the pool was terminated first.
    #[error("task failed: {0}")]
    Task(#[from] crate::pool::TaskError),
    /// An operating-system error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Error {
    /// An `InvalidArgument` with the given message.
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }
}
