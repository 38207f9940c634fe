//! # procshare
//!
//! Python's `multiprocessing` and `queue` modules for Rust: pipes and connections, queues,
//! shared memory, locks, and the processes that use them — fast, and safe against processes
//! killed at any instant.
//!
//! Layering: `sys` → `shared` (region, handles) → `sync` → `queue`, `shm`, `pipe` → `process`;
//! a module imports only from layers below it (`error`, `codec`: leaves), so no cycle can form.
//!
//! The book's pipe example ("addCount / getCount": one writer, two readers sharing one end):
//!
//! ```no_run
//! use procshare::{pipe, Connection, Process};
//!
//! fn add_count(conn: Connection) {
//!     for i in 0..500u32 {
//!         conn.send(&i).unwrap();
//!     }
//! }
//!
//! fn get_count(conn: Connection) {
//!     while let Ok(i) = conn.recv::<u32>() {
//!         println!("{i} {}", procshare::current_process().name());
//!     }
//! }
//!
//! fn main() -> procshare::Result<()> {
//!     procshare::init();
//!     let (con1, con2) = pipe()?;
//!     let mut writer = Process::spawn(con1, add_count)?;
//!     let mut r1 = Process::spawn(con2.try_clone()?, get_count)?;
//!     let mut r2 = Process::spawn(con2, get_count)?;
//!     writer.join()?;
//!     r1.join()?;
//!     r2.join()?;
//!     Ok(())
//! }
//! ```
//!
//! # Tour
//!
//! * `sys` — every raw syscall (futex, memfd, mmap, sockets, poll, fork/exec); the port
//!   boundary.
//! * `shared` — the anonymous shared-memory `Region` (a sealed memfd with a checked header) and
//!   `Region::at`, which hands out references only to `Shared` types (atomics and structs of
//!   them); `handles`, which carries descriptors into a child as `Process` arguments.
//! * [`sync`] — the lock word (`sync/raw.rs`: a futex naming its owner, taken over from a dead
//!   holder) and the one waiting mechanism (`sync/wait.rs`), under every lock, semaphore,
//!   event, condition and barrier.
//! * [`queue`] — the shared-memory ring and the queues on it; [`shm`] — named segments, their
//!   tracker, `ShareableList`, `Value`/`Array`; [`pipe`](mod@pipe) — connections over Unix sockets.
//! * [`process`] — `Process`, spawn and fork.
//!
//! Two hooks run before `main` in every program linked with procshare (both via `ctor`, both
//! return at once unless their environment variable is set):
//! * **the spawn boot** (`process/mod.rs`, `procshare_load_time_init`): if `PROCSHARE_BOOT_FD`
//!   names a start-up record from a procshare parent, this process is a spawned child: it runs
//!   the child's target and exits without reaching `main`. A hook rather than only [`init`] so
//!   that binaries whose `main` the user does not write (`cargo test`) can spawn; the record is
//!   checked from end to end before anything is believed (see [`process`]).
//! * **the shm reaper** (`shm/tracker.rs`, `procshare_shm_reaper_hook`): if
//!   `PROCSHARE_SHM_REAPER` names our parent (and stdin is a pipe, outside secure execution),
//!   this process is that parent's reaper: it waits for the parent to die, sweeps the segment
//!   registry (unlinks the named segments whose users are all dead) and exits. A hook because
//!   the reaper is this same executable re-run (no helper binary to install); a stray variable
//!   is ignored and `main` runs as usual.
#![deny(unsafe_code)]
#![warn(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod codec;
#[doc(hidden)]
pub mod crash;
mod error;
#[doc(hidden)]
pub mod ffi;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod pipe;
pub mod pool;
pub mod process;
pub mod queue;
mod shared;
pub mod shm;
pub mod sync;
mod sys;
pub mod thread_queue;

pub use codec::Format;
pub use error::{Error, Result};
pub use pipe::{connect, pipe, pipe_simplex, wait, Address, Connection, Listener};
pub use pool::{Imap, ImapUnordered, Pool, PoolBuilder, TaskError, TaskHandle};
pub use process::{
    current_process, init, CurrentProcess, ExitCode, Process, ProcessBuilder, StartMethod,
};
pub use queue::{JoinableQueue, Queue, SimpleQueue};
pub use shm::value::{Array, ArrayGuard, RawArray, RawValue, Value, ValueGuard};
pub use shm::{Item, ShareableList, SharedMemory, SharedMemoryManager};
pub use sync::{
    Barrier, BoundedSemaphore, Condition, ConditionGuard, Event, Lock, LockGuard, RLock, Semaphore,
};
