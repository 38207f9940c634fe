//! Pipes and connections — `multiprocessing.Pipe`, `Connection`, `wait`,
//! `multiprocessing.connection.Listener`/`Client`.

mod auth;
mod connection;
mod listener;
mod stream;
mod wait;

pub use connection::{pipe, pipe_simplex, Connection, DEFAULT_MAX_MESSAGE_SIZE};
pub use listener::{connect, Address, Listener};
pub use wait::wait;
