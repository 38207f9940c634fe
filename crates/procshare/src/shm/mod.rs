//! Shared memory.

#[allow(dead_code)] // used by the shared-memory objects built on it
pub(crate) mod region;
