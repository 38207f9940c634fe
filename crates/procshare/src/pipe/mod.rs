//! Pipes and connections — `multiprocessing.Pipe`, `Connection`, `wait`,
//! `multiprocessing.connection.Listener`/`Client`.

mod connection;
mod wait;

pub use connection::{pipe, pipe_simplex, Connection};
pub use wait::wait;
