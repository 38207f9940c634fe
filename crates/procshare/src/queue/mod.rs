//! Queues between processes — `multiprocessing.Queue`, `JoinableQueue`, `SimpleQueue` — on a
//! crash-safe shared-memory ring.
//!
//! * `ring.rs`: the shared memory layout and the put/get protocol (with its crash table); its
//!   two locks are `sync::raw::RawLock`s and its sleeps `sync::wait::WaitWord`s, the crate's one
//!   owner-recovering lock and one waiting mechanism;
//! * `queue.rs`, `joinable.rs`, `simple.rs`: the typed handles.

mod joinable;
#[allow(clippy::module_inception)]
mod queue;
pub(crate) mod ring;
mod simple;

pub use joinable::JoinableQueue;
pub use queue::Queue;
pub use simple::SimpleQueue;
