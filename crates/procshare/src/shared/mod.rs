//! The bottom layer every shared object stands on, above `sys` only: the shared-memory
//! [`Region`](region::Region) that locks, queues and values live in, and the [`handles`]
//! plumbing that carries their descriptors into a child process.
//!
//! It imports nothing from the layers above (`sync`, `queue`, `shm`, `pipe`, `process`), so
//! they all can use it without a cycle.

pub(crate) mod handles;
pub(crate) mod region;
