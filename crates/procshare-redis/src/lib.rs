//! procshare's `Queue` and `JoinableQueue` on a Redis server — `multiprocessing`'s queues across
//! machines (what Python users reach for RQ, Celery or `multiprocessing.managers` to get), with
//! the same methods, errors and promises as procshare's local queues.
//!
//! ```no_run
//! use procshare_redis::{JoinableQueue, Queue};
//! let jobs: JoinableQueue<u64> = JoinableQueue::open("redis://10.0.0.5:6379/0", "jobs")?;
//! jobs.put_many(0..100)?;
//! // ... in worker processes, on any machine:
//! let n = jobs.get()?;
//! jobs.task_done()?;
//! # Ok::<(), procshare::Error>(())
//! ```
//!
//! Handles are `Clone + Send + Sync` and serde-serializable: a handle passed to a
//! `procshare::Process` child carries the URL, the name, the format and its options, and the child
//! connects on first use. Use [`Options`] for the pickle format (Python peers), the lease and the
//! connect timeout.
//!
//! # Why processing lists and not streams
//! Reliable delivery is built from lists — `BLMOVE items → proc:<consumer>` plus a lease per
//! consumer — rather than a stream consumer group (`XREADGROUP`/`XACK`/`XAUTOCLAIM`), because
//! (1) a list keeps the queue's FIFO order and puts a dead consumer's items back *at the head*,
//! where a stream can only re-claim them out of band; (2) `maxsize` is a plain `LLEN` in the put
//! script, where a stream's length includes delivered-but-pending entries; (3) a Python worker
//! needs only `BLMOVE`/`LREM` (see `examples/redis_worker.py`) — no consumer-group bookkeeping;
//! (4) it runs on Redis ≥ 6.2 and its forks.
//!
//! # Key layout (queue `N`; one hash slot, so it also lives on one cluster node)
//! ```text
//! procshare:{N}:meta          hash   maxsize, kind (queue|joinable), format (native|pickle), version 1
//! procshare:{N}:items         list   the queue: RPUSH at the tail, taken from the head
//! procshare:{N}:proc:<c>      list   consumer <c>'s items in flight (Queue) or unacknowledged (JoinableQueue), oldest first
//! procshare:{N}:lease:<c>     string consumer <c> is alive; PX = the lease, renewed every third of it
//! procshare:{N}:consumers     set    every <c> that may hold items
//! procshare:{N}:unfinished    int    JoinableQueue: items put and not yet task_done
//! procshare:{N}:space         list   a token while a bounded queue has room: blocked puts BLPOP it
//! procshare:{N}:done          list   a token when unfinished reaches 0: join BLPOPs it
//! procshare:{N}:last:<c>:<s>  string "<seq>:<result>" of the last change through connection slot <s> (EX 1 h)
//! ```
//!
//! # The steps (each a Lua script, so atomic on the server)
//! * **put**: if `maxsize` is 0 or `LLEN items` leaves room, `RPUSH` (as many as fit, for
//!   `put_many`), count them in `unfinished` (joinable), leave a `space` token if room remains.
//!   A full put waits in `BLPOP space` — on the server, no polling — and tries again.
//! * **get**: `LMOVE items → proc:<c>` (or `BLMOVE` to wait), and a `space` token if bounded.
//!   A plain `Queue` then settles with `FINISH`, which deletes the items from `proc:<c>`; it is
//!   sent before `get` returns, on the handle's one get connection, and its reply is read with
//!   the next command (one round trip per get). It goes as a full `EVAL` until that connection
//!   has run it once, then as `EVALSHA`, so a getter dying right after `get` never leaves a
//!   `NOSCRIPT` behind (only an operator's `SCRIPT FLUSH` at that instant could). A `JoinableQueue` leaves the items in
//!   `proc:<c>` until `task_done` (`LPOP proc:<c>`, `DECR unfinished`).
//! * **reap**: every getter, every half lease, gives the items of each consumer whose lease key
//!   has expired back to the *head* of `items`, oldest first, and drops it from `consumers`.
//! * Every step that changes state carries `(slot, seq)` and records its result in `last:`, so
//!   re-sending it after a lost reply (the server restarted) applies it once.
//!
//! # Delivery, and what a crash leaves behind
//! | who dies, when | left behind | who repairs it |
//! |---|---|---|
//! | producer, before its put's reply | the item is queued or not, atomically | nobody needs to; `put` had not returned `Ok` |
//! | getter, after `LMOVE`, before `get` returned | the item in `proc:<c>` | a reaper after the lease: back at the head (never lost) |
//! | `Queue` getter, after `get` returned | nothing: `FINISH` was written before the return | — (gone once `get` returned: exactly once) |
//! | `JoinableQueue` getter, before `task_done` | the item in `proc:<c>` | a reaper after the lease: back at the head (at least once) |
//! | a handle dropped (process exits normally) | nothing | its drop puts back what it held at once |
//! | the server, with AOF (`appendfsync always`) | every acknowledged step | clients reconnect and re-send, de-duplicated |
//! | the server, without persistence | nothing: the queue is gone | the next `open` creates it again |
//!
//! A consumer alive but cut off from the server for longer than its lease loses its items to a
//! reaper: they are delivered again (a second delivery for a `Queue` item in that one case).
//!
//! # Timeouts and failures
//! The server times blocked commands out only on its `hz` clock (every 100 ms by default), so a
//! wait that ends at a deadline reads its reply with a socket timeout at the deadline, ends the
//! server-side wait with `CLIENT UNBLOCK`, and puts back what the cut wait may have moved —
//! timeouts are honoured to within a few ms. A server that refuses or does not answer is an
//! `Err(Io)` within the call's timeout (at least 100 ms for the connection attempt) or, for calls
//! without one, within the connect timeout (5 s by default), during which a restarting server is
//! waited for and reconnected to. Garbage in a queue's items is `Err(Codec)` for that item, which
//! is removed; a key of the wrong type is `Err(Codec)`; the queue keeps working.
//!
//! Item sizes are bounded by the server (`proto-max-bulk-len`, 512 MB by default): a client
//! receives whatever item the server holds, so run it where only trusted clients can write.
//!
//! # fork and spawn
//! A handle serialized into a child (either start method) is a new consumer there, with its own
//! connections, lease and processing list; nothing of the parent's connections is shared.

mod core;
mod queue;
mod scripts;

pub use procshare::{Error, Format, Result};
pub use queue::{JoinableQueue, Options, Queue};
