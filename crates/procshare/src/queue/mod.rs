//! Queues between processes — `multiprocessing.Queue`, `JoinableQueue`, `SimpleQueue` — on a
//! crash-safe shared-memory ring.
//!
//! * `ring.rs`: the shared memory layout and the put/get protocol (with its crash table);
//! * `lock.rs`: the ring's two internal locks, taken over when their holder dies;
//! * `queue.rs`, `joinable.rs`, `simple.rs`: the typed handles.

mod joinable;
mod lock;
#[allow(clippy::module_inception)]
mod queue;
mod ring;
mod simple;

pub use joinable::JoinableQueue;
pub use queue::Queue;
pub use simple::SimpleQueue;
