//! Shared memory.
//!
//! Named segments ([`SharedMemory`]), CPython-compatible lists ([`ShareableList`]) and a
//! [`SharedMemoryManager`]. Every named segment procshare creates is tracked (see `tracker.rs`):
//! it lives while any process that created or opened it lives and is unlinked after the last
//! one dies, even by SIGKILL; [`list_segments`] and [`clean`] show and remove strays (the
//! `procshare shm ls|clean` commands).

pub(crate) mod list;
mod manager;
mod segment;
pub(crate) mod tracker;
pub(crate) mod value;

pub use list::{Item, ShareableList};
pub use manager::SharedMemoryManager;
pub use segment::SharedMemory;
pub use tracker::{clean, list_segments, SegmentInfo};
