//! `procshare.Queue`, `JoinableQueue`, `SimpleQueue`: `multiprocessing`'s queues on procshare's
//! shared-memory ring.
//!
//! Items are pickled by the caller (`pickle.dumps(obj, protocol=5)`) before anything touches
//! the queue, so `put` raises a pickling error itself (`multiprocessing`'s feeder thread would
//! print it and drop the item), and unpickled after the Rust `get` returned, outside every lock
//! of the queue (an `__reduce__` that blocks or raises cannot stall other processes).
//!
//! ```text
//!   put(obj):  pickle.dumps(obj, 5) --bytes--> [try without waiting, GIL held]
//!                                              [else: signals::blocking, GIL released, slices]
//!   get():     [try without waiting, GIL held] --bytes--> pickle.loads (no lock held)
//!              [else: signals::blocking ...]
//! ```
//!
//! There is no feeder thread: an item is in shared memory when `put` returns, so `close()`
//! flushes nothing and `join_thread()`/`cancel_join_thread()` have nothing to do (they are
//! accepted so code written for `multiprocessing` runs unchanged).
//!
//! **Crashes** are the Rust queue's (see `procshare::Queue`): a process killed inside `put`
//! leaves no torn item (the item is delivered whole or not at all), one killed inside `get`
//! loses at most the item it had taken; the queue's internal locks are taken over from a dead
//! holder. The binding holds no lock of its own across a call.

use crate::reduce::{self, Exported};
use crate::signals::{self, blocking};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBytes, PyList, PyTuple};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The Rust queue's item type. The binding moves pickles with `put_bytes`/`get_bytes` and never
/// uses the typed calls; named queues are `Format::Pickle`, so a Rust `Queue<T>` reads them.
type Item = ();

fn pickle_fn(
    py: Python<'_>,
    cell: &'static GILOnceCell<PyObject>,
    name: &str,
) -> PyResult<PyObject> {
    Ok(cell
        .get_or_try_init(py, || Ok::<_, PyErr>(py.import("pickle")?.getattr(name)?.unbind()))?
        .clone_ref(py))
}

/// `pickle.dumps(obj, protocol=5)`.
pub fn dumps<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    static F: GILOnceCell<PyObject> = GILOnceCell::new();
    Ok(pickle_fn(py, &F, "dumps")?.bind(py).call1((obj, 5))?.downcast_into::<PyBytes>()?)
}

/// `pickle.loads`.
fn loads_fn(py: Python<'_>) -> PyResult<PyObject> {
    static F: GILOnceCell<PyObject> = GILOnceCell::new();
    pickle_fn(py, &F, "loads")
}

/// `pickle.loads(data)`.
pub fn loads<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    loads_fn(py)?.bind(py).call1((PyBytes::new(py, data),))
}

// ---------------------------------------------------------------------------------------------
// Large items without fresh memory.
//
// Moving 1 MiB items, the time went to page faults, not to copies: `pickle.dumps` and
// `PyBytes::new` + `pickle.loads` each wrote a freshly allocated megabyte (glibc hands large
// blocks back to the kernel and faults them in again), some 4 MiB of fresh pages per item. So a
// large `bytes` is pickled by hand into a per-thread buffer that stays warm, and a large pickle
// is unpickled from the received buffer itself (a `bytes` pickle by slicing it, any other
// through a memoryview), leaving one fresh allocation per item: the object handed to the user.

/// `bytes` at least this long go through [`with_pickle`]'s buffer, and pickles at least this long
/// are unpickled in place: CPython's pickler writes bytes from `FRAME_SIZE_TARGET` (64 KiB) on
/// outside any frame, so their pickle is exactly [`bytes_pickle_header`] + payload + `\x94.`.
const LARGE_PICKLE: usize = 64 << 10;
/// A per-thread pickle buffer above this is given back after use.
const KEEP_PICKLE_BUFFER: usize = 16 << 20;
/// CPython's `PyBUF_READ` (`object.h`; pyo3-ffi has it only from Python 3.11's abi3 on).
const PY_BUF_READ: std::os::raw::c_int = 0x100;
/// The end of a `bytes` pickle: MEMOIZE, STOP.
const BYTES_PICKLE_TAIL: &[u8] = b"\x94.";

/// The opening of `pickle.dumps(b, 5)` for a `bytes` b of `len` >= [`LARGE_PICKLE`] bytes:
/// PROTO 5, then BINBYTES with a u32 length or BINBYTES8 with a u64 one.
fn bytes_pickle_header(len: usize) -> ([u8; 11], usize) {
    let mut h = [0u8; 11];
    h[..2].copy_from_slice(b"\x80\x05");
    match u32::try_from(len) {
        Ok(n) => {
            h[2] = b'B';
            h[3..7].copy_from_slice(&n.to_le_bytes());
            (h, 7)
        }
        Err(_) => {
            h[2] = 0x8e;
            h[3..11].copy_from_slice(&(len as u64).to_le_bytes());
            (h, 11)
        }
    }
}

/// The payload of `data` if it is a pickle [`with_pickle`] writes for a large `bytes` (so
/// `pickle.loads(data)` is a `bytes` equal to it), else `None`. Any other pickle, also a
/// hostile one, just fails to match.
fn bytes_pickle_payload(data: &[u8]) -> Option<&[u8]> {
    let (len, at): (u64, usize) = match data.get(..3)? {
        b"\x80\x05B" => (u64::from(u32::from_le_bytes(data.get(3..7)?.try_into().ok()?)), 7),
        [0x80, 0x05, 0x8e] => (u64::from_le_bytes(data.get(3..11)?.try_into().ok()?), 11),
        _ => return None,
    };
    let len = usize::try_from(len).ok()?;
    let end = at.checked_add(len)?;
    (len >= LARGE_PICKLE && data.get(end..)? == BYTES_PICKLE_TAIL).then(|| &data[at..end])
}

/// Whether this Python's pickler writes large `bytes` as [`bytes_pickle_header`] says (checked
/// once against `pickle.dumps`; if a future CPython frames them otherwise, every item goes
/// through `pickle.dumps` again).
fn bytes_pickle_matches(py: Python<'_>) -> bool {
    static OK: GILOnceCell<bool> = GILOnceCell::new();
    *OK.get_or_init(py, || {
        let sample = vec![7u8; LARGE_PICKLE + 1];
        let Ok(reference) = dumps(py, PyBytes::new(py, &sample).as_any()) else { return false };
        let (h, n) = bytes_pickle_header(sample.len());
        let mine = [&h[..n], &sample, BYTES_PICKLE_TAIL].concat();
        reference.as_bytes() == mine
    })
}

thread_local! {
    static PICKLE_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on `pickle.dumps(obj, protocol=5)`: for an exact `bytes` of at least
/// [`LARGE_PICKLE`] bytes the same pickle written into this thread's warm buffer (no fresh
/// memory), else `pickle.dumps`'s own.
pub fn with_pickle<'py, R>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    f: impl FnOnce(&[u8]) -> PyResult<R>,
) -> PyResult<R> {
    let large = obj
        .downcast_exact::<PyBytes>()
        .ok()
        .filter(|b| b.as_bytes().len() >= LARGE_PICKLE && bytes_pickle_matches(py));
    let Some(b) = large else {
        return f(dumps(py, obj)?.as_bytes());
    };
    let payload = b.as_bytes();
    let write = |buf: &mut Vec<u8>| {
        let (h, n) = bytes_pickle_header(payload.len());
        buf.clear();
        buf.reserve(n + payload.len() + BYTES_PICKLE_TAIL.len());
        buf.extend_from_slice(&h[..n]);
        buf.extend_from_slice(payload);
        buf.extend_from_slice(BYTES_PICKLE_TAIL);
    };
    PICKLE_BUFFER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            write(&mut buf);
            let r = f(&buf);
            if buf.capacity() > KEEP_PICKLE_BUFFER {
                *buf = Vec::new();
            }
            r
        }
        // Re-entered (a signal handler that puts, run while `f` waited): a buffer of its own.
        Err(_) => {
            let mut buf = Vec::new();
            write(&mut buf);
            f(&buf)
        }
    })
}

/// `pickle.loads(data)`, reading a large pickle where it lies: a `bytes` pickle
/// ([`bytes_pickle_payload`]) becomes its `bytes` at once, any other large pickle is read
/// through a memoryview of `data` (no copy into a `bytes` first).
pub fn unpickle(py: Python<'_>, data: Vec<u8>) -> PyResult<Bound<'_, PyAny>> {
    if data.len() < LARGE_PICKLE {
        return loads(py, &data);
    }
    if let Some(payload) = bytes_pickle_payload(&data) {
        return Ok(PyBytes::new(py, payload).into_any());
    }
    let loads = loads_fn(py)?;
    let len = pyo3::ffi::Py_ssize_t::try_from(data.len())
        .map_err(|_| PyValueError::new_err("item too large"))?;
    // SAFETY: `PyMemoryView_FromMemory` needs `len` readable bytes at the pointer for the
    // view's life (flag PyBUF_READ: never written through). `data` is not moved or dropped
    // until the view is released below; if releasing fails (an export still open, which
    // `pickle.loads` does not leave), `data` is leaked rather than freed under it.
    let view = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            pyo3::ffi::PyMemoryView_FromMemory(
                data.as_ptr() as *mut std::os::raw::c_char,
                len,
                PY_BUF_READ,
            ),
        )?
    };
    let r = loads.bind(py).call1((&view,));
    if view.call_method0("release").is_err() {
        std::mem::forget(data);
    }
    r
}

enum Inner {
    Plain(procshare::Queue<Item>),
    Joinable(procshare::JoinableQueue<Item>),
}

impl std::ops::Deref for Inner {
    type Target = procshare::Queue<Item>;
    fn deref(&self) -> &procshare::Queue<Item> {
        match self {
            Inner::Plain(q) => q,
            Inner::Joinable(j) => j,
        }
    }
}

/// A process-shared FIFO queue (`multiprocessing.Queue`), in shared memory.
///
/// Queue(maxsize=0): maxsize <= 0 is unbounded. Items are pickled by `put` (protocol 5;
/// pickling errors are raised by `put`) and unpickled by `get` after it left the queue's
/// locks. There is no feeder thread: an item is in the queue when `put` returns, so `qsize()`
/// is exact and `close()` loses nothing. A process killed at any instant never leaves a torn
/// item or a stranded lock. Pass it to `multiprocessing.Process` children as an argument
/// (fork, spawn and forkserver); pickling it anywhere else raises RuntimeError.
#[pyclass(name = "Queue", module = "procshare._procshare", subclass, frozen)]
pub struct PyQueue {
    inner: Inner,
    closed: AtomicBool,
    exported: Exported,
}

impl PyQueue {
    fn plain(maxsize: isize, py: Python<'_>) -> PyResult<Self> {
        Self::plain_named(maxsize, None, py)
    }

    fn plain_named(maxsize: isize, name: Option<&str>, py: Python<'_>) -> PyResult<Self> {
        let size = maxsize.max(0) as usize;
        let q = if let Some(name) = name {
            procshare::Queue::create_named(name, size, procshare::Format::Pickle)
        } else if maxsize <= 0 {
            procshare::Queue::new()
        } else {
            procshare::Queue::bounded(maxsize as usize)
        };
        Ok(Self::wrap(Inner::Plain(q.map_err(|e| signals::error(py, e))?)))
    }

    fn wrap(inner: Inner) -> Self {
        PyQueue { inner, closed: AtomicBool::new(false), exported: Exported::default() }
    }

    fn check_closed(&self, slf: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.closed.load(Ordering::Relaxed) {
            let repr = slf.repr().map(|r| r.to_string()).unwrap_or_default();
            return Err(PyValueError::new_err(format!("Queue {repr} is closed")));
        }
        Ok(())
    }

    /// Puts one pickle, waiting (in slices) until `deadline` for room.
    fn put_item(&self, py: Python<'_>, item: &[u8], deadline: Option<Instant>) -> PyResult<()> {
        let q = &*self.inner;
        // The fast path: room now (always, unbounded), no GIL release.
        match q.put_bytes_nowait(item) {
            Err(procshare::Error::Full) => {}
            r => return r.map_err(|e| signals::error(py, e)),
        }
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return Err(signals::error(py, procshare::Error::Full));
        }
        let r = blocking(py, deadline, |slice| match q.put_bytes_timeout(item, slice) {
            Err(procshare::Error::Full) => None,
            r => Some(r),
        })?;
        r.unwrap_or(Err(procshare::Error::Full)).map_err(|e| signals::error(py, e))
    }

    /// Gets one pickle, waiting (in slices) until `deadline`.
    fn get_item(&self, py: Python<'_>, deadline: Option<Instant>) -> PyResult<Vec<u8>> {
        let q = &*self.inner;
        match q.get_bytes_nowait() {
            Err(procshare::Error::Empty) => {}
            r => return r.map_err(|e| signals::error(py, e)),
        }
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return Err(signals::error(py, procshare::Error::Empty));
        }
        let r = blocking(py, deadline, |slice| match q.get_bytes_timeout(slice) {
            Err(procshare::Error::Empty) => None,
            r => Some(r),
        })?;
        r.unwrap_or(Err(procshare::Error::Empty)).map_err(|e| signals::error(py, e))
    }
}

impl PyQueue {
    /// Puts the pickles in order, with the GIL released once for the batch (and once more per
    /// slice while a bounded queue is full), each run that fits reserved in one ring operation
    /// (`Queue::put_bytes_many_timeout`). Waits for room until `deadline`; the items before one
    /// that stays full are in the queue.
    fn put_items(
        &self,
        py: Python<'_>,
        items: &[&[u8]],
        deadline: Option<Instant>,
    ) -> PyResult<()> {
        let q = &*self.inner;
        let mut done = 0;
        let r = blocking(py, deadline, |slice| {
            match q.put_bytes_many_timeout(&items[done..], slice) {
                Ok(n) => done += n,
                Err(e) => return Some(Err(e)),
            }
            (done == items.len()).then_some(Ok(()))
        })?;
        r.unwrap_or(Err(procshare::Error::Full)).map_err(|e| signals::error(py, e))
    }

    /// Gets 1 to `max` pickles with the GIL released once for the batch, in one consumer-lock
    /// round (`Queue::get_bytes_many_timeout`): waits (in slices) until `deadline` for the
    /// first, then takes what else is there without waiting.
    fn get_items(
        &self,
        py: Python<'_>,
        max: usize,
        deadline: Option<Instant>,
    ) -> PyResult<Vec<Vec<u8>>> {
        let q = &*self.inner;
        let r = blocking(py, deadline, |slice| match q.get_bytes_many_timeout(max, slice) {
            Err(procshare::Error::Empty) => None,
            r => Some(r),
        })?;
        r.unwrap_or(Err(procshare::Error::Empty)).map_err(|e| signals::error(py, e))
    }
}

/// A queue opened by name must hold pickles: a native queue's items are a Rust encoding.
fn check_pickle(q: &procshare::Queue<Item>) -> PyResult<()> {
    if q.format() != procshare::Format::Pickle {
        return Err(PyValueError::new_err(format!(
            "queue {:?} holds Rust-native items, not pickles (create it with Format::Pickle)",
            q.name().unwrap_or_default()
        )));
    }
    Ok(())
}

fn deadline_of(block: bool, timeout: Option<f64>) -> PyResult<Option<Instant>> {
    if block {
        signals::deadline(timeout)
    } else {
        Ok(Some(Instant::now()))
    }
}

#[pymethods]
impl PyQueue {
    #[new]
    #[pyo3(signature = (maxsize = 0, name = None, *, ctx = None))]
    fn new(
        py: Python<'_>,
        maxsize: isize,
        name: Option<&str>,
        ctx: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        // `ctx`: `multiprocessing.queues.Queue`'s keyword, accepted and unused (the queue works
        // under every start method).
        let _ = ctx;
        Self::plain_named(maxsize, name, py)
    }

    /// Queue.open(name)
    /// --
    ///
    /// Opens the named queue made by Queue(name=...) (in Python) or Queue::create_named with
    /// Format::Pickle (in Rust), in any process of this user. FileNotFoundError if there is
    /// none; ValueError if it is not a queue of pickles.
    #[staticmethod]
    fn open(py: Python<'_>, name: &str) -> PyResult<Self> {
        let q = procshare::Queue::open(name).map_err(|e| signals::error(py, e))?;
        check_pickle(&q)?;
        Ok(Self::wrap(Inner::Plain(q)))
    }

    /// The queue's name (None for an anonymous queue).
    #[getter]
    fn name(&self) -> Option<String> {
        self.inner.name().map(str::to_owned)
    }

    /// The maxsize given at creation (0: unbounded).
    #[getter]
    fn maxsize(&self) -> usize {
        self.inner.maxsize()
    }

    /// shutdown(immediate=False)
    /// --
    ///
    /// Shuts the queue down for every handle in every process (Python 3.13's
    /// queue.Queue.shutdown): put raises ShutDown; get returns what is left, then raises
    /// ShutDown; blocked callers wake. immediate=True discards what is left (counting it done
    /// for a JoinableQueue's join). One-way.
    #[pyo3(signature = (immediate = false))]
    fn shutdown(&self, immediate: bool) {
        self.inner.shutdown(immediate);
    }

    /// put(obj, block=True, timeout=None)
    /// --
    ///
    /// Pickles obj (protocol 5; pickling errors are raised here) and puts it. A full bounded
    /// queue waits (block=True, up to timeout seconds) or raises queue.Full. Ctrl-C interrupts
    /// the wait. ValueError after close().
    #[pyo3(signature = (obj, block = true, timeout = None))]
    fn put(
        slf: &Bound<'_, Self>,
        obj: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let this = slf.get();
        this.check_closed(slf.as_any())?;
        let py = slf.py();
        let deadline = deadline_of(block, timeout)?;
        with_pickle(py, obj, |item| this.put_item(py, item, deadline))
    }

    /// put_nowait(obj)
    /// --
    ///
    /// put(obj, block=False): queue.Full if there is no room now.
    fn put_nowait(slf: &Bound<'_, Self>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        Self::put(slf, obj, false, None)
    }

    /// get(block=True, timeout=None)
    /// --
    ///
    /// Removes and returns the oldest item. An empty queue waits (block=True, up to timeout
    /// seconds) or raises queue.Empty. The item is unpickled after it left the queue (no lock
    /// held). Ctrl-C interrupts the wait. ValueError after close().
    #[pyo3(signature = (block = true, timeout = None))]
    fn get<'py>(
        slf: &Bound<'py, Self>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let this = slf.get();
        this.check_closed(slf.as_any())?;
        let py = slf.py();
        let item = this.get_item(py, deadline_of(block, timeout)?)?;
        unpickle(py, item)
    }

    /// get_nowait()
    /// --
    ///
    /// get(block=False): queue.Empty if nothing is there now.
    fn get_nowait<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        Self::get(slf, false, None)
    }

    /// put_many(objs, block=True, timeout=None)
    /// --
    ///
    /// Puts every item of the iterable objs, in order. All are pickled first, so a pickling
    /// error puts nothing. On a bounded queue each item waits for room as put does
    /// (queue.Full leaves the items before it in the queue).
    #[pyo3(signature = (objs, block = true, timeout = None))]
    fn put_many(
        slf: &Bound<'_, Self>,
        objs: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let this = slf.get();
        this.check_closed(slf.as_any())?;
        let py = slf.py();
        let deadline = deadline_of(block, timeout)?;
        let mut pickles = Vec::new();
        for obj in objs.try_iter()? {
            pickles.push(dumps(py, &obj?)?);
        }
        let items: Vec<&[u8]> = pickles.iter().map(|p| p.as_bytes()).collect();
        this.put_items(py, &items, deadline)
    }

    /// get_many(max_messages, timeout=None, block=True)
    /// --
    ///
    /// Returns a list of 1 to max_messages items, oldest first: waits for the first as get
    /// does (queue.Empty when block=False or timeout ran out), then takes what else is there
    /// without waiting.
    #[pyo3(signature = (max_messages = 1_000_000_000, timeout = None, block = true))]
    fn get_many<'py>(
        slf: &Bound<'py, Self>,
        max_messages: usize,
        timeout: Option<f64>,
        block: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let this = slf.get();
        this.check_closed(slf.as_any())?;
        let py = slf.py();
        let out = PyList::empty(py);
        if max_messages == 0 {
            return Ok(out);
        }
        for item in this.get_items(py, max_messages, deadline_of(block, timeout)?)? {
            out.append(unpickle(py, item)?)?;
        }
        Ok(out)
    }

    /// qsize()
    /// --
    ///
    /// The number of items in the queue: exact, counted in shared memory (it works on every
    /// platform, unlike multiprocessing's on macOS).
    fn qsize(&self) -> usize {
        self.inner.qsize()
    }

    /// empty()
    /// --
    ///
    /// qsize() == 0.
    fn empty(&self) -> bool {
        self.inner.empty()
    }

    /// full()
    /// --
    ///
    /// Whether a bounded queue holds maxsize items.
    fn full(&self) -> bool {
        self.inner.maxsize() != 0 && self.inner.full()
    }

    /// close()
    /// --
    ///
    /// This handle can no longer put or get (ValueError, as multiprocessing's). Other handles,
    /// in this or other processes, are unaffected. Nothing needs flushing: every put that
    /// returned is in shared memory already.
    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.inner.close();
    }

    /// join_thread()
    /// --
    ///
    /// Accepted for compatibility and does nothing: procshare has no feeder thread to join
    /// (an item is in the queue when put returns).
    fn join_thread(&self) {}

    /// cancel_join_thread()
    /// --
    ///
    /// Accepted for compatibility and does nothing: there is no feeder thread, so exiting
    /// never waits for (or loses) buffered items.
    fn cancel_join_thread(&self) {}

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let this = slf.get();
        if let Some(name) = this.inner.name() {
            // By name: any process of this user can open it, so this pickles anywhere.
            let open = slf.get_type().getattr("open")?;
            return PyTuple::new(slf.py(), [open, PyTuple::new(slf.py(), [name])?.into_any()]);
        }
        match &this.inner {
            Inner::Plain(q) => reduce::reduce(slf.as_any(), &this.exported, q),
            Inner::Joinable(q) => reduce::reduce(slf.as_any(), &this.exported, q),
        }
    }

    #[staticmethod]
    fn _from_reduced(py: Python<'_>, bytes: &[u8], fds: Vec<i32>) -> PyResult<Self> {
        Ok(Self::wrap(Inner::Plain(reduce::import(py, bytes, fds)?)))
    }
}

/// A Queue that also counts unfinished tasks across processes (`multiprocessing.JoinableQueue`).
///
/// JoinableQueue(maxsize=0). Every put adds a task; task_done() marks one done; join() waits
/// until none is left. A consumer killed after get and before task_done leaves its task
/// unfinished forever (nobody can mark it): pass a timeout to join where consumers may die.
#[pyclass(name = "JoinableQueue", module = "procshare._procshare", extends = PyQueue, frozen)]
pub struct PyJoinableQueue;

#[pymethods]
impl PyJoinableQueue {
    #[new]
    #[pyo3(signature = (maxsize = 0, name = None, *, ctx = None))]
    fn new(
        py: Python<'_>,
        maxsize: isize,
        name: Option<&str>,
        ctx: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let _ = ctx; // as Queue's
        let q = if let Some(name) = name {
            procshare::JoinableQueue::create_named(
                name,
                maxsize.max(0) as usize,
                procshare::Format::Pickle,
            )
        } else if maxsize <= 0 {
            procshare::JoinableQueue::new()
        } else {
            procshare::JoinableQueue::bounded(maxsize as usize)
        };
        let base = PyQueue::wrap(Inner::Joinable(q.map_err(|e| signals::error(py, e))?));
        Ok(PyClassInitializer::from(base).add_subclass(PyJoinableQueue))
    }

    /// task_done()
    /// --
    ///
    /// Marks one task (an item some process got) done. ValueError if called more times than
    /// items were put.
    fn task_done(slf: &Bound<'_, Self>) -> PyResult<()> {
        let base = slf.as_super().get();
        match &base.inner {
            Inner::Joinable(q) => q.task_done().map_err(|e| signals::error(slf.py(), e)),
            Inner::Plain(_) => Err(PyValueError::new_err("not a JoinableQueue")),
        }
    }

    /// join(timeout=None)
    /// --
    ///
    /// Waits until every item put (by any process) was marked done with task_done(). Ctrl-C
    /// interrupts the wait. With a timeout (procshare's addition), returns False if tasks are
    /// still unfinished when it ran out, True otherwise (multiprocessing's join returns None).
    #[pyo3(signature = (timeout = None))]
    fn join(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<Option<bool>> {
        let py = slf.py();
        let base = slf.as_super().get();
        let Inner::Joinable(q) = &base.inner else {
            return Err(PyValueError::new_err("not a JoinableQueue"));
        };
        let deadline = signals::deadline(timeout)?;
        let r = blocking(py, deadline, |slice| match q.join_timeout(slice) {
            Err(procshare::Error::Timeout) => None,
            r => Some(r),
        })?;
        match r {
            Some(r) => r.map_err(|e| signals::error(py, e))?,
            None => return Ok(Some(false)),
        }
        Ok(timeout.map(|_| true))
    }

    /// JoinableQueue.open(name)
    /// --
    ///
    /// Opens the named joinable queue made by JoinableQueue(name=...) or Rust's
    /// JoinableQueue::create_named with Format::Pickle.
    #[staticmethod]
    fn open(py: Python<'_>, name: &str) -> PyResult<Py<Self>> {
        let q = procshare::JoinableQueue::open(name).map_err(|e| signals::error(py, e))?;
        check_pickle(&q)?;
        Py::new(
            py,
            PyClassInitializer::from(PyQueue::wrap(Inner::Joinable(q)))
                .add_subclass(PyJoinableQueue),
        )
    }

    #[staticmethod]
    fn _from_reduced(py: Python<'_>, bytes: &[u8], fds: Vec<i32>) -> PyResult<Py<Self>> {
        let base = PyQueue::wrap(Inner::Joinable(reduce::import(py, bytes, fds)?));
        Py::new(py, PyClassInitializer::from(base).add_subclass(PyJoinableQueue))
    }
}

/// The small queue (`multiprocessing.SimpleQueue`): put, get, empty, close; unbounded.
///
/// Same shared-memory ring and crash guarantees as Queue. After close(), this handle's put and
/// get raise OSError ("handle is closed"), as multiprocessing's.
#[pyclass(name = "SimpleQueue", module = "procshare._procshare", frozen)]
pub struct PySimpleQueue {
    q: PyQueue,
}

impl PySimpleQueue {
    fn check(&self) -> PyResult<()> {
        if self.q.closed.load(Ordering::Relaxed) {
            return Err(PyOSError::new_err("handle is closed"));
        }
        Ok(())
    }
}

#[pymethods]
impl PySimpleQueue {
    #[new]
    #[pyo3(signature = (*, ctx = None))]
    fn new(py: Python<'_>, ctx: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let _ = ctx; // as Queue's
        Ok(PySimpleQueue { q: PyQueue::plain(0, py)? })
    }

    /// put(obj)
    /// --
    ///
    /// Pickles obj (pickling errors are raised here) and puts it; never blocks.
    fn put(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        self.check()?;
        with_pickle(py, obj, |item| self.q.put_item(py, item, None))
    }

    /// get()
    /// --
    ///
    /// Removes and returns the oldest item, waiting for one (Ctrl-C interrupts the wait).
    fn get<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.check()?;
        let item = self.q.get_item(py, None)?;
        unpickle(py, item)
    }

    /// empty()
    /// --
    ///
    /// Whether the queue holds no item.
    fn empty(&self) -> bool {
        self.q.inner.empty()
    }

    /// close()
    /// --
    ///
    /// This handle can no longer put or get (OSError); other handles are unaffected.
    fn close(&self) {
        self.q.close();
    }

    /// shutdown(immediate=False)
    /// --
    ///
    /// As Queue.shutdown: put raises ShutDown, get drains what is left then raises ShutDown.
    #[pyo3(signature = (immediate = false))]
    fn shutdown(&self, immediate: bool) {
        self.q.inner.shutdown(immediate);
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let this = slf.get();
        reduce::reduce(slf.as_any(), &this.q.exported, &*this.q.inner)
    }

    #[staticmethod]
    fn _from_reduced(py: Python<'_>, bytes: &[u8], fds: Vec<i32>) -> PyResult<Self> {
        Ok(PySimpleQueue { q: PyQueue::wrap(Inner::Plain(reduce::import(py, bytes, fds)?)) })
    }
}

/// Registers the queue classes.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyQueue>()?;
    m.add_class::<PyJoinableQueue>()?;
    m.add_class::<PySimpleQueue>()?;
    Ok(())
}
