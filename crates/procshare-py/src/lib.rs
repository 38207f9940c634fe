//! The `procshare` Python module: procshare's queues, pipes and locks with `multiprocessing`'s
//! signatures. The Rust extension is `procshare._procshare`; `python/procshare/__init__.py`
//! re-exports it under the names a `multiprocessing` user knows.
//!
//! Shared helpers: [`signals`] (blocking calls that release the GIL and let Ctrl-C in, and the
//! mapping of procshare errors to Python exceptions) and [`reduce`] (passing objects to
//! `multiprocessing.Process` children under fork, spawn and forkserver).

use pyo3::prelude::*;

pub mod conn;
pub mod queue;
pub mod reduce;
pub mod signals;
mod sync;

#[pymodule]
fn _procshare(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("ShutDown", signals::shutdown_class(m.py())?)?;
    m.add_function(wrap_pyfunction!(reduce::_rebuild, m)?)?;
    queue::register(m)?;
    conn::register(m)?;
    sync::register(m)?;
    Ok(())
}
