//! Pipes and connections — `multiprocessing.Pipe`, `Connection`, `wait`,
//! `multiprocessing.connection.Listener`/`Client`.

pub(crate) mod auth;
mod connection;
mod listener;
pub(crate) mod ring;
mod stream;
mod wait;

pub use connection::{pipe, pipe_simplex, Connection, DEFAULT_MAX_MESSAGE_SIZE};
pub use listener::{
    connect, connect_timeout, Address, Listener, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT,
};
pub use wait::wait;
