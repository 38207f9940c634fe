//! The `procshare` Python module: procshare's queues, pipes and locks with `multiprocessing`'s
//! signatures. The Rust extension is `procshare._procshare`; `python/procshare/__init__.py`
//! re-exports it under the names a `multiprocessing` user knows.

use pyo3::prelude::*;

mod sync;

#[pymodule]
fn _procshare(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    sync::register(m)?;
    Ok(())
}
