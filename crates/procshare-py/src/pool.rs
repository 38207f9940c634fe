//! `procshare.Pool`'s engine: the Rust pool's supervision (`procshare::pool::foreign`) with
//! Python workers.
//!
//! * [`PyPoolCore`] (`_procshare.PoolCore`) is the owner's side: the Rust core's dispatcher,
//!   collector and reaper (pidfds, retries, `task_timeout`, cancel, `max_tasks_per_child`,
//!   initializer-death breaking). Tasks are opaque bytes (the pickled `(func, args, kwds)`);
//!   outcomes come back in one stream, [`PyPoolCore::wait`], tagged with the submitter's index.
//! * To start a worker, the reaper thread takes the GIL and calls the pool's Python `start`
//!   function with the slot and a [`PyPoolWorkerStart`] (the worker's handles, exported; it
//!   pickles to the child under spawn and forkserver, and is inherited under fork); `start`
//!   returns the started `multiprocessing.Process`, whose `pid` the reaper watches with a
//!   pidfd and whose `join()`/`exitcode` give the exit code once it is gone.
//! * The child's target calls [`_pool_worker`]`(start, runner)`: the Rust task loop, which
//!   takes batches from the worker's inbox with the GIL released, records each task in the
//!   task table and calls `runner(task_bytes) -> result_bytes` with the GIL. A thread watches
//!   the owner's pidfd and ends the worker the moment the owner is gone (SIGKILL included).
//!
//! Lock order: the reaper never waits for the GIL while it holds the pool's state lock, and
//! every method here that waits for the pool's threads releases the GIL first.

use procshare::pool::foreign::{ForeignChild, ForeignConfig, ForeignPool, ForeignStart};
use procshare::TaskError;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;

/// The owner's side of a `procshare.Pool`: see the module docs.
#[pyclass(name = "PoolCore", module = "procshare._procshare", frozen)]
pub struct PyPoolCore {
    inner: ForeignPool,
}

fn py_failure(py: Python<'_>, e: PyErr) -> procshare::Error {
    let msg = e.to_string();
    e.print(py);
    procshare::Error::Io(std::io::Error::other(format!("the pool's start function raised: {msg}")))
}

#[pymethods]
impl PyPoolCore {
    #[new]
    #[pyo3(signature = (processes, start, retries=0, task_timeout=None, maxtasksperchild=None))]
    fn new(
        py: Python<'_>,
        processes: usize,
        start: PyObject,
        retries: u32,
        task_timeout: Option<f64>,
        maxtasksperchild: Option<u64>,
    ) -> PyResult<Self> {
        let task_timeout = match task_timeout {
            None => None,
            Some(t) if t.is_finite() && t > 0.0 => Some(Duration::from_secs_f64(t)),
            Some(t) => return Err(PyValueError::new_err(format!("bad task_timeout {t}"))),
        };
        let cfg = ForeignConfig { processes, retries, task_timeout, max_tasks: maxtasksperchild };
        let start_fn = Box::new(move |s: ForeignStart| -> procshare::Result<ForeignChild> {
            Python::with_gil(|py| {
                let slot = s.slot();
                let (bytes, fds) = procshare::ffi::export(&s)?;
                drop(s);
                let obj = Py::new(py, PyPoolWorkerStart { bytes, fds: Mutex::new(fds) })
                    .map_err(|e| py_failure(py, e))?;
                let p = start.call1(py, (slot, obj)).map_err(|e| py_failure(py, e))?;
                let pid: u32 = p
                    .getattr(py, "pid")
                    .and_then(|v| v.extract(py))
                    .map_err(|e| py_failure(py, e))?;
                let exit = Box::new(move || {
                    Python::with_gil(|py| {
                        let code = p
                            .call_method0(py, "join")
                            .and_then(|_| p.getattr(py, "exitcode"))
                            .and_then(|c| c.extract::<Option<i32>>(py));
                        match code {
                            Ok(Some(c)) => c,
                            _ => -libc::SIGKILL,
                        }
                    })
                });
                Ok(ForeignChild { pid, exit })
            })
        });
        let inner = py
            .allow_threads(|| ForeignPool::new(cfg, start_fn))
            .map_err(|e| crate::signals::error(py, e))?;
        Ok(PyPoolCore { inner })
    }

    /// submit(tasks, first_index, chunksize) -> first task id
    ///
    /// Queues one task per bytes object, at most `chunksize` per batch; their outcomes come
    /// from `wait` tagged `first_index + i`.
    fn submit(
        &self,
        py: Python<'_>,
        tasks: Vec<Bound<'_, PyBytes>>,
        first_index: usize,
        chunksize: usize,
    ) -> PyResult<u64> {
        let slices: Vec<&[u8]> = tasks.iter().map(|b| b.as_bytes()).collect();
        let inner = &self.inner;
        py.allow_threads(|| inner.submit(&slices, first_index, chunksize.max(1)))
            .map_err(|e| task_error(py, e))
    }

    /// wait(timeout) -> [(index, None, result_bytes) | (index, kind, detail)]
    ///
    /// Every outcome delivered within `timeout` seconds (at least one unless it ran out).
    /// kinds: "died" (detail: (pid, signal or None, attempts)), "timeout", "cancelled",
    /// "shutdown", "broken" (detail: message), "codec" (message).
    fn wait<'py>(&self, py: Python<'py>, timeout: f64) -> PyResult<Bound<'py, PyList>> {
        let t = Duration::from_secs_f64(timeout.max(0.0));
        let inner = &self.inner;
        let got = py.allow_threads(|| inner.wait(t));
        let out = PyList::empty(py);
        for (i, o) in got {
            let item = match o {
                Ok(bytes) => (i, py.None(), PyBytes::new(py, &bytes).into_any().unbind()),
                Err(e) => {
                    let (kind, detail): (&str, PyObject) = match e {
                        TaskError::WorkerDied { pid, signal, attempts } => {
                            ("died", (pid, signal, attempts).into_pyobject(py)?.into_any().unbind())
                        }
                        TaskError::TimedOut => ("timeout", py.None()),
                        TaskError::Cancelled => ("cancelled", py.None()),
                        TaskError::Shutdown => ("shutdown", py.None()),
                        TaskError::Broken(m) => {
                            ("broken", m.into_pyobject(py)?.into_any().unbind())
                        }
                        TaskError::Codec(m) | TaskError::Panicked(m) => {
                            ("codec", m.into_pyobject(py)?.into_any().unbind())
                        }
                        other => {
                            ("codec", other.to_string().into_pyobject(py)?.into_any().unbind())
                        }
                    };
                    (i, kind.into_pyobject(py)?.into_any().unbind(), detail)
                }
            };
            out.append(item)?;
        }
        Ok(out)
    }

    /// cancel(id) -> bool: a queued task is removed, a running one has its worker killed.
    fn cancel(&self, py: Python<'_>, id: u64) -> bool {
        let inner = &self.inner;
        py.allow_threads(|| inner.cancel(id))
    }

    fn close(&self, py: Python<'_>) {
        let inner = &self.inner;
        py.allow_threads(|| inner.close())
    }

    /// join(): after close, waits for every task and then the workers; after terminate, for
    /// the workers.
    fn join(&self, py: Python<'_>) -> PyResult<()> {
        let inner = &self.inner;
        py.allow_threads(|| inner.join()).map_err(|e| crate::signals::error(py, e))
    }

    /// terminate(): kills the workers; every unfinished task ends "shutdown".
    fn terminate(&self, py: Python<'_>) {
        let inner = &self.inner;
        py.allow_threads(|| inner.terminate())
    }

    fn worker_pids(&self, py: Python<'_>) -> Vec<u32> {
        let inner = &self.inner;
        py.allow_threads(|| inner.worker_pids())
    }

    fn broken(&self) -> Option<String> {
        self.inner.broken()
    }

    #[getter]
    fn processes(&self) -> usize {
        self.inner.processes()
    }
}

fn task_error(py: Python<'_>, e: procshare::Error) -> PyErr {
    match e {
        procshare::Error::Task(TaskError::Broken(m)) => {
            pyo3::exceptions::PyRuntimeError::new_err(format!("the pool is broken: {m}"))
        }
        other => crate::signals::error(py, other),
    }
}

/// A worker's start record, exported (bytes and the descriptors they index): inherited by a
/// forked child, pickled (descriptors as `DupFd`) to a spawned or forkserver one.
#[pyclass(name = "PoolWorkerStart", module = "procshare._procshare", frozen)]
pub struct PyPoolWorkerStart {
    bytes: Vec<u8>,
    fds: Mutex<Vec<OwnedFd>>,
}

#[pymethods]
impl PyPoolWorkerStart {
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        if crate::reduce::spawning_popen(py)?.is_none() {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "PoolWorkerStart objects should only be shared between processes through inheritance",
            ));
        }
        let me = slf.get();
        let dup = crate::reduce::dup_fd(py)?;
        let dups = PyList::empty(py);
        for fd in me.fds.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            dups.append(dup.call1((fd.as_raw_fd(),))?)?;
        }
        let rebuild = py.import("procshare._procshare")?.getattr("_rebuild")?;
        let args = PyTuple::new(
            py,
            [slf.get_type().into_any(), PyBytes::new(py, &me.bytes).into_any(), dups.into_any()],
        )?;
        PyTuple::new(py, [rebuild, args.into_any()])
    }

    #[staticmethod]
    fn _from_reduced(bytes: &[u8], fds: Vec<RawFd>) -> PyResult<Self> {
        let mut owned = Vec::with_capacity(fds.len());
        for fd in fds {
            if fd < 0 {
                return Err(PyValueError::new_err(format!("bad descriptor number {fd}")));
            }
            // SAFETY: the descriptors were detached from their DupFd by `_rebuild` and are
            // handed over to us: open, and owned by nobody else.
            owned.push(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        Ok(PyPoolWorkerStart { bytes: bytes.to_vec(), fds: Mutex::new(owned) })
    }
}

/// _pool_worker(start, runner)
/// --
///
/// The pool worker's task loop (the target of a `procshare.Pool` worker process, after its
/// initializer): takes tasks until the pool closes its inbox or `maxtasksperchild` is
/// reached, calling `runner(task_bytes) -> result_bytes` for each.
#[pyfunction]
fn _pool_worker(
    py: Python<'_>,
    start: &Bound<'_, PyPoolWorkerStart>,
    runner: PyObject,
) -> PyResult<()> {
    let me = start.get();
    let fds = {
        let g = me.fds.lock().unwrap_or_else(|p| p.into_inner());
        g.iter().map(|f| f.as_fd().try_clone_to_owned()).collect::<std::io::Result<Vec<_>>>()?
    };
    let s: ForeignStart =
        procshare::ffi::import(&me.bytes, fds).map_err(|e| crate::signals::error(py, e))?;
    // Our copies are not needed any more (the handles hold their own).
    me.fds.lock().unwrap_or_else(|p| p.into_inner()).clear();
    let r = py.allow_threads(|| {
        procshare::pool::foreign::serve(s, &mut |args, out| {
            Python::with_gil(|py| match runner.call1(py, (PyBytes::new(py, args),)) {
                Ok(r) => match r.downcast_bound::<PyBytes>(py) {
                    Ok(b) => out.extend_from_slice(b.as_bytes()),
                    Err(_) => eprintln!("procshare pool worker: the runner returned no bytes"),
                },
                Err(e) => e.print(py),
            })
        })
    });
    r.map_err(|e| crate::signals::error(py, e))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPoolCore>()?;
    m.add_class::<PyPoolWorkerStart>()?;
    m.add_function(wrap_pyfunction!(_pool_worker, m)?)?;
    Ok(())
}
