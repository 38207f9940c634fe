//! How a procshare object reaches a `multiprocessing.Process` child (Python's "reduction").
//!
//! * **fork**: the child inherits the object as it is: procshare's handles are `MAP_SHARED`
//!   mappings and descriptors, both inherited by `fork`, so nothing is pickled.
//! * **spawn, forkserver**: `Process.start()` pickles the process object while
//!   `multiprocessing.context.get_spawning_popen()` is set. `__reduce__` then exports the Rust
//!   handle (`procshare::ffi::export`: bytes, plus the descriptors they index) and wraps each
//!   descriptor in `multiprocessing.reduction.DupFd`, which hands it to the child (inherited
//!   by number under spawn, sent with `SCM_RIGHTS` under forkserver). The child calls
//!   [`_rebuild`]`(cls, bytes, dupfds)`, which detaches the descriptors and imports the handle.
//! * **anything else** (pickling a Queue into a queue, `pickle.dumps(lock)`): `RuntimeError`,
//!   as `multiprocessing` raises ("... should only be shared between processes through
//!   inheritance"): a descriptor number means nothing in another process.
//!
//! The exported descriptors are duplicates that must stay open until the popen object has
//! launched the child, after `__reduce__` returned; [`Exported`] keeps the first export for the
//! object's lifetime (a handle's descriptors never change, so every child gets the same ones)
//! instead of leaking a set per child — until a `Connection` is closed, which closes them too
//! (a parent that closed its copy of the child's end must not keep that end open).
//!
//! A class takes part by holding an [`Exported`], returning [`reduce`] from `__reduce__` and
//! offering a static `_from_reduced(bytes, fds)` that calls [`import`].

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBytes, PyList, PyTuple, PyType};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

/// The first export of a handle, kept until the object is closed or dropped (see the module
/// docs).
#[derive(Default)]
pub struct Exported(Mutex<Option<(Vec<u8>, Vec<OwnedFd>)>>);

impl Exported {
    /// The handle's bytes and descriptors, exported on first use (again after [`clear`]).
    ///
    /// [`clear`]: Exported::clear
    pub fn get<H: Serialize + ?Sized>(
        &self,
        py: Python<'_>,
        handle: &H,
    ) -> PyResult<(Vec<u8>, Vec<RawFd>)> {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(procshare::ffi::export(handle).map_err(|e| crate::signals::error(py, e))?);
        }
        let (bytes, fds) = g.as_ref().expect("set above");
        Ok((bytes.clone(), fds.iter().map(|f| f.as_raw_fd()).collect()))
    }

    /// Closes the exported descriptors: a closed object must not keep its handle's descriptors
    /// open (a Connection's peer would never see end-of-file).
    pub fn clear(&self) {
        let old = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(old);
    }

    /// A descriptor of the handle that stays open while this object lives (for `fileno()`).
    pub fn first_fd<H: Serialize + ?Sized>(&self, py: Python<'_>, handle: &H) -> PyResult<RawFd> {
        let (_, fds) = self.get(py, handle)?;
        fds.first().copied().ok_or_else(|| PyValueError::new_err("the handle has no descriptor"))
    }
}

pub fn spawning_popen(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static F: GILOnceCell<PyObject> = GILOnceCell::new();
    let f = F.get_or_try_init(py, || {
        Ok::<_, PyErr>(
            py.import("multiprocessing.context")?.getattr("get_spawning_popen")?.unbind(),
        )
    })?;
    f.bind(py).call0()
}

pub fn dup_fd(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static F: GILOnceCell<PyObject> = GILOnceCell::new();
    Ok(F.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("multiprocessing.reduction")?.getattr("DupFd")?.unbind())
    })?
    .bind(py))
}

/// `__reduce__` for `slf`: `(_rebuild, (type(slf), bytes, [DupFd(fd), ...]))` while a
/// `multiprocessing` child is being started, `RuntimeError` otherwise.
pub fn reduce<'py, H: Serialize + ?Sized>(
    slf: &Bound<'py, PyAny>,
    exported: &Exported,
    handle: &H,
) -> PyResult<Bound<'py, PyTuple>> {
    let py = slf.py();
    let kind = slf.get_type().name()?.to_string();
    if spawning_popen(py)?.is_none() {
        return Err(PyRuntimeError::new_err(format!(
            "{kind} objects should only be shared between processes through inheritance"
        )));
    }
    let (bytes, fds) = exported.get(py, handle)?;
    let dup = dup_fd(py)?;
    let dups = PyList::empty(py);
    for fd in fds {
        dups.append(dup.call1((fd,))?)?;
    }
    let rebuild = py.import("procshare._procshare")?.getattr("_rebuild")?;
    let args = PyTuple::new(
        py,
        [slf.get_type().into_any(), PyBytes::new(py, &bytes).into_any(), dups.into_any()],
    )?;
    PyTuple::new(py, [rebuild, args.into_any()])
}

/// The child's side of [`reduce`]: `cls._from_reduced(bytes, [d.detach() for d in dupfds])`.
#[pyfunction]
pub fn _rebuild<'py>(
    cls: &Bound<'py, PyType>,
    bytes: &[u8],
    dupfds: Vec<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut fds = Vec::with_capacity(dupfds.len());
    for d in dupfds {
        fds.push(d.call_method0("detach")?.extract::<RawFd>()?);
    }
    cls.call_method1("_from_reduced", (PyBytes::new(cls.py(), bytes), fds))
}

/// Imports a handle from `bytes` and the descriptor numbers `fds`, which the caller hands
/// over (they were detached from their `DupFd`s and belong to nobody else); they are closed
/// here once the handle took its own duplicates.
pub fn import<H: DeserializeOwned>(py: Python<'_>, bytes: &[u8], fds: Vec<RawFd>) -> PyResult<H> {
    let mut owned = Vec::with_capacity(fds.len());
    for fd in fds {
        if fd < 0 {
            return Err(PyValueError::new_err(format!("bad descriptor number {fd}")));
        }
        // SAFETY: `borrow_raw` needs `fd` to stay open while borrowed: it is ours (detached
        // from its DupFd, see above) and nobody closes it before the duplicate is made.
        let check = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned();
        // The duplicate proves the number is an open descriptor (dup fails with EBADF
        // otherwise); the original is then closed through the OwnedFd below.
        let _dup = check.map_err(PyErr::from)?;
        // SAFETY: `from_raw_fd` needs an open descriptor owned by nobody else: it is open (the
        // dup above succeeded) and the caller hands it over (it was detached from its DupFd).
        owned.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    procshare::ffi::import(bytes, owned).map_err(|e| crate::signals::error(py, e))
}
