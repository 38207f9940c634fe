//! # procshare
//!
//! Python's `multiprocessing` and `queue` modules for Rust: pipes and connections, queues,
//! shared memory, locks, and the processes that use them — fast, and safe against processes
//! killed at any instant.
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
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod pipe;
pub mod process;
pub mod queue;
pub mod shm;
pub mod sync;
mod sys;
pub mod thread_queue;

pub use codec::Format;
pub use error::{Error, Result};
pub use pipe::{connect, pipe, pipe_simplex, wait, Address, Connection, Listener};
pub use process::{
    current_process, init, CurrentProcess, ExitCode, Process, ProcessBuilder, StartMethod,
};
pub use queue::{JoinableQueue, Queue, SimpleQueue};
pub use shm::value::{Array, ArrayGuard, RawArray, RawValue, Value, ValueGuard};
pub use shm::{Item, ShareableList, SharedMemory, SharedMemoryManager};
pub use sync::{
    Barrier, BoundedSemaphore, Condition, ConditionGuard, Event, Lock, LockGuard, RLock, Semaphore,
};
