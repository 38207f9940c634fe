//! The `procshare` Python module: procshare's queues, pipes and locks with `multiprocessing`'s
//! signatures. The Rust extension is `procshare._procshare`; `python/procshare/__init__.py`
//! re-exports it under the names a `multiprocessing` user knows.
//!
//! Shared helpers: [`signals`] (blocking calls that release the GIL and let Ctrl-C in, and the
//! mapping of procshare errors to Python exceptions) and [`reduce`] (passing objects to
//! `multiprocessing.Process` children under fork, spawn and forkserver).
//!
//! The tracker's reaper (the helper that unlinks a named queue when its last user dies, SIGKILL
//! included) is normally the executable re-run; in a Python process that is `python`, which
//! would never become one, so the module names the command that does at import:
//! `python -I -c "import sys; sys.path[:0] = [...]; import procshare._procshare as m;
//! m._reaper()"` (this interpreter, isolated, finding this very module by the importer's
//! `sys.path`). `_reaper()` makes the tracker's checks (the environment names our parent or a
//! dead process, stdin is a pipe, no set-user-ID) and raises RuntimeError in any other process.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyList;

pub mod conn;
pub mod listener;
pub mod pool;
pub mod queue;
pub mod reduce;
pub mod shm;
pub mod signals;
mod sync;

#[pymodule]
fn _procshare(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("ShutDown", signals::shutdown_class(m.py())?)?;
    m.add_function(wrap_pyfunction!(reduce::_rebuild, m)?)?;
    m.add_function(wrap_pyfunction!(_reaper, m)?)?;
    name_the_reaper(m.py())?;
    queue::register(m)?;
    conn::register(m)?;
    listener::register(m)?;
    sync::register(m)?;
    shm::register(m)?;
    pool::register(m)?;
    Ok(())
}

/// Tells the tracker how to start this process's reaper: this interpreter running
/// [`_reaper`] (see the module docs). Without a usable `sys.executable` (an embedded
/// interpreter) nothing is named, and a later sweep reclaims what a killed process left.
fn name_the_reaper(py: Python<'_>) -> PyResult<()> {
    let sys = py.import("sys")?;
    let exe: Option<String> = sys.getattr("executable")?.extract().ok();
    let Some(exe) = exe.filter(|e| !e.is_empty()) else { return Ok(()) };
    // Only the str entries: their repr is a literal the reaper's `-c` reads back.
    let mut path = Vec::new();
    for entry in sys.getattr("path")?.try_iter()? {
        if let Ok(s) = entry?.extract::<String>() {
            path.push(s);
        }
    }
    let path = PyList::new(py, path)?.repr()?.to_string();
    let code =
        format!("import sys; sys.path[:0] = {path}; import procshare._procshare as m; m._reaper()");
    procshare::ffi::set_reaper_command(exe.into(), vec!["-I".into(), "-c".into(), code.into()]);
    Ok(())
}

/// _reaper()
/// --
///
/// Runs this process as procshare's tracker reaper, the command the module names for it at
/// import; never returns then. RuntimeError in a process not started as one.
#[pyfunction]
fn _reaper(py: Python<'_>) -> PyResult<()> {
    // run_reaper exits the process when it is a reaper; it returns (false) only when not.
    let _ = py.allow_threads(procshare::ffi::run_reaper);
    Err(PyRuntimeError::new_err("this process was not started as procshare's tracker reaper"))
}
