//! procshare's `Queue` and `JoinableQueue` on a Redis server — `multiprocessing`'s queues across
//! machines, with the same methods, errors and promises as the local ones.

mod core;
mod queue;
mod scripts;

pub use procshare::{Error, Format, Result};
pub use queue::{JoinableQueue, Options, Queue};
