//! Shared memory.

pub(crate) mod region;
