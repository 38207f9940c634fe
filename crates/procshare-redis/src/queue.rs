//! `Queue<T>` and `JoinableQueue<T>`: typed handles over the byte engine in `core`.

use crate::core::{self, deadline, Config, Core, Deadline, Slot, Waited};
use crate::scripts::scripts;
use procshare::{Error, Format, Result};
use redis::{FromRedisValue, Value};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most items one `get_many` takes (and holds in memory) at once.
const MAX_BATCH: usize = 10_000;

/// How a handle opens its queue: `Queue::open_with(url, name, &Options::new().maxsize(8))`.
#[derive(Clone, Debug)]
pub struct Options {
    maxsize: Option<usize>,
    format: Format,
    lease: Duration,
    connect_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            maxsize: None,
            format: Format::Native,
            lease: core::DEFAULT_LEASE,
            connect_timeout: core::DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

impl Options {
    /// Unbounded if the queue is new, else whatever it was created with; native items; a
    /// 10 s lease; a 5 s connect timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// The queue must have this maxsize (0: unbounded); created with it if missing, else
    /// `Err(InvalidArgument)` if it exists with another.
    pub fn maxsize(mut self, maxsize: usize) -> Self {
        self.maxsize = Some(maxsize);
        self
    }

    /// How items are encoded: [`Format::Native`] between Rust programs, [`Format::Pickle`]
    /// when Python workers (redis-py) share the queue. Fixed when the queue is created.
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// How long a consumer's items stay its own once it stops renewing (dies); a live
    /// consumer renews every third of it. Got-but-unacknowledged items of a dead consumer are
    /// delivered again after this. At least 100 ms.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long a connection attempt may take, and how long a call without a timeout rides
    /// out a server that is away before it returns `Err(Io)`.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    fn config(&self, url: &str, name: &str, joinable: bool) -> Config {
        Config {
            url: url.to_string(),
            name: name.to_string(),
            format: self.format,
            maxsize: self.maxsize.unwrap_or(0),
            joinable,
            lease: self.lease,
            connect_timeout: self.connect_timeout,
        }
    }
}

/// What a handle carries into a child process: enough to reconnect there.
#[derive(Serialize, Deserialize)]
struct Spec {
    url: String,
    name: String,
    format: String,
    maxsize: usize,
    joinable: bool,
    lease_ms: u64,
    connect_timeout_ms: u64,
    closed: bool,
}

/// The part `Queue` and `JoinableQueue` share.
struct Handle<T> {
    core: Arc<Core>,
    /// The maxsize in force on the server (read when opening).
    maxsize: usize,
    closed: AtomicBool,
    _items: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Handle<T> {
    fn clone(&self) -> Self {
        Handle {
            core: self.core.clone(),
            maxsize: self.maxsize,
            closed: AtomicBool::new(self.closed.load(Ordering::Relaxed)),
            _items: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> Handle<T> {
    fn open(cfg: Config, strict: bool) -> Result<Self> {
        let core = Core::new(cfg)?;
        let maxsize = core.open(strict)?;
        Ok(Handle { core, maxsize, closed: AtomicBool::new(false), _items: PhantomData })
    }

    fn spec(&self) -> Spec {
        let c = &self.core.cfg;
        Spec {
            url: c.url.clone(),
            name: c.name.clone(),
            format: core::format_name(c.format).to_string(),
            maxsize: self.maxsize,
            joinable: c.joinable,
            lease_ms: c.lease.as_millis() as u64,
            connect_timeout_ms: c.connect_timeout.as_millis() as u64,
            closed: self.closed.load(Ordering::Relaxed),
        }
    }

    /// A handle from a parent's `Spec`; it connects on first use.
    fn from_spec(s: Spec, joinable: bool) -> std::result::Result<Self, String> {
        if s.joinable != joinable {
            return Err(format!("queue {:?} is not a {}", s.name, kind(joinable)));
        }
        let format = core::parse_format(&s.format)
            .ok_or_else(|| format!("unknown format {:?}", s.format))?;
        let cfg = Config {
            url: s.url,
            name: s.name,
            format,
            maxsize: s.maxsize,
            joinable,
            lease: Duration::from_millis(s.lease_ms),
            connect_timeout: Duration::from_millis(s.connect_timeout_ms),
        };
        let core = Core::new(cfg).map_err(|e| e.to_string())?;
        Ok(Handle {
            core,
            maxsize: s.maxsize,
            closed: AtomicBool::new(s.closed),
            _items: PhantomData,
        })
    }

    fn encode(&self, item: &T) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.core.cfg.format.encode_into(item, &mut buf)?;
        Ok(buf)
    }

    fn put_encoded(&self, items: Vec<Vec<u8>>, d: Deadline) -> Result<()> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        let core = &self.core;
        let joinable = if core.cfg.joinable { "1" } else { "0" };
        let mut rest = &items[..];
        let mut waited_out = false;
        while !rest.is_empty() {
            let seq = core.next_seq();
            let n: String = core.run(d, false, |r, c| {
                scripts()
                    .put
                    .key(&core.keys.items)
                    .key(&core.keys.space)
                    .key(&core.keys.unfinished)
                    .key(core.last_key(r.slot_id))
                    .arg(seq)
                    .arg(self.maxsize)
                    .arg(joinable)
                    .arg(rest)
                    .invoke(c)
            })?;
            let n: usize = n.parse().map_err(|_| Error::Codec(format!("PUT replied {n:?}")))?;
            rest = &rest[n.min(rest.len())..];
            if rest.is_empty() {
                break;
            }
            if waited_out || d.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::Full);
            }
            // Full: sleep on the server until a get leaves a token, then try again.
            let w = core.run(d, false, |r, c| {
                core.wait(r, c, d, core.slice(), |secs| {
                    let mut cmd = redis::cmd("BLPOP");
                    cmd.arg(&core.keys.space).arg(secs);
                    cmd
                })
            })?;
            // At the deadline one last try decides between success and `Full`.
            waited_out = matches!(w, Waited::TimedOut);
        }
        Ok(())
    }

    fn put_timeout_opt(&self, item: T, d: Deadline) -> Result<()> {
        let bytes = self.encode(&item)?;
        self.put_encoded(vec![bytes], d)
    }

    fn put_many<I: IntoIterator<Item = T>>(&self, items: I) -> Result<()> {
        let encoded = items.into_iter().map(|i| self.encode(&i)).collect::<Result<Vec<_>>>()?;
        if encoded.is_empty() {
            return Ok(());
        }
        self.put_encoded(encoded, None)
    }

    /// Takes up to `max` items (at least one, waiting until `d`), decoded; see `finish`.
    fn get_batch(&self, max: usize, d: Deadline) -> Result<Vec<T>> {
        if max == 0 {
            return Err(Error::InvalidArgument("get_many(0): max must be at least 1".into()));
        }
        let max = max.min(MAX_BATCH);
        let core = &self.core;
        let mut slot = match d {
            None => core.get_slot.lock(),
            Some(d) => core.get_slot.try_lock_until(d).ok_or(Error::Empty)?,
        };
        let slot = &mut *slot;
        let joinable = core.cfg.joinable;
        // A single blocking get goes straight to BLMOVE, which answers at once when items wait
        // (one round trip); the script is for batches, `*_nowait`, and the space token of a
        // bounded joinable queue (a plain queue's comes with its settlement).
        let straight = max == 1 && !(joinable && self.maxsize > 0);
        loop {
            let batch: Vec<Vec<u8>> = if straight && d.map_or(true, |d| d > Instant::now()) {
                Vec::new()
            } else {
                core.run_on(slot, d, true, |_, c| {
                    core.before_get(c)?;
                    scripts()
                        .get
                        .key(&core.keys.items)
                        .key(&core.keys.proc)
                        .key(&core.keys.space)
                        .arg(max)
                        .arg(self.maxsize)
                        .arg(0)
                        .invoke(c)
                })?
            };
            if batch.is_empty() {
                if d.is_some_and(|d| Instant::now() >= d) {
                    return Err(Error::Empty);
                }
                let got = core.run_on(slot, d, true, |r, c| {
                    core.before_get(c)?;
                    let w = core.wait(r, c, d, core.slice(), |secs| {
                        let mut cmd = redis::cmd("BLMOVE");
                        cmd.arg(&core.keys.items)
                            .arg(&core.keys.proc)
                            .arg("LEFT")
                            .arg("RIGHT")
                            .arg(secs);
                        cmd
                    })?;
                    match w {
                        Waited::Reply(Value::Nil) => Ok(Vec::new()),
                        Waited::Reply(v) => {
                            let mut got = vec![Vec::<u8>::from_redis_value(&v)?];
                            if max > 1 || (joinable && self.maxsize > 0) {
                                let more: Vec<Vec<u8>> = scripts()
                                    .get
                                    .key(&core.keys.items)
                                    .key(&core.keys.proc)
                                    .key(&core.keys.space)
                                    .arg(max - 1)
                                    .arg(self.maxsize)
                                    .arg(1)
                                    .invoke(c)?;
                                got.extend(more);
                            }
                            Ok(got)
                        }
                        Waited::TimedOut => {
                            // Whatever the cut wait moved goes back first.
                            core.recover(c)?;
                            Ok(Vec::new())
                        }
                    }
                })?;
                if got.is_empty() {
                    continue;
                }
                if let Some(items) = self.finish(slot, got, max)? {
                    return items;
                }
                continue;
            }
            if let Some(items) = self.finish(slot, batch, max)? {
                return items;
            }
        }
    }

    /// Decodes a batch that now sits at the tail of `proc` and settles it on the server: a
    /// plain queue's items leave `proc` (only then are they ours: a reaper may have given them
    /// back meanwhile, and then `None` says to get again), a joinable queue's stay until
    /// `task_done`. At the first item that does not decode, the items after it go back to the
    /// head of the queue; the bad item itself is removed and reported as `Err(Codec)` when it
    /// comes first, else it stays at the head for the next get.
    fn finish(
        &self,
        slot: &mut Slot,
        batch: Vec<Vec<u8>>,
        max: usize,
    ) -> Result<Option<Result<Vec<T>>>> {
        let core = &self.core;
        let format = core.cfg.format;
        let n = batch.len();
        let mut out = Vec::with_capacity(n.min(max));
        let mut bad = None;
        // More than asked for (a misbehaving server) goes back like the items after a bad one.
        for b in batch.iter().take(max) {
            match format.decode::<T>(b) {
                Ok(v) => out.push(v),
                Err(e) => {
                    bad = Some(e);
                    break;
                }
            }
        }
        let take = out.len();
        let drop_bad = usize::from(bad.is_some() && take == 0);
        let joinable = core.cfg.joinable;
        if joinable && bad.is_none() && take == n {
            core.held.fetch_add(take, Ordering::AcqRel);
            return Ok(Some(Ok(out)));
        }
        let keep = core.held.load(Ordering::Acquire);
        let seq = core.next_seq();
        if !joinable && bad.is_none() {
            // The common case goes out without waiting for its reply: the items are ours once
            // the bytes are on their way (see `send_deferred`). Only a reaper that took them
            // back because this consumer's lease lapsed could still answer '0', and then they
            // are delivered twice; a live consumer renews long before that.
            let packed = |op: &str, script: &str| {
                redis::cmd(op)
                    .arg(script)
                    .arg(4)
                    .arg(&core.keys.proc)
                    .arg(&core.keys.items)
                    .arg(&core.keys.space)
                    .arg(core.last_key(slot.id()))
                    .arg(seq)
                    .arg(keep)
                    .arg(n)
                    .arg(take)
                    .arg(0)
                    .arg(1)
                    .arg(self.maxsize)
                    .get_packed_command()
            };
            let s = scripts();
            let (evalsha, eval) =
                (packed("EVALSHA", s.finish.get_hash()), packed("EVAL", &s.finish_src));
            core.send_deferred(slot, evalsha, eval);
            return Ok(Some(Ok(out)));
        }
        let settled = core.run_on(slot, None, false, |r, c| {
            scripts()
                .finish
                .key(&core.keys.proc)
                .key(&core.keys.items)
                .key(&core.keys.space)
                .key(core.last_key(r.slot_id))
                .arg(seq)
                .arg(keep)
                .arg(n)
                .arg(take)
                .arg(drop_bad)
                .arg(if joinable { 0 } else { 1 })
                .arg(self.maxsize)
                .invoke::<String>(c)
        });
        let settled = match settled {
            Ok(s) => s,
            Err(e) => {
                // Whatever is left in `proc` goes back at the next get.
                core.mark_dirty();
                return Err(e);
            }
        };
        if settled != "1" {
            return Ok(None);
        }
        if joinable {
            core.held.fetch_add(take, Ordering::AcqRel);
        }
        match bad {
            Some(e) if take == 0 => Ok(Some(Err(e))),
            _ => Ok(Some(Ok(out))),
        }
    }

    fn get_one(&self, d: Deadline) -> Result<T> {
        let mut v = self.get_batch(1, d)?;
        match (v.pop(), v.is_empty()) {
            (Some(item), true) => Ok(item),
            _ => Err(Error::Codec("the server returned other than one item".into())),
        }
    }

    fn qsize(&self) -> usize {
        let core = &self.core;
        let d = deadline(core.cfg.connect_timeout);
        core.run(d, false, |_, c| redis::cmd("LLEN").arg(&core.keys.items).query::<usize>(c))
            .unwrap_or(0)
    }

    fn destroy(&self) -> Result<()> {
        let core = &self.core;
        core.deregister();
        let pattern = format!("{}*", core.keys.prefix);
        core.run(None, false, |_, c| {
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(c)?;
                if !keys.is_empty() {
                    redis::cmd("UNLINK").arg(&keys).query::<()>(c)?;
                }
                if next == 0 {
                    return Ok(());
                }
                cursor = next;
            }
        })
    }

    fn task_done(&self) -> Result<()> {
        let core = &self.core;
        let mut slot = core.get_slot.lock();
        if core.held.load(Ordering::Acquire) == 0 {
            return Err(Error::TaskDoneTooManyTimes);
        }
        let seq = core.next_seq();
        // '0' means a reaper had already given the item back (this consumer's lease lapsed):
        // it is delivered again and acknowledged there, so this call has nothing to undo.
        core.run_on(&mut slot, None, false, |r, c| {
            scripts()
                .task_done
                .key(&core.keys.proc)
                .key(&core.keys.unfinished)
                .key(&core.keys.done)
                .key(core.last_key(r.slot_id))
                .arg(seq)
                .invoke::<String>(c)
        })?;
        core.held.fetch_sub(1, Ordering::AcqRel);
        Ok(())
    }

    fn join_until(&self, d: Deadline) -> Result<()> {
        let core = &self.core;
        let unfinished = || -> Result<i64> {
            core.run(d, false, |_, c| {
                redis::cmd("GET")
                    .arg(&core.keys.unfinished)
                    .query::<Option<i64>>(c)
                    .map(|u| u.unwrap_or(0))
            })
        };
        let mut waited = false;
        loop {
            if unfinished()? <= 0 {
                if waited {
                    // Pass the wake-up on to the next joiner.
                    core.run(d, false, |_, c| {
                        redis::pipe()
                            .cmd("LPUSH")
                            .arg(&core.keys.done)
                            .arg(1)
                            .ignore()
                            .cmd("LTRIM")
                            .arg(&core.keys.done)
                            .arg(0)
                            .arg(0)
                            .ignore()
                            .query::<()>(c)
                    })?;
                }
                return Ok(());
            }
            if d.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::Timeout);
            }
            let w = core.run(d, false, |r, c| {
                core.wait(r, c, d, core.slice(), |secs| {
                    let mut cmd = redis::cmd("BLPOP");
                    cmd.arg(&core.keys.done).arg(secs);
                    cmd
                })
            })?;
            waited = true;
            if matches!(w, Waited::TimedOut) {
                return if unfinished()? <= 0 { Ok(()) } else { Err(Error::Timeout) };
            }
        }
    }
}

fn kind(joinable: bool) -> &'static str {
    if joinable {
        "JoinableQueue"
    } else {
        "Queue"
    }
}

macro_rules! queue_type {
    ($(#[$doc:meta])* $name:ident, $joinable:expr) => {
        $(#[$doc])*
        pub struct $name<T> {
            h: Handle<T>,
        }

        impl<T> Clone for $name<T> {
            /// Another handle on the same queue, sharing this one's connections.
            fn clone(&self) -> Self {
                $name { h: self.h.clone() }
            }
        }

        impl<T> std::fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("url", &self.h.core.cfg.url)
                    .field("name", &self.h.core.cfg.name)
                    .field("maxsize", &self.h.maxsize)
                    .finish()
            }
        }

        impl<T: Serialize + DeserializeOwned> Serialize for $name<T> {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                self.h.spec().serialize(s)
            }
        }

        impl<'de, T: Serialize + DeserializeOwned> Deserialize<'de> for $name<T> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let spec = Spec::deserialize(d)?;
                Handle::from_spec(spec, $joinable).map(|h| $name { h }).map_err(serde::de::Error::custom)
            }
        }

        impl<T: Serialize + DeserializeOwned> $name<T> {
            /// Opens the queue `name` on the server at `url` (`redis://host:port/db`,
            /// `unix:///path`), creating it unbounded if missing; an existing queue keeps its
            /// maxsize. Items use the native format.
            pub fn open(url: &str, name: &str) -> Result<Self> {
                Self::open_with(url, name, &Options::new())
            }

            /// Opens or creates the queue with this `maxsize` (0: unbounded), which holds across
            /// all clients; `Err(InvalidArgument)` if it exists with another.
            pub fn open_bounded(url: &str, name: &str, maxsize: usize) -> Result<Self> {
                Self::open_with(url, name, &Options::new().maxsize(maxsize))
            }

            /// Opens the queue with items in `format` (`Format::Pickle` for Python peers);
            /// `Err(InvalidArgument)` if it exists with another format.
            pub fn open_with_format(url: &str, name: &str, format: Format) -> Result<Self> {
                Self::open_with(url, name, &Options::new().format(format))
            }

            /// Opens the queue with every option spelled out.
            pub fn open_with(url: &str, name: &str, options: &Options) -> Result<Self> {
                let cfg = options.config(url, name, $joinable);
                Handle::open(cfg, options.maxsize.is_some()).map(|h| $name { h })
            }

            /// Puts `item` at the tail, waiting while the queue is full.
            pub fn put(&self, item: T) -> Result<()> {
                self.h.put_timeout_opt(item, None)
            }

            /// As `put`, but `Err(Full)` if there is still no room after `timeout`.
            pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<()> {
                self.h.put_timeout_opt(item, deadline(timeout))
            }

            /// As `put`, but `Err(Full)` at once if there is no room.
            pub fn put_nowait(&self, item: T) -> Result<()> {
                self.h.put_timeout_opt(item, Some(Instant::now()))
            }

            /// Puts every item, in order, in as few round trips as the room allows.
            pub fn put_many<I: IntoIterator<Item = T>>(&self, items: I) -> Result<()> {
                self.h.put_many(items)
            }

            /// Takes the item at the head, waiting for one.
            pub fn get(&self) -> Result<T> {
                self.h.get_one(None)
            }

            /// As `get`, but `Err(Empty)` if nothing came within `timeout`.
            pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
                self.h.get_one(deadline(timeout))
            }

            /// As `get`, but `Err(Empty)` at once if the queue is empty.
            pub fn get_nowait(&self) -> Result<T> {
                self.h.get_one(Some(Instant::now()))
            }

            /// Waits for at least one item and takes at most `max` (at most 10 000 per call),
            /// in one round trip when items are waiting.
            pub fn get_many(&self, max: usize) -> Result<Vec<T>> {
                self.h.get_batch(max, None)
            }

            /// How many items wait in the queue (not counting those consumers hold); 0 if the
            /// server cannot be asked.
            pub fn qsize(&self) -> usize {
                self.h.qsize()
            }

            /// Whether no item waits.
            pub fn empty(&self) -> bool {
                self.qsize() == 0
            }

            /// Whether the queue is bounded and at its maxsize.
            pub fn full(&self) -> bool {
                self.h.maxsize > 0 && self.qsize() >= self.h.maxsize
            }

            /// This handle can no longer put (`Err(Closed)`); other handles are unaffected.
            pub fn close(&self) {
                self.h.closed.store(true, Ordering::Relaxed);
            }

            /// The queue's name.
            pub fn name(&self) -> &str {
                &self.h.core.cfg.name
            }

            /// The maxsize in force (0: unbounded).
            pub fn maxsize(&self) -> usize {
                self.h.maxsize
            }

            /// Deletes every key of this queue on the server: its items, those consumers hold,
            /// its leases and counters. Other handles' next calls create it afresh.
            pub fn destroy(&self) -> Result<()> {
                self.h.destroy()
            }
        }
    };
}

queue_type!(
    /// `multiprocessing.Queue` on a Redis server: every handle, in any process on any machine,
    /// is the same FIFO queue. An item is gone once `get` returned it, and one in flight when
    /// its getter died is put back, never lost (exactly once).
    ///
    /// ```no_run
    /// let q: procshare_redis::Queue<String> = procshare_redis::Queue::open("redis://127.0.0.1/", "jobs")?;
    /// q.put("hello".to_string())?;
    /// assert_eq!(q.get()?, "hello");
    /// # Ok::<(), procshare::Error>(())
    /// ```
    Queue,
    false
);

queue_type!(
    /// `multiprocessing.JoinableQueue` on a Redis server: as [`Queue`], and an item stays its
    /// getter's until `task_done()`; if the getter dies first it is delivered to another
    /// consumer, at the head, once its lease expires (at least once). `join()` waits until
    /// every item put has been acknowledged.
    ///
    /// ```no_run
    /// let q: procshare_redis::JoinableQueue<u64> = procshare_redis::JoinableQueue::open("redis://127.0.0.1/", "work")?;
    /// q.put(7)?;
    /// let job = q.get()?;
    /// q.task_done()?;
    /// q.join()?;
    /// # Ok::<(), procshare::Error>(())
    /// ```
    JoinableQueue,
    true
);

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// Acknowledges the oldest item this handle got and has not acknowledged;
    /// `Err(TaskDoneTooManyTimes)` if there is none.
    pub fn task_done(&self) -> Result<()> {
        self.h.task_done()
    }

    /// Waits until every item put on the queue, by anyone, has been acknowledged.
    pub fn join(&self) -> Result<()> {
        self.h.join_until(None)
    }

    /// As `join`, but `Err(Timeout)` if items are still unacknowledged after `t`.
    pub fn join_timeout(&self, t: Duration) -> Result<()> {
        self.h.join_until(deadline(t))
    }
}
