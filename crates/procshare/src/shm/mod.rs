//! Shared memory.

pub(crate) mod region;
pub(crate) mod value;
