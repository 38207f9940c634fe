//! `_Segment`: a procshare shared-memory segment (`procshare::SharedMemory`) for
//! `procshare.shared_memory.SharedMemory`, which is CPython's class on top of it.
//!
//! The Rust handle is what registers this process with procshare's tracker (so the segment is
//! unlinked once every process that created or opened it has died, SIGKILL included, and never
//! by Python's `resource_tracker`). The bytes are mapped a second time by Python's own `mmap`
//! over a duplicate of the segment's descriptor ([`Segment::dup_fd`]): that mapping is the one
//! `SharedMemory.buf` exports, with `mmap`'s export counting (closing it while a view is alive
//! is `BufferError`, never a dangling pointer).
//!
//! Passing to children: `SharedMemory` pickles by name (CPython's `__reduce__`), and the child
//! opens it again, registering as a user; nothing here is pickled.

use crate::signals;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::os::fd::IntoRawFd;

/// A procshare segment: its name, size, a descriptor for `mmap`, and `unlink`.
#[pyclass(name = "_Segment", module = "procshare._procshare", frozen)]
pub struct Segment {
    shm: procshare::SharedMemory,
}

#[pymethods]
impl Segment {
    /// _Segment.create(name, size, persistent=False)
    /// --
    ///
    /// A new segment called `name` (FileExistsError if taken). `persistent`: it outlives every
    /// process until unlinked (CPython's `track=False`).
    #[staticmethod]
    #[pyo3(signature = (name, size, persistent = false))]
    fn create(py: Python<'_>, name: &str, size: usize, persistent: bool) -> PyResult<Self> {
        let shm = if persistent {
            procshare::SharedMemory::create_named_persistent(name, size)
        } else {
            procshare::SharedMemory::create_named(name, size)
        };
        Ok(Segment { shm: shm.map_err(|e| signals::error(py, e))? })
    }

    /// _Segment.open(name)
    /// --
    ///
    /// The existing segment `name` (made by procshare or by Python); FileNotFoundError if there
    /// is none.
    #[staticmethod]
    fn open(py: Python<'_>, name: &str) -> PyResult<Self> {
        let shm = procshare::SharedMemory::open(name).map_err(|e| signals::error(py, e))?;
        Ok(Segment { shm })
    }

    /// The name, without a leading slash.
    #[getter]
    fn name(&self) -> &str {
        self.shm.name()
    }

    /// The size in bytes (the creator's).
    #[getter]
    fn size(&self) -> usize {
        self.shm.size()
    }

    /// dup_fd()
    /// --
    ///
    /// A new descriptor of the segment (close-on-exec), owned by the caller.
    fn dup_fd(&self, py: Python<'_>) -> PyResult<i32> {
        let (_, fds) = procshare::ffi::export(&self.shm).map_err(|e| signals::error(py, e))?;
        let fd = fds
            .into_iter()
            .next()
            .ok_or_else(|| PyValueError::new_err("the segment has no descriptor"))?;
        Ok(fd.into_raw_fd())
    }

    /// unlink()
    /// --
    ///
    /// Removes the name (FileNotFoundError if it is gone already); mappings stay valid.
    fn unlink(&self, py: Python<'_>) -> PyResult<()> {
        self.shm.unlink().map_err(|e| signals::error(py, e))
    }
}

/// Registers `_Segment`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Segment>()
}
