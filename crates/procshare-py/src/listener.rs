//! `_Listener` and `_connect`: procshare's `Listener`/`connect` (CPython's wire format and
//! authkey handshake) for `procshare.connection.Listener` and `Client`, which do the address
//! handling in Python with CPython's own helpers (family inference, arbitrary addresses).
//!
//! An address crosses as `(kind, text)`: `("tcp", "1.2.3.4:5")` or `("unix", "/path")`.
//! `accept` waits with the GIL released in slices (Ctrl-C interrupts it); a peer with the
//! wrong key makes it raise `multiprocessing.AuthenticationError`, as CPython's.

use crate::conn::PyConnection;
use crate::signals::{self, blocking};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use std::sync::{Arc, RwLock};

fn address(kind: &str, text: &str) -> PyResult<procshare::Address> {
    match kind {
        "tcp" => text
            .parse()
            .map(procshare::Address::Tcp)
            .map_err(|_| PyValueError::new_err(format!("bad TCP address {text:?}"))),
        "unix" => Ok(procshare::Address::Unix(text.into())),
        other => Err(PyValueError::new_err(format!("unknown address kind {other:?}"))),
    }
}

fn kind_and_text(a: &procshare::Address) -> (&'static str, String) {
    match a {
        procshare::Address::Tcp(s) => ("tcp", s.to_string()),
        procshare::Address::Unix(p) => ("unix", p.to_string_lossy().into_owned()),
    }
}

/// A listening socket (the core of `procshare.connection.Listener`).
#[pyclass(name = "_Listener", module = "procshare._procshare", frozen)]
pub struct PyListener {
    /// `None` once closed; a call under way keeps its `Arc` until it returns.
    inner: RwLock<Option<Arc<procshare::Listener>>>,
}

impl PyListener {
    fn get(&self) -> PyResult<Arc<procshare::Listener>> {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        g.clone().ok_or_else(|| PyOSError::new_err("listener is closed"))
    }
}

#[pymethods]
impl PyListener {
    #[new]
    #[pyo3(signature = (kind, text, authkey = None))]
    fn new(py: Python<'_>, kind: &str, text: &str, authkey: Option<Vec<u8>>) -> PyResult<Self> {
        let l = procshare::Listener::bind(address(kind, text)?, authkey.as_deref())
            .map_err(|e| signals::error(py, e))?;
        Ok(PyListener { inner: RwLock::new(Some(Arc::new(l))) })
    }

    /// accept()
    /// --
    ///
    /// The next peer's connection, once it passed the handshake.
    fn accept(&self, py: Python<'_>) -> PyResult<PyConnection> {
        let l = self.get()?;
        let r = blocking(py, None, |slice| match l.accept_timeout(slice) {
            Err(procshare::Error::Timeout) => None,
            r => Some(r),
        })?;
        match r {
            Some(Ok(c)) => Ok(PyConnection::wrap(c)),
            Some(Err(e)) => Err(signals::error(py, e)),
            None => Err(PyOSError::new_err("accept ended without a connection")),
        }
    }

    /// The address bound, as `(kind, text)`.
    fn address(&self) -> PyResult<(&'static str, String)> {
        Ok(kind_and_text(&self.get()?.address()))
    }

    /// close()
    /// --
    ///
    /// Stops listening (a Unix socket's file is removed); idempotent.
    fn close(&self) {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// _connect(kind, text, authkey=None)
/// --
///
/// A connection to the listener at the address (procshare's or CPython's), after the
/// handshake when there is an authkey.
#[pyfunction]
#[pyo3(signature = (kind, text, authkey = None))]
fn _connect(
    py: Python<'_>,
    kind: &str,
    text: &str,
    authkey: Option<Vec<u8>>,
) -> PyResult<PyConnection> {
    let addr = address(kind, text)?;
    let c = py
        .allow_threads(|| procshare::connect(&addr, authkey.as_deref()))
        .map_err(|e| signals::error(py, e))?;
    Ok(PyConnection::wrap(c))
}

/// Registers `_Listener` and `_connect`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyListener>()?;
    m.add_function(wrap_pyfunction!(_connect, m)?)?;
    Ok(())
}
