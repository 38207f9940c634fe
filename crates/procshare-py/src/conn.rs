//! `procshare.Pipe` and `Connection`: `multiprocessing.connection.Connection`'s methods on
//! procshare's `Connection` (only its public API: the transport underneath is procshare's).
//!
//! Objects are pickled by the caller (`send` raises pickling errors) and sent as one message
//! of bytes; `recv` unpickles after the message was received. A blocked `recv`/`poll` waits
//! with the GIL released in slices (`signals::blocking`), so Ctrl-C interrupts it. `send`
//! releases the GIL but is not sliced (it waits only while the peer's buffer is full).
//!
//! `close()` drops this object's reference to the handle; a call already under way in another
//! thread keeps the descriptor until it returns (so the number is never reused under it).

use crate::queue::{unpickle, with_pickle};
use crate::reduce::{self, Exported};
use crate::signals::{self, blocking};
use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PySlice, PyTuple};
use std::sync::{Arc, RwLock};

/// One end of a pipe (`multiprocessing.connection.Connection`).
///
/// Made by Pipe(). send/recv move picklable objects, send_bytes/recv_bytes/recv_bytes_into
/// raw bytes; each message arrives whole. Any number of processes may share an end (pass it
/// to multiprocessing.Process children: fork, spawn, forkserver); each message goes to one
/// reader. Operations on a closed connection raise OSError("handle is closed").
#[pyclass(name = "Connection", module = "procshare._procshare", frozen)]
pub struct PyConnection {
    conn: RwLock<Option<Arc<procshare::Connection>>>,
    readable: bool,
    writable: bool,
    exported: Exported,
}

impl PyConnection {
    pub(crate) fn wrap(c: procshare::Connection) -> Self {
        PyConnection {
            readable: c.readable(),
            writable: c.writable(),
            conn: RwLock::new(Some(Arc::new(c))),
            exported: Exported::default(),
        }
    }

    fn handle(&self) -> PyResult<Arc<procshare::Connection>> {
        let g = self.conn.read().unwrap_or_else(|p| p.into_inner());
        g.clone().ok_or_else(|| PyOSError::new_err("handle is closed"))
    }

    fn check_readable(&self) -> PyResult<Arc<procshare::Connection>> {
        let c = self.handle()?;
        if !self.readable {
            return Err(PyOSError::new_err("connection is write-only"));
        }
        Ok(c)
    }

    fn check_writable(&self) -> PyResult<Arc<procshare::Connection>> {
        let c = self.handle()?;
        if !self.writable {
            return Err(PyOSError::new_err("connection is read-only"));
        }
        Ok(c)
    }

    /// Receives one message, waiting in slices (Ctrl-C interrupts the wait).
    fn recv_message(&self, py: Python<'_>, maxlength: Option<usize>) -> PyResult<Vec<u8>> {
        let c = self.check_readable()?;
        let r = blocking(py, None, |slice| match c.poll(Some(slice)) {
            Ok(false) => None,
            Ok(true) => Some(match maxlength {
                Some(m) => c.recv_bytes_max(m),
                None => c.recv_bytes(),
            }),
            Err(e) => Some(Err(e)),
        })?;
        match r.expect("no deadline") {
            Ok(v) => Ok(v),
            Err(procshare::Error::MessageTooLarge { .. }) if maxlength.is_some() => {
                // multiprocessing's text; unlike it, the message stays readable (nothing lost).
                Err(PyOSError::new_err("bad message length"))
            }
            Err(e) => Err(signals::error(py, e)),
        }
    }

    fn send_message(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        let c = self.check_writable()?;
        py.allow_threads(|| c.send_bytes(data)).map_err(|e| signals::error(py, e))
    }
}

#[pymethods]
impl PyConnection {
    /// send(obj)
    /// --
    ///
    /// Pickles obj (protocol 5; pickling errors are raised here) and sends it as one message.
    fn send(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        self.check_writable()?;
        with_pickle(py, obj, |data| self.send_message(py, data))
    }

    /// recv()
    /// --
    ///
    /// Receives one message sent with send() and returns the unpickled object. Waits for one
    /// (Ctrl-C interrupts the wait); EOFError once the other end is closed and nothing is left.
    fn recv<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let data = self.recv_message(py, None)?;
        unpickle(py, data)
    }

    /// send_bytes(buf, offset=0, size=None)
    /// --
    ///
    /// Sends size bytes of the bytes-like object buf starting at byte offset (all the rest by
    /// default) as one message. ValueError for a bad offset or size.
    #[pyo3(signature = (buf, offset = 0, size = None))]
    fn send_bytes(
        &self,
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        offset: isize,
        size: Option<isize>,
    ) -> PyResult<()> {
        self.check_writable()?;
        let owned;
        let whole: &[u8] = if let Ok(b) = buf.downcast::<PyBytes>() {
            b.as_bytes()
        } else {
            let view = py.import("builtins")?.getattr("memoryview")?.call1((buf,))?;
            owned = view.call_method0("tobytes")?.downcast_into::<PyBytes>()?;
            owned.as_bytes()
        };
        let n = whole.len() as isize;
        if offset < 0 {
            return Err(PyValueError::new_err("offset is negative"));
        }
        if n < offset {
            return Err(PyValueError::new_err("buffer length < offset"));
        }
        let size = match size {
            None => n - offset,
            Some(s) if s < 0 => return Err(PyValueError::new_err("size is negative")),
            Some(s) if offset + s > n => {
                return Err(PyValueError::new_err("buffer length < offset + size"))
            }
            Some(s) => s,
        };
        self.send_message(py, &whole[offset as usize..(offset + size) as usize])
    }

    /// recv_bytes(maxlength=None)
    /// --
    ///
    /// Receives one message and returns it as bytes. Waits for one (Ctrl-C interrupts it);
    /// EOFError once the other end is closed and nothing is left. A message longer than
    /// maxlength raises OSError("bad message length") as multiprocessing does, but stays
    /// readable (multiprocessing closes the connection).
    #[pyo3(signature = (maxlength = None))]
    fn recv_bytes<'py>(
        &self,
        py: Python<'py>,
        maxlength: Option<isize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let max = match maxlength {
            Some(m) if m < 0 => return Err(PyValueError::new_err("negative maxlength")),
            Some(m) => Some(m as usize),
            None => None,
        };
        let data = self.recv_message(py, max)?;
        Ok(PyBytes::new(py, &data))
    }

    /// recv_bytes_into(buf, offset=0)
    /// --
    ///
    /// Receives one message into the writable bytes-like object buf at byte offset and
    /// returns its length in bytes. A message that does not fit raises
    /// multiprocessing.BufferTooShort with the whole message as args[0] (nothing is lost).
    #[pyo3(signature = (buf, offset = 0))]
    fn recv_bytes_into(
        &self,
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        offset: isize,
    ) -> PyResult<usize> {
        let view = py.import("builtins")?.getattr("memoryview")?.call1((buf,))?;
        if view.getattr("readonly")?.extract::<bool>()? {
            return Err(PyTypeError::new_err("recv_bytes_into needs a writable buffer"));
        }
        let nbytes: isize = view.getattr("nbytes")?.extract()?;
        if offset < 0 {
            return Err(PyValueError::new_err("negative offset"));
        }
        if offset > nbytes {
            return Err(PyValueError::new_err("offset too large"));
        }
        let data = self.recv_message(py, None)?;
        if nbytes < offset + data.len() as isize {
            return Err(signals::error(py, procshare::Error::BufferTooShort(data)));
        }
        // Through memoryview slice assignment: the buffer C API is not in the abi3 set of
        // Python 3.9. cast("B") makes the offsets bytes, as multiprocessing counts them.
        let bytes = view.call_method1("cast", ("B",))?;
        let at = offset;
        let end = offset + data.len() as isize;
        bytes.set_item(PySlice::new(py, at, end, 1), PyBytes::new(py, &data))?;
        bytes.call_method0("release")?;
        view.call_method0("release")?;
        Ok(data.len())
    }

    /// poll(timeout=0.0)
    /// --
    ///
    /// Whether there is something to read (a message, or end-of-file). Waits up to timeout
    /// seconds (None: until there is); Ctrl-C interrupts the wait. Consumes nothing.
    #[pyo3(signature = (timeout = 0.0))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let c = self.check_readable()?;
        let deadline = signals::deadline(timeout)?;
        let r = blocking(py, deadline, |slice| match c.poll(Some(slice)) {
            Ok(false) => None,
            r => Some(r),
        })?;
        match r {
            None => Ok(false),
            Some(r) => r.map_err(|e| signals::error(py, e)),
        }
    }

    /// close()
    /// --
    ///
    /// Closes this handle (idempotent). The other end sees end-of-file once every handle on
    /// this end, in every process, is closed.
    fn close(&self) {
        let old = self.conn.write().unwrap_or_else(|p| p.into_inner()).take();
        drop(old);
        // The descriptors exported for a child (spawn, forkserver) go too, or this process
        // would keep the end open and the peer would never see end-of-file.
        self.exported.clear();
    }

    /// True once close() was called.
    #[getter]
    fn closed(&self) -> bool {
        self.conn.read().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    /// True if this end can receive.
    #[getter]
    fn readable(&self) -> bool {
        self.readable
    }

    /// True if this end can send.
    #[getter]
    fn writable(&self) -> bool {
        self.writable
    }

    /// fileno()
    /// --
    ///
    /// A descriptor of this end (stable while the object is open; a duplicate owned by this
    /// object: do not close it). Not a readiness source for select/selectors: the pipe rings
    /// its doorbell only for waiters counted by poll() and procshare.connection.wait(), so use
    /// those to wait for a message.
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        let c = self.handle()?;
        self.exported.first_fd(py, &*c)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) {
        self.close();
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let c = slf.get().handle()?;
        reduce::reduce(slf.as_any(), &slf.get().exported, &*c)
    }

    #[staticmethod]
    fn _from_reduced(py: Python<'_>, bytes: &[u8], fds: Vec<i32>) -> PyResult<Self> {
        Ok(Self::wrap(reduce::import(py, bytes, fds)?))
    }
}

/// Pipe(duplex=True)
/// --
///
/// A pair of connected Connections. duplex=True: both ends send and receive; duplex=False:
/// (receive-only end, send-only end), as multiprocessing.Pipe.
#[pyfunction]
#[pyo3(name = "Pipe", signature = (duplex = true))]
fn pipe(py: Python<'_>, duplex: bool) -> PyResult<(PyConnection, PyConnection)> {
    let (a, b) = if duplex { procshare::pipe() } else { procshare::pipe_simplex() }
        .map_err(|e| signals::error(py, e))?;
    Ok((PyConnection::wrap(a), PyConnection::wrap(b)))
}

/// _wait(connections, timeout=None)
/// --
///
/// The procshare Connections of the list that are ready to read (a message or end-of-file),
/// waiting up to timeout seconds (None: until one is) for the first; Ctrl-C interrupts it.
#[pyfunction]
#[pyo3(signature = (connections, timeout = None))]
fn _wait<'py>(
    py: Python<'py>,
    connections: Vec<Bound<'py, PyConnection>>,
    timeout: Option<f64>,
) -> PyResult<Bound<'py, PyList>> {
    let mut handles = Vec::with_capacity(connections.len());
    for c in &connections {
        handles.push(c.get().check_readable()?);
    }
    let deadline = signals::deadline(timeout)?;
    let refs: Vec<&procshare::Connection> = handles.iter().map(|h| &**h).collect();
    let r = blocking(py, deadline, |slice| match procshare::wait(&refs, Some(slice)) {
        Ok(v) if v.is_empty() => None,
        r => Some(r),
    })?;
    let ready = match r {
        None => Vec::new(),
        Some(r) => r.map_err(|e| signals::error(py, e))?,
    };
    let out = PyList::empty(py);
    for i in ready {
        if let Some(c) = connections.get(i) {
            out.append(c)?;
        }
    }
    Ok(out)
}

/// Registers Connection, Pipe and _wait.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyConnection>()?;
    m.add_function(wrap_pyfunction!(pipe, m)?)?;
    m.add_function(wrap_pyfunction!(_wait, m)?)?;
    Ok(())
}
