//! Blocking calls that Ctrl-C can interrupt.
//!
//! A Rust call that waits (a queue `get`, a lock `acquire`, a `recv`) must not hold the GIL,
//! or every other Python thread stops, and must not wait in one piece, or `KeyboardInterrupt`
//! (raised by Python's SIGINT handler, which only runs when the main thread executes Python
//! bytecode) waits with it. [`blocking`] runs the wait with the GIL released in slices of at
//! most [`SLICE`] and calls `py.check_signals()` between slices, so a pending signal handler
//! runs and its exception (`KeyboardInterrupt`, or whatever a user handler raises) propagates
//! within a slice. Off the main thread `check_signals` does nothing, as in CPython.
//!
//! ```text
//!   blocking(py, deadline, f)
//!     loop:  [GIL released]  f(min(remaining, 100 ms)) -> Some(r) => return Some(r)
//!                                                      -> None    => slice ran out
//!            deadline passed?                          => return None
//!            [GIL held]      py.check_signals()?       => Err(KeyboardInterrupt ...)
//! ```

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::time::{Duration, Instant};

/// The longest stretch a blocking call spends without looking at Python's signal flags.
pub const SLICE: Duration = Duration::from_millis(100);

/// Runs `f` with the GIL released, in slices of at most [`SLICE`], until it returns `Some` or
/// `deadline` passes (`None`: forever).
///
/// `f` gets the time it may wait in this slice (zero if the deadline is already past: it
/// should then just look once) and returns `None` when that ran out with nothing done.
/// Returns `Ok(Some(r))` when `f` succeeded, `Ok(None)` when the deadline passed, and the
/// exception of a signal handler (`KeyboardInterrupt` on Ctrl-C) if one raised in between.
pub fn blocking<T: Send>(
    py: Python<'_>,
    deadline: Option<Instant>,
    mut f: impl FnMut(Duration) -> Option<T> + Send,
) -> PyResult<Option<T>> {
    loop {
        let slice = match deadline {
            None => SLICE,
            Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
        };
        if let Some(r) = py.allow_threads(|| f(slice)) {
            return Ok(Some(r));
        }
        py.check_signals()?;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
    }
}

/// The deadline of a Python `timeout` argument: `None` waits forever, as does a timeout too
/// large for the clock; a negative one means "just look" (as `multiprocessing` treats it);
/// NaN is a `ValueError`.
pub fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    let Some(t) = timeout else { return Ok(None) };
    if t.is_nan() {
        return Err(PyValueError::new_err("timeout must be a number, not NaN"));
    }
    let now = Instant::now();
    if t <= 0.0 {
        return Ok(Some(now));
    }
    Ok(Duration::try_from_secs_f64(t).ok().and_then(|d| now.checked_add(d)))
}

/// Python's own exception classes, looked up once (so `except queue.Empty` catches ours).
fn class(py: Python<'_>, module: &str, name: &str) -> PyResult<Py<pyo3::types::PyType>> {
    Ok(py.import(module)?.getattr(name)?.downcast_into::<pyo3::types::PyType>()?.unbind())
}

macro_rules! cached_class {
    ($fn:ident, $module:literal, $name:literal) => {
        /// The Python class, looked up once.
        pub fn $fn(py: Python<'_>) -> PyResult<&Bound<'_, pyo3::types::PyType>> {
            static CELL: pyo3::sync::GILOnceCell<Py<pyo3::types::PyType>> =
                pyo3::sync::GILOnceCell::new();
            Ok(CELL.get_or_try_init(py, || class(py, $module, $name))?.bind(py))
        }
    };
}
cached_class!(empty_class, "queue", "Empty");
cached_class!(full_class, "queue", "Full");
cached_class!(buffer_too_short_class, "multiprocessing", "BufferTooShort");
cached_class!(authentication_error_class, "multiprocessing", "AuthenticationError");
cached_class!(unpickling_error_class, "pickle", "UnpicklingError");

pyo3::create_exception!(
    procshare,
    ShutDown,
    pyo3::exceptions::PyException,
    "Raised by put/get on a queue that was shut down (queue.ShutDown on Python 3.13+)."
);

/// `queue.ShutDown` where Python has it (3.13+), else procshare's own `ShutDown`.
pub fn shutdown_class(py: Python<'_>) -> PyResult<&Bound<'_, pyo3::types::PyType>> {
    static CELL: pyo3::sync::GILOnceCell<Py<pyo3::types::PyType>> = pyo3::sync::GILOnceCell::new();
    Ok(CELL
        .get_or_try_init(py, || {
            class(py, "queue", "ShutDown")
                .or_else(|_| Ok::<_, PyErr>(py.get_type::<ShutDown>().unbind()))
        })?
        .bind(py))
}

/// The Python exception a procshare error stands for, as `multiprocessing` raises it.
///
/// `Closed` is `ValueError` (a queue used after `close()`); connections map it to `OSError`
/// themselves. `Codec` (an item or message that does not decode, e.g. garbled by a hostile peer)
/// is `pickle.UnpicklingError`, what `pickle.loads` raises on bad bytes.
pub fn error(py: Python<'_>, e: procshare::Error) -> PyErr {
    use procshare::Error as E;
    let msg = e.to_string();
    fn typed<A: pyo3::PyErrArguments + Send + Sync + 'static>(
        cls: PyResult<&Bound<'_, pyo3::types::PyType>>,
        args: A,
    ) -> PyErr {
        match cls {
            Ok(cls) => PyErr::from_type(cls.clone(), args),
            Err(lookup) => lookup,
        }
    }
    match e {
        E::Empty => typed(empty_class(py), ()),
        E::Full => typed(full_class(py), ()),
        E::ShutDown => typed(shutdown_class(py), ()),
        E::Timeout => pyo3::exceptions::PyTimeoutError::new_err(msg),
        E::Closed => PyValueError::new_err(msg),
        E::Eof => pyo3::exceptions::PyEOFError::new_err(()),
        E::TaskDoneTooManyTimes => PyValueError::new_err("task_done() called too many times"),
        E::MessageTooLarge { .. } => PyValueError::new_err(msg),
        E::BufferTooShort(m) => {
            typed(buffer_too_short_class(py), (pyo3::types::PyBytes::new(py, &m).unbind(),))
        }
        E::AuthenticationFailed => typed(authentication_error_class(py), (msg,)),
        E::AlreadyExists(_) => pyo3::exceptions::PyFileExistsError::new_err(msg),
        E::NotFound(_) => pyo3::exceptions::PyFileNotFoundError::new_err(msg),
        E::InvalidArgument(_) => PyValueError::new_err(msg),
        E::Codec(_) => typed(unpickling_error_class(py), (msg,)),
        E::PeerDied => pyo3::exceptions::PyOSError::new_err(msg),
        E::Io(io) => PyErr::from(io),
        other => pyo3::exceptions::PyOSError::new_err(other.to_string()),
    }
}
