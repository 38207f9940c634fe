//! Queues between processes — `multiprocessing.Queue`, `JoinableQueue`, `SimpleQueue` — on a
//! crash-safe shared-memory ring.
//!
//! * `ring.rs`: the shared memory layout and the put/get protocol (with its crash table); its
//!   two locks are `sync::raw::RawLock`s and its sleeps `sync::wait::WaitWord`s, the crate's one
//!   owner-recovering lock and one waiting mechanism;
//! * `queue.rs`, `joinable.rs`, `simple.rs`: the typed handles.
//!
//! **Named queues** (`Queue::create_named` / `Queue::open`). An anonymous queue's ring is a
//! sealed memfd, which only processes handed its descriptor can reach. A named queue's ring is
//! the same region in a `/dev/shm/<name>` file instead, made, registered, opened, swept and
//! listed by the shared-memory tracker (`shm/tracker.rs`) exactly as a named `SharedMemory`:
//! it lives while any process that created or opened it lives, and is removed after the last
//! one dies, SIGKILL included. Why a file and not a memfd found through a small named file: an
//! unrelated process can reach another's memfd only through `/proc/<pid>/fd` or `pidfd_getfd`,
//! which need ptrace rights over a live owner (no, for a queue that must outlive its creator);
//! a tmpfs file is sparse as a memfd is (the 64 GiB ring costs only the pages written) and
//! hole punching (`fallocate`) gives memory back from it the same way. What a file lacks is seals (tmpfs
//! files refuse `F_ADD_SEALS`), so:
//! * `open` takes only a regular file owned by this user, never through a symlink (the
//!   tracker's `open_segment`), and maps it only after its size matches the header the creator
//!   wrote (magic, layout version, READY state, payload length, then the ring's own format
//!   word): a foreign file at the name is an `Err`, and every word of the ring is validated on
//!   use as for any received region, so a peer-written header cannot make us allocate or index
//!   out of bounds;
//! * a process of the *same* user can still truncate the file under the others, and their next
//!   access past the new end faults (SIGBUS). That is the exposure of every named POSIX segment
//!   (Python's included) and needs no privilege a same-user process lacks anyway (it could
//!   ptrace them); anonymous queues, sealed, do not have it.
//!
//! **Formats.** The ring's header records the item format (native or pickle) at creation; a
//! handle reads it once and encodes and decodes accordingly (`put_bytes`/`get_bytes` skip the
//! codec altogether).
//!
//! **Shutdown.** One header word (`ring.rs`), set once under the producer lock; `reserve`
//! refuses under that lock, gets check it when they find the queue empty, and all three signals
//! are bumped so that sleepers in every process look again. `immediate` discards what is queued
//! as skipped records (which `join` already counts as done).

mod joinable;
#[allow(clippy::module_inception)]
mod queue;
pub(crate) mod ring;
mod simple;

pub use joinable::JoinableQueue;
pub use queue::Queue;
pub use simple::SimpleQueue;
