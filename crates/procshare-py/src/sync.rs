//! `Lock`, `RLock`, `Semaphore`, `BoundedSemaphore`, `Event`, `Condition`, `Barrier` for
//! Python — `multiprocessing.synchronize` with its signatures, return values and exceptions,
//! on procshare's process-shared futex words.
//!
//! What differs from `multiprocessing`, on purpose:
//! * A `Lock`/`RLock` whose holder dies (its process killed, or its thread ended holding it) is
//!   not lost: the next `acquire` takes it over (within ~10–60 ms) and succeeds normally.
//!   `multiprocessing` has no "owner died" signal, so none is raised; whatever the dead holder
//!   was changing may be half done.
//! * A `Barrier` party that dies while the others need it (killed mid-`wait`, or before it
//!   arrived) breaks the barrier: the others get `threading.BrokenBarrierError` instead of
//!   waiting forever.
//! * A `Condition` waiter killed mid-`wait` never makes `notify` hang (multiprocessing's
//!   `notify` waits for the dead sleeper to acknowledge, forever); the notify goes to a live
//!   waiter instead.
//!
//! Every blocking call runs with the GIL released, in slices of at most `signals::SLICE` (100 ms), and checks
//! for signals between slices, so Ctrl-C raises `KeyboardInterrupt` within a slice.
//!
//! # Condition
//! `multiprocessing.Condition(lock)` works with any lock, but procshare's Rust `Condition` owns
//! its lock. So here the user's lock guards the user's state, and the Rust `Condition` is only
//! the waiting mechanism: its own (short-held) lock guards a table of waiters in shared memory,
//! and its futex word wakes them.
//!
//! ```text
//!  table: RawArray<u64>
//!  +-------------+------------------------------------------+-----+
//!  | next ticket | slot 0: { ticket (0 = free) | pid | woken } | ... | slot WAITER_SLOTS-1
//!  +-------------+------------------------------------------+-----+
//! ```
//! `wait` takes a ticket and a free slot (under the table lock) *before* it releases the user
//! lock, so a `notify` — which needs the user lock — always sees it. `notify(n)` marks the `n`
//! oldest unwoken live slots woken and wakes every sleeper; each waiter checks its own slot
//! after every wake and every slice, under the table lock, so a notify between two slices is
//! never lost, and a waiter that arrives later never steals it. A waiter frees its slot when it
//! leaves (woken, timed out or interrupted).
//!
//! Crash table (a SIGKILL of one process):
//! | killed ...                              | leaves                               | repaired by |
//! |-----------------------------------------|--------------------------------------|-------------|
//! | holding the table lock                  | the table lock held by a dead thread | the next table user takes it over (procshare's `RawLock`) |
//! | waiting (slot claimed, not woken)       | a slot of a dead pid                 | `notify` skips and frees it (a `/proc/PID` look); a claimer finding no free slot reclaims it |
//! | woken, before freeing its slot          | a woken slot of a dead pid           | a claimer finding no free slot reclaims it |
//! | holding the user lock                   | see `Lock`                           | the next `acquire` |
//! A pid reused by a live process makes a dead waiter's slot look alive: one notify may then go
//! to nobody (never a hang).
//!
//! # Barrier
//! procshare's Rust `Barrier::wait` has no deadline, while Python's `wait(timeout)` breaks the
//! barrier when its timeout passes (as does an exception such as `KeyboardInterrupt`). So the
//! Rust wait runs on a helper thread and the calling thread waits for its answer in slices;
//! on timeout or a signal it breaks the barrier (`abort`, what CPython's `_break` does), which
//! ends the helper's wait at once. `action` runs in the last arriving party before anyone is
//! released: a barrier with an action meets twice per `wait`, and the action runs between the
//! two meetings; if it raises, the barrier breaks and the others get `BrokenBarrierError`.
//!
//! # Passing to children
//! Under fork a child inherits the objects as they are (the memory is `MAP_SHARED`). Under
//! spawn and forkserver `__reduce__` exports the handle as bytes plus descriptors carried by
//! `multiprocessing.reduction.DupFd`. Pickling at any other time (into a queue, say) raises
//! `RuntimeError`, as `multiprocessing` does.

use pyo3::exceptions::{PyAssertionError, PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBytes, PyList, PyTuple, PyType};

use crate::reduce::{self, Exported};
use crate::signals;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Waiters one `Condition` can hold at a time (a slot each).
const WAITER_SLOTS: usize = 1024;

// ---------------------------------------------------------------------------------------------
// Blocking with the GIL released, and Ctrl-C.

/// Python's `timeout` argument as a deadline (`signals::deadline`: None forever, negative
/// "just look", NaN a ValueError).
fn deadline_from(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    signals::deadline(timeout)
}

/// [`signals::blocking`] for an attempt that can fail: runs `attempt(slice)` with the GIL
/// released until it returns `Some` or `deadline` passes (`Ok(None)`), letting Ctrl-C in
/// between slices.
fn blocking<R: Send>(
    py: Python<'_>,
    deadline: Option<Instant>,
    mut attempt: impl FnMut(Duration) -> PyResult<Option<R>> + Send,
) -> PyResult<Option<R>> {
    signals::blocking(py, deadline, |slice| attempt(slice).transpose())?.transpose()
}

/// Python's `block` argument: any object, by its truth value (as `multiprocessing`'s
/// `SemLock.acquire`).
#[derive(Clone, Copy)]
struct Truthy(bool);

impl<'py> FromPyObject<'py> for Truthy {
    fn extract_bound(ob: &Bound<'py, PyAny>) -> PyResult<Self> {
        ob.is_truthy().map(Truthy)
    }
}

/// A procshare error met where the GIL is released (inside a slice), so
/// `signals::error`, which looks Python classes up, cannot run; the futex waits fail only on
/// an OS error, so OSError and ValueError cover them.
fn err(e: procshare::Error) -> PyErr {
    match e {
        procshare::Error::Io(e) => PyOSError::new_err(e.to_string()),
        procshare::Error::InvalidArgument(m) => PyValueError::new_err(m),
        other => PyOSError::new_err(other.to_string()),
    }
}

/// Bumped in every child forked through Python (`os.register_at_fork`), so that [`me`] tells
/// a forked child's thread from its parent's without a `getpid` per call (a system call that
/// cost more than the whole uncontended acquire).
static FORK_GENERATION: AtomicU32 = AtomicU32::new(0);

#[pyfunction]
fn _after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// This thread of this process, as the owner of a lock: `{ fork generation:32 | thread
/// number:32 }`. A forked child's thread keeps its thread-local number, not the generation.
/// (A child forked behind Python's back, by C code, keeps both; it never runs Python code that
/// could ask before an `exec` anyway.)
fn me() -> u64 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    thread_local! {
        static ID: u32 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    (u64::from(FORK_GENERATION.load(Ordering::Relaxed)) << 32) | u64::from(ID.with(|i| *i))
}

// ---------------------------------------------------------------------------------------------
// Passing to children (spawn, forkserver).

/// `(bytes, [DupFd(fd), ...])` for `handle`, or `RuntimeError` outside spawning (as
/// `reduce::reduce`, whose fixed argument tuple has no room for the Python state a
/// `Semaphore`, `Condition` or `Barrier` also carries). `exported` keeps the descriptors open
/// for the object's lifetime (see `reduce`).
fn export_for_child<H: serde::Serialize + ?Sized>(
    py: Python<'_>,
    type_name: &str,
    exported: &Exported,
    handle: &H,
) -> PyResult<(Py<PyBytes>, Py<PyList>)> {
    let popen = py.import("multiprocessing.context")?.call_method0("get_spawning_popen")?;
    if popen.is_none() {
        return Err(PyRuntimeError::new_err(format!(
            "{type_name} objects should only be shared between processes through inheritance"
        )));
    }
    let (bytes, fds) = exported.get(py, handle)?;
    let dup_fd = py.import("multiprocessing.reduction")?.getattr("DupFd")?;
    let wrapped = PyList::empty(py);
    for fd in fds {
        wrapped.append(dup_fd.call1((fd,))?)?;
    }
    Ok((PyBytes::new(py, &bytes).unbind(), wrapped.unbind()))
}

/// The inverse of [`export_for_child`], in the child: detaches each `DupFd` (whose descriptor
/// this process now owns) and rebuilds the handle (`reduce::import`).
fn import_in_child<H: serde::de::DeserializeOwned>(
    bytes: &[u8],
    dup_fds: &Bound<'_, PyAny>,
) -> PyResult<H> {
    let mut fds = Vec::new();
    for d in dup_fds.try_iter()? {
        fds.push(d?.call_method0("detach")?.extract::<i32>()?);
    }
    reduce::import(dup_fds.py(), bytes, fds)
}

// ---------------------------------------------------------------------------------------------
// The `_semlock` internals.

// # `_semlock`: what the stdlib reaches into
//
// Code written against `multiprocessing.synchronize` calls private methods of a lock's or
// semaphore's `_semlock` (the C `SemLock`). With a procshare context those objects are ours,
// so each class answers `_semlock` with itself and offers the methods used:
// * `multiprocessing.queues.Queue` (and `concurrent.futures.process._SafeQueue`, the
//   executor's call queue, built with `ctx=`): `qsize()` is
//   `maxsize - _sem._semlock._get_value()`, `full()` is `_sem._semlock._is_zero()`;
// * `multiprocessing.queues.JoinableQueue`: `_unfinished_tasks._semlock._is_zero()` in
//   `task_done` and `join`;
// * `multiprocessing.synchronize.Condition` over our lock: `_lock._semlock._is_mine()` and
//   `_count()`.
//
// `_is_mine`/`_count` answer for this object's own acquisitions (as `SemLock` does).

// ---------------------------------------------------------------------------------------------
// Lock

/// A lock shared by processes (`multiprocessing.Lock`).
///
/// `acquire(block=True, timeout=None)` returns True once held, False if `block` is false or the
/// timeout passed; `release()` of an unlocked lock raises `ValueError`. Any thread or process
/// may release it. If the holder dies holding it, the next `acquire` takes it over.
#[pyclass(module = "procshare", name = "Lock", frozen, weakref)]
pub struct Lock {
    inner: procshare::Lock,
    /// [`me`] of the thread that acquired it through this object (0: not known to be held
    /// here); what `Condition` checks for "is the lock mine".
    owner: AtomicU64,
    exported: Exported,
}

impl Lock {
    fn try_acquire(&self) -> PyResult<bool> {
        let got = self.inner.try_lock().map_err(err)?.map(std::mem::forget).is_some();
        if got {
            self.owner.store(me(), Ordering::Relaxed);
        }
        Ok(got)
    }

    fn acquire_deadline(&self, py: Python<'_>, deadline: Option<Instant>) -> PyResult<bool> {
        // Uncontended: one CAS with the GIL held. Held: a short bounded spin, still with the
        // GIL (a holder in another process usually lets go within it, and releasing the GIL
        // costs more than the spin); then the waiting path, which also takes the lock over
        // from a dead holder.
        if !self.inner.is_locked() && self.try_acquire()? {
            return Ok(true);
        }
        if deadline.is_none() && self.inner.acquire_timeout(Duration::ZERO).map_err(err)? {
            self.owner.store(me(), Ordering::Relaxed);
            return Ok(true);
        }
        let inner = &self.inner;
        let got = blocking(py, deadline, |slice| {
            Ok(inner.acquire_timeout(slice).map_err(err)?.then_some(()))
        })?;
        if got.is_some() {
            self.owner.store(me(), Ordering::Relaxed);
        }
        Ok(got.is_some())
    }

    fn is_mine(&self) -> bool {
        self.inner.is_locked() && self.owner.load(Ordering::Relaxed) == me()
    }

    fn release_inner(&self) -> PyResult<()> {
        self.owner.store(0, Ordering::Relaxed);
        self.inner
            .release()
            .map_err(|_| PyValueError::new_err("semaphore or lock released too many times"))
    }

    /// Takes the lock again after a `Condition.wait` (no timeout, no interruption: the
    /// caller must come back holding it).
    fn reacquire(&self, py: Python<'_>) -> PyResult<()> {
        py.allow_threads(|| self.inner.acquire()).map_err(err)?;
        self.owner.store(me(), Ordering::Relaxed);
        Ok(())
    }
}

#[pymethods]
impl Lock {
    /// Lock(*, ctx=None): `ctx` is accepted as `multiprocessing.synchronize.Lock`'s and
    /// unused (a procshare lock works under every start method).
    #[new]
    #[pyo3(signature = (*, ctx = None))]
    fn new(ctx: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let _ = ctx;
        Ok(Lock {
            inner: procshare::Lock::new().map_err(err)?,
            owner: AtomicU64::new(0),
            exported: Exported::default(),
        })
    }

    /// Acquire the lock: True once held; False if `block` is false and it is held, or
    /// `timeout` seconds passed.
    #[pyo3(signature = (block = Truthy(true), timeout = None))]
    fn acquire(&self, py: Python<'_>, block: Truthy, timeout: Option<f64>) -> PyResult<bool> {
        if !block.0 {
            return self.try_acquire();
        }
        self.acquire_deadline(py, deadline_from(timeout)?)
    }

    /// Release the lock (any thread or process may); `ValueError` if it is not locked.
    fn release(&self) -> PyResult<()> {
        self.release_inner()
    }

    /// The object itself: stdlib code written for `multiprocessing.synchronize` reaches into
    /// the lock's `_semlock` (see the `_semlock` note above).
    #[getter]
    fn _semlock(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn _is_mine(&self) -> bool {
        self.is_mine()
    }

    fn _count(&self) -> u32 {
        u32::from(self.is_mine())
    }

    fn _get_value(&self) -> u32 {
        u32::from(!self.inner.is_locked())
    }

    fn _is_zero(&self) -> bool {
        self.inner.is_locked()
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire_deadline(py, None)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release_inner()
    }

    fn __repr__(&self) -> String {
        let state = if self.is_mine() {
            "owner=this thread"
        } else if self.inner.is_locked() {
            "locked"
        } else {
            "owner=None"
        };
        format!("<procshare.Lock({state})>")
    }

    fn __reduce__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let (bytes, fds) = export_for_child(py, "Lock", &slf.get().exported, &slf.get().inner)?;
        let rebuild = py.import("procshare._procshare")?.getattr("_rebuild_lock")?;
        Ok((rebuild, (bytes, fds)).into_pyobject(py)?.into_any().unbind())
    }
}

#[pyfunction]
fn _rebuild_lock(bytes: &[u8], fds: &Bound<'_, PyAny>) -> PyResult<Lock> {
    Ok(Lock {
        inner: import_in_child(bytes, fds)?,
        owner: AtomicU64::new(0),
        exported: Exported::default(),
    })
}

// ---------------------------------------------------------------------------------------------
// RLock

/// A re-entrant lock shared by processes (`multiprocessing.RLock`): the thread that holds it
/// may acquire it again; it is free once released as many times. Only the holder may release
/// it (else `AssertionError`, as `multiprocessing`).
#[pyclass(module = "procshare", name = "RLock", frozen, weakref)]
pub struct RLock {
    inner: procshare::RLock,
    /// As `Lock::owner`; with `count`, the acquisitions made through this object.
    owner: AtomicU64,
    count: AtomicU32,
    exported: Exported,
}

impl RLock {
    fn note_acquired(&self) {
        let me = me();
        if self.owner.load(Ordering::Relaxed) == me {
            self.count.fetch_add(1, Ordering::Relaxed);
        } else {
            self.count.store(1, Ordering::Relaxed);
            self.owner.store(me, Ordering::Relaxed);
        }
    }

    fn try_acquire(&self) -> PyResult<bool> {
        let got = self.inner.try_lock().map_err(err)?.map(std::mem::forget).is_some();
        if got {
            self.note_acquired();
        }
        Ok(got)
    }

    fn acquire_deadline(&self, py: Python<'_>, deadline: Option<Instant>) -> PyResult<bool> {
        if (self.is_mine() || !self.inner.is_locked()) && self.try_acquire()? {
            return Ok(true);
        }
        let inner = &self.inner;
        let got = blocking(py, deadline, |slice| {
            Ok(inner.acquire_timeout(slice).map_err(err)?.then_some(()))
        })?;
        if got.is_some() {
            self.note_acquired();
        }
        Ok(got.is_some())
    }

    fn is_mine(&self) -> bool {
        self.inner.is_locked() && self.owner.load(Ordering::Relaxed) == me()
    }

    fn release_inner(&self) -> PyResult<()> {
        self.inner.release().map_err(|_| {
            PyAssertionError::new_err("attempt to release recursive lock not owned by thread")
        })?;
        if self.owner.load(Ordering::Relaxed) == me()
            && self.count.fetch_sub(1, Ordering::Relaxed) <= 1
        {
            self.count.store(0, Ordering::Relaxed);
            self.owner.store(0, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Releases every level this thread holds (for `Condition.wait`); the number released.
    fn release_all(&self) -> u32 {
        let mut n = 0;
        while self.inner.release().is_ok() {
            n += 1;
        }
        self.count.store(0, Ordering::Relaxed);
        self.owner.store(0, Ordering::Relaxed);
        n
    }

    fn reacquire(&self, py: Python<'_>, levels: u32) -> PyResult<()> {
        py.allow_threads(|| (0..levels.max(1)).try_for_each(|_| self.inner.acquire()))
            .map_err(err)?;
        self.count.store(levels.max(1), Ordering::Relaxed);
        self.owner.store(me(), Ordering::Relaxed);
        Ok(())
    }
}

#[pymethods]
impl RLock {
    /// RLock(*, ctx=None): `ctx` as `Lock`'s.
    #[new]
    #[pyo3(signature = (*, ctx = None))]
    fn new(ctx: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let _ = ctx;
        Ok(RLock {
            inner: procshare::RLock::new().map_err(err)?,
            owner: AtomicU64::new(0),
            count: AtomicU32::new(0),
            exported: Exported::default(),
        })
    }

    /// Acquire the lock (at once if this thread holds it): True once held; False if `block`
    /// is false and another thread holds it, or `timeout` seconds passed.
    #[pyo3(signature = (block = Truthy(true), timeout = None))]
    fn acquire(&self, py: Python<'_>, block: Truthy, timeout: Option<f64>) -> PyResult<bool> {
        if !block.0 {
            return self.try_acquire();
        }
        self.acquire_deadline(py, deadline_from(timeout)?)
    }

    /// Release one level; `AssertionError` unless this thread holds the lock.
    fn release(&self) -> PyResult<()> {
        self.release_inner()
    }

    /// The object itself (see `Lock._semlock` and the `_semlock` note above).
    #[getter]
    fn _semlock(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn _is_mine(&self) -> bool {
        self.is_mine()
    }

    fn _count(&self) -> u32 {
        if self.is_mine() {
            self.count.load(Ordering::Relaxed)
        } else {
            0
        }
    }

    fn _get_value(&self) -> u32 {
        u32::from(!self.inner.is_locked())
    }

    fn _is_zero(&self) -> bool {
        self.inner.is_locked()
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire_deadline(py, None)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release_inner()
    }

    fn __repr__(&self) -> String {
        if self.is_mine() {
            format!(
                "<procshare.RLock(owner=this thread, count={})>",
                self.count.load(Ordering::Relaxed)
            )
        } else if self.inner.is_locked() {
            "<procshare.RLock(locked)>".to_string()
        } else {
            "<procshare.RLock(owner=None, count=0)>".to_string()
        }
    }

    fn __reduce__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let (bytes, fds) = export_for_child(py, "RLock", &slf.get().exported, &slf.get().inner)?;
        let rebuild = py.import("procshare._procshare")?.getattr("_rebuild_rlock")?;
        Ok((rebuild, (bytes, fds)).into_pyobject(py)?.into_any().unbind())
    }
}

#[pyfunction]
fn _rebuild_rlock(bytes: &[u8], fds: &Bound<'_, PyAny>) -> PyResult<RLock> {
    Ok(RLock {
        inner: import_in_child(bytes, fds)?,
        owner: AtomicU64::new(0),
        count: AtomicU32::new(0),
        exported: Exported::default(),
    })
}

// ---------------------------------------------------------------------------------------------
// Semaphore, BoundedSemaphore

/// `multiprocessing`'s SEM_VALUE_MAX on Linux.
const SEM_VALUE_MAX: i64 = i32::MAX as i64;

fn sem_value(value: i64) -> PyResult<usize> {
    if value < 0 {
        return Err(PyValueError::new_err("semaphore initial value must be >= 0"));
    }
    if value > SEM_VALUE_MAX {
        return Err(PyValueError::new_err(format!(
            "semaphore initial value must be <= {SEM_VALUE_MAX}"
        )));
    }
    Ok(value as usize)
}

macro_rules! semaphore_class {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $rust:ty, $rebuild:ident, $repr:expr) => {
        $(#[$doc])*
        #[pyclass(module = "procshare", name = $name, frozen, weakref)]
        pub struct $ty {
            inner: $rust,
            /// The start value (`BoundedSemaphore`'s bound), for `repr`.
            maxvalue: usize,
            exported: Exported,
        }

        #[pymethods]
        impl $ty {
            #[new]
            #[pyo3(signature = (value = 1, *, ctx = None))]
            fn new(value: i64, ctx: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
                let _ = ctx; // multiprocessing's keyword, unused (see Lock)
                let value = sem_value(value)?;
                Ok($ty { inner: <$rust>::new(value).map_err(err)?, maxvalue: value, exported: Exported::default() })
            }

            /// Take one unit: True once taken; False if `block` is false and none is left, or
            /// `timeout` seconds passed.
            #[pyo3(signature = (block = Truthy(true), timeout = None))]
            fn acquire(
                &self,
                py: Python<'_>,
                block: Truthy,
                timeout: Option<f64>,
            ) -> PyResult<bool> {
                if self.inner.try_acquire() {
                    return Ok(true);
                }
                if !block.0 {
                    return Ok(false);
                }
                let inner = &self.inner;
                let got = blocking(py, deadline_from(timeout)?, |slice| {
                    Ok(inner.acquire_timeout(slice).map_err(err)?.then_some(()))
                })?;
                Ok(got.is_some())
            }

            /// Give one unit back; `ValueError` past the bound.
            fn release(&self) -> PyResult<()> {
                self.inner.release().map_err(|_| {
                    PyValueError::new_err("semaphore or lock released too many times")
                })
            }

            /// The units available now (a snapshot).
            fn get_value(&self) -> usize {
                self.inner.value()
            }

            /// The object itself (see `Lock._semlock` and the `_semlock` note above).
            #[getter]
            fn _semlock(slf: Py<Self>) -> Py<Self> {
                slf
            }

            fn _get_value(&self) -> usize {
                self.inner.value()
            }

            fn _is_zero(&self) -> bool {
                self.inner.value() == 0
            }

            fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
                self.acquire(py, Truthy(true), None)
            }

            #[pyo3(signature = (*_args))]
            fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
                self.release()
            }

            fn __repr__(&self) -> String {
                let repr: fn(usize, usize) -> String = $repr;
                repr(self.inner.value(), self.maxvalue)
            }

            fn __reduce__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
                let py = slf.py();
                let (bytes, fds) = export_for_child(py, $name, &slf.get().exported, &slf.get().inner)?;
                let rebuild =
                    py.import("procshare._procshare")?.getattr(stringify!($rebuild))?;
                Ok((rebuild, (bytes, fds, slf.get().maxvalue))
                    .into_pyobject(py)?
                    .into_any()
                    .unbind())
            }
        }

        #[pyfunction]
        fn $rebuild(bytes: &[u8], fds: &Bound<'_, PyAny>, maxvalue: usize) -> PyResult<$ty> {
            Ok($ty { inner: import_in_child(bytes, fds)?, maxvalue, exported: Exported::default() })
        }
    };
}

semaphore_class!(
    /// A counting semaphore shared by processes (`multiprocessing.Semaphore(value=1)`).
    Semaphore,
    "Semaphore",
    procshare::Semaphore,
    _rebuild_semaphore,
    |v, _| format!("<procshare.Semaphore(value={v})>")
);

semaphore_class!(
    /// A semaphore that refuses to rise above its start value
    /// (`multiprocessing.BoundedSemaphore(value=1)`): such a `release` raises `ValueError`.
    BoundedSemaphore,
    "BoundedSemaphore",
    procshare::BoundedSemaphore,
    _rebuild_bounded_semaphore,
    |v, m| format!("<procshare.BoundedSemaphore(value={v}, maxvalue={m})>")
);

// ---------------------------------------------------------------------------------------------
// Event

/// A flag processes wait for (`multiprocessing.Event`).
#[pyclass(module = "procshare", name = "Event", frozen, weakref)]
pub struct Event {
    inner: procshare::Event,
    exported: Exported,
}

#[pymethods]
impl Event {
    #[new]
    #[pyo3(signature = (*, ctx = None))]
    fn new(ctx: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let _ = ctx; // multiprocessing's keyword, unused (see Lock)
        Ok(Event { inner: procshare::Event::new().map_err(err)?, exported: Exported::default() })
    }

    /// Whether the flag is set.
    fn is_set(&self) -> bool {
        self.inner.is_set()
    }

    /// Set the flag and wake every waiter, in every process.
    fn set(&self) {
        self.inner.set()
    }

    /// Clear the flag.
    fn clear(&self) {
        self.inner.clear()
    }

    /// Wait until the flag is set: True; or until `timeout` seconds passed: False.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        if self.inner.is_set() {
            return Ok(true);
        }
        let inner = &self.inner;
        let set = blocking(py, deadline_from(timeout)?, |slice| {
            Ok(inner.wait(Some(slice)).map_err(err)?.then_some(()))
        })?;
        Ok(set.is_some())
    }

    fn __repr__(slf: &Bound<'_, Self>) -> String {
        let state = if slf.get().inner.is_set() { "set" } else { "unset" };
        format!("<Event at {:#x} {state}>", slf.as_ptr() as usize)
    }

    fn __reduce__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let (bytes, fds) = export_for_child(py, "Event", &slf.get().exported, &slf.get().inner)?;
        let rebuild = py.import("procshare._procshare")?.getattr("_rebuild_event")?;
        Ok((rebuild, (bytes, fds)).into_pyobject(py)?.into_any().unbind())
    }
}

#[pyfunction]
fn _rebuild_event(bytes: &[u8], fds: &Bound<'_, PyAny>) -> PyResult<Event> {
    Ok(Event { inner: import_in_child(bytes, fds)?, exported: Exported::default() })
}

// ---------------------------------------------------------------------------------------------
// Condition

/// The error for `wait`/`notify` without the lock: `threading.Condition` raises RuntimeError,
/// `multiprocessing.Condition` AssertionError; this class is both, so either `except` works.
fn not_owned_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static TYPE: GILOnceCell<Py<PyType>> = GILOnceCell::new();
    let ty = TYPE.get_or_try_init(py, || -> PyResult<Py<PyType>> {
        let bases = PyTuple::new(
            py,
            [
                py.get_type::<PyRuntimeError>().into_any(),
                py.get_type::<PyAssertionError>().into_any(),
            ],
        )?;
        let dict = pyo3::types::PyDict::new(py);
        dict.set_item("__module__", "procshare")?;
        let ty =
            py.import("builtins")?.getattr("type")?.call1(("LockNotOwnedError", bases, dict))?;
        Ok(ty.downcast_into::<PyType>()?.unbind())
    })?;
    Ok(ty.bind(py))
}

fn not_owned(py: Python<'_>, msg: &str) -> PyErr {
    match not_owned_type(py) {
        Ok(ty) => PyErr::from_type(ty.clone(), msg.to_string()),
        Err(e) => e,
    }
}

/// The user's lock of a `Condition`.
enum UserLock {
    Lock(Py<Lock>),
    RLock(Py<RLock>),
}

impl UserLock {
    fn object(&self, py: Python<'_>) -> Py<PyAny> {
        match self {
            UserLock::Lock(l) => l.clone_ref(py).into_any(),
            UserLock::RLock(l) => l.clone_ref(py).into_any(),
        }
    }

    fn is_mine(&self) -> bool {
        match self {
            UserLock::Lock(l) => l.get().is_mine(),
            UserLock::RLock(l) => l.get().is_mine(),
        }
    }

    /// Releases the lock completely; what `restore` needs to take it back.
    fn release_all(&self) -> PyResult<u32> {
        match self {
            UserLock::Lock(l) => l.get().release_inner().map(|_| 1),
            UserLock::RLock(l) => Ok(l.get().release_all()),
        }
    }

    fn restore(&self, py: Python<'_>, levels: u32) -> PyResult<()> {
        match self {
            UserLock::Lock(l) => l.get().reacquire(py),
            UserLock::RLock(l) => l.get().reacquire(py, levels),
        }
    }
}

/// The waiting half of a `Condition`: the table (see the module doc) and the Rust `Condition`
/// whose lock guards it and whose futex word wakes its waiters.
struct Waiters {
    cond: procshare::Condition,
    table: procshare::RawArray<u64>,
    exported: Exported,
}

const SLOT_TICKET: usize = 0;
const SLOT_PID: usize = 1;
const SLOT_WOKEN: usize = 2;

fn slot_at(i: usize, field: usize) -> usize {
    1 + 3 * i + field
}

/// Whether process `pid` exists (a reused pid counts as alive: see the crash table).
fn pid_alive(pid: u64) -> bool {
    if pid == u64::from(std::process::id()) {
        return true;
    }
    u32::try_from(pid).is_ok_and(|p| p != 0 && std::path::Path::new(&format!("/proc/{p}")).exists())
}

impl Waiters {
    fn new() -> procshare::Result<Waiters> {
        Ok(Waiters {
            cond: procshare::Condition::new()?,
            table: procshare::RawArray::new(1 + 3 * WAITER_SLOTS)?,
            exported: Exported::default(),
        })
    }

    // The table came from shared memory a peer may have scribbled on: every read is a plain
    // value (never an index), and our own indices are below the length checked at import.
    fn get(&self, i: usize) -> u64 {
        self.table.try_get(i).unwrap_or(0)
    }

    fn set(&self, i: usize, v: u64) {
        let _ = self.table.try_set(i, v);
    }

    fn free(&self, slot: usize) {
        self.set(slot_at(slot, SLOT_WOKEN), 0);
        self.set(slot_at(slot, SLOT_PID), 0);
        self.set(slot_at(slot, SLOT_TICKET), 0);
    }

    /// Claims a slot for a new waiter (table lock held by the caller).
    fn claim(&self) -> Option<usize> {
        let free = (0..WAITER_SLOTS)
            .find(|&i| self.get(slot_at(i, SLOT_TICKET)) == 0)
            .or_else(|| (0..WAITER_SLOTS).find(|&i| !pid_alive(self.get(slot_at(i, SLOT_PID)))))?;
        let ticket = self.get(0).wrapping_add(1).max(1);
        self.set(0, ticket);
        self.set(slot_at(free, SLOT_WOKEN), 0);
        self.set(slot_at(free, SLOT_PID), u64::from(std::process::id()));
        self.set(slot_at(free, SLOT_TICKET), ticket);
        Some(free)
    }

    /// Takes the table lock, claims a slot.
    fn enter(&self) -> PyResult<usize> {
        let _g = self.cond.lock().map_err(err)?;
        self.claim().ok_or_else(|| {
            PyRuntimeError::new_err(format!(
                "more than {WAITER_SLOTS} threads wait on this Condition at once"
            ))
        })
    }

    /// One slice of a wait: `Some(true)` woken, `None` not yet. The slot is freed when woken.
    fn wait_slice(&self, slot: usize, slice: Duration) -> PyResult<Option<bool>> {
        let mut g = self.cond.lock().map_err(err)?;
        if self.woken(slot) {
            self.free(slot);
            return Ok(Some(true));
        }
        if !slice.is_zero() {
            g.wait_timeout(slice).map_err(err)?;
            if self.woken(slot) {
                self.free(slot);
                return Ok(Some(true));
            }
        }
        Ok(None)
    }

    fn woken(&self, slot: usize) -> bool {
        self.get(slot_at(slot, SLOT_WOKEN)) != 0
    }

    /// Leaves without a wake (timeout, signal); true if a notify came at the last moment.
    fn leave(&self, slot: usize) -> PyResult<bool> {
        let _g = self.cond.lock().map_err(err)?;
        let woken = self.woken(slot);
        self.free(slot);
        Ok(woken)
    }

    /// Marks the `n` oldest live waiters woken and wakes the sleepers.
    fn notify(&self, n: usize) -> PyResult<()> {
        let _g = self.cond.lock().map_err(err)?;
        let mut waiting: Vec<(u64, usize)> = (0..WAITER_SLOTS)
            .filter_map(|i| {
                let t = self.get(slot_at(i, SLOT_TICKET));
                (t != 0 && !self.woken(i)).then_some((t, i))
            })
            .collect();
        waiting.sort_unstable();
        let mut marked = 0;
        for (_, i) in waiting {
            if marked == n {
                break;
            }
            if pid_alive(self.get(slot_at(i, SLOT_PID))) {
                self.set(slot_at(i, SLOT_WOKEN), 1);
                marked += 1;
            } else {
                self.free(i);
            }
        }
        if marked > 0 {
            self.cond.notify_all();
        }
        Ok(())
    }

    /// Slots in use (for tests: zero when nobody waits).
    fn in_use(&self) -> PyResult<usize> {
        let _g = self.cond.lock().map_err(err)?;
        Ok((0..WAITER_SLOTS).filter(|&i| self.get(slot_at(i, SLOT_TICKET)) != 0).count())
    }
}

/// A condition variable shared by processes (`multiprocessing.Condition(lock=None)`): `lock`
/// is a procshare `Lock` or `RLock` (a new `RLock` by default).
#[pyclass(module = "procshare", name = "Condition", frozen, weakref)]
pub struct Condition {
    lock: UserLock,
    waiters: Waiters,
}

impl Condition {
    fn check_owned(&self, py: Python<'_>, what: &str) -> PyResult<()> {
        if self.lock.is_mine() {
            Ok(())
        } else {
            Err(not_owned(py, &format!("cannot {what} on un-acquired lock")))
        }
    }

    fn wait_deadline(&self, py: Python<'_>, deadline: Option<Instant>) -> PyResult<bool> {
        self.check_owned(py, "wait")?;
        let waiters = &self.waiters;
        let slot = py.allow_threads(|| waiters.enter())?;
        let levels = match self.lock.release_all() {
            Ok(l) => l,
            Err(e) => {
                let _ = py.allow_threads(|| waiters.leave(slot));
                return Err(e);
            }
        };
        let r = blocking(py, deadline, |slice| waiters.wait_slice(slot, slice));
        let r = match r {
            Ok(Some(w)) => Ok(w),
            Ok(None) => py.allow_threads(|| waiters.leave(slot)),
            Err(e) => {
                let _ = py.allow_threads(|| waiters.leave(slot));
                Err(e)
            }
        };
        self.lock.restore(py, levels)?;
        r
    }
}

#[pymethods]
impl Condition {
    #[new]
    #[pyo3(signature = (lock = None, *, ctx = None))]
    fn new(
        py: Python<'_>,
        lock: Option<&Bound<'_, PyAny>>,
        ctx: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let _ = ctx; // multiprocessing's keyword, unused (see Lock)
        let lock = match lock {
            None => UserLock::RLock(Py::new(py, RLock::new(None)?)?),
            Some(l) => {
                if let Ok(l) = l.downcast::<Lock>() {
                    UserLock::Lock(l.clone().unbind())
                } else if let Ok(l) = l.downcast::<RLock>() {
                    UserLock::RLock(l.clone().unbind())
                } else {
                    return Err(PyTypeError::new_err(
                        "Condition(lock) needs a procshare.Lock or procshare.RLock",
                    ));
                }
            }
        };
        Ok(Condition { lock, waiters: Waiters::new().map_err(err)? })
    }

    /// Acquire the underlying lock (same arguments and result as its `acquire`).
    #[pyo3(signature = (block = Truthy(true), timeout = None))]
    fn acquire(&self, py: Python<'_>, block: Truthy, timeout: Option<f64>) -> PyResult<bool> {
        match &self.lock {
            UserLock::Lock(l) => l.get().acquire(py, block, timeout),
            UserLock::RLock(l) => l.get().acquire(py, block, timeout),
        }
    }

    /// Release the underlying lock.
    fn release(&self) -> PyResult<()> {
        match &self.lock {
            UserLock::Lock(l) => l.get().release_inner(),
            UserLock::RLock(l) => l.get().release_inner(),
        }
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        match &self.lock {
            UserLock::Lock(l) => l.get().acquire_deadline(py, None),
            UserLock::RLock(l) => l.get().acquire_deadline(py, None),
        }
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release()
    }

    /// Release the lock, wait until notified (True) or `timeout` seconds passed (False), and
    /// take the lock again. The lock must be held (else an error that is both RuntimeError and
    /// AssertionError).
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = deadline_from(timeout)?;
        self.wait_deadline(py, deadline)
    }

    /// Wait until `predicate()` is true (at most `timeout` seconds); its last result.
    #[pyo3(signature = (predicate, timeout = None))]
    fn wait_for(
        &self,
        py: Python<'_>,
        predicate: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let mut result = predicate.call0()?;
        let deadline = deadline_from(timeout)?;
        while !result.is_truthy()? {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            self.wait_deadline(py, deadline)?;
            result = predicate.call0()?;
        }
        Ok(result.unbind())
    }

    /// Wake up to `n` waiters (in any process). The lock must be held.
    #[pyo3(signature = (n = 1))]
    fn notify(&self, py: Python<'_>, n: i64) -> PyResult<()> {
        self.check_owned(py, "notify")?;
        let n = usize::try_from(n).unwrap_or(0);
        if n == 0 {
            return Ok(());
        }
        let waiters = &self.waiters;
        py.allow_threads(|| waiters.notify(n))
    }

    /// Wake every waiter. The lock must be held.
    fn notify_all(&self, py: Python<'_>) -> PyResult<()> {
        self.check_owned(py, "notify")?;
        let waiters = &self.waiters;
        py.allow_threads(|| waiters.notify(usize::MAX))
    }

    /// The underlying lock.
    #[getter]
    fn _lock(&self, py: Python<'_>) -> Py<PyAny> {
        self.lock.object(py)
    }

    /// Threads waiting now (a snapshot; for tests).
    fn _waiting(&self, py: Python<'_>) -> PyResult<usize> {
        let waiters = &self.waiters;
        py.allow_threads(|| waiters.in_use())
    }

    fn __repr__(&self) -> String {
        format!("<procshare.Condition(waiting={})>", self.waiters.in_use().unwrap_or(0))
    }

    fn __reduce__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let w = &this.waiters;
        let (bytes, fds) = export_for_child(py, "Condition", &w.exported, &(&w.cond, &w.table))?;
        let rebuild = py.import("procshare._procshare")?.getattr("_rebuild_condition")?;
        Ok((rebuild, (this.lock.object(py), bytes, fds)).into_pyobject(py)?.into_any().unbind())
    }
}

#[pyfunction]
fn _rebuild_condition(
    lock: &Bound<'_, PyAny>,
    bytes: &[u8],
    fds: &Bound<'_, PyAny>,
) -> PyResult<Condition> {
    let (cond, table) = import_in_child(bytes, fds)?;
    let waiters = Waiters { cond, table, exported: Exported::default() };
    if waiters.table.len() != 1 + 3 * WAITER_SLOTS {
        return Err(PyValueError::new_err("a Condition's waiter table has the wrong size"));
    }
    let lock = if let Ok(l) = lock.downcast::<Lock>() {
        UserLock::Lock(l.clone().unbind())
    } else {
        UserLock::RLock(lock.downcast::<RLock>()?.clone().unbind())
    };
    Ok(Condition { lock, waiters })
}

// ---------------------------------------------------------------------------------------------
// Barrier

fn broken_barrier(py: Python<'_>) -> PyErr {
    match py.import("threading").and_then(|t| t.getattr("BrokenBarrierError")) {
        Ok(ty) => match ty.downcast_into::<PyType>() {
            Ok(ty) => PyErr::from_type(ty, ()),
            Err(e) => e.into(),
        },
        Err(e) => e,
    }
}

/// This process's handle on a barrier, shared with the exit hook that drops it: a process
/// that exits without dropping its handle counts as dead to the others (procshare's
/// `Barrier`), and `multiprocessing` children leave by `os._exit`.
#[pyclass(module = "procshare._procshare", frozen)]
struct BarrierHandle {
    inner: Mutex<Option<procshare::Barrier>>,
    /// The `multiprocessing.util.Finalize` that calls `close` at exit.
    exit_hook: Mutex<Option<Py<PyAny>>>,
}

#[pymethods]
impl BarrierHandle {
    /// Drops this process's handle (the exit hook).
    fn close(&self) {
        if let Ok(mut h) = self.inner.lock() {
            h.take();
        }
    }
}

impl BarrierHandle {
    fn get(&self) -> PyResult<procshare::Barrier> {
        self.inner
            .lock()
            .ok()
            .and_then(|h| h.clone())
            .ok_or_else(|| PyValueError::new_err("the barrier was closed at process exit"))
    }
}

/// A meeting point for `parties` threads or processes (`multiprocessing.Barrier(parties,
/// action=None, timeout=None)`).
#[pyclass(module = "procshare", name = "Barrier", frozen, weakref)]
pub struct Barrier {
    handle: Py<BarrierHandle>,
    exported: Exported,
    action: Option<Py<PyAny>>,
    timeout: Option<f64>,
    parties: usize,
}

impl Barrier {
    /// Makes sure this process drops its handle at exit (`multiprocessing.util.Finalize`,
    /// which `multiprocessing` children run before `os._exit`). A child's `_bootstrap` clears
    /// the finalizers it inherited or made while unpickling, so this runs again after that
    /// (`register_after_fork`) and at every `wait`.
    fn hook_exit(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let handle = slf.get().handle.bind(py).get();
        let mut hook = handle.exit_hook.lock().map_err(|_| PyRuntimeError::new_err("poisoned"))?;
        if let Some(h) = hook.as_ref() {
            if h.bind(py).call_method0("still_active")?.is_truthy()? {
                return Ok(());
            }
        }
        let finalize = py.import("multiprocessing.util")?.getattr("Finalize")?;
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("exitpriority", 0)?;
        let close = slf.get().handle.bind(py).getattr("close")?;
        *hook = Some(finalize.call((slf, close), Some(&kwargs))?.unbind());
        Ok(())
    }

    /// Hooks this process's exit now and in every `multiprocessing` child after its start.
    fn hook_exits(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        Barrier::hook_exit(slf)?;
        let after_fork = py.import("procshare._procshare")?.getattr("_barrier_after_fork")?;
        py.import("multiprocessing.util")?
            .call_method1("register_after_fork", (slf, after_fork))?;
        Ok(())
    }

    /// One meeting: the arrival index. Breaks the barrier if `deadline` passes or a signal
    /// handler raises.
    fn meet(&self, py: Python<'_>, deadline: Option<Instant>) -> PyResult<usize> {
        let b = self.handle.get().get()?;
        if self.parties == 1 {
            return b.wait().map_err(|_| broken_barrier(py));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let helper = {
            let b = b.clone();
            std::thread::Builder::new()
                .name("procshare-barrier".into())
                .spawn(move || {
                    let _ = tx.send(b.wait());
                })
                .map_err(|e| PyOSError::new_err(e.to_string()))?
        };
        let rx = Mutex::new(rx);
        let r = blocking(py, deadline, |slice| {
            let rx = rx.lock().map_err(|_| PyRuntimeError::new_err("poisoned"))?;
            match rx.recv_timeout(slice) {
                Ok(r) => Ok(Some(r)),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Ok(None),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    Err(PyRuntimeError::new_err("the barrier's helper thread died"))
                }
            }
        });
        let outcome = match r {
            Ok(Some(r)) => Ok(r),
            other => {
                // Timed out or interrupted: break the round unless it has just completed (as
                // CPython's `_break`), and collect the helper's answer.
                let rx = rx.into_inner().map_err(|_| PyRuntimeError::new_err("poisoned"))?;
                let done = match rx.try_recv() {
                    Ok(r) => r,
                    Err(_) => {
                        b.abort();
                        py.allow_threads(move || rx.recv())
                            .unwrap_or(Err(procshare::Error::PeerDied))
                    }
                };
                match other {
                    Err(e) => {
                        let _ = done;
                        Err(e)
                    }
                    _ => match done {
                        Ok(i) => Ok(Ok(i)),
                        Err(_) => Err(broken_barrier(py)),
                    },
                }
            }
        };
        let _ = py.allow_threads(|| helper.join());
        match outcome? {
            Ok(i) => Ok(i),
            Err(_) => Err(broken_barrier(py)),
        }
    }
}

#[pymethods]
impl Barrier {
    #[new]
    #[pyo3(signature = (parties, action = None, timeout = None, *, ctx = None))]
    fn new(
        py: Python<'_>,
        parties: i64,
        action: Option<Py<PyAny>>,
        timeout: Option<f64>,
        ctx: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<Self>> {
        let _ = ctx; // multiprocessing's keyword, unused (see Lock)
        if parties < 1 {
            return Err(PyValueError::new_err("parties must be >= 1"));
        }
        let parties = usize::try_from(parties).unwrap_or(usize::MAX);
        let inner = procshare::Barrier::new(parties).map_err(err)?;
        let handle = Py::new(
            py,
            BarrierHandle { inner: Mutex::new(Some(inner)), exit_hook: Mutex::new(None) },
        )?;
        let b = Bound::new(
            py,
            Barrier { handle, exported: Exported::default(), action, timeout, parties },
        )?;
        Barrier::hook_exits(&b)?;
        Ok(b.unbind())
    }

    /// Wait until `parties` parties have called `wait`; returns this party's arrival index
    /// (0 to parties - 1). Raises `threading.BrokenBarrierError` if the barrier is or becomes
    /// broken (`abort`, `reset` while waiting, a timeout, a party that died).
    #[pyo3(signature = (timeout = None))]
    fn wait(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<usize> {
        let py = slf.py();
        Barrier::hook_exit(slf)?;
        let this = slf.get();
        let deadline = deadline_from(timeout.or(this.timeout))?;
        let index = this.meet(py, deadline)?;
        let Some(action) = &this.action else { return Ok(index) };
        if index + 1 == this.parties {
            if let Err(e) = action.call0(py) {
                if let Ok(b) = this.handle.get().get() {
                    b.abort();
                }
                return Err(e);
            }
        }
        this.meet(py, deadline)?;
        Ok(index)
    }

    /// Put the barrier back to its empty state; parties waiting now get BrokenBarrierError.
    fn reset(&self) -> PyResult<()> {
        self.handle.get().get()?.reset();
        Ok(())
    }

    /// Break the barrier: current and later waits raise BrokenBarrierError until `reset`.
    fn abort(&self) -> PyResult<()> {
        self.handle.get().get()?.abort();
        Ok(())
    }

    /// The number of parties.
    #[getter]
    fn parties(&self) -> usize {
        self.parties
    }

    /// The number of parties waiting now.
    #[getter]
    fn n_waiting(&self) -> PyResult<usize> {
        Ok(self.handle.get().get()?.n_waiting())
    }

    /// Whether the barrier is broken.
    #[getter]
    fn broken(&self) -> PyResult<bool> {
        Ok(self.handle.get().get()?.broken())
    }

    fn __repr__(&self) -> String {
        let waiting = self.n_waiting().unwrap_or(0);
        format!("<procshare.Barrier(parties={}, waiting={waiting})>", self.parties)
    }

    fn __reduce__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let b = this.handle.get().get()?;
        let (bytes, fds) = export_for_child(py, "Barrier", &this.exported, &b)?;
        let rebuild = py.import("procshare._procshare")?.getattr("_rebuild_barrier")?;
        let action = this.action.as_ref().map(|a| a.clone_ref(py));
        Ok((rebuild, (bytes, fds, action, this.timeout)).into_pyobject(py)?.into_any().unbind())
    }
}

#[pyfunction]
fn _rebuild_barrier(
    py: Python<'_>,
    bytes: &[u8],
    fds: &Bound<'_, PyAny>,
    action: Option<Py<PyAny>>,
    timeout: Option<f64>,
) -> PyResult<Py<Barrier>> {
    // Importing registers this process as a party (procshare's Barrier): hook its exit now.
    let inner: procshare::Barrier = import_in_child(bytes, fds)?;
    let parties = inner.parties();
    let handle =
        Py::new(py, BarrierHandle { inner: Mutex::new(Some(inner)), exit_hook: Mutex::new(None) })?;
    let b = Bound::new(
        py,
        Barrier { handle, exported: Exported::default(), action, timeout, parties },
    )?;
    Barrier::hook_exits(&b)?;
    Ok(b.unbind())
}

#[pyfunction]
fn _barrier_after_fork(barrier: &Bound<'_, Barrier>) -> PyResult<()> {
    Barrier::hook_exit(barrier)
}

/// Adds the synchronisation classes to the extension module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Lock>()?;
    m.add_class::<RLock>()?;
    m.add_class::<Semaphore>()?;
    m.add_class::<BoundedSemaphore>()?;
    m.add_class::<Event>()?;
    m.add_class::<Condition>()?;
    m.add_class::<Barrier>()?;
    m.add_function(wrap_pyfunction!(_rebuild_lock, m)?)?;
    m.add_function(wrap_pyfunction!(_rebuild_rlock, m)?)?;
    m.add_function(wrap_pyfunction!(_rebuild_semaphore, m)?)?;
    m.add_function(wrap_pyfunction!(_rebuild_bounded_semaphore, m)?)?;
    m.add_function(wrap_pyfunction!(_rebuild_event, m)?)?;
    m.add_function(wrap_pyfunction!(_rebuild_condition, m)?)?;
    m.add_function(wrap_pyfunction!(_rebuild_barrier, m)?)?;
    m.add_function(wrap_pyfunction!(_barrier_after_fork, m)?)?;
    let after_fork = wrap_pyfunction!(_after_fork_in_child, m)?;
    let kwargs = pyo3::types::PyDict::new(m.py());
    kwargs.set_item("after_in_child", &after_fork)?;
    m.py().import("os")?.getattr("register_at_fork")?.call((), Some(&kwargs))?;
    m.add_function(after_fork)?;
    m.add("LockNotOwnedError", not_owned_type(m.py())?)?;
    Ok(())
}
